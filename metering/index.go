package metering

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"postage"
	"postage/metering/keyindex"
)

// KeyIndex remembers the keys of the stored events of one shard of the
// event store: what the Ingester asks, instead of the event store, whether
// a key is new. It is derived state: the Ingester adds keys only after
// their insert was acknowledged and rebuilds whatever the index lacks from
// the event store (see Ingester). One process owns an index at a time.
// The implementation is *keyindex.Store, one directory per shard.
type KeyIndex interface {
	// Lookup calls found for every fingerprint the index holds (and that
	// has not expired), with its position in fps.
	Lookup(fps []keyindex.Fingerprint, found func(i int, v keyindex.Value)) error
	// Add records entries and raises the watermark: every stored event
	// ingested before it has been added by now.
	Add(entries []keyindex.Entry, watermark time.Time) error
	// Watermark is the time before which every stored event's key is in
	// the index on disk (zero: none is).
	Watermark() time.Time
	// Compact merges the index's files into one.
	Compact() error
	Close() error
}

var _ KeyIndex = (*keyindex.Store)(nil)

type insertIDKey struct{}

// WithInsertID returns a context that names the insert made with it (an
// EventStore turns it into the query's id).
func WithInsertID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, insertIDKey{}, id)
}

func insertID(ctx context.Context) string {
	id, _ := ctx.Value(insertIDKey{}).(string)
	return id
}

// catchUp is a catch-up the flusher owes the index, done before it decides
// anything else.
type catchUp struct {
	// At start: wait for every insert of ours that is running (all), then
	// read back everything ingested since from.
	from time.Time
	all  bool
	// After failed flushes: wait for their inserts (ids), then read back
	// what they may have stored: every row of a flush carries exactly its
	// stamp, so the read is the rows of those seconds.
	stamps []time.Time
	ids    []string
}

// needCatchUp notes that the index may lack events ingested at stamp (a
// failed insert named id that may still land, or a failed index write).
func (in *Ingester) needCatchUp(stamp time.Time, id string) {
	in.catchMu.Lock()
	defer in.catchMu.Unlock()
	if in.catch == nil {
		in.catch = &catchUp{}
	}
	if !slices.ContainsFunc(in.catch.stamps, stamp.Equal) {
		in.catch.stamps = append(in.catch.stamps, stamp)
	}
	if id != "" {
		in.catch.ids = append(in.catch.ids, id)
	}
}

func (in *Ingester) pendingCatchUp() *catchUp {
	in.catchMu.Lock()
	defer in.catchMu.Unlock()
	return in.catch
}

// catchUp does the pending catch-up: it waits until the inserts that may
// still land have ended, then adds to the index the stored events it
// names. On success nothing is pending.
func (in *Ingester) catchUp(ctx context.Context) error {
	c := in.pendingCatchUp()
	if c == nil {
		return nil
	}
	start := time.Now()
	if err := in.waitInserts(ctx, c); err != nil {
		return err
	}
	var latest time.Time
	if !c.from.IsZero() {
		l, err := in.readBack(ctx, c.from)
		if err != nil {
			return err
		}
		latest = l
	}
	for _, st := range c.stamps {
		if _, err := in.store.StoredKeys(ctx, st, st.Add(time.Second), in.since(), func(b []keyindex.Entry) error {
			return in.index.Add(b, st)
		}); err != nil {
			return unavailable("read stored keys back into the key index", err)
		}
	}
	in.cfg.Log.Info("key index caught up with the event store", "from", c.from, "flushes", len(c.stamps), "took", time.Since(start))
	if latest.After(in.lastStamp) {
		in.lastStamp = latest
	}
	in.catchMu.Lock()
	if in.catch == c {
		in.catch = nil
	}
	in.catchMu.Unlock()
	return nil
}

// since is the oldest event time the index keeps (zero: any).
func (in *Ingester) since() time.Time {
	if in.cfg.Lookback > 0 {
		return in.cfg.Now().Add(-in.cfg.Lookback)
	}
	return time.Time{}
}

// waitInserts waits until none of the inserts c names (with c.all: none
// of those of any process that were running when it started) is running.
func (in *Ingester) waitInserts(ctx context.Context, c *catchUp) error {
	ids := c.ids
	if c.all {
		running, err := in.store.RunningInserts(ctx, InsertQueryPrefix)
		if err != nil {
			return unavailable("list the event store's running inserts", err)
		}
		ids = append(slices.Clone(ids), running...)
	}
	for len(ids) > 0 {
		running, err := in.store.RunningInserts(ctx, InsertQueryPrefix)
		if err != nil {
			return unavailable("list the event store's running inserts", err)
		}
		ids = slices.DeleteFunc(ids, func(id string) bool { return !slices.Contains(running, id) })
		if len(ids) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return unavailable("wait for an insert to end", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// readBack adds to the index the keys of the events ingested since from,
// one day of ingestion at a time (each a range of the events table's
// sorting key), raising the watermark after each day, and returns the
// latest ingestion time it saw.
func (in *Ingester) readBack(ctx context.Context, from time.Time) (time.Time, error) {
	since := in.since()
	first, err := in.store.FirstIngested(ctx, from)
	if err != nil {
		return time.Time{}, unavailable("read the event store", err)
	}
	if first.IsZero() { // no event since from: one read from now on
		first = in.cfg.Now()
	}
	if first.After(from) { // skip the days without events
		from = first
	}
	var latest time.Time
	add := func(b []keyindex.Entry) error { return in.index.Add(b, from) }
	for day := from; ; {
		next := day.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
		open := !next.Before(in.cfg.Now()) // the last day: no end, so whatever we read is complete
		to := next
		if open {
			to = time.Time{}
		}
		l, err := in.store.StoredKeys(ctx, day, to, since, add)
		if err != nil {
			return time.Time{}, unavailable("read stored keys back into the key index", err)
		}
		if l.After(latest) {
			latest = l
		}
		wm := next
		if open {
			// Every event ingested before latest is in the index; ours to
			// come are stamped at latest or later.
			wm = latest
			for _, t := range []time.Time{in.lastStamp, from} {
				if t.After(wm) {
					wm = t
				}
			}
		}
		if err := in.index.Add(nil, wm); err != nil {
			return time.Time{}, unavailable("write the key index", err)
		}
		if open {
			return latest, nil
		}
		day = next
	}
}

// prepare opens the key index and catches it up (at first from the
// lookback, when it is empty), retrying until it succeeds or ctx ends.
func (in *Ingester) prepare(ctx context.Context) {
	defer close(in.prepDone)
	backoff := 100 * time.Millisecond
	for {
		err := in.open(ctx)
		if err == nil {
			in.setNotReady(nil)
			close(in.ready)
			return
		}
		in.setNotReady(err)
		in.cfg.Log.Error("event key index not ready", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (in *Ingester) setNotReady(err error) {
	in.notReadyMu.Lock()
	in.notReadyErr = err
	in.notReadyMu.Unlock()
}

// open opens the index (once) and does the start's catch-up: from the
// watermark minus the margin, after every insert of ours that was running
// has ended (a process that owned the index before may have left some).
func (in *Ingester) open(ctx context.Context) error {
	if in.index == nil {
		if err := in.openIndex(); err != nil {
			return err
		}
		in.setNotReady(errors.New("the key index is being caught up with the event store"))
	}
	if !in.indexChecked {
		// An index of keys that the event store no longer holds (emptied
		// since, or another store's) would answer duplicate for new
		// events: with nothing stored in the lookback, start empty.
		if !in.index.Watermark().IsZero() {
			first, err := in.store.FirstIngested(ctx, in.rebuildFrom())
			if err != nil {
				return unavailable("read the event store", err)
			}
			if first.IsZero() {
				in.cfg.Log.Warn("the event store holds no event of the key index's lookback: the index is emptied", "dir", in.indexDir)
				if err := in.resetIndex(); err != nil {
					return err
				}
			}
		}
		in.indexChecked = true
	}
	wm := in.index.Watermark()
	rebuild := wm.IsZero()
	from := wm.Add(-in.cfg.CatchUpMargin)
	if rebuild {
		from = in.rebuildFrom()
		in.setNotReady(errors.New("the key index is being rebuilt from the event store"))
	}
	if wm.After(in.lastStamp) {
		in.lastStamp = wm
	}
	in.catchMu.Lock()
	in.catch = &catchUp{from: from, all: true}
	in.catchMu.Unlock()
	if err := in.catchUp(ctx); err != nil {
		return err
	}
	if rebuild {
		if err := in.index.Compact(); err != nil {
			return fmt.Errorf("compact the rebuilt key index: %w", err)
		}
	}
	return nil
}

// rebuildFrom is where a rebuild starts reading: a key is kept for the
// lookback after its event's time, and an event is ingested at most the
// future skew (at most MaxFutureSkew) before its time.
func (in *Ingester) rebuildFrom() time.Time {
	if in.cfg.Lookback < 0 {
		return time.Unix(0, 0)
	}
	return in.cfg.Now().Add(-in.cfg.Lookback - MaxFutureSkew)
}

// openIndex opens the index directory (a temporary one if none is
// configured).
func (in *Ingester) openIndex() error {
	dir := in.cfg.IndexDir
	if dir == "" {
		if in.tmpDir == "" {
			tmp, err := os.MkdirTemp("", "postage-keyindex-")
			if err != nil {
				return fmt.Errorf("key index directory: %w", err)
			}
			in.tmpDir = tmp
		}
		dir = in.tmpDir
	}
	idx, err := keyindex.Open(dir, keyindex.Options{
		FilterBytes: in.cfg.IndexMemory, Lookback: in.cfg.Lookback, Owner: in.cfg.IndexOwner, Now: in.cfg.Now, Log: in.cfg.Log,
	})
	if err != nil {
		return fmt.Errorf("open the event key index: %w", err)
	}
	in.index, in.indexDir = idx, dir
	return nil
}

// resetIndex empties the index: closed, its directory removed, opened
// again.
func (in *Ingester) resetIndex() error {
	dir := in.indexDir
	if err := in.index.Close(); err != nil {
		in.cfg.Log.Warn("close the key index", "err", err)
	}
	in.index = nil
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove the key index: %w", err)
	}
	return in.openIndex()
}

// unavailable is an outage of the event store or the index: EUNAVAILABLE
// for the caller, with the cause in the chain for the log.
func unavailable(what string, cause error) error {
	return fmt.Errorf("%s: %w: %w", what, postage.Errorf(postage.EUNAVAILABLE, "event store unavailable, retry later"), cause)
}
