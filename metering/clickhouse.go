package metering

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// CHStore is the ClickHouse event store: the events table of migration
// 0020_events.sql, written by the Ingester and read by usage queries.
type CHStore struct {
	conn driver.Conn
}

var (
	_ EventStore = (*CHStore)(nil)
	_ Usage      = (*CHStore)(nil)
)

// NewCHStore returns a store on a native-protocol ClickHouse connection
// whose default database holds the events table.
func NewCHStore(conn driver.Conn) *CHStore { return &CHStore{conn: conn} }

// Existing returns the stored payload hash of each key that is stored with
// a time at or after since (zero: any). The keys travel as external tables
// (their fingerprints, and their distinct customers), so a batch of any
// size is one query; since prunes older monthly partitions. The answer may
// hold stored keys that were not asked for (a 64-bit fingerprint
// collision, vanishingly rare) under their own key: callers look up the
// keys they asked about, which is exact, and the batch pays no
// 40,000-entry set to filter them out.
func (s *CHStore) Existing(ctx context.Context, keys []Key, since time.Time) (map[Key]uint64, error) {
	found := map[Key]uint64{}
	if len(keys) == 0 {
		return found, nil
	}
	hashes := make([]uint64, len(keys))
	var h keyHasher
	customers := make([]string, 0, 64)
	seen := make(map[string]struct{}, 64)
	for i, k := range keys {
		hashes[i] = h.hash(k.CustomerID, k.ID)
		if i > 0 && k.CustomerID == keys[i-1].CustomerID {
			continue // a request's events are usually one customer's
		}
		if _, ok := seen[k.CustomerID]; !ok {
			seen[k.CustomerID] = struct{}{}
			customers = append(customers, k.CustomerID)
		}
	}
	hashTbl, err := ext.NewTable("_keys", ext.Column("key_hash", "UInt64"))
	if err == nil {
		_, err = hashTbl.Block().Columns[0].Append(hashes)
	}
	if err != nil {
		return nil, fmt.Errorf("look up event ids: %w", err)
	}
	custTbl, err := ext.NewTable("_customers", ext.Column("customer_id", "String"))
	if err == nil {
		_, err = custTbl.Block().Columns[0].Append(customers)
	}
	if err != nil {
		return nil, fmt.Errorf("look up event ids: %w", err)
	}
	query, args := existingSQL(since)
	rows, err := s.conn.Query(clickhouse.Context(ctx, clickhouse.WithExternalTable(hashTbl, custTbl)), query, args...)
	if err != nil {
		return nil, fmt.Errorf("look up event ids: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k Key
		var h uint64
		if err := rows.Scan(&k.CustomerID, &k.ID, &h); err != nil {
			return nil, fmt.Errorf("look up event ids: %w", err)
		}
		if old, ok := found[k]; !ok || h > old {
			found[k] = h // two rows of one id (a race): the greatest hash is the one FINAL keeps
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up event ids: %w", err)
	}
	return found, nil
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
	if len(events) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, insertEventsSQL)
	if err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	defer batch.Abort()
	n := min(len(events), insertBlockRows)
	cust, id, country, cat := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	ptype, pmodel, source, status := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	ts, ing := make([]time.Time, n), make([]time.Time, n)
	qty, hash := make([]uint64, n), make([]uint64, n)
	for start := 0; start < len(events); start += n {
		block := events[start:min(start+n, len(events))]
		m := len(block)
		for i := range block {
			e := &block[i]
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
		if start+m < len(events) {
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

// Usage implements Usage.
func (s *CHStore) Usage(ctx context.Context, q UsageQuery) ([]UsageRow, error) {
	query, args, err := usageSQL(q)
	if err != nil {
		return nil, err
	}
	cols, _ := dimColumns(q.GroupBy, ByCountry, ByCategory)
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query usage of %s: %w", q.CustomerID, err)
	}
	defer rows.Close()
	var out []UsageRow
	for rows.Next() {
		r := UsageRow{CustomerID: q.CustomerID}
		dest := []any{nil}
		var b32 uint32
		var b64 uint64
		if q.Window == Month {
			dest[0] = &b32
		} else {
			dest[0] = &b64
		}
		dest = append(dest, dimDest(&r, cols)...)
		dest = append(dest, &r.Quantity, &r.Events)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("query usage of %s: %w", q.CustomerID, err)
		}
		if q.Window == Month {
			r.Start = time.Date(int(b32/100), time.Month(b32%100), 1, 0, 0, 0, 0, time.UTC)
		} else {
			r.Start = time.Unix(int64(b64), 0).UTC()
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query usage of %s: %w", q.CustomerID, err)
	}
	return out, nil
}

func dimDest(r *UsageRow, cols []string) []any {
	var d []any
	for _, c := range cols {
		switch c {
		case "customer_id":
			d = append(d, &r.CustomerID)
		case "country":
			d = append(d, &r.Country)
		case "category":
			d = append(d, &r.Category)
		}
	}
	return d
}

// Summary implements Usage.
func (s *CHStore) Summary(ctx context.Context, q SummaryQuery) ([]UsageRow, error) {
	query, args, err := summarySQL(q)
	if err != nil {
		return nil, err
	}
	cols, _ := dimColumns(q.GroupBy, ByCustomer, ByCountry, ByCategory)
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query usage summary: %w", err)
	}
	defer rows.Close()
	start := MonthStart(q.Month)
	var out []UsageRow
	for rows.Next() {
		r := UsageRow{Start: start}
		dest := append(dimDest(&r, cols), &r.Quantity, &r.Events)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("query usage summary: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query usage summary: %w", err)
	}
	return out, nil
}

// CustomerMonth implements Usage.
func (s *CHStore) CustomerMonth(ctx context.Context, customerID string, month, asOf time.Time) ([]Aggregate, error) {
	return s.MonthlyAggregates(ctx, month, asOf, customerID)
}

// LateIngested implements Usage.
func (s *CHStore) LateIngested(ctx context.Context, month, after, upTo time.Time) (map[string]time.Time, error) {
	q, args := lateSQL(month, after, upTo)
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query late events: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var c string
		var ts uint32
		if err := rows.Scan(&c, &ts); err != nil {
			return nil, fmt.Errorf("query late events: %w", err)
		}
		out[c] = time.Unix(int64(ts), 0).UTC()
	}
	return out, rows.Err()
}

// internedString scans a string column into *s, one string per distinct
// value (encoding.BinaryUnmarshaler: the driver hands over the value's
// bytes, and for a FixedString makes no string of its own).
type internedString struct {
	s      *string
	intern map[string]string
}

func (d *internedString) UnmarshalBinary(b []byte) error {
	if v, ok := d.intern[string(b)]; ok { // no allocation for the look-up
		*d.s = v
		return nil
	}
	v := string(b)
	d.intern[v] = v
	*d.s = v
	return nil
}

// aggregates runs a monthly aggregate query and hands fn each row as it
// arrives (the *Aggregate is reused: fn copies what it keeps). A month of
// every customer is 600,000 rows: streaming them spares callers that group
// them anyway a slice that grows, and is copied, up to 40 MB.
func (s *CHStore) aggregates(ctx context.Context, q string, args []any, fn func(*Aggregate) error) error {
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("query monthly aggregates: %w", err)
	}
	defer rows.Close()
	// There are a few hundred countries and categories: one string of
	// each is kept (interned), so a month of 600,000 rows holds 1.2 million
	// strings fewer, and callers comparing them mostly compare pointers.
	// Countries (FixedString) are interned straight from the column's
	// bytes, without a string per row; the driver makes a string of every
	// category (String) before handing over its bytes. (Customer ids, 50,000 in 600,000 rows, cost
	// more to intern than they save: the look-ups miss the cache.)
	intern := map[string]string{}
	var a Aggregate
	country := internedString{s: &a.Country, intern: intern}
	category := internedString{s: &a.Category, intern: intern}
	ptype := internedString{s: &a.PricingType, intern: intern}
	pmodel := internedString{s: &a.PricingModel, intern: intern}
	dest := []any{&a.CustomerID, &country, &category, &ptype, &pmodel, &a.Quantity, &a.Events} // one slice for every row
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("query monthly aggregates: %w", err)
		}
		if err := fn(&a); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("query monthly aggregates: %w", err)
	}
	return nil
}

// CustomersWithUsage implements Usage.
func (s *CHStore) CustomersWithUsage(ctx context.Context, month time.Time) ([]string, error) {
	q, args := customersSQL(month)
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query customers with usage: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("query customers with usage: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
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
