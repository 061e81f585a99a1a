package keyindex

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// crash stops the store as a killed process would: nothing is synced, the
// memtables are lost, the lock is released.
func (s *Store) crash() {
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
	s.stopped.Store(true)
	close(s.stop)
	s.wg.Wait()
	s.closeRuns()
	s.release()
}

func open(t *testing.T, dir string, o Options) *Store {
	t.Helper()
	if o.FilterBytes == 0 {
		o.FilterBytes = 1 << 20
	}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func entries(rng *rand.Rand, n int, t uint32) []Entry {
	out := make([]Entry, n)
	for i := range out {
		out[i] = Entry{FP: Fingerprint{rng.Uint64(), rng.Uint64()}, Value: Value{Hash: rng.Uint64(), Time: t}}
	}
	return out
}

// lookup returns what the store holds for each entry's fingerprint.
func lookup(t *testing.T, s *Store, es []Entry) map[int]Value {
	t.Helper()
	fps := make([]Fingerprint, len(es))
	for i, e := range es {
		fps[i] = e.FP
	}
	got := map[int]Value{}
	if err := s.Lookup(fps, func(i int, v Value) { got[i] = v }); err != nil {
		t.Fatal(err)
	}
	return got
}

func wantAll(t *testing.T, s *Store, es []Entry, what string) {
	t.Helper()
	got := lookup(t, s, es)
	for i, e := range es {
		if v, ok := got[i]; !ok || v != e.Value {
			t.Fatalf("%s: entry %d: got %+v (found %v), want %+v", what, i, v, ok, e.Value)
		}
	}
}

func wantNone(t *testing.T, s *Store, es []Entry, what string) {
	t.Helper()
	if got := lookup(t, s, es); len(got) > 0 {
		t.Fatalf("%s: %d absent fingerprints found", what, len(got))
	}
}

var now = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return now }

func TestAddLookup(t *testing.T) {
	s := open(t, t.TempDir(), Options{Now: clock})
	defer s.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	es := entries(rng, 1000, uint32(now.Unix()))
	if err := s.Add(es, now); err != nil {
		t.Fatal(err)
	}
	wantAll(t, s, es, "in the memtable")
	wantNone(t, s, entries(rng, 1000, 0), "never added")
	// A later value replaces an earlier one.
	es[0].Value.Hash++
	if err := s.Add(es[:1], now); err != nil {
		t.Fatal(err)
	}
	wantAll(t, s, es, "replaced")
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	wantAll(t, s, es, "in a run")
	es[1].Value.Hash++
	if err := s.Add(es[1:2], now); err != nil {
		t.Fatal(err)
	}
	wantAll(t, s, es, "memtable over a run")
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{Now: clock})
	if !s.Watermark().IsZero() {
		t.Fatalf("new store: watermark %v", s.Watermark())
	}
	rng := rand.New(rand.NewPCG(3, 4))
	es := entries(rng, 5000, uint32(now.Unix()))
	if err := s.Add(es, now); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, Options{Now: clock})
	defer s.Close()
	if got := s.Watermark(); !got.Equal(now) {
		t.Errorf("watermark after a clean close: %v, want %v", got, now)
	}
	wantAll(t, s, es, "after reopening")
}

// TestCrashKeepsTheWatermarkHonest: after a crash the persisted watermark
// covers exactly what is on disk, so a caller that re-adds everything from
// the watermark on loses nothing.
func TestCrashKeepsTheWatermarkHonest(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{Now: clock, MaxMemtableAge: time.Hour})
	rng := rand.New(rand.NewPCG(5, 6))
	early, late := entries(rng, 300, uint32(now.Unix())), entries(rng, 300, uint32(now.Unix()))
	w1, w2 := now.Add(-time.Hour), now
	if err := s.Add(early, w1); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(late, w2); err != nil {
		t.Fatal(err)
	}
	s.crash()
	s = open(t, dir, Options{Now: clock})
	defer s.Close()
	if got := s.Watermark(); !got.Equal(w1) {
		t.Fatalf("watermark after the crash: %v, want %v", got, w1)
	}
	wantAll(t, s, early, "synced before the crash")
	wantNone(t, s, late, "added after the last sync (the caller re-adds them from the watermark)")
}

// TestOtherOwnerStartsEmpty: an index written for another source is not
// used.
func TestOtherOwnerStartsEmpty(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{Now: clock, Owner: "clickhouse://a/db1"})
	rng := rand.New(rand.NewPCG(17, 18))
	es := entries(rng, 100, uint32(now.Unix()))
	if err := s.Add(es, now); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir, Options{Now: clock, Owner: "clickhouse://a/db2"})
	defer s.Close()
	if !s.Watermark().IsZero() {
		t.Errorf("another owner's index: watermark %v, want zero", s.Watermark())
	}
	wantNone(t, s, es, "another owner's index")
}

func TestLockedByOneStore(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	if _, err := Open(dir, Options{FilterBytes: 1 << 20}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	s.Close()
	s2 := open(t, dir, Options{})
	s2.Close()
}

// TestMergesKeepEverything writes many small runs that the background
// merges combine, with lookups running all the while.
func TestMergesKeepEverything(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{Now: clock, MemtableEntries: 200, MergeWidth: 3})
	rng := rand.New(rand.NewPCG(7, 8))
	var all []Entry
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // concurrent readers see a consistent index
		defer wg.Done()
		r := rand.New(rand.NewPCG(9, 10))
		for {
			select {
			case <-stop:
				return
			default:
			}
			absent := entries(r, 100, 0)
			fps := make([]Fingerprint, len(absent))
			for i := range absent {
				fps[i] = absent[i].FP
			}
			if err := s.Lookup(fps, func(int, Value) { t.Error("absent fingerprint found") }); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 100 {
		es := entries(rng, 137, uint32(now.Unix()))
		// Some fingerprints come again with a new value: the newest wins.
		if i > 0 {
			es[0].FP = all[rng.IntN(len(all))].FP
			for j := range all {
				if all[j].FP == es[0].FP {
					all[j].Value = es[0].Value
				}
			}
		}
		if err := s.Add(es, now); err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if i == 0 || e.FP != es[0].FP {
				all = append(all, e)
			}
		}
	}
	close(stop)
	wg.Wait()
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	wantAll(t, s, all, "after merges")
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Runs != 1 || st.Keys != uint64(len(all)) {
		t.Errorf("after Compact: %d runs, %d keys, want 1 run, %d keys", st.Runs, st.Keys, len(all))
	}
	if st.Merges < 2 {
		t.Errorf("%d merges", st.Merges)
	}
	wantAll(t, s, all, "compacted")
	s.Close()
	s = open(t, dir, Options{Now: clock})
	defer s.Close()
	wantAll(t, s, all, "compacted, reopened")
	// Nothing but the live run, the manifest and the lock is left.
	files, _ := os.ReadDir(dir)
	if len(files) != 3 {
		var names []string
		for _, f := range files {
			names = append(names, f.Name())
		}
		t.Errorf("files left: %v", names)
	}
}

func TestExpiry(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	cur := now
	clk := func() time.Time { mu.Lock(); defer mu.Unlock(); return cur }
	s := open(t, dir, Options{Now: clk, Lookback: 30 * 24 * time.Hour})
	defer s.Close()
	rng := rand.New(rand.NewPCG(11, 12))
	old := entries(rng, 100, uint32(now.Add(-20*24*time.Hour).Unix()))
	fresh := entries(rng, 100, uint32(now.Unix()))
	if err := s.Add(append(append([]Entry{}, old...), fresh...), now); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	wantAll(t, s, old, "within the lookback")
	mu.Lock()
	cur = now.Add(15 * 24 * time.Hour) // old is now 35 days old
	mu.Unlock()
	wantNone(t, s, old, "past the lookback")
	wantAll(t, s, fresh, "fresh")
	if err := s.Add(entries(rng, 10, uint32(now.Unix())), now); err != nil { // a second run to merge with
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Dropped != 100 || st.Keys != 110 {
		t.Errorf("after merging: dropped %d, keys %d; want 100 dropped, 110 kept", st.Dropped, st.Keys)
	}
	wantAll(t, s, fresh, "fresh, merged")
}

func TestCorruptIndexStartsEmpty(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{Now: clock})
	rng := rand.New(rand.NewPCG(13, 14))
	es := entries(rng, 1000, uint32(now.Unix()))
	if err := s.Add(es, now); err != nil {
		t.Fatal(err)
	}
	s.Close()
	runs, _ := filepath.Glob(filepath.Join(dir, "*.run"))
	if len(runs) != 1 {
		t.Fatalf("runs: %v", runs)
	}
	f, err := os.OpenFile(runs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff, 0xfe}, headerSize+recordSize*500+20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s = open(t, dir, Options{Now: clock})
	defer s.Close()
	if !s.Watermark().IsZero() {
		t.Errorf("corrupt index: watermark %v, want zero (rebuild everything)", s.Watermark())
	}
	wantNone(t, s, es, "corrupt index")
	if left, _ := filepath.Glob(filepath.Join(dir, "*.run")); len(left) != 0 {
		t.Errorf("runs left: %v", left)
	}
}

// TestFilterGrows: the filter starts small and grows in the background as
// keys come; keys added while it grows are in the grown filter (a key
// missing from it would be answered absent: a double count).
func TestFilterGrows(t *testing.T) {
	s := open(t, t.TempDir(), Options{Now: clock, FilterBytes: 16 << 20, MemtableEntries: 1 << 16})
	defer s.Close()
	if got := s.Stats().FilterBytes; got != 1<<20 {
		t.Fatalf("empty store's filter: %d bytes, want 1 MiB", got)
	}
	rng := rand.New(rand.NewPCG(19, 20))
	var all []Entry
	for range 40 {
		es := entries(rng, 50000, uint32(now.Unix()))
		if err := s.Add(es, now); err != nil {
			t.Fatal(err)
		}
		all = append(all, es...)
	}
	for s.Stats().Grows == 0 || s.growingNow() {
		time.Sleep(10 * time.Millisecond)
	}
	st := s.Stats()
	if st.FilterBytes <= 1<<20 || st.FilterBytes > 16<<20 {
		t.Errorf("grown filter: %d bytes", st.FilterBytes)
	}
	wantAll(t, s, all, "after the filter grew")
	t.Logf("%d keys: filter %d bytes after %d grows", len(all), st.FilterBytes, st.Grows)
}

func (s *Store) growingNow() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.growing
}

func TestFalsePositiveEstimate(t *testing.T) {
	s := open(t, t.TempDir(), Options{FilterBytes: 64 << 10}) // 1,024 blocks
	defer s.Close()
	rng := rand.New(rand.NewPCG(15, 16))
	const n = 65536 // 8 bits a key
	if err := s.Add(entries(rng, n, 1<<31), now); err != nil {
		t.Fatal(err)
	}
	probe := entries(rng, 200000, 0)
	passed := 0
	for _, e := range probe {
		if s.filter.mayContain(e.FP) {
			passed++
		}
	}
	got := float64(passed) / float64(len(probe))
	est := s.Stats().FalsePositive
	if got < est*0.8 || got > est*1.2 {
		t.Errorf("measured false positive rate %.4f, estimate %.4f", got, est)
	}
	t.Logf("8 bits a key: false positives %.2f%% (estimate %.2f%%)", got*100, est*100)
}
