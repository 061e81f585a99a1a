package db

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"postage"
)

// IsOutage reports whether err was caused by a database that is
// unreachable, stalled, restarting, shutting down or shedding load, as
// opposed to a bug (a bad query, a constraint, a scan into the wrong type).
// It decides from the cause in err's chain, never from the code an
// upper layer gave it:
//
//   - network errors (refused, reset, broken pipe, unreachable, any
//     net.Error such as an i/o timeout), a connection closed in the middle
//     of an answer (io.EOF, io.ErrUnexpectedEOF);
//   - a call that ran out of time or whose caller left (context deadline
//     or cancellation), including a pool that could not hand out a
//     connection in time;
//   - PostgreSQL: a failed connect (pgconn.ConnectError), pgconn's
//     timeout and safe-to-retry errors, a closed pool, and the SQLSTATEs of
//     connection exceptions (class 08), insufficient resources (class 53),
//     operator intervention (57P01 admin shutdown, 57P02 crash shutdown,
//     57P03 cannot connect now, 57P04, 57P05, 57014 query canceled by a
//     statement timeout) and a read-only standby (25006, during a fail-over);
//   - ClickHouse: clickhouse-go's connection errors (acquire timeout,
//     closed connection) and the server exceptions that mean "not now"
//     (timeouts, socket and network errors, too many queries or parts,
//     memory limit, read-only or missing replicas, ZooKeeper/Keeper
//     trouble, overload; see chOutageCodes).
func IsOutage(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	for _, e := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ETIMEDOUT, io.EOF, io.ErrUnexpectedEOF, net.ErrClosed} {
		if errors.Is(err, e) {
			return true
		}
	}
	// PostgreSQL (pgx).
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) || errors.Is(err, puddle.ErrClosedPool) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pgOutageCode(pe.Code)
	}
	// ClickHouse (clickhouse-go).
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return chOutageCodes[ex.Code]
	}
	if errors.Is(err, clickhouse.ErrAcquireConnTimeout) || errors.Is(err, clickhouse.ErrConnectionClosed) {
		return true
	}
	// clickhouse-go reports a use of a connection the server closed with
	// errors that have no type of their own.
	msg := err.Error()
	return strings.Contains(msg, "attempted sending on closed connection") ||
		strings.Contains(msg, "attempted reading on closed connection")
}

// pgOutageCode reports whether a SQLSTATE means the server cannot serve now.
func pgOutageCode(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"): // connection exception
		return true
	case strings.HasPrefix(code, "53"): // insufficient resources: too many connections, out of memory, disk full
		return true
	}
	switch code {
	case "57P01", "57P02", "57P03", "57P04", "57P05", // admin/crash shutdown, cannot connect now, database dropped, idle session timeout
		"57014", // query_canceled: a statement timeout
		"25006": // read_only_sql_transaction: a standby during fail-over
		return true
	}
	return false
}

// chOutageCodes are the ClickHouse exception codes that mean the server (or
// its cluster) cannot serve the query now, though it would later.
var chOutageCodes = map[int32]bool{
	95:  true, // CANNOT_READ_FROM_SOCKET
	96:  true, // CANNOT_WRITE_TO_SOCKET
	159: true, // TIMEOUT_EXCEEDED
	160: true, // TOO_SLOW
	202: true, // TOO_MANY_SIMULTANEOUS_QUERIES
	203: true, // NO_FREE_CONNECTION
	209: true, // SOCKET_TIMEOUT
	210: true, // NETWORK_ERROR
	225: true, // NO_ZOOKEEPER
	241: true, // MEMORY_LIMIT_EXCEEDED
	242: true, // TABLE_IS_READ_ONLY
	244: true, // UNEXPECTED_ZOOKEEPER_ERROR
	252: true, // TOO_MANY_PARTS
	254: true, // NO_ACTIVE_REPLICAS
	265: true, // NO_AVAILABLE_REPLICA
	279: true, // ALL_CONNECTION_TRIES_FAILED
	285: true, // TOO_FEW_LIVE_REPLICAS
	286: true, // UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE
	289: true, // REPLICA_IS_NOT_IN_QUORUM
	319: true, // UNKNOWN_STATUS_OF_INSERT
	364: true, // RECEIVED_ERROR_TOO_MANY_REQUESTS
	369: true, // ALL_REPLICAS_ARE_STALE
	394: true, // QUERY_WAS_CANCELLED
	415: true, // ALL_REPLICAS_LOST
	439: true, // CANNOT_SCHEDULE_TASK
	745: true, // SERVER_OVERLOADED
	999: true, // KEEPER_EXCEPTION
}

// unavailableMessage is what callers see of an outage.
const unavailableMessage = "a database is unavailable, retry later"

// MarkOutage returns err with the code EUNAVAILABLE when it has no code of
// its own (postage.ErrorCode is EINTERNAL) and IsOutage says a database
// outage caused it; any other err is returned unchanged. The cause stays
// in the chain (both are wrapped with %w), for logs and the CLI. what
// names the operation, for the caller-safe message ("" for a generic one).
func MarkOutage(err error, what string) error {
	if postage.ErrorCode(err) != postage.EINTERNAL || !IsOutage(err) {
		return err
	}
	msg := unavailableMessage
	if what != "" {
		msg = what + ": " + msg
	}
	return fmt.Errorf("%w: %w", postage.Errorf(postage.EUNAVAILABLE, "%s", msg), err)
}
