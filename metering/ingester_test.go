package metering

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"postage"
)

func ev(cust, id string, t time.Time, country, cat string, qty uint64) Event {
	return Event{CustomerID: cust, ID: id, Time: t.UTC(), Country: country, Category: cat, Quantity: qty,
		PayloadHash: HashPayload(t, true, country, cat, qty)}
}

func submit(t *testing.T, in *Ingester, evs ...Event) []Status {
	t.Helper()
	st, err := in.Submit(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func monthTotal(t *testing.T, s *CHStore, cust string, month time.Time) (qty, events uint64) {
	t.Helper()
	aggs, err := s.CustomerMonth(context.Background(), cust, month, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range aggs {
		qty += a.Quantity
		events += a.Events
	}
	return
}

func TestIngestExactlyOnce(t *testing.T) {
	conn := newCH(t)
	store := NewCHStore(conn)
	in := NewIngester(store, IngesterConfig{})
	t0 := time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC)
	a := ev("c1", "a", t0, "DE", "marketing", 1)
	b := ev("c1", "b", t0, "FR", "utility", 2)
	aOther := ev("c1", "a", t0, "DE", "marketing", 5)
	aOtherCustomer := ev("c2", "a", t0, "DE", "marketing", 1)

	// In the same request: the second copy is a duplicate, a changed copy a conflict.
	got := submit(t, in, a, b, a, aOther, aOtherCustomer)
	want := []Status{Accepted, Accepted, Duplicate, Conflict, Accepted}
	if !slices.Equal(got, want) {
		t.Fatalf("same batch: got %v, want %v", got, want)
	}
	// In a later batch.
	if got := submit(t, in, b, a, aOther); !slices.Equal(got, []Status{Duplicate, Duplicate, Conflict}) {
		t.Fatalf("later batch: got %v", got)
	}
	// After a restart of the ingester (nothing is remembered in memory).
	in.Close()
	in = NewIngester(store, IngesterConfig{})
	defer in.Close()
	if got := submit(t, in, a, b); !slices.Equal(got, []Status{Duplicate, Duplicate}) {
		t.Fatalf("after restart: got %v", got)
	}
	if q, n := monthTotal(t, store, "c1", t0); q != 3 || n != 2 {
		t.Errorf("c1 usage: quantity %d events %d, want 3, 2", q, n)
	}
}

// TestIngestConcurrentGroupCommit sends the same events from many goroutines
// at once: each must be accepted exactly once and the total exact.
func TestIngestConcurrentGroupCommit(t *testing.T) {
	conn := newCH(t)
	store := NewCHStore(conn)
	m := NewMetrics(nil)
	in := NewIngester(store, IngesterConfig{MaxBatch: 500, MaxDelay: 2 * time.Millisecond, Metrics: m})
	defer in.Close()
	t0 := time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC)
	const clients, perClient = 8, 300
	var mu sync.Mutex
	accepted := map[string]int{}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perClient; i += 50 {
				var evs []Event
				for j := i; j < i+50; j++ {
					// Clients overlap: client c sends ids of c and c/2.
					evs = append(evs, ev("cust", fmt.Sprintf("e%d-%d", c/2, j), t0, "BR", "service", 1))
				}
				st, err := in.Submit(context.Background(), evs)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for k, s := range st {
					if s == Accepted {
						accepted[evs[k].ID]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for id, n := range accepted {
		if n != 1 {
			t.Errorf("%s accepted %d times", id, n)
		}
	}
	if len(accepted) != clients/2*perClient {
		t.Errorf("%d distinct accepted, want %d", len(accepted), clients/2*perClient)
	}
	if q, _ := monthTotal(t, store, "cust", t0); q != clients/2*perClient {
		t.Errorf("usage %d, want %d", q, clients/2*perClient)
	}
}

// blockingStore delays inserts so the queue fills up.
type blockingStore struct {
	EventStore
	release chan struct{}
}

func (b *blockingStore) Insert(ctx context.Context, evs []Event) error {
	<-b.release
	return b.EventStore.Insert(ctx, evs)
}

func TestIngestOverloaded(t *testing.T) {
	conn := newCH(t)
	bs := &blockingStore{EventStore: NewCHStore(conn), release: make(chan struct{})}
	in := NewIngester(bs, IngesterConfig{MaxBatch: 10, QueueEvents: 20, MaxDelay: time.Millisecond})
	t0 := time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC)
	errs := make(chan error, 10)
	for i := range 3 {
		go func() {
			var evs []Event
			for j := range 10 {
				evs = append(evs, ev("c", fmt.Sprintf("%d-%d", i, j), t0, "DE", "service", 1))
			}
			_, err := in.Submit(context.Background(), evs)
			errs <- err
		}()
	}
	// Two requests fit the queue; the third is refused at once.
	if err := <-errs; postage.ErrorCode(err) != postage.EOVERLOADED {
		t.Fatalf("got %v, want overloaded", err)
	}
	close(bs.release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	in.Close()
}

// failingStore stands for a ClickHouse that is down, then comes back.
type failingStore struct {
	EventStore
	mu   sync.Mutex
	down bool
}

func (f *failingStore) Insert(ctx context.Context, evs []Event) error {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return fmt.Errorf("dial tcp: connection refused")
	}
	return f.EventStore.Insert(ctx, evs)
}

func TestIngestUnavailableThenRecovers(t *testing.T) {
	conn := newCH(t)
	store := NewCHStore(conn)
	fs := &failingStore{EventStore: store, down: true}
	in := NewIngester(fs, IngesterConfig{})
	defer in.Close()
	t0 := time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC)
	a := ev("c", "a", t0, "DE", "service", 1)
	if _, err := in.Submit(context.Background(), []Event{a}); postage.ErrorCode(err) != postage.EUNAVAILABLE {
		t.Fatalf("got %v, want unavailable", err)
	}
	if q, _ := monthTotal(t, store, "c", t0); q != 0 {
		t.Fatalf("unacknowledged event stored")
	}
	fs.mu.Lock()
	fs.down = false
	fs.mu.Unlock()
	if got := submit(t, in, a); got[0] != Accepted {
		t.Fatalf("after recovery: %v", got)
	}
}

// lostAckStore stores the rows and then fails, like a connection that
// breaks after ClickHouse wrote the insert but before its answer arrived.
type lostAckStore struct{ EventStore }

func (l lostAckStore) Insert(ctx context.Context, evs []Event) error {
	if err := l.EventStore.Insert(ctx, evs); err != nil {
		return err
	}
	return fmt.Errorf("read: connection reset by peer")
}

func TestIngestRetryAfterUnacknowledgedInsert(t *testing.T) {
	conn := newCH(t)
	store := NewCHStore(conn)
	t0 := time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC)
	a, b := ev("c", "a", t0, "DE", "service", 1), ev("c", "b", t0, "DE", "service", 1)
	lost := NewIngester(lostAckStore{store}, IngesterConfig{})
	if _, err := lost.Submit(context.Background(), []Event{a}); postage.ErrorCode(err) != postage.EUNAVAILABLE {
		t.Fatalf("got %v, want unavailable", err)
	}
	lost.Close()
	// The client retries (here through a healthy process): the event that
	// landed is found by the look-up and not stored twice.
	in := NewIngester(store, IngesterConfig{})
	defer in.Close()
	if got := submit(t, in, a, b); !slices.Equal(got, []Status{Duplicate, Accepted}) {
		t.Fatalf("retry: %v", got)
	}
	var rows uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM events").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 2 {
		t.Errorf("%d rows, want 2", rows)
	}
}

// pipelineStore makes the first insert wait until the next batch's look-up
// has run, and then succeed or fail.
type pipelineStore struct {
	EventStore
	fail      bool
	inserts   int
	lookedUp  chan struct{}
	firstLook chan struct{}
	once      sync.Once
	once1     sync.Once
	mu        sync.Mutex
	lookups   int
}

func (p *pipelineStore) Existing(ctx context.Context, keys []Key, since time.Time) (map[Key]uint64, error) {
	p.mu.Lock()
	p.lookups++
	n := p.lookups
	p.mu.Unlock()
	if n == 1 {
		p.once1.Do(func() { close(p.firstLook) })
	}
	if n == 2 {
		p.once.Do(func() { close(p.lookedUp) })
	}
	return p.EventStore.Existing(ctx, keys, since)
}

func (p *pipelineStore) Insert(ctx context.Context, evs []Event) error {
	p.mu.Lock()
	p.inserts++
	n := p.inserts
	p.mu.Unlock()
	if n == 1 {
		<-p.lookedUp
		if p.fail {
			return fmt.Errorf("connection reset")
		}
	}
	return p.EventStore.Insert(ctx, evs)
}

// TestIngestPipelinedBatches sends the same event in two batches whose
// look-up and insert overlap: the second is decided from the first's
// acknowledged outcome, never from its unacknowledged write.
func TestIngestPipelinedBatches(t *testing.T) {
	t0 := time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC)
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("first insert fails %v", fail), func(t *testing.T) {
			conn := newCH(t)
			ps := &pipelineStore{EventStore: NewCHStore(conn), fail: fail, lookedUp: make(chan struct{}), firstLook: make(chan struct{})}
			in := NewIngester(ps, IngesterConfig{MaxBatch: 1})
			defer in.Close()
			a := ev("c", "a", t0, "DE", "service", 1)
			first := make(chan error, 1)
			go func() {
				_, err := in.Submit(context.Background(), []Event{a})
				first <- err
			}()
			<-ps.firstLook // the first batch is on its way
			got, err := in.Submit(context.Background(), []Event{a})
			if err != nil {
				t.Fatal(err)
			}
			ferr := <-first
			want := Duplicate
			if fail {
				want = Accepted
				if ferr == nil {
					t.Error("failed insert acknowledged")
				}
			} else if ferr != nil {
				t.Fatal(ferr)
			}
			if got[0] != want {
				t.Errorf("second: %v, want %v", got[0], want)
			}
			var rows uint64
			if err := conn.QueryRow(context.Background(), "SELECT count() FROM events").Scan(&rows); err != nil || rows != 1 {
				t.Errorf("%d rows (%v), want 1", rows, err)
			}
		})
	}
}
