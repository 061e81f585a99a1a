// Package cache keeps answers read from the ledger (API keys, phone-number
// ids) for a short, fixed time, re-verifies them all in the background, and
// serves the last verified answer while the database is unreachable, so a
// PostgreSQL outage does not stop the meter.
package cache

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults for Options.
const (
	DefaultRefresh    = 10 * time.Second
	DefaultTimeout    = 2 * time.Second
	DefaultMaxEntries = 100_000
)

// Item is one cached answer, as handed to a bulk re-verification.
type Item[V any] struct {
	Key   string
	Value V
	// Used is when a Get last returned the answer (zero: never since it
	// was loaded).
	Used time.Time
}

// Options configure a Cache.
type Options[V any] struct {
	// Refresh is how long an answer is served without asking the database
	// again: Run re-verifies every answer this often, and Get re-loads an
	// answer older than this. It bounds how long a change in the database
	// (a revoked key, a moved phone number) goes unseen while the database
	// answers. 0 means DefaultRefresh.
	Refresh time.Duration
	// Timeout bounds one load or re-verification, so a stalled database
	// delays a request by at most this much before the last answer is
	// served. 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxEntries bounds memory; when full, an arbitrary entry makes room.
	// 0 means DefaultMaxEntries.
	MaxEntries int
	// Verify re-reads the given answers in bulk and returns the current
	// value of each that still holds; an answer missing from the result is
	// dropped (for example a revoked key).
	Verify func(ctx context.Context, items []Item[V]) (map[string]V, error)
	// IsOutage tells a database outage (serve the last answer) from any
	// other error (drop the answer, return the error).
	IsOutage func(error) bool
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Log receives failed background re-verifications (nil: discarded).
	Log *slog.Logger
}

// Cache maps string keys to verified answers. It is safe for concurrent
// use. The zero value is not usable: call New.
type Cache[V any] struct {
	opt    Options[V]
	flight singleflight.Group

	mu sync.Mutex
	m  map[string]*entry[V]

	stale int64 // answers served from a stale entry because the database was out
}

type entry[V any] struct {
	v       V
	checked time.Time // when the database last confirmed v, or was asked and did not answer
	used    time.Time // when Get last returned v
}

// New returns an empty cache.
func New[V any](opt Options[V]) *Cache[V] {
	if opt.Refresh <= 0 {
		opt.Refresh = DefaultRefresh
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.MaxEntries <= 0 {
		opt.MaxEntries = DefaultMaxEntries
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	return &Cache[V]{opt: opt, m: map[string]*entry[V]{}}
}

// Refresh returns the refresh interval in use.
func (c *Cache[V]) Refresh() time.Duration { return c.opt.Refresh }

// Get returns the answer for key. An answer checked less than Refresh ago
// is served as it is; otherwise load is called (once for all concurrent
// callers of the same key, bounded by Timeout) and:
//   - its answer is cached and returned;
//   - on an outage (IsOutage), the last answer is served if there is one
//     (and the database is not asked again for this key before Refresh has
//     passed), else the error is returned;
//   - on any other error the answer is dropped and the error returned (so
//     a refusal, such as a revoked key, is never cached).
func (c *Cache[V]) Get(ctx context.Context, key string, load func(context.Context) (V, error)) (V, error) {
	now := c.opt.Now()
	c.mu.Lock()
	if e, ok := c.m[key]; ok && now.Sub(e.checked) < c.opt.Refresh {
		e.used = now
		v := e.v
		c.mu.Unlock()
		return v, nil
	}
	c.mu.Unlock()
	r, err, _ := c.flight.Do(key, func() (any, error) {
		// The load outlives a caller that leaves: the others share it.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opt.Timeout)
		defer cancel()
		v, err := load(lctx)
		now := c.opt.Now()
		c.mu.Lock()
		defer c.mu.Unlock()
		switch {
		case err == nil:
			c.put(key, &entry[V]{v: v, checked: now, used: now})
			return v, nil
		case c.opt.IsOutage != nil && c.opt.IsOutage(err):
			if e, ok := c.m[key]; ok {
				e.checked, e.used = now, now
				c.stale++
				return e.v, nil
			}
			return nil, err
		default:
			delete(c.m, key)
			return nil, err
		}
	})
	if err != nil {
		var zero V
		return zero, err
	}
	return r.(V), nil
}

// put stores e under key, making room first when full. c.mu is held.
func (c *Cache[V]) put(key string, e *entry[V]) {
	if _, ok := c.m[key]; !ok && len(c.m) >= c.opt.MaxEntries {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[key] = e
}

// Drop removes every answer for which match is true (for example the
// entries of a key revoked through this process, so the revocation takes
// effect here at once).
func (c *Cache[V]) Drop(match func(V) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if match(e.v) {
			delete(c.m, k)
		}
	}
}

// VerifyAll re-verifies every cached answer now with one call of Verify:
// answers that still hold are renewed, the others dropped. On an outage
// every answer is kept (and marked as checked, so requests do not each wait
// for the database before Refresh has passed) and the error returned.
func (c *Cache[V]) VerifyAll(ctx context.Context) error {
	c.mu.Lock()
	items := make([]Item[V], 0, len(c.m))
	for k, e := range c.m {
		items = append(items, Item[V]{Key: k, Value: e.v, Used: e.used})
	}
	c.mu.Unlock()
	if len(items) == 0 || c.opt.Verify == nil {
		return nil
	}
	vctx, cancel := context.WithTimeout(ctx, c.opt.Timeout)
	defer cancel()
	got, err := c.opt.Verify(vctx, items)
	now := c.opt.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if c.opt.IsOutage != nil && c.opt.IsOutage(err) {
			for _, it := range items {
				if e, ok := c.m[it.Key]; ok {
					e.checked = now
				}
			}
		}
		return err
	}
	for _, it := range items {
		e, ok := c.m[it.Key]
		if !ok {
			continue
		}
		if v, ok := got[it.Key]; ok {
			e.v, e.checked = v, now
		} else {
			delete(c.m, it.Key)
		}
	}
	return nil
}

// Run calls VerifyAll every Refresh until ctx ends.
func (c *Cache[V]) Run(ctx context.Context) {
	t := time.NewTicker(c.opt.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.VerifyAll(ctx); err != nil && ctx.Err() == nil {
				c.opt.Log.Warn("cache: re-verification failed; serving the last verified answers", "err", err)
			}
		}
	}
}

// Stats are a cache's counters.
type Stats struct {
	Entries int
	// Stale counts answers served from a stale entry because the database
	// did not answer.
	Stale int64
}

// Stats returns the cache's counters.
func (c *Cache[V]) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Entries: len(c.m), Stale: c.stale}
}
