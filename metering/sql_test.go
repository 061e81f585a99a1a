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

func TestExistingSQL(t *testing.T) {
	q, args := existingSQL(time.Time{})
	want := "SELECT customer_id, id, payload_hash FROM events PREWHERE cityHash64(customer_id, id) IN (SELECT key_hash FROM _keys) WHERE customer_id IN (SELECT customer_id FROM _customers)"
	if q != want || args != nil {
		t.Errorf("got %s %v", q, args)
	}
	q, args = existingSQL(time.Unix(1000, 0))
	if q != want+" AND time >= toDateTime(?)" || !reflect.DeepEqual(args, []any{int64(1000)}) {
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
