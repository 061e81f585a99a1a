package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"postage/billing"
	"postage/internal/app"
	"postage/internal/auth"
	"postage/internal/httpapi"
	"postage/metering"
)

type usageBenchOpts struct {
	fillRows          int64
	customers         int
	queries, rawQuery int
	repeat            int
	dir, doc          string
	cpuProfile        string
}

func newUsageCmd() *cobra.Command {
	o := usageBenchOpts{}
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "Usage reads on a filled events table: usage and month-to-date bill latency of the largest and typical customers, vs the same reads from the raw events",
		Long: `Starts private ClickHouse and PostgreSQL servers, fills the events table to
--fill-rows events (last month and this month up to now, Zipf customers whose
largest sends 15% of everything, 2% of events ingested late) and seals the
rollups of every ingest hour that may be sealed, as the serving process does
all along. Then, through the HTTP API served by this process, for the
largest customer and for customers of Zipf rank 10, 100 and 1,000:

  1. GET /api/v1/customers/{id}/usage for last month, daily windows, by
     country and category (up to --queries, at most 20 s each);
  2. GET /api/v1/customers/{id}/invoices/upcoming (the month-to-date bill);
  3. the baseline: the same two requests with the store reading the raw
     events alone (CHStore.RawOnly), up to --raw-queries each.

--repeat rounds (the machine is shared: the best p99 of the rounds counts, and
every round's figure is printed). Also prints the disk used by the events and
by each rollup tier. Figures go to the "Usage reads" section of --doc.`,
		Example: `  postage-bench usage --fill-rows 10000000
  postage-bench usage --fill-rows 100000000 --repeat 3
  postage-bench usage --fill-rows 1000000 --doc ""   # quick look, no doc update`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUsageBench(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.Int64Var(&o.fillRows, "fill-rows", 10_000_000, "events in the table")
	f.IntVar(&o.customers, "customers", 10000, "distinct customers (Zipf-distributed)")
	f.IntVar(&o.queries, "queries", 300, "requests per measurement with the rollups")
	f.IntVar(&o.rawQuery, "raw-queries", 10, "requests per measurement reading raw events only (the baseline)")
	f.IntVar(&o.repeat, "repeat", 2, "rounds of every measurement")
	f.StringVar(&o.dir, "dir", "", "scratch directory for the servers (default: a new temporary directory, removed after)")
	f.StringVar(&o.doc, "doc", "docs/BENCHMARKS.md", `file whose "## Usage reads" section gets the figures ("" for none)`)
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measurement rounds (this process: server and client) to this file")
	return cmd
}

// latencies is one measurement: p50 and p99 of its requests.
type latencies struct {
	n        int
	p50, p99 time.Duration
}

func (l latencies) String() string {
	return fmt.Sprintf("p50 %v p99 %v (%d)", l.p50, l.p99, l.n)
}

func runUsageBench(ctx context.Context, out io.Writer, o usageBenchOpts) error {
	logf := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	if o.fillRows < 1 || o.customers < 1001 || o.queries < 1 || o.rawQuery < 1 || o.repeat < 1 {
		return usageError{fmt.Errorf("need --fill-rows >= 1, --customers > 1000, --queries, --raw-queries and --repeat >= 1")}
	}
	_, a, _, done, err := benchStack(ctx, o.dir, logf)
	if err != nil {
		return err
	}
	defer done()
	load0 := loadAverage()
	now := time.Now().UTC()
	fo := defaultFill(o.fillRows, now)
	fo.Customers = o.customers
	logf("filling the events table to %d events (%s to now, %d Zipf customers) and sealing the rollups", o.fillRows, fo.From.Format(time.DateOnly), o.customers)
	fr, err := fillTable(ctx, a, fo, logf)
	if err != nil {
		return err
	}
	logf("filled %d events in %s (%.0f events/s); sealed %d hours, %d days, %d months in %s (%.0f events/s)",
		fr.Inserted, fr.Insert.Round(time.Second), float64(fr.Inserted)/fr.Insert.Seconds(), fr.Sealed.Hours, fr.Sealed.Days, fr.Sealed.Months,
		fr.Seal.Round(time.Second), float64(fr.Rows)/fr.Seal.Seconds())
	settleAllMerges(ctx, a, 2*time.Minute)
	disk, err := diskUsed(ctx, a)
	if err != nil {
		return err
	}
	for _, d := range disk {
		logf("%s: %d rows, %d parts, %.1f MiB on disk", d.table, d.rows, d.parts, float64(d.bytes)/(1<<20))
	}

	// The API, served here.
	ln, err := httpapi.Listen("127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = a.Server().ListenAndServe(sctx, ln) }()
	base := "http://" + ln.Addr().String()
	_, key, err := a.Keys.Create(ctx, auth.NewKey{Name: "bench admin", Role: auth.RoleAdmin})
	if err != nil {
		return err
	}
	month := metering.MonthStart(now).AddDate(0, -1, 0)
	type target struct {
		rank                           int
		id                             string
		inMonth, mtd                   uint64
		usage, bill, rawU, rawB, store []latencies
		cold                           []latencies // usage with the store's sealed-rows cache off
	}
	var targets []*target
	for _, r := range []int{0, 10, 100, 1000} {
		tg := &target{rank: r, id: benchZipfCustomer(r)}
		if _, err := a.Customers.Create(ctx, billing.Customer{ID: tg.id, Name: "Bench " + tg.id, Currency: "USD", Country: "GB"}); err != nil {
			return err
		}
		for _, c := range []struct {
			n        *uint64
			from, to time.Time
		}{{&tg.inMonth, month, month.AddDate(0, 1, 0)}, {&tg.mtd, metering.MonthStart(now), now.Add(time.Hour)}} {
			if err := a.CH.QueryRow(ctx, "SELECT count() FROM events WHERE customer_id = ? AND time >= toDateTime(?) AND time < toDateTime(?)", tg.id, c.from.Unix(), c.to.Unix()).Scan(c.n); err != nil {
				return err
			}
		}
		targets = append(targets, tg)
	}
	measure := func(path string, n int, limit time.Duration) (latencies, error) {
		var lat []time.Duration
		t0 := time.Now()
		for i := 0; i < n && (i < 5 || time.Since(t0) < limit); i++ {
			s := time.Now()
			if err := getOK(ctx, base+path, key); err != nil {
				return latencies{}, err
			}
			lat = append(lat, time.Since(s))
		}
		return latencies{len(lat), pct(lat, 50), pct(lat, 99)}, nil
	}
	usagePath := func(id string) string {
		return fmt.Sprintf("/api/v1/customers/%s/usage?from=%s&to=%s&window=day&group_by=country,category", id, month.Format(time.DateOnly), month.AddDate(0, 1, 0).Format(time.DateOnly))
	}
	billPath := func(id string) string { return "/api/v1/customers/" + id + "/invoices/upcoming" }
	// The same usage read through the store alone, without HTTP and JSON.
	measureStore := func(id string, n int, limit time.Duration) (latencies, error) {
		var lat []time.Duration
		q := metering.UsageQuery{CustomerID: id, From: month, To: month.AddDate(0, 1, 0), Window: metering.Day, GroupBy: []metering.Dimension{metering.ByCountry, metering.ByCategory}}
		t0 := time.Now()
		for i := 0; i < n && (i < 5 || time.Since(t0) < limit); i++ {
			s := time.Now()
			if _, err := a.Events.Usage(ctx, q); err != nil {
				return latencies{}, err
			}
			lat = append(lat, time.Since(s))
		}
		return latencies{len(lat), pct(lat, 50), pct(lat, 99)}, nil
	}
	if o.cpuProfile != "" {
		stopProfile, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			return err
		}
		defer stopProfile()
	}
	for round := 1; round <= o.repeat; round++ {
		for _, tg := range targets {
			u, err := measure(usagePath(tg.id), o.queries, 20*time.Second)
			if err != nil {
				return err
			}
			st, err := measureStore(tg.id, o.queries, 10*time.Second)
			if err != nil {
				return err
			}
			tg.store = append(tg.store, st)
			// Every read asking ClickHouse for every part, as the first
			// read of a question does.
			a.Events.SetSealedCache(0)
			cu, err := measure(usagePath(tg.id), o.queries, 20*time.Second)
			a.Events.SetSealedCache(uint64(a.Config.Usage.CacheBytes))
			if err != nil {
				return err
			}
			tg.cold = append(tg.cold, cu)
			b, err := measure(billPath(tg.id), o.queries, 20*time.Second)
			if err != nil {
				return err
			}
			a.Events.RawOnly(true)
			ru, err := measure(usagePath(tg.id), o.rawQuery, 30*time.Second)
			if err == nil {
				var rb latencies
				rb, err = measure(billPath(tg.id), o.rawQuery, 30*time.Second)
				tg.rawB = append(tg.rawB, rb)
			}
			a.Events.RawOnly(false)
			if err != nil {
				return err
			}
			tg.usage, tg.bill, tg.rawU = append(tg.usage, u), append(tg.bill, b), append(tg.rawU, ru)
			logf("round %d, %s (rank %d, %d events last month, %d this month): usage %v (store %v, without the cache %v), raw %v; month-to-date bill %v, raw %v",
				round, tg.id, tg.rank, tg.inMonth, tg.mtd, u, st, cu, ru, b, tg.rawB[len(tg.rawB)-1])
		}
	}
	best := func(ls []latencies) latencies {
		b := ls[0]
		for _, l := range ls[1:] {
			if l.p99 < b.p99 {
				b = l
			}
		}
		return b
	}
	all := func(ls []latencies) string {
		var s []string
		for _, l := range ls {
			s = append(s, l.p99.String())
		}
		return strings.Join(s, ", ")
	}
	if o.doc == "" {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Usage reads\n\n")
	fmt.Fprintf(&b, "Command: `postage-bench usage --fill-rows %d --customers %d --queries %d --raw-queries %d --repeat %d`\n\n", o.fillRows, o.customers, o.queries, o.rawQuery, o.repeat)
	fmt.Fprintf(&b, "Machine: %s, %d CPUs, ClickHouse %s. Measured %s; load average %s at the start, %s at the end.\n\n", cpuModel(), runtime.NumCPU(), chVersion(ctx, a), now.Format("2006-01-02 15:04 UTC"), load0, loadAverage())
	fmt.Fprintf(&b, "%d events from %s to now, %d Zipf customers (exponent 1.2), 2%% ingested late; filled in %s, sealed (%d hours, %d days, %d months) in %s.\n\n",
		fr.Rows, fo.From.Format(time.DateOnly), o.customers, fr.Insert.Round(time.Second), fr.Sealed.Hours, fr.Sealed.Days, fr.Sealed.Months, fr.Seal.Round(time.Second))
	b.WriteString("| table | rows | parts | on disk |\n|---|---:|---:|---:|\n")
	for _, d := range disk {
		fmt.Fprintf(&b, "| %s | %d | %d | %.1f MiB |\n", d.table, d.rows, d.parts, float64(d.bytes)/(1<<20))
	}
	fmt.Fprintf(&b, "\nHTTP, through `GET /api/v1/customers/{id}/usage?window=day&group_by=country,category` over %s and `GET …/invoices/upcoming` (month to date); p99 best of %d rounds (every round's p99 in brackets); the baseline is the same request with the store reading the raw events alone:\n\n", month.Format("2006-01"), o.repeat)
	b.WriteString("| customer (Zipf rank) | events last month / this month | usage p50 / p99 | same read in the store, no HTTP: p50 / p99 | usage without the sealed-rows cache: p50 / p99 | raw baseline p99 | month-to-date bill p50 / p99 | raw baseline p99 |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, tg := range targets {
		u, st, cu, bl, ru, rb := best(tg.usage), best(tg.store), best(tg.cold), best(tg.bill), best(tg.rawU), best(tg.rawB)
		fmt.Fprintf(&b, "| %s (%d) | %d / %d | %v / **%v** (%s) | %v / %v | %v / %v (%s) | %v (%s) | %v / **%v** (%s) | %v (%s) |\n",
			tg.id, tg.rank, tg.inMonth, tg.mtd, u.p50, u.p99, all(tg.usage), st.p50, st.p99, cu.p50, cu.p99, all(tg.cold), ru.p99, all(tg.rawU), bl.p50, bl.p99, all(tg.bill), rb.p99, all(tg.rawB))
	}
	b.WriteString("\nGoals (issue #15): usage p99 < 50 ms and month-to-date bill p99 < 100 ms for the largest customer at 100M rows.\n")
	return writeDocSection(o.doc, "## Usage reads", b.String())
}

// loadAverage returns the 1, 5 and 15 minute load averages of the machine.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " / ")
}

// settleAllMerges waits (at most limit) for the background merges of the
// bench database to end, as they would between bulk arrivals.
func settleAllMerges(ctx context.Context, a *app.App, limit time.Duration) {
	t0 := time.Now()
	for time.Since(t0) < limit {
		var merging uint64
		if err := a.CH.QueryRow(ctx, "SELECT count() FROM system.merges WHERE database = currentDatabase()").Scan(&merging); err != nil || merging == 0 {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

type tableDisk struct {
	table              string
	rows, parts, bytes uint64
}

// diskUsed returns rows, active parts and bytes on disk of the events
// table and the rollup tiers.
func diskUsed(ctx context.Context, a *app.App) ([]tableDisk, error) {
	rows, err := a.CH.Query(ctx, `SELECT table, sum(rows), count(), sum(bytes_on_disk) FROM system.parts
WHERE database = currentDatabase() AND active AND table IN ('events', 'usage_hourly', 'usage_daily', 'usage_monthly', 'usage_seals')
GROUP BY table ORDER BY table = 'events' DESC, table`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []tableDisk
	for rows.Next() {
		var d tableDisk
		if err := rows.Scan(&d.table, &d.rows, &d.parts, &d.bytes); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
