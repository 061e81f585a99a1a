package metering

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

func TestDailySQL(t *testing.T) {
	oct := time.Date(2026, 10, 9, 0, 0, 0, 0, time.UTC)
	from, to := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Unix()
	tests := []struct {
		name      string
		asOf      time.Time
		customers []string
		want      string
		args      []any
	}{
		{"all", time.Time{}, nil,
			"SELECT customer_id, toUInt32(intDiv(toUInt32(time), 86400) * 86400) AS day, country, category, pricing_type, pricing_model, status, sum(quantity) AS quantity, count() AS events FROM events PREWHERE ingested_at >= toDateTime(?) WHERE time >= toDateTime(?) AND time < toDateTime(?) GROUP BY customer_id, day, country, category, pricing_type, pricing_model, status",
			[]any{from - 3600, from, to}},
		{"cut-off and customers", time.Unix(1000, 0), []string{"a", "b"},
			"SELECT customer_id, toUInt32(intDiv(toUInt32(time), 86400) * 86400) AS day, country, category, pricing_type, pricing_model, status, sum(quantity) AS quantity, count() AS events FROM events PREWHERE ingested_at >= toDateTime(?) AND ingested_at <= toDateTime(?) WHERE time >= toDateTime(?) AND time < toDateTime(?) AND customer_id IN (?, ?) GROUP BY customer_id, day, country, category, pricing_type, pricing_model, status",
			[]any{from - 3600, int64(1000), from, to, "a", "b"}},
	}
	for _, tt := range tests {
		got, args := dailySQL(oct, tt.asOf, tt.customers)
		if got != tt.want || !reflect.DeepEqual(args, tt.args) {
			t.Errorf("%s:\n got %s %v\nwant %s %v", tt.name, got, args, tt.want, tt.args)
		}
	}
}

// The day-by-day read splits the month by UTC day and billable status,
// counts only events ingested at or before the cut-off and only the
// month's events.
func TestDailyAggregates(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	at := func(v string) time.Time {
		t.Helper()
		tm, err := time.Parse(time.DateTime, v)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UTC()
	}
	ev := func(cust, id, tm, ingested, status string, q uint64) Event {
		return Event{CustomerID: cust, ID: id, Time: at(tm), Country: "US", Category: "marketing", Status: status, Source: "whatsapp",
			PricingType: PricingRegular, PricingModel: "PMP", Quantity: q, PayloadHash: 7, IngestedAt: at(ingested)}
	}
	if err := s.Insert(ctx, []Event{
		ev("a", "e1", "2026-10-05 10:00:00", "2026-10-05 10:00:01", "delivered", 1),
		ev("a", "e2", "2026-10-05 23:59:59", "2026-10-06 00:00:01", "read", 1),
		ev("a", "e3", "2026-10-06 00:00:00", "2026-10-06 00:00:01", "sent", 1),
		ev("a", "e4", "2026-10-06 00:00:00", "2026-11-02 00:00:00", "delivered", 1), // after the cut-off
		ev("b", "x", "2026-10-31 23:59:59", "2026-11-01 00:00:00", "delivered", 2),
		ev("b", "y", "2026-09-30 23:59:59", "2026-10-01 00:00:01", "delivered", 1), // September
	}); err != nil {
		t.Fatal(err)
	}
	oct, cutoff := at("2026-10-01 00:00:00"), at("2026-11-01 00:00:00")
	read := func(asOf time.Time, customers []string) map[string]uint64 {
		t.Helper()
		got := map[string]uint64{}
		if err := s.EachDailyAggregate(ctx, oct, asOf, customers, func(a *DayAggregate) error {
			if a.Country != "US" || a.Category != "marketing" || a.PricingType != PricingRegular || a.PricingModel != "PMP" {
				t.Errorf("row %+v: dimensions not read back", a)
			}
			got[fmt.Sprintf("%s %s %s", a.CustomerID, a.Day.Format(time.DateOnly), a.Status)] += a.Quantity
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	got := read(cutoff, nil)
	want := map[string]uint64{"a 2026-10-05 delivered": 1, "a 2026-10-05 read": 1, "a 2026-10-06 sent": 1, "b 2026-10-31 delivered": 2}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	got = read(time.Time{}, []string{"a"})
	want = map[string]uint64{"a 2026-10-05 delivered": 1, "a 2026-10-05 read": 1, "a 2026-10-06 sent": 1, "a 2026-10-06 delivered": 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("customer a, no cut-off: got %v, want %v", got, want)
	}
	errStop := errors.New("stop")
	calls := 0
	if err := s.EachDailyAggregate(ctx, oct, cutoff, nil, func(*DayAggregate) error { calls++; return errStop }); !errors.Is(err, errStop) || calls != 1 {
		t.Errorf("callback error: err = %v after %d calls, want errStop after 1", err, calls)
	}
}
