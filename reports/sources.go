package reports

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// CHSeries answers book-wide usage series from metering's events table
// (one row per accepted event) in one query. metering's own
// usage queries are per customer or per month; a trend across every
// customer by day is a report, so its SQL lives here.
type CHSeries struct {
	Conn driver.Conn
}

var _ SeriesSource = CHSeries{}

// seriesSQL builds the series query: columns bucket (Unix seconds for a
// day, YYYYMM for a month), key, quantity.
func seriesSQL(q SeriesQuery) (string, []any, error) {
	var bucket string
	switch q.Window {
	case Day:
		bucket = "toUInt64(intDiv(toUInt32(time), 86400) * 86400)"
	case Month:
		bucket = "toUInt64(toYYYYMM(time))"
	default:
		return "", nil, fmt.Errorf("unknown window %q", q.Window)
	}
	var key string
	switch q.GroupBy {
	case "":
		key = "''"
	case "category":
		key = "category"
	case "country":
		key = "toString(country)"
	default:
		return "", nil, fmt.Errorf("unknown grouping %q", q.GroupBy)
	}
	where := " WHERE time >= toDateTime(?) AND time < toDateTime(?)"
	args := []any{q.From.Unix(), q.To.Unix()}
	if q.CustomerID != "" {
		where = " WHERE customer_id = ? AND time >= toDateTime(?) AND time < toDateTime(?)"
		args = []any{q.CustomerID, q.From.Unix(), q.To.Unix()}
	}
	return "SELECT " + bucket + " AS bucket, " + key + " AS key, sum(quantity) AS quantity" +
		" FROM events" + where +
		" GROUP BY bucket, key ORDER BY bucket, key", args, nil
}

// Series runs the series query.
func (c CHSeries) Series(ctx context.Context, q SeriesQuery) ([]Point, error) {
	sql, args, err := seriesSQL(q)
	if err != nil {
		return nil, err
	}
	rows, err := c.Conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("usage series: %w", err)
	}
	defer rows.Close()
	var out []Point
	for rows.Next() {
		var b, n uint64
		var k string
		if err := rows.Scan(&b, &k, &n); err != nil {
			return nil, fmt.Errorf("usage series: %w", err)
		}
		var start time.Time
		if q.Window == Month {
			start = time.Date(int(b/100), time.Month(b%100), 1, 0, 0, 0, 0, time.UTC)
		} else {
			start = time.Unix(int64(b), 0).UTC()
		}
		out = append(out, Point{Start: start, Key: k, Quantity: int64(n)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage series: %w", err)
	}
	return out, nil
}
