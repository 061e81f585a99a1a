package metering

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"postage"
	"postage/metering/keyindex"
)

// IngesterConfig tunes group commit and the key index.
type IngesterConfig struct {
	MaxBatch     int           // flush when this many events wait (default 40,000)
	MaxDelay     time.Duration // flush at the latest this long after the first waiting event (default 5ms)
	IdleGap      time.Duration // flush early when no request arrived for this long (default MaxDelay/10, at least 500µs)
	QueueEvents  int           // most events waiting; more answer EOVERLOADED (default 200,000)
	QueueBytes   int64         // most bytes of waiting requests' events (EventBytes); more answer EOVERLOADED (default 32 MiB)
	FlushTimeout time.Duration // bound on one flush's look-up plus insert (default 30s)
	// Lookback is how long a stored key is remembered, counted from its
	// event's time (default DefaultLookback; negative: forever). It must be
	// longer than the ingest horizon: a CloudEvent re-send carries its
	// original time, but a WhatsApp read receipt can arrive weeks after the
	// sent status it duplicates.
	Lookback time.Duration
	// IndexDir is the key index's directory, owned by this process while
	// the ingester runs. "" uses a new temporary directory, removed by
	// Close: the index is then rebuilt from the event store at every start.
	IndexDir string
	// IndexOwner names the event store the index is derived from (e.g. the
	// ClickHouse address and database): an index directory written for
	// another is rebuilt.
	IndexOwner string
	// IndexMemory is the size of the key index's Bloom filter in bytes
	// (default 48 MiB; see keyindex.Options.FilterBytes).
	IndexMemory int64
	// CatchUpMargin is how far before the index's watermark a catch-up
	// starts reading the event store (default 1 minute): slack for the
	// clocks of processes that owned the index before.
	CatchUpMargin time.Duration
	// ReadyWait is how long Submit waits for the key index to be open and
	// caught up before answering EUNAVAILABLE (default 5s).
	ReadyWait time.Duration
	Now       func() time.Time
	Metrics   *Metrics
	Log       *slog.Logger
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
	if c.QueueBytes <= 0 {
		c.QueueBytes = 32 << 20
	}
	if c.Lookback == 0 {
		c.Lookback = DefaultLookback
	}
	if c.FlushTimeout <= 0 {
		c.FlushTimeout = 30 * time.Second
	}
	if c.IndexMemory <= 0 {
		c.IndexMemory = 48 << 20
	}
	if c.CatchUpMargin <= 0 {
		c.CatchUpMargin = time.Minute
	}
	if c.ReadyWait <= 0 {
		c.ReadyWait = 5 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// DefaultLookback is how long the key index remembers a stored key: 13
// months, the reach of a WhatsApp read receipt. An id is unique per
// customer within it; an id re-used after that is a new event.
const DefaultLookback = 400 * 24 * time.Hour

// eventOverhead is what a waiting request holds per event besides the
// key's strings: the event, its result and status, its index.
const eventOverhead = int64(unsafe.Sizeof(Event{}) + unsafe.Sizeof(Result{}) + unsafe.Sizeof(Status("")) + unsafe.Sizeof(0))

// EventBytes is the memory that events hold while they wait in the ingest
// queue, as IngesterConfig.QueueBytes counts it.
func EventBytes(events []Event) int64 {
	n := int64(len(events)) * eventOverhead
	for i := range events {
		n += int64(len(events[i].CustomerID) + len(events[i].ID))
	}
	return n
}

// Ingester stores validated events exactly once with group commit.
//
// Concurrent Submit calls queue their events; one flusher goroutine takes
// everything waiting (up to MaxBatch, waiting at most MaxDelay for more)
// and, for that batch (a flush):
//
//  1. stamps it: one ingestion time for all its rows, never decreasing;
//  2. asks the key index which keys are stored (a filter probe for a new
//     key) and decides each copy of each key: duplicate or conflict against
//     the stored payload, else the first copy is accepted and later copies
//     are compared with it;
//  3. inserts the accepted events, the insert named by an id that encodes
//     the stamp (InsertQueryPrefix), and answers every request of the batch
//     once the database acknowledged it;
//  4. only then records the inserted keys in the index, with the stamp as
//     the index's watermark.
//
// The next flush's look-up overlaps the current insert; keys that the
// insert holds are decided from its outcome. After a failed insert (which
// may still land) or a failed index write, and when the index is opened,
// the flusher first waits until no insert of ours can still land, then
// re-reads from the event store every event ingested since the index's
// watermark (minus CatchUpMargin): a catch-up, before it decides anything
// else. So no key is ever claimed before its insert was acknowledged, and
// nothing acknowledged is forgotten by the index.
type Ingester struct {
	store EventStore
	cfg   IngesterConfig

	queue        chan *submission
	pending      atomic.Int64 // events queued, not yet answered
	pendingBytes atomic.Int64 // their EventBytes
	mu           sync.RWMutex // guards closed against concurrent Submit
	closed       bool
	closing      chan struct{} // closed by Close
	done         chan struct{}

	// Readiness: the index is opened and caught up once, by prepare.
	startOnce   sync.Once
	ready       chan struct{} // closed when index is usable
	prepDone    chan struct{}
	prepCancel  context.CancelFunc
	notReadyMu  sync.Mutex
	notReadyErr error

	index        KeyIndex
	indexDir     string
	indexChecked bool // the index was compared with the event store once
	tmpDir       string

	// Owned by the flusher goroutine (and prepare, before ready).
	lastStamp time.Time
	hasher    keyHasher
	// Buffers re-used from one flush to the next: the previous flush has
	// decided and its insert has returned before the next one decides.
	seen    map[keyindex.Fingerprint]int32 // a key's position among the flush's distinct keys
	refs    []ref                          // where each distinct key occurs first
	copies  []copyRef
	fps     []keyindex.Fingerprint // the distinct keys' fingerprints
	stored  []storedHash
	fresh   []ref // the events to insert
	entries []keyindex.Entry

	catchMu sync.Mutex
	catch   *catchUp // a catch-up the next flush must do first

	// Test hooks, set before the first Submit.
	hookLookedUp         func() // after each look-up of a flush's keys
	hookBeforeIndexWrite func() // after a flush was acknowledged, before its keys are recorded
}

// ref locates an event in a batch: submission, then event.
type ref struct{ sub, idx int }

// copyRef is a later copy of a key in a batch and the key's position.
type copyRef struct {
	ref
	key int32
}

// storedHash is what a flush knows of a key: stored or not, and the
// stored payload hash.
type storedHash struct {
	hash uint64
	ok   bool
}

type submission struct {
	events []Event
	bytes  int64
	status []Status
	err    error
	done   chan struct{}
}

// NewIngester returns an ingester writing to store. The key index is opened
// (and caught up) by Start or by the first Submit; Close stops it.
func NewIngester(store EventStore, cfg IngesterConfig) *Ingester {
	cfg.defaults()
	if cfg.Metrics != nil && cfg.Metrics.BatchSize == nil {
		cfg.Metrics = cfg.Metrics.ForShard("") // one server
	}
	in := &Ingester{
		store:    store,
		cfg:      cfg,
		queue:    make(chan *submission, min(cfg.QueueEvents, 1<<16)),
		done:     make(chan struct{}),
		closing:  make(chan struct{}),
		ready:    make(chan struct{}),
		prepDone: make(chan struct{}),
	}
	go in.run()
	return in
}

// Start opens the key index and catches it up with the event store in the
// background, so that it is ready before the first request. Submit starts
// it too; commands that never ingest never open (or lock) the index.
func (in *Ingester) Start() {
	in.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		in.prepCancel = cancel
		go in.prepare(ctx)
	})
}

// Ready returns nil once the key index is open and caught up, else why it
// is not.
func (in *Ingester) Ready() error {
	select {
	case <-in.ready:
		return nil
	default:
	}
	in.notReadyMu.Lock()
	defer in.notReadyMu.Unlock()
	if in.notReadyErr != nil {
		return in.notReadyErr
	}
	return errors.New("the key index is being opened")
}

// WaitReady starts the ingester and waits until its key index is ready or
// ctx ends, and returns Ready's answer.
func (in *Ingester) WaitReady(ctx context.Context) error {
	in.Start()
	select {
	case <-in.ready:
	case <-ctx.Done():
	case <-in.closing:
	}
	return in.Ready()
}

// Submit stores events and returns one status per event: Accepted,
// Duplicate or Conflict. It returns when the flush holding the events is
// acknowledged by the database (or failed). Errors: EOVERLOADED when the
// queue is full (retry after a pause), EUNAVAILABLE when the database could
// not be reached or the key index is not ready (nothing of the request is
// acknowledged; retrying is safe), or the context's error (the events may
// or may not have been stored; retrying is safe: they come back as
// duplicates).
func (in *Ingester) Submit(ctx context.Context, events []Event) ([]Status, error) {
	if len(events) == 0 {
		return nil, nil
	}
	n := int64(len(events))
	if int(n) > in.cfg.QueueEvents {
		return nil, postage.Errorf(postage.ETOOLARGE, "%d events are more than the ingest queue holds (%d)", n, in.cfg.QueueEvents)
	}
	b := EventBytes(events)
	if b > in.cfg.QueueBytes {
		return nil, postage.Errorf(postage.ETOOLARGE, "%d events of %d bytes are more than the ingest queue holds (%d bytes)", n, b, in.cfg.QueueBytes)
	}
	if err := in.waitReady(ctx); err != nil {
		return nil, err
	}
	s := &submission{events: events, bytes: b, done: make(chan struct{})}
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
	if in.pendingBytes.Add(b) > in.cfg.QueueBytes {
		in.pending.Add(-n)
		in.pendingBytes.Add(-b)
		in.mu.RUnlock()
		in.overloaded()
		return nil, postage.Errorf(postage.EOVERLOADED, "ingest queue full, retry later")
	}
	select {
	case in.queue <- s:
	default:
		in.pending.Add(-n)
		in.pendingBytes.Add(-b)
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

// waitReady starts the ingester if needed and waits up to ReadyWait for
// its key index.
func (in *Ingester) waitReady(ctx context.Context) error {
	select {
	case <-in.ready:
		return nil
	default:
	}
	in.Start()
	t := time.NewTimer(in.cfg.ReadyWait)
	defer t.Stop()
	select {
	case <-in.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-in.closing:
		return postage.Errorf(postage.EUNAVAILABLE, "shutting down")
	case <-t.C:
		return postage.Errorf(postage.EUNAVAILABLE, "the event key index is not ready (%v), retry later", in.Ready())
	}
}

// Admit returns EOVERLOADED when the queue is nearly full (more than 15/16
// of its events or bytes taken), so that a request can be refused before
// its body is read and decoded; nil otherwise (Submit still decides).
func (in *Ingester) Admit() error {
	if in.pending.Load() > int64(in.cfg.QueueEvents)/16*15 || in.pendingBytes.Load() > in.cfg.QueueBytes/16*15 {
		in.overloaded()
		return postage.Errorf(postage.EOVERLOADED, "ingest queue full, retry later")
	}
	return nil
}

func (in *Ingester) overloaded() {
	if in.cfg.Metrics != nil {
		in.cfg.Metrics.Overloaded.Inc()
	}
}

func (in *Ingester) gauge() {
	if m := in.cfg.Metrics; m != nil {
		m.QueueDepth.Set(float64(in.pending.Load()))
		m.QueueBytes.Set(float64(in.pendingBytes.Load()))
	}
}

// Close stops taking events, flushes what is queued, waits for it, and
// closes the key index (writing its memory to disk).
func (in *Ingester) Close() {
	in.mu.Lock()
	if !in.closed {
		in.closed = true
		close(in.queue)
		close(in.closing)
	}
	in.mu.Unlock()
	<-in.done
	started := false
	in.startOnce.Do(func() {}) // a later Start does nothing
	if in.prepCancel != nil {
		started = true
		in.prepCancel()
		<-in.prepDone
	}
	if started && in.index != nil {
		if err := in.index.Close(); err != nil {
			in.cfg.Log.Error("close the key index", "err", err)
		}
		in.index = nil
	}
	if in.tmpDir != "" {
		os.RemoveAll(in.tmpDir)
		in.tmpDir = ""
	}
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
	batch   []*submission
	n       int
	start   time.Time
	stamp   time.Time                       // the rows' ingested_at
	queryID string                          // the insert's id
	fresh   map[keyindex.Fingerprint]uint64 // keys this job inserts, with their payload hashes
	entries []keyindex.Entry                // what the index records once the insert is acknowledged
	err     error                           // set before done is closed
	done    chan struct{}
}

// nextStamp returns the next flush's stamp: now to the second, never
// before an earlier stamp (or the index's watermark).
func (in *Ingester) nextStamp() time.Time {
	s := in.cfg.Now().UTC().Truncate(time.Second)
	if s.Before(in.lastStamp) {
		s = in.lastStamp
	}
	in.lastStamp = s
	return s
}

// InsertQueryPrefix starts the id of every insert of events, which is
// InsertQueryPrefix, the flush's stamp in Unix seconds, "-" and 16 random
// hex digits: how a process finds, in the database's list of running
// queries, the inserts that may still land.
const InsertQueryPrefix = "postage-ingest-"

func insertQueryID(stamp time.Time) string {
	var r [8]byte
	_, _ = rand.Read(r[:])
	return InsertQueryPrefix + strconv.FormatInt(stamp.Unix(), 10) + "-" + hex.EncodeToString(r[:])
}

// flush decides and stores one batch, then answers its submissions. It is
// pipelined with the previous batch: this batch's look-up runs while prev
// is being inserted, and this batch's insert starts only after prev's was
// acknowledged and recorded. Keys that prev is inserting are decided after
// prev's outcome is known (stored: duplicate or conflict; failed: the
// catch-up re-reads what landed, then they are looked up again), so
// nothing is decided on an unacknowledged write. It returns the job, whose
// insert may still be running.
func (in *Ingester) flush(batch []*submission, n int, prev *flushJob) *flushJob {
	job := &flushJob{batch: batch, n: n, start: time.Now(), done: make(chan struct{})}
	job.stamp = in.nextStamp()
	job.queryID = insertQueryID(job.stamp)
	if in.seen == nil {
		in.seen = make(map[keyindex.Fingerprint]int32, n)
	}
	clear(in.seen)
	in.refs, in.copies, in.fps = in.refs[:0], in.copies[:0], in.fps[:0]
	for si, s := range batch {
		s.status = make([]Status, len(s.events))
		for i := range s.events {
			e := &s.events[i]
			// Two keys share a fingerprint with a chance of 2^-128 a pair
			// (keyHasher): the flush dedupes on it as the index does.
			fp := in.hasher.fingerprint(e.CustomerID, e.ID)
			if ki, ok := in.seen[fp]; ok {
				in.copies = append(in.copies, copyRef{ref{si, i}, ki})
				continue
			}
			in.seen[fp] = int32(len(in.fps))
			in.refs = append(in.refs, ref{si, i})
			in.fps = append(in.fps, fp)
		}
	}
	nkeys := len(in.fps)
	if cap(in.stored) < nkeys {
		in.stored = make([]storedHash, nkeys)
	}
	in.stored = in.stored[:nkeys]
	clear(in.stored)
	ctx, cancel := context.WithTimeout(context.Background(), in.cfg.FlushTimeout)

	// Look up everything except what prev is inserting, concurrently with
	// prev's insert.
	var later []int32 // positions of keys that prev is inserting
	skip := func(i int) bool { return false }
	if prev != nil && len(prev.fresh) > 0 {
		for i, fp := range in.fps {
			if _, ok := prev.fresh[fp]; ok {
				later = append(later, int32(i))
			}
		}
		if len(later) > 0 {
			inPrev := make(map[int32]bool, len(later))
			for _, i := range later {
				inPrev[i] = true
			}
			skip = func(i int) bool { return inPrev[int32(i)] }
		}
	}
	err := in.lookup(skip)
	if prev != nil {
		<-prev.done
		if prev.err != nil && prev.fresh != nil {
			// prev's insert failed (its goroutine asked for this already):
			// its keys are decided only after a catch-up.
			in.needCatchUp(prev.stamp, prev.queryID)
		}
	}
	if err == nil {
		if in.pendingCatchUp() != nil {
			// A flush failed (prev or earlier): what landed is read back
			// into the index, then every key is looked up again.
			if err = in.catchUp(ctx); err == nil {
				clear(in.stored)
				err = in.lookup(func(int) bool { return false })
			}
		} else {
			for _, i := range later { // prev stored them
				in.stored[i] = storedHash{hash: prev.fresh[in.fps[i]], ok: true}
			}
		}
	}
	if err != nil {
		cancel()
		in.finish(job, err)
		return job
	}
	fresh := in.decide(job)
	go func() {
		defer cancel()
		insStart := time.Now()
		err := in.store.InsertList(WithInsertID(ctx, job.queryID), fresh)
		in.observe(func(m *Metrics) prometheus.Observer { return m.InsertSeconds }, insStart)
		if err != nil {
			// It may land all the same: nothing is decided before a
			// catch-up has read it back (after the insert has ended).
			in.needCatchUp(job.stamp, job.queryID)
			if errors.Is(err, context.DeadlineExceeded) {
				err = postage.Errorf(postage.EUNAVAILABLE, "event store too slow, retry later")
			}
			in.finish(job, err)
			return
		}
		in.answer(job, nil)
		if in.hookBeforeIndexWrite != nil {
			in.hookBeforeIndexWrite()
		}
		if err := in.index.Add(job.entries, job.stamp); err != nil {
			in.cfg.Log.Error("record stored keys in the key index", "err", err)
			in.needCatchUp(job.stamp, "")
		}
		in.release(job)
	}()
	return job
}

// lookup asks the key index about the current flush's keys (except those
// skip names) and notes the stored ones in in.stored.
func (in *Ingester) lookup(skip func(int) bool) error {
	start := time.Now()
	err := in.index.Lookup(in.fps, func(i int, v keyindex.Value) {
		if !skip(i) {
			in.stored[i] = storedHash{hash: v.Hash, ok: true}
		}
	})
	in.observe(func(m *Metrics) prometheus.Observer { return m.LookupSeconds }, start)
	if in.hookLookedUp != nil {
		in.hookLookedUp()
	}
	if err != nil {
		return fmt.Errorf("look up event keys: %w: %w", postage.Errorf(postage.EUNAVAILABLE, "event key index unavailable, retry later"), err)
	}
	return nil
}

// observe records the time since start in one of the metrics, if any.
func (in *Ingester) observe(h func(*Metrics) prometheus.Observer, start time.Time) {
	if m := in.cfg.Metrics; m != nil {
		h(m).Observe(time.Since(start).Seconds())
	}
}

// decide gives every copy of every key of the batch its status and
// returns the events to insert. A stored key's copies are duplicates or
// conflicts against the stored payload; an unstored key's first copy is
// accepted and its later copies are compared with that one.
func (in *Ingester) decide(job *flushJob) EventList {
	// in.fresh and in.entries are free: the previous insert has returned
	// and its keys are recorded (see Ingester).
	fresh, entries := in.fresh[:0], in.entries[:0]
	job.fresh = make(map[keyindex.Fingerprint]uint64, len(in.fps))
	for i, fp := range in.fps {
		r := in.refs[i]
		s := job.batch[r.sub]
		e := &s.events[r.idx]
		if st := in.stored[i]; st.ok {
			s.status[r.idx] = compare(st.hash, e.PayloadHash)
			continue
		}
		s.status[r.idx] = Accepted
		e.IngestedAt = job.stamp
		fresh = append(fresh, r)
		entries = append(entries, keyindex.Entry{FP: fp, Value: keyindex.Value{Hash: e.PayloadHash, Time: indexTime(e.Time)}})
		job.fresh[fp] = e.PayloadHash
	}
	for _, c := range in.copies {
		s := job.batch[c.sub]
		want := in.stored[c.key].hash
		if !in.stored[c.key].ok {
			r := in.refs[c.key]
			want = job.batch[r.sub].events[r.idx].PayloadHash // the accepted first copy
		}
		s.status[c.idx] = compare(want, s.events[c.idx].PayloadHash)
	}
	in.fresh, in.entries = fresh, entries
	job.entries = entries
	return &batchEvents{batch: job.batch, refs: fresh}
}

// batchEvents is the events a flush inserts, where they are: in the
// requests' own slices (no copy of a flush's 40,000 events).
type batchEvents struct {
	batch []*submission
	refs  []ref
}

func (b *batchEvents) Len() int        { return len(b.refs) }
func (b *batchEvents) At(i int) *Event { r := b.refs[i]; return &b.batch[r.sub].events[r.idx] }

func compare(stored, sent uint64) Status {
	if stored == sent {
		return Duplicate
	}
	return Conflict
}

// indexTime is t as the key index keeps it (seconds since 1970, saturated to
// 32 bits).
func indexTime(t time.Time) uint32 {
	return uint32(min(max(t.Unix(), 0), 1<<32-1))
}

// finish answers a failed job's submissions and releases it.
func (in *Ingester) finish(job *flushJob, err error) {
	in.answer(job, err)
	in.release(job)
}

// answer records the job's outcome and answers its submissions.
func (in *Ingester) answer(job *flushJob, err error) {
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
	// The queue gives the job's room back before its submissions wake,
	// so a caller answered sees the queue without its events.
	var b int64
	for _, s := range job.batch {
		b += s.bytes
	}
	in.pending.Add(-int64(job.n))
	in.pendingBytes.Add(-b)
	in.gauge()
	for _, s := range job.batch {
		if err != nil {
			s.status, s.err = nil, err
		}
		close(s.done)
	}
}

// release lets the next flush decide.
func (in *Ingester) release(job *flushJob) { close(job.done) }
