package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	errDown    = errors.New("database down")
	errRefused = errors.New("refused")
)

// testCache is a cache with a settable clock whose answers come from db;
// down makes every load and verification fail as an outage.
type testCache struct {
	*Cache[string]
	now   time.Time
	db    map[string]string
	down  bool
	loads atomic.Int64
	mu    sync.Mutex
}

func newTestCache(t *testing.T) *testCache {
	t.Helper()
	tc := &testCache{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), db: map[string]string{"k": "v1"}}
	tc.Cache = New(Options[string]{
		Refresh:    10 * time.Second,
		MaxEntries: 3,
		Now:        func() time.Time { tc.mu.Lock(); defer tc.mu.Unlock(); return tc.now },
		IsOutage:   func(err error) bool { return errors.Is(err, errDown) },
		Verify: func(ctx context.Context, items []Item[string]) (map[string]string, error) {
			tc.mu.Lock()
			defer tc.mu.Unlock()
			if tc.down {
				return nil, errDown
			}
			out := map[string]string{}
			for _, it := range items {
				if v, ok := tc.db[it.Key]; ok {
					out[it.Key] = v
				}
			}
			return out, nil
		},
	})
	return tc
}

func (tc *testCache) get(key string) (string, error) {
	return tc.Get(context.Background(), key, func(context.Context) (string, error) {
		tc.loads.Add(1)
		tc.mu.Lock()
		defer tc.mu.Unlock()
		if tc.down {
			return "", errDown
		}
		v, ok := tc.db[key]
		if !ok {
			return "", errRefused
		}
		return v, nil
	})
}

func (tc *testCache) set(f func()) { tc.mu.Lock(); f(); tc.mu.Unlock() }

func TestCacheServesFreshThenReloads(t *testing.T) {
	tc := newTestCache(t)
	for range 3 {
		if v, err := tc.get("k"); v != "v1" || err != nil {
			t.Fatalf("got %q %v", v, err)
		}
	}
	if n := tc.loads.Load(); n != 1 {
		t.Errorf("%d loads for one fresh answer, want 1", n)
	}
	tc.set(func() { tc.db["k"] = "v2"; tc.now = tc.now.Add(10*time.Second - time.Nanosecond) })
	if v, _ := tc.get("k"); v != "v1" {
		t.Errorf("within refresh: %q, want the cached v1", v)
	}
	tc.set(func() { tc.now = tc.now.Add(time.Nanosecond) })
	if v, _ := tc.get("k"); v != "v2" {
		t.Errorf("after refresh: %q, want v2", v)
	}
	// A refusal is returned and never cached.
	tc.set(func() { delete(tc.db, "k"); tc.now = tc.now.Add(10 * time.Second) })
	for range 2 {
		if _, err := tc.get("k"); !errors.Is(err, errRefused) {
			t.Errorf("refused key: %v", err)
		}
	}
}

func TestCacheServesStaleDuringOutage(t *testing.T) {
	tc := newTestCache(t)
	if _, err := tc.get("k"); err != nil {
		t.Fatal(err)
	}
	tc.set(func() { tc.down = true; tc.now = tc.now.Add(time.Hour) })
	loads := tc.loads.Load()
	for range 3 {
		if v, err := tc.get("k"); v != "v1" || err != nil {
			t.Errorf("during the outage: %q %v, want the last answer", v, err)
		}
	}
	if n := tc.loads.Load() - loads; n != 1 {
		t.Errorf("%d loads during the outage within one refresh, want 1", n)
	}
	if _, err := tc.get("never-seen"); !errors.Is(err, errDown) {
		t.Errorf("unknown key during the outage: %v, want the outage", err)
	}
	if st := tc.Stats(); st.Stale != 1 || st.Entries != 1 {
		t.Errorf("stats %+v", st)
	}
	if err := tc.VerifyAll(context.Background()); !errors.Is(err, errDown) {
		t.Errorf("verify during the outage: %v", err)
	}
	if v, _ := tc.get("k"); v != "v1" {
		t.Errorf("after a failed verification: %q", v)
	}
}

func TestCacheVerifyAllDropsWhatNoLongerHolds(t *testing.T) {
	tc := newTestCache(t)
	tc.set(func() { tc.db["a"], tc.db["b"] = "A", "B" })
	for _, k := range []string{"k", "a", "b"} {
		if _, err := tc.get(k); err != nil {
			t.Fatal(err)
		}
	}
	tc.set(func() { delete(tc.db, "a"); tc.db["b"] = "B2" })
	if err := tc.VerifyAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	// "a" is gone: even an outage cannot bring it back.
	tc.set(func() { tc.down = true; tc.now = tc.now.Add(time.Minute) })
	if _, err := tc.get("a"); !errors.Is(err, errDown) {
		t.Errorf("dropped key during an outage: %v", err)
	}
	if v, _ := tc.get("b"); v != "B2" {
		t.Errorf("renewed key: %q", v)
	}
	tc.Drop(func(v string) bool { return v == "B2" })
	if _, err := tc.get("b"); !errors.Is(err, errDown) {
		t.Errorf("dropped by Drop: %v", err)
	}
}

func TestCacheBounded(t *testing.T) {
	tc := newTestCache(t)
	for i := range 10 {
		k := string(rune('a' + i))
		tc.set(func() { tc.db[k] = k })
		if _, err := tc.get(k); err != nil {
			t.Fatal(err)
		}
	}
	if n := tc.Stats().Entries; n != 3 {
		t.Errorf("%d entries, want at most 3", n)
	}
}
