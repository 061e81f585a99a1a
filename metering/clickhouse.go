package metering

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"postage"
	"postage/metering/keyindex"
)

// CHStore is the ClickHouse event store: the events table (written by the
// Ingester) and the usage rollups (written by the Sealer), read by usage
// queries (reads.go).
type CHStore struct {
	conn driver.Conn
	repl *ReplicatedOptions // one shard of a cluster (replicated.go); nil on one server
	reads
}

var (
	_ EventStore = (*CHStore)(nil)
	_ Usage      = (*CHStore)(nil)
)

// NewCHStore returns a store on a native-protocol ClickHouse connection
// whose default database holds the events table.
func NewCHStore(conn driver.Conn) *CHStore {
	s := &CHStore{conn: conn, reads: newReads()}
	s.SetSealedCache(DefaultSealedCacheBytes)
	return s
}

// insertBlockRows is the size of the blocks Insert sends.
const insertBlockRows = 4096

// Insert writes events with one columnar insert.
//
// The events go in blocks of insertBlockRows rows, each sent as soon as it
// is full: the driver's columns then grow once to a block's size and are
// re-used, where one block of a whole flush made them grow step by step to
// 40,000 rows — a quarter of everything the server allocated under
// sustained ingest (docs/METERING.md, "Performance and limits"). ClickHouse
// joins the blocks of one INSERT into one part (min_insert_block_size_rows,
// 1,048,576 by default; TestInsertInBlocksIsOnePart), so this costs no
// extra parts.
func (s *CHStore) Insert(ctx context.Context, events []Event) error {
	return s.InsertList(ctx, Events(events))
}

// InsertList implements EventStore: Insert of an EventList. An insert id
// that ctx carries (WithInsertID) becomes the query's id, so that
// RunningInserts finds the insert while ClickHouse still runs it.
func (s *CHStore) InsertList(ctx context.Context, events EventList) error {
	total := events.Len()
	if total == 0 {
		return nil
	}
	if s.repl != nil && s.repl.Check != nil {
		if err := s.repl.Check(); err != nil {
			return fmt.Errorf("insert events: %w: %w", postage.Errorf(postage.ENOTOWNER, "this process no longer owns the writes of the customer's shard; retry"), err)
		}
	}
	qctx := ctx
	if id := insertID(ctx); id != "" {
		qctx = clickhouse.Context(ctx, clickhouse.WithQueryID(id))
	}
	batch, err := s.conn.PrepareBatch(qctx, insertEventsSQL)
	if err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	defer batch.Abort()
	n := min(total, insertBlockRows)
	cust, id, country, cat := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	ptype, pmodel, source, status := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	ts, ing := make([]time.Time, n), make([]time.Time, n)
	qty, hash := make([]uint64, n), make([]uint64, n)
	for start := 0; start < total; start += n {
		m := min(n, total-start)
		for i := range m {
			e := events.At(start + i)
			cust[i], id[i], country[i], cat[i] = e.CustomerID, e.ID, e.Country, e.Category
			ptype[i], pmodel[i], source[i], status[i] = e.PricingType, e.PricingModel, e.Source, e.Status
			ts[i], ing[i], qty[i], hash[i] = e.Time, e.IngestedAt, e.Quantity, e.PayloadHash
		}
		// In the column order of insertEventsSQL.
		for i, col := range []any{cust[:m], id[:m], ts[:m], country[:m], cat[:m], ptype[:m], pmodel[:m], source[:m], status[:m], qty[:m], hash[:m], ing[:m]} {
			if err := batch.Column(i).Append(col); err != nil {
				return fmt.Errorf("insert events: column %d: %w", i, err)
			}
		}
		if start+m < total {
			// Flush runs without the context's deadline (the Send below
			// has it): stop between blocks when the context is done, and
			// the connection bounds each write (db.boundedWriteConn).
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("insert events: %w", err)
			}
			if err := batch.Flush(); err != nil {
				return fmt.Errorf("insert events: %w", err)
			}
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	return nil
}

// storedKeysBatch is how many entries StoredKeys hands over at a time.
const storedKeysBatch = 1 << 16

// StoredKeys implements EventStore: it reads the fingerprint, payload hash
// and time of the events ingested in [from, to) (to zero: no end) whose
// time is at or after since, a range of the events table's sorting key.
func (s *CHStore) StoredKeys(ctx context.Context, from, to, since time.Time, fn func([]keyindex.Entry) error) (time.Time, error) {
	if err := s.settle(ctx); err != nil {
		return time.Time{}, fmt.Errorf("read stored keys: %w", err)
	}
	q, args := storedKeysSQL(from, to, since)
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return time.Time{}, fmt.Errorf("read stored keys: %w", err)
	}
	defer rows.Close()
	batch := make([]keyindex.Entry, 0, storedKeysBatch)
	var latest uint32
	for rows.Next() {
		var e keyindex.Entry
		var ing uint32
		if err := rows.Scan(&e.FP.Hi, &e.FP.Lo, &e.Value.Hash, &e.Value.Time, &ing); err != nil {
			return time.Time{}, fmt.Errorf("read stored keys: %w", err)
		}
		latest = max(latest, ing)
		if batch = append(batch, e); len(batch) == cap(batch) {
			if err := fn(batch); err != nil {
				return time.Time{}, err
			}
			batch = batch[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return time.Time{}, fmt.Errorf("read stored keys: %w", err)
	}
	if len(batch) > 0 {
		if err := fn(batch); err != nil {
			return time.Time{}, err
		}
	}
	if latest == 0 {
		return time.Time{}, nil
	}
	return time.Unix(int64(latest), 0).UTC(), nil
}

// FirstIngested implements EventStore.
func (s *CHStore) FirstIngested(ctx context.Context, from time.Time) (time.Time, error) {
	if err := s.settle(ctx); err != nil {
		return time.Time{}, fmt.Errorf("read the first ingestion time: %w", err)
	}
	q, args := firstIngestedSQL(from)
	var first uint32
	var n uint64
	if err := s.conn.QueryRow(ctx, q, args...).Scan(&first, &n); err != nil {
		return time.Time{}, fmt.Errorf("read the first ingestion time: %w", err)
	}
	if n == 0 {
		return time.Time{}, nil
	}
	return time.Unix(int64(first), 0).UTC(), nil
}

// RunningInserts implements EventStore: the ids of the queries ClickHouse
// is running whose ids start with prefix (system.processes; of every
// replica of a cluster's shard).
func (s *CHStore) RunningInserts(ctx context.Context, prefix string) ([]string, error) {
	if s.repl != nil && len(s.repl.Replicas) > 0 {
		return s.runningInsertsReplicated(ctx, prefix)
	}
	return runningInserts(ctx, s.conn, prefix)
}

func runningInserts(ctx context.Context, conn driver.Conn, prefix string) ([]string, error) {
	q, args := runningQueriesSQL(prefix)
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list running inserts: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list running inserts: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list running inserts: %w", err)
	}
	return ids, nil
}

// Conflicts lists up to limit events of the month that are stored more
// than once (see conflictsSQL): an audit for operators, empty while the
// look-up's invariant holds.
func (s *CHStore) Conflicts(ctx context.Context, month time.Time, limit int) ([]Key, error) {
	q, args := conflictsSQL(month, limit)
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query conflicting events: %w", err)
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		var k Key
		var n uint64
		if err := rows.Scan(&k.CustomerID, &k.ID, &n); err != nil {
			return nil, fmt.Errorf("query conflicting events: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}
