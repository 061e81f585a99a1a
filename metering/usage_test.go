package metering

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"postage/metering/keyindex"
)

func TestUsageQueries(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	conn := s.conn
	utc := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	ing1, ing2 := utc("2026-11-01T00:10:00Z"), utc("2026-11-03T00:00:00Z")
	with := func(e Event, ing time.Time) Event { e.IngestedAt = ing; return e }
	evs := []Event{
		with(ev("c1", "last-second", utc("2026-10-31T23:59:59Z"), "DE", "marketing", 1), ing1),
		with(ev("c1", "first-second", utc("2026-11-01T00:00:00Z"), "DE", "marketing", 1), ing1),
		with(ev("c1", "oct-1", utc("2026-10-01T00:00:00Z"), "FR", "utility", 4), ing1),
		with(ev("c1", "oct-1b", utc("2026-10-01T00:30:00Z"), "FR", "marketing", 1), ing1),
		with(ev("c1", "late", utc("2026-10-20T12:00:00Z"), "DE", "marketing", 2), ing2),
		with(ev("c2", "x", utc("2026-10-05T00:00:00Z"), "BR", "service", 1), ing1),
		with(ev("unknown:123", "wamid.1", utc("2026-10-06T00:00:00Z"), "IN", "utility", 1), ing1),
	}
	if err := s.Insert(ctx, evs); err != nil {
		t.Fatal(err)
	}
	oct := utc("2026-10-01T00:00:00Z")
	nov := utc("2026-11-01T00:00:00Z")

	t.Run("month boundary", func(t *testing.T) {
		got, err := s.Usage(ctx, UsageQuery{CustomerID: "c1", From: oct, To: utc("2026-12-01T00:00:00Z"), Window: Month})
		if err != nil {
			t.Fatal(err)
		}
		want := []UsageRow{{Start: oct, CustomerID: "c1", Quantity: 8, Events: 4}, {Start: nov, CustomerID: "c1", Quantity: 1, Events: 1}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
	})
	t.Run("day by country and category", func(t *testing.T) {
		got, err := s.Usage(ctx, UsageQuery{CustomerID: "c1", From: oct, To: utc("2026-10-02T00:00:00Z"), Window: Day, GroupBy: []Dimension{ByCountry, ByCategory}})
		if err != nil {
			t.Fatal(err)
		}
		want := []UsageRow{
			{Start: oct, CustomerID: "c1", Country: "FR", Category: "marketing", Quantity: 1, Events: 1},
			{Start: oct, CustomerID: "c1", Country: "FR", Category: "utility", Quantity: 4, Events: 1},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
	})
	t.Run("hours, empty ones omitted", func(t *testing.T) {
		got, err := s.Usage(ctx, UsageQuery{CustomerID: "c1", From: utc("2026-10-31T22:00:00Z"), To: utc("2026-11-01T02:00:00Z"), Window: Hour})
		if err != nil {
			t.Fatal(err)
		}
		want := []UsageRow{{Start: utc("2026-10-31T23:00:00Z"), CustomerID: "c1", Quantity: 1, Events: 1}, {Start: nov, CustomerID: "c1", Quantity: 1, Events: 1}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
	})
	t.Run("monthly aggregates", func(t *testing.T) {
		got, err := s.MonthlyAggregates(ctx, oct, time.Time{})
		sortAggregates(got)
		if err != nil {
			t.Fatal(err)
		}
		want := []Aggregate{
			{CustomerID: "c1", Country: "DE", Category: "marketing", Quantity: 3, Events: 2},
			{CustomerID: "c1", Country: "FR", Category: "marketing", Quantity: 1, Events: 1},
			{CustomerID: "c1", Country: "FR", Category: "utility", Quantity: 4, Events: 1},
			{CustomerID: "c2", Country: "BR", Category: "service", Quantity: 1, Events: 1},
			{CustomerID: "unknown:123", Country: "IN", Category: "utility", Quantity: 1, Events: 1},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
		// The same after background merges. Partition by partition: on a
		// Replicated table of several partitions ClickHouse 18.16 refuses
		// OPTIMIZE ... FINAL without PARTITION (code 49, "Unknown log
		// entry type: 0").
		rows, err := conn.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = currentDatabase() AND table = 'events' AND active")
		if err != nil {
			t.Fatal(err)
		}
		var partitions []string
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				t.Fatal(err)
			}
			partitions = append(partitions, p)
		}
		rows.Close()
		for _, p := range partitions {
			if err := conn.Exec(ctx, "OPTIMIZE TABLE events PARTITION "+p+" FINAL"); err != nil {
				t.Fatal(err)
			}
		}
		got2, _ := s.MonthlyAggregates(ctx, oct, time.Time{})
		sortAggregates(got2)
		if !reflect.DeepEqual(got2, want) {
			t.Errorf("after merge got %+v", got2)
		}
	})
	t.Run("cut-off and customer filter", func(t *testing.T) {
		got, err := s.MonthlyAggregates(ctx, oct, ing1, "c1", "c2")
		sortAggregates(got)
		if err != nil {
			t.Fatal(err)
		}
		want := []Aggregate{{CustomerID: "c1", Country: "DE", Category: "marketing", Quantity: 1, Events: 1}, {CustomerID: "c1", Country: "FR", Category: "marketing", Quantity: 1, Events: 1}, {CustomerID: "c1", Country: "FR", Category: "utility", Quantity: 4, Events: 1}, {CustomerID: "c2", Country: "BR", Category: "service", Quantity: 1, Events: 1}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
		late, err := s.LateIngested(ctx, oct, ing1, ing2)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(late, map[string]time.Time{"c1": ing2}) {
			t.Errorf("late: %v", late)
		}
	})
	t.Run("summary and customers", func(t *testing.T) {
		got, err := s.Summary(ctx, SummaryQuery{Month: utc("2026-10-17T00:00:00Z"), GroupBy: []Dimension{ByCategory}})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[0].Category != "marketing" || got[0].Start != oct {
			t.Errorf("summary %+v", got)
		}
		cs, err := s.CustomersWithUsage(ctx, oct)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cs, []string{"c1", "c2", "unknown:123"}) {
			t.Errorf("customers %v", cs)
		}
	})
	t.Run("audit of events stored twice", func(t *testing.T) {
		if got, err := s.Conflicts(ctx, oct, 100); err != nil || len(got) != 0 {
			t.Fatalf("conflicts before: %v, %v; want none", got, err)
		}
		// Bypassing the look-up (a broken invariant) stores one twice.
		// (Last subtest: the table keeps the copies.)
		// The copies come from two flushes (two stamps): a Replicated
		// table drops an insert identical to one of its last 100 blocks.
		twice := ev("c9", "x", utc("2026-10-05T00:00:00Z"), "BR", "service", 1)
		for _, ing := range []time.Time{ing1, ing1.Add(time.Second)} {
			if err := s.Insert(ctx, []Event{with(twice, ing)}); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.Conflicts(ctx, oct, 100); err != nil || !reflect.DeepEqual(got, []Key{{"c9", "x"}}) {
			t.Errorf("conflicts: %v, %v; want c9/x", got, err)
		}
	})
}

// TestStoredKeys: the key index is rebuilt from what StoredKeys reads: the
// fingerprint the ingester computes, the payload hash and the event time
// of the events ingested in a range, filtered by event time.
func TestStoredKeys(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	t0 := time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC)
	ing := []time.Time{t0, t0.Add(time.Hour), t0.Add(2 * time.Hour)}
	var evs []Event
	for i, in := range ing {
		e := ev(fmt.Sprintf("c%d", i), "a", t0.Add(-time.Duration(i)*24*time.Hour), "DE", "service", uint64(i+1))
		e.IngestedAt = in
		evs = append(evs, e)
	}
	if err := s.Insert(ctx, evs); err != nil {
		t.Fatal(err)
	}
	var h keyHasher
	entry := func(e Event) keyindex.Entry {
		return keyindex.Entry{FP: h.fingerprint(e.CustomerID, e.ID), Value: keyindex.Value{Hash: e.PayloadHash, Time: uint32(e.Time.Unix())}}
	}
	for _, c := range []struct {
		name            string
		from, to, since time.Time
		want            []Event
		latest          time.Time
	}{
		{"open range", ing[1], time.Time{}, time.Time{}, evs[1:], ing[2]},
		{"bounded range", ing[0], ing[2], time.Time{}, evs[:2], ing[1]},
		{"event time filter", ing[0], time.Time{}, t0.Add(-36 * time.Hour), evs[:2], ing[1]},
		{"nothing", ing[2].Add(time.Second), time.Time{}, time.Time{}, nil, time.Time{}},
	} {
		var got []keyindex.Entry
		latest, err := s.StoredKeys(ctx, c.from, c.to, c.since, func(b []keyindex.Entry) error {
			got = append(got, b...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var want []keyindex.Entry
		for _, e := range c.want {
			want = append(want, entry(e))
		}
		slices.SortFunc(got, func(a, b keyindex.Entry) int { return cmp.Compare(a.Value.Hash, b.Value.Hash) })
		slices.SortFunc(want, func(a, b keyindex.Entry) int { return cmp.Compare(a.Value.Hash, b.Value.Hash) })
		if !reflect.DeepEqual(got, want) || !latest.Equal(c.latest) {
			t.Errorf("%s: got %v (latest %v), want %v (latest %v)", c.name, got, latest, want, c.latest)
		}
	}
	if first, err := s.FirstIngested(ctx, t0.Add(time.Minute)); err != nil || !first.Equal(ing[1]) {
		t.Errorf("first ingested after t0: %v %v, want %v", first, err, ing[1])
	}
	if first, err := s.FirstIngested(ctx, ing[2].Add(time.Second)); err != nil || !first.IsZero() {
		t.Errorf("first ingested after the last: %v %v, want zero", first, err)
	}
}

// sortAggregates orders aggregates by (customer, country, category) for
// comparison: MonthlyAggregates answers in no particular order.
func sortAggregates(a []Aggregate) {
	slices.SortFunc(a, func(x, y Aggregate) int {
		return cmp.Or(cmp.Compare(x.CustomerID, y.CustomerID), cmp.Compare(x.Country, y.Country), cmp.Compare(x.Category, y.Category))
	})
}
