package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"postage/billing"
	"postage/internal/app"
	"postage/pricing"
)

type invoiceBenchOpts struct {
	customers, events, countriesPer, repeat int
	dir, doc                                string
	optimize                                bool
}

func newInvoicesCmd() *cobra.Command {
	o := invoiceBenchOpts{}
	cmd := &cobra.Command{
		Use:   "invoices",
		Short: "An invoice run over one month (50,000 customers, 30M events) vs the raw GROUP BY in clickhouse-client",
		Long: `Starts private ClickHouse and PostgreSQL servers, creates --customers customers,
generates --events message events in last month with ClickHouse's own
INSERT ... SELECT FROM numbers() (each customer sending to a few recipient
countries of the launch card, four categories; stamped as ingested a few
seconds after their time, 2% late), seals the usage rollups as the serving
process does all month, and in the same run measures:

  1. the baseline: clickhouse-client running the raw
     SELECT customer_id, country, category, sum(quantity) ... GROUP BY (no FINAL)
     over the month, rows written to /dev/null (best of --repeat); and, for
     reference, the same over a copy of the month's events sorted by customer
     (the earlier layout, where that GROUP BY was several times cheaper);
  2. a full invoice run of the month (the exact read of the sealed rollups
     with the usage cut-off, rating every customer with its card, writing
     every draft to PostgreSQL);
  3. the same run again (every draft recomputed and compared: the idempotent path).

Each is the best of --repeat, interleaved with the baseline (drafts are
deleted before each first run).

Figures are printed and written to the "Invoice runs, merged" (or
"Invoice runs, unmerged") section of --doc.`,
		Example: `  make bench-invoices
  postage-bench invoices --customers 50000 --events 30000000
  postage-bench invoices --customers 5000 --events 2000000 --doc ""   # quick look, no doc update`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runInvoiceBench(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.customers, "customers", 50000, "customers with usage")
	f.IntVar(&o.events, "events", 30_000_000, "events in the month")
	f.IntVar(&o.countriesPer, "countries", 3, "recipient countries per customer")
	f.IntVar(&o.repeat, "repeat", 5, "repetitions of each run (first, again), each after a baseline (the best of each counts)")
	f.BoolVar(&o.optimize, "optimize", true, "merge every partition of the events and the rollups first (OPTIMIZE ... FINAL), as background merges have by invoice time; false: stop merges, every part stays as written")
	f.StringVar(&o.dir, "dir", "", "scratch directory for the servers (default: a new temporary directory, removed after)")
	f.StringVar(&o.doc, "doc", "docs/BENCHMARKS.md", `file whose "## Invoice runs, merged" (or unmerged) section gets the figures ("" for none)`)
	return cmd
}

func runInvoiceBench(ctx context.Context, out io.Writer, o invoiceBenchOpts) error {
	logf := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	if o.customers < 1 || o.events < o.customers || o.countriesPer < 1 || o.repeat < 1 {
		return usageError{fmt.Errorf("need --customers >= 1, --events >= --customers, --countries >= 1, --repeat >= 1")}
	}
	m, a, chClient, done, err := benchStack(ctx, o.dir, logf)
	if err != nil {
		return err
	}
	defer done()
	cfg := a.Config
	period := pricing.MonthOf(time.Now()).Prev()

	logf("creating %d customers", o.customers)
	rows := make([][]any, o.customers)
	now := time.Now().UTC()
	for i := range rows {
		rows[i] = []any{benchCustomer(i), "Bench customer " + strconv.Itoa(i), "USD", "GB", "", now, now}
	}
	if _, err := a.PG.CopyFrom(ctx, pgx.Identifier{"customers"}, []string{"id", "name", "currency", "country", "email", "created_at", "updated_at"}, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("create customers: %w", err)
	}

	launch, err := pricing.LaunchSeed()
	if err != nil {
		return err
	}
	var countries []string
	for c := range launch.Version.Countries {
		countries = append(countries, "'"+c+"'")
	}
	sort.Strings(countries)
	countries = append(countries, "'ZZ'") // not on the card: the default market
	if !o.optimize {
		// Unmerged: every part stays as its insert wrote it (the events'
		// and the rollups'), the state right after a busy month.
		if err := a.CH.Exec(ctx, "SYSTEM STOP MERGES"); err != nil {
			return fmt.Errorf("stop merges: %w", err)
		}
		defer func() { _ = a.CH.Exec(context.WithoutCancel(ctx), "SYSTEM START MERGES") }()
	}
	logf("generating %d events of %s with INSERT ... SELECT FROM numbers()", o.events, period)
	genStart := time.Now()
	from, to := period.Start().Unix(), period.End().Unix()
	const chunk = 5_000_000
	for off := 0; off < o.events; off += chunk {
		n := min(chunk, o.events-off)
		// Customer uniform over the ids; its countries a few consecutive
		// entries of the list starting at a hash of the customer. Each
		// chunk is a slice of the month in time order, stamped a few
		// seconds after its events (2% late, up to a day), as flushes
		// stamp them, so a chunk lands in one or two daily partitions.
		a0, a1 := from+(to-from)*int64(off)/int64(o.events), from+(to-from)*int64(off+n)/int64(o.events)
		q := fmt.Sprintf(`INSERT INTO events (customer_id, id, time, country, category, pricing_type, pricing_model, source, status, quantity, payload_hash, ingested_at)
SELECT cust, concat('ev-', toString(number + %d)), t,
       [%s][1 + (cityHash64(cust) + rand(3) %% %d) %% %d],
       ['marketing','utility','authentication','service'][1 + rand(4) %% 4],
       '', '', 'cloudevents', '', 1, rand64(5),
       toDateTime(toUInt32(t) + if(rand(6) %% 100 < 2, 3600 + rand(7) %% 82800, rand(8) %% 60))
FROM (SELECT number, concat('c', substring(toString(1000000 + rand(1) %% %d), 2)) AS cust, toDateTime(%d + intDiv(number * %d, %d)) AS t FROM numbers(%d))`,
			off, strings.Join(countries, ","), o.countriesPer, len(countries), o.customers, a0, a1-a0, n, n)
		if err := a.CH.Exec(ctx, q); err != nil {
			return fmt.Errorf("generate events: %w", err)
		}
	}
	genTime := time.Since(genStart)
	// The rollups, as the serving process seals them all month long.
	sealStart := time.Now()
	sealed, err := sealAll(ctx, a, time.Time{}, 24*40, nil)
	if err != nil {
		return err
	}
	sealTime := time.Since(sealStart)
	if o.optimize {
		// Merged: every partition of the events and of the rollups in
		// one part, the state background merges reach.
		if err := optimizeAll(ctx, a, "events", "usage_hourly", "usage_daily", "usage_monthly"); err != nil {
			return err
		}
	}
	var parts, monthParts uint64
	_ = a.CH.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'events' AND active").Scan(&parts)
	_ = a.CH.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'usage_monthly' AND active").Scan(&monthParts)
	var total, groups, t3rows uint64
	if err := a.CH.QueryRow(ctx, "SELECT count(), uniqExact(customer_id, country, category) FROM events WHERE time >= toDateTime(?) AND time < toDateTime(?)", from, to).Scan(&total, &groups); err != nil {
		return err
	}
	if err := a.CH.QueryRow(ctx, "SELECT count() FROM usage_monthly WHERE event_month = ?", period.Year*100+int(period.Month)).Scan(&t3rows); err != nil {
		return err
	}
	logf("%d events, %d (customer, country, category) groups, %d part(s) of events, generated in %s; sealed %d hours, %d days, %d months in %s: %d rows of tier 3 for the month in %d part(s)",
		total, groups, parts, genTime.Round(time.Second), sealed.Hours, sealed.Days, sealed.Months, sealTime.Round(time.Second), t3rows, monthParts)

	// Baseline: the raw GROUP BY, no FINAL, through clickhouse-client.
	rawSQL := fmt.Sprintf("SELECT customer_id, country, category, sum(quantity) FROM events WHERE time >= toDateTime(%d) AND time < toDateTime(%d) GROUP BY customer_id, country, category", from, to)
	// For reference, the same over a copy of the month's events sorted by
	// customer, as the events table was before it was laid out by ingest
	// time: grouping rows that arrive by customer is several times cheaper
	// than grouping rows that arrive by ingest hour, so the ratio against
	// the baseline above alone would flatter the run.
	for _, q := range []string{"DROP TABLE IF EXISTS bench_by_customer",
		"CREATE TABLE bench_by_customer (customer_id String, id String, time DateTime('UTC'), country FixedString(2), category String, quantity UInt64) ENGINE = MergeTree PARTITION BY toYYYYMM(time) ORDER BY (customer_id, id) SETTINGS index_granularity = 1024",
		fmt.Sprintf("INSERT INTO bench_by_customer (customer_id, id, time, country, category, quantity) SELECT customer_id, id, time, country, category, quantity FROM events WHERE time >= toDateTime(%d) AND time < toDateTime(%d)", from, to)} {
		if err := a.CH.Exec(ctx, q); err != nil {
			return fmt.Errorf("copy the month sorted by customer: %w", err)
		}
	}
	if o.optimize {
		if err := optimizeAll(ctx, a, "bench_by_customer"); err != nil {
			return err
		}
	}
	sortedSQL := strings.Replace(rawSQL, "FROM events", "FROM bench_by_customer", 1)
	port := strings.TrimPrefix(cfg.ClickHouse.Addr[strings.LastIndex(cfg.ClickHouse.Addr, ":"):], ":")
	var best, bestSorted time.Duration
	client := func(name, sql string, best *time.Duration) error {
		c := exec.CommandContext(ctx, chClient, "--host", "127.0.0.1", "--port", port, "--database", cfg.ClickHouse.Database, "--query", sql)
		var stderr bytes.Buffer
		c.Stdout, c.Stderr = io.Discard, &stderr
		ch0 := cpuOf(m.CH.PID())
		t0 := time.Now()
		if err := c.Run(); err != nil {
			return fmt.Errorf("clickhouse-client: %v: %s", err, stderr.String())
		}
		logf("%s: %v wall; CPU: ClickHouse %.2fs, clickhouse-client %.2fs", name, time.Since(t0).Round(time.Millisecond),
			(cpuOf(m.CH.PID()) - ch0).Seconds(), (c.ProcessState.UserTime() + c.ProcessState.SystemTime()).Seconds())
		if d := time.Since(t0); *best == 0 || d < *best {
			*best = d
		}
		return nil
	}
	baseline := func() error {
		if err := client("baseline", rawSQL, &best); err != nil {
			return err
		}
		return client("reference, the month sorted by customer", sortedSQL, &bestSorted)
	}

	// The machine is shared and noisy: every measurement is the best of
	// --repeat, interleaved with the baseline's.
	a.Billing.CutoffLag = 0
	// Phase timings of each run on stderr.
	a.Billing.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// CPU time of each process during each run: where the two cores went.
	type cpuUse struct{ postage, clickhouse, postgres time.Duration }
	cpuSnap := func() cpuUse {
		return cpuUse{cpuOf(os.Getpid()), cpuOf(m.CH.PID()), cpuTree(m.PG.PID())}
	}
	var lastCPU cpuUse
	run := func() (billing.Run, time.Duration, error) {
		c0 := cpuSnap()
		t0 := time.Now()
		r, err := a.Billing.Run(ctx, billing.RunRequest{Period: period, Trigger: billing.TriggerManual, Wait: true})
		d := time.Since(t0)
		c1 := cpuSnap()
		lastCPU = cpuUse{c1.postage - c0.postage, c1.clickhouse - c0.clickhouse, c1.postgres - c0.postgres}
		logf("run: %v wall; CPU: postage %.2fs, ClickHouse %.2fs, PostgreSQL %.2fs", d.Round(time.Millisecond), lastCPU.postage.Seconds(), lastCPU.clickhouse.Seconds(), lastCPU.postgres.Seconds())
		if err != nil {
			return r, d, err
		}
		// Untimed: the vacuum autovacuum would start after 50,000 new rows,
		// and a checkpoint writing out what the run and the vacuum dirtied,
		// so neither runs into the next measurement (baseline or run): each
		// starts from a quiet database, as a month's run does.
		if _, err = a.PG.Exec(ctx, `VACUUM (ANALYZE) invoices`); err == nil {
			_, err = a.PG.Exec(ctx, `CHECKPOINT`)
		}
		return r, d, err
	}
	// POSTAGE_BENCH_PROFILE=<dir>: a CPU profile of this process (the
	// invoice runs happen here) over the measured phase.
	if dir := os.Getenv(benchProfileEnv); dir != "" {
		stop, err := startSelfProfile(filepath.Join(dir, "cpu-invoices.pprof"))
		if err != nil {
			return err
		}
		defer stop()
	}
	// First runs: every draft created (drafts deleted between repetitions).
	var run1 billing.Run
	var d1 time.Duration
	for i := 0; i < o.repeat; i++ {
		if err := baseline(); err != nil {
			return err
		}
		if _, err := a.PG.Exec(ctx, `TRUNCATE invoices`); err != nil { // only this month's drafts exist here
			return err
		}
		r, d, err := run()
		if err != nil {
			return err
		}
		if d1 == 0 || d < d1 {
			d1, run1 = d, r
		}
	}
	var d2, dRead time.Duration
	var run2 billing.Run
	var readRows int
	for i := 0; i < o.repeat; i++ {
		if err := baseline(); err != nil {
			return err
		}
		r, d, err := run()
		if err != nil {
			return err
		}
		if d2 == 0 || d < d2 {
			d2, run2 = d, r
		}
		t0 := time.Now()
		rows := 0 // the read as a run streams it
		err = a.Billing.Usage.EachMonthlyUsage(ctx, period, time.Now().UTC(), func(billing.MeteredUsage) error { rows++; return nil })
		if err != nil {
			return err
		}
		if d := time.Since(t0); dRead == 0 || d < dRead {
			dRead, readRows = d, rows
		}
	}
	logf("baseline clickhouse-client GROUP BY (no FINAL): %s (best of %d); the same over the month sorted by customer: %s", best.Round(time.Millisecond), 2*o.repeat, bestSorted.Round(time.Millisecond))
	logf("invoice run, first (creates every draft): %s, %d customers, %d created (%.2fx the baseline, best of %d)", d1.Round(time.Millisecond), run1.Customers, run1.Created, d1.Seconds()/best.Seconds(), o.repeat)
	logf("invoice run again (every draft recomputed and compared, %d rewritten): %s (%.2fx the baseline, best of %d)", run2.Refreshed, d2.Round(time.Millisecond), d2.Seconds()/best.Seconds(), o.repeat)
	logf("of which the exact usage read: %s, %d rows (%.2fx the baseline)", dRead.Round(time.Millisecond), readRows, dRead.Seconds()/best.Seconds())
	logf("peak RSS of this process (the runs, the servers' clients and the generator): %d MB", peakRSS()>>20)
	if run1.Customers != o.customers || run1.Created != o.customers || run2.Refreshed+run2.Unchanged != o.customers {
		return fmt.Errorf("runs did not bill every customer: %+v %+v", run1, run2)
	}
	if o.doc == "" {
		return nil
	}
	var b strings.Builder
	heading := "## Invoice runs, merged"
	if !o.optimize {
		heading = "## Invoice runs, unmerged"
	}
	fmt.Fprintf(&b, "%s\n\n", heading)
	fmt.Fprintf(&b, "Command: `%s`\n\n", fmt.Sprintf("postage-bench invoices --customers %d --events %d --countries %d --repeat %d --optimize=%t", o.customers, o.events, o.countriesPer, o.repeat, o.optimize))
	fmt.Fprintf(&b, "Machine: %s, %d CPUs, ClickHouse %s, %s. Measured %s; load average %s at the end.\n\n", cpuModel(), runtime.NumCPU(), chVersion(ctx, a), strings.TrimSpace(pgVersion(ctx, a)), time.Now().UTC().Format("2006-01-02 15:04 UTC"), loadAverage())
	fmt.Fprintf(&b, "One month (%s), %d customers, %d events, %d (customer, country, category) groups, sealed into %d rows of tier 3; ", period, o.customers, total, groups, t3rows)
	if o.optimize {
		fmt.Fprintf(&b, "every partition of the events and of the rollups merged into one part first (`OPTIMIZE ... FINAL`; %d parts of events), the state background merges reach.\n\n", parts)
	} else {
		fmt.Fprintf(&b, "merges stopped (`SYSTEM STOP MERGES`): %d parts of events and %d of tier 3 as written.\n\n", parts, monthParts)
	}
	b.WriteString("| measurement | time | vs baseline |\n|---|---:|---:|\n")
	fmt.Fprintf(&b, "| baseline: `clickhouse-client` raw `GROUP BY customer_id, country, category`, no FINAL, rows to /dev/null (best of %d) | %s | 1.00x |\n", 2*o.repeat, best.Round(time.Millisecond))
	fmt.Fprintf(&b, "| invoice run, first: exact read, rating, %d drafts created (best of %d) | %s | %.2fx |\n", run1.Created, o.repeat, d1.Round(time.Millisecond), d1.Seconds()/best.Seconds())
	fmt.Fprintf(&b, "| invoice run again: every draft recomputed and compared, %d rewritten (best of %d) | %s | %.2fx |\n", run2.Refreshed, o.repeat, d2.Round(time.Millisecond), d2.Seconds()/best.Seconds())
	fmt.Fprintf(&b, "| of which: exact usage read, %d rows (best of %d) | %s | %.2fx |\n", readRows, o.repeat, dRead.Round(time.Millisecond), dRead.Seconds()/best.Seconds())
	fmt.Fprintf(&b, "| reference: the raw `GROUP BY` over a copy of the month's events sorted by customer (the layout before events were sorted by ingest hour; best of %d) | %s | %.2fx |\n\n", 2*o.repeat, bestSorted.Round(time.Millisecond), bestSorted.Seconds()/best.Seconds())
	fmt.Fprintf(&b, "Goal (issue #15): invoice run ≤ 1.0x the baseline, merged and unmerged.\n")
	return writeDocSection(o.doc, heading, b.String())
}

// optimizeAll merges every partition of the tables into one part, waiting
// out background merges that hold the parts.
func optimizeAll(ctx context.Context, a *app.App, tables ...string) error {
	octx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"optimize_throw_if_noop": 1}))
	for _, t := range tables {
		rows, err := a.CH.Query(ctx, "SELECT partition, count() FROM system.parts WHERE database = currentDatabase() AND table = ? AND active GROUP BY partition HAVING count() > 1", t)
		if err != nil {
			return err
		}
		var parts []string
		for rows.Next() {
			var p string
			var n uint64
			if err := rows.Scan(&p, &n); err != nil {
				rows.Close()
				return err
			}
			parts = append(parts, p)
		}
		rows.Close()
		for _, p := range parts {
			for try := 0; ; try++ {
				err := a.CH.Exec(octx, "OPTIMIZE TABLE "+t+" PARTITION "+p+" FINAL")
				if err == nil {
					break
				}
				if try >= 20 {
					return fmt.Errorf("optimize %s %s: %w", t, p, err)
				}
				time.Sleep(3 * time.Second)
			}
		}
	}
	return nil
}

func benchCustomer(i int) string { return fmt.Sprintf("c%06d", i) }

func pgVersion(ctx context.Context, a *app.App) string {
	var v string
	_ = a.PG.QueryRow(ctx, "SELECT 'PostgreSQL ' || current_setting('server_version')").Scan(&v)
	return v
}
