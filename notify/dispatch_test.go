package notify_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"postage/internal/db"
	"postage/notify"
)

// A delivery to a receiver that answers 200: one attempt, signed so that
// the receiver's verification passes, the body byte for byte the stored
// event, the attempt in the log.
func TestDeliverySigned(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, f.clock)
	ep := f.endpoint("acme", rc.URL(), notify.InvoiceFinalized)
	rc.setSecret(ep.Secret)
	f.emit(notify.Event{Type: notify.InvoiceFinalized, CustomerID: "acme", Object: invoiceObject{ID: "in_1"}})
	if n := f.deliverAll(f.disp); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
	got := rc.requests()
	if len(got) != 1 || got[0].VerifyOK != nil || got[0].Attempt != 1 || got[0].Type != "invoice.finalized" {
		t.Fatalf("received %+v", got)
	}
	var payload string
	if err := f.env.PG.QueryRow(context.Background(), `SELECT payload FROM webhook_events`).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	if string(got[0].Body) != payload {
		t.Errorf("body %s, stored %s", got[0].Body, payload)
	}
	d := f.delivery(got[0].Delivery)
	if d.Status != notify.DeliverySucceeded || d.Attempts != 1 || len(d.AttemptLog) != 1 || d.AttemptLog[0].StatusCode != 200 ||
		d.AttemptLog[0].Response != `{"received": true}` || d.LastStatusCode != 200 || d.NextAttemptAt != nil {
		t.Errorf("delivery %+v", d)
	}
	// A receiver with another secret refuses it (the signature is real).
	rc.setSecret("whsec_other")
	f.emit(notify.Event{Type: notify.InvoiceFinalized, CustomerID: "acme", Object: invoiceObject{ID: "in_2"}})
	f.deliverAll(f.disp)
	if got := rc.requests(); got[1].VerifyOK == nil {
		t.Error("a signature verified with another secret")
	}
}

// A receiver that fails (5xx), then times out, then recovers: each
// failure is logged and retried on the schedule, nothing is attempted
// before it is due, and the event arrives.
func TestRetriesUntilTheReceiverRecovers(t *testing.T) {
	f := newFixture(t)
	f.disp = f.dispatcher(f.env.PG, 300*time.Millisecond)
	rc := newReceiver(t, f.clock)
	release := make(chan struct{})
	defer close(release)
	rc.respond = func(n int, w http.ResponseWriter, r *http.Request) {
		switch n {
		case 1:
			http.Error(w, "database is down", http.StatusServiceUnavailable)
		case 2:
			select { // no answer: the dispatcher times out
			case <-r.Context().Done():
			case <-release:
			}
		case 3:
			w.Header().Set("Location", "https://elsewhere.example/")
			w.WriteHeader(http.StatusFound)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}
	ep := f.endpoint("acme", rc.URL(), notify.AllEvents)
	rc.setSecret(ep.Secret)
	f.emit(notify.Event{Type: notify.InvoicePaid, CustomerID: "acme", Object: invoiceObject{ID: "in_1"}})
	id := f.deliveryIDs(ep.ID)[0]

	waits := []time.Duration{0, time.Minute, 4 * time.Minute, 16 * time.Minute}
	for i, w := range waits {
		// Just before it is due (the wait less 20% jitter, less a second): nothing.
		if w > 0 {
			f.clock.Add(w*8/10 - time.Second)
			if n := f.deliverAll(f.disp); n != 0 {
				t.Fatalf("attempt %d made before it was due", i+1)
			}
			f.clock.Add(w*4/10 + time.Second) // past the latest jittered time
		}
		if n := f.deliverAll(f.disp); n != 1 {
			t.Fatalf("attempt %d: %d made", i+1, n)
		}
	}
	d := f.delivery(id)
	if d.Status != notify.DeliverySucceeded || d.Attempts != 4 {
		t.Fatalf("delivery %+v", d.Delivery)
	}
	log := d.AttemptLog
	checks := []struct {
		code int
		err  string
	}{{503, "HTTP 503"}, {0, "timeout"}, {302, "redirects are not followed"}, {204, ""}}
	for i, c := range checks {
		if log[i].Attempt != i+1 || log[i].StatusCode != c.code || !strings.Contains(log[i].Error, c.err) || (c.err == "") != (log[i].Error == "") {
			t.Errorf("attempt %d: %+v, want status %d and error %q", i+1, log[i], c.code, c.err)
		}
	}
	if !strings.Contains(log[0].Response, "database is down") {
		t.Errorf("the 503's answer is not logged: %q", log[0].Response)
	}
	for _, r := range rc.requests() {
		if r.VerifyOK != nil {
			t.Errorf("attempt %d not verified: %v", r.Attempt, r.VerifyOK)
		}
	}
}

// A receiver that never answers 2xx: the delivery is retried for three
// days, then failed; a manual re-send after the receiver is fixed
// delivers it.
func TestFailsAfterThreeDaysAndResends(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, f.clock)
	broken := true
	var mu sync.Mutex
	rc.respond = func(n int, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if broken {
			http.Error(w, strings.Repeat("x", 5000), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
	ep := f.endpoint("acme", rc.URL(), notify.InvoiceOverdue)
	rc.setSecret(ep.Secret)
	start := f.clock.Now()
	f.emit(notify.Event{Type: notify.InvoiceOverdue, CustomerID: "acme", Object: invoiceObject{ID: "in_1"}})
	id := f.deliveryIDs(ep.ID)[0]
	for f.delivery(id).Status == notify.DeliveryPending {
		f.deliverAll(f.disp)
		f.clock.Add(30 * time.Minute)
		if f.clock.Now().Sub(start) > 80*time.Hour {
			t.Fatal("still pending after 80 hours")
		}
	}
	d := f.delivery(id)
	if d.Status != notify.DeliveryFailed || d.Attempts != 11 || len(d.AttemptLog) != 11 {
		t.Fatalf("delivery %+v with %d attempts logged", d.Delivery, len(d.AttemptLog))
	}
	if last := d.AttemptLog[10].At; last.Sub(start) > 72*time.Hour || last.Sub(start) < 60*time.Hour {
		t.Errorf("last attempt %v after the event", last.Sub(start))
	}
	if r := d.AttemptLog[0].Response; len(r) != 2048 {
		t.Errorf("response kept: %d bytes, want 2048", len(r))
	}
	if !d.RetryUntil.Equal(start.Add(72 * time.Hour)) {
		t.Errorf("retry until %v", d.RetryUntil)
	}

	mu.Lock()
	broken = false
	mu.Unlock()
	if n := f.deliverAll(f.disp); n != 0 {
		t.Fatal("a failed delivery was attempted again on its own")
	}
	r, err := f.svc.Resend(context.Background(), id, "")
	if err != nil || r.Status != notify.DeliveryPending {
		t.Fatalf("resend: %+v %v", r, err)
	}
	if n := f.deliverAll(f.disp); n != 1 {
		t.Fatalf("resend: %d attempts", n)
	}
	if d := f.delivery(id); d.Status != notify.DeliverySucceeded || d.Attempts != 12 {
		t.Errorf("after resend: %+v", d.Delivery)
	}
	// Another customer's scope does not see it.
	if _, err := f.svc.Resend(context.Background(), id, "beta"); err == nil {
		t.Error("beta re-sent acme's delivery")
	}
}

// Many events for several endpoints, delivered by two dispatchers on two
// connection pools (two replicas) at once: every delivery arrives exactly
// once when the receiver succeeds (claims never overlap), in any order.
func TestTwoDispatchersShareTheWork(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, f.clock)
	var secrets []string
	var eps []notify.CreatedEndpoint
	for _, c := range []string{"acme", "beta", ""} {
		ep := f.endpoint(c, rc.URL(), notify.AllEvents)
		eps = append(eps, ep)
		secrets = append(secrets, ep.Secret)
	}
	rc.setSecret(secrets...)
	const events = 60
	for i := range events {
		c := "acme"
		if i%2 == 1 {
			c = "beta"
		}
		f.emit(notify.Event{Type: notify.InvoiceFinalized, CustomerID: c, Object: invoiceObject{ID: fmt.Sprint("in_", i)}})
	}
	want := events * 2 // each to its customer's endpoint and to the every-customer one
	a, b := f.dispatcher(openPool(t, f.env.PGDSN), 2*time.Second), f.dispatcher(openPool(t, f.env.PGDSN), 2*time.Second)
	a.Batch, b.Batch = 3, 3
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, d := range []*notify.Dispatcher{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, err := d.DeliverDue(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if n == 0 {
					return
				}
				counts[i] += n
			}
		}()
	}
	wg.Wait()
	got := rc.requests()
	if len(got) != want || counts[0]+counts[1] != want {
		t.Fatalf("%d requests (%v attempts), want %d", len(got), counts, want)
	}
	if counts[0] == 0 || counts[1] == 0 {
		t.Logf("one dispatcher did all the work (%v): the test did not interleave", counts)
	}
	seen := map[int64]bool{}
	for _, r := range got {
		if seen[r.Delivery] {
			t.Errorf("delivery %d arrived twice", r.Delivery)
		}
		seen[r.Delivery] = true
		if r.VerifyOK != nil || r.Attempt != 1 {
			t.Errorf("request %+v", r)
		}
	}
	if n := f.count(`SELECT count(*) FROM webhook_deliveries WHERE status <> 'succeeded' OR attempts <> 1`); n != 0 {
		t.Errorf("%d deliveries not succeeded at the first attempt", n)
	}
}

// Disabling an endpoint pauses its pending deliveries and keeps new
// events from it; enabling sends the paused ones.
func TestDisablePausesEnableResumes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rc := newReceiver(t, f.clock)
	ep := f.endpoint("acme", rc.URL(), notify.AllEvents)
	rc.setSecret(ep.Secret)
	f.emit(notify.Event{Type: notify.InvoiceFinalized, CustomerID: "acme", Object: invoiceObject{ID: "in_1"}})
	if _, err := f.svc.UpdateEndpoint(ctx, ep.ID, "", notify.EndpointUpdate{Enabled: new(false)}); err != nil {
		t.Fatal(err)
	}
	f.emit(notify.Event{Type: notify.InvoiceFinalized, CustomerID: "acme", Object: invoiceObject{ID: "in_2"}})
	if n := f.deliverAll(f.disp); n != 0 {
		t.Fatalf("%d attempts to a disabled endpoint", n)
	}
	ids := f.deliveryIDs(ep.ID)
	if len(ids) != 1 || f.delivery(ids[0]).Status != notify.DeliveryPaused {
		t.Fatalf("deliveries %v", ids)
	}
	if _, err := f.svc.Resend(ctx, ids[0], ""); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("resend to a disabled endpoint: %v", err)
	}
	if _, err := f.svc.UpdateEndpoint(ctx, ep.ID, "", notify.EndpointUpdate{Enabled: new(true)}); err != nil {
		t.Fatal(err)
	}
	if n := f.deliverAll(f.disp); n != 1 {
		t.Fatalf("%d attempts after enabling", n)
	}
	if got := rc.requests(); len(got) != 1 || f.delivery(ids[0]).Status != notify.DeliverySucceeded {
		t.Errorf("received %+v", got)
	}
}

// After a rotation requests carry two signatures until the previous
// secret expires: receivers with either secret verify them.
func TestRotatedSecretSignsWithBoth(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rc := newReceiver(t, f.clock)
	ep := f.endpoint("acme", rc.URL(), notify.AllEvents)
	rot, err := f.svc.RotateSecret(ctx, ep.ID, "", notify.RotateRequest{PreviousSecretValidFor: "1h"})
	if err != nil || rot.Secret == ep.Secret || rot.PreviousSecretExpiresAt == nil {
		t.Fatalf("rotate: %+v %v", rot, err)
	}
	for _, s := range []string{ep.Secret, rot.Secret} {
		rc.setSecret(s)
		f.emit(notify.Event{Type: notify.InvoiceFinalized, CustomerID: "acme", Object: invoiceObject{ID: "in_" + s[6:10]}})
		f.deliverAll(f.disp)
		if got := rc.requests(); got[len(got)-1].VerifyOK != nil {
			t.Errorf("secret %d…: %v", len(got), got[len(got)-1].VerifyOK)
		}
	}
	f.clock.Add(time.Hour)
	rc.setSecret(ep.Secret)
	f.emit(notify.Event{Type: notify.InvoiceFinalized, CustomerID: "acme", Object: invoiceObject{ID: "in_late"}})
	f.deliverAll(f.disp)
	if got := rc.requests(); got[len(got)-1].VerifyOK == nil {
		t.Error("the previous secret still signs after it expired")
	}
	if _, err := f.svc.RotateSecret(ctx, ep.ID, "beta", notify.RotateRequest{}); err == nil {
		t.Error("beta rotated acme's secret")
	}
	if _, err := f.svc.RotateSecret(ctx, ep.ID, "", notify.RotateRequest{PreviousSecretValidFor: "9000h"}); err == nil {
		t.Error("a week-long overlap is the most")
	}
}

// The dialer applies the policy at every connection: an endpoint whose
// address stops being allowed gets no request.
func TestDialerRefusesWhatThePolicyRefuses(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, f.clock)
	ep := f.endpoint("acme", rc.URL(), notify.AllEvents)
	f.disp.Client = (&notify.TargetPolicy{}).Client(time.Second) // no loopback allowed
	f.emit(notify.Event{Type: notify.InvoiceFinalized, CustomerID: "acme", Object: invoiceObject{ID: "in_1"}})
	f.deliverAll(f.disp)
	if len(rc.requests()) != 0 {
		t.Fatal("a request reached a refused address")
	}
	d := f.delivery(f.deliveryIDs(ep.ID)[0])
	if d.Status != notify.DeliveryPending || !strings.Contains(d.LastError, "not public") {
		t.Errorf("delivery %+v", d.Delivery)
	}
}

// Old events whose deliveries ended are pruned with them; open ones stay.
func TestPrune(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, f.clock)
	ep := f.endpoint("acme", rc.URL(), notify.AllEvents)
	rc.respond = func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			w.WriteHeader(200)
		} else {
			w.WriteHeader(500)
		}
	}
	_ = ep
	f.emit(notify.Event{Type: notify.InvoiceFinalized, CustomerID: "acme", Object: invoiceObject{ID: "in_1"}})
	f.deliverAll(f.disp) // succeeded
	f.emit(notify.Event{Type: notify.InvoiceFinalized, CustomerID: "acme", Object: invoiceObject{ID: "in_2"}})
	f.deliverAll(f.disp) // pending
	n, err := f.store.Prune(context.Background(), f.clock.Now().Add(time.Second), 10)
	if err != nil || n != 1 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	if got := f.count(`SELECT count(*) FROM webhook_attempts`); got != 1 {
		t.Errorf("%d attempts left, want the pending delivery's one", got)
	}
}

// A dispatcher process killed (SIGKILL) in the middle of an attempt: the
// delivery stays claimed until its lease runs out, then another
// dispatcher delivers it: at least once, never lost.
func TestRestartMidDelivery(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, f.clock)
	started := make(chan struct{}, 1)
	hang := make(chan struct{})
	defer close(hang)
	rc.respond = func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			started <- struct{}{}
			select {
			case <-hang:
			case <-r.Context().Done():
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	}
	ep := f.endpoint("acme", rc.URL(), notify.AllEvents)
	rc.setSecret(ep.Secret)
	f.clock.Set(time.Now().UTC()) // the child runs on the wall clock: the event is due for it
	f.emit(notify.Event{Type: notify.InvoiceFinalized, CustomerID: "acme", Object: invoiceObject{ID: "in_1"}})

	child := exec.Command(os.Args[0], "-test.run=^$")
	var out bytes.Buffer
	child.Stdout, child.Stderr = &out, &out
	child.Env = append(os.Environ(), childEnv+"=1", "CHILD_PG_DSN="+f.env.PGDSN, "CHILD_KEY="+f.key)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(2 * time.Minute):
		_ = child.Process.Kill()
		t.Fatalf("the child never delivered: %s", out.String())
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	f.clock.Set(time.Now().UTC())

	id := f.deliveryIDs(ep.ID)[0]
	if d := f.delivery(id); d.Status != notify.DeliveryPending || d.Attempts != 1 || len(d.AttemptLog) != 0 {
		t.Fatalf("after the kill: %+v", d)
	}
	if n := f.deliverAll(f.disp); n != 0 {
		t.Fatal("taken again while the dead process's lease runs")
	}
	f.clock.Add(childTimeout + time.Minute + time.Second) // the child's lease ran out
	if n := f.deliverAll(f.disp); n != 1 {
		t.Fatalf("%d attempts after the lease", n)
	}
	got := rc.requests()
	if len(got) != 2 || got[1].Attempt != 2 || got[1].EventID != got[0].EventID || got[1].VerifyOK != nil {
		t.Fatalf("received %+v", got)
	}
	if d := f.delivery(id); d.Status != notify.DeliverySucceeded {
		t.Errorf("delivery %+v", d.Delivery)
	}
}

// Two dispatcher processes deliver the same outbox at once: every
// delivery arrives exactly once (the receiver always succeeds), whichever
// process takes it.
func TestTwoProcessesShareTheWork(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, f.clock)
	ep := f.endpoint("", rc.URL(), notify.AllEvents)
	rc.setSecret(ep.Secret)
	f.clock.Set(time.Now().UTC()) // the children run on the wall clock
	const events = 80
	for i := range events {
		f.emit(notify.Event{Type: notify.InvoicePaid, CustomerID: "acme", Object: invoiceObject{ID: fmt.Sprint("in_", i)}})
	}
	var outs [2]bytes.Buffer
	var children []*exec.Cmd
	for i := range 2 {
		c := exec.Command(os.Args[0], "-test.run=^$")
		c.Stdout, c.Stderr = &outs[i], &outs[i]
		c.Env = append(os.Environ(), childEnv+"=1", "CHILD_PG_DSN="+f.env.PGDSN, "CHILD_KEY="+f.key, "CHILD_BATCH=3")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		children = append(children, c)
	}
	defer func() {
		for _, c := range children {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}()
	for start := time.Now(); f.count(`SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'`) < events; time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > 3*time.Minute {
			t.Fatalf("not all delivered: %d requests; %s %s", len(rc.requests()), outs[0].String(), outs[1].String())
		}
	}
	for _, c := range children {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
	children = nil
	got := rc.requests()
	seen := map[int64]bool{}
	for _, r := range got {
		if seen[r.Delivery] {
			t.Errorf("delivery %d arrived twice", r.Delivery)
		}
		seen[r.Delivery] = true
		if r.VerifyOK != nil || r.Attempt != 1 {
			t.Errorf("request %+v", r)
		}
	}
	if len(got) != events {
		t.Errorf("%d requests, want %d", len(got), events)
	}
	if n := f.count(`SELECT count(*) FROM webhook_deliveries WHERE attempts <> 1`); n != 0 {
		t.Errorf("%d deliveries attempted more than once", n)
	}
}

const (
	childEnv = "NOTIFY_TEST_CHILD_DISPATCHER"
	// childTimeout is the child's attempt timeout: longer than the test
	// takes to kill it, so it dies in the middle of the attempt.
	childTimeout = 30 * time.Second
)

// runChildDispatcher is the child process of TestRestartMidDelivery: a
// dispatcher on the wall clock, delivering until it is killed.
func runChildDispatcher() int {
	ctx := context.Background()
	pool, err := db.OpenPostgres(ctx, os.Getenv("CHILD_PG_DSN"))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	keys, err := notify.NewKeyring(os.Getenv("CHILD_KEY"), nil)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	batch, _ := strconv.Atoi(os.Getenv("CHILD_BATCH"))
	d := &notify.Dispatcher{Store: notify.NewPGStore(pool), Keys: keys, Client: loopbackPolicy().Client(childTimeout),
		Timeout: childTimeout, Poll: 50 * time.Millisecond, Batch: batch, Workers: 2}
	d.Run(ctx)
	return 0
}
