package metering

import (
	"reflect"
	"testing"
	"time"
)

func TestUsageSQL(t *testing.T) {
	from := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	asOf := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		q     UsageQuery
		query string
		args  []any
	}{
		{UsageQuery{CustomerID: "c1", From: from, To: to, Window: Day},
			"SELECT intDiv(toUInt32(time), 86400) * 86400 AS bucket, sum(quantity) AS quantity, count() AS events FROM events WHERE customer_id = ? AND time >= toDateTime(?) AND time < toDateTime(?) GROUP BY bucket ORDER BY bucket",
			[]any{"c1", from.Unix(), to.Unix()}},
		{UsageQuery{CustomerID: "c1", From: from, To: to, Window: Month, GroupBy: []Dimension{ByCategory, ByCountry}, AsOf: asOf},
			"SELECT toYYYYMM(time) AS bucket, country, category, sum(quantity) AS quantity, count() AS events FROM events PREWHERE ingested_at <= toDateTime(?) WHERE customer_id = ? AND time >= toDateTime(?) AND time < toDateTime(?) GROUP BY bucket, country, category ORDER BY bucket, country, category",
			[]any{asOf.Unix(), "c1", from.Unix(), to.Unix()}},
		{UsageQuery{CustomerID: "c1", From: from, To: to, Window: Hour, GroupBy: []Dimension{ByCountry}},
			"SELECT intDiv(toUInt32(time), 3600) * 3600 AS bucket, country, sum(quantity) AS quantity, count() AS events FROM events WHERE customer_id = ? AND time >= toDateTime(?) AND time < toDateTime(?) GROUP BY bucket, country ORDER BY bucket, country",
			[]any{"c1", from.Unix(), to.Unix()}},
	}
	for _, tt := range tests {
		q, args, err := usageSQL(tt.q)
		if err != nil {
			t.Fatal(err)
		}
		if q != tt.query || !reflect.DeepEqual(args, tt.args) {
			t.Errorf("usageSQL(%+v)\n got %s %v\nwant %s %v", tt.q, q, args, tt.query, tt.args)
		}
	}
	if _, _, err := usageSQL(UsageQuery{Window: "week"}); err == nil {
		t.Error("week window accepted")
	}
	if _, _, err := usageSQL(UsageQuery{Window: Day, GroupBy: []Dimension{ByCustomer}}); err == nil {
		t.Error("customer grouping of one customer's usage accepted")
	}
}

func TestStoredKeysSQL(t *testing.T) {
	cols := "SELECT cityHash64(customer_id, id), cityHash64(concat(toString(length(customer_id)), ':', customer_id, id)), payload_hash, toUInt32(time), toUInt32(ingested_at) FROM events"
	for _, c := range []struct {
		from, to, since int64
		q               string
		args            []any
	}{
		{1000, 0, 0, cols + " WHERE ingested_at >= toDateTime(?)", []any{int64(1000)}},
		{1000, 2000, 0, cols + " WHERE ingested_at >= toDateTime(?) AND ingested_at < toDateTime(?)", []any{int64(1000), int64(2000)}},
		{1000, 2000, 500, cols + " WHERE ingested_at >= toDateTime(?) AND ingested_at < toDateTime(?) AND time >= toDateTime(?)", []any{int64(1000), int64(2000), int64(500)}},
	} {
		tm := func(s int64) time.Time {
			if s == 0 {
				return time.Time{}
			}
			return time.Unix(s, 0)
		}
		q, args := storedKeysSQL(tm(c.from), tm(c.to), tm(c.since))
		if q != c.q || !reflect.DeepEqual(args, c.args) {
			t.Errorf("got %s %v, want %s %v", q, args, c.q, c.args)
		}
	}
	if q, args := firstIngestedSQL(time.Unix(1000, 0)); q != "SELECT toUInt32(min(ingested_at)), count() FROM events WHERE ingested_at >= toDateTime(?)" || !reflect.DeepEqual(args, []any{int64(1000)}) {
		t.Errorf("got %s %v", q, args)
	}
	q, args := runningQueriesSQL("postage-ingest-")
	if q != "SELECT query_id FROM system.processes WHERE startsWith(query_id, ?)" || !reflect.DeepEqual(args, []any{"postage-ingest-"}) {
		t.Errorf("got %s %v", q, args)
	}
}

func TestAggregateSQL(t *testing.T) {
	m := time.Date(2026, 10, 17, 5, 0, 0, 0, time.UTC)
	from, to := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Unix()
	// The cut-off is a PREWHERE.
	q, args, err := summarySQL(SummaryQuery{Month: m, GroupBy: []Dimension{ByCategory}, AsOf: time.Unix(1000, 0)})
	want := "SELECT category, sum(quantity) AS quantity, count() AS events FROM events PREWHERE ingested_at <= toDateTime(?) WHERE time >= toDateTime(?) AND time < toDateTime(?) GROUP BY category ORDER BY category"
	if err != nil || q != want || !reflect.DeepEqual(args, []any{int64(1000), from, to}) {
		t.Errorf("got %s %v %v", q, args, err)
	}
	q, _, err = summarySQL(SummaryQuery{Month: m, GroupBy: []Dimension{ByCountry, ByCustomer}})
	want = "SELECT customer_id, country, sum(quantity) AS quantity, count() AS events FROM events WHERE time >= toDateTime(?) AND time < toDateTime(?) GROUP BY customer_id, country ORDER BY customer_id, country"
	if err != nil || q != want {
		t.Errorf("got %s %v", q, err)
	}
	if _, _, err := summarySQL(SummaryQuery{Month: m}); err == nil {
		t.Error("summary without dimension accepted")
	}
	q, _ = customersSQL(m)
	if q != "SELECT DISTINCT customer_id FROM events WHERE time >= toDateTime(?) AND time < toDateTime(?) ORDER BY customer_id" {
		t.Errorf("got %s", q)
	}
}
