package db

import (
	"context"
	"fmt"
	"strconv"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// clickHouseGoMigrations are the ClickHouse migrations that SQL files alone
// cannot make safe to re-run. They sort with the embedded files by version.
var clickHouseGoMigrations = []Migration{
	{Version: 22, Name: "0022_events_by_ingest_time.go", Run: migrateEventsByIngestTime},
}

// EventsTableSQL creates the events table (named name) in its settled
// layout (docs/METERING.md, "Storage"):
//
//   - one row per accepted event: uniqueness of (customer_id, id) is
//     enforced before the insert by the meter's key index, so a plain
//     MergeTree holds exactly what was accepted and no read needs FINAL;
//   - partitioned by the day of ingestion and sorted by the hour of
//     ingestion first: the reads that touch raw events (sealing an ingest
//     hour into the rollups, the live tail after the last sealed hour,
//     rebuilding the key index from a watermark) are ranges of the sorting
//     key, whatever the table's size;
//   - the upstream's pricing type and model, the source and the billable
//     status travel with each event (empty for events stored before they
//     were recorded).
func EventsTableSQL(name string) string {
	return `CREATE TABLE ` + name + ` (
    customer_id   String,
    id            String,
    time          DateTime('UTC'),
    country       FixedString(2),
    category      String,
    pricing_type  String,
    pricing_model String,
    source        String,
    status        String,
    quantity      UInt64,
    payload_hash  UInt64,
    ingested_at   DateTime('UTC')
) ENGINE = MergeTree
PARTITION BY toYYYYMMDD(ingested_at)
ORDER BY (toStartOfHour(ingested_at), customer_id, id)
SETTINGS index_granularity = 1024`
}

// migrateEventsByIngestTime moves the events table of migrations 0020 and
// 0021 (a ReplacingMergeTree by (customer_id, id), partitioned by the month
// of the event) into the layout of EventsTableSQL, one monthly partition at
// a time, each read with FINAL so every event is copied exactly once. It
// checks the copy's row count against the old table's before swapping the
// tables. Interrupted anywhere, the next run finishes it: a half-filled
// copy is dropped and made again; after the swap, only the old table's
// removal is left.
func migrateEventsByIngestTime(ctx context.Context, conn driver.Conn) error {
	done, err := hasColumn(ctx, conn, "events", "pricing_type")
	if err != nil {
		return err
	}
	if done {
		return conn.Exec(ctx, "DROP TABLE IF EXISTS events_before_0022")
	}
	for _, q := range []string{"DROP TABLE IF EXISTS events_next", EventsTableSQL("events_next")} {
		if err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("create the new events table: %w", err)
		}
	}
	months, err := activePartitions(ctx, conn, "events")
	if err != nil {
		return err
	}
	var want uint64
	for _, m := range months {
		month, err := strconv.Atoi(m)
		if err != nil {
			return fmt.Errorf("events partition %q is not a month", m)
		}
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM events FINAL WHERE toYYYYMM(time) = ?", month).Scan(&n); err != nil {
			return fmt.Errorf("count events of %d: %w", month, err)
		}
		want += n
		if err := conn.Exec(ctx, `INSERT INTO events_next (customer_id, id, time, country, category, pricing_type, pricing_model, source, status, quantity, payload_hash, ingested_at)
SELECT customer_id, id, time, country, category, '', '', '', '', quantity, payload_hash, ingested_at FROM events FINAL WHERE toYYYYMM(time) = ?`, month); err != nil {
			return fmt.Errorf("copy events of %d: %w", month, err)
		}
	}
	var got uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM events_next").Scan(&got); err != nil {
		return fmt.Errorf("count copied events: %w", err)
	}
	if got != want {
		return fmt.Errorf("copied %d events, the old table holds %d: nothing was swapped; run the migration again", got, want)
	}
	for _, q := range []string{"RENAME TABLE events TO events_before_0022, events_next TO events", "DROP TABLE events_before_0022"} {
		if err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("swap the events tables: %w", err)
		}
	}
	return nil
}

// hasColumn reports whether table of the current database has column.
func hasColumn(ctx context.Context, conn driver.Conn, table, column string) (bool, error) {
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = ? AND name = ?", table, column).Scan(&n); err != nil {
		return false, fmt.Errorf("read columns of %s: %w", table, err)
	}
	return n > 0, nil
}

// activePartitions lists the partition ids of table's active parts.
func activePartitions(ctx context.Context, conn driver.Conn, table string) ([]string, error) {
	rows, err := conn.Query(ctx, "SELECT DISTINCT partition_id FROM system.parts WHERE database = currentDatabase() AND table = ? AND active ORDER BY partition_id", table)
	if err != nil {
		return nil, fmt.Errorf("read partitions of %s: %w", table, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("read partitions of %s: %w", table, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
