package lease

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"
)

// Local is a Manager for the processes of one machine: a lease is an
// exclusive lock (flock, LockFileEx on Windows) on Dir/<name>.lock, which
// the operating system drops when its holder dies, so one server needs no
// coordinator. The fencing token is a counter in Dir/<name>.token, raised
// by each new holder while it holds the lock. Put Dir next to what the
// lease protects (a shard's key index), on a local disk: file locks on
// network file systems are not to be trusted.
type Local struct {
	dir string
}

var _ Manager = (*Local)(nil)

// NewLocal returns a Manager keeping its lock files in dir, created if
// missing.
func NewLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	return &Local{dir: dir}, nil
}

// lockRetry is how often Acquire tries a lock another process holds.
const lockRetry = 50 * time.Millisecond

// Acquire implements Manager.
func (m *Local) Acquire(ctx context.Context, name string) (Lease, error) {
	return m.acquire(ctx, name, true)
}

// TryAcquire implements Manager.
func (m *Local) TryAcquire(ctx context.Context, name string) (Lease, error) {
	return m.acquire(ctx, name, false)
}

func (m *Local) acquire(ctx context.Context, name string, wait bool) (Lease, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	fl := flock.New(filepath.Join(m.dir, name+".lock"))
	var ok bool
	var err error
	if wait {
		ok, err = fl.TryLockContext(ctx, lockRetry)
	} else {
		ok, err = fl.TryLock()
	}
	if err != nil {
		_ = fl.Close()
		return nil, fmt.Errorf("lease %s: lock %s: %w", name, fl.Path(), err)
	}
	if !ok {
		_ = fl.Close()
		return nil, fmt.Errorf("lease %s: %w", name, ErrHeld)
	}
	token, err := nextToken(filepath.Join(m.dir, name+".token"))
	if err != nil {
		_ = fl.Unlock()
		return nil, fmt.Errorf("lease %s: %w", name, err)
	}
	return &localLease{name: name, fl: fl, token: token, done: make(chan struct{})}, nil
}

// nextToken raises the counter in path by one and returns it, durably:
// written to a temporary file, synced and renamed over path.
func nextToken(path string) (int64, error) {
	var n int64
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return 0, fmt.Errorf("read fencing token: %w", err)
	default:
		if n, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil {
			return 0, fmt.Errorf("fencing token %s is damaged (%q): remove it while no process holds the lease", path, b)
		}
	}
	n++
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, fmt.Errorf("write fencing token: %w", err)
	}
	_, err = f.WriteString(strconv.FormatInt(n, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return 0, fmt.Errorf("write fencing token: %w", err)
	}
	return n, nil
}

// Close does nothing: each lease holds its own lock; Release them.
func (m *Local) Close() error { return nil }

// localLease is a lease held through a file lock. It is lost only when
// released: the operating system keeps the lock as long as the process.
type localLease struct {
	name  string
	fl    *flock.Flock
	token int64

	once sync.Once
	done chan struct{}
}

func (l *localLease) Name() string          { return l.name }
func (l *localLease) Token() int64          { return l.token }
func (l *localLease) Done() <-chan struct{} { return l.done }

func (l *localLease) Check() error {
	select {
	case <-l.done:
		return ErrLost
	default:
		return nil
	}
}

func (l *localLease) Release(context.Context) error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.fl.Unlock()
		_ = l.fl.Close()
	})
	if err != nil {
		return fmt.Errorf("lease %s: release: %w", l.name, err)
	}
	return nil
}
