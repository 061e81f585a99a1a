package metering

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"postage"
)

// ReplicatedOptions makes a CHStore the store of one shard of a ClickHouse
// cluster, whose tables are Replicated (docs/SCALING.md).
type ReplicatedOptions struct {
	// Replicas are connections to every replica of the shard: the inserts
	// that may still land are looked for on each (system.processes is a
	// server's own). A replica that does not answer runs none.
	Replicas []driver.Conn
	// Check, if set, is called before every insert of events and fails it
	// when this process may not write the shard (its lease: see
	// internal/lease).
	Check func() error
}

// NewReplicatedCHStore returns the store of one shard of a cluster. conn
// should send the shard's insert quorum with every query (db.Quorum), so
// that an acknowledged insert (events, rollups, seals) is on a majority of
// the shard's replicas.
//
// Before the key index reads stored events back (StoredKeys,
// FirstIngested) and before the sealer seals, the store settles: it waits
// until no quorum insert of events is pending on the shard (an insert whose
// outcome was unknown, for example because the server that took it died,
// is then on a quorum of replicas, or ClickHouse gave it up) and until the
// replica conn reads from has pulled its tables' replication logs and
// fetched every part they name. So a read-back never misses an event that
// will later appear (which the ingester would count a second time), and a
// sealed hour never misses one.
func NewReplicatedCHStore(conn driver.Conn, o ReplicatedOptions) *CHStore {
	s := NewCHStore(conn)
	s.repl = &o
	s.sealed.Store(nil) // see sealedcache.go
	return s
}

// settlePoll is how often settle looks at a pending quorum insert.
const settlePoll = 100 * time.Millisecond

// settle waits until no quorum insert of events is pending on the shard and
// the replica read from has every logged part (see NewReplicatedCHStore).
// It does nothing on a single server.
func (s *CHStore) settle(ctx context.Context) error {
	if s.repl == nil {
		return nil
	}
	var path string
	if err := s.conn.QueryRow(ctx, zooKeeperPathSQL()).Scan(&path); err != nil {
		return fmt.Errorf("find the events table in ZooKeeper: %w", err)
	}
	for {
		var pending uint64
		q, args := quorumPendingSQL(path)
		if err := s.conn.QueryRow(ctx, q, args...).Scan(&pending); err != nil {
			return fmt.Errorf("look for a pending quorum insert: %w", err)
		}
		if pending == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", postage.Errorf(postage.EUNAVAILABLE, "an insert of events is not yet on a quorum of the shard's replicas (is a replica down?); retry later"), ctx.Err())
		case <-time.After(settlePoll):
		}
	}
	// Then until the replica has pulled its tables' replication logs and
	// fetched every part they name. Not SYSTEM SYNC REPLICA: it also waits
	// for merges, which may run for minutes and change no row.
	for {
		var behind uint64
		if err := s.conn.QueryRow(ctx, replicaBehindSQL()).Scan(&behind); err != nil {
			return fmt.Errorf("look at the replica's replication queue: %w", err)
		}
		if behind == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", postage.Errorf(postage.EUNAVAILABLE, "the shard's replica has not fetched every part yet; retry later"), ctx.Err())
		case <-time.After(settlePoll):
		}
	}
}

// replicaBehindSQL counts what the replica connected to still lacks of its
// shard's data: Replicated tables of the database whose replication log it
// has not pulled into its queue yet (log_pointer is the next entry to
// pull), and parts in its queue still to fetch. Merges are not counted:
// they change no row.
func replicaBehindSQL() string {
	return `SELECT
	(SELECT count() FROM system.replicas WHERE database = currentDatabase() AND log_max_index > 0 AND log_pointer <= log_max_index)
	+ (SELECT count() FROM system.replication_queue WHERE database = currentDatabase() AND type = 'GET_PART')`
}

// zooKeeperPathSQL reads the events table's path in ZooKeeper.
func zooKeeperPathSQL() string {
	return "SELECT zookeeper_path FROM system.replicas WHERE database = currentDatabase() AND table = 'events'"
}

// quorumPendingSQL counts the status node of a pending quorum insert under
// a Replicated table's ZooKeeper path (ClickHouse keeps it until the part
// is on a quorum of replicas).
func quorumPendingSQL(path string) (string, []any) {
	return "SELECT count() FROM system.zookeeper WHERE path = ? AND name = 'status'", []any{path + "/quorum"}
}

// runningInsertsReplicated is RunningInserts over every replica of the
// shard.
func (s *CHStore) runningInsertsReplicated(ctx context.Context, prefix string) ([]string, error) {
	var ids []string
	var errs []error
	answered := 0
	for _, r := range s.repl.Replicas {
		got, err := runningInserts(ctx, r, prefix)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		answered++
		ids = append(ids, got...)
	}
	if answered == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ids, nil
}
