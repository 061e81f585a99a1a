package metering

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The differential test of the usage reads: random streams of events go
// through the Ingester (new events, re-sends, conflicts, late events, month
// edges, restarts, inserts that half landed before a crash) over several ingest hours and days while the sealer
// runs at random moments (now and then crashing between a rollup insert
// and its seal, now and then sealing a window a second time), and at many
// moments every read is compared with the same question answered in Go
// from an exact count over the raw events (GROUP BY customer_id, id).

// fakeClock is a settable clock shared by the ingester and the sealer.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// exactEvent is one stored event as the exact count sees it.
type exactEvent struct {
	customer, country, category, ptype, pmodel string
	time, ingested                             time.Time
	quantity                                   uint64
}

// exactEvents reads every stored event once, grouped by (customer_id, id),
// and fails the test if any event is stored twice.
func exactEvents(t *testing.T, conn driver.Conn) []exactEvent {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT customer_id, id, any(time), any(country), any(category), any(pricing_type), any(pricing_model), any(quantity), any(ingested_at), count() FROM events GROUP BY customer_id, id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []exactEvent
	for rows.Next() {
		var e exactEvent
		var id string
		var n uint64
		if err := rows.Scan(&e.customer, &id, &e.time, &e.country, &e.category, &e.ptype, &e.pmodel, &e.quantity, &e.ingested, &n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("event %s/%s is stored %d times", e.customer, id, n)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// bucketOf is the start of e's bucket of window w ("" : the zero time).
func bucketOf(w Window, tm time.Time) time.Time {
	switch w {
	case Hour:
		return tm.Truncate(time.Hour)
	case Day:
		return tm.Truncate(24 * time.Hour)
	case Month:
		return MonthStart(tm)
	}
	return time.Time{}
}

// expectRows answers a usage question from the exact events: those of
// customers (none: all) with a time in [from, to) ingested in (after,
// upTo] (zero: open), per bucket and the grouped dimensions, sorted.
func expectRows(evs []exactEvent, customer string, from, to, after, upTo time.Time, w Window, dims []Dimension, start time.Time) []UsageRow {
	has := map[Dimension]bool{}
	for _, d := range dims {
		has[d] = true
	}
	sums := map[UsageRow]*UsageRow{}
	for _, e := range evs {
		if (customer != "" && e.customer != customer) || e.time.Before(from) || !e.time.Before(to) ||
			(!after.IsZero() && !e.ingested.After(after)) || (!upTo.IsZero() && e.ingested.After(upTo)) {
			continue
		}
		k := UsageRow{Start: bucketOf(w, e.time), CustomerID: customer}
		if w == "" {
			k.Start = start
		}
		if has[ByCustomer] {
			k.CustomerID = e.customer
		}
		if has[ByCountry] {
			k.Country = e.country
		}
		if has[ByCategory] {
			k.Category = e.category
		}
		r := sums[k]
		if r == nil {
			r = &UsageRow{Start: k.Start, CustomerID: k.CustomerID, Country: k.Country, Category: k.Category}
			sums[k] = r
		}
		r.Quantity += e.quantity
		r.Events++
	}
	var out []UsageRow
	for _, r := range sums {
		out = append(out, *r)
	}
	sortRows(out)
	return out
}

func sortRows(rs []UsageRow) {
	slices.SortFunc(rs, func(a, b UsageRow) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.CustomerID, b.CustomerID), cmp.Compare(a.Country, b.Country), cmp.Compare(a.Category, b.Category))
	})
}

// expectAggregates is MonthlyAggregates from the exact events.
func expectAggregates(evs []exactEvent, month, asOf time.Time, customers []string) []Aggregate {
	from, to := MonthStart(month), MonthStart(month).AddDate(0, 1, 0)
	sums := map[Aggregate]*Aggregate{}
	for _, e := range evs {
		if e.time.Before(from) || !e.time.Before(to) || (!asOf.IsZero() && e.ingested.After(asOf)) || (len(customers) > 0 && !slices.Contains(customers, e.customer)) {
			continue
		}
		k := Aggregate{CustomerID: e.customer, Country: e.country, Category: e.category, PricingType: e.ptype, PricingModel: e.pmodel}
		a := sums[k]
		if a == nil {
			a = &k
			sums[k] = a
		}
		a.Quantity += e.quantity
		a.Events++
	}
	var out []Aggregate
	for _, a := range sums {
		out = append(out, *a)
	}
	sortAggregatesAll(out)
	return out
}

func sortAggregatesAll(a []Aggregate) {
	slices.SortFunc(a, func(x, y Aggregate) int {
		return cmp.Or(cmp.Compare(x.CustomerID, y.CustomerID), cmp.Compare(x.Country, y.Country), cmp.Compare(x.Category, y.Category),
			cmp.Compare(x.PricingType, y.PricingType), cmp.Compare(x.PricingModel, y.PricingModel))
	})
}

// streamGen makes the random event stream.
type streamGen struct {
	rng  *rand.Rand
	sent []Event // every event submitted so far (for re-sends and conflicts)
	n    int
}

var (
	diffCustomers  = []string{"c0", "c1", "c2", "c3", "big", "unknown:42"}
	diffCountries  = []string{"DE", "FR", "US", "IN"}
	diffCategories = []string{"marketing", "utility", "service"}
	diffPTypes     = []string{"", "", "regular", PricingFreeCustomerService}
	diffPModels    = []string{"", "", "CBP", "PMP"}
)

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// batch returns the next request's events at clock time now.
func (g *streamGen) batch(now time.Time) []Event {
	var out []Event
	for range 1 + g.rng.IntN(40) {
		switch r := g.rng.Float64(); {
		case r < 0.12 && len(g.sent) > 0: // a re-send: a duplicate
			out = append(out, pick(g.rng, g.sent))
		case r < 0.17 && len(g.sent) > 0: // the same id, another payload: a conflict
			e := pick(g.rng, g.sent)
			e.Quantity++
			e.PayloadHash = HashPayload(e.Time, true, e.Country, e.Category, e.Quantity)
			out = append(out, e)
		default:
			g.n++
			var tm time.Time
			switch r := g.rng.Float64(); {
			case r < 0.1: // late: up to 40 days old
				tm = now.Add(-time.Duration(g.rng.Int64N(int64(40 * 24 * time.Hour))))
			case r < 0.15: // just around a month's edge
				tm = MonthStart(now).Add(time.Duration(g.rng.Int64N(int64(2*time.Hour))) - time.Hour)
			case r < 0.18: // a little in the future
				tm = now.Add(time.Duration(g.rng.Int64N(int64(5 * time.Minute))))
			default:
				tm = now.Add(-time.Duration(g.rng.Int64N(int64(3 * time.Hour))))
			}
			cust := pick(g.rng, diffCustomers)
			if g.rng.IntN(3) == 0 {
				cust = "big"
			}
			e := ev(cust, fmt.Sprintf("e%d", g.n), tm.Truncate(time.Second), pick(g.rng, diffCountries), pick(g.rng, diffCategories), uint64(1+g.rng.IntN(5)))
			e.PricingType, e.PricingModel = pick(g.rng, diffPTypes), pick(g.rng, diffPModels)
			out = append(out, e)
			g.sent = append(g.sent, e)
		}
	}
	return out
}

// hourBetween returns a random whole hour in [from, to].
func hourBetween(rng *rand.Rand, from, to time.Time) time.Time {
	from = from.Truncate(time.Hour)
	n := int64(to.Sub(from)/time.Hour) + 1
	return from.Add(time.Duration(rng.Int64N(n)) * time.Hour)
}

// instantBetween returns a random second in [from, to].
func instantBetween(rng *rand.Rand, from, to time.Time) time.Time {
	return from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)/time.Second)+1)) * time.Second)
}

var errCrash = errors.New("crash between a rollup insert and its seal (test)")

func TestReadsAreExactWhateverIsSealed(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { differential(t, seed) })
	}
}

func differential(t *testing.T, seed uint64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 99))
	clock := &fakeClock{t: time.Date(2026, 10, 30, 20, 0, 0, 0, time.UTC).Add(time.Duration(rng.IntN(180)) * time.Minute)}
	start := clock.Now()
	store := newStore(t)
	// Another process's reads: its catalogue knows only what it reads
	// back from usage_seals, at every read.
	other := NewCHStore(store.conn)
	other.repl = store.repl
	other.CatalogRefresh = time.Nanosecond
	sealer := NewSealer(store, SealerConfig{Now: clock.Now, ChunkHours: 1 + rng.IntN(24), ChunkEvents: uint64(10 + rng.IntN(60)), PassHours: 20 + rng.IntN(200)})
	newIngester := func() *Ingester {
		return NewIngester(store, IngesterConfig{Now: clock.Now, MaxDelay: time.Millisecond, Lookback: -1})
	}
	in := newIngester()
	defer func() { in.Close() }()
	gen := &streamGen{rng: rng}
	var crashes, reseals, passes, crashedInserts int

	check := func(step int) {
		t.Helper()
		evs := exactEvents(t, store.conn)
		now := clock.Now()
		lo := time.Date(2026, 9, 15, 0, 0, 0, 0, time.UTC)
		for _, s := range []*CHStore{store, other} {
			name := "sealer's store"
			if s == other {
				name = "other process"
			}
			fail := func(what string, q any, got, want any) {
				t.Helper()
				t.Fatalf("step %d, %s, %s %+v:\n got %+v\nwant %+v", step, name, what, q, got, want)
			}
			for range 4 {
				q := UsageQuery{CustomerID: pick(rng, diffCustomers), Window: pick(rng, []Window{Hour, Day, Month})}
				q.From = hourBetween(rng, lo, now)
				q.To = hourBetween(rng, q.From.Add(time.Hour), now.Add(48*time.Hour))
				q.GroupBy = pick(rng, [][]Dimension{nil, {ByCountry}, {ByCategory}, {ByCategory, ByCountry}})
				if rng.IntN(2) == 0 {
					q.AsOf = instantBetween(rng, start, now)
				}
				got, err := s.Usage(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				want := expectRows(evs, q.CustomerID, q.From, q.To, time.Time{}, q.AsOf, q.Window, q.GroupBy, time.Time{})
				if !reflect.DeepEqual(got, want) {
					fail("usage", q, got, want)
				}
				// Again: the sealed windows' rows now come from the
				// store's cache (sealedcache.go).
				if got, err = s.Usage(ctx, q); err != nil {
					t.Fatal(err)
				} else if !reflect.DeepEqual(got, want) {
					fail("usage read again", q, got, want)
				}
			}
			for _, month := range []time.Time{time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)} {
				var asOf time.Time
				if rng.IntN(2) == 0 {
					asOf = instantBetween(rng, start, now)
				}
				sq := SummaryQuery{Month: month, AsOf: asOf, GroupBy: pick(rng, [][]Dimension{{ByCustomer}, {ByCountry, ByCategory}, {ByCustomer, ByCountry, ByCategory}})}
				got, err := s.Summary(ctx, sq)
				if err != nil {
					t.Fatal(err)
				}
				want := expectRows(evs, "", month, month.AddDate(0, 1, 0), time.Time{}, asOf, "", sq.GroupBy, month)
				sortRows(got)
				if !reflect.DeepEqual(got, want) {
					fail("summary", sq, got, want)
				}

				var customers []string
				if rng.IntN(3) == 0 {
					customers = []string{pick(rng, diffCustomers), pick(rng, diffCustomers)}
				}
				aggs, err := s.MonthlyAggregates(ctx, month, asOf, customers...)
				if err != nil {
					t.Fatal(err)
				}
				sortAggregatesAll(aggs)
				if wantAggs := expectAggregates(evs, month, asOf, customers); !reflect.DeepEqual(aggs, wantAggs) {
					fail("monthly aggregates", fmt.Sprint(month, asOf, customers), aggs, wantAggs)
				}

				c := pick(rng, diffCustomers)
				for range 2 { // the second read from the cache
					one, err := s.CustomerMonth(ctx, c, month, asOf)
					if err != nil {
						t.Fatal(err)
					}
					sortAggregatesAll(one)
					if want := expectAggregates(evs, month, asOf, []string{c}); !reflect.DeepEqual(one, want) {
						fail("customer month", fmt.Sprint(c, month, asOf), one, want)
					}
				}

				after := time.Time{}
				if rng.IntN(4) > 0 {
					after = instantBetween(rng, start, now)
				}
				upTo := instantBetween(rng, start, now.Add(time.Hour))
				if !after.IsZero() {
					upTo = instantBetween(rng, after, now.Add(time.Hour))
				}
				late, err := s.LateIngested(ctx, month, after, upTo)
				if err != nil {
					t.Fatal(err)
				}
				wantLate := map[string]time.Time{}
				for _, e := range evs {
					if !e.time.Before(month) && e.time.Before(month.AddDate(0, 1, 0)) && (after.IsZero() || e.ingested.After(after)) && !e.ingested.After(upTo) {
						if e.ingested.After(wantLate[e.customer]) {
							wantLate[e.customer] = e.ingested
						}
					}
				}
				if !upTo.After(after) {
					wantLate = map[string]time.Time{}
				}
				if !reflect.DeepEqual(late, wantLate) {
					fail("late ingested", fmt.Sprint(month, after, upTo), late, wantLate)
				}

				cs, err := s.CustomersWithUsage(ctx, month)
				if err != nil {
					t.Fatal(err)
				}
				var wantCs []string
				for _, r := range expectRows(evs, "", month, month.AddDate(0, 1, 0), time.Time{}, time.Time{}, "", []Dimension{ByCustomer}, month) {
					wantCs = append(wantCs, r.CustomerID)
				}
				if !reflect.DeepEqual(cs, wantCs) {
					fail("customers with usage", month, cs, wantCs)
				}
			}
			for range 2 {
				q := SeriesQuery{Window: pick(rng, []Window{Hour, Day, Month}), GroupBy: pick(rng, []Dimension{"", ByCountry, ByCategory})}
				q.From = hourBetween(rng, lo, now)
				q.To = hourBetween(rng, q.From.Add(time.Hour), now.Add(24*time.Hour))
				if rng.IntN(2) == 0 {
					q.CustomerID = pick(rng, diffCustomers)
				}
				got, err := s.Series(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				var dims []Dimension
				if q.GroupBy != "" {
					dims = []Dimension{q.GroupBy}
				}
				want := expectRows(evs, q.CustomerID, q.From, q.To, time.Time{}, time.Time{}, q.Window, dims, time.Time{})
				if !reflect.DeepEqual(got, want) {
					fail("series", q, got, want)
				}
			}
		}
	}

	steps := 70
	for step := 0; step < steps; step++ {
		clock.advance(time.Duration(1+rng.IntN(150)) * time.Minute)
		if rng.IntN(12) == 0 { // a restart: a new ingester, nothing carried over
			in.Close()
			in = newIngester()
		}
		before := len(gen.sent)
		batch := gen.batch(clock.Now())
		if rng.IntN(8) == 0 {
			// A crash mid-insert: some of the batch's new events landed,
			// stamped as their flush stamped them, and the process died
			// before answering; a new process gets the whole batch again.
			var landed []Event
			for _, e := range gen.sent[before:] {
				if rng.IntN(2) == 0 {
					e.IngestedAt = clock.Now().UTC().Truncate(time.Second)
					landed = append(landed, e)
				}
			}
			if err := store.Insert(ctx, landed); err != nil {
				t.Fatal(err)
			}
			in.Close()
			in = newIngester()
			crashedInserts++
			clock.advance(time.Duration(rng.IntN(90)) * time.Second)
		}
		var sealErr error
		var wg sync.WaitGroup
		sealNow := rng.IntN(3) == 0
		if sealNow {
			if passes == 2 || rng.IntN(6) == 0 { // the next rollup insert is not followed by its seal
				sealer.crash = func(tier, int64, int64) error { return errCrash }
			}
			wg.Add(1)
			go func() { // concurrently with the insert of this batch
				defer wg.Done()
				_, sealErr = sealer.SealOnce(ctx)
			}()
		}
		if _, err := in.Submit(ctx, batch); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if sealNow {
			passes++
			if errors.Is(sealErr, errCrash) {
				crashes++
			} else if sealErr != nil {
				t.Fatal(sealErr)
			}
			sealer.crash = nil
		}
		if rng.IntN(10) == 0 { // a second seal of a sealed window: both recorded
			if resealRandom(t, sealer, rng) {
				reseals++
			}
		}
		if step%7 == 6 {
			check(step)
		}
	}
	// Everything sealed, then read again, also in raw-only mode.
	clock.advance(40 * 24 * time.Hour)
	for {
		res, err := sealer.SealOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !res.More {
			break
		}
	}
	for range 3 { // windows sealed twice once everything is sealed, whatever happened before
		if resealRandom(t, sealer, rng) {
			reseals++
		}
	}
	check(steps)
	store.RawOnly(true)
	check(steps + 1)
	store.RawOnly(false)

	// The test means something only if the tiers were used.
	store.cat.mu.RLock()
	sealed := [4]int{}
	for tr := tierHour; tr <= tierMonth; tr++ {
		sealed[tr] = len(store.cat.starts[tr])
	}
	store.cat.mu.RUnlock()
	if sealed[tierMonth] < 2 || sealed[tierDay] < 30 {
		t.Errorf("sealed %v windows per tier, want October and November at every tier", sealed)
	}
	plan := planRead(monthlySpec(time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), time.Time{}, nil), store.cat)
	if plan[0].tier != tierMonth {
		t.Errorf("October is not read from tier 3 at the end: %q", fmtPlan(plan))
	}
	if crashes == 0 || reseals == 0 {
		t.Logf("seed %d: no crash mid-seal (%d) or second seal (%d) happened", seed, crashes, reseals)
	}
	var orphans uint64
	if err := store.conn.QueryRow(ctx, "SELECT count() FROM usage_hourly WHERE seal_id NOT IN (SELECT seal_id FROM usage_seals)").Scan(&orphans); err != nil {
		t.Fatal(err)
	}
	t.Logf("seed %d: %d events, %d seal passes, %d crashed mid-seal (%d rollup rows left unrecorded), %d windows sealed twice, %d inserts crashed half landed, windows sealed per tier %v",
		seed, gen.n, passes, crashes, orphans, reseals, crashedInserts, sealed)
}

// resealRandom seals one already sealed window holding events (hour, day
// or month) again, as a second process would: its rows and its seal are
// recorded beside the first ones.
func resealRandom(t *testing.T, s *Sealer, rng *rand.Rand) bool {
	t.Helper()
	ctx := context.Background()
	c := s.store.cat
	tr := tier(1 + rng.IntN(3))
	c.mu.RLock()
	// Windows holding events: a second seal of an empty one would show
	// nothing if it were counted twice.
	var starts []int64
	for _, w := range c.starts[tr] {
		if c.spans[tr][w].events > 0 {
			starts = append(starts, w)
		}
	}
	var span sealSpan
	var w int64
	if len(starts) > 0 {
		w = starts[rng.IntN(len(starts))]
		span = c.spans[tr][w]
	}
	c.mu.RUnlock()
	if len(starts) == 0 {
		return false
	}
	var err error
	switch tr {
	case tierHour:
		err = s.sealHourChunk(ctx, interval{w, w + 3600})
	case tierDay:
		err = s.sealDayChunk(ctx, []sealRecord{{tier: tierDay, start: w, span: span}})
	case tierMonth:
		err = s.sealMonth(ctx, sealRecord{tier: tierMonth, start: w, span: span})
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}
