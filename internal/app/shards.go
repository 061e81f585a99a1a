package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"postage"
	"postage/internal/config"
	"postage/internal/db"
	"postage/internal/httpapi"
	"postage/internal/lease"
	"postage/metering"
)

// Ingest is the event pipeline of a serving process: one *metering.Ingester
// on one server, the shards' writers on a cluster (shardSet).
type Ingest interface {
	metering.Submitter
	// Start opens what the pipeline needs (the key index; on a cluster,
	// the contest for the shards' leases) before the first request.
	Start()
	// WaitReady waits until the pipeline can take events or ctx ends, and
	// says why not.
	WaitReady(ctx context.Context) error
	Close()
}

var (
	_ Ingest              = (*metering.Ingester)(nil)
	_ Ingest              = (*shardSet)(nil)
	_ httpapi.EventRouter = (*shardSet)(nil)
)

// leaseDirectory hands out the shards' leases and tells who holds them.
type leaseDirectory interface {
	lease.Manager
	lease.Directory
}

// leasePoll is how often a process that does not hold a shard's lease
// tries to take it.
const leasePoll = 500 * time.Millisecond

// shardSet is the event pipeline on a ClickHouse cluster: a writer per
// shard, and the routing of each event to its customer's shard.
type shardSet struct {
	writers []*shardWriter
	byNum   map[int]*shardWriter
	shardOf func(customerID string) int // index in writers
	route   *metering.ShardedIngester
	leases  lease.Manager

	startOnce sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// shardWriter owns the writes of one shard (its events, key index and
// rollups) while this process holds the shard's lease: it then runs an
// Ingester on the shard's store, and a sealer once jobs run. A process
// without the lease forwards the shard's events to the holder's advertised
// URL (owner), or, when it knows none, answers them 503 shard_not_owned.
type shardWriter struct {
	num     int // shard_num, 1-based
	name    string
	store   *metering.CHStore
	leases  leaseDirectory
	contend bool   // this process tries to take the lease ([clickhouse] write_shards)
	self    string // this process's advertised URL ("" none)
	newIn   func() *metering.Ingester
	log     *slog.Logger

	mu    sync.Mutex
	in    *metering.Ingester // while the lease is held
	lease lease.Lease
	owner string // while another process holds the lease: its advertised URL, if any
	// rereadAt is when a request last read the holder (reread).
	rereadAt time.Time
	why      error // why there is no ingester (not owned, coordinator down)
	// starting: the lease has not been tried yet, or is being taken again
	// after a loss; requests wait a little for it.
	starting bool
}

// openShards builds the stores of every shard of c, their usage fan-out and
// (not started) writers.
func (a *App) openShards(cfg config.Config, c *db.ClickHouseCluster) error {
	log := a.Log
	self := strings.TrimRight(cfg.HTTP.AdvertiseURL, "/")
	zk, err := lease.NewZooKeeper(lease.ZooKeeperOptions{
		Servers:        cfg.ClickHouse.ZooKeeper,
		Root:           "/postage/leases/" + c.Database,
		SessionTimeout: cfg.ClickHouse.ZooKeeperSessionTimeout.Duration,
		Address:        self,
		Logger:         log,
	})
	if err != nil {
		return err
	}
	contend := map[int]bool{}
	for _, n := range cfg.ClickHouse.WriteShards {
		if !slices.ContainsFunc(c.Topology.Shards, func(sh db.Shard) bool { return sh.Num == n }) {
			_ = zk.Close()
			return fmt.Errorf("clickhouse.write_shards: cluster %s has no shard %d", c.Topology.Cluster, n)
		}
		contend[n] = true
	}
	set := &shardSet{leases: zk, byNum: map[int]*shardWriter{}, shardOf: c.Topology.ShardFor}
	a.closers = append(a.closers, func() { _ = zk.Close() })
	usages := make([]metering.Usage, len(c.Topology.Shards))
	subs := make([]metering.Submitter, len(c.Topology.Shards))
	for i, sh := range c.Topology.Shards {
		q := db.Quorum{Replicas: cfg.ClickHouse.InsertQuorum, Timeout: cfg.ClickHouse.InsertQuorumTimeout.Duration}
		if q.Replicas == 0 {
			q.Replicas = sh.Majority()
		}
		conn, err := c.OpenShard(i, q.Settings())
		if err != nil {
			return err
		}
		a.closers = append(a.closers, func() { _ = conn.Close() })
		replicas, err := c.OpenReplicas(i)
		if err != nil {
			return err
		}
		a.closers = append(a.closers, func() {
			for _, r := range replicas {
				_ = r.Close()
			}
		})
		w := &shardWriter{num: sh.Num, name: "shard-" + strconv.Itoa(sh.Num), leases: zk, log: log.With("shard", sh.Num),
			contend: len(contend) == 0 || contend[sh.Num], self: self,
			why: postage.Errorf(postage.EUNAVAILABLE, "the writer of shard %d is starting; retry", sh.Num), starting: true}
		w.store = metering.NewReplicatedCHStore(conn, metering.ReplicatedOptions{Replicas: replicas, Check: w.check})
		icfg := a.ingesterConfig(cfg)
		icfg.Metrics = icfg.Metrics.ForShard(strconv.Itoa(sh.Num))
		icfg.IndexDir = filepath.Join(IndexDir(cfg), w.name)
		icfg.IndexOwner = "clickhouse-cluster://" + c.Topology.Cluster + "/" + c.Database + "/" + w.name
		w.newIn = func() *metering.Ingester { return metering.NewIngester(w.store, icfg) }
		set.writers = append(set.writers, w)
		set.byNum[w.num] = w
		usages[i], subs[i] = w.store, w
	}
	set.route = &metering.ShardedIngester{Shards: subs, Shard: c.Topology.ShardFor}
	a.shards = set
	a.Ingester = set
	sharded := metering.NewShardedUsage(usages, c.Topology.ShardFor)
	a.Usage = sharded
	a.conflicts = sharded.Conflicts
	return nil
}

// Submit implements Ingest: each event to its customer's shard.
func (s *shardSet) Submit(ctx context.Context, events []metering.Event) ([]metering.Status, error) {
	s.Start()
	return s.route.Submit(ctx, events)
}

// Admit implements Ingest.
func (s *shardSet) Admit() error { return s.route.Admit() }

// ShardOf implements httpapi.EventRouter.
func (s *shardSet) ShardOf(customerID string) int { return s.writers[s.shardOf(customerID)].num }

// ForwardTo implements httpapi.EventRouter: the advertised URL of the
// process that holds the shard's lease, while this process does not.
// While this process's writer is starting (its first try at the lease, or
// a lease changing hands) it waits, up to submitWait, to know.
func (s *shardSet) ForwardTo(ctx context.Context, shard int) string {
	s.Start()
	w := s.byNum[shard]
	if w == nil {
		return ""
	}
	deadline := time.Now().Add(submitWait)
	for {
		w.mu.Lock()
		in, owner, starting := w.in, w.owner, w.starting
		w.mu.Unlock()
		switch {
		case in != nil:
			return ""
		case owner == "" && !starting:
			return w.reread(ctx)
		case !starting, time.Now().After(deadline):
			return owner
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(leasePoll / 10):
		}
	}
}

// Start implements Ingest: every writer starts contending for its lease.
func (s *shardSet) Start() {
	s.startOnce.Do(func() {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		for _, w := range s.writers {
			s.wg.Go(func() { w.run(s.ctx) })
		}
	})
}

// WaitReady implements Ingest: it waits until this process has tried each
// shard's lease once and the ingesters of the shards it holds are ready.
// Whether every shard has a writer somewhere is more than one process can
// know.
func (s *shardSet) WaitReady(ctx context.Context) error {
	s.Start()
	var errs []error
	for _, w := range s.writers {
		if err := w.waitReady(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close implements Ingest: the writers stop and give their leases up.
func (s *shardSet) Close() {
	s.startOnce.Do(func() {})
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}

// sealAll runs each shard's sealer, passes only while this process holds
// the shard's lease, until ctx ends.
func (s *shardSet) sealAll(ctx context.Context, cfg metering.SealerConfig) {
	var wg sync.WaitGroup
	for _, w := range s.writers {
		sealer := metering.NewSealer(w.store, cfg)
		wg.Go(func() { w.seal(ctx, sealer, cfg.Log) })
	}
	wg.Wait()
}

// sealOnce runs one pass of each shard's sealer (tests, benchmarks).
func (s *shardSet) sealOnce(ctx context.Context, cfg metering.SealerConfig) (metering.SealResult, error) {
	var total metering.SealResult
	for _, w := range s.writers {
		r, err := metering.NewSealer(w.store, cfg).SealOnce(ctx)
		if err != nil {
			return total, fmt.Errorf("shard %d: %w", w.num, err)
		}
		total.Hours += r.Hours
		total.Days += r.Days
		total.Months += r.Months
		total.More = total.More || r.More
	}
	return total, nil
}

// check is the store's check before every insert: the lease must be held
// and usable.
func (w *shardWriter) check() error {
	w.mu.Lock()
	l := w.lease
	w.mu.Unlock()
	if l == nil {
		return postage.Errorf(postage.ENOTOWNER, "this process does not own the writes of shard %d; retry", w.num)
	}
	if err := l.Check(); err != nil {
		if errors.Is(err, lease.ErrSuspended) {
			return fmt.Errorf("%w: %w", postage.Errorf(postage.EUNAVAILABLE, "ZooKeeper cannot be reached: shard %d takes no writes; retry later", w.num), err)
		}
		return fmt.Errorf("%w: %w", postage.Errorf(postage.ENOTOWNER, "this process lost the writes of shard %d; retry", w.num), err)
	}
	return nil
}

// submitWait is how long a request waits for a writer that is starting
// (its first try at the lease) or changing.
const submitWait = 5 * time.Second

// Submit implements metering.Submitter for the shard's customers: to the
// shard's ingester while this process holds the lease; else at once 503
// shard_not_owned (another process holds it), or, while the lease is
// being taken, after up to submitWait, 503 unavailable.
func (w *shardWriter) Submit(ctx context.Context, events []metering.Event) ([]metering.Status, error) {
	var deadline time.Time
	for {
		w.mu.Lock()
		in, why, starting := w.in, w.why, w.starting
		w.mu.Unlock()
		if in != nil {
			return in.Submit(ctx, events)
		}
		if !starting {
			return nil, why
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(submitWait)
		} else if time.Now().After(deadline) {
			return nil, why
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(leasePoll / 10):
		}
	}
}

// Admit implements metering.Submitter.
func (w *shardWriter) Admit() error {
	w.mu.Lock()
	in := w.in
	w.mu.Unlock()
	if in == nil {
		return nil
	}
	return in.Admit()
}

// waitReady waits until the writer has tried its lease once, and, if it
// holds it, until its ingester is ready (or ctx ends). A lease this
// process does not hold is no reason to be unready: the shard's requests
// answer 503 themselves, and every other route is served.
func (w *shardWriter) waitReady(ctx context.Context) error {
	for {
		w.mu.Lock()
		in, why, starting := w.in, w.why, w.starting
		w.mu.Unlock()
		if in != nil {
			return in.WaitReady(ctx)
		}
		if !starting {
			return nil
		}
		select {
		case <-ctx.Done():
			return why
		case <-time.After(leasePoll / 5):
		}
	}
}

// run contends for the shard's lease until ctx ends: while it holds it,
// an Ingester writes the shard; when the lease is lost the Ingester is
// closed (its queued events fail the lease check: nothing is acknowledged
// without the lease) and a later holding starts a new one, whose key index
// catches up with what other holders wrote meanwhile.
func (w *shardWriter) run(ctx context.Context) {
	for ctx.Err() == nil {
		var l lease.Lease
		err := errNotContending
		if w.contend {
			l, err = w.leases.TryAcquire(ctx, w.name)
		}
		if err != nil {
			owner, herr := "", err
			if errors.Is(err, lease.ErrHeld) || errors.Is(err, errNotContending) {
				owner, herr = w.holder(ctx)
			}
			w.mu.Lock()
			w.starting, w.owner = false, owner
			switch {
			case herr == nil || errors.Is(herr, lease.ErrNoHolder):
				w.why = postage.Errorf(postage.ENOTOWNER, "%s; retry (on another process)", w.notOwned(owner, herr))
			default:
				w.why = fmt.Errorf("%w: %w", postage.Errorf(postage.EUNAVAILABLE, "the write lease of shard %d cannot be taken or read (is ZooKeeper down?); retry later", w.num), herr)
			}
			w.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(leasePoll):
			}
			continue
		}
		w.log.Info("holding the write lease of the shard", "token", l.Token())
		in := w.newIn()
		w.mu.Lock()
		w.lease, w.in, w.starting, w.owner = l, in, false, ""
		w.mu.Unlock()
		in.Start()
		select {
		case <-ctx.Done():
		case <-l.Done():
			w.log.Warn("lost the write lease of the shard")
		}
		w.mu.Lock()
		w.in, w.starting = nil, true
		w.why = postage.Errorf(postage.EUNAVAILABLE, "shard %d changes writers; retry", w.num)
		w.mu.Unlock()
		in.Close()
		w.mu.Lock()
		w.lease = nil
		w.mu.Unlock()
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = l.Release(rctx)
		cancel()
	}
}

// rereadEvery is how often a request may read the holder of a lease
// that had no holder to forward to (run reads it every leasePoll).
const rereadEvery = leasePoll / 10

// reread reads the shard's holder again, at most every rereadEvery, when
// the last read found none to forward to: a writer that took the lease
// since is forwarded to at once, not after the next poll.
func (w *shardWriter) reread(ctx context.Context) string {
	w.mu.Lock()
	if time.Since(w.rereadAt) < rereadEvery || w.in != nil {
		owner := w.owner
		w.mu.Unlock()
		return owner
	}
	w.rereadAt = time.Now()
	w.mu.Unlock()
	owner, err := w.holder(ctx)
	if err != nil || owner == "" {
		return ""
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.in != nil || w.starting {
		return "" // this process took the lease meanwhile, or is taking it
	}
	w.owner = owner
	return owner
}

// errNotContending: this process does not try to take the shard's lease.
var errNotContending = errors.New("not contending for the lease")

// holder returns the advertised URL of the process that holds the
// shard's lease: "" when it gave none, or is this process (a node of an
// earlier run of it, until its session expires).
func (w *shardWriter) holder(ctx context.Context) (string, error) {
	hctx, cancel := context.WithTimeout(ctx, leasePoll*4)
	defer cancel()
	h, err := w.leases.Holder(hctx, w.name)
	if err != nil {
		return "", err
	}
	if h.Address == w.self {
		return "", nil
	}
	return h.Address, nil
}

// notOwned says why this process does not write the shard, for a
// shard_not_owned answer (no holder it can forward to).
func (w *shardWriter) notOwned(owner string, holderErr error) string {
	switch {
	case owner != "":
		return fmt.Sprintf("another postage process (%s) writes shard %d", owner, w.num)
	case errors.Is(holderErr, lease.ErrNoHolder) && !w.contend:
		return fmt.Sprintf("no postage process writes shard %d now (this one does not: clickhouse.write_shards)", w.num)
	case errors.Is(holderErr, lease.ErrNoHolder):
		return fmt.Sprintf("no postage process writes shard %d now", w.num)
	default:
		return fmt.Sprintf("another postage process writes shard %d and gave no [http] advertise_url to forward its events to", w.num)
	}
}

// holding reports whether the writer holds a usable lease.
func (w *shardWriter) holding() bool {
	w.mu.Lock()
	l := w.lease
	w.mu.Unlock()
	return l != nil && l.Check() == nil
}

// seal runs sealer passes while the lease is held, until ctx ends.
func (w *shardWriter) seal(ctx context.Context, sealer *metering.Sealer, log *slog.Logger) {
	interval := time.Minute
	for {
		wait := interval
		if w.holding() {
			res, err := sealer.SealOnce(ctx)
			if ctx.Err() != nil {
				return
			}
			switch {
			case err != nil:
				if log != nil {
					log.Error("sealing usage rollups failed; reads stay exact and read more raw events until it works", "shard", w.num, "err", err)
				}
			case res.More:
				wait = 0
			}
		} else {
			wait = leasePoll
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
