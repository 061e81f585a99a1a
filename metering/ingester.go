package metering

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"postage"
)

// IngesterConfig tunes group commit.
type IngesterConfig struct {
	MaxBatch     int           // flush when this many events wait (default 40,000)
	MaxDelay     time.Duration // flush at the latest this long after the first waiting event (default 5ms)
	IdleGap      time.Duration // flush early when no request arrived for this long (default MaxDelay/10, at least 500µs)
	QueueEvents  int           // most events waiting; more answer EOVERLOADED (default 200,000)
	FlushTimeout time.Duration // bound on one flush's look-up plus insert (default 30s)
	// Lookback bounds the id look-up to events newer than Now minus
	// Lookback (default DefaultLookback; negative: all history), so its
	// cost stays bounded as history grows. It must be longer than the
	// ingest horizon: a CloudEvent re-send carries its original time, but a
	// WhatsApp read receipt can arrive weeks after the sent status it
	// duplicates.
	Lookback time.Duration
	Now      func() time.Time
	Metrics  *Metrics
	Log      *slog.Logger
}

func (c *IngesterConfig) defaults() {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 40000
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = 5 * time.Millisecond
	}
	if c.IdleGap <= 0 {
		c.IdleGap = max(c.MaxDelay/10, 500*time.Microsecond)
	}
	if c.QueueEvents <= 0 {
		c.QueueEvents = 200000
	}
	if c.QueueEvents < c.MaxBatch {
		c.QueueEvents = c.MaxBatch
	}
	if c.Lookback == 0 {
		c.Lookback = DefaultLookback
	}
	if c.FlushTimeout <= 0 {
		c.FlushTimeout = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// DefaultLookback is how far back the id look-up searches: 13 months of
// monthly partitions. An id is unique per customer within it; an id re-used
// after that is a new event.
const DefaultLookback = 400 * 24 * time.Hour

// Ingester stores validated events exactly once with group commit.
//
// Concurrent Submit calls queue their events; one flusher goroutine takes
// everything waiting (up to MaxBatch, waiting at most MaxDelay for more),
// deduplicates within the batch, looks up which (customer, id) pairs are
// already stored, inserts the rest in one insert, and only after the
// database acknowledged it answers every request of the batch. Inserts run
// one after another; the next batch's look-up overlaps the current insert,
// and the keys of the batch being inserted are decided only once its insert
// is acknowledged (or has failed), so a decision always reflects every
// earlier flush of this process. Nothing is remembered once a flush is
// answered: an id is never claimed before its write is acknowledged.
type Ingester struct {
	store EventStore
	cfg   IngesterConfig

	queue   chan *submission
	pending atomic.Int64 // events queued, not yet flushed
	mu      sync.RWMutex // guards closed against concurrent Submit
	closed  bool
	done    chan struct{}

	// Buffers the flusher re-uses from one flush to the next, so that a
	// flush of 40,000 events does not allocate its working set anew: the
	// map of first occurrences and the key list live only while a flush
	// decides; the events to insert live until that flush's insert
	// returns, which is before the next flush decides (inserts are one at a
	// time, and a flush waits for the previous one's outcome first).
	seen  map[Key]ref
	keys  []Key
	refs  []ref
	fresh []Event
}

// ref locates an event in a batch: submission, then event.
type ref struct{ sub, idx int }

type submission struct {
	events []Event
	status []Status
	err    error
	done   chan struct{}
}

// NewIngester starts an ingester writing to store. Close stops it.
func NewIngester(store EventStore, cfg IngesterConfig) *Ingester {
	cfg.defaults()
	in := &Ingester{
		store: store,
		cfg:   cfg,
		queue: make(chan *submission, min(cfg.QueueEvents, 1<<16)),
		done:  make(chan struct{}),
	}
	go in.run()
	return in
}

// Submit stores events and returns one status per event: Accepted,
// Duplicate or Conflict. It returns when the flush holding the events is
// acknowledged by the database (or failed). Errors: EOVERLOADED when the
// queue is full (retry after a pause), EUNAVAILABLE when the database could
// not be reached (nothing of the request is acknowledged; retrying is safe),
// or the context's error (the events may or may not have been stored;
// retrying is safe: they come back as duplicates).
func (in *Ingester) Submit(ctx context.Context, events []Event) ([]Status, error) {
	if len(events) == 0 {
		return nil, nil
	}
	n := int64(len(events))
	if int(n) > in.cfg.QueueEvents {
		return nil, postage.Errorf(postage.ETOOLARGE, "%d events are more than the ingest queue holds (%d)", n, in.cfg.QueueEvents)
	}
	s := &submission{events: events, done: make(chan struct{})}
	in.mu.RLock()
	if in.closed {
		in.mu.RUnlock()
		return nil, postage.Errorf(postage.EUNAVAILABLE, "shutting down")
	}
	if in.pending.Add(n) > int64(in.cfg.QueueEvents) {
		in.pending.Add(-n)
		in.mu.RUnlock()
		in.overloaded()
		return nil, postage.Errorf(postage.EOVERLOADED, "ingest queue full, retry later")
	}
	select {
	case in.queue <- s:
	default:
		in.pending.Add(-n)
		in.mu.RUnlock()
		in.overloaded()
		return nil, postage.Errorf(postage.EOVERLOADED, "ingest queue full, retry later")
	}
	in.mu.RUnlock()
	in.gauge()
	select {
	case <-s.done:
		return s.status, s.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (in *Ingester) overloaded() {
	if in.cfg.Metrics != nil {
		in.cfg.Metrics.Overloaded.Inc()
	}
}

func (in *Ingester) gauge() {
	if in.cfg.Metrics != nil {
		in.cfg.Metrics.QueueDepth.Set(float64(in.pending.Load()))
	}
}

// Close stops taking events, flushes what is queued and waits for it.
func (in *Ingester) Close() {
	in.mu.Lock()
	if !in.closed {
		in.closed = true
		close(in.queue)
	}
	in.mu.Unlock()
	<-in.done
}

func (in *Ingester) run() {
	defer close(in.done)
	var prev *flushJob // the batch being inserted, if any
	var carry *submission
	for {
		var batch []*submission
		n := 0
		first := carry
		carry = nil
		if first == nil {
			s, ok := <-in.queue
			if !ok {
				break
			}
			first = s
		}
		batch = append(batch, first)
		n += len(first.events)
		// Group commit: keep taking requests until the batch is full, the
		// first request has waited MaxDelay, or requests stop arriving for
		// IdleGap (the concurrent senders of this round are all in).
		deadline := time.NewTimer(in.cfg.MaxDelay)
		idle := time.NewTimer(in.cfg.IdleGap)
	collect:
		for n < in.cfg.MaxBatch {
			select {
			case s, ok := <-in.queue:
				if !ok {
					break collect
				}
				if n+len(s.events) > in.cfg.MaxBatch {
					carry = s
					break collect
				}
				batch = append(batch, s)
				n += len(s.events)
				idle.Reset(in.cfg.IdleGap) // Go ≥ 1.23: no stale tick after Reset
			case <-idle.C:
				break collect
			case <-deadline.C:
				break collect
			}
		}
		deadline.Stop()
		idle.Stop()
		prev = in.flush(batch, n, prev)
	}
	if prev != nil {
		<-prev.done
	}
}

// flushJob is one batch on its way to the database.
type flushJob struct {
	batch []*submission
	n     int
	start time.Time
	first map[Key]ref    // first occurrence of each key in the batch
	keys  []Key          // the batch's distinct keys, in order
	refs  []ref          // where each of keys occurs first
	fresh map[Key]uint64 // keys this job inserts, with their payload hashes
	err   error          // set before done is closed
	done  chan struct{}
}

// flush decides and stores one batch, then answers its submissions. It is
// pipelined with the previous batch: this batch's id look-up runs while
// prev is being inserted, and this batch's insert starts only after prev's
// was acknowledged. Keys that prev is inserting are decided after prev's
// outcome is known (stored: duplicate or conflict; failed: looked up
// again), so nothing is decided on an unacknowledged write. It returns the
// job, whose insert may still be running.
func (in *Ingester) flush(batch []*submission, n int, prev *flushJob) *flushJob {
	job := &flushJob{batch: batch, n: n, start: time.Now(), done: make(chan struct{})}
	if in.seen == nil {
		in.seen = make(map[Key]ref, n)
	}
	clear(in.seen)
	job.first = in.seen
	job.keys = in.keys[:0]
	job.refs = in.refs[:0]
	for si, s := range batch {
		s.status = make([]Status, len(s.events))
		for i := range s.events {
			e := &s.events[i]
			k := e.Key()
			if r, ok := job.first[k]; ok {
				if batch[r.sub].events[r.idx].PayloadHash == e.PayloadHash {
					s.status[i] = Duplicate
				} else {
					s.status[i] = Conflict
				}
				continue
			}
			job.first[k] = ref{si, i}
			job.keys = append(job.keys, k)
			job.refs = append(job.refs, ref{si, i})
		}
	}
	in.keys, in.refs = job.keys, job.refs
	ctx, cancel := context.WithTimeout(context.Background(), in.cfg.FlushTimeout)
	// Look up everything except what prev is inserting, concurrently with
	// prev's insert.
	var later []Key
	lookup := job.keys
	if prev != nil {
		lookup = make([]Key, 0, len(job.keys))
		for _, k := range job.keys {
			if _, ok := prev.fresh[k]; ok {
				later = append(later, k)
			} else {
				lookup = append(lookup, k)
			}
		}
	}
	var since time.Time
	if in.cfg.Lookback > 0 {
		since = in.cfg.Now().Add(-in.cfg.Lookback)
	}
	lookStart := time.Now()
	existing, err := in.store.Existing(ctx, lookup, since)
	in.observe(func(m *Metrics) prometheus.Observer { return m.LookupSeconds }, lookStart)
	if prev != nil {
		<-prev.done
		if err == nil && len(later) > 0 {
			if prev.err == nil {
				for _, k := range later {
					existing[k] = prev.fresh[k]
				}
			} else {
				var again map[Key]uint64
				if again, err = in.store.Existing(ctx, later, since); err == nil {
					for k, h := range again {
						existing[k] = h
					}
				}
			}
		}
	}
	if err != nil {
		cancel()
		in.finish(job, err)
		return job
	}
	fresh := in.decide(job, existing)
	go func() {
		defer cancel()
		insStart := time.Now()
		err := in.store.Insert(ctx, fresh)
		in.observe(func(m *Metrics) prometheus.Observer { return m.InsertSeconds }, insStart)
		if errors.Is(err, context.DeadlineExceeded) {
			err = postage.Errorf(postage.EUNAVAILABLE, "event store too slow, retry later")
		}
		in.finish(job, err)
	}()
	return job
}

// observe records the time since start in one of the metrics, if any.
func (in *Ingester) observe(h func(*Metrics) prometheus.Observer, start time.Time) {
	if m := in.cfg.Metrics; m != nil {
		h(m).Observe(time.Since(start).Seconds())
	}
}

// decide marks the first occurrences stored already as duplicate or
// conflict and the others accepted, and returns the events to insert.
func (in *Ingester) decide(job *flushJob, existing map[Key]uint64) []Event {
	now := in.cfg.Now().UTC().Truncate(time.Second)
	// in.fresh is free: the previous insert has returned (see Ingester).
	fresh := in.fresh[:0]
	// existing may hold keys not asked for (see CHStore.Existing).
	job.fresh = make(map[Key]uint64, max(0, len(job.keys)-len(existing)))
	for i, k := range job.keys {
		r := job.refs[i]
		s := job.batch[r.sub]
		e := &s.events[r.idx]
		if h, ok := existing[k]; ok {
			if h == e.PayloadHash {
				s.status[r.idx] = Duplicate
			} else {
				s.status[r.idx] = Conflict
			}
			continue
		}
		s.status[r.idx] = Accepted
		e.IngestedAt = now
		fresh = append(fresh, *e)
		job.fresh[k] = e.PayloadHash
	}
	in.fresh = fresh
	return fresh
}

// finish records the job's outcome, answers its submissions and releases
// its queue space.
func (in *Ingester) finish(job *flushJob, err error) {
	if m := in.cfg.Metrics; m != nil {
		m.FlushSeconds.Observe(time.Since(job.start).Seconds())
		m.BatchSize.Observe(float64(job.n))
		if err != nil {
			m.FlushErrors.Inc()
		}
	}
	if err != nil {
		in.cfg.Log.Error("ingest flush failed", "events", job.n, "err", err)
		if postage.ErrorCode(err) == postage.EINTERNAL {
			err = postage.Errorf(postage.EUNAVAILABLE, "event store unavailable, retry later")
		}
	}
	job.err = err
	for _, s := range job.batch {
		if err != nil {
			s.status, s.err = nil, err
		}
		close(s.done)
	}
	in.pending.Add(-int64(job.n))
	in.gauge()
	close(job.done)
}
