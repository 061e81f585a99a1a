package metering

import (
	"cmp"
	"context"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"postage/internal/testenv"
)

func TestTaggedReadSQL(t *testing.T) {
	oct, nov := u(t, "2026-10-01T00:00:00Z"), u(t, "2026-11-01T00:00:00Z")
	spec := readSpec{eventFrom: oct, eventTo: nov, ingestFrom: openFrom, ingestTo: openTo, bucket: Day, dims: []string{"country"}, customers: []string{"c1"}, order: true}
	parts := []planPart{
		{tier: tierMonth, ingest: []interval{{oct, nov}}, event: []interval{{oct, nov}}},
		{tier: tierDay, ingest: []interval{{oct, nov}}, event: []interval{{oct, nov}}},
		{tier: tierRaw, ingest: []interval{{nov, openTo}}, event: []interval{{oct, nov}}},
	}
	q, args := taggedReadSQL(spec, parts, []int{1, 2})
	want := "SELECT part, bucket, country, sum(quantity) AS quantity, sum(events) AS events FROM (" +
		"SELECT toUInt8(0) AS part, * FROM (SELECT toUInt32(event_day) AS bucket, country, quantity, events FROM usage_daily" +
		" WHERE ingest_day >= toDateTime(?) AND ingest_day < toDateTime(?)" +
		" AND seal_id IN (SELECT min(seal_id) FROM usage_seals WHERE tier = 2 AND ingest_start >= toDateTime(?) AND ingest_start < toDateTime(?) GROUP BY ingest_start)" +
		" AND event_day >= toDateTime(?) AND event_day < toDateTime(?) AND customer_id = ?)" +
		" UNION ALL SELECT toUInt8(1) AS part, * FROM (SELECT toUInt32(intDiv(toUInt32(time), 86400) * 86400) AS bucket, country, sum(quantity) AS quantity, count() AS events FROM events" +
		" WHERE ingested_at >= toDateTime(?) AND time >= toDateTime(?) AND time < toDateTime(?) AND customer_id = ?" +
		" GROUP BY bucket, country)) GROUP BY part, bucket, country ORDER BY part, bucket, country"
	wantArgs := []any{oct, nov, oct, nov, oct, nov, "c1", nov, oct, nov, "c1"}
	if q != want || !reflect.DeepEqual(args, wantArgs) {
		t.Errorf("got  %s\n%v\nwant %s\n%v", q, args, want, wantArgs)
	}
}

func TestPartKey(t *testing.T) {
	oct, nov := u(t, "2026-10-01T00:00:00Z"), u(t, "2026-11-01T00:00:00Z")
	spec := readSpec{eventFrom: oct, eventTo: nov, bucket: Day, dims: []string{"country"}, customers: []string{"c1"}}
	p := planPart{tier: tierDay, ingest: []interval{{oct, nov}}, event: []interval{{oct, nov}}}
	base := partKey(spec, p)
	// Everything a part's query depends on changes its key.
	variants := []func(*readSpec, *planPart){
		func(s *readSpec, _ *planPart) { s.bucket = Hour },
		func(s *readSpec, _ *planPart) { s.bucket = "" },
		func(s *readSpec, _ *planPart) { s.dims = []string{"category"} },
		func(s *readSpec, _ *planPart) { s.dims = []string{"country", "category"} },
		func(s *readSpec, _ *planPart) { s.customers = []string{"c2"} },
		func(s *readSpec, _ *planPart) { s.customers = []string{"c1|"} },
		func(_ *readSpec, p *planPart) { p.tier = tierHour },
		func(_ *readSpec, p *planPart) { p.ingest = []interval{{oct, nov + 3600}} },
		func(_ *readSpec, p *planPart) { p.ingest = []interval{{oct, oct + 3600}, {oct + 7200, nov}} },
		func(_ *readSpec, p *planPart) { p.event = []interval{{oct + 3600, nov}} },
	}
	seen := map[string]int{base: -1}
	for i, change := range variants {
		s, q := spec, p
		change(&s, &q)
		k := partKey(s, q)
		if j, dup := seen[k]; dup {
			t.Errorf("variant %d has the key of %d: %q", i, j, k)
		}
		seen[k] = i
	}
	// The same question has the same key (the spec's own ranges and
	// ordering do not reach a part's query).
	s := spec
	s.eventFrom, s.ingestTo, s.order = 0, 5, true
	if partKey(s, p) != base {
		t.Error("key depends on what the part's query does not")
	}
}

// mergeSealedRows equals adding every row up by key and sorting, for
// random lists with shared keys.
func TestMergeSealedRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	keys := func(r sealedRow) [3]any { return [3]any{r.bucket, r.dims[0], r.dims[1]} }
	for n := range 300 {
		var lists [][]sealedRow
		want := map[[3]any]sealedRow{}
		for range rng.IntN(5) {
			seen := map[[3]any]bool{}
			var l []sealedRow
			for range rng.IntN(30) {
				r := sealedRow{bucket: uint32(rng.IntN(4)), quantity: uint64(rng.IntN(100)), events: uint64(1 + rng.IntN(9))}
				r.dims[0] = string(rune('A' + rng.IntN(3)))
				r.dims[1] = []string{"", "b", "ba", "é"}[rng.IntN(4)]
				if seen[keys(r)] {
					continue // one row per key within a part
				}
				seen[keys(r)] = true
				l = append(l, r)
				w := want[keys(r)]
				w.bucket, w.dims = r.bucket, r.dims
				w.quantity += r.quantity
				w.events += r.events
				want[keys(r)] = w
			}
			slices.SortFunc(l, func(a, b sealedRow) int { return compareSealedRows(&a, &b, 2) })
			lists = append(lists, l)
		}
		before := make([][]sealedRow, len(lists))
		for i, l := range lists {
			before[i] = slices.Clone(l)
		}
		var got []sealedRow
		if err := mergeSealedRows(lists, 2, func(r *sealedRow) error { got = append(got, *r); return nil }); err != nil {
			t.Fatal(err)
		}
		var wantRows []sealedRow
		for _, r := range want {
			wantRows = append(wantRows, r)
		}
		slices.SortFunc(wantRows, func(a, b sealedRow) int {
			return cmp.Or(cmp.Compare(a.bucket, b.bucket), cmp.Compare(a.dims[0], b.dims[0]), cmp.Compare(a.dims[1], b.dims[1]))
		})
		if !reflect.DeepEqual(got, wantRows) {
			t.Fatalf("case %d: got %+v\nwant %+v", n, got, wantRows)
		}
		if len(lists) > 0 && !reflect.DeepEqual(lists, before) {
			t.Fatalf("case %d: the lists changed:\n%+v\n%+v", n, lists, before)
		}
	}
}

// A one-customer read keeps the rows of the sealed windows it read and
// asks ClickHouse only for the rest: rollup rows dropped behind its back
// (which never happens to a recorded seal) do not change its answer, while
// a store without the cache sees them gone; events ingested since are
// always counted, and a window sealed since is read once and kept.
func TestSealedCacheKeepsSealedRows(t *testing.T) {
	testenv.SingleServerOnly(t, "the sealed-row cache is off on a cluster (NewReplicatedCHStore, sealedcache.go)")
	ctx := context.Background()
	env := testenv.New(t)
	at := func(v string) time.Time { return time.Unix(u(t, v), 0).UTC() }
	now := at("2026-11-20T10:30:00Z")
	s := NewCHStore(env.CH)
	plain := NewCHStore(env.CH)
	plain.SetSealedCache(0)
	plain.CatalogRefresh = time.Nanosecond
	sealer := NewSealer(s, SealerConfig{Now: func() time.Time { return now }, Delay: time.Minute})

	stored(t, s, at("2026-11-02T08:10:00Z"), ev("c1", "a", at("2026-11-02T08:00:00Z"), "DE", "service", 3))
	stored(t, s, at("2026-11-05T09:10:00Z"), ev("c1", "b", at("2026-11-05T09:00:00Z"), "FR", "service", 4), ev("c2", "x", at("2026-11-05T09:00:00Z"), "FR", "service", 100))
	stored(t, s, at("2026-11-20T08:10:00Z"), ev("c1", "c", at("2026-11-04T09:00:00Z"), "DE", "service", 5)) // late, in a sealed hour of today
	sealAll := func() {
		t.Helper()
		for {
			res, err := sealer.SealOnce(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if res == (SealResult{}) {
				return
			}
		}
	}
	sealAll()
	q := UsageQuery{CustomerID: "c1", From: at("2026-11-01T00:00:00Z"), To: at("2026-12-01T00:00:00Z"), Window: Day, GroupBy: []Dimension{ByCountry}}
	row := func(day, country string, qty, n uint64) UsageRow {
		return UsageRow{Start: at(day), CustomerID: "c1", Country: country, Quantity: qty, Events: n}
	}
	read := func(st *CHStore) []UsageRow {
		t.Helper()
		got, err := st.Usage(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := []UsageRow{row("2026-11-02T00:00:00Z", "DE", 3, 1), row("2026-11-04T00:00:00Z", "DE", 5, 1), row("2026-11-05T00:00:00Z", "FR", 4, 1)}
	if got := read(s); !reflect.DeepEqual(got, want) {
		t.Fatalf("first read:\n got %+v\nwant %+v", got, want)
	}
	if got := read(plain); !reflect.DeepEqual(got, want) {
		t.Fatalf("read without the cache:\n got %+v\nwant %+v", got, want)
	}

	// Behind the store's back, the sealed rows go; the kept answer stays.
	// (Today's hours stay: their rows are read again whenever an hour of
	// today is sealed, as one part.)
	for _, tbl := range []string{"usage_daily", "usage_monthly"} {
		if err := env.CH.Exec(ctx, "ALTER TABLE "+tbl+" DELETE WHERE customer_id = 'c1'"); err != nil {
			t.Fatal(err)
		}
	}
	waitMutations(t, env)
	if got := read(plain); !reflect.DeepEqual(got, want[1:2]) {
		t.Fatalf("without the cache, the dropped rows still count: %+v", got)
	}
	if got := read(s); !reflect.DeepEqual(got, want) {
		t.Fatalf("kept read:\n got %+v\nwant %+v", got, want)
	}

	// New events in the raw tail are counted at once.
	stored(t, s, at("2026-11-20T10:20:00Z"), ev("c1", "d", at("2026-11-05T12:00:00Z"), "FR", "service", 6))
	want[2] = row("2026-11-05T00:00:00Z", "FR", 10, 2)
	if got := read(s); !reflect.DeepEqual(got, want) {
		t.Fatalf("with a raw tail:\n got %+v\nwant %+v", got, want)
	}
	// Once their hour is sealed, they come from its rollup rows, read once
	// and kept with the rest.
	now = at("2026-11-20T11:30:00Z")
	sealAll()
	if got := read(s); !reflect.DeepEqual(got, want) {
		t.Fatalf("after the seal:\n got %+v\nwant %+v", got, want)
	}
	if got := read(plain); !reflect.DeepEqual(got, []UsageRow{want[1], row("2026-11-05T00:00:00Z", "FR", 6, 1)}) {
		t.Fatalf("without the cache, only today's hours' rows: %+v", got)
	}
	// Another customer's read is its own.
	q.CustomerID = "c2"
	if got := read(s); !reflect.DeepEqual(got, []UsageRow{{Start: at("2026-11-05T00:00:00Z"), CustomerID: "c2", Country: "FR", Quantity: 100, Events: 1}}) {
		t.Fatalf("c2: %+v", got)
	}
}

// waitMutations waits until the database's mutations are done.
func waitMutations(t *testing.T, env *testenv.Env) {
	t.Helper()
	for range 200 {
		var n uint64
		if err := env.CH.QueryRow(context.Background(), "SELECT count() FROM system.mutations WHERE database = currentDatabase() AND is_done = 0").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("mutations did not finish")
}
