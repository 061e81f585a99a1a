package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"postage"
	"postage/billing"
	"postage/internal/app"
	"postage/internal/apptest"
	"postage/internal/auth"
	"postage/internal/config"
	"postage/internal/testenv"
	"postage/metering"
	"postage/pricing"
)

// feeder ingests batches of new events for many customers into a and keeps
// what was acknowledged and what failed (to be sent again).
type feeder struct {
	a         *app.App
	customers []string
	mu        sync.Mutex
	n         int
	acked     map[metering.Key]bool // accepted
	failed    [][]metering.Event    // batches that failed: they may be partly stored
	errs      []error
	okBatches int
}

func newFeeder(a *app.App, customers []string) *feeder {
	return &feeder{a: a, customers: customers, acked: map[metering.Key]bool{}}
}

// batch makes a batch of k new events over the customers.
func (f *feeder) batch(k int, at time.Time) []metering.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	evs := make([]metering.Event, k)
	for i := range evs {
		f.n++
		e := metering.Event{CustomerID: f.customers[f.n%len(f.customers)], ID: fmt.Sprintf("f%d", f.n), Time: at,
			Country: "DE", Category: "marketing", Quantity: 1}
		e.PayloadHash = metering.HashPayload(e.Time, true, e.Country, e.Category, e.Quantity)
		evs[i] = e
	}
	return evs
}

// send submits one batch and records the outcome; it returns the error.
func (f *feeder) send(ctx context.Context, evs []metering.Event) error {
	st, err := f.a.Ingester.Submit(ctx, slices.Clone(evs))
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.failed = append(f.failed, evs)
		f.errs = append(f.errs, err)
		return err
	}
	f.okBatches++
	for i, s := range st {
		switch s {
		case metering.Accepted:
			f.acked[evs[i].Key()] = true
		case metering.Duplicate:
			f.acked[evs[i].Key()] = true // stored by an earlier try
		default:
			f.errs = append(f.errs, fmt.Errorf("event %v: %s", evs[i].Key(), s))
		}
	}
	return nil
}

// resend sends every failed batch again until it is stored (each at most
// for the deadline of ctx), so that every event sent is stored.
func (f *feeder) resend(t *testing.T, ctx context.Context) {
	t.Helper()
	f.mu.Lock()
	failed := f.failed
	f.failed = nil
	f.mu.Unlock()
	for _, evs := range failed {
		for {
			if err := f.send(ctx, evs); err == nil {
				break
			} else if ctx.Err() != nil {
				t.Fatalf("re-send: %v", err)
			}
			f.mu.Lock()
			f.failed = f.failed[:len(f.failed)-1]
			f.mu.Unlock()
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// checkExactlyOnce checks that every replica of every shard holds each
// event sent exactly once (after fetching what its shard logged), on the
// customer's shard, and that the usage read says the same.
func (f *feeder) checkExactlyOnce(t *testing.T, env *testenv.Env) {
	t.Helper()
	ctx := context.Background()
	want := f.n
	if len(f.acked) != want {
		t.Fatalf("%d events sent, %d acknowledged after re-sends", want, len(f.acked))
	}
	topo := env.CHCluster.Topology
	total := 0
	for s := range topo.Shards {
		shardWant := 0
		for k := range f.acked {
			if topo.ShardFor(k.CustomerID) == s {
				shardWant++
			}
		}
		for r := range topo.Shards[s].Replicas {
			conn := env.ReplicaConn(t, s+1, r+1)
			if err := conn.Exec(ctx, "SYSTEM SYNC REPLICA events"); err != nil {
				t.Fatalf("shard %d replica %d: sync: %v", s+1, r+1, err)
			}
			var n, distinct, mine uint64
			if err := conn.QueryRow(ctx, "SELECT count(), uniqExact(customer_id, id), countIf(startsWith(id, 'f')) FROM events").Scan(&n, &distinct, &mine); err != nil {
				t.Fatal(err)
			}
			if n != distinct || int(mine) != shardWant {
				t.Errorf("shard %d replica %d: %d rows, %d distinct events, %d of the test's; want %d once each", s+1, r+1, n, distinct, mine, shardWant)
			}
		}
		total += shardWant
	}
	var sum uint64
	rows, err := f.a.Usage.Summary(ctx, metering.SummaryQuery{Month: f.a.Now(), GroupBy: []metering.Dimension{metering.ByCustomer}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		sum += r.Events
	}
	if int(sum) != total || total != want {
		t.Errorf("usage summary counts %d events, the shards hold %d, %d were sent", sum, total, want)
	}
}

func faultCustomers() []string {
	var cs []string
	for i := range 30 {
		cs = append(cs, fmt.Sprintf("k%02d", i))
	}
	return cs
}

// quickQuorum makes a dead peer cost at most 5 s of a quorum insert, not
// the default 10 s (config insert_quorum_timeout).
func quickQuorum(c *config.Config) {
	c.ClickHouse.InsertQuorumTimeout.Duration = 5 * time.Second
}

func openFaultApp(t *testing.T) (*app.App, *testenv.Env) {
	t.Helper()
	a, env := apptest.OpenCluster(t, quickQuorum)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := a.Ingester.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return a, env
}

// restart starts a stopped server again and fails the test if it cannot.
func restart(t *testing.T, env *testenv.Env, shard, replica int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := env.Cluster.StartServer(ctx, shard, replica); err != nil {
		t.Fatal(err)
	}
}

// Kill -9 of one replica of three while events stream in: ingest goes on
// (a quorum of 2 is still there), no acknowledged event is lost, none is
// counted twice, and the replica has every event once it is back. Both
// a replica the writer does not talk to and the one it talks to (its
// connection fails over).
func TestClusterReplicaKilledDuringIngest(t *testing.T) {
	for _, victim := range []struct{ shard, replica int }{{1, 3}, {2, 1}} {
		t.Run(fmt.Sprintf("shard%d_replica%d", victim.shard, victim.replica), func(t *testing.T) {
			a, env := openFaultApp(t)
			f := newFeeder(a, faultCustomers())
			ctx := context.Background()
			at := a.Now().Add(-time.Hour).Truncate(time.Second)
			stream := func(batches int) {
				var wg sync.WaitGroup
				for range 2 {
					wg.Go(func() {
						for range batches {
							sctx, cancel := context.WithTimeout(ctx, time.Minute)
							_ = f.send(sctx, f.batch(50, at))
							cancel()
						}
					})
				}
				wg.Wait()
			}
			stream(10)
			if len(f.failed) != 0 {
				t.Fatalf("before the kill: %v", f.errs)
			}
			killed := make(chan error, 1)
			go func() {
				killed <- env.Cluster.KillServer(victim.shard, victim.replica)
			}()
			stream(10)
			if err := <-killed; err != nil {
				t.Fatal(err)
			}
			// The replica is dead: ingest goes on.
			before := f.okBatches
			stream(10)
			t.Logf("after the kill: %d of 20 batches acknowledged, %d failed in all: %v", f.okBatches-before, len(f.failed), f.errs)
			if f.okBatches == before {
				t.Fatalf("no batch acknowledged with one replica of three dead: %v", f.errs)
			}
			restart(t, env, victim.shard, victim.replica)
			stream(5)
			rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
			defer cancel()
			f.resend(t, rctx)
			f.checkExactlyOnce(t, env)
		})
	}
}

// A whole shard down: its customers' requests answer 503, the other
// shard's customers are served; once it is back, so are its customers.
func TestClusterShardDown(t *testing.T) {
	a, env := openFaultApp(t)
	ctx := context.Background()
	topo := env.CHCluster.Topology
	var on [2][]string
	for _, c := range faultCustomers() {
		on[topo.ShardFor(c)] = append(on[topo.ShardFor(c)], c)
	}
	f := newFeeder(a, faultCustomers())
	f1 := newFeeder(a, on[0])
	f2 := newFeeder(a, on[1])
	f1.n, f2.n = 100000, 200000 // ids apart from f's
	at := a.Now().Add(-time.Hour).Truncate(time.Second)
	if err := f.send(ctx, f.batch(60, at)); err != nil {
		t.Fatal(err)
	}
	for r := 1; r <= 3; r++ {
		if err := env.Cluster.StopServer(2, r); err != nil {
			t.Fatal(err)
		}
	}
	base := apptest.Serve(t, a)
	key := apptest.Keys(t, a, "")[auth.RoleAdmin]
	usage := func(c string) (int, string) {
		from := a.Now().Truncate(time.Hour).Add(-48 * time.Hour)
		q := url.Values{"from": {from.Format(time.RFC3339)}, "to": {from.Add(72 * time.Hour).Format(time.RFC3339)}, "window": {"day"}}
		req, _ := http.NewRequest("GET", base+"/api/v1/customers/"+c+"/usage?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = fmt.Fprint(&b, resp.Header.Get("Content-Type"))
		return resp.StatusCode, b.String()
	}
	for i := range 5 {
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := f1.send(sctx, f1.batch(20, at)); err != nil {
			t.Fatalf("shard 1's customers with shard 2 down, batch %d: %v", i, err)
		}
		err := f2.send(sctx, f2.batch(20, at))
		cancel()
		if code := postage.ErrorCode(err); code != postage.EUNAVAILABLE {
			t.Fatalf("shard 2's customers with shard 2 down: %v (%s), want unavailable", err, code)
		}
	}
	if st, _ := usage(on[0][0]); st != 200 {
		t.Errorf("usage of %s on shard 1 with shard 2 down: %d", on[0][0], st)
	}
	if st, ct := usage(on[1][0]); st != 503 || ct != "application/problem+json" {
		t.Errorf("usage of %s on shard 2 with shard 2 down: %d %s, want 503 problem", on[1][0], st, ct)
	}
	for r := 1; r <= 3; r++ {
		restart(t, env, 2, r)
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	f2.resend(t, rctx)
	if st, _ := usage(on[1][0]); st != 200 {
		t.Errorf("usage of %s once shard 2 is back: %d", on[1][0], st)
	}
	for _, g := range []*feeder{f1, f2} {
		if len(g.acked) != g.n-map[*feeder]int{f1: 100000, f2: 200000}[g] {
			t.Errorf("%d of %d events stored", len(g.acked), g.n)
		}
	}
}

// ZooKeeper killed: inserts answer 503 (ClickHouse's tables turn read-only
// and the shards' leases are suspended, then lost), nothing acknowledged is
// lost, and ingest comes back by itself once ZooKeeper is back (the
// leases are taken again and the key indexes catch up).
func TestClusterZooKeeperKilled(t *testing.T) {
	a, env := openFaultApp(t)
	ctx := context.Background()
	f := newFeeder(a, faultCustomers())
	at := a.Now().Add(-time.Hour).Truncate(time.Second)
	for range 5 {
		if err := f.send(ctx, f.batch(40, at)); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.Cluster.KillZooKeeper(); err != nil {
		t.Fatal(err)
	}
	zkBack := false
	defer func() {
		if !zkBack {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_ = env.Cluster.StartZooKeeper(sctx)
		}
	}()
	// Inserts fail, each with a 503 code, from the first one that notices.
	refused := 0
	for i := 0; refused < 5; i++ {
		if i == 200 {
			t.Fatalf("ZooKeeper down: %d batches, %d refused: inserts go on", i, refused)
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := f.send(sctx, f.batch(40, at))
		cancel()
		if err == nil {
			continue
		}
		refused++
		if code := postage.ErrorCode(err); code != postage.EUNAVAILABLE && code != postage.ENOTOWNER {
			t.Fatalf("ZooKeeper down: %v (code %s), want 503", err, code)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := env.Cluster.StartZooKeeper(sctx); err != nil {
		t.Fatal(err)
	}
	zkBack = true
	// Back by itself: a batch is acknowledged again.
	for {
		err := f.send(sctx, f.batch(40, at))
		if err == nil {
			break
		}
		if sctx.Err() != nil {
			t.Fatalf("ZooKeeper back, ingest is not: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	f.resend(t, sctx)
	f.checkExactlyOnce(t, env)
}

// An invoice run with one replica of each shard down (the one postage reads
// from first, so its connections fail over) gives the same invoices.
func TestClusterInvoiceRunReplicaDown(t *testing.T) {
	ctx := context.Background()
	var customers []string
	for i := range 20 {
		customers = append(customers, fmt.Sprintf("v%02d", i))
	}
	a, env := apptest.OpenCluster(t, quickQuorum)
	var mu sync.Mutex
	now := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	a.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a.Billing.CutoffLag = time.Minute
	for i, c := range customers {
		if _, err := a.Customers.Create(ctx, billing.Customer{ID: c, Name: c, Currency: "USD", Country: []string{"DE", "IN"}[i%2]}); err != nil {
			t.Fatal(err)
		}
	}
	f := newFeeder(a, customers)
	for d := range 20 {
		if err := f.send(ctx, f.batch(30, time.Date(2026, 10, 1+d, 12, 0, 0, 0, time.UTC))); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	now = now.Add(3 * time.Hour) // the events are before the run's cut-off, their hour sealable
	mu.Unlock()
	if _, err := a.SealOnce(ctx); err != nil {
		t.Fatal(err)
	}
	base := apptest.Serve(t, a)
	key := apptest.Keys(t, a, "")[auth.RoleAdmin]
	oct := pricing.MustParseMonth("2026-10")
	first, err := a.Billing.Run(ctx, billing.RunRequest{Period: oct, Trigger: billing.TriggerManual, Wait: true})
	if err != nil || first.Created != len(customers) {
		t.Fatalf("first run: %+v %v", first, err)
	}
	before := invoices(t, base, key, "2026-10")
	for s := 1; s <= 2; s++ {
		if err := env.Cluster.StopServer(s, 1); err != nil {
			t.Fatal(err)
		}
	}
	again, err := a.Billing.Run(ctx, billing.RunRequest{Period: oct, Trigger: billing.TriggerManual, Wait: true})
	for s := 1; s <= 2; s++ {
		restart(t, env, s, 1)
	}
	if err != nil {
		t.Fatal(err)
	}
	after := invoices(t, base, key, "2026-10")
	if again.Created != 0 || again.Refreshed != 0 || again.Customers != first.Customers || !reflect.DeepEqual(before, after) {
		t.Fatalf("run with a replica of each shard down: %+v (first %+v)\n before %v\n after %v", again, first, before, after)
	}
}
