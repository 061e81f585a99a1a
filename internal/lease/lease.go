// Package lease lets one process at a time own the writes of a shard: a
// ZooKeeper ephemeral node for API processes on several machines (ZooKeeper
// already coordinates the ClickHouse cluster, and a lease there does not
// depend on PostgreSQL), a file lock for processes on one machine.
//
// A lease carries a fencing token that grows with every new holder, and is
// checked before each write: a holder that cannot reach ZooKeeper stops at
// once (Check fails) and gives the lease up for good when its session may
// have expired, so it never writes while another process may hold it.
package lease

import (
	"context"
	"errors"
	"fmt"
	"regexp"
)

// Lease is the right to write what its name stands for (a shard), held by
// one process at a time.
type Lease interface {
	// Name is the name the lease was acquired under.
	Name() string
	// Token is the fencing token: greater for each new holder of the
	// name than for every holder before. A writer stamps its writes with
	// it (for example in their query ids), so a new holder can tell the
	// writes of an older one apart and wait for them to end.
	Token() int64
	// Check returns nil while the lease may be used to write: call it
	// before every write. ErrSuspended means the holder cannot reach the
	// coordinator for now (the lease may come back); ErrLost that it is
	// gone for good (acquire it again).
	Check() error
	// Done is closed when the lease is lost for good or released.
	Done() <-chan struct{}
	// Release gives the lease up, so another process may acquire it.
	Release(ctx context.Context) error
}

// Manager hands out leases.
type Manager interface {
	// Acquire waits until this process holds the lease on name, or ctx
	// ends.
	Acquire(ctx context.Context, name string) (Lease, error)
	// TryAcquire takes the lease on name if nobody holds it, else
	// returns ErrHeld at once.
	TryAcquire(ctx context.Context, name string) (Lease, error)
	// Close releases every lease of the manager and its resources.
	Close() error
}

// Holder describes the process that holds a lease.
type Holder struct {
	// Owner names the process for operators (host:pid).
	Owner string `json:"owner"`
	// Address is where the holder takes the lease's work (its advertised
	// URL); "" when it gave none.
	Address string `json:"address,omitempty"`
}

// Directory tells who holds a lease.
type Directory interface {
	// Holder returns the holder of the lease on name, ErrNoHolder when
	// nobody holds it.
	Holder(ctx context.Context, name string) (Holder, error)
}

var (
	// ErrNoHolder is Holder's answer when nobody holds the lease.
	ErrNoHolder = errors.New("nobody holds the lease")
	// ErrHeld is TryAcquire's answer when another holder has the lease.
	ErrHeld = errors.New("lease held by another process")
	// ErrSuspended: the coordinator cannot be reached; do not write until
	// Check returns nil again.
	ErrSuspended = errors.New("lease suspended: the coordinator cannot be reached")
	// ErrLost: the lease is gone for good (its session expired, it could
	// have expired, or it was released): acquire it again.
	ErrLost = errors.New("lease lost")
)

var validName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$`)

// checkName rejects names that are not one plain path or file name
// segment.
func checkName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("lease name %q: use 1-200 letters, digits, '_', '.', '-', not starting with '.' or '-'", name)
	}
	return nil
}
