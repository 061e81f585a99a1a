package billing

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"golang.org/x/sync/errgroup"

	"postage/pricing"
)

// CHUsage reads invoice usage straight from metering's ClickHouse events
// table (internal/db/migrations/clickhouse/0020_events.sql): exact,
// deduplicated, cut off at an ingestion time. It is the UsageSource
// internal/app wires in.
//
// Deduplication: the table is a ReplacingMergeTree on (customer_id, id)
// partitioned by month. FINAL makes any read exact but costs ClickHouse
// 18.16 three to five times a plain GROUP BY. When the month's partition is
// a single part produced by a merge (level > 0) it holds no duplicates, so
// the plain GROUP BY is exact and is used instead. A part written after the
// check holds only rows ingested after the run's cut-off (the cut-off lags
// the clock), which the cut-off filters out.
type CHUsage struct {
	Conn driver.Conn
	// Shards splits a FINAL read of every customer into this many
	// concurrent queries by a hash of the customer id (2 when zero):
	// ClickHouse 18.16 merges FINAL in one thread per query. All copies of
	// an event share its customer, so each shard deduplicates exactly.
	Shards int
}

var _ UsageSource = (*CHUsage)(nil)

// chString quotes s as a ClickHouse string literal.
func chString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func chTime(t time.Time) string { return "toDateTime(" + strconv.FormatInt(t.Unix(), 10) + ")" }

// monthlyUsageQuery builds the deduplicated monthly aggregate of a month
// up to an ingestion cut-off, for every customer or the given ones.
func monthlyUsageQuery(m pricing.Month, cutoff time.Time, customers []string, final bool) string {
	return monthlyUsageShardQuery(m, cutoff, customers, final, 0, 0)
}

// monthlyUsageShardQuery is monthlyUsageQuery for the customers whose id
// hashes to shard of shards (shards 0: all).
func monthlyUsageShardQuery(m pricing.Month, cutoff time.Time, customers []string, final bool, shard, shards int) string {
	var b strings.Builder
	b.WriteString("SELECT customer_id, toString(country), category, sum(quantity) FROM events ")
	if final {
		b.WriteString("FINAL ")
	}
	// PREWHERE applies the cut-off to the stored copies before FINAL
	// collapses them: an event counts once its first copy is ingested, and
	// a later re-sent copy never takes it back out.
	b.WriteString("PREWHERE ingested_at <= ")
	b.WriteString(chTime(cutoff))
	if shards > 1 {
		fmt.Fprintf(&b, " AND cityHash64(customer_id) %% %d = %d", shards, shard)
	}
	b.WriteString(" WHERE time >= ")
	b.WriteString(chTime(m.Start()))
	b.WriteString(" AND time < ")
	b.WriteString(chTime(m.End()))
	if customers != nil {
		b.WriteString(" AND customer_id IN (")
		for i, c := range customers {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(chString(c))
		}
		if len(customers) == 0 {
			b.WriteString("''")
		}
		b.WriteString(")")
	}
	b.WriteString(" GROUP BY customer_id, country, category")
	return b.String()
}

// lateUsageQuery builds the look-up of customers with usage of a month
// ingested in (after, upTo].
func lateUsageQuery(m pricing.Month, after, upTo time.Time) string {
	return "SELECT customer_id, max(ingested_at) FROM events WHERE time >= " + chTime(m.Start()) + " AND time < " + chTime(m.End()) +
		" AND ingested_at > " + chTime(after) + " AND ingested_at <= " + chTime(upTo) + " GROUP BY customer_id"
}

// partsQuery counts the active parts of a month's partition and their
// lowest merge level.
func partsQuery(m pricing.Month) string {
	return fmt.Sprintf("SELECT count(), min(level) FROM system.parts WHERE database = currentDatabase() AND table = 'events' AND active AND partition_id = '%04d%02d'", m.Year, int(m.Month))
}

// needsFinal reports whether reading month m exactly needs FINAL.
func (u *CHUsage) needsFinal(ctx context.Context, m pricing.Month) (bool, error) {
	var parts uint64
	var level uint32
	if err := u.Conn.QueryRow(ctx, partsQuery(m)).Scan(&parts, &level); err != nil {
		return true, fmt.Errorf("clickhouse: %w", err)
	}
	return !(parts == 0 || (parts == 1 && level > 0)), nil
}

// MonthlyUsage implements UsageSource.
func (u *CHUsage) MonthlyUsage(ctx context.Context, m pricing.Month, cutoff time.Time, customers []string) ([]UsageRow, error) {
	final, err := u.needsFinal(ctx, m)
	if err != nil {
		return nil, err
	}
	shards := u.Shards
	if shards <= 0 {
		shards = 2
	}
	if !final || customers != nil {
		shards = 1
	}
	parts := make([][]UsageRow, shards)
	g, gctx := errgroup.WithContext(ctx)
	for k := 0; k < shards; k++ {
		g.Go(func() error {
			q := monthlyUsageShardQuery(m, cutoff, customers, final, k, shards)
			var err error
			parts[k], err = u.query(gctx, q)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if shards == 1 {
		return parts[0], nil
	}
	var out []UsageRow
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, nil
}

func (u *CHUsage) query(ctx context.Context, q string) ([]UsageRow, error) {
	rows, err := u.Conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	defer rows.Close()
	var out []UsageRow
	for rows.Next() {
		var r UsageRow
		var q uint64
		if err := rows.Scan(&r.CustomerID, &r.Country, &r.Category, &q); err != nil {
			return nil, fmt.Errorf("clickhouse: %w", err)
		}
		if q > uint64(pricing.MaxQuantity) {
			return nil, fmt.Errorf("usage of %s %s %s: quantity %d too large", r.CustomerID, r.Country, r.Category, q)
		}
		r.Quantity = int64(q)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	return out, nil
}

// LateUsage implements UsageSource. It does not deduplicate: a re-sent
// event at most makes a customer a candidate whose re-rating changes
// nothing.
func (u *CHUsage) LateUsage(ctx context.Context, m pricing.Month, after, upTo time.Time) (map[string]time.Time, error) {
	rows, err := u.Conn.Query(ctx, lateUsageQuery(m, after, upTo))
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var c string
		var t time.Time
		if err := rows.Scan(&c, &t); err != nil {
			return nil, fmt.Errorf("clickhouse: %w", err)
		}
		out[c] = t.UTC()
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	return out, nil
}
