// Package keyindex is an embedded, disk-backed index of fingerprints: the
// meter's record of which event keys are stored, so that deciding whether a
// key is new costs a filter probe in memory instead of a query whose cost
// grows with the event history.
//
// A Store holds Entries (a 128-bit fingerprint and its Value) in three
// places: a memtable (a map) that takes new entries, full memtables being
// written out, and runs — immutable files of entries sorted by fingerprint,
// merged in the background (size-tiered: four runs of about the same size
// become one). One blocked Bloom filter in memory covers them all, so an
// absent fingerprint costs one cache-line probe; a present one (or a false
// positive) costs a map look-up or one read of a bucket of about 100
// records per run.
//
// The store keeps no write-ahead log. Its watermark is a time such that
// every entry the caller added with an earlier watermark is in a run on
// disk; after a crash the caller re-adds what came after it from its source
// of truth (for the meter: ClickHouse, by ingestion time). A directory is
// used by one process at a time (a file lock). Anything unreadable makes
// Open start empty, with a zero watermark: the index is derived state.
package keyindex

import (
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fingerprint is a 128-bit hash of a key.
type Fingerprint struct{ Hi, Lo uint64 }

func (a Fingerprint) less(b Fingerprint) bool {
	return a.Hi < b.Hi || (a.Hi == b.Hi && a.Lo < b.Lo)
}

// Value is what the index keeps for a key: the stored event's payload hash
// and its time (Unix seconds), which decides when the key expires.
type Value struct {
	Hash uint64
	Time uint32
}

// Entry is a fingerprint and its value.
type Entry struct {
	FP    Fingerprint
	Value Value
}

// Options tune a Store. Zero values take the defaults.
type Options struct {
	// FilterBytes bounds the Bloom filter, the store's main use of memory
	// (default 48 MiB). The filter is sized for 16 bits per key (at least
	// 1 MiB) and grown in the background when it falls under 8; at its
	// bound it takes on more keys per bit, and its false positives (18% at
	// 100 million keys in 48 MiB, 8% in 64 MiB) cost a read of a large run
	// each.
	FilterBytes int64
	// MemtableEntries is how many entries the memtable takes before it is
	// written out as a run (default 65,536: 2.3 MB; up to three memtables
	// exist at once).
	MemtableEntries int
	// MaxMemtableAge writes the memtable out when its oldest entry is this
	// old (default 1 minute), which bounds what a caller re-adds after a
	// crash when traffic is light.
	MaxMemtableAge time.Duration
	// Lookback: an entry whose Time is older than Now minus Lookback is
	// absent, and merges drop it (default 400 days; negative: never).
	Lookback time.Duration
	// MergeWidth is how many runs of about the same size are merged into
	// one (default 4).
	MergeWidth int
	// Owner names the source the index is derived from (for the meter: the
	// ClickHouse address and database). An index written for another owner
	// is removed at Open and the store starts empty.
	Owner string
	Now   func() time.Time
	Log   *slog.Logger
}

func (o *Options) defaults() {
	if o.FilterBytes <= 0 {
		o.FilterBytes = 48 << 20
	}
	if o.MemtableEntries <= 0 {
		o.MemtableEntries = 1 << 16
	}
	if o.MaxMemtableAge <= 0 {
		o.MaxMemtableAge = time.Minute
	}
	if o.Lookback == 0 {
		o.Lookback = 400 * 24 * time.Hour
	}
	if o.MergeWidth < 2 {
		o.MergeWidth = 4
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// maxImmutable is how many full memtables may wait to be written before
// Add waits: the bound on the memtables' memory.
const maxImmutable = 2

// ErrLocked is returned by Open when another process uses the directory.
var ErrLocked = errors.New("key index directory is in use by another process")

// Store is an open key index. Its methods are safe for concurrent use.
type Store struct {
	dir  string
	opts Options
	lock *os.File

	mu     sync.RWMutex
	cond   *sync.Cond // on mu: a memtable was written out, or the store failed or closed
	filter *filter
	// While the filter grows: the next filter (which Add fills too).
	filterNext *filter
	growing    bool
	mem        *memtable
	imm        []*memtable // full memtables, oldest first, waiting to be written
	runs       []*run      // oldest first
	watermark  time.Time   // the persisted watermark
	failed     error       // set once: the store refuses further use
	closed     bool
	nextSeq    atomic.Uint64

	perm      []uint32   // the flusher's sort order of a memtable
	persistMu sync.Mutex // one manifest write at a time
	mergeMu   sync.Mutex // one merge at a time

	flushc, mergec chan struct{}
	stop           chan struct{}
	stopped        atomic.Bool
	wg             sync.WaitGroup

	stats struct {
		probes, passed, runReads, merges, mergedBytes, dropped, grows atomic.Uint64
	}
}

// manifest is the store's table of contents, replaced atomically.
type manifest struct {
	Version   int      `json:"version"`
	Owner     string   `json:"owner"`
	Watermark int64    `json:"watermark"` // Unix seconds
	Next      uint64   `json:"next"`
	Runs      []uint64 `json:"runs"` // file numbers, oldest first
}

const manifestName = "MANIFEST"

func runName(seq uint64) string { return fmt.Sprintf("%08d.run", seq) }

// Open opens (or creates) the index in dir and takes its lock. An index it
// cannot read is removed and the store starts empty (Watermark zero): the
// caller rebuilds it from its source.
func Open(dir string, opts Options) (*Store, error) {
	opts.defaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create key index directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open key index lock: %w", err)
	}
	if err := lockFile(lock); err != nil {
		lock.Close()
		if errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("%s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("lock key index %s: %w", dir, err)
	}
	s := &Store{
		dir: dir, opts: opts, lock: lock,
		flushc: make(chan struct{}, 1), mergec: make(chan struct{}, 1), stop: make(chan struct{}),
	}
	s.cond = sync.NewCond(&s.mu)
	if s.mem, err = newMemtable(opts.MemtableEntries, time.Time{}, opts.Now()); err != nil {
		s.release()
		return nil, err
	}
	if err := s.load(); err != nil {
		opts.Log.Warn("key index unreadable: starting empty, it will be rebuilt", "dir", dir, "err", err)
		s.closeRuns()
		s.runs, s.watermark = nil, time.Time{}
		if s.filter != nil {
			s.filter.close()
		}
		if s.filter, err = newFilter(s.filterSize(0)); err != nil {
			s.release()
			return nil, err
		}
		if err := s.wipe(); err != nil {
			s.release()
			return nil, err
		}
	}
	s.wg.Add(2)
	go s.flusher()
	go s.merger()
	s.kick(s.mergec)
	return s, nil
}

// load reads the manifest and the runs it names, removes every other file,
// and fills the filter from the runs (checking their checksums).
func (s *Store) load() error {
	b, err := os.ReadFile(filepath.Join(s.dir, manifestName))
	if errors.Is(err, os.ErrNotExist) {
		if s.filter, err = newFilter(s.filterSize(0)); err != nil {
			return err
		}
		return s.removeStray(nil)
	}
	if err != nil {
		return err
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil || m.Version != 1 {
		return fmt.Errorf("manifest: %w", errCorrupt)
	}
	if m.Owner != s.opts.Owner {
		return fmt.Errorf("the index was written for %q, not %q", m.Owner, s.opts.Owner)
	}
	keep := map[string]bool{}
	var keys uint64
	for _, seq := range m.Runs {
		r, err := openRun(filepath.Join(s.dir, runName(seq)), seq)
		if err != nil {
			return err
		}
		s.runs = append(s.runs, r)
		keep[runName(seq)] = true
		keys += r.n
	}
	if err := s.removeStray(keep); err != nil {
		return err
	}
	if s.filter, err = newFilter(s.filterSize(keys)); err != nil {
		return err
	}
	for _, r := range s.runs {
		if r.n <= smallRun {
			if r.filter, err = newFilter(smallRunFilterBytes(r.n)); err != nil {
				return err
			}
		}
		it := r.iter(1 << 20)
		for it.next() {
			s.filter.add(it.entry.FP)
			if r.filter != nil {
				r.filter.add(it.entry.FP)
			}
		}
		if it.err != nil {
			return it.err
		}
	}
	s.nextSeq.Store(m.Next)
	if m.Watermark > 0 {
		s.watermark = time.Unix(m.Watermark, 0).UTC()
	}
	s.mem.watermark = s.watermark
	return nil
}

// removeStray deletes files of the directory that keep does not name
// (runs of an interrupted write or merge, temporary manifests).
func (s *Store) removeStray(keep map[string]bool) error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		n := e.Name()
		if n == "LOCK" || n == manifestName || keep[n] {
			continue
		}
		if strings.HasSuffix(n, ".run") || strings.HasSuffix(n, ".tmp") {
			if err := os.Remove(filepath.Join(s.dir, n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// wipe removes the manifest and every run.
func (s *Store) wipe() error {
	if err := os.Remove(filepath.Join(s.dir, manifestName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return s.removeStray(nil)
}

func (s *Store) kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// cutoff is the oldest Time that is not expired.
func (s *Store) cutoff() uint32 {
	if s.opts.Lookback < 0 {
		return 0
	}
	c := s.opts.Now().Add(-s.opts.Lookback).Unix()
	if c < 0 {
		return 0
	}
	return uint32(min(c, 1<<32-1))
}

// Lookup calls found for every fingerprint of fps that the index holds and
// that has not expired, with its index in fps and its value. Absent
// fingerprints cost a filter probe; the others a map look-up, or a read
// per run for those the memtables do not hold.
func (s *Store) Lookup(fps []Fingerprint, found func(i int, v Value)) error {
	since := s.cutoff()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usableLocked(); err != nil {
		return err
	}
	s.stats.probes.Add(uint64(len(fps)))
	var onDisk []int
	for i, fp := range fps {
		if !s.filter.mayContain(fp) {
			continue
		}
		if v, ok := s.memGetLocked(fp); ok {
			if v.Time >= since {
				found(i, v)
			}
			continue
		}
		onDisk = append(onDisk, i)
	}
	s.stats.passed.Add(uint64(len(onDisk)))
	if len(onDisk) == 0 {
		return nil
	}
	// The keys that passed the filter are read from the runs by a few
	// goroutines: a read that misses the page cache waits for the disk,
	// and the others need not wait behind it.
	workers := min(readers, (len(onDisk)+63)/64)
	type hit struct {
		i int
		v Value
	}
	hits := make([][]hit, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for k := w; k < len(onDisk); k += workers {
				i := onDisk[k]
				for r := len(s.runs) - 1; r >= 0; r-- {
					if f := s.runs[r].filter; f != nil && !f.mayContain(fps[i]) {
						continue
					}
					s.stats.runReads.Add(1)
					v, ok, err := s.runs[r].get(fps[i], &buf)
					if err != nil {
						errs[w] = err
						return
					}
					if ok {
						if v.Time >= since {
							hits[w] = append(hits[w], hit{i, v})
						}
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	for w := range workers {
		if errs[w] != nil {
			return errs[w]
		}
		for _, h := range hits[w] {
			found(h.i, h.v)
		}
	}
	return nil
}

// readers is how many goroutines a Lookup reads runs with.
const readers = 8

func (s *Store) memGetLocked(fp Fingerprint) (Value, bool) {
	if v, ok := s.mem.get(fp); ok {
		return v, true
	}
	for i := len(s.imm) - 1; i >= 0; i-- {
		if v, ok := s.imm[i].get(fp); ok {
			return v, true
		}
	}
	return Value{}, false
}

func (s *Store) usableLocked() error {
	if s.failed != nil {
		return s.failed
	}
	if s.closed {
		return errors.New("key index is closed")
	}
	return nil
}

// Add puts entries in the index (a later value for a fingerprint replaces
// an earlier one) and raises the watermark to wm: the caller promises that
// everything it must index from before wm has been added by now. Add waits
// while too many full memtables wait to be written.
func (s *Store) Add(entries []Entry, wm time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range entries {
		if s.mem.full() {
			if err := s.rotateLocked(); err != nil {
				return err
			}
		}
		if err := s.usableLocked(); err != nil {
			return err
		}
		s.filter.add(e.FP)
		if s.filterNext != nil {
			s.filterNext.add(e.FP)
		}
		s.mem.put(e)
	}
	s.maybeGrowLocked()
	if err := s.usableLocked(); err != nil {
		return err
	}
	if wm.After(s.mem.watermark) {
		s.mem.watermark = wm
	}
	return nil
}

// rotateLocked queues the memtable to be written and starts a new one,
// waiting first while too many wait already.
func (s *Store) rotateLocked() error {
	for len(s.imm) >= maxImmutable && s.usableLocked() == nil {
		s.cond.Wait()
	}
	if err := s.usableLocked(); err != nil {
		return err
	}
	m, err := newMemtable(s.opts.MemtableEntries, s.mem.watermark, s.opts.Now())
	if err != nil {
		return err
	}
	s.imm = append(s.imm, s.mem)
	s.mem = m
	s.kick(s.flushc)
	return nil
}

// filterSize is the filter's size for keys keys: 16 bits a key, at least
// 1 MiB, at most FilterBytes.
func (s *Store) filterSize(keys uint64) int64 {
	return min(max(int64(keys)*2, 1<<20), s.opts.FilterBytes)
}

// keysLocked counts the entries in runs and memtables.
func (s *Store) keysLocked() uint64 {
	n := uint64(s.mem.n)
	for _, m := range s.imm {
		n += uint64(m.n)
	}
	for _, r := range s.runs {
		n += r.n
	}
	return n
}

// maybeGrowLocked starts growing the filter when it has fewer than 8 bits
// a key and may still grow.
func (s *Store) maybeGrowLocked() {
	if s.growing || s.filter.bytes() >= s.opts.FilterBytes {
		return
	}
	keys := s.keysLocked()
	if keys <= uint64(s.filter.bytes()) { // 8 bits a key or more
		return
	}
	s.growing = true
	s.wg.Add(1)
	go s.grow(s.filterSize(keys))
}

// grow builds a filter of size bytes from the memtables and the runs and
// puts it in place of the current one. Add fills both while it runs; no
// merge replaces runs meanwhile (so the scanned runs stay open).
func (s *Store) grow(size int64) {
	defer s.wg.Done()
	done := func(nf *filter) {
		s.mu.Lock()
		old := s.filter
		if nf != nil {
			s.filter = nf
		} else if s.filterNext != nil {
			s.filterNext.close()
		}
		s.filterNext, s.growing = nil, false
		s.mu.Unlock()
		if nf != nil {
			old.close()
		}
	}
	nf, err := newFilter(size)
	if err != nil {
		s.opts.Log.Warn("grow the key filter", "bytes", size, "err", err)
		done(nil)
		return
	}
	s.mergeMu.Lock()
	defer s.mergeMu.Unlock()
	s.mu.Lock()
	for _, m := range append([]*memtable{s.mem}, s.imm...) {
		for _, e := range m.entries[:m.n] {
			nf.add(e.FP)
		}
	}
	runs := slices.Clone(s.runs)
	s.filterNext = nf
	s.mu.Unlock()
	chunk := make([]Fingerprint, 0, 1<<14)
	add := func() {
		s.mu.Lock()
		for _, fp := range chunk {
			nf.add(fp)
		}
		s.mu.Unlock()
		chunk = chunk[:0]
	}
	for _, r := range runs {
		it := r.iter(1 << 20)
		for it.next() {
			if chunk = append(chunk, it.entry.FP); len(chunk) == cap(chunk) {
				add()
				if s.stopped.Load() {
					done(nil)
					return
				}
			}
		}
		if it.err != nil {
			s.opts.Log.Warn("grow the key filter", "err", it.err)
			done(nil)
			return
		}
	}
	add()
	s.stats.grows.Add(1)
	done(nf)
}

// Watermark is the persisted watermark: every entry added with an earlier
// watermark is on disk. Zero for an empty (or wiped) index.
func (s *Store) Watermark() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.watermark
}

// Sync writes the memtable out and waits until it (and every earlier one)
// is on disk, with the watermark.
func (s *Store) Sync() error {
	s.mu.Lock()
	if s.mem.n > 0 || s.mem.watermark.After(s.watermark) {
		if err := s.rotateLocked(); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	for len(s.imm) > 0 && s.usableLocked() == nil {
		s.cond.Wait()
	}
	err := s.usableLocked()
	s.mu.Unlock()
	return err
}

// flusher writes full memtables out as runs, oldest first.
func (s *Store) flusher() {
	defer s.wg.Done()
	tick := time.NewTicker(max(s.opts.MaxMemtableAge/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-s.flushc:
		case <-tick.C:
			s.mu.Lock()
			if len(s.imm) == 0 && s.mem.n > 0 && s.opts.Now().Sub(s.mem.created) >= s.opts.MaxMemtableAge {
				if err := s.rotateLocked(); err != nil {
					s.mu.Unlock()
					s.fail(err)
					return
				}
			}
			s.mu.Unlock()
		case <-s.stop:
			return
		}
		for {
			s.mu.RLock()
			var m *memtable
			if len(s.imm) > 0 && s.failed == nil {
				m = s.imm[0]
			}
			s.mu.RUnlock()
			if m == nil {
				break
			}
			if err := s.writeMemtable(m); err != nil {
				s.fail(fmt.Errorf("write key index run: %w", err))
				return
			}
		}
	}
}

// writeMemtable writes m (the oldest waiting memtable) as a run, or only
// its watermark when it is empty, and makes both durable.
func (s *Store) writeMemtable(m *memtable) error {
	var r *run
	if m.n > 0 {
		s.perm = m.sorted(s.perm)
		seq := s.nextSeq.Add(1) - 1
		w, err := createRun(filepath.Join(s.dir, runName(seq)), uint64(m.n))
		if err != nil {
			return err
		}
		for _, p := range s.perm {
			if err := w.add(m.entries[p]); err != nil {
				w.abort()
				return err
			}
		}
		if r, err = w.finish(seq); err != nil {
			return err
		}
	}
	s.mu.Lock()
	if r != nil {
		s.runs = append(s.runs, r)
	}
	s.imm = s.imm[1:]
	if m.watermark.After(s.watermark) {
		s.watermark = m.watermark
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	m.free() // no Lookup holds it any more (they read under mu)
	if err := s.persist(); err != nil {
		return err
	}
	if r != nil {
		s.kick(s.mergec)
	}
	return nil
}

// persist writes the manifest of the current runs and watermark (to a
// temporary file, synced, then renamed over the old one).
func (s *Store) persist() error {
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	s.mu.RLock()
	m := manifest{Version: 1, Owner: s.opts.Owner, Next: s.nextSeq.Load()}
	if !s.watermark.IsZero() {
		m.Watermark = s.watermark.Unix()
	}
	for _, r := range s.runs {
		m.Runs = append(m.Runs, r.seq)
	}
	s.mu.RUnlock()
	b, _ := json.Marshal(m)
	tmp := filepath.Join(s.dir, manifestName+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, manifestName))
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write key index manifest: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// fail puts the store in a failed state: every later call returns err.
func (s *Store) fail(err error) {
	s.mu.Lock()
	if s.failed == nil {
		s.failed = err
		s.opts.Log.Error("key index failed", "dir", s.dir, "err", err)
	}
	s.cond.Broadcast()
	s.mu.Unlock()
}

// pickMerge returns the newest group of MergeWidth consecutive runs of
// about the same size (the largest at most twice the smallest), or nil.
func (s *Store) pickMergeLocked() []*run {
	w := s.opts.MergeWidth
	for end := len(s.runs); end-w >= 0; end-- {
		g := s.runs[end-w : end]
		lo, hi := g[0].n, g[0].n
		for _, r := range g[1:] {
			lo, hi = min(lo, r.n), max(hi, r.n)
		}
		if hi <= 2*max(lo, 1) {
			return slices.Clone(g)
		}
	}
	return nil
}

// merger merges runs in the background.
func (s *Store) merger() {
	defer s.wg.Done()
	for {
		select {
		case <-s.mergec:
		case <-s.stop:
			return
		}
		for !s.stopped.Load() {
			merged, err := s.merge(s.pickMergeLocked)
			if errors.Is(err, errStopped) {
				return
			}
			if err != nil {
				s.fail(fmt.Errorf("merge key index runs: %w", err))
				return
			}
			if !merged {
				break
			}
		}
	}
}

var errStopped = errors.New("key index closing")

// Compact merges every run into one (dropping expired entries), for
// callers that just loaded many entries at once. It waits for the merge.
func (s *Store) Compact() error {
	_, err := s.merge(func() []*run {
		if len(s.runs) < 2 {
			return nil
		}
		return slices.Clone(s.runs)
	})
	if err != nil && !errors.Is(err, errStopped) {
		s.fail(fmt.Errorf("merge key index runs: %w", err))
	}
	return err
}

// merge writes the runs that pick chooses (consecutive, oldest first;
// called under a read lock) as one run and puts it in their place. For a
// fingerprint in several runs the newest value wins; expired entries are
// dropped. It reports whether it merged anything.
func (s *Store) merge(pick func() []*run) (bool, error) {
	s.mergeMu.Lock()
	defer s.mergeMu.Unlock()
	s.mu.RLock()
	var g []*run
	if s.usableLocked() == nil {
		g = pick()
	}
	s.mu.RUnlock()
	if g == nil {
		return false, nil
	}
	var total uint64
	its := make([]*runIter, 0, len(g))
	bufSize := min(max((16<<20)/len(g), 64<<10), 1<<20) // at most 16 MB of buffers
	for _, r := range g {
		total += r.n
		its = append(its, r.iter(bufSize))
	}
	seq := s.nextSeq.Add(1) - 1
	w, err := createRun(filepath.Join(s.dir, runName(seq)), total)
	if err != nil {
		return false, err
	}
	cutoff := s.cutoff()
	// A heap of the iterators by their current fingerprint; among equal
	// fingerprints the newest run (the highest position in g) on top.
	h := make(iterHeap, 0, len(its))
	for i, it := range its {
		if it.next() {
			h = append(h, heapItem{it, i})
		} else if it.err != nil {
			w.abort()
			return false, it.err
		}
	}
	heap.Init(&h)
	var dropped uint64
	for n := uint64(0); len(h) > 0; n++ {
		if n&0xffff == 0 && s.stopped.Load() {
			w.abort()
			return false, errStopped
		}
		e := h[0].it.entry
		// Take e, and skip the same fingerprint in older runs.
		for len(h) > 0 && h[0].it.entry.FP == e.FP {
			if h[0].it.next() {
				heap.Fix(&h, 0)
			} else {
				if err := h[0].it.err; err != nil {
					w.abort()
					return false, err
				}
				heap.Pop(&h)
			}
		}
		if e.Value.Time < cutoff {
			dropped++
			continue
		}
		if err := w.add(e); err != nil {
			w.abort()
			return false, err
		}
	}
	out, err := w.finish(seq)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	i := slices.Index(s.runs, g[0])
	if i < 0 || i+len(g) > len(s.runs) || !slices.Equal(s.runs[i:i+len(g)], g) {
		s.mu.Unlock()
		out.close()
		os.Remove(out.path)
		return false, fmt.Errorf("key index runs changed during a merge")
	}
	if out.n == 0 { // everything expired
		s.runs = slices.Delete(s.runs, i, i+len(g))
	} else {
		s.runs = slices.Replace(s.runs, i, i+len(g), out)
	}
	s.mu.Unlock()
	if out.n == 0 {
		out.close()
		os.Remove(out.path)
	}
	s.stats.merges.Add(1)
	s.stats.mergedBytes.Add(uint64(out.size))
	s.stats.dropped.Add(dropped)
	if err := s.persist(); err != nil {
		return false, err
	}
	// No Lookup holds the old runs any more (they read under mu).
	for _, r := range g {
		r.close()
		os.Remove(r.path)
	}
	return true, nil
}

type heapItem struct {
	it  *runIter
	pos int // position of the run in the merge: higher is newer
}

type iterHeap []heapItem

func (h iterHeap) Len() int { return len(h) }
func (h iterHeap) Less(i, j int) bool {
	a, b := h[i].it.entry.FP, h[j].it.entry.FP
	return a.less(b) || (a == b && h[i].pos > h[j].pos)
}
func (h iterHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *iterHeap) Push(x any)   { *h = append(*h, x.(heapItem)) }
func (h *iterHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Stats describes the store.
type Stats struct {
	Keys          uint64    // entries in runs and memtables (a key in several counts several times)
	Runs          int       // run files
	DiskBytes     int64     // bytes of the run files
	FilterBytes   int64     // memory of the filter
	FalsePositive float64   // estimated share of absent keys that pass the filter
	Watermark     time.Time // persisted watermark
	Probes        uint64    // fingerprints looked up since Open
	Passed        uint64    // of which passed the filter and were not in a memtable
	RunReads      uint64    // run buckets read for them
	Merges        uint64    // merges done since Open
	MergedBytes   uint64    // bytes written by merges
	Dropped       uint64    // expired entries dropped by merges
	Grows         uint64    // times the filter grew since Open
}

// Stats returns the store's current figures.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Stats{Runs: len(s.runs), FilterBytes: s.filter.bytes(), Watermark: s.watermark}
	for _, r := range s.runs {
		st.Keys += r.n
		st.DiskBytes += r.size
	}
	st.Keys += uint64(s.mem.n)
	for _, m := range s.imm {
		st.Keys += uint64(m.n)
	}
	st.FalsePositive = falsePositiveRate(s.filter.nblocks, st.Keys)
	st.Probes, st.Passed, st.RunReads = s.stats.probes.Load(), s.stats.passed.Load(), s.stats.runReads.Load()
	st.Merges, st.MergedBytes, st.Dropped = s.stats.merges.Load(), s.stats.mergedBytes.Load(), s.stats.dropped.Load()
	st.Grows = s.stats.grows.Load()
	return st
}

// Close writes the memtable out (so the next Open needs no re-adding),
// stops the background work and releases the directory.
func (s *Store) Close() error {
	err := s.Sync()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
	s.stopped.Store(true)
	close(s.stop)
	s.wg.Wait()
	s.closeRuns()
	s.release()
	return err
}

func (s *Store) closeRuns() {
	for _, r := range s.runs {
		r.close()
	}
}

func (s *Store) release() {
	s.mem.free()
	for _, m := range s.imm {
		m.free()
	}
	if s.filter != nil {
		s.filter.close()
	}
	if s.filterNext != nil {
		s.filterNext.close()
	}
	s.lock.Close() // releases the flock
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// String describes the store for logs.
func (s *Store) String() string {
	st := s.Stats()
	return "key index " + s.dir + ": " + strconv.FormatUint(st.Keys, 10) + " keys in " + strconv.Itoa(st.Runs) + " runs"
}
