package reports

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	billingpg "postage/billing/pgstore"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"postage/billing"
	"postage/internal/testenv"
	"postage/metering"
	"postage/pricing"
	"postage/pricing/pgstore"
)

// BenchmarkSimulate re-rates 50,000 customers × 3 months under
// meta-2026-01 (REPORTS_BENCH_CUSTOMERS overrides the count) and, in the
// same run, times the baseline: the three raw monthly aggregate queries
// the simulation reads (metering's exact FINAL GROUP BY). It reports the
// simulation's time and its ratio to that baseline; docs/BENCHMARKS.md
// ("Reports") has the figures.
//
//	go test -run '^$' -bench Simulate -benchtime 3x ./reports
func BenchmarkSimulate(b *testing.B) {
	n := 50_000
	if v, err := strconv.Atoi(os.Getenv("REPORTS_BENCH_CUSTOMERS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	env := testenv.New(b)
	cards := pgstore.New(env.PG)
	if err := cards.Seed(ctx); err != nil {
		b.Fatal(err)
	}
	months := []pricing.Month{pricing.MustParseMonth("2026-08"), pricing.MustParseMonth("2026-09"), pricing.MustParseMonth("2026-10")}
	store := metering.NewCHStore(env.CH)
	events := loadBenchBook(b, env, store, n, months)

	svc := &Service{
		Usage: billing.FromMeter(store), Series: meterSeries{store},
		Cards: cards, Customers: billingpg.NewCustomerStore(env.PG),
		Now: func() time.Time { return months[2].End().Add(time.Hour) },
	}
	req := SimulationRequest{CardID: pricing.MetaCardID, From: months[0], To: months[2]}
	var simTotal, baseTotal, simCPU time.Duration
	var sim *Simulation
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		for _, m := range months {
			if _, err := store.MonthlyAggregates(ctx, m.Start(), time.Time{}); err != nil {
				b.Fatal(err)
			}
		}
		t1, c1 := time.Now(), cpuTime()
		var err error
		if sim, err = svc.Simulate(ctx, req); err != nil {
			b.Fatal(err)
		}
		simTotal += time.Since(t1)
		simCPU += cpuTime() - c1
		baseTotal += t1.Sub(t0)
	}
	b.StopTimer()
	if len(sim.Totals) != 1 || sim.Totals[0].Customers != n {
		b.Fatalf("simulated %+v, want %d customers", sim.Totals, n)
	}
	simMS := float64(simTotal.Milliseconds()) / float64(b.N)
	baseMS := float64(baseTotal.Milliseconds()) / float64(b.N)
	cpuMS := float64(simCPU.Milliseconds()) / float64(b.N)
	b.ReportMetric(simMS, "sim_ms")
	b.ReportMetric(cpuMS, "sim_go_cpu_ms")
	b.ReportMetric(baseMS, "aggregate_query_ms")
	b.ReportMetric(simMS/baseMS, "x_baseline")
	b.ReportMetric(float64(n*len(months)), "customer_months")
	b.Logf("%d customers × %d months, %d events (%d messages): simulate %.0f ms (Go CPU %.0f ms), raw aggregate queries %.0f ms, ratio %.2f; load average %s; totals %+v",
		n, len(months), events, sim.Totals[0].Quantity, simMS, cpuMS, baseMS, simMS/baseMS, loadAvg(), sim.Totals)
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg is the machine's 1-minute load average (shared machines are noisy).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// loadBenchBook creates n customers (PostgreSQL COPY) and their traffic of
// the months (ClickHouse, through metering's store): Zipf-like volumes, a
// country mix weighted to IN/BR/ID/MX/DE/US, four categories; 3-8 (country,
// category) rows per customer-month, each one event with a quantity.
func loadBenchBook(b *testing.B, env *testenv.Env, store *metering.CHStore, n int, months []pricing.Month) int {
	b.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 7))
	countries := []string{"IN", "BR", "ID", "MX", "DE", "US", "NG", "TR", "IT", "ES", "AR", "CO", "GB", "FR", "EG", "SA", "PK", "ZA", "KE", "PH"}
	weights := []float64{22, 16, 11, 9, 6, 6, 4, 4, 3, 3, 3, 3, 2, 2, 2, 1, 1, 1, 1, 1}
	var wsum float64
	for _, w := range weights {
		wsum += w
	}
	pick := func() string {
		x := rng.Float64() * wsum
		for i, w := range weights {
			if x < w {
				return countries[i]
			}
			x -= w
		}
		return countries[0]
	}
	cats := []string{"marketing", "utility", "authentication", "service"}
	now := time.Now().UTC()
	rows := make([][]any, n)
	for i := range rows {
		rows[i] = []any{fmt.Sprintf("c%06d", i), fmt.Sprintf("Customer %d", i), "USD", pick(), "", now, now}
	}
	if _, err := env.PG.CopyFrom(ctx, pgx.Identifier{"customers"}, []string{"id", "name", "currency", "country", "email", "created_at", "updated_at"}, pgx.CopyFromRows(rows)); err != nil {
		b.Fatal(err)
	}
	var batch []metering.Event
	total := 0
	flush := func() {
		if err := store.Insert(ctx, batch); err != nil {
			b.Fatal(err)
		}
		total += len(batch)
		batch = batch[:0]
	}
	for i := 0; i < n; i++ {
		volume := int64(2_000_000/math.Pow(float64(i+1), 1.05)) + 50
		for _, m := range months {
			k := 3 + rng.IntN(6)
			for j := 0; j < k; j++ {
				q := uint64(volume/int64(k)) + 1
				e := metering.Event{CustomerID: fmt.Sprintf("c%06d", i), ID: fmt.Sprintf("%s-%d", m, j),
					Time: m.Start().Add(time.Duration(rng.IntN(27*24)) * time.Hour), Country: pick(), Category: cats[rng.IntN(len(cats))],
					Quantity: q, IngestedAt: now.Truncate(time.Second)}
				e.PayloadHash = metering.HashPayload(e.Time, true, e.Country, e.Category, e.Quantity)
				batch = append(batch, e)
				if len(batch) == 100_000 {
					flush()
				}
			}
		}
	}
	flush()
	return total
}
