package metering

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLookupFindsEventsStoredBeforeKeyHash checks the look-up against
// events written before migration 0021 added key_hash: their parts have no
// key_hash column, and ClickHouse must compute it from the DEFAULT
// expression in the look-up's PREWHERE (if it read 0, or failed, a re-send
// of an old event would be stored and billed twice, or ingest would stop).
// It also covers a merge of old and new parts.
func TestLookupFindsEventsStoredBeforeKeyHash(t *testing.T) {
	conn := newCH(t)
	ctx := context.Background()
	migration, err := os.ReadFile("../internal/db/migrations/clickhouse/0021_events_key_hash.sql")
	if err != nil {
		t.Fatal(err)
	}
	var addColumn string
	for _, l := range strings.Split(string(migration), "\n") {
		if strings.HasPrefix(l, "ALTER TABLE") {
			addColumn = l
		}
	}
	// The table as it was before 0021, with one event in it.
	if err := conn.Exec(ctx, "ALTER TABLE events DROP COLUMN key_hash"); err != nil {
		t.Fatal(err)
	}
	store := NewCHStore(conn)
	t0 := time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC)
	old := ev("c1", "before-0021", t0, "DE", "marketing", 1)
	if err := store.Insert(ctx, []Event{old}); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, addColumn); err != nil {
		t.Fatalf("%s: %v", addColumn, err)
	}

	in := NewIngester(store, IngesterConfig{})
	defer in.Close()
	changed := old
	changed.Quantity, changed.PayloadHash = 7, HashPayload(t0, true, "DE", "marketing", 7)
	fresh := ev("c1", "after-0021", t0, "DE", "marketing", 1)
	if got, want := submit(t, in, old, changed, fresh), []Status{Duplicate, Conflict, Accepted}; !slices.Equal(got, want) {
		t.Fatalf("old part without key_hash: got %v, want %v", got, want)
	}
	// Old and new parts merged into one: the merged part holds key_hash.
	if err := conn.Exec(ctx, "OPTIMIZE TABLE events FINAL"); err != nil {
		t.Fatal(err)
	}
	if got, want := submit(t, in, old, fresh), []Status{Duplicate, Duplicate}; !slices.Equal(got, want) {
		t.Fatalf("after a merge: got %v, want %v", got, want)
	}
	if qty, events := monthTotal(t, store, "c1", t0); qty != 2 || events != 2 {
		t.Errorf("month total: %d messages in %d events, want 2 in 2", qty, events)
	}
}

// TestKeyHashMatchesClickHouse checks that the look-up's fingerprints,
// computed in Go, are the key_hash ClickHouse computes on insert: if they
// differed, no stored event would ever be found again and every re-send
// would be stored (and billed) a second time.
func TestKeyHashMatchesClickHouse(t *testing.T) {
	conn := newCH(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	var keys []Key
	for n := range 200 {
		s := func(l int) string {
			b := make([]byte, l)
			for i := range b {
				b[i] = byte(rng.IntN(256))
			}
			return string(b)
		}
		// Every length class of CityHash64 (0-16, 17-32, 33-64, longer).
		keys = append(keys, Key{CustomerID: s(n % 90), ID: s(rng.IntN(200))})
	}
	keys = append(keys, Key{"cust-1", "evt-00000001"}, Key{"", ""})
	var h keyHasher
	for _, k := range keys {
		var got uint64
		if err := conn.QueryRow(ctx, "SELECT cityHash64(?, ?)", k.CustomerID, k.ID).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := h.hash(k.CustomerID, k.ID); got != want {
			t.Fatalf("cityHash64(%q, %q): ClickHouse %d, Go %d", k.CustomerID, k.ID, got, want)
		}
	}
}

// TestInsertInBlocksIsOnePart checks that an Insert larger than one block
// stores every event once and, with merges stopped, makes one part per
// partition: ClickHouse joins the blocks of one INSERT. If it wrote a part
// per block, a flush of 40,000 events would make ten parts to merge.
func TestInsertInBlocksIsOnePart(t *testing.T) {
	conn := newCH(t)
	ctx := context.Background()
	if err := conn.Exec(ctx, "SYSTEM STOP MERGES events"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "SYSTEM START MERGES events") })
	s := NewCHStore(conn)
	t0 := time.Date(2026, 10, 15, 12, 0, 0, 0, time.UTC)
	evs := make([]Event, 3*insertBlockRows+5)
	for i := range evs {
		evs[i] = ev(fmt.Sprintf("cust-%d", i%7), fmt.Sprintf("evt-%d", i), t0.Add(time.Duration(i)*time.Second), "DE", "marketing", uint64(1+i%3))
		evs[i].IngestedAt = t0
	}
	if err := s.Insert(ctx, evs); err != nil {
		t.Fatal(err)
	}
	var parts, rows, ids, qty uint64
	if err := conn.QueryRow(ctx, "SELECT count(), sum(rows) FROM system.parts WHERE database = currentDatabase() AND table = 'events' AND active").Scan(&parts, &rows); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT uniqExact(id), sum(quantity) FROM events").Scan(&ids, &qty); err != nil {
		t.Fatal(err)
	}
	var wantQty uint64
	for _, e := range evs {
		wantQty += e.Quantity
	}
	if parts != 1 || rows != uint64(len(evs)) || ids != uint64(len(evs)) || qty != wantQty {
		t.Errorf("got %d parts, %d rows, %d ids, quantity %d; want 1 part, %d rows and ids, quantity %d", parts, rows, ids, qty, len(evs), wantQty)
	}
}
