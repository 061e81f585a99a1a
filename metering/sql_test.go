package metering

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"postage"
)

func TestUsageSpec(t *testing.T) {
	from := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	asOf := time.Date(2026, 11, 2, 0, 0, 30, 0, time.UTC)
	got, err := usageSpec(UsageQuery{CustomerID: "c1", From: from, To: to, Window: Month, GroupBy: []Dimension{ByCategory, ByCountry}, AsOf: asOf})
	want := readSpec{eventFrom: from.Unix(), eventTo: to.Unix(), ingestFrom: openFrom, ingestTo: asOf.Unix() + 1,
		bucket: Month, dims: []string{"country", "category"}, customers: []string{"c1"}, order: true}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v %v\nwant %+v", got, err, want)
	}
	bad := []struct {
		q    UsageQuery
		want string
	}{
		{UsageQuery{From: from, To: to, Window: "week"}, `window "week"`},
		{UsageQuery{From: from, To: to, Window: Day, GroupBy: []Dimension{ByCustomer}}, `cannot group by "customer"`},
		{UsageQuery{From: from.Add(30 * time.Minute), To: to.Add(time.Second), Window: Day},
			"from 2026-10-01T00:30:00Z is not a whole hour (UTC): usage is counted per hour, use 2026-10-01T00:00:00Z; to 2026-11-01T00:00:01Z is not a whole hour"},
		{UsageQuery{From: to, To: from, Window: Day}, "to must be after from"},
	}
	for _, tt := range bad {
		_, err := usageSpec(tt.q)
		if postage.ErrorCode(err) != postage.EINVALID || !strings.Contains(postage.ErrorMessage(err), tt.want) {
			t.Errorf("%+v: got %v, want invalid with %q", tt.q, err, tt.want)
		}
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

func TestAggregateSpecs(t *testing.T) {
	m := time.Date(2026, 10, 17, 5, 0, 0, 0, time.UTC)
	from, to := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Unix()
	got, err := summarySpec(SummaryQuery{Month: m, GroupBy: []Dimension{ByCountry, ByCustomer}, AsOf: time.Unix(1000, 0)})
	want := readSpec{eventFrom: from, eventTo: to, ingestFrom: openFrom, ingestTo: 1001, dims: []string{"customer_id", "country"}, order: true}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("summary: got %+v %v", got, err)
	}
	if _, err := summarySpec(SummaryQuery{Month: m}); postage.ErrorCode(err) != postage.EINVALID {
		t.Errorf("summary without dimension: %v", err)
	}
	if got, want := customersSpec(m), (readSpec{eventFrom: from, eventTo: to, ingestFrom: openFrom, ingestTo: openTo, dims: []string{"customer_id"}, order: true}); !reflect.DeepEqual(got, want) {
		t.Errorf("customers: got %+v", got)
	}
	after, upTo := time.Unix(2000, 0), time.Unix(3000, 0)
	if got, want := lateSpec(m, after, upTo), (readSpec{eventFrom: from, eventTo: to, ingestFrom: 2001, ingestTo: 3001, dims: []string{"customer_id"}, last: true}); !reflect.DeepEqual(got, want) {
		t.Errorf("late: got %+v", got)
	}
	if got, want := monthlySpec(m, time.Time{}, []string{"a"}), (readSpec{eventFrom: from, eventTo: to, ingestFrom: openFrom, ingestTo: openTo, dims: dimOrder, customers: []string{"a"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("monthly: got %+v", got)
	}
	sq := SeriesQuery{From: time.Unix(from, 0), To: time.Unix(to, 0), Window: Day, GroupBy: ByCategory}
	if got, err := seriesSpec(sq); err != nil || !reflect.DeepEqual(got, readSpec{eventFrom: from, eventTo: to, ingestFrom: openFrom, ingestTo: openTo, bucket: Day, dims: []string{"category"}, order: true}) {
		t.Errorf("series: got %+v %v", got, err)
	}
	sq.GroupBy, sq.From = ByCustomer, time.Unix(from+60, 0)
	if _, err := seriesSpec(sq); postage.ErrorCode(err) != postage.EINVALID || !strings.Contains(err.Error(), "not a whole hour") || !strings.Contains(err.Error(), "cannot group by") {
		t.Errorf("bad series: %v", err)
	}
}
