package db

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"postage"
)

// Quorum is how an insert into a Replicated table is acknowledged: only
// once Replicas replicas of the shard have it (ClickHouse's insert_quorum),
// so a 2xx never rests on one server. ClickHouse takes one pending quorum
// insert per table at a time (a second one fails with code 286): each
// shard's inserts must come from one writer, one after another.
type Quorum struct {
	// Replicas is insert_quorum; 0 or 1 means no quorum (one server, or a
	// shard of one replica).
	Replicas int
	// Timeout is insert_quorum_timeout: how long an insert waits for the
	// other replicas before it fails with "unknown status" (code 319); 0
	// means DefaultQuorumTimeout. ClickHouse's own default, 10 minutes,
	// would hold a shard's ingest that long when a replica dies mid-insert.
	Timeout time.Duration
}

// DefaultQuorumTimeout is the insert_quorum_timeout of a Quorum that names
// none.
const DefaultQuorumTimeout = 10 * time.Second

// Settings returns q's query settings (nil without a quorum), for callers
// that set other settings too: clickhouse.WithSettings replaces the
// settings an earlier WithSettings put on a context, so merge them.
func (q Quorum) Settings() clickhouse.Settings {
	if q.Replicas <= 1 {
		return nil
	}
	timeout := q.Timeout
	if timeout <= 0 {
		timeout = DefaultQuorumTimeout
	}
	return clickhouse.Settings{
		"insert_quorum":         q.Replicas,
		"insert_quorum_timeout": int(timeout.Milliseconds()),
	}
}

// WithInsertQuorum returns ctx carrying q's settings for the inserts run
// with it (Exec of INSERT ... SELECT, PrepareBatch then Send). It keeps the
// context's other query options (query id, external tables) but replaces
// settings set with clickhouse.WithSettings: see Quorum.Settings.
func WithInsertQuorum(ctx context.Context, q Quorum) context.Context {
	s := q.Settings()
	if s == nil {
		return ctx
	}
	return clickhouse.Context(ctx, clickhouse.WithSettings(s))
}

// InsertQuorum runs insert with q's settings on its context and returns
// its error classified by ClassifyInsert.
func InsertQuorum(ctx context.Context, q Quorum, insert func(context.Context) error) error {
	return ClassifyInsert(insert(WithInsertQuorum(ctx, q)))
}

// Sentinels of a failed insert's outcome, matched with errors.Is on what
// ClassifyInsert returns.
var (
	// ErrNotWritten: the insert failed before any of it was stored (no
	// quorum of live replicas, the previous quorum insert not yet
	// replicated, ZooKeeper unreachable, too many parts, server
	// unreachable). Nothing to check; retry later.
	ErrNotWritten = errors.New("insert refused, nothing stored")
	// ErrUnknownStatus: the insert may or may not have been stored (the
	// quorum not reached in time, the connection lost mid-insert, the
	// context ended while it ran). Acknowledge nothing of it before
	// checking what is stored, or retry the identical block: a Replicated
	// table ignores a block it already has (insert deduplication).
	ErrUnknownStatus = errors.New("insert status unknown")
)

// InsertError is a failed insert whose outcome is known to be one of the
// two above. It unwraps to its sentinel, to a postage.Error with code
// EUNAVAILABLE (answered 503, retry later) and to its cause.
type InsertError struct {
	Unknown bool  // ErrUnknownStatus; else ErrNotWritten
	Code    int32 // the ClickHouse exception code, 0 for a network failure
	Err     error // the cause
}

var errStoreUnavailable = &postage.Error{Code: postage.EUNAVAILABLE, Message: "the event store cannot take writes right now; retry later"}

func (e *InsertError) Error() string {
	if e.Unknown {
		return "insert status unknown (it may be stored): " + e.Err.Error()
	}
	return "insert refused, nothing stored: " + e.Err.Error()
}

// Unwrap returns the sentinel, the EUNAVAILABLE postage.Error and the cause.
func (e *InsertError) Unwrap() []error {
	sentinel := ErrNotWritten
	if e.Unknown {
		sentinel = ErrUnknownStatus
	}
	return []error{sentinel, errStoreUnavailable, e.Err}
}

// ClickHouse error codes of failed inserts into Replicated tables
// (docs/notes/clickhouse-18.16-cluster.md).
const (
	codeReadonly                  = 164 // "Replica is not active right now" (also a read-only user)
	codeNoZooKeeper               = 225 // no ZooKeeper session, or it expired
	codeTableIsReadOnly           = 242 // the replica has lost ZooKeeper
	codeUnexpectedZooKeeperError  = 244 // e.g. the network failed while the part was being committed
	codeTooManyParts              = 252 // merges are behind: back-pressure
	codeTooFewLiveReplicas        = 285 // fewer live replicas than the quorum
	codeUnsatisfiedQuorumPrevious = 286 // the previous quorum insert is not on a quorum yet
	codeUnknownStatusOfInsert     = 319 // quorum not reached in time, or ZooKeeper lost while waiting
	codeKeeperException           = 999 // ZooKeeper failed before the part was committed
)

// ClassifyInsert returns nil for nil, an *InsertError for a failure whose
// outcome is known (see ErrNotWritten, ErrUnknownStatus), and err as it is
// otherwise (bad data, a bug: nothing a retry would fix).
func ClassifyInsert(err error) error {
	if err == nil {
		return nil
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		switch ex.Code {
		case codeNoZooKeeper, codeTableIsReadOnly, codeTooManyParts, codeTooFewLiveReplicas,
			codeUnsatisfiedQuorumPrevious, codeKeeperException:
			return &InsertError{Code: ex.Code, Err: err}
		case codeReadonly:
			if strings.Contains(ex.Message, "Replica is not active") {
				return &InsertError{Code: ex.Code, Err: err}
			}
		case codeUnexpectedZooKeeperError, codeUnknownStatusOfInsert:
			return &InsertError{Unknown: true, Code: ex.Code, Err: err}
		}
		return err
	}
	if refusedBeforeSending(err) {
		return &InsertError{Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return &InsertError{Unknown: true, Err: err}
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return &InsertError{Unknown: true, Err: err}
	}
	return err
}

// refusedBeforeSending reports whether err says no connection could be had:
// nothing was sent, so nothing can have been stored.
func refusedBeforeSending(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, clickhouse.ErrAcquireConnTimeout)
}
