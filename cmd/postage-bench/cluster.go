package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"

	"postage/billing"
	"postage/internal/app"
	"postage/internal/localdb"
	"postage/metering"
	"postage/pricing"
)

type clusterBenchOpts struct {
	customers, events, batch, clients, repeat int
	shards, replicas                          int
	dir, doc                                  string
}

func newClusterCmd() *cobra.Command {
	o := clusterBenchOpts{}
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Ingest and an invoice run on a ClickHouse cluster (2 shards × 2 replicas) vs one server, same command",
		Long: `Starts private PostgreSQL, one ClickHouse server, and a ClickHouse cluster of
--shards × --replicas servers with one ZooKeeper, all on this machine, and
wires postage on each (the cluster: events routed to their customer's
shard, quorum inserts on a majority of the shard's replicas, a key index
and a write lease per shard). Then, --repeat times, alternating one server
and the cluster:

  1. ingest: --events new events of last month for --customers customers,
     in batches of --batch from --clients concurrent callers of the
     ingester (in process: the pipeline without HTTP);
  2. after sealing the rollups, an invoice run of last month (drafts
     deleted before each run), whose invoices must agree between the two.

The ratio cluster / one server of each is the figure (best of --repeat
each). Every server shares the machine's cores: on 2 cores the cluster
cannot be faster. Figures are printed and written to the "Cluster" section
of --doc.`,
		Example: `  postage-bench cluster --customers 2000 --events 1000000 --repeat 3`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runClusterBench(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.customers, "customers", 2000, "customers")
	f.IntVar(&o.events, "events", 1_000_000, "events ingested per repetition")
	f.IntVar(&o.batch, "batch", 2000, "events per submission")
	f.IntVar(&o.clients, "clients", 8, "concurrent submitters")
	f.IntVar(&o.repeat, "repeat", 3, "repetitions, one server and cluster alternated (the best of each counts)")
	f.IntVar(&o.shards, "shards", 2, "shards of the cluster")
	f.IntVar(&o.replicas, "replicas", 2, "replicas per shard (the insert quorum is a majority: 2 of 2)")
	f.StringVar(&o.dir, "dir", "", "scratch directory for the servers (default: a new temporary directory, removed after)")
	f.StringVar(&o.doc, "doc", "docs/BENCHMARKS.md", `file whose "## Cluster" section gets the figures ("" for none)`)
	return cmd
}

func runClusterBench(ctx context.Context, out io.Writer, o clusterBenchOpts) error {
	logf := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	if o.customers < 1 || o.events < o.batch || o.batch < 1 || o.clients < 1 || o.repeat < 1 || o.shards < 1 || o.replicas < 1 {
		return usageError{fmt.Errorf("need --customers, --batch, --clients, --repeat, --shards, --replicas >= 1 and --events >= --batch")}
	}
	m, one, _, done, err := benchStack(ctx, o.dir, logf)
	if err != nil {
		return err
	}
	defer done()
	logf("starting a ClickHouse cluster of %d shards × %d replicas and ZooKeeper", o.shards, o.replicas)
	cl, err := localdb.StartCluster(ctx, localdb.ClusterOptions{Dir: filepath.Join(m.Dir, "cluster"), Name: "bench", Shards: o.shards, Replicas: o.replicas, Fast: true})
	if err != nil {
		return err
	}
	defer cl.Stop()
	if _, err := one.PG.Exec(ctx, "CREATE DATABASE bench_cluster"); err != nil {
		return fmt.Errorf("create the cluster's ledger: %w", err)
	}
	cfg := one.Config
	cfg.Postgres.DSN = m.PG.DSN("bench_cluster")
	addrs := cl.Addrs()
	cfg.ClickHouse.Addr, cfg.ClickHouse.Addrs, cfg.ClickHouse.Cluster = addrs[0], addrs[1:], cl.Name()
	cfg.ClickHouse.ZooKeeper = []string{cl.ZooKeeperAddr()}
	cfg.Ingest.IndexDir = filepath.Join(m.Dir, "cluster-index")
	if err := app.MigrateCluster(ctx, cfg); err != nil {
		return err
	}
	clApp, err := app.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer clApp.Close()
	if err := clApp.Seed(ctx); err != nil {
		return err
	}
	apps := []*app.App{one, clApp}
	names := []string{"one server", fmt.Sprintf("cluster %d×%d", o.shards, o.replicas)}
	now := time.Now().UTC()
	for _, a := range apps {
		rows := make([][]any, o.customers)
		for i := range rows {
			rows[i] = []any{benchCustomer(i), "Bench customer " + strconv.Itoa(i), "USD", "GB", "", now, now}
		}
		if _, err := a.PG.CopyFrom(ctx, pgx.Identifier{"customers"}, []string{"id", "name", "currency", "country", "email", "created_at", "updated_at"}, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("create customers: %w", err)
		}
		a.Billing.CutoffLag = 0
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = clApp.Ingester.WaitReady(wctx)
	cancel()
	if err != nil {
		return err
	}

	period := pricing.MonthOf(now).Prev()
	start := time.Date(period.Year, period.Month, 1, 0, 0, 0, 0, time.UTC)
	countries := []string{"GB", "DE", "IN", "BR", "US", "FR"}
	categories := []string{"marketing", "utility", "authentication", "service"}
	ingest := func(a *app.App, round int) (time.Duration, error) {
		var next sync.Mutex
		n := 0
		var firstErr error
		var wg sync.WaitGroup
		t0 := time.Now()
		for c := range o.clients {
			wg.Go(func() {
				for {
					next.Lock()
					from := n
					n += o.batch
					stop := from >= o.events || firstErr != nil
					next.Unlock()
					if stop {
						return
					}
					evs := make([]metering.Event, min(o.batch, o.events-from))
					for i := range evs {
						k := from + i
						e := &evs[i]
						*e = metering.Event{CustomerID: benchCustomer(k * 7919 % o.customers), ID: "b" + strconv.Itoa(round) + "-" + strconv.Itoa(k),
							Time: start.Add(time.Duration(k%(27*24*3600)) * time.Second), Country: countries[k%len(countries)],
							Category: categories[(k/7)%len(categories)], Quantity: 1, Source: "cloudevents"}
						e.PayloadHash = metering.HashPayload(e.Time, true, e.Country, e.Category, e.Quantity)
					}
					if _, err := a.Ingester.Submit(ctx, evs); err != nil {
						next.Lock()
						if firstErr == nil {
							firstErr = fmt.Errorf("client %d: %w", c, err)
						}
						next.Unlock()
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(t0), firstErr
	}
	invoiceRun := func(a *app.App) (time.Duration, billing.Run, decimal.Decimal, error) {
		if _, err := a.PG.Exec(ctx, `TRUNCATE invoices CASCADE`); err != nil { // only the run's drafts exist here
			return 0, billing.Run{}, decimal.Zero, err
		}
		t0 := time.Now()
		r, err := a.Billing.Run(ctx, billing.RunRequest{Period: period, Trigger: billing.TriggerManual, Wait: true})
		d := time.Since(t0)
		if err != nil {
			return 0, r, decimal.Zero, err
		}
		var total decimal.Decimal
		if err := a.PG.QueryRow(ctx, "SELECT coalesce(sum(total), 0) FROM invoices WHERE period = $1", period.String()).Scan(&total); err != nil {
			return 0, r, decimal.Zero, err
		}
		return d, r, total, nil
	}
	best := [2][2]time.Duration{}
	for round := range o.repeat {
		for i, a := range apps {
			d, err := ingest(a, round)
			if err != nil {
				return fmt.Errorf("%s: ingest: %w", names[i], err)
			}
			logf("round %d, %s: ingested %d events in %s (%.0f events/s)", round+1, names[i], o.events, d.Round(time.Millisecond), float64(o.events)/d.Seconds())
			if best[i][0] == 0 || d < best[i][0] {
				best[i][0] = d
			}
		}
	}
	// Seal what was ingested, as the serving processes do every hour.
	later := now.Add(3 * time.Hour)
	for _, a := range apps {
		a.Now = func() time.Time { return later }
		for {
			r, err := a.SealOnce(ctx)
			if err != nil {
				return err
			}
			if !r.More {
				break
			}
		}
	}
	var totals [2]decimal.Decimal
	var runs [2]billing.Run
	for round := range o.repeat {
		for i, a := range apps {
			d, r, total, err := invoiceRun(a)
			if err != nil {
				return fmt.Errorf("%s: invoice run: %w", names[i], err)
			}
			logf("round %d, %s: invoice run of %s, %d customers, total %s, in %s", round+1, names[i], period, r.Customers, total, d.Round(time.Millisecond))
			totals[i], runs[i] = total, r
			if best[i][1] == 0 || d < best[i][1] {
				best[i][1] = d
			}
		}
	}
	if !totals[0].Equal(totals[1]) || runs[0].Created != runs[1].Created {
		return fmt.Errorf("the invoices differ: one server %d drafts totalling %s, cluster %d totalling %s", runs[0].Created, totals[0], runs[1].Created, totals[1])
	}
	load := loadAverage()
	var b strings.Builder
	b.WriteString("## Cluster\n\n")
	fmt.Fprintf(&b, "Measured %s UTC, load average %s, with `postage-bench cluster --customers %d --events %d --batch %d --clients %d --repeat %d --shards %d --replicas %d`\n",
		time.Now().UTC().Format("2006-01-02 15:04"), load, o.customers, o.events, o.batch, o.clients, o.repeat, o.shards, o.replicas)
	fmt.Fprintf(&b, "(best of %d each, one server and the cluster alternated; every server, ZooKeeper and postage share the machine's 2 cores).\n\n", o.repeat)
	fmt.Fprintf(&b, "| what | one server | %s | cluster / one server |\n|---|---|---|---|\n", names[1])
	fmt.Fprintf(&b, "| ingest %d events (in-process ingester, %d clients × batches of %d) | %s (%.0f/s) | %s (%.0f/s) | **%.2fx** the time |\n",
		o.events, o.clients, o.batch, best[0][0].Round(time.Millisecond), float64(o.events)/best[0][0].Seconds(),
		best[1][0].Round(time.Millisecond), float64(o.events)/best[1][0].Seconds(), best[1][0].Seconds()/best[0][0].Seconds())
	fmt.Fprintf(&b, "| invoice run of %s, %d customers (%d events a round) | %s | %s | **%.2fx** the time |\n",
		period, runs[0].Customers, o.events, best[0][1].Round(time.Millisecond), best[1][1].Round(time.Millisecond), best[1][1].Seconds()/best[0][1].Seconds())
	fmt.Fprint(out, "\n"+b.String())
	if o.doc != "" {
		return writeDocSection(o.doc, "## Cluster", b.String()+"\n")
	}
	return nil
}
