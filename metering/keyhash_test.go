package metering

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestFingerprintMatchesClickHouse checks that the key index's
// fingerprints, computed in Go on ingest, are those ClickHouse computes
// when the index is rebuilt from the events table: if they differed, no
// event stored before a rebuild would ever be found again and every
// re-send would be stored (and billed) a second time.
func TestFingerprintMatchesClickHouse(t *testing.T) {
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
		var hi, lo uint64
		if err := conn.QueryRow(ctx, "SELECT "+fingerprintColumns+" FROM (SELECT ? AS customer_id, ? AS id)", k.CustomerID, k.ID).Scan(&hi, &lo); err != nil {
			t.Fatal(err)
		}
		if want := h.fingerprint(k.CustomerID, k.ID); hi != want.Hi || lo != want.Lo {
			t.Fatalf("fingerprint(%q, %q): ClickHouse %x %x, Go %x %x", k.CustomerID, k.ID, hi, lo, want.Hi, want.Lo)
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
