package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"

	"postage/billing"
	"postage/internal/app"
	"postage/metering"
	"postage/pricing"
	"postage/reconcile"
	"postage/reports"
)

type marginBenchOpts struct {
	customers, events, repeat int
	costPlus                  int // every costPlus-th customer is priced cost-plus (0: none)
	zipf                      float64
	dir, doc                  string
}

func newMarginCmd() *cobra.Command {
	o := marginBenchOpts{}
	cmd := &cobra.Command{
		Use:   "margin",
		Short: "The margin report and the reconciliation of one month (50,000 customers) vs the raw aggregate queries they read",
		Long: `Starts private ClickHouse and PostgreSQL servers, creates --customers customers
(one WhatsApp phone number each), generates --events message statuses of
last month with ClickHouse's own INSERT ... SELECT FROM numbers() (Zipf
customer volumes, 80% of each customer's messages to a home country, four
categories, service messages free, 1% counted at status sent), writes the
upstream's report of the month from postage's own daily usage at the cost
card's prices with known differences (messages postage never saw, messages
moved to the next day, another price, rows missing, numbers nobody has),
imports it, and in the same run measures, each the best of --repeat
interleaved with its baseline:

  1. the margin report by customer (every customer-month rated at its card
     and at the cost card, month to date and projected) against
     clickhouse-client running the raw monthly GROUP BY it reads;
  2. the same by customer, market and category;
  3. the margin simulation of the month at a proposed cost card version
     (the upstream's prices 10% up; every --cost-plus-th customer is
     priced cost-plus, so its revenue is re-rated at the proposed version
     too) against the same raw monthly GROUP BY;
  4. the reconciliation's comparison (postage's month per day and status,
     the upstream's rows, every customer rated at cost, differences
     attributed and stored) against the raw aggregate queries it reads:
     clickhouse-client's daily GROUP BY plus PostgreSQL's COPY of the
     report's rows with their customers.

Figures are printed and written to the "Margin and reconciliation" section
of --doc.`,
		Example: `  postage-bench margin
  postage-bench margin --customers 5000 --events 2000000 --doc ""   # quick look, no doc update`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMarginBench(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.customers, "customers", 50000, "customers")
	f.IntVar(&o.events, "events", 20_000_000, "message statuses in the month")
	f.Float64Var(&o.zipf, "zipf", 1.1, "exponent of the customers' Zipf volumes")
	f.IntVar(&o.costPlus, "cost-plus", 10, "every n-th customer is priced cost-plus, 15% over the cost card (0: none)")
	f.IntVar(&o.repeat, "repeat", 3, "repetitions of each measurement, each after its baseline (the best counts)")
	f.StringVar(&o.dir, "dir", "", "scratch directory for the servers (default: a new temporary directory, removed after)")
	f.StringVar(&o.doc, "doc", "docs/BENCHMARKS.md", `file whose "## Margin and reconciliation" section gets the figures ("" for none)`)
	return cmd
}

// benchPhone is the phone-number id of bench customer i.
func benchPhone(i int) string { return strconv.Itoa(100000000000 + i) }

func runMarginBench(ctx context.Context, out io.Writer, o marginBenchOpts) error {
	logf := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	if o.customers < 1 || o.events < o.customers || o.repeat < 1 || o.zipf <= 1 || o.costPlus < 0 {
		return usageError{fmt.Errorf("need --customers >= 1, --events >= --customers, --repeat >= 1, --zipf > 1, --cost-plus >= 0")}
	}
	m, a, chClient, done, err := benchStack(ctx, o.dir, logf)
	if err != nil {
		return err
	}
	defer done()
	cfg := a.Config
	period := pricing.MonthOf(time.Now()).Prev()

	logf("creating %d customers with a phone number each", o.customers)
	now := time.Now().UTC()
	rows := make([][]any, o.customers)
	phones := make([][]any, o.customers)
	for i := range rows {
		rows[i] = []any{benchCustomer(i), "Bench customer " + strconv.Itoa(i), "USD", "GB", "", now, now}
		phones[i] = []any{benchPhone(i), benchCustomer(i), now}
	}
	if _, err := a.PG.CopyFrom(ctx, pgx.Identifier{"customers"}, []string{"id", "name", "currency", "country", "email", "created_at", "updated_at"}, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("create customers: %w", err)
	}
	if _, err := a.PG.CopyFrom(ctx, pgx.Identifier{"phone_numbers"}, []string{"phone_number_id", "customer_id", "created_at"}, pgx.CopyFromRows(phones)); err != nil {
		return fmt.Errorf("map phone numbers: %w", err)
	}

	proposed, plus, err := benchCostPlus(ctx, a, period, o.customers, o.costPlus)
	if err != nil {
		return err
	}
	logf("%d customers priced cost-plus; proposed cost card version %d (prices 10%% up)", plus, proposed)

	regions := benchRegions()
	var cs []string
	for _, r := range regions {
		cs = append(cs, "'"+r.region+"'")
	}
	logf("generating %d statuses of %s with INSERT ... SELECT FROM numbers()", o.events, period)
	genStart := time.Now()
	from, span := period.Start().Unix(), period.End().Unix()-period.Start().Unix()
	zipf := func(u string, n int, s float64) string {
		return fmt.Sprintf("least(%d, toUInt32(floor(pow((pow(%d, %g) - 1) * (%s / 4294967296.0) + 1, %g))) - 1)", n-1, n+1, 1-s, u, 1/(1-s))
	}
	const chunk = 5_000_000
	for off := 0; off < o.events; off += chunk {
		n := min(chunk, o.events-off)
		a0, b0 := from+span*int64(off)/int64(o.events), from+span*int64(off+n)/int64(o.events)
		q := fmt.Sprintf(`INSERT INTO events (customer_id, id, time, country, category, pricing_type, pricing_model, source, status, quantity, payload_hash, ingested_at)
SELECT cust, concat('wamid.', toString(number + %d)), t,
       [%s][1 + if(rand(3) %% 100 < 80, cityHash64(cust) %% %d, %s)],
       cat, if(cat = 'service', 'free_customer_service', 'regular'), 'PMP', 'whatsapp',
       multiIf(rand(6) %% 100 = 0, 'sent', rand(6) %% 100 = 1, 'read', 'delivered'),
       1, rand64(7), toDateTime(toUInt32(t) + 5)
FROM (SELECT number, toDateTime(%d + intDiv(number * %d, %d)) AS t,
             concat('c', substring(toString(1000000 + %s), 2)) AS cust,
             ['marketing','marketing','marketing','marketing','marketing','utility','utility','utility','authentication','service'][1 + rand(5) %% 10] AS cat
      FROM numbers(%d))`,
			off, strings.Join(cs, ","), len(cs), zipf("rand(4)", len(cs), 1.05), a0, b0-a0, n, zipf("rand(1)", o.customers, o.zipf), n)
		if err := a.CH.Exec(ctx, q); err != nil {
			return fmt.Errorf("generate events: %w", err)
		}
	}
	var total, monthly, daily, withUsage uint64
	mFrom, mTo := period.Start().Unix(), period.End().Unix()
	if err := a.CH.QueryRow(ctx, fmt.Sprintf(`SELECT count(), uniqExact(customer_id, country, category, pricing_type, pricing_model),
		uniqExact(customer_id, intDiv(toUInt32(time), 86400), country, category, pricing_type, pricing_model, status), uniqExact(customer_id)
		FROM events WHERE time >= toDateTime(%d) AND time < toDateTime(%d)`, mFrom, mTo)).Scan(&total, &monthly, &daily, &withUsage); err != nil {
		return err
	}
	logf("%d events of %d customers: %d monthly and %d daily usage rows, generated in %s", total, withUsage, monthly, daily, time.Since(genStart).Round(time.Second))

	svc := a.Reports()
	rec := a.Reconcile()
	rec.Now = func() time.Time { return time.Now().UTC() }

	// The upstream's report, written from postage's own daily usage.
	file := filepath.Join(cfg.Dev.DataDir, "upstream.csv")
	t0 := time.Now()
	want, err := writeUpstream(ctx, a.Events, a.Pricing, period, file)
	if err != nil {
		return err
	}
	logf("upstream report: %d rows written in %s (known: %+v)", want.rows, time.Since(t0).Round(time.Millisecond), want)
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	t0 = time.Now()
	first, err := rec.Import(ctx, reconcile.ImportRequest{Month: period, Format: reconcile.FormatCSV, Source: "upstream.csv", By: "bench", Body: f})
	f.Close()
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	dImport := time.Since(t0)
	logf("import (decode, store %d rows, first comparison): %s; %d differences", first.Report.Rows, dImport.Round(time.Millisecond), first.Lines)
	for _, c := range first.Causes {
		logf("  %-22s %8d lines %10d messages %14s", c.Cause, c.Lines, c.Messages, c.Amount.StringFixed(2))
	}

	port := strings.TrimPrefix(cfg.ClickHouse.Addr[strings.LastIndex(cfg.ClickHouse.Addr, ":"):], ":")
	chRaw := func(sql string) (time.Duration, error) {
		c := exec.CommandContext(ctx, chClient, "--host", "127.0.0.1", "--port", port, "--database", cfg.ClickHouse.Database, "--query", sql)
		var stderr bytes.Buffer
		c.Stdout, c.Stderr = io.Discard, &stderr
		t0 := time.Now()
		if err := c.Run(); err != nil {
			return 0, fmt.Errorf("clickhouse-client: %v: %s", err, stderr.String())
		}
		return time.Since(t0), nil
	}
	monthlyRaw := fmt.Sprintf("SELECT customer_id, country, category, pricing_type, pricing_model, sum(quantity), count() FROM events WHERE time >= toDateTime(%d) AND time < toDateTime(%d) GROUP BY customer_id, country, category, pricing_type, pricing_model", mFrom, mTo)
	dailyRaw := fmt.Sprintf("SELECT customer_id, intDiv(toUInt32(time), 86400) AS day, country, category, pricing_type, pricing_model, status, sum(quantity), count() FROM events WHERE time >= toDateTime(%d) AND time < toDateTime(%d) GROUP BY customer_id, day, country, category, pricing_type, pricing_model, status", mFrom, mTo)
	pgRaw := func() (time.Duration, error) {
		conn, err := a.PG.Acquire(ctx)
		if err != nil {
			return 0, err
		}
		defer conn.Release()
		q := fmt.Sprintf(`COPY (SELECT coalesce(p.customer_id, 'unknown:' || u.phone_number_id) AS customer, u.phone_number_id, u.day, u.country, u.category, u.pricing_type, u.volume, u.cost
			FROM upstream_usage u LEFT JOIN phone_numbers p ON p.phone_number_id = u.phone_number_id WHERE u.report_id = %d ORDER BY customer) TO STDOUT`, first.ReportID)
		t0 := time.Now()
		_, err = conn.Conn().PgConn().CopyTo(ctx, io.Discard, q)
		return time.Since(t0), err
	}
	best := func(cur *time.Duration, d time.Duration) {
		if *cur == 0 || d < *cur {
			*cur = d
		}
	}
	var bMonthly, bDaily, bPG, dMargin, dLines, dSim, dCompare time.Duration
	var marginRows, lineRows, simCustomers, simFollow int
	var cmp *reconcile.Reconciliation
	for i := 0; i < o.repeat; i++ {
		d, err := chRaw(monthlyRaw)
		if err != nil {
			return err
		}
		best(&bMonthly, d)
		t0 := time.Now()
		rep, err := svc.Margin(ctx, reports.MarginQuery{Month: period})
		if err != nil {
			return fmt.Errorf("margin: %w", err)
		}
		d = time.Since(t0)
		best(&dMargin, d)
		marginRows = len(rep.Rows)
		logf("margin by customer: %s (baseline %s), %d rows", d.Round(time.Millisecond), bMonthly.Round(time.Millisecond), marginRows)
		t0 = time.Now()
		lr, err := svc.Margin(ctx, reports.MarginQuery{Month: period, GroupBy: reports.ByLine})
		if err != nil {
			return fmt.Errorf("margin by line: %w", err)
		}
		d = time.Since(t0)
		best(&dLines, d)
		lineRows = len(lr.Rows)
		logf("margin by line: %s, %d rows", d.Round(time.Millisecond), lineRows)
		runtime.GC()
		t0 = time.Now()
		sim, err := svc.SimulateMargin(ctx, reports.MarginSimulationRequest{Version: proposed, From: period, To: period})
		if err != nil {
			return fmt.Errorf("margin simulation: %w", err)
		}
		d = time.Since(t0)
		best(&dSim, d)
		simCustomers, simFollow = len(sim.Customers), 0
		for _, c := range sim.Customers {
			if c.Skipped == "" && c.ProposedRevenue != c.Revenue {
				simFollow++
			}
		}
		logf("margin simulation: %s, %d customers (%d revenues follow the proposed card)", d.Round(time.Millisecond), simCustomers, simFollow)

		d, err = chRaw(dailyRaw)
		if err != nil {
			return err
		}
		best(&bDaily, d)
		if d, err = pgRaw(); err != nil {
			return err
		}
		best(&bPG, d)
		runtime.GC()
		t0 = time.Now()
		if cmp, err = rec.Compare(ctx, period); err != nil {
			return fmt.Errorf("compare: %w", err)
		}
		d = time.Since(t0)
		best(&dCompare, d)
		logf("reconciliation compare: %s (baseline %s + %s), %d differences", d.Round(time.Millisecond), bDaily.Round(time.Millisecond), bPG.Round(time.Millisecond), cmp.Lines)
	}
	bRecon := bDaily + bPG
	logf("margin by customer: %s, %.2fx the raw monthly GROUP BY (%s)", dMargin.Round(time.Millisecond), dMargin.Seconds()/bMonthly.Seconds(), bMonthly.Round(time.Millisecond))
	logf("margin by line: %s, %.2fx", dLines.Round(time.Millisecond), dLines.Seconds()/bMonthly.Seconds())
	logf("margin simulation: %s, %.2fx", dSim.Round(time.Millisecond), dSim.Seconds()/bMonthly.Seconds())
	logf("reconciliation: %s, %.2fx the raw reads (%s daily GROUP BY + %s report rows)", dCompare.Round(time.Millisecond), dCompare.Seconds()/bRecon.Seconds(), bDaily.Round(time.Millisecond), bPG.Round(time.Millisecond))
	logf("peak RSS of this process (margin and reconciliation run here): %d MB", peakRSS()>>20)
	if err := want.check(cmp); err != nil {
		return err
	}
	_ = m
	if o.doc == "" {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Margin and reconciliation\n\n")
	fmt.Fprintf(&b, "Command: `postage-bench margin --customers %d --events %d --zipf %g --cost-plus %d --repeat %d`\n\n", o.customers, o.events, o.zipf, o.costPlus, o.repeat)
	fmt.Fprintf(&b, "Machine: %s, %d CPUs, ClickHouse %s, %s. Measured %s.\n\n", cpuModel(), runtime.NumCPU(), chVersion(ctx, a), strings.TrimSpace(pgVersion(ctx, a)), time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "One month (%s): %d customers with usage of %d (Zipf %g, one phone number each), %d message statuses, %d monthly and %d daily usage rows; "+
		"the upstream's report written from them at the cost card's prices with known differences: %d rows (%d data points), imported in %s "+
		"(decoded, stored with COPY, compared once), %d differences.\n\n",
		period, withUsage, o.customers, o.zipf, total, monthly, daily, first.Report.Rows, first.Report.DataPoints, dImport.Round(time.Millisecond), cmp.Lines)
	b.WriteString("| measurement | time | vs baseline |\n|---|---:|---:|\n")
	fmt.Fprintf(&b, "| baseline: `clickhouse-client` raw monthly `GROUP BY customer_id, country, category, pricing_type, pricing_model`, rows to /dev/null | %s | 1.00x |\n", bMonthly.Round(time.Millisecond))
	fmt.Fprintf(&b, "| margin report by customer: the month read, every customer rated at its card and at the cost card, to date and projected (%d rows) | %s | %.2fx |\n", marginRows, dMargin.Round(time.Millisecond), dMargin.Seconds()/bMonthly.Seconds())
	fmt.Fprintf(&b, "| margin report by customer, market and category (%d rows) | %s | %.2fx |\n", lineRows, dLines.Round(time.Millisecond), dLines.Seconds()/bMonthly.Seconds())
	fmt.Fprintf(&b, "| margin simulation at a proposed cost card version: every customer at both cost card versions, cost-plus revenue re-rated (%d customers, %d revenues follow) | %s | %.2fx |\n", simCustomers, simFollow, dSim.Round(time.Millisecond), dSim.Seconds()/bMonthly.Seconds())
	fmt.Fprintf(&b, "| baseline: `clickhouse-client` raw daily `GROUP BY` (customer, day, country, category, pricing type and model, status) + PostgreSQL `COPY` of the report's rows with their customers | %s + %s | 1.00x |\n", bDaily.Round(time.Millisecond), bPG.Round(time.Millisecond))
	fmt.Fprintf(&b, "| reconciliation: both read, every customer rated at cost, differences attributed and stored (%d) | %s | %.2fx |\n\n", cmp.Lines, dCompare.Round(time.Millisecond), dCompare.Seconds()/bRecon.Seconds())
	fmt.Fprintf(&b, "Each time is the best of %d, each run after its baseline. Peak RSS of the process running them: %d MB.\n", o.repeat, peakRSS()>>20)
	return writeDocSection(o.doc, "## Margin and reconciliation", b.String())
}

// benchCostPlus prices every n-th customer cost-plus from month m (a
// card "bench-plus": 15% and 0.001 a message over the cost card, at
// least 0.01 a message, India at cost plus 0.002) and drafts the
// proposed cost card version: the version in effect in m with every
// price 10% up. It returns the draft's number and how many customers are
// cost-plus.
func benchCostPlus(ctx context.Context, a *app.App, m pricing.Month, customers, n int) (proposed, plus int, err error) {
	p := a.Pricing
	clock := p.Now
	p.Now = func() time.Time { return m.Prev().Start() } // versions activate for later months only
	defer func() { p.Now = clock }()
	cost, err := p.CostCardFor(ctx, m)
	if err != nil {
		return 0, 0, fmt.Errorf("cost card of %s: %w", m, err)
	}
	v, err := p.VersionFor(ctx, cost.ID, m)
	if err != nil {
		return 0, 0, err
	}
	d := v.Clone()
	d.Status, d.EffectiveFrom = pricing.StatusDraft, pricing.Month{}
	up := decimal.RequireFromString("1.1")
	for i := range d.Prices {
		d.Prices[i].UnitPrice = d.Prices[i].UnitPrice.Mul(up)
		for j := range d.Prices[i].Tiers {
			d.Prices[i].Tiers[j].UnitPrice = d.Prices[i].Tiers[j].UnitPrice.Mul(up)
		}
	}
	if d, err = p.CreateDraft(ctx, d); err != nil {
		return 0, 0, fmt.Errorf("proposed cost card version: %w", err)
	}
	if n == 0 {
		return d.Number, 0, nil
	}
	if err := p.CreateCard(ctx, pricing.RateCard{ID: "bench-plus", Name: "Cost plus 15%", Currency: cost.Currency}); err != nil {
		return 0, 0, err
	}
	cp, err := p.CreateDraft(ctx, &pricing.Version{CardID: "bench-plus", CostPlus: &pricing.CostPlus{
		Markup: decimal.New(15, 0), Fee: decimal.RequireFromString("0.001"), Floor: decimal.RequireFromString("0.01"),
		Exceptions: []pricing.CostPlusRule{{Market: "India", Fee: decimal.RequireFromString("0.002")}}}})
	if err != nil {
		return 0, 0, fmt.Errorf("cost-plus card: %w", err)
	}
	if _, err := p.Activate(ctx, "bench-plus", cp.Number, m); err != nil {
		return 0, 0, err
	}
	var rows [][]any
	for i := 0; i < customers; i += n {
		rows = append(rows, []any{benchCustomer(i), m.String(), "bench-plus"})
	}
	if _, err := a.PG.CopyFrom(ctx, pgx.Identifier{"customer_rate_cards"}, []string{"customer_id", "effective_from", "card_id"}, pgx.CopyFromRows(rows)); err != nil {
		return 0, 0, fmt.Errorf("assign the cost-plus card: %w", err)
	}
	return d.Number, len(rows), nil
}

// upstreamWant is what the written report differs by, as built.
type upstreamWant struct {
	rows                                   int
	notMetered, moved, repriced, dropped   int // rows changed so
	unknownRows, unknownMessages, sentRows int
}

// check compares the comparison's causes with what was built: every kind
// of difference written shows under its cause.
func (w upstreamWant) check(r *reconcile.Reconciliation) error {
	got := map[reconcile.Cause]reconcile.CauseTotal{}
	for _, c := range r.Causes {
		got[c.Cause] = c
	}
	var errs []string
	if w.unknownMessages > 0 && got[reconcile.CauseUnknownPhoneNumber].Messages != -int64(w.unknownMessages) {
		errs = append(errs, fmt.Sprintf("unknown phone numbers: %+v, want %d messages", got[reconcile.CauseUnknownPhoneNumber], -w.unknownMessages))
	}
	for _, c := range []struct {
		cause reconcile.Cause
		n     int
	}{{reconcile.CauseNotMetered, w.notMetered}, {reconcile.CauseDayBoundary, w.moved}, {reconcile.CausePrice, w.repriced},
		{reconcile.CauseNotInUpstream, w.dropped}, {reconcile.CauseNotDelivered, w.sentRows}} {
		if c.n > 0 && got[c.cause].Lines == 0 {
			errs = append(errs, fmt.Sprintf("no %s difference, %d built", c.cause, c.n))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("the reconciliation missed built differences: %s", strings.Join(errs, "; "))
	}
	return nil
}

// writeUpstream writes the upstream's report of month m as a CSV file,
// from postage's own daily usage at the cost card's prices (what the
// upstream charges when it agrees), with differences of each kind built
// in by a hash of the row: one message more (never metered), one message
// on the next day, another price, the row missing; statuses counted at
// sent are not billed; and rows of phone numbers nobody has.
func writeUpstream(ctx context.Context, usage metering.Usage, cards billing.Pricing, m pricing.Month, path string) (upstreamWant, error) {
	var w upstreamWant
	rating := billing.NewRating(cards)
	_, cr, err := rating.CostCard(ctx, m) // the cost card in effect, as reconciliation reads it
	if err != nil {
		return w, err
	}
	type key struct {
		customer, country, category, ptype string
		day                                int64
	}
	vol := map[key]int64{}
	err = usage.EachDailyAggregate(ctx, m.Start(), time.Time{}, nil, func(a *metering.DayAggregate) error {
		if a.Status == metering.StatusSent {
			w.sentRows++
			return nil // the upstream bills delivered messages
		}
		vol[key{a.CustomerID, a.Country, a.Category, a.PricingType, a.Day.Unix()}] += int64(a.Quantity)
		return nil
	})
	if err != nil {
		return w, err
	}
	keys := make([]key, 0, len(vol))
	for k := range vol {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.customer != b.customer {
			return a.customer < b.customer
		}
		if a.day != b.day {
			return a.day < b.day
		}
		if a.country != b.country {
			return a.country < b.country
		}
		if a.category != b.category {
			return a.category < b.category
		}
		return a.ptype < b.ptype
	})
	last := m.End().Unix() - 86400
	out := map[key]int64{}
	price := map[key]decimal.Decimal{}
	for _, k := range keys {
		h := fnv.New32a()
		fmt.Fprintf(h, "%s|%d|%s|%s", k.customer, k.day, k.country, k.category)
		v := vol[k]
		switch h.Sum32() % 200 {
		case 0:
			v++
			w.notMetered++
		case 1:
			if k.day < last && v > 0 {
				v--
				nk := k
				nk.day += 86400
				out[nk]++
				w.moved++
			}
		case 2:
			price[k] = decimal.New(11, -1)
			w.repriced++
		case 3:
			w.dropped++
			continue
		}
		out[k] += v
	}
	f, err := os.Create(path)
	if err != nil {
		return w, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	bw.WriteString("start,end,phone_number_id,country,pricing_category,pricing_type,volume,cost\n")
	type look struct{ country, category string }
	cats := map[look]pricing.PriceInfo{}
	write := func(phone string, k key, v int64) error {
		l := look{k.country, k.category}
		pi, ok := cats[l]
		if !ok {
			if pi, err = cr.Lookup(k.country, k.category, "GB"); err != nil {
				return fmt.Errorf("price of %s %s: %w", k.country, k.category, err)
			}
			cats[l] = pi
		}
		cost := decimal.Zero
		ptype := "REGULAR"
		if k.ptype == metering.PricingFreeCustomerService {
			ptype = "FREE_CUSTOMER_SERVICE"
		} else if !pi.Free {
			cost = pi.UnitPrice.Mul(decimal.NewFromInt(v))
			if p, ok := price[k]; ok {
				cost = cost.Mul(p).RoundBank(6)
			}
		}
		fmt.Fprintf(bw, "%d,%d,%s,%s,%s,%s,%d,%s\n", k.day, k.day+86400, phone, k.country, strings.ToUpper(pi.Category), ptype, v, cost.String())
		w.rows++
		return nil
	}
	keys = keys[:0]
	for k := range out {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].customer < keys[j].customer || keys[i].customer == keys[j].customer && keys[i].day < keys[j].day
	})
	for _, k := range keys {
		n, _ := strconv.Atoi(strings.TrimPrefix(k.customer, "c"))
		if err := write(benchPhone(n), k, out[k]); err != nil {
			return w, err
		}
	}
	for i := 0; i < 100; i++ { // numbers nobody has
		k := key{country: "IN", category: "marketing", ptype: "regular", day: m.Start().Unix() + int64(i%28)*86400}
		if err := write(strconv.Itoa(900000000+i), k, 3); err != nil {
			return w, err
		}
		w.unknownRows++
		w.unknownMessages += 3
	}
	return w, bw.Flush()
}
