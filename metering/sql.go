package metering

import (
	"strings"
	"time"
)

// The SQL of the metering store, built by pure functions so the text can be
// unit tested. The events table holds one row per accepted event (the
// Ingester's look-up keeps re-sends out), so reads sum rows as they are, no
// FINAL. Times are passed as Unix seconds and bucketed with integer
// arithmetic, so nothing depends on the server's or the driver's time zone.
// Usage reads are planned over the rollups (plan.go, reads.go); the
// sealer's SQL is in sealer.go.

const insertEventsSQL = "INSERT INTO events (customer_id, id, time, country, category, pricing_type, pricing_model, source, status, quantity, payload_hash, ingested_at)"

// storedKeysSQL reads what the key index keeps of the events ingested in
// [from, to) (a zero to: no end) whose time is at or after since (zero: any
// time): the fingerprint (fingerprintColumns), payload hash, time and
// ingestion time. The range is one of the table's sorting key, so the read
// costs the rows of those hours, whatever the table's size.
func storedKeysSQL(from, to, since time.Time) (string, []any) {
	q := "SELECT " + fingerprintColumns + ", payload_hash, toUInt32(time), toUInt32(ingested_at) FROM events" +
		" WHERE ingested_at >= toDateTime(?)"
	args := []any{from.Unix()}
	if !to.IsZero() {
		q += " AND ingested_at < toDateTime(?)"
		args = append(args, to.Unix())
	}
	if !since.IsZero() {
		q += " AND time >= toDateTime(?)"
		args = append(args, since.Unix())
	}
	return q, args
}

// firstIngestedSQL finds the earliest ingestion time at or after from (and
// whether there is any).
func firstIngestedSQL(from time.Time) (string, []any) {
	return "SELECT toUInt32(min(ingested_at)), count() FROM events WHERE ingested_at >= toDateTime(?)", []any{from.Unix()}
}

// runningQueriesSQL lists the ids of the queries the server is running
// whose ids start with prefix.
func runningQueriesSQL(prefix string) (string, []any) {
	return "SELECT query_id FROM system.processes WHERE startsWith(query_id, ?)", []any{prefix}
}

// monthRange returns [first of month, first of next month) as Unix seconds.
func monthRange(month time.Time) (int64, int64) {
	m := MonthStart(month)
	return m.Unix(), m.AddDate(0, 1, 0).Unix()
}

// placeholders returns "?, ?, …" with n marks.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// conflictsSQL lists the events of a month stored more than once (with the
// same or different payloads). The look-up before every insert keeps them
// out; only a broken invariant (two processes writing one shard's events,
// a lost key index rebuilt too late) could store one twice, so this is an
// operator's audit, not a read path: it scans the month's events.
func conflictsSQL(month time.Time, limit int) (string, []any) {
	from, to := monthRange(month)
	return "SELECT customer_id, id, count() AS copies FROM events" +
			" WHERE time >= toDateTime(?) AND time < toDateTime(?)" +
			" GROUP BY customer_id, id HAVING copies > 1 ORDER BY customer_id, id LIMIT ?",
		[]any{from, to, limit}
}
