package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/nyaruka/phonenumbers"
	"github.com/spf13/cobra"

	"postage/internal/app"
	"postage/internal/auth"
	"postage/internal/config"
	"postage/metering"
)

type ingestBenchOpts struct {
	events, clients, batch, customers, fillRows, queries, repeat int
	dupRate                                                      float64
	dir, doc                                                     string
	keep                                                         bool
}

func newIngestCmd() *cobra.Command {
	o := ingestBenchOpts{}
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "End-to-end ingest over HTTP vs clickhouse-client TSV bulk load, and usage-query latency at 10M events",
		Long: `Starts private ClickHouse and PostgreSQL servers and a "postage serve" child
process, generates realistic message.sent events (Zipf-distributed customers,
~150 recipient countries as E.164 numbers, categories, ~1% re-sent
duplicates), and in the same run:

  1. bulk-loads the same events as TSV with clickhouse-client into a scratch
     table (the baseline: the storage's physical limit);
  2. posts them as CloudEvents batches from concurrent clients into the
     empty events table and measures acknowledged events/s, request latency
     and the server's RSS; steps 1 and 2 are repeated --repeat times
     (tables emptied before each), and the ratio is the best ingest over
     the best bulk load, so a noisy moment on the shared machine moves
     neither side;
  3. fills the events table to --fill-rows rows and measures the latency of
     GET /api/v1/customers/{id}/usage for one customer-month;
  4. posts a second, smaller ingest run against the filled table (the id
     look-up costs more in a big table).

Figures are printed and written to the "Metering" section of --doc.`,
		Example: `  make bench-ingest
  postage-bench ingest --events 400000 --clients 32 --batch 500 --fill-rows 10000000   # smaller batches: latency-bound
  postage-bench ingest --events 50000 --fill-rows 1000000 --doc ""   # quick look, no doc update`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runIngestBench(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.events, "events", 600000, "events posted over HTTP (and bulk-loaded)")
	f.IntVar(&o.clients, "clients", 32, "concurrent HTTP clients")
	f.IntVar(&o.batch, "batch", 2000, "events per request")
	f.IntVar(&o.customers, "customers", 10000, "distinct customers (Zipf-distributed)")
	f.Float64Var(&o.dupRate, "duplicates", 0.01, "fraction of events re-sent in a later batch")
	f.IntVar(&o.fillRows, "fill-rows", 10_000_000, "rows in the events table for the usage-query measurement")
	f.IntVar(&o.queries, "queries", 300, "usage queries per measured customer")
	f.IntVar(&o.repeat, "repeat", 3, "rounds of bulk load and empty-table ingest (the best of each counts)")
	f.StringVar(&o.dir, "dir", "", "scratch directory for the servers (default: a new temporary directory, removed after)")
	f.StringVar(&o.doc, "doc", "docs/BENCHMARKS.md", `file whose "## Metering" section gets the figures ("" for none)`)
	return cmd
}

type benchEvent struct {
	customer, id, to, country, category string
	t                                   time.Time
}

// genEvents makes n events plus ~dupRate re-sends, shuffled into batches so
// a re-send comes in a later batch than its original.
func genEvents(o ingestBenchOpts, now time.Time) [][]benchEvent {
	rng := rand.New(rand.NewPCG(7, 11))
	custZipf := rand.NewZipf(rng, 1.1, 1, uint64(o.customers-1))
	regions := benchRegions()
	countryZipf := rand.NewZipf(rng, 1.05, 1, uint64(len(regions)-1))
	cats := []string{"marketing", "marketing", "marketing", "marketing", "utility", "utility", "utility",
		"authentication", "authentication", "service", "service", "authentication_international"}
	var all []benchEvent
	for i := range o.events {
		r := regions[countryZipf.Uint64()]
		num := []byte(r.example)
		for j := len(num) - 4; j < len(num); j++ {
			num[j] = byte('0' + rng.IntN(10))
		}
		e := benchEvent{
			customer: fmt.Sprintf("bench-%05d", custZipf.Uint64()),
			id:       fmt.Sprintf("evt-%09d-%08x", i, rng.Uint32()),
			to:       string(num),
			category: cats[rng.IntN(len(cats))],
			t:        now.Add(-time.Duration(rng.Int64N(int64(72 * time.Hour)))).Truncate(time.Second),
		}
		c, ok := metering.CountryOfNumber(e.to)
		if !ok {
			c, e.to = r.region, "" // a number the mutation made impossible: send the country instead
		}
		e.country = c
		all = append(all, e)
	}
	var batches [][]benchEvent
	for i := 0; i < len(all); i += o.batch {
		batches = append(batches, all[i:min(i+o.batch, len(all))])
	}
	dups := int(float64(o.events) * o.dupRate)
	for range dups {
		src := rng.IntN(len(all))
		dst := min(len(batches)-1, src/o.batch+1+rng.IntN(len(batches)))
		batches[dst] = append(batches[dst], all[src])
	}
	return batches
}

type benchRegion struct{ region, example string }

// benchRegions returns ~150 regions with an example mobile number each,
// most populous messaging markets first (the Zipf head).
func benchRegions() []benchRegion {
	head := []string{"IN", "BR", "ID", "MX", "US", "NG", "PK", "DE", "IT", "ES", "GB", "TR", "AR", "CO", "EG", "SA", "ZA", "RU", "FR", "MY"}
	seen := map[string]bool{}
	var out []benchRegion
	add := func(r string) {
		if seen[r] {
			return
		}
		ex := phonenumbers.GetExampleNumberForType(r, phonenumbers.MOBILE)
		if ex == nil {
			return
		}
		e164 := phonenumbers.Format(ex, phonenumbers.E164)
		if c, ok := metering.CountryOfNumber(e164); !ok || c != r {
			return
		}
		seen[r] = true
		out = append(out, benchRegion{r, e164})
	}
	for _, r := range head {
		add(r)
	}
	var rest []string
	for r := range phonenumbers.GetSupportedRegions() {
		rest = append(rest, r)
	}
	slices.Sort(rest)
	for _, r := range rest {
		if len(out) >= 150 {
			break
		}
		add(r)
	}
	return out
}

func batchJSON(b []benchEvent) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b) * 260)
	buf.WriteByte('[')
	for i, e := range b {
		if i > 0 {
			buf.WriteByte(',')
		}
		data := `"country":"` + e.country + `"`
		if e.to != "" {
			data = `"to":"` + e.to + `"`
		}
		fmt.Fprintf(&buf, `{"specversion":"1.0","type":"message.sent","source":"/bench","id":"%s","subject":"%s","time":"%s","datacontenttype":"application/json","data":{%s,"category":"%s"}}`,
			e.id, e.customer, e.t.Format(time.RFC3339), data, e.category)
	}
	buf.WriteByte(']')
	return buf.Bytes()
}

func runIngestBench(ctx context.Context, out io.Writer, o ingestBenchOpts) error {
	logf := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	if o.events < o.batch || o.clients < 1 || o.batch < 1 || o.repeat < 1 {
		return usageError{fmt.Errorf("need --events >= --batch >= 1, --clients >= 1 and --repeat >= 1")}
	}
	m, a, chClient, done, err := benchStack(ctx, o.dir, logf)
	if err != nil {
		return err
	}
	defer done()
	cfg := a.Config
	_, ingestKey, err := a.Keys.Create(ctx, auth.NewKey{Name: "bench ingest", Role: auth.RoleIngest})
	if err != nil {
		return err
	}
	_, adminKey, err := a.Keys.Create(ctx, auth.NewKey{Name: "bench admin", Role: auth.RoleAdmin})
	if err != nil {
		return err
	}

	now := time.Now().UTC().Add(-time.Minute)
	logf("generating %d events (+%.0f%% re-sent duplicates) for %d customers", o.events, o.dupRate*100, o.customers)
	batches := genEvents(o, now)
	bodies := make([][]byte, len(batches))
	total := 0
	for i, b := range batches {
		bodies[i] = batchJSON(b)
		total += len(b)
	}

	// 2. The server as its own process, so its RSS is its own.
	srv, url, err := startBenchServer(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = srv.Process.Signal(os.Interrupt); _ = srv.Wait() }()

	// 1 and 2, --repeat times: the baseline, the same rows as TSV into a
	// scratch table; then the same events over HTTP into the emptied
	// events table. Best of each.
	var bulk time.Duration
	var r1 loadResult
	var maxRSS int64
	var p99s []string
	for round := 1; round <= o.repeat; round++ {
		b, bulkCPU, err := bulkLoadTSV(ctx, a, chClient, m.CH.TCPPort(), m.CH.PID(), filepath.Join(m.Dir, "events.tsv"), batches, now)
		if err != nil {
			return err
		}
		logf("round %d: baseline: clickhouse-client TSV insert of %d rows: %v (%.0f events/s); CPU: ClickHouse %.2fs, clickhouse-client %.2fs",
			round, total, b.Round(time.Millisecond), float64(total)/b.Seconds(), bulkCPU.clickhouse.Seconds(), bulkCPU.client.Seconds())
		if err := a.CH.Exec(ctx, "TRUNCATE TABLE events"); err != nil {
			return fmt.Errorf("empty the events table: %w", err)
		}
		prof := startBenchProfile("empty")
		r, err := postAll(ctx, url, ingestKey, bodies, o.clients, srv.Process.Pid, m.CH.PID())
		prof()
		if err != nil {
			return err
		}
		logf("round %d: %v in %v; events table: %s", round, r.cpu, r.wall.Round(time.Millisecond), partsInfo(ctx, a))
		logf("round %d: HTTP ingest (empty table): %d events acknowledged in %v: %.0f events/s = %.2fx this round's bulk load; latency p50 %v p99 %v; server RSS max %d MB; 429 retries %d",
			round, r.acked, r.wall.Round(time.Millisecond), r.rate(), r.rate()*b.Seconds()/float64(total), r.p50, r.p99, r.maxRSS>>20, r.retries)
		if round == 1 || b < bulk {
			bulk = b
		}
		if round == 1 || r.wall < r1.wall {
			r1 = r
		}
		maxRSS = max(maxRSS, r.maxRSS)
		p99s = append(p99s, r.p99.Round(100*time.Microsecond).String())
	}
	bulkRate := float64(total) / bulk.Seconds()
	logf("server, all rounds: %s", flushStats(ctx, url, adminKey))
	logf("best of %d: bulk load %.0f events/s; HTTP ingest (empty table) %.0f events/s = %.2fx the bulk load; latency p50 %v p99 %v (p99 of each round: %s); server RSS max %d MB over all rounds",
		o.repeat, bulkRate, r1.rate(), r1.rate()/bulkRate, r1.p50, r1.p99, strings.Join(p99s, ", "), maxRSS>>20)

	// 3. Fill to fillRows and time one customer-month's usage.
	month := metering.MonthStart(now).AddDate(0, -1, 0)
	fillStart := time.Now()
	if err := fillEvents(ctx, a, o, month); err != nil {
		return err
	}
	var rows uint64
	if err := a.CH.QueryRow(ctx, "SELECT count() FROM events").Scan(&rows); err != nil {
		return err
	}
	logf("filled the events table to %d rows in %v", rows, time.Since(fillStart).Round(time.Second))
	// Measure the steady state: let background merges of the fill finish
	// (at most a minute), as they would between bulk arrivals in production.
	for i := 0; i < 120; i++ {
		var merging uint64
		if err := a.CH.QueryRow(ctx, "SELECT count() FROM system.merges WHERE database = 'bench' AND table = 'events'").Scan(&merging); err != nil || merging == 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	var parts uint64
	_ = a.CH.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = 'bench' AND table = 'events' AND active").Scan(&parts)
	logf("%d active parts after merges settled (%v after the fill)", parts, time.Since(fillStart).Round(time.Second))
	type qres struct {
		customer string
		events   uint64
		runs     int
		p50, p99 time.Duration
		storeP99 time.Duration
		storeP50 time.Duration
	}
	var qs []qres
	for _, rank := range []int{100, 10, 0} {
		cust := fmt.Sprintf("bench-%05d", rank)
		var n uint64
		from, to := month, month.AddDate(0, 1, 0)
		if err := a.CH.QueryRow(ctx, "SELECT count() FROM events WHERE customer_id = ? AND time >= toDateTime(?) AND time < toDateTime(?)", cust, from.Unix(), to.Unix()).Scan(&n); err != nil {
			return err
		}
		path := fmt.Sprintf("%s/api/v1/customers/%s/usage?from=%s&to=%s&window=day&group_by=country,category", url, cust, from.Format(time.DateOnly), to.Format(time.DateOnly))
		var lat, slat []time.Duration
		qStart := time.Now()
		for i := 0; i < o.queries && (i < 20 || time.Since(qStart) < 20*time.Second); i++ {
			t0 := time.Now()
			if err := getOK(ctx, path, adminKey); err != nil {
				return err
			}
			lat = append(lat, time.Since(t0))
			t0 = time.Now()
			if _, err := a.Events.Usage(ctx, metering.UsageQuery{CustomerID: cust, From: from, To: to, Window: metering.Day, GroupBy: []metering.Dimension{metering.ByCountry, metering.ByCategory}}); err != nil {
				return err
			}
			slat = append(slat, time.Since(t0))
		}
		q := qres{customer: cust, events: n, runs: len(lat), p50: pct(lat, 50), p99: pct(lat, 99), storeP50: pct(slat, 50), storeP99: pct(slat, 99)}
		qs = append(qs, q)
		logf("usage query, customer rank %d (%d events in the month, table %d rows): HTTP p50 %v p99 %v; store p50 %v p99 %v",
			rank, n, rows, q.p50, q.p99, q.storeP50, q.storeP99)
	}

	// 4. Ingest again against the filled table (fresh ids).
	n2 := max(o.batch, o.events/4)
	o2 := o
	o2.events = n2
	var bodies2 [][]byte
	for _, b := range genEvents(o2, now) {
		for i := range b {
			b[i].id = "late-" + b[i].id
		}
		bodies2 = append(bodies2, batchJSON(b))
	}
	prof := startBenchProfile("filled")
	r2, err := postAll(ctx, url, ingestKey, bodies2, o.clients, srv.Process.Pid, m.CH.PID())
	prof()
	if err != nil {
		return err
	}
	logf("server: %s", flushStats(ctx, url, adminKey))
	logf("%v in %v", r2.cpu, r2.wall.Round(time.Millisecond))
	logf("events table: %s", partsInfo(ctx, a))
	logf("HTTP ingest (table of %d rows): %d events in %v: %.0f events/s = %.2fx the bulk load; latency p50 %v p99 %v; server RSS max %d MB",
		rows, r2.acked, r2.wall.Round(time.Millisecond), r2.rate(), r2.rate()/bulkRate, r2.p50, r2.p99, r2.maxRSS>>20)

	if o.doc == "" {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Metering\n\n")
	fmt.Fprintf(&b, "`postage-bench ingest` (what `make bench-ingest` runs) starts private ClickHouse %s and PostgreSQL, a\n", chVersion(ctx, a))
	fmt.Fprintf(&b, "`postage serve` child process with default settings, and generates %d message.sent events for\n", o.events)
	fmt.Fprintf(&b, "%d Zipf-distributed customers, %d recipient countries (E.164 numbers), 5 categories and\n", o.customers, len(benchRegions()))
	fmt.Fprintf(&b, "%.0f%% re-sent duplicates, in batches of %d posted by %d concurrent clients. The baseline is\n", o.dupRate*100, o.batch, o.clients)
	fmt.Fprintf(&b, "the same %d rows as TSV through `clickhouse-client` into a scratch table of the same\nschema, in the same run.\n\n", total)
	fmt.Fprintf(&b, "```\n%s\n```\n\n", benchCommandLine(o))
	fmt.Fprintf(&b, "| date (UTC) | machine | table | HTTP ingest, acked events/s | TSV bulk load | ratio | request p50 / p99 | server RSS max |\n|---|---|---|---|---|---|---|---|\n")
	mach := fmt.Sprintf("%s, %d cores", cpuModel(), runtime.NumCPU())
	fmt.Fprintf(&b, "| %s | %s | empty | %.0f | %.0f | **%.2fx** | %v / %v | %d MB |\n", time.Now().UTC().Format(time.DateOnly), mach, r1.rate(), bulkRate, r1.rate()/bulkRate, r1.p50, r1.p99, maxRSS>>20)
	fmt.Fprintf(&b, "| %s | %s | %d rows | %.0f | %.0f | **%.2fx** | %v / %v | %d MB |\n\n", time.Now().UTC().Format(time.DateOnly), mach, rows, r2.rate(), bulkRate, r2.rate()/bulkRate, r2.p50, r2.p99, r2.maxRSS>>20)
	fmt.Fprintf(&b, "Usage query, one customer-month, `GET /api/v1/customers/{id}/usage?window=day&group_by=country,category` (up to %d queries each, at most 20 s per customer; \"store\" is the same query through `metering.CHStore` without HTTP), events table of %d rows in %d active parts:\n\n", o.queries, rows, parts)
	fmt.Fprintf(&b, "| customer (Zipf rank) | its events in the month | queries | HTTP p50 | HTTP p99 | store p50 | store p99 |\n|---|---|---|---|---|---|---|\n")
	for _, q := range qs {
		fmt.Fprintf(&b, "| %s | %d | %d | %v | %v | %v | %v |\n", q.customer, q.events, q.runs, q.p50, q.p99, q.storeP50, q.storeP99)
	}
	b.WriteString("\n")
	return writeDocSection(o.doc, "## Metering", b.String())
}

func benchCommandLine(o ingestBenchOpts) string {
	return fmt.Sprintf("postage-bench ingest --events %d --clients %d --batch %d --customers %d --duplicates %g --fill-rows %d --queries %d",
		o.events, o.clients, o.batch, o.customers, o.dupRate, o.fillRows, o.queries)
}

// writeDocSection replaces the section starting at heading (up to the next
// "## " heading) in path, or appends it.
func writeDocSection(path, heading, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	i := strings.Index(s, heading+"\n")
	if i < 0 {
		if s != "" && !strings.HasSuffix(s, "\n\n") {
			s = strings.TrimRight(s, "\n") + "\n\n"
		}
		return os.WriteFile(path, []byte(s+section), 0o644)
	}
	rest := s[i+len(heading)+1:]
	end := len(s)
	if j := strings.Index(rest, "\n## "); j >= 0 {
		end = i + len(heading) + 1 + j + 1
	}
	return os.WriteFile(path, []byte(s[:i]+section+s[end:]), 0o644)
}

func chVersion(ctx context.Context, a *app.App) string {
	var v string
	_ = a.CH.QueryRow(ctx, "SELECT version()").Scan(&v)
	return v
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return runtime.GOARCH
}

func bulkLoadTSV(ctx context.Context, a *app.App, client string, port, chPID int, path string, batches [][]benchEvent, now time.Time) (time.Duration, cpuSplit, error) {
	if err := a.CH.Exec(ctx, "CREATE TABLE IF NOT EXISTS bench_scratch AS events"); err != nil {
		return 0, cpuSplit{}, fmt.Errorf("scratch table: %w", err)
	}
	if err := a.CH.Exec(ctx, "TRUNCATE TABLE bench_scratch"); err != nil {
		return 0, cpuSplit{}, fmt.Errorf("scratch table: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, cpuSplit{}, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	ing := now.Format(time.DateTime)
	for _, b := range batches {
		for _, e := range b {
			h := metering.HashPayload(e.t, true, e.country, e.category, 1)
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t1\t%d\t%s\n", e.customer, e.id, e.t.Format(time.DateTime), e.country, e.category, h, ing)
		}
	}
	if err := w.Flush(); err != nil {
		return 0, cpuSplit{}, err
	}
	f.Close()
	in, err := os.Open(path)
	if err != nil {
		return 0, cpuSplit{}, err
	}
	defer in.Close()
	cmd := exec.CommandContext(ctx, client, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--database", "bench",
		"--query", "INSERT INTO bench_scratch (customer_id, id, time, country, category, quantity, payload_hash, ingested_at) FORMAT TabSeparated")
	cmd.Stdin = in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	ch0 := cpuOf(chPID)
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, cpuSplit{}, fmt.Errorf("clickhouse-client: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	wall := time.Since(t0)
	cpu := cpuSplit{clickhouse: cpuOf(chPID) - ch0, client: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	return wall, cpu, nil
}

func startBenchServer(ctx context.Context, cfg config.Config) (*exec.Cmd, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(self, "serve")
	env := os.Environ()
	if os.Getenv(benchProfileEnv) != "" {
		if pl, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
			benchPprofAddr = pl.Addr().String()
			pl.Close()
			env = append(env, pprofEnv+"="+benchPprofAddr)
		}
	}
	cmd.Env = append(env,
		"POSTAGE_POSTGRES_DSN="+cfg.Postgres.DSN,
		"POSTAGE_CLICKHOUSE_ADDR="+cfg.ClickHouse.Addr,
		"POSTAGE_CLICKHOUSE_DATABASE="+cfg.ClickHouse.Database,
		"POSTAGE_HTTP_ADDR="+addr,
		"POSTAGE_BILLING_SCHEDULER=false",
		"POSTAGE_LOG_LEVEL=error",
	)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	url := "http://" + addr
	for i := 0; i < 600; i++ {
		if resp, err := http.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			return cmd, url, nil
		}
		select {
		case <-ctx.Done():
			cmd.Process.Kill()
			return nil, "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	cmd.Process.Kill()
	return nil, "", fmt.Errorf("the benchmark server did not start")
}

type loadResult struct {
	acked, retries int64
	wall           time.Duration
	p50, p99       time.Duration
	maxRSS         int64
	cpu            cpuSplit
}

// cpuSplit is the CPU time (user + system) each process of the benchmark
// used during one phase: where the machine's two cores went.
type cpuSplit struct{ server, clickhouse, client time.Duration }

func (c cpuSplit) String() string {
	return fmt.Sprintf("CPU: server %.2fs, ClickHouse %.2fs, bench clients %.2fs", c.server.Seconds(), c.clickhouse.Seconds(), c.client.Seconds())
}

// procStat returns the fields of /proc/<pid>/stat after the parenthesised
// command name (nil if unknown): field k of the whole line is f[k-3], so
// the parent pid is f[1], utime and stime f[11] and f[12], the waited-for
// children's cutime and cstime f[13] and f[14], in clock ticks (100 Hz).
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) >= 15 {
		return f
	}
	return nil
}

// ticks adds up fields of procStat as CPU time.
func ticks(f []string, fields ...int) time.Duration {
	var t int64
	for _, i := range fields {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		t += n
	}
	return time.Duration(t) * 10 * time.Millisecond
}

// cpuOf returns the CPU time pid has used so far (0 if unknown).
func cpuOf(pid int) time.Duration {
	if f := procStat(pid); f != nil {
		return ticks(f, 11, 12)
	}
	return 0
}

// cpuTree returns the CPU time pid and its children (running, and exited
// ones it waited for) have used so far: a PostgreSQL server and its
// backends.
func cpuTree(pid int) time.Duration {
	var total time.Duration
	if f := procStat(pid); f != nil {
		total = ticks(f, 11, 12, 13, 14)
	}
	parent := strconv.Itoa(pid)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := procStat(child); f != nil && f[1] == parent {
			total += ticks(f, 11, 12)
		}
	}
	return total
}

// cpuNow snapshots the CPU time of the server, ClickHouse and this process.
func cpuNow(serverPID, chPID int) cpuSplit {
	return cpuSplit{server: cpuOf(serverPID), clickhouse: cpuOf(chPID), client: cpuOf(os.Getpid())}
}

func (c cpuSplit) since(o cpuSplit) cpuSplit {
	return cpuSplit{server: c.server - o.server, clickhouse: c.clickhouse - o.clickhouse, client: c.client - o.client}
}

func (r loadResult) rate() float64 { return float64(r.acked) / r.wall.Seconds() }

func postAll(ctx context.Context, url, key string, bodies [][]byte, clients, pid, chPID int) (loadResult, error) {
	var res loadResult
	cpu0 := cpuNow(pid, chPID)
	work := make(chan []byte, len(bodies))
	for _, b := range bodies {
		work <- b
	}
	close(work)
	var (
		mu      sync.Mutex
		lat     []time.Duration
		firstEr error
		acked   atomic.Int64
		retries atomic.Int64
	)
	stopRSS := make(chan struct{})
	rssDone := make(chan int64)
	go func() {
		var peak int64
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if r := rssOf(pid); r > peak {
				peak = r
			}
			select {
			case <-stopRSS:
				rssDone <- peak
				return
			case <-t.C:
			}
		}
	}()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	t0 := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range work {
				for {
					req, _ := http.NewRequestWithContext(ctx, "POST", url+"/api/v1/events", bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/cloudevents-batch+json")
					req.Header.Set("Authorization", "Bearer "+key)
					start := time.Now()
					resp, err := client.Do(req)
					if err != nil {
						mu.Lock()
						firstEr = err
						mu.Unlock()
						return
					}
					rb, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					d := time.Since(start)
					if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
						retries.Add(1)
						time.Sleep(20 * time.Millisecond)
						continue
					}
					if resp.StatusCode != 200 {
						mu.Lock()
						firstEr = fmt.Errorf("POST /api/v1/events: %d %s", resp.StatusCode, rb)
						mu.Unlock()
						return
					}
					// goccy/go-json: the load generator shares the two cores
					// with the server, so it reads the answers cheaply.
					var er struct{ Accepted, Duplicate int }
					_ = gojson.Unmarshal(rb, &er)
					acked.Add(int64(er.Accepted + er.Duplicate))
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
					break
				}
			}
		}()
	}
	wg.Wait()
	res.wall = time.Since(t0)
	res.cpu = cpuNow(pid, chPID).since(cpu0)
	close(stopRSS)
	res.maxRSS = <-rssDone
	if firstEr != nil {
		return res, firstEr
	}
	res.acked, res.retries = acked.Load(), retries.Load()
	res.p50, res.p99 = pct(lat, 50), pct(lat, 99)
	return res, nil
}

// peakRSS returns this process's peak resident set size in bytes (VmHWM).
func peakRSS() int64 { return procStatusKB("self", "VmHWM") << 10 }

// rssOf returns the resident set size of pid in bytes (0 if unknown).
func rssOf(pid int) int64 { return procStatusKB(strconv.Itoa(pid), "VmRSS") << 10 }

// procStatusKB returns a kB field of /proc/<pid>/status (0 if unknown).
func procStatusKB(pid, field string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))].Round(100 * time.Microsecond)
}

func getOK(ctx context.Context, url, key string) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return nil
}

// fillEvents inserts rows generated by ClickHouse itself (Zipf-like skew
// over the same customer ids, ~150 countries, 5 categories) into last
// month until the table holds o.fillRows rows.
func fillEvents(ctx context.Context, a *app.App, o ingestBenchOpts, month time.Time) error {
	var have uint64
	if err := a.CH.QueryRow(ctx, "SELECT count() FROM events").Scan(&have); err != nil {
		return err
	}
	need := int64(o.fillRows) - int64(have)
	if need <= 0 {
		return nil
	}
	regions := benchRegions()
	var cs []string
	for _, r := range regions {
		cs = append(cs, "'"+r.region+"'")
	}
	from, to := month.Unix(), month.AddDate(0, 1, 0).Unix()
	const chunk = 2_000_000
	for off := int64(0); off < need; off += chunk {
		n := min(chunk, need-off)
		// rank = floor(customers ^ u) - 1 with u uniform: a log-uniform,
		// Zipf-like skew (rank 0 the largest).
		q := fmt.Sprintf(`INSERT INTO events (customer_id, id, time, country, category, quantity, payload_hash, ingested_at)
SELECT concat('bench-', substring(toString(100000 + toUInt32(floor(pow(%d, rand(1) / 4294967295.0))) - 1), 2)),
       concat('fill-', toString(number + %d)),
       toDateTime(%d + rand(2) %% %d),
       [%s][1 + toUInt32(floor(pow(%d, rand(3) / 4294967295.0))) - 1],
       ['marketing','utility','authentication','service','authentication_international'][1 + rand(4) %% 5],
       1, rand64(5), toDateTime(%d)
FROM numbers(%d)`, o.customers, off, from, to-from, strings.Join(cs, ","), len(regions), to, n)
		if err := a.CH.Exec(ctx, q); err != nil {
			return fmt.Errorf("fill events: %w", err)
		}
	}
	return nil
}

// prevFlushStats holds the metrics of the previous flushStats call.
var prevFlushStats = map[string]float64{}

// flushStats summarises the server's group-commit metrics.
func flushStats(ctx context.Context, url, key string) string {
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	v := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		for _, name := range []string{"postage_ingest_flush_seconds_sum", "postage_ingest_flush_seconds_count", "postage_ingest_batch_events_sum",
			"postage_ingest_lookup_seconds_sum", "postage_ingest_lookup_seconds_count", "postage_ingest_insert_seconds_sum", "postage_ingest_insert_seconds_count"} {
			if rest, ok := strings.CutPrefix(l, name+" "); ok {
				v[name], _ = strconv.ParseFloat(rest, 64)
			}
		}
	}
	for k, x := range v { // this phase only: subtract the previous call's counts
		v[k] = x - prevFlushStats[k]
		prevFlushStats[k] = x
	}
	n := v["postage_ingest_flush_seconds_count"]
	if n == 0 {
		return "no flushes"
	}
	per := func(name string) float64 {
		if c := v[name+"_count"]; c > 0 {
			return 1000 * v[name+"_sum"] / c
		}
		return 0
	}
	return fmt.Sprintf("%.0f flushes, %.0f events per flush, %.1f ms per flush (look-up %.1f ms + insert %.1f ms, partly overlapped), %.1f s flushing in total",
		n, v["postage_ingest_batch_events_sum"]/n, 1000*v["postage_ingest_flush_seconds_sum"]/n,
		per("postage_ingest_lookup_seconds"), per("postage_ingest_insert_seconds"), v["postage_ingest_flush_seconds_sum"])
}

// benchProfileEnv names a directory: when set, the server child exposes
// net/http/pprof on a private loopback port and each HTTP ingest phase
// saves a CPU profile of the server there (cpu-<phase>.pprof, the first
// POSTAGE_BENCH_PROFILE_SECONDS seconds of the phase, default 3) and its
// allocations since it started (allocs-<phase>.pprof).
const benchProfileEnv = "POSTAGE_BENCH_PROFILE"

var benchPprofAddr string

// startSelfProfile writes a CPU profile of this process to path until the
// returned function is called.
func startSelfProfile(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// startBenchProfile starts a CPU profile of the server child if profiling
// is on; the returned function waits for it to be saved.
func startBenchProfile(phase string) func() {
	dir := os.Getenv(benchProfileEnv)
	if dir == "" || benchPprofAddr == "" {
		return func() {}
	}
	secs := os.Getenv("POSTAGE_BENCH_PROFILE_SECONDS")
	if secs == "" {
		secs = "3"
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get("http://" + benchPprofAddr + "/debug/pprof/profile?seconds=" + secs)
		if err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		_ = os.MkdirAll(dir, 0o755)
		_ = os.WriteFile(filepath.Join(dir, "cpu-"+phase+".pprof"), b, 0o644)
	}()
	return func() {
		<-done
		// And what the server allocated so far (cumulative since it started).
		resp, err := http.Get("http://" + benchPprofAddr + "/debug/pprof/allocs")
		if err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		_ = os.WriteFile(filepath.Join(dir, "allocs-"+phase+".pprof"), b, 0o644)
	}
}

// partsInfo describes the events table's active parts.
func partsInfo(ctx context.Context, a *app.App) string {
	var parts, rows uint64
	if err := a.CH.QueryRow(ctx, "SELECT count(), sum(rows) FROM system.parts WHERE database = 'bench' AND table = 'events' AND active").Scan(&parts, &rows); err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%d active parts, %d rows", parts, rows)
}

// benchStack starts what a benchmark measures against: private ClickHouse
// and PostgreSQL in dir (a new temporary directory, removed afterwards,
// when dir is ""), a migrated and seeded app on them, and the path of
// clickhouse-client for the raw baseline. done stops and removes it all.
func benchStack(ctx context.Context, dir string, logf func(string, ...any)) (m *app.Managed, a *app.App, chClient string, done func(), err error) {
	if chClient, err = exec.LookPath("clickhouse-client"); err != nil {
		return nil, nil, "", nil, fmt.Errorf("the baseline needs clickhouse-client: %w", err)
	}
	var cleanup []func()
	done = func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "postage-bench-"); err != nil {
			return nil, nil, "", nil, err
		}
		cleanup = append(cleanup, func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil { // PostgreSQL runs as user postgres when we are root
			done()
			return nil, nil, "", nil, err
		}
	}
	// Defaults plus POSTAGE_* variables, so a setting can be compared
	// (e.g. POSTAGE_BILLING_RUN_GC_PERCENT=0).
	cfg, err := config.Load("", os.Environ())
	if err != nil {
		done()
		return nil, nil, "", nil, err
	}
	cfg.Dev.DataDir = dir
	cfg.ClickHouse.Database = "bench"
	cfg.Billing.Scheduler = false
	logf("starting private ClickHouse and PostgreSQL in %s", dir)
	if m, a, err = app.StartLocal(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		done()
		return nil, nil, "", nil, err
	}
	cleanup = append(cleanup, m.Stop, a.Close)
	return m, a, chClient, done, nil
}
