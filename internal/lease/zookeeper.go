package lease

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// ZooKeeperOptions configures NewZooKeeper.
type ZooKeeperOptions struct {
	// Servers are host:port of the ZooKeeper ensemble (the one of the
	// ClickHouse cluster will do).
	Servers []string
	// Root is the parent of every lease's node; "" means /postage/leases.
	// Give each installation (database) its own.
	Root string
	// SessionTimeout is the ZooKeeper session's; 0 means 10 s. A holder
	// that has not heard from ZooKeeper for half of it stops writing
	// (Check fails); after all of it, its lease is lost (the session may
	// have expired and another process may hold the lease).
	SessionTimeout time.Duration
	// Owner is stored in the lease's node for operators; "" means
	// host:pid.
	Owner string
	// Address is where this process can be reached (its advertised URL),
	// stored in the node of each lease it holds, so that other processes
	// can send it the lease's work (Holder); "" means nowhere.
	Address string
	// Logger receives the client's connection messages at debug level;
	// nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ZooKeeper is a Manager whose leases are ZooKeeper ephemeral sequential
// nodes under Root/<name>: the lowest holds the lease (ZooKeeper's lock
// recipe), and the others wait for the node before theirs to go. A node
// lives as long as its session, so a holder that dies or loses ZooKeeper
// for longer than the session timeout lets the next one in. The fencing
// token is the node's creation zxid, which grows with every create in the
// ensemble.
type ZooKeeper struct {
	opts ZooKeeperOptions

	mu     sync.Mutex
	sess   *zkSession // the current session; replaced once it is lost
	closed bool
}

var (
	_ Manager   = (*ZooKeeper)(nil)
	_ Directory = (*ZooKeeper)(nil)
)

// NewZooKeeper returns a Manager on the ensemble of opts.Servers. It
// connects on first use.
func NewZooKeeper(opts ZooKeeperOptions) (*ZooKeeper, error) {
	if len(opts.Servers) == 0 {
		return nil, errors.New("lease: no ZooKeeper servers given")
	}
	opts.Root = strings.TrimRight(cmp.Or(opts.Root, "/postage/leases"), "/")
	if !strings.HasPrefix(opts.Root, "/") || strings.Contains(opts.Root, "//") {
		return nil, fmt.Errorf("lease: root %q must be an absolute ZooKeeper path", opts.Root)
	}
	opts.SessionTimeout = cmp.Or(opts.SessionTimeout, 10*time.Second)
	if opts.Owner == "" {
		host, _ := os.Hostname()
		opts.Owner = host + ":" + strconv.Itoa(os.Getpid())
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &ZooKeeper{opts: opts}, nil
}

// zkSession is one ZooKeeper session and the leases acquired in it. It
// dies (every lease lost) when the session expires, when another session
// replaces it, when nothing was heard from ZooKeeper for a whole session
// timeout, or on Close.
type zkSession struct {
	m    *ZooKeeper
	conn *zk.Conn
	dead chan struct{} // closed when the session is given up

	// Guarded by m.mu.
	id        int64     // session id, once established
	connected bool      // the connection has a session now
	heard     time.Time // when the last request ZooKeeper answered was sent
	leases    map[*zkLease]bool
}

// session returns the live session, connecting a new one if needed.
func (m *ZooKeeper) session() (*zkSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("lease: manager closed")
	}
	if s := m.sess; s != nil && !isClosed(s.dead) {
		return s, nil
	}
	s := &zkSession{m: m, dead: make(chan struct{}), leases: map[*zkLease]bool{}}
	conn, events, err := zk.Connect(m.opts.Servers, m.opts.SessionTimeout,
		zk.WithEventCallback(s.event), zk.WithLogger(zkLogger{m.opts.Logger}), zk.WithLogInfo(false))
	if err != nil {
		return nil, fmt.Errorf("lease: connect to ZooKeeper: %w", err)
	}
	go func() {
		for range events { // the callback handles them; drained until Close
		}
	}()
	s.conn = conn
	m.sess = s
	go s.heartbeat()
	return s, nil
}

// event follows the session's state. It runs on the client's goroutine
// and must not block.
func (s *zkSession) event(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	switch ev.State {
	case zk.StateHasSession:
		id := s.conn.SessionID()
		if s.id != 0 && id != s.id {
			s.loseLocked("a new ZooKeeper session replaced the expired one")
			return
		}
		s.id, s.connected = id, true
	case zk.StateExpired:
		s.loseLocked("the ZooKeeper session expired")
	case zk.StateDisconnected, zk.StateConnecting:
		s.connected = false
	}
}

// heartbeat asks ZooKeeper something every quarter of the session timeout,
// so heard stays fresh while it answers, and gives the session up once it
// has not answered for a whole timeout.
func (s *zkSession) heartbeat() {
	every := s.m.opts.SessionTimeout / 4
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.dead:
			return
		case <-t.C:
		}
		sent := s.m.opts.Now()
		if _, _, err := s.conn.Exists("/"); err == nil {
			s.heardAt(sent)
		}
		s.m.mu.Lock()
		if !s.heard.IsZero() && s.m.opts.Now().Sub(s.heard) > s.m.opts.SessionTimeout {
			s.loseLocked("ZooKeeper has not answered for a session timeout")
		}
		s.m.mu.Unlock()
	}
}

func (s *zkSession) heardAt(sent time.Time) {
	s.m.mu.Lock()
	if sent.After(s.heard) {
		s.heard = sent
	}
	s.m.mu.Unlock()
}

// loseLocked gives the session up: every lease is lost, and the
// connection is closed, so its nodes go when ZooKeeper expires it (at once
// if ZooKeeper can be told). Callers hold m.mu.
func (s *zkSession) loseLocked(why string) {
	if isClosed(s.dead) {
		return
	}
	close(s.dead)
	for l := range s.leases {
		l.loseLocked()
	}
	s.leases = nil
	s.m.opts.Logger.Warn("leases lost", "reason", why)
	go s.conn.Close() // not on the client's goroutine, which may be ours
}

// usableLocked reports why the session's leases may not be used now, or
// nil. Callers hold m.mu.
func (s *zkSession) usableLocked() error {
	switch {
	case isClosed(s.dead):
		return ErrLost
	case !s.connected, s.heard.IsZero(), s.m.opts.Now().Sub(s.heard) > s.m.opts.SessionTimeout/2:
		return ErrSuspended
	}
	return nil
}

// Acquire implements Manager.
func (m *ZooKeeper) Acquire(ctx context.Context, name string) (Lease, error) {
	return m.acquire(ctx, name, true)
}

// TryAcquire implements Manager.
func (m *ZooKeeper) TryAcquire(ctx context.Context, name string) (Lease, error) {
	return m.acquire(ctx, name, false)
}

func (m *ZooKeeper) acquire(ctx context.Context, name string, wait bool) (Lease, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	s, err := m.session()
	if err != nil {
		return nil, err
	}
	parent := m.opts.Root + "/" + name
	if err := s.ensurePath(parent); err != nil {
		return nil, fmt.Errorf("lease %s: %w", name, err)
	}
	data, _ := json.Marshal(Holder{Owner: m.opts.Owner, Address: m.opts.Address})
	path, err := s.conn.CreateProtectedEphemeralSequential(parent+"/lease-", data, zk.WorldACL(zk.PermAll))
	if err != nil {
		return nil, fmt.Errorf("lease %s: create node: %w", name, err)
	}
	node := path[strings.LastIndex(path, "/")+1:]
	giveUp := func(err error) (Lease, error) {
		_ = s.conn.Delete(path, -1) // best effort; it goes with the session anyway
		return nil, err
	}
	for {
		children, _, err := s.conn.Children(parent)
		if err != nil {
			return giveUp(fmt.Errorf("lease %s: list holders: %w", name, err))
		}
		children = sortBySequence(children)
		i := indexOf(children, node)
		if i < 0 {
			return nil, fmt.Errorf("lease %s: %w (its node is gone: the session expired)", name, ErrLost)
		}
		if i == 0 {
			return s.held(name, path)
		}
		if !wait {
			return giveUp(fmt.Errorf("lease %s: %w", name, ErrHeld))
		}
		ok, _, ch, err := s.conn.ExistsW(parent + "/" + children[i-1])
		if err != nil {
			return giveUp(fmt.Errorf("lease %s: watch the holder before us: %w", name, err))
		}
		if !ok {
			continue
		}
		select {
		case <-ch:
		case <-s.dead:
			return nil, fmt.Errorf("lease %s: %w while waiting", name, ErrLost)
		case <-ctx.Done():
			return giveUp(fmt.Errorf("lease %s: %w", name, ctx.Err()))
		}
	}
}

// Holder implements Directory: the data of the lowest node under the
// lease's parent (its holder's, or the next holder's while the lease is
// changing hands).
func (m *ZooKeeper) Holder(ctx context.Context, name string) (Holder, error) {
	if err := checkName(name); err != nil {
		return Holder{}, err
	}
	s, err := m.session()
	if err != nil {
		return Holder{}, err
	}
	parent := m.opts.Root + "/" + name
	for ctx.Err() == nil {
		children, _, err := s.conn.Children(parent)
		if errors.Is(err, zk.ErrNoNode) {
			return Holder{}, fmt.Errorf("lease %s: %w", name, ErrNoHolder)
		}
		if err != nil {
			return Holder{}, fmt.Errorf("lease %s: list holders: %w", name, err)
		}
		children = sortBySequence(children)
		if len(children) == 0 {
			return Holder{}, fmt.Errorf("lease %s: %w", name, ErrNoHolder)
		}
		data, _, err := s.conn.Get(parent + "/" + children[0])
		if errors.Is(err, zk.ErrNoNode) {
			continue // it just went: ask again
		}
		if err != nil {
			return Holder{}, fmt.Errorf("lease %s: read the holder: %w", name, err)
		}
		return parseHolder(data), nil
	}
	return Holder{}, ctx.Err()
}

// parseHolder reads a lease node's data: JSON, or the bare owner that
// nodes held before addresses were stored.
func parseHolder(data []byte) Holder {
	var h Holder
	if json.Unmarshal(data, &h) != nil {
		return Holder{Owner: string(data)}
	}
	return h
}

// held registers the lease whose node is path, now the lowest.
func (s *zkSession) held(name, path string) (Lease, error) {
	sent := s.m.opts.Now()
	ok, stat, err := s.conn.Exists(path)
	if err != nil || !ok {
		_ = s.conn.Delete(path, -1)
		return nil, fmt.Errorf("lease %s: read own node: %w", name, cmp.Or(err, ErrLost))
	}
	s.heardAt(sent)
	l := &zkLease{s: s, name: name, path: path, token: stat.Czxid, done: make(chan struct{})}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if isClosed(s.dead) {
		return nil, fmt.Errorf("lease %s: %w", name, ErrLost)
	}
	s.leases[l] = true
	return l, nil
}

// ensurePath creates path and its parents if missing.
func (s *zkSession) ensurePath(path string) error {
	p := ""
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		p += "/" + part
		if _, err := s.conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("create %s: %w", p, err)
		}
	}
	return nil
}

// Close releases every lease and closes the session.
func (m *ZooKeeper) Close() error {
	m.mu.Lock()
	m.closed = true
	s := m.sess
	m.mu.Unlock()
	if s == nil {
		return nil
	}
	m.mu.Lock()
	if !isClosed(s.dead) {
		close(s.dead)
		for l := range s.leases {
			l.loseLocked()
		}
		s.leases = nil
	}
	m.mu.Unlock()
	s.conn.Close() // ends the session: its nodes go at once
	return nil
}

// zkLease is a lease held through a ZooKeeper node.
type zkLease struct {
	s     *zkSession
	name  string
	path  string
	token int64
	done  chan struct{} // closed under s.m.mu
}

func (l *zkLease) Name() string          { return l.name }
func (l *zkLease) Token() int64          { return l.token }
func (l *zkLease) Done() <-chan struct{} { return l.done }

func (l *zkLease) Check() error {
	l.s.m.mu.Lock()
	defer l.s.m.mu.Unlock()
	if isClosed(l.done) {
		return ErrLost
	}
	return l.s.usableLocked()
}

func (l *zkLease) Release(ctx context.Context) error {
	l.s.m.mu.Lock()
	wasHeld := !isClosed(l.done)
	l.loseLocked()
	delete(l.s.leases, l)
	dead := isClosed(l.s.dead)
	l.s.m.mu.Unlock()
	if !wasHeld || dead {
		return nil
	}
	if err := l.s.conn.Delete(l.path, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("lease %s: release: %w", l.name, err)
	}
	return nil
}

func (l *zkLease) loseLocked() {
	if !isClosed(l.done) {
		close(l.done)
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// sequence returns the sequence number ZooKeeper appended to a node name
// (its last 10 digits), -1 if there is none.
func sequence(node string) int64 {
	if len(node) < 10 {
		return -1
	}
	n, err := strconv.ParseInt(node[len(node)-10:], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// sortBySequence returns the nodes that have a sequence number, in its
// order.
func sortBySequence(nodes []string) []string {
	out := nodes[:0]
	for _, n := range nodes {
		if sequence(n) >= 0 {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return sequence(out[i]) < sequence(out[j]) })
	return out
}

func indexOf(nodes []string, node string) int {
	for i, n := range nodes {
		if n == node {
			return i
		}
	}
	return -1
}

// zkLogger sends the ZooKeeper client's messages to slog at debug level.
type zkLogger struct{ l *slog.Logger }

func (z zkLogger) Printf(format string, args ...any) {
	z.l.Debug("zookeeper: " + fmt.Sprintf(format, args...))
}
