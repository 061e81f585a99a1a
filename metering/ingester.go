package metering

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"postage"
)

// IngesterConfig tunes group commit.
type IngesterConfig struct {
	MaxBatch     int           // flush when this many events wait (default 20,000)
	MaxDelay     time.Duration // flush at the latest this long after the first waiting event (default 5ms)
	QueueEvents  int           // most events waiting; more answer EOVERLOADED (default 200,000)
	FlushTimeout time.Duration // bound on one flush's look-up plus insert (default 30s)
	Now          func() time.Time
	Metrics      *Metrics
	Log          *slog.Logger
}

func (c *IngesterConfig) defaults() {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 20000
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = 5 * time.Millisecond
	}
	if c.QueueEvents <= 0 {
		c.QueueEvents = 200000
	}
	if c.QueueEvents < c.MaxBatch {
		c.QueueEvents = c.MaxBatch
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

// Ingester stores validated events exactly once with group commit.
//
// Concurrent Submit calls queue their events; one flusher goroutine takes
// everything waiting (up to MaxBatch, waiting at most MaxDelay for more),
// deduplicates within the batch, looks up which (customer, id) pairs are
// already stored, inserts the rest in one insert, and only after the
// database acknowledged it answers every request of the batch. Flushes run
// one after another, so a look-up always sees every earlier flush of this
// process. Nothing is remembered between flushes: an id is never claimed
// before its write is acknowledged.
type Ingester struct {
	store EventStore
	cfg   IngesterConfig

	queue   chan *submission
	pending atomic.Int64 // events queued, not yet flushed
	mu      sync.RWMutex // guards closed against concurrent Submit
	closed  bool
	done    chan struct{}
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
	var batch []*submission
	var carry *submission
	for {
		batch = batch[:0]
		n := 0
		first := carry
		carry = nil
		if first == nil {
			s, ok := <-in.queue
			if !ok {
				return
			}
			first = s
		}
		batch = append(batch, first)
		n += len(first.events)
		deadline := time.NewTimer(in.cfg.MaxDelay)
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
			case <-deadline.C:
				break collect
			}
		}
		deadline.Stop()
		in.flush(batch, n)
		in.pending.Add(-int64(n))
		in.gauge()
	}
}

// flush decides and stores one batch, then answers its submissions.
func (in *Ingester) flush(batch []*submission, n int) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), in.cfg.FlushTimeout)
	defer cancel()

	first := make(map[Key]ref, n)
	keys := make([]Key, 0, n)
	for si, s := range batch {
		s.status = make([]Status, len(s.events))
		for i := range s.events {
			e := &s.events[i]
			k := e.Key()
			if r, ok := first[k]; ok {
				if batch[r.sub].events[r.idx].PayloadHash == e.PayloadHash {
					s.status[i] = Duplicate
				} else {
					s.status[i] = Conflict
				}
				continue
			}
			first[k] = ref{si, i}
			keys = append(keys, k)
		}
	}
	err := in.storeBatch(ctx, batch, first, keys)
	if m := in.cfg.Metrics; m != nil {
		m.FlushSeconds.Observe(time.Since(start).Seconds())
		m.BatchSize.Observe(float64(n))
		if err != nil {
			m.FlushErrors.Inc()
		}
	}
	if err != nil {
		in.cfg.Log.Error("ingest flush failed", "events", n, "err", err)
		perr := err
		if postage.ErrorCode(err) == postage.EINTERNAL {
			perr = postage.Errorf(postage.EUNAVAILABLE, "event store unavailable, retry later")
		}
		for _, s := range batch {
			s.status, s.err = nil, perr
			close(s.done)
		}
		return
	}
	for _, s := range batch {
		close(s.done)
	}
}

// storeBatch looks up the batch's first occurrences, marks the stored ones and
// inserts the others.
func (in *Ingester) storeBatch(ctx context.Context, batch []*submission, first map[Key]ref, keys []Key) error {
	existing, err := in.store.Existing(ctx, keys)
	if err != nil {
		return err
	}
	now := in.cfg.Now().UTC().Truncate(time.Second)
	fresh := make([]Event, 0, len(keys)-len(existing))
	for _, k := range keys {
		r := first[k]
		s := batch[r.sub]
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
	}
	if err := in.store.Insert(ctx, fresh); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return postage.Errorf(postage.EUNAVAILABLE, "event store too slow, retry later")
		}
		return err
	}
	return nil
}
