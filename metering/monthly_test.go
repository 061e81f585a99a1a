package metering

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The month read sums what the Ingester stored, split by pricing type,
// counts only events ingested at or before the cut-off, and stops at a
// callback's error.
func TestMonthlyAggregates(t *testing.T) {
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
	ev := func(cust, id, tm, ingested, ptype string, q uint64) Event {
		return Event{CustomerID: cust, ID: id, Time: at(tm), Country: "US", Category: "marketing", PricingType: ptype,
			Quantity: q, PayloadHash: 7, IngestedAt: at(ingested)}
	}
	if err := s.Insert(ctx, []Event{
		ev("a", "e1", "2026-10-05 10:00:00", "2026-10-05 10:00:01", "", 2),
		ev("a", "e2", "2026-10-07 10:00:00", "2026-11-02 00:00:00", "", 3), // after the cut-off
		ev("a", "e3", "2026-10-07 11:00:00", "2026-10-07 11:00:01", PricingFreeCustomerService, 1),
		ev("b", "x", "2026-10-05 10:00:00", "2026-10-05 10:00:01", "", 1),
		ev("b", "y", "2026-09-30 23:59:59", "2026-10-01 00:00:01", "", 1), // September
	}); err != nil {
		t.Fatal(err)
	}
	oct, cutoff := at("2026-10-01 00:00:00"), at("2026-11-01 00:00:00")
	got := map[string]uint64{}
	aggs, err := s.MonthlyAggregates(ctx, oct, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range aggs {
		got[a.CustomerID+"/"+a.PricingType] += a.Quantity
	}
	want := map[string]uint64{"a/": 2, "a/" + PricingFreeCustomerService: 1, "b/": 1}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("got %v, want %v", got, want)
		}
	}
	if all, err := s.MonthlyAggregates(ctx, oct, time.Time{}, "a"); err != nil || len(all) != 2 || all[0].Quantity+all[1].Quantity != 6 {
		t.Errorf("customer a without a cut-off: %+v, %v; want 6 in two rows", all, err)
	}
	errStop := errors.New("stop")
	calls := 0
	if err := s.EachMonthlyAggregate(ctx, oct, cutoff, nil, func(*Aggregate) error { calls++; return errStop }); !errors.Is(err, errStop) || calls != 1 {
		t.Errorf("callback error: err = %v after %d calls, want errStop after 1", err, calls)
	}
}
