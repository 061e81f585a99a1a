package metering

import (
	"fmt"
	"strings"
	"time"
)

// The SQL of the metering store, built by pure functions so the text can be
// unit tested. The events table holds one row per accepted event (the
// Ingester's look-up keeps re-sends out), so reads sum rows as they are, no
// FINAL. Times are passed as Unix seconds and bucketed with integer
// arithmetic, so nothing depends on the server's or the driver's time zone.

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

// bucketExpr returns the SQL for the start of an event's window, as Unix
// seconds for hour and day and as YYYYMM for month.
func bucketExpr(w Window) (string, error) {
	switch w {
	case Hour:
		return "intDiv(toUInt32(time), 3600) * 3600", nil
	case Day:
		return "intDiv(toUInt32(time), 86400) * 86400", nil
	case Month:
		return "toYYYYMM(time)", nil
	}
	return "", fmt.Errorf("unknown window %q", w)
}

func dimColumn(d Dimension) (string, error) {
	switch d {
	case ByCustomer:
		return "customer_id", nil
	case ByCountry:
		return "country", nil
	case ByCategory:
		return "category", nil
	}
	return "", fmt.Errorf("unknown dimension %q", d)
}

// dimColumns returns the grouped columns in canonical order (customer,
// country, category) and a flag per dimension.
func dimColumns(groupBy []Dimension, allowed ...Dimension) (cols []string, err error) {
	want := map[Dimension]bool{}
	for _, d := range groupBy {
		ok := false
		for _, a := range allowed {
			ok = ok || a == d
		}
		if !ok {
			return nil, fmt.Errorf("cannot group by %q", d)
		}
		want[d] = true
	}
	for _, d := range []Dimension{ByCustomer, ByCountry, ByCategory} {
		if want[d] {
			c, _ := dimColumn(d)
			cols = append(cols, c)
		}
	}
	return cols, nil
}

// asOfPrewhere returns the PREWHERE clause (and its argument) counting only
// events ingested at or before asOf, or nothing for a zero asOf.
func asOfPrewhere(asOf time.Time) (string, []any) {
	if asOf.IsZero() {
		return "", nil
	}
	return " PREWHERE ingested_at <= toDateTime(?)", []any{asOf.Unix()}
}

// usageSQL builds one customer's bucketed usage query. Columns: bucket,
// then the grouped dimensions in canonical order, quantity, events.
func usageSQL(q UsageQuery) (string, []any, error) {
	bucket, err := bucketExpr(q.Window)
	if err != nil {
		return "", nil, err
	}
	cols, err := dimColumns(q.GroupBy, ByCountry, ByCategory)
	if err != nil {
		return "", nil, err
	}
	sel := append([]string{bucket + " AS bucket"}, cols...)
	group := append([]string{"bucket"}, cols...)
	pre, args := asOfPrewhere(q.AsOf)
	args = append(args, q.CustomerID, q.From.Unix(), q.To.Unix())
	return "SELECT " + strings.Join(sel, ", ") + ", sum(quantity) AS quantity, count() AS events" +
		" FROM events" + pre +
		" WHERE customer_id = ? AND time >= toDateTime(?) AND time < toDateTime(?)" +
		" GROUP BY " + strings.Join(group, ", ") +
		" ORDER BY " + strings.Join(group, ", "), args, nil
}

// monthRange returns [first of month, first of next month) as Unix seconds.
func monthRange(month time.Time) (int64, int64) {
	m := MonthStart(month)
	return m.Unix(), m.AddDate(0, 1, 0).Unix()
}

// summarySQL builds the month's usage of all customers grouped by dims.
func summarySQL(q SummaryQuery) (string, []any, error) {
	cols, err := dimColumns(q.GroupBy, ByCustomer, ByCountry, ByCategory)
	if err != nil {
		return "", nil, err
	}
	if len(cols) == 0 {
		return "", nil, fmt.Errorf("summary needs at least one dimension")
	}
	from, to := monthRange(q.Month)
	pre, args := asOfPrewhere(q.AsOf)
	args = append(args, from, to)
	list := strings.Join(cols, ", ")
	return "SELECT " + list + ", sum(quantity) AS quantity, count() AS events" +
		" FROM events" + pre +
		" WHERE time >= toDateTime(?) AND time < toDateTime(?)" +
		" GROUP BY " + list + " ORDER BY " + list, args, nil
}

// lateSQL finds the customers with events of the month ingested in
// (after, upTo], with the latest such ingestion time.
func lateSQL(month, after, upTo time.Time) (string, []any) {
	from, to := monthRange(month)
	return "SELECT customer_id, max(toUInt32(ingested_at)) FROM events" +
			" WHERE time >= toDateTime(?) AND time < toDateTime(?) AND ingested_at > toDateTime(?) AND ingested_at <= toDateTime(?)" +
			" GROUP BY customer_id ORDER BY customer_id",
		[]any{from, to, after.Unix(), upTo.Unix()}
}

// customersSQL lists the customers with events in the month.
func customersSQL(month time.Time) (string, []any) {
	from, to := monthRange(month)
	return "SELECT DISTINCT customer_id FROM events WHERE time >= toDateTime(?) AND time < toDateTime(?) ORDER BY customer_id",
		[]any{from, to}
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
