package metering

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"postage/internal/testenv"
)

func TestMonthlySQL(t *testing.T) {
	oct := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	cut := time.Unix(1000, 0)
	tests := []struct {
		name      string
		asOf      time.Time
		customers []string
		final     bool
		shard, of int
		want      string
		nargs     int
	}{
		{"all, merged", time.Time{}, nil, false, 0, 1,
			"SELECT customer_id, country, category, sum(quantity) AS quantity, count() AS events FROM events WHERE time >= toDateTime(?) AND time < toDateTime(?) GROUP BY customer_id, country, category", 2},
		{"cut-off before FINAL, shard", cut, nil, true, 1, 2,
			"SELECT customer_id, country, category, sum(quantity) AS quantity, count() AS events FROM events FINAL PREWHERE ingested_at <= toDateTime(?) AND cityHash64(customer_id) % 2 = 1 WHERE time >= toDateTime(?) AND time < toDateTime(?) GROUP BY customer_id, country, category", 3},
		{"customers", cut, []string{"a", "b"}, true, 0, 1,
			"SELECT customer_id, country, category, sum(quantity) AS quantity, count() AS events FROM events FINAL PREWHERE ingested_at <= toDateTime(?) WHERE time >= toDateTime(?) AND time < toDateTime(?) AND customer_id IN (?, ?) GROUP BY customer_id, country, category", 5},
	}
	for _, tt := range tests {
		got, args := monthlySQL(oct, tt.asOf, tt.customers, tt.final, tt.shard, tt.of)
		if got != tt.want || len(args) != tt.nargs {
			t.Errorf("%s:\n got %s %v\nwant %s (%d args)", tt.name, got, args, tt.want, tt.nargs)
		}
	}
	if q, args := partsSQL(oct.Add(48 * time.Hour)); !strings.Contains(q, "partition_id = ?") || args[0] != "202610" {
		t.Errorf("partsSQL: %s %v", q, args)
	}
}

// The month read is exact whether it needs FINAL or not: duplicate rows in
// several parts, inside one part, after a merge, and a re-sent copy
// ingested after the cut-off, which must not take the event back out.
func TestMonthlyAggregatesExactWithOrWithoutFinal(t *testing.T) {
	env := testenv.New(t)
	s := NewCHStore(env.CH)
	ctx := context.Background()
	ts := func(v string) time.Time {
		t.Helper()
		tm, err := time.Parse(time.DateTime, v)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UTC()
	}
	// insert stores rows of (customer, id, "time|ingested") in one part.
	insert := func(rows ...[3]string) {
		t.Helper()
		b, err := env.CH.PrepareBatch(ctx, "INSERT INTO events (customer_id, id, time, country, category, quantity, payload_hash, ingested_at)")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			at, ingested, _ := strings.Cut(r[2], "|")
			if err := b.Append(r[0], r[1], ts(at), "US", "marketing", uint64(1), uint64(7), ts(ingested)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}
	oct, sep := ts("2026-10-01 00:00:00"), ts("2026-09-01 00:00:00")
	cutoff := ts("2026-11-01 00:00:00")
	read := func(month time.Time) (total uint64, final bool) {
		t.Helper()
		final, err := s.needsFinal(ctx, month)
		if err != nil {
			t.Fatal(err)
		}
		aggs, err := s.MonthlyAggregates(ctx, month, cutoff)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range aggs {
			total += a.Quantity
		}
		return total, final
	}
	// e1 stored twice in two parts (a re-send racing the duplicate check),
	// e2 once; customers a..d so the two shards of a FINAL read both work.
	insert([3]string{"a", "e1", "2026-10-05 10:00:00|2026-10-05 10:00:01"}, [3]string{"b", "x", "2026-10-05 10:00:00|2026-10-05 10:00:01"})
	insert([3]string{"a", "e1", "2026-10-05 10:00:00|2026-10-06 10:00:01"}, [3]string{"c", "y", "2026-10-06 10:00:00|2026-10-06 10:00:01"})
	insert([3]string{"a", "e2", "2026-10-07 10:00:00|2026-10-07 10:00:01"}, [3]string{"d", "z", "2026-10-07 10:00:00|2026-10-07 10:00:01"})
	// An error from the callback stops the read (both shards of a FINAL
	// read, or the one query) and is what the read returns.
	errStop := errors.New("stop")
	stops := func(state string) {
		t.Helper()
		calls := 0
		err := s.EachMonthlyAggregate(ctx, oct, cutoff, nil, func(*Aggregate) error { calls++; return errStop })
		if !errors.Is(err, errStop) || calls == 0 || calls > 2 {
			t.Errorf("%s: callback error: err = %v after %d calls, want errStop after 1 (2 with a shard already running)", state, err, calls)
		}
	}
	if q, final := read(oct); q != 5 || !final {
		t.Fatalf("unmerged: quantity %d final %v, want 5 with FINAL", q, final)
	}
	stops("unmerged")
	if err := env.CH.Exec(ctx, "OPTIMIZE TABLE events PARTITION 202610 FINAL"); err != nil {
		t.Fatal(err)
	}
	if q, final := read(oct); q != 5 || final {
		t.Fatalf("merged: quantity %d final %v, want 5 without FINAL", q, final)
	}
	stops("merged")
	// A re-send ingested after the cut-off adds a part: FINAL again, and
	// the event still counts at the earlier cut-off.
	insert([3]string{"a", "e2", "2026-10-07 10:00:00|2026-11-02 00:00:00"})
	if q, final := read(oct); q != 5 || !final {
		t.Fatalf("after a late re-send: quantity %d final %v, want 5", q, final)
	}
	// Duplicates inside one insert (one part, never merged): FINAL.
	insert([3]string{"a", "s1", "2026-09-05 10:00:00|2026-09-05 10:00:00"}, [3]string{"a", "s1", "2026-09-05 10:00:00|2026-09-05 10:00:00"}, [3]string{"a", "s1", "2026-09-05 10:00:00|2026-09-05 10:00:00"})
	if q, final := read(sep); q != 1 || !final {
		t.Fatalf("one unmerged part with duplicates: quantity %d final %v, want 1", q, final)
	}
	if q, _ := read(ts("2026-08-01 00:00:00")); q != 0 {
		t.Fatalf("empty month: %d", q)
	}
}
