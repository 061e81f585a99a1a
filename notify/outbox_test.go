package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"postage/internal/db"
	"postage/internal/testenv"
	"postage/notify"
	"postage/notify/signature"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChildDispatcher())
	}
	testenv.Main(m)
}

// clock is an injected, settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func (c *clock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func newClock(t time.Time) *clock    { return &clock{t: t} }
func loopbackPolicy() *notify.TargetPolicy {
	return &notify.TargetPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
}

// fixture is one test's database with customers acme and beta, a
// service, a dispatcher and an outbox on the injected clock.
type fixture struct {
	t      testing.TB
	env    *testenv.Env
	clock  *clock
	store  *notify.PGStore
	key    string // notify.secret_key
	keys   *notify.Keyring
	svc    *notify.Service
	disp   *notify.Dispatcher
	outbox *notify.Outbox
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	env := testenv.New(t)
	for _, c := range []string{"acme", "beta"} {
		if _, err := env.PG.Exec(context.Background(), `INSERT INTO customers (id, name, currency) VALUES ($1, $2, 'USD')`, c, "Customer "+c); err != nil {
			t.Fatal(err)
		}
	}
	key := notify.NewKey()
	keys, err := notify.NewKeyring(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock(time.Date(2026, 11, 4, 2, 0, 0, 0, time.UTC))
	store := notify.NewPGStore(env.PG)
	policy := loopbackPolicy()
	f := &fixture{t: t, env: env, clock: clk, store: store, key: key, keys: keys,
		svc:    &notify.Service{Store: store, Policy: policy, Keys: keys, Now: clk.Now},
		outbox: &notify.Outbox{Now: clk.Now},
	}
	f.disp = f.dispatcher(env.PG, 2*time.Second)
	return f
}

// dispatcher returns a dispatcher on pool (another pool is another
// replica) with the fixture's clock and keys, and the default retry
// schedule without jitter (so the number of attempts in the retry window
// is fixed: 11).
func (f *fixture) dispatcher(pool *pgxpool.Pool, timeout time.Duration) *notify.Dispatcher {
	retry := notify.DefaultRetry
	retry.Jitter = func() float64 { return 0.5 } // ±0
	return &notify.Dispatcher{Store: notify.NewPGStore(pool), Keys: f.keys, Client: loopbackPolicy().Client(timeout),
		Timeout: timeout, Now: f.clock.Now, Workers: 4, Batch: 8, Retry: retry}
}

func (f *fixture) endpoint(customer, url string, types ...notify.EventType) notify.CreatedEndpoint {
	f.t.Helper()
	e, err := f.svc.CreateEndpoint(context.Background(), notify.NewEndpoint{CustomerID: customer, URL: url, EventTypes: types}, "")
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

// emit writes an event in a transaction of its own, committed.
func (f *fixture) emit(e notify.Event) {
	f.t.Helper()
	if err := pgx.BeginFunc(context.Background(), f.env.PG, func(tx pgx.Tx) error {
		return f.outbox.Emit(context.Background(), tx, e)
	}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) count(q string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.env.PG.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// deliverAll runs DeliverDue until nothing is due at the current clock.
func (f *fixture) deliverAll(d *notify.Dispatcher) int {
	f.t.Helper()
	total := 0
	for {
		n, err := d.DeliverDue(context.Background())
		if err != nil {
			f.t.Fatal(err)
		}
		if n == 0 {
			return total
		}
		total += n
	}
}

func (f *fixture) delivery(id int64) notify.DeliveryDetail {
	f.t.Helper()
	d, err := f.svc.Delivery(context.Background(), id, "")
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f *fixture) deliveryIDs(endpointID string) []int64 {
	f.t.Helper()
	list, _, err := f.svc.Deliveries(context.Background(), endpointID, "", "", notify.Page{Limit: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	ids := make([]int64, len(list))
	for i, d := range list {
		ids[i] = d.ID
	}
	return ids
}

// received is one request a receiver got.
type received struct {
	EventID  string
	Type     string
	Attempt  int
	Delivery int64
	Body     []byte
	VerifyOK error
}

// receiver is a local endpoint: it verifies each request's signature with
// its secret on the test's clock, records it, and answers as respond says.
type receiver struct {
	srv     *httptest.Server
	clock   *clock
	mu      sync.Mutex
	secrets []string
	got     []received
	// respond answers a request (the n-th, from 1); nil: 200.
	respond func(n int, w http.ResponseWriter, r *http.Request)
}

func newReceiver(t *testing.T, clk *clock) *receiver {
	t.Helper()
	rc := &receiver{clock: clk}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) URL() string { return rc.srv.URL + "/hooks/postage" }

func (rc *receiver) setSecret(s ...string) { rc.mu.Lock(); rc.secrets = s; rc.mu.Unlock() }

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	var verr error = errors.New("no secret")
	for _, s := range rc.secrets {
		if verr = signature.Verify(body, r.Header.Get(signature.Header), s, 0, rc.clock.Now()); verr == nil {
			break
		}
	}
	var p notify.Payload
	_ = json.Unmarshal(body, &p)
	att, _ := strconv.Atoi(r.Header.Get("Postage-Attempt"))
	del, _ := strconv.ParseInt(r.Header.Get("Postage-Delivery-Id"), 10, 64)
	rc.got = append(rc.got, received{EventID: p.ID, Type: string(p.Type), Attempt: att, Delivery: del, Body: body, VerifyOK: verr})
	n, respond := len(rc.got), rc.respond
	rc.mu.Unlock()
	if p.ID != r.Header.Get("Postage-Event-Id") || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if respond != nil {
		respond(n, w, r)
		return
	}
	_, _ = io.WriteString(w, `{"received": true}`)
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

type invoiceObject struct {
	ID     string `json:"id"`
	Number string `json:"number"`
}

// Emit writes the event and its deliveries only when the transaction
// commits, only to enabled endpoints subscribed to its type and customer,
// not at all when nobody is subscribed, and once per key.
func TestEmitIsPartOfTheTransaction(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	acme := f.endpoint("acme", "http://127.0.0.1:1/acme", notify.InvoiceFinalized, notify.InvoiceVoided)
	all := f.endpoint("", "http://127.0.0.1:1/all", notify.AllEvents)
	beta := f.endpoint("beta", "http://127.0.0.1:1/beta", notify.InvoiceFinalized)
	off := f.endpoint("acme", "http://127.0.0.1:1/off", notify.InvoiceFinalized)
	if _, err := f.svc.UpdateEndpoint(ctx, off.ID, "", notify.EndpointUpdate{Enabled: new(false)}); err != nil {
		t.Fatal(err)
	}
	ev := notify.Event{Type: notify.InvoiceFinalized, CustomerID: "acme", Object: invoiceObject{ID: "in_1", Number: "PST-1"}}

	// Rolled back: nothing.
	tx, err := f.env.PG.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.outbox.Emit(ctx, tx, ev); err != nil {
		t.Fatal(err)
	}
	if n := f.count(`SELECT count(*) FROM webhook_events`); n != 0 {
		t.Fatalf("%d events visible before commit", n)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.count(`SELECT count(*) FROM webhook_events`); n != 0 {
		t.Fatalf("%d events after rollback", n)
	}

	f.emit(ev)
	tests := []struct {
		endpoint string
		want     int
	}{{acme.ID, 1}, {all.ID, 1}, {beta.ID, 0}, {off.ID, 0}}
	for _, tt := range tests {
		if got := f.count(`SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1`, tt.endpoint); got != tt.want {
			t.Errorf("endpoint %s: %d deliveries, want %d", tt.endpoint, got, tt.want)
		}
	}
	// beta's invoice.paid: only the every-customer "*" endpoint wants it.
	f.emit(notify.Event{Type: notify.InvoicePaid, CustomerID: "beta", Object: invoiceObject{ID: "in_2"}})
	if got := f.count(`SELECT count(*) FROM webhook_deliveries d JOIN webhook_events v ON v.id = d.event_id WHERE v.type = 'invoice.paid'`); got != 1 {
		t.Errorf("invoice.paid: %d deliveries, want 1", got)
	}
	// Nobody subscribed: not stored.
	if err := f.svc.DeleteEndpoint(ctx, all.ID, ""); err != nil {
		t.Fatal(err)
	}
	f.emit(notify.Event{Type: notify.CreditNoteCreated, CustomerID: "beta", Object: invoiceObject{ID: "cn_1"}})
	if got := f.count(`SELECT count(*) FROM webhook_events WHERE type = 'credit_note.created'`); got != 0 {
		t.Errorf("an event nobody subscribes to was stored (%d)", got)
	}
	// A key: once.
	for range 2 {
		f.emit(notify.Event{Type: notify.InvoiceVoided, CustomerID: "acme", Object: invoiceObject{ID: "in_1"}, Key: "in_1"})
	}
	if got := f.count(`SELECT count(*) FROM webhook_events WHERE type = 'invoice.voided'`); got != 1 {
		t.Errorf("the same key emitted twice: %d events", got)
	}
	// Unique ids, and the payload is the event.
	var id, payload string
	if err := f.env.PG.QueryRow(ctx, `SELECT id, payload FROM webhook_events WHERE type = 'invoice.finalized'`).Scan(&id, &payload); err != nil {
		t.Fatal(err)
	}
	want := `{"id":"` + id + `","type":"invoice.finalized","created":"2026-11-04T02:00:00Z","customer_id":"acme","data":{"object":{"id":"in_1","number":"PST-1"}}}`
	if payload != want {
		t.Errorf("payload\n got %s\nwant %s", payload, want)
	}
	if err := f.outbox.Emit(ctx, f.env.PG, notify.Event{Type: "invoice.exploded", CustomerID: "acme", Object: 1}); err == nil {
		t.Error("an unknown event type was emitted")
	}
}

// openPool opens another pool on the test's database (another replica).
func openPool(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	p, err := db.OpenPostgres(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}
