package metering

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"postage"
	"postage/internal/db"
	"postage/metering/keyindex"
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
	store := newStore(t)
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
	// After a restart of the ingester: with its key index on disk, and with
	// a new one rebuilt from ClickHouse.
	in.Close()
	for _, dir := range []string{"", t.TempDir()} {
		in = NewIngester(store, IngesterConfig{IndexDir: dir})
		if got := submit(t, in, a, b, aOther); !slices.Equal(got, []Status{Duplicate, Duplicate, Conflict}) {
			t.Fatalf("after restart (index dir %q): got %v", dir, got)
		}
		in.Close()
		if dir != "" { // and again, with the index that Close wrote
			in = NewIngester(store, IngesterConfig{IndexDir: dir})
			if got := submit(t, in, a, b); !slices.Equal(got, []Status{Duplicate, Duplicate}) {
				t.Fatalf("after a second restart on %s: got %v", dir, got)
			}
			in.Close()
		}
	}
	if q, n := monthTotal(t, store, "c1", t0); q != 3 || n != 2 {
		t.Errorf("c1 usage: quantity %d events %d, want 3, 2", q, n)
	}
}

// TestIngestCopiesAgainstTheStoredPayload (issue #14, item 7): every copy
// of a key in a flush is compared with the stored payload when the key is
// stored, else with the flush's accepted first copy; in one request and
// between requests that share a flush.
func TestIngestCopiesAgainstTheStoredPayload(t *testing.T) {
	store := newStore(t)
	conn := store.conn
	in := NewIngester(store, IngesterConfig{MaxDelay: time.Second, IdleGap: time.Second})
	defer in.Close()
	t0 := time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC)
	a2 := ev("c", "a2", t0, "DE", "marketing", 1)
	a2other := ev("c", "a2", t0, "DE", "marketing", 7)
	b, bOther := ev("c", "b", t0, "FR", "utility", 1), ev("c", "b", t0, "FR", "utility", 2)
	if got := submit(t, in, a2); got[0] != Accepted {
		t.Fatal(got)
	}
	for _, c := range []struct {
		name string
		evs  []Event
		want []Status
	}{
		{"stored, conflicting copy first", []Event{a2other, a2}, []Status{Conflict, Duplicate}},
		{"stored, re-send first", []Event{a2, a2other, a2}, []Status{Duplicate, Conflict, Duplicate}},
		{"new key", []Event{b, bOther, b}, []Status{Accepted, Conflict, Duplicate}},
	} {
		if got := submit(t, in, c.evs...); !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}

	// Two requests in one flush: the flusher is held in its look-up while
	// both queue, so the next flush takes them together.
	x, xOther := ev("c", "x", t0, "DE", "service", 1), ev("c", "x", t0, "DE", "service", 3)
	hold, held := make(chan struct{}), make(chan struct{})
	var once sync.Once
	in.hookLookedUp = func() { once.Do(func() { close(held); <-hold }) }
	results := make([]chan []Status, 4)
	send := func(i int, e Event) {
		results[i] = make(chan []Status, 1)
		go func() { results[i] <- submit(t, in, e) }()
	}
	queued := func(k int) { // the flusher is held: requests wait in the queue, in order
		for len(in.queue) < k {
			time.Sleep(time.Millisecond)
		}
	}
	send(0, ev("c", "holder", t0, "DE", "service", 1))
	<-held
	send(1, a2other) // stored a2: conflict...
	queued(1)
	send(2, a2) // ...and duplicate, though the flush's first copy of a2 is a2other
	queued(2)
	send(3, xOther) // new x: its first copy is accepted...
	queued(3)
	results = append(results, make(chan []Status, 1))
	go func() { results[4] <- submit(t, in, x) }() // ...and this one conflicts with it
	queued(4)
	close(hold)
	want := []Status{Accepted, Conflict, Duplicate, Accepted, Conflict}
	for i, w := range want {
		if got := <-results[i]; got[0] != w {
			t.Errorf("request %d of the shared flush: %v, want %v", i, got[0], w)
		}
	}
	var rows uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM events WHERE id IN ('a2', 'x')").Scan(&rows); err != nil || rows != 2 {
		t.Errorf("a2 and x: %d rows (%v), want 2", rows, err)
	}
}

// TestIngestQueueBoundedByBytes: past QueueBytes a request is refused
// whole (429), and what was taken is all stored once the store resumes.
func TestIngestQueueBoundedByBytes(t *testing.T) {
	store := newStore(t)
	bs := &blockingStore{EventStore: store, release: make(chan struct{})}
	t0 := time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC)
	req := func(i int) []Event {
		var evs []Event
		for j := range 10 {
			evs = append(evs, ev("c", fmt.Sprintf("%d-%d", i, j), t0, "DE", "service", 1))
		}
		return evs
	}
	per := EventBytes(req(0))
	in := NewIngester(bs, IngesterConfig{MaxBatch: 10, QueueEvents: 1000, QueueBytes: 2*per + per/2, MaxDelay: time.Millisecond})
	defer in.Close()
	big := slices.Concat(req(97), req(96), req(95))
	if _, err := in.Submit(context.Background(), big); postage.ErrorCode(err) != postage.ETOOLARGE {
		t.Fatalf("a request larger than the queue: %v, want too_large", err)
	}
	errs := make(chan error, 2)
	for i := range 2 {
		go func() {
			_, err := in.Submit(context.Background(), req(i))
			errs <- err
		}()
		for in.pending.Load() < int64(10*(i+1)) {
			time.Sleep(time.Millisecond)
		}
	}
	// Two requests fit the bytes; the third is refused at once, though
	// the queue has room for 1,000 events.
	if _, err := in.Submit(context.Background(), req(2)); postage.ErrorCode(err) != postage.EOVERLOADED {
		t.Fatalf("got %v, want overloaded", err)
	}
	close(bs.release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// The refused request is re-sent and stored: nothing lost, nothing twice.
	if got := submit(t, in, req(2)...); got[0] != Accepted {
		t.Fatalf("re-sent refused request: %v", got)
	}
	if _, n := monthTotal(t, store, "c", t0); n != 30 {
		t.Errorf("%d events stored, want 30", n)
	}
}

// TestIngestConcurrentGroupCommit sends the same events from many goroutines
// at once: each must be accepted exactly once and the total exact.
func TestIngestConcurrentGroupCommit(t *testing.T) {
	store := newStore(t)
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

func (b *blockingStore) InsertList(ctx context.Context, evs EventList) error {
	<-b.release
	return b.EventStore.InsertList(ctx, evs)
}

func TestIngestOverloaded(t *testing.T) {
	bs := &blockingStore{EventStore: newStore(t), release: make(chan struct{})}
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

func (f *failingStore) InsertList(ctx context.Context, evs EventList) error {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return fmt.Errorf("dial tcp: connection refused")
	}
	return f.EventStore.InsertList(ctx, evs)
}

func TestIngestUnavailableThenRecovers(t *testing.T) {
	store := newStore(t)
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

func (l lostAckStore) InsertList(ctx context.Context, evs EventList) error {
	if err := l.EventStore.InsertList(ctx, evs); err != nil {
		return err
	}
	return fmt.Errorf("read: connection reset by peer")
}

// flakyAckStore loses the acknowledgement of its first insert (see
// lostAckStore) and then behaves.
type flakyAckStore struct {
	EventStore
	n atomic.Int32
}

func (f *flakyAckStore) InsertList(ctx context.Context, evs EventList) error {
	if f.n.Add(1) == 1 {
		return lostAckStore{f.EventStore}.InsertList(ctx, evs)
	}
	return f.EventStore.InsertList(ctx, evs)
}

// TestIngestRetryAfterUnacknowledgedInsert: an insert that ClickHouse
// committed although the ingester saw it fail is never acknowledged, and
// its re-send is a duplicate, whether the same process (its catch-up reads
// the insert back before deciding anything else) or a new one (whose start
// catches up from the index's watermark) gets it.
func TestIngestRetryAfterUnacknowledgedInsert(t *testing.T) {
	t0 := time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC)
	a, b := ev("c", "a", t0, "DE", "service", 1), ev("c", "b", t0, "DE", "service", 1)
	count := func(t *testing.T, conn driver.Conn) uint64 {
		t.Helper()
		var rows uint64
		if err := conn.QueryRow(context.Background(), "SELECT count() FROM events").Scan(&rows); err != nil {
			t.Fatal(err)
		}
		return rows
	}
	t.Run("same process", func(t *testing.T) {
		store := newStore(t)
		in := NewIngester(&flakyAckStore{EventStore: store}, IngesterConfig{})
		defer in.Close()
		if _, err := in.Submit(context.Background(), []Event{a}); postage.ErrorCode(err) != postage.EUNAVAILABLE {
			t.Fatalf("got %v, want unavailable", err)
		}
		// Another flush in between: the retry is decided from the index
		// alone, not from the failed flush.
		if got := submit(t, in, ev("c", "z", t0, "DE", "service", 1)); got[0] != Accepted {
			t.Fatal(got)
		}
		if got := submit(t, in, a, b); !slices.Equal(got, []Status{Duplicate, Accepted}) {
			t.Fatalf("retry: %v", got)
		}
		if n := count(t, store.conn); n != 3 {
			t.Errorf("%d rows, want 3", n)
		}
	})
	t.Run("new process", func(t *testing.T) {
		store := newStore(t)
		conn := store.conn
		dir := t.TempDir()
		lost := NewIngester(lostAckStore{store}, IngesterConfig{IndexDir: dir})
		if _, err := lost.Submit(context.Background(), []Event{a}); postage.ErrorCode(err) != postage.EUNAVAILABLE {
			t.Fatalf("got %v, want unavailable", err)
		}
		lost.Close()
		in := NewIngester(store, IngesterConfig{IndexDir: dir})
		defer in.Close()
		if got := submit(t, in, a, b); !slices.Equal(got, []Status{Duplicate, Accepted}) {
			t.Fatalf("retry: %v", got)
		}
		if n := count(t, conn); n != 2 {
			t.Errorf("%d rows, want 2", n)
		}
	})
}

// TestIngestCrashBeforeIndexWrite: a process is killed (SIGKILL) after
// ClickHouse acknowledged its insert and its client got the answer, before
// the key index recorded the keys, with an earlier flush's keys still only
// in the index's memtable. The next process on the same index directory
// catches up from the watermark on disk and finds both.
func TestIngestCrashBeforeIndexWrite(t *testing.T) {
	env, store := newEnvStore(t)
	dir := t.TempDir()
	a, b, c, d := crashEvent("a"), crashEvent("b"), crashEvent("c"), crashEvent("d")
	in := NewIngester(store, IngesterConfig{IndexDir: dir})
	if got := submit(t, in, a); got[0] != Accepted {
		t.Fatal(got)
	}
	in.Close() // a is on disk, with its stamp as the watermark

	child := exec.Command(os.Args[0], "-test.run=^$")
	cluster := "" // the child builds the same store as newEnvStore
	if env.Clustered() {
		cluster = env.CHCluster.Topology.Cluster
	}
	child.Env = append(os.Environ(), crashChildEnv+"="+strings.Join([]string{env.CHAddr, env.CHDatabase, dir, cluster}, "\n"))
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		child.Process.Kill()
		child.Wait()
		t.Fatalf("child: %v", err)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	if want := "b accepted, c accepted\n"; line != want {
		t.Fatalf("child said %q, want %q", line, want)
	}

	in = NewIngester(store, IngesterConfig{IndexDir: dir})
	defer in.Close()
	if got := submit(t, in, a, b, c, d); !slices.Equal(got, []Status{Duplicate, Duplicate, Duplicate, Accepted}) {
		t.Fatalf("after the crash: %v, want duplicate, duplicate, duplicate, accepted", got)
	}
	var rows uint64
	if err := store.conn.QueryRow(context.Background(), "SELECT count() FROM events").Scan(&rows); err != nil || rows != 4 {
		t.Errorf("%d rows (%v), want 4", rows, err)
	}
}

// crashChildEnv makes the test binary run crashChild instead of the tests.
const crashChildEnv = "METERING_TEST_CRASH_CHILD"

func crashEvent(id string) Event {
	return ev("c", id, time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC), "DE", "service", 1)
}

// crashChild is TestIngestCrashBeforeIndexWrite's process to kill: on the
// index directory, it ingests c (recorded in the memtable only), then b,
// and stops for good between b's acknowledgement and its index write,
// after telling the parent both answers.
func crashChild(arg string) {
	fail := func(err error) { fmt.Fprintln(os.Stderr, "crash child:", err); os.Exit(2) }
	p := strings.Split(arg, "\n")
	ctx := context.Background()
	var store *CHStore
	if p[3] == "" {
		conn, err := db.OpenClickHouse(ctx, db.ClickHouseOptions{Addr: p[0], Database: p[1]})
		if err != nil {
			fail(err)
		}
		store = NewCHStore(conn)
	} else { // the store of the cluster's first shard
		c, err := db.OpenClickHouseCluster(ctx, db.ClickHouseOptions{Addr: p[0], Database: p[1], Cluster: p[3]})
		if err != nil {
			fail(err)
		}
		conn, err := c.OpenShard(0, db.Quorum{Replicas: c.Topology.Shards[0].Majority()}.Settings())
		if err != nil {
			fail(err)
		}
		replicas, err := c.OpenReplicas(0)
		if err != nil {
			fail(err)
		}
		store = NewReplicatedCHStore(conn, ReplicatedOptions{Replicas: replicas})
	}
	in := NewIngester(store, IngesterConfig{IndexDir: p[2]})
	stopped := make(chan struct{})
	var flushes atomic.Int32
	in.hookBeforeIndexWrite = func() {
		if flushes.Add(1) == 2 { // b's flush
			close(stopped)
			select {}
		}
	}
	st, err := in.Submit(ctx, []Event{crashEvent("c")})
	if err != nil {
		fail(err)
	}
	st2, err := in.Submit(ctx, []Event{crashEvent("b")})
	if err != nil {
		fail(err)
	}
	<-stopped
	fmt.Printf("b %v, c %v\n", st2[0], st[0])
	select {}
}

// TestIngestIndexOfAnEmptiedStore: an index whose keys the event store no
// longer holds (the table was emptied, or the index directory belongs to
// another store) is not believed: the events are new again.
func TestIngestIndexOfAnEmptiedStore(t *testing.T) {
	store := newStore(t)
	conn := store.conn
	dir := t.TempDir()
	t0 := time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC)
	a := ev("c", "a", t0, "DE", "service", 1)
	in := NewIngester(store, IngesterConfig{IndexDir: dir})
	submit(t, in, a)
	in.Close()
	if err := conn.Exec(context.Background(), "TRUNCATE TABLE events"); err != nil {
		t.Fatal(err)
	}
	in = NewIngester(store, IngesterConfig{IndexDir: dir})
	defer in.Close()
	if got := submit(t, in, a); got[0] != Accepted {
		t.Fatalf("after the table was emptied: %v, want accepted", got[0])
	}
	if q, _ := monthTotal(t, store, "c", t0); q != 1 {
		t.Errorf("usage %d, want 1", q)
	}
}

// TestIngestAdmit: a nearly full queue (15/16 of its bytes or events) is
// reported before a request's body is read; an emptier one is not.
func TestIngestAdmit(t *testing.T) {
	bs := &blockingStore{EventStore: newStore(t), release: make(chan struct{})}
	t0 := time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC)
	var evs []Event
	for j := range 100 {
		evs = append(evs, ev("c", fmt.Sprint(j), t0, "DE", "service", 1))
	}
	in := NewIngester(bs, IngesterConfig{MaxBatch: 100, QueueEvents: 1000, QueueBytes: EventBytes(evs) * 16 / 15, MaxDelay: time.Millisecond})
	defer in.Close()
	if err := in.Admit(); err != nil {
		t.Fatalf("empty queue: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := in.Submit(context.Background(), evs); done <- err }()
	for in.pending.Load() < 100 {
		time.Sleep(time.Millisecond)
	}
	if err := in.Admit(); postage.ErrorCode(err) != postage.EOVERLOADED {
		t.Fatalf("queue at its bound: %v, want overloaded", err)
	}
	close(bs.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := in.Admit(); err != nil {
		t.Fatalf("queue emptied: %v", err)
	}
}

// slowRebuildStore holds every read of stored keys until released.
type slowRebuildStore struct {
	EventStore
	release chan struct{}
}

func (s *slowRebuildStore) StoredKeys(ctx context.Context, from, to, since time.Time, fn func([]keyindex.Entry) error) (time.Time, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
	return s.EventStore.StoredKeys(ctx, from, to, since, fn)
}

// TestIngestIndexDeleted: a deleted or damaged key index costs a rebuild
// from ClickHouse, during which ingest answers 503, never a wrong answer.
func TestIngestIndexDeleted(t *testing.T) {
	damage := func(t *testing.T, pattern string) {
		t.Helper()
		files, _ := filepath.Glob(pattern)
		if len(files) != 1 {
			t.Fatalf("%s: %v, want one file", pattern, files)
		}
		f, err := os.OpenFile(files[0], os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 8)
		at := fi.Size() / 2
		if _, err := f.ReadAt(b, at); err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] ^= 0x5a
		}
		if _, err := f.WriteAt(b, at); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name  string
		spoil func(t *testing.T, dir string)
	}{
		{"deleted", func(t *testing.T, dir string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}},
		{"run damaged", func(t *testing.T, dir string) { damage(t, filepath.Join(dir, "*.run")) }},
		{"manifest damaged", func(t *testing.T, dir string) { damage(t, filepath.Join(dir, "MANIFEST")) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := newStore(t)
			dir := filepath.Join(t.TempDir(), "index")
			t0 := time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC)
			var evs []Event
			for i := range 500 {
				evs = append(evs, ev(fmt.Sprintf("c%d", i%7), fmt.Sprint(i), t0, "DE", "service", 1))
			}
			// evs are ingested two hours before the index's watermark, out
			// of reach of a catch-up from it: only a rebuild finds them.
			var mu sync.Mutex
			now := time.Now().UTC().Truncate(time.Second).Add(-2 * time.Hour)
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			in := NewIngester(store, IngesterConfig{IndexDir: dir, Now: clock})
			submit(t, in, evs...)
			mu.Lock()
			now = now.Add(2 * time.Hour)
			mu.Unlock()
			submit(t, in, ev("c0", "later", t0, "DE", "service", 1))
			in.Close()
			c.spoil(t, dir)
			slow := &slowRebuildStore{EventStore: store, release: make(chan struct{})}
			in = NewIngester(slow, IngesterConfig{IndexDir: dir, ReadyWait: 10 * time.Millisecond, Now: clock})
			defer in.Close()
			if _, err := in.Submit(context.Background(), evs[:1]); postage.ErrorCode(err) != postage.EUNAVAILABLE {
				t.Fatalf("during the rebuild: %v, want unavailable", err)
			}
			if err := in.Ready(); err == nil {
				t.Fatal("ready during the rebuild")
			}
			close(slow.release)
			if err := in.WaitReady(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := submit(t, in, evs...)
			for i, st := range got {
				if st != Duplicate {
					t.Fatalf("event %d after the rebuild: %v, want duplicate", i, st)
				}
			}
		})
	}
}

// TestIngestLookback: a key whose event is older than the lookback counts
// as absent (an id re-used after 13 months is a new event), also after a
// rebuild; younger keys are found.
func TestIngestLookback(t *testing.T) {
	store := newStore(t)
	dir := t.TempDir()
	var mu sync.Mutex
	now := time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg := IngesterConfig{IndexDir: dir, Lookback: 30 * 24 * time.Hour, Now: clock}
	old, young := ev("c", "old", now.Add(-20*24*time.Hour), "DE", "service", 1), ev("c", "young", now, "DE", "service", 1)
	in := NewIngester(store, cfg)
	submit(t, in, old, young)
	in.Close()
	mu.Lock()
	now = now.Add(15 * 24 * time.Hour) // old is 35 days old now
	mu.Unlock()
	for _, rebuild := range []bool{false, true} {
		if rebuild {
			os.RemoveAll(dir)
		}
		in = NewIngester(store, cfg)
		if got := submit(t, in, young); got[0] != Duplicate {
			t.Errorf("rebuild %v: young: %v, want duplicate", rebuild, got[0])
		}
		in.Close()
	}
	in = NewIngester(store, cfg)
	defer in.Close()
	if got := submit(t, in, old); got[0] != Accepted {
		t.Errorf("past the lookback: %v, want accepted (a new event)", got[0])
	}
}

// TestIngestIndexOwnedByOneProcess: a second ingester on the same index
// directory is never ready while the first holds it.
func TestIngestIndexOwnedByOneProcess(t *testing.T) {
	store := newStore(t)
	dir := t.TempDir()
	first := NewIngester(store, IngesterConfig{IndexDir: dir})
	defer first.Close()
	if err := first.WaitReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	second := NewIngester(store, IngesterConfig{IndexDir: dir, ReadyWait: 200 * time.Millisecond})
	defer second.Close()
	t0 := time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC)
	if _, err := second.Submit(context.Background(), []Event{ev("c", "a", t0, "DE", "service", 1)}); postage.ErrorCode(err) != postage.EUNAVAILABLE {
		t.Fatalf("second owner: %v, want unavailable", err)
	}
	if err := second.Ready(); !errors.Is(err, keyindex.ErrLocked) {
		t.Errorf("second owner not ready because %v, want the lock", err)
	}
}

// pipelineStore makes the first insert wait until the next batch's look-up
// has run, and then succeed or fail.
type pipelineStore struct {
	EventStore
	fail     bool
	inserts  atomic.Int32
	lookedUp chan struct{}
}

func (p *pipelineStore) InsertList(ctx context.Context, evs EventList) error {
	if p.inserts.Add(1) == 1 {
		<-p.lookedUp
		if p.fail {
			return fmt.Errorf("connection reset")
		}
	}
	return p.EventStore.InsertList(ctx, evs)
}

// TestIngestPipelinedBatches sends the same event in two batches whose
// look-up and insert overlap: the second is decided from the first's
// acknowledged outcome, never from its unacknowledged write.
func TestIngestPipelinedBatches(t *testing.T) {
	t0 := time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC)
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("first insert fails %v", fail), func(t *testing.T) {
			store := newStore(t)
			ps := &pipelineStore{EventStore: store, fail: fail, lookedUp: make(chan struct{})}
			in := NewIngester(ps, IngesterConfig{MaxBatch: 1})
			defer in.Close()
			var lookups atomic.Int32
			firstLook := make(chan struct{})
			in.hookLookedUp = func() {
				switch lookups.Add(1) {
				case 1:
					close(firstLook)
				case 2:
					close(ps.lookedUp)
				}
			}
			a := ev("c", "a", t0, "DE", "service", 1)
			first := make(chan error, 1)
			go func() {
				_, err := in.Submit(context.Background(), []Event{a})
				first <- err
			}()
			<-firstLook // the first batch is on its way
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
			if err := store.conn.QueryRow(context.Background(), "SELECT count() FROM events").Scan(&rows); err != nil || rows != 1 {
				t.Errorf("%d rows (%v), want 1", rows, err)
			}
		})
	}
}
