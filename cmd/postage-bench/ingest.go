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
	events, clients, batch, customers, queries, repeat int
	dupRate                                            float64
	sizes                                              []int
	floodClients, floodBatches                         int
	floodStall                                         time.Duration
	dir, doc                                           string
}

func newIngestCmd() *cobra.Command {
	o := ingestBenchOpts{}
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "End-to-end ingest over HTTP vs clickhouse-client TSV bulk load at several table sizes, and a flood while ClickHouse is stopped",
		Long: `Starts private ClickHouse and PostgreSQL servers and a "postage serve" child
process, generates realistic message.sent events (Zipf-distributed customers,
~150 recipient countries as E.164 numbers, categories, ~1% re-sent
duplicates), and for each table size of --sizes (rows already in the events
table, ascending):

  1. fills the events table to that many rows (ClickHouse INSERT ... SELECT
     from numbers(): Zipf customers, events and ingestion times spread over
     last month), then fills the key index through its rebuild path: the
     server is restarted on an empty index directory and rebuilds it from
     ClickHouse (the time until /readyz answers is reported);
  2. --repeat rounds of: the baseline, the events as TSV through
     clickhouse-client into a scratch table (the storage's physical limit),
     then the same events (with ids new to the table) posted as CloudEvents
     batches from concurrent clients, measuring acknowledged events/s,
     request latency, the server's RSS and the key index's look-up per
     flush; for the empty size the table and the index are emptied before
     each round. The ratio is the best ingest over the best bulk load, so a
     noisy moment on the shared machine moves neither side.

Then, on the largest table, the latency of GET /api/v1/customers/{id}/usage
for one customer-month, and (unless --flood-stall is 0) a flood: ClickHouse
is stopped (SIGSTOP) while --flood-clients clients post batches as fast as
the server answers; the server's RSS is sampled; ClickHouse is resumed, every
client re-sends until each batch is acknowledged, and the bench checks that
every event is stored exactly once.

Figures are printed and written to the "Metering" section of --doc.`,
		Example: `  make bench-ingest
  postage-bench ingest --sizes 0,10000000,100000000   # the goal's three sizes (the 100M fill takes a while)
  postage-bench ingest --events 50000 --sizes 0,1000000 --flood-stall 0 --doc ""   # quick look, no doc update`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runIngestBench(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.events, "events", 600000, "events posted over HTTP (and bulk-loaded) per round")
	f.IntVar(&o.clients, "clients", 32, "concurrent HTTP clients")
	f.IntVar(&o.batch, "batch", 2000, "events per request")
	f.IntVar(&o.customers, "customers", 10000, "distinct customers (Zipf-distributed)")
	f.Float64Var(&o.dupRate, "duplicates", 0.01, "fraction of events re-sent in a later batch")
	f.IntSliceVar(&o.sizes, "sizes", []int{0, 10_000_000}, "rows already in the events table for each measurement, ascending")
	f.IntVar(&o.queries, "queries", 300, "usage queries per measured customer (0: no usage measurement)")
	f.IntVar(&o.repeat, "repeat", 3, "rounds of bulk load and ingest per size (the best of each counts)")
	f.DurationVar(&o.floodStall, "flood-stall", 40*time.Second, "how long ClickHouse is stopped during the flood (0: no flood)")
	f.IntVar(&o.floodClients, "flood-clients", 64, "clients of the flood")
	f.IntVar(&o.floodBatches, "flood-batches", 5, "batches each flood client must get acknowledged")
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

// batchJSON encodes a batch as a CloudEvents JSON array, each id prefixed
// with prefix.
func batchJSON(b []benchEvent, prefix string) []byte {
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
		fmt.Fprintf(&buf, `{"specversion":"1.0","type":"message.sent","source":"/bench","id":"%s%s","subject":"%s","time":"%s","datacontenttype":"application/json","data":{%s,"category":"%s"}}`,
			prefix, e.id, e.customer, e.t.Format(time.RFC3339), data, e.category)
	}
	buf.WriteByte(']')
	return buf.Bytes()
}

// sizeResult is what the bench measured at one table size.
type sizeResult struct {
	rows          uint64        // rows in the events table before the first round
	rebuild       time.Duration // the key index's rebuild from ClickHouse (start to /readyz)
	best          loadResult    // the fastest round
	bulkRate      float64       // the best bulk load's events/s
	p99s          []string      // each round's request p99
	maxRSS        int64         // the server's RSS, max over the rounds
	flush         flushFigures  // of the best round
	eventsBytes   int64         // the events table on disk after the rounds
	indexBytes    int64         // the key index on disk after the rounds
	indexKeys     uint64        // rows the index was rebuilt from (the table's rows)
	cpu           cpuSplit      // of the best round
	roundsSummary []string
}

func (r sizeResult) ratio() float64 { return r.best.rate() / r.bulkRate }

func runIngestBench(ctx context.Context, out io.Writer, o ingestBenchOpts) error {
	logf := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	if o.events < o.batch || o.clients < 1 || o.batch < 1 || o.repeat < 1 || len(o.sizes) == 0 || !slices.IsSorted(o.sizes) || o.sizes[0] < 0 {
		return usageError{fmt.Errorf("need --events >= --batch >= 1, --clients >= 1, --repeat >= 1 and --sizes ascending, not negative")}
	}
	m, a, chClient, done, err := benchStack(ctx, o.dir, logf)
	if err != nil {
		return err
	}
	defer done()
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
	// Ids new to the table even when --dir keeps it from an earlier run.
	runID := strconv.FormatInt(time.Now().Unix(), 36)
	total := 0
	for _, b := range batches {
		total += len(b)
	}
	// The server as its own process, so its RSS is its own; its key index
	// in the scratch directory.
	srv := &benchServer{cfg: a.Config, indexDir: filepath.Join(m.Dir, "keyindex")}
	defer srv.stop()
	month := metering.MonthStart(now).AddDate(0, -1, 0)

	var results []sizeResult
	for si, size := range o.sizes {
		var r sizeResult
		if size > 0 {
			fillStart := time.Now()
			if err := fillEvents(ctx, a, o, size, month); err != nil {
				return err
			}
			// The rollups of the filled history, sealed before the
			// measurement: otherwise the server's sealer catches up on
			// all of it while ingest is timed (in production it seals
			// an hour's events once an hour).
			if _, err := sealAll(ctx, a, time.Time{}, 24*7, nil); err != nil {
				return err
			}
			settleMerges(ctx, a)
			logf("filled the events table to %d rows (rollups sealed) in %v", tableRows(ctx, a), time.Since(fillStart).Round(time.Second))
		}
		r.rows = tableRows(ctx, a)
		// The key index through its rebuild path: a server on an empty
		// index directory reads it back from ClickHouse.
		srv.stop()
		if err := os.RemoveAll(srv.indexDir); err != nil {
			return err
		}
		t0 := time.Now()
		if err := srv.start(ctx); err != nil {
			return err
		}
		r.rebuild = time.Since(t0)
		r.indexKeys = r.rows
		logf("size %d: key index rebuilt from %d rows in %v (server start to /readyz)", size, r.rows, r.rebuild.Round(time.Millisecond))
		flushStatsOf(ctx, srv.url, adminKey) // start counting from here
		for round := 1; round <= o.repeat; round++ {
			if size == 0 && round > 1 { // empty table and empty index for each round
				srv.stop()
				if err := a.CH.Exec(ctx, "TRUNCATE TABLE events"); err != nil {
					return fmt.Errorf("empty the events table: %w", err)
				}
				if err := os.RemoveAll(srv.indexDir); err != nil {
					return err
				}
				if err := srv.start(ctx); err != nil {
					return err
				}
				flushStatsOf(ctx, srv.url, adminKey)
			}
			b, bulkCPU, err := bulkLoadTSV(ctx, a, chClient, m.CH.TCPPort(), m.CH.PID(), filepath.Join(m.Dir, "events.tsv"), batches, now)
			if err != nil {
				return err
			}
			logf("size %d, round %d: baseline: clickhouse-client TSV insert of %d rows: %v (%.0f events/s); CPU: ClickHouse %.2fs, clickhouse-client %.2fs",
				size, round, total, b.Round(time.Millisecond), float64(total)/b.Seconds(), bulkCPU.clickhouse.Seconds(), bulkCPU.client.Seconds())
			bodies := make([][]byte, len(batches))
			for i, bt := range batches {
				bodies[i] = batchJSON(bt, fmt.Sprintf("%s-s%d-r%d-", runID, si, round))
			}
			prof := startBenchProfile(fmt.Sprintf("size%d-round%d", size, round))
			res, err := postAll(ctx, srv.url, ingestKey, bodies, o.clients, srv.pid(), m.CH.PID())
			prof()
			if err != nil {
				return err
			}
			ff := flushStatsOf(ctx, srv.url, adminKey)
			logf("size %d, round %d: server memory now: %s", size, round, serverMemory(ctx, srv.url, adminKey))
			bulkRate := float64(total) / b.Seconds()
			logf("size %d, round %d: %v in %v; %s", size, round, res.cpu, res.wall.Round(time.Millisecond), ff)
			logf("size %d, round %d: HTTP ingest: %d events acknowledged in %v: %.0f events/s = %.2fx this round's bulk load; latency p50 %v p99 %v; server RSS max %d MB; 429 retries %d",
				size, round, res.acked, res.wall.Round(time.Millisecond), res.rate(), res.rate()/bulkRate, res.p50, res.p99, res.maxRSS>>20, res.retries)
			r.roundsSummary = append(r.roundsSummary, fmt.Sprintf("%.2fx", res.rate()/bulkRate))
			if round == 1 || bulkRate > r.bulkRate {
				r.bulkRate = bulkRate
			}
			if round == 1 || res.wall < r.best.wall {
				r.best, r.flush, r.cpu = res, ff, res.cpu
			}
			r.maxRSS = max(r.maxRSS, res.maxRSS)
			r.p99s = append(r.p99s, res.p99.Round(100*time.Microsecond).String())
		}
		r.eventsBytes = tableBytes(ctx, a)
		r.indexBytes = dirBytes(srv.indexDir)
		logf("size %d: best of %d: bulk load %.0f events/s; HTTP ingest %.0f events/s = %.2fx the bulk load; latency p50 %v p99 %v (p99 of each round: %s); look-up %.1f ms per flush of %.0f events; server RSS max %d MB; disk: events %d MB, key index %d MB",
			size, o.repeat, r.bulkRate, r.best.rate(), r.ratio(), r.best.p50, r.best.p99, strings.Join(r.p99s, ", "), r.flush.lookupMS, r.flush.perFlush, r.maxRSS>>20, r.eventsBytes>>20, r.indexBytes>>20)
		results = append(results, r)
	}

	// Usage latency on the largest table.
	rows := tableRows(ctx, a)
	var parts uint64
	_ = a.CH.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = 'bench' AND table = 'events' AND active").Scan(&parts)
	type qres struct {
		customer string
		events   uint64
		runs     int
		p50, p99 time.Duration
		storeP99 time.Duration
		storeP50 time.Duration
	}
	var qs []qres
	ranks := []int{100, 10, 0}
	if o.queries <= 0 {
		ranks = nil
	}
	for _, rank := range ranks {
		cust := fmt.Sprintf("bench-%05d", rank)
		var n uint64
		from, to := month, month.AddDate(0, 1, 0)
		if err := a.CH.QueryRow(ctx, "SELECT count() FROM events WHERE customer_id = ? AND time >= toDateTime(?) AND time < toDateTime(?)", cust, from.Unix(), to.Unix()).Scan(&n); err != nil {
			return err
		}
		path := fmt.Sprintf("%s/api/v1/customers/%s/usage?from=%s&to=%s&window=day&group_by=country,category", srv.url, cust, from.Format(time.DateOnly), to.Format(time.DateOnly))
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

	var fl *floodResult
	if o.floodStall > 0 {
		f, err := runFlood(ctx, a, srv, ingestKey, m.CH.PID(), o, batches, "flood-"+runID+"-", logf)
		if err != nil {
			return err
		}
		fl = &f
	}

	if o.doc == "" {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "`postage-bench ingest` (what `make bench-ingest` runs) starts private ClickHouse %s and PostgreSQL, a\n", chVersion(ctx, a))
	fmt.Fprintf(&b, "`postage serve` child process with default settings, and generates %d message.sent events for\n", o.events)
	fmt.Fprintf(&b, "%d Zipf-distributed customers, %d recipient countries (E.164 numbers), 5 categories and\n", o.customers, len(benchRegions()))
	fmt.Fprintf(&b, "%.0f%% re-sent duplicates, in batches of %d posted by %d concurrent clients, with ids new to the table\n", o.dupRate*100, o.batch, o.clients)
	fmt.Fprintf(&b, "in each round. The baseline is the same %d rows as TSV through `clickhouse-client` into a scratch\n", total)
	fmt.Fprintf(&b, "table of the same schema, in the same run. Before each table size the key index is rebuilt from\nClickHouse by a server started on an empty index directory.\n\n")
	fmt.Fprintf(&b, "```\n%s\n```\n\n", benchCommandLine(o))
	mach := fmt.Sprintf("%s, %d cores", cpuModel(), runtime.NumCPU())
	fmt.Fprintf(&b, "%s, %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), mach)
	fmt.Fprintf(&b, "| rows in the table | HTTP ingest, acked events/s (best of %d) | TSV bulk load (best of %d) | ratio | each round | request p50 / p99 (p99 of each round) | key index look-up per flush | server RSS max | disk: events + key index | key index rebuild |\n|---|---|---|---|---|---|---|---|---|---|\n", o.repeat, o.repeat)
	for _, r := range results {
		fmt.Fprintf(&b, "| %d | %.0f | %.0f | **%.2fx** | %s | %v / %v (%s) | %.1f ms (%.0f events a flush) | %d MB | %d MB + %d MB | %v for %d rows |\n",
			r.rows, r.best.rate(), r.bulkRate, r.ratio(), strings.Join(r.roundsSummary, ", "), r.best.p50, r.best.p99, strings.Join(r.p99s, ", "),
			r.flush.lookupMS, r.flush.perFlush, r.maxRSS>>20, r.eventsBytes>>20, r.indexBytes>>20, r.rebuild.Round(100*time.Millisecond), r.indexKeys)
	}
	b.WriteString("\n")
	if fl != nil {
		fmt.Fprintf(&b, "Flood while ClickHouse is stopped (SIGSTOP for %v), %d clients posting %d batches of %d events each as fast as the server answers (retrying 429 and 503 after 20 ms), table of %d rows: server RSS max **%d MB** during the stall, %d MB after ClickHouse resumed; answers during the stall: %d × 200, %d × 429, %d × 503; afterwards every event was stored exactly once (%d events, %d rows).\n\n",
			o.floodStall, o.floodClients, o.floodBatches, o.batch, fl.rows, fl.stallRSS>>20, fl.afterRSS>>20, fl.ok, fl.overloaded, fl.unavailable, fl.events, fl.stored)
	}
	if len(qs) == 0 {
		return writeDocBlock(o.doc, "## Metering", "ingest-bench", b.String())
	}
	fmt.Fprintf(&b, "Usage query, one customer-month, `GET /api/v1/customers/{id}/usage?window=day&group_by=country,category` (up to %d queries each, at most 20 s per customer; \"store\" is the same query through `metering.CHStore` without HTTP), events table of %d rows in %d active parts:\n\n", o.queries, rows, parts)
	fmt.Fprintf(&b, "| customer (Zipf rank) | its events in the month | queries | HTTP p50 | HTTP p99 | store p50 | store p99 |\n|---|---|---|---|---|---|---|\n")
	for _, q := range qs {
		fmt.Fprintf(&b, "| %s | %d | %d | %v | %v | %v | %v |\n", q.customer, q.events, q.runs, q.p50, q.p99, q.storeP50, q.storeP99)
	}
	b.WriteString("\n")
	return writeDocBlock(o.doc, "## Metering", "ingest-bench", b.String())
}

// tableRows counts the events table's rows.
func tableRows(ctx context.Context, a *app.App) uint64 {
	var n uint64
	_ = a.CH.QueryRow(ctx, "SELECT count() FROM events").Scan(&n)
	return n
}

// tableBytes is the events table's size on disk (its active parts).
func tableBytes(ctx context.Context, a *app.App) int64 {
	var n uint64
	_ = a.CH.QueryRow(ctx, "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = 'bench' AND table = 'events' AND active").Scan(&n)
	return int64(n)
}

// dirBytes is the size of the files under dir.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// settleMerges lets background merges of a fill finish (at most two
// minutes), as they would between bulk arrivals in production.
func settleMerges(ctx context.Context, a *app.App) {
	for i := 0; i < 240; i++ {
		var merging uint64
		if err := a.CH.QueryRow(ctx, "SELECT count() FROM system.merges WHERE database = 'bench' AND table = 'events'").Scan(&merging); err != nil || merging == 0 {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// benchServer is the "serve" child process the bench measures.
type benchServer struct {
	cfg      config.Config
	indexDir string
	cmd      *exec.Cmd
	url      string
}

func (s *benchServer) pid() int { return s.cmd.Process.Pid }

// start starts the server and waits until /readyz answers 200 (its key
// index is open and caught up with ClickHouse).
func (s *benchServer) start(ctx context.Context) error {
	cmd, url, err := startBenchServer(ctx, s.cfg, "POSTAGE_INGEST_INDEX_DIR="+s.indexDir)
	if err != nil {
		return err
	}
	s.cmd, s.url = cmd, url
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			s.stop()
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop stops the server (it writes its key index out on the way).
func (s *benchServer) stop() {
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(os.Interrupt)
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// floodResult is what the flood measured.
type floodResult struct {
	rows                        uint64
	stallRSS, afterRSS          int64
	ok, overloaded, unavailable int64
	events, stored              uint64
}

// runFlood stops ClickHouse (SIGSTOP) while clients post batches as fast as
// the server answers, samples the server's RSS, resumes ClickHouse, lets
// every client re-send until each of its batches is acknowledged, and
// checks that every event is stored exactly once.
func runFlood(ctx context.Context, a *app.App, srv *benchServer, key string, chPID int, o ingestBenchOpts, batches [][]benchEvent, prefix string, logf func(string, ...any)) (floodResult, error) {
	var fr floodResult
	fr.rows = tableRows(ctx, a)
	// Each client's batches, with ids new to the table and no re-sends.
	var flat []benchEvent
	for _, b := range batches {
		flat = append(flat, b...)
	}
	bodies := make([][][]byte, o.floodClients)
	k := 0
	for c := range bodies {
		for n := range o.floodBatches {
			b := make([]benchEvent, o.batch)
			for i := range b {
				b[i] = flat[k%len(flat)]
				b[i].id = fmt.Sprintf("%s%d-%d-%d", prefix, c, n, i)
				k++
			}
			bodies[c] = append(bodies[c], batchJSON(b, ""))
		}
	}
	fr.events = uint64(o.floodClients * o.floodBatches * o.batch)
	if err := stopProcess(chPID); err != nil {
		return fr, fmt.Errorf("stop ClickHouse: %w", err)
	}
	resumed := atomic.Bool{}
	resume := func() {
		if !resumed.Swap(true) {
			_ = continueProcess(chPID)
		}
	}
	defer resume()
	logf("flood: ClickHouse stopped; %d clients posting %d batches of %d events", o.floodClients, o.floodBatches, o.batch)
	var stallPeak, afterPeak atomic.Int64
	stopRSS := make(chan struct{})
	rssDone := make(chan struct{})
	go func() {
		defer close(rssDone)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			r := rssOf(srv.pid())
			peak := &stallPeak
			if resumed.Load() {
				peak = &afterPeak
			}
			if r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-stopRSS:
				return
			case <-t.C:
			}
		}
	}()
	var ok, over, unav atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.floodClients}}
	errc := make(chan error, o.floodClients)
	for c := range o.floodClients {
		go func() {
			for _, body := range bodies[c] {
				for {
					req, _ := http.NewRequestWithContext(ctx, "POST", srv.url+"/api/v1/events", bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/cloudevents-batch+json")
					req.Header.Set("Authorization", "Bearer "+key)
					resp, err := client.Do(req)
					if err != nil {
						errc <- err
						return
					}
					rb, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					stalled := !resumed.Load()
					switch resp.StatusCode {
					case http.StatusOK:
						if stalled {
							ok.Add(1)
						}
					case http.StatusTooManyRequests, http.StatusServiceUnavailable:
						if stalled && resp.StatusCode == http.StatusTooManyRequests {
							over.Add(1)
						} else if stalled {
							unav.Add(1)
						}
						time.Sleep(20 * time.Millisecond)
						continue
					default:
						errc <- fmt.Errorf("flood: POST /api/v1/events: %d %s", resp.StatusCode, rb)
						return
					}
					break
				}
			}
			errc <- nil
		}()
	}
	select {
	case <-ctx.Done():
	case <-time.After(o.floodStall):
	}
	stallRSS := stallPeak.Load()
	saveServerHeap("heap-flood-stall")
	resume()
	logf("flood: ClickHouse resumed after %v; server RSS max during the stall %d MB", o.floodStall, stallRSS>>20)
	var firstErr error
	for range o.floodClients {
		if err := <-errc; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	close(stopRSS)
	<-rssDone
	saveServerHeap("heap-flood-after")
	if firstErr != nil {
		return fr, firstErr
	}
	fr.stallRSS, fr.afterRSS = stallRSS, afterPeak.Load()
	fr.ok, fr.overloaded, fr.unavailable = ok.Load(), over.Load(), unav.Load()
	var ids uint64
	if err := a.CH.QueryRow(ctx, "SELECT count(), uniqExact(customer_id, id) FROM events WHERE startsWith(id, ?)", prefix).Scan(&fr.stored, &ids); err != nil {
		return fr, err
	}
	logf("flood: answers during the stall: %d x 200, %d x 429, %d x 503; server RSS max after it %d MB; %d events sent, %d rows, %d distinct",
		fr.ok, fr.overloaded, fr.unavailable, fr.afterRSS>>20, fr.events, fr.stored, ids)
	if fr.stored != fr.events || ids != fr.events {
		return fr, fmt.Errorf("flood: %d events sent and acknowledged, but %d rows and %d distinct keys stored", fr.events, fr.stored, ids)
	}
	return fr, nil
}

// serverMemory describes the server's Go heap from its metrics (the key
// index's filter and memtables are outside it).
func serverMemory(ctx context.Context, url, key string) string {
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var parts []string
	for _, l := range strings.Split(string(b), "\n") {
		for _, name := range []string{"go_memstats_heap_inuse_bytes", "go_memstats_heap_sys_bytes", "go_memstats_next_gc_bytes", "go_memstats_sys_bytes", "process_resident_memory_bytes"} {
			if rest, ok := strings.CutPrefix(l, name+" "); ok {
				v, _ := strconv.ParseFloat(rest, 64)
				parts = append(parts, fmt.Sprintf("%s %.0f MB", strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(name, "go_memstats_"), "process_"), "_bytes"), v/(1<<20)))
			}
		}
	}
	return strings.Join(parts, ", ")
}

// flushFigures are the server's group-commit metrics over one phase.
type flushFigures struct {
	flushes, perFlush, flushMS, lookupMS, insertMS, totalS float64
}

func (f flushFigures) String() string {
	if f.flushes == 0 {
		return "no flushes"
	}
	return fmt.Sprintf("%.0f flushes, %.0f events per flush, %.1f ms per flush (key index look-up %.1f ms + insert %.1f ms, partly overlapped), %.1f s flushing in total",
		f.flushes, f.perFlush, f.flushMS, f.lookupMS, f.insertMS, f.totalS)
}

func benchCommandLine(o ingestBenchOpts) string {
	sizes := make([]string, len(o.sizes))
	for i, n := range o.sizes {
		sizes[i] = strconv.Itoa(n)
	}
	return fmt.Sprintf("postage-bench ingest --events %d --clients %d --batch %d --customers %d --duplicates %g --sizes %s --repeat %d --queries %d --flood-stall %v --flood-clients %d --flood-batches %d",
		o.events, o.clients, o.batch, o.customers, o.dupRate, strings.Join(sizes, ","), o.repeat, o.queries, o.floodStall, o.floodClients, o.floodBatches)
}

// writeDocBlock replaces, in path, the text between the lines
// "<!-- begin name -->" and "<!-- end name -->", or adds such a block at
// the end of the section that starts at heading (or of the file), so the
// hand-written text around it stays.
func writeDocBlock(path, heading, name, block string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	begin, end := "<!-- begin "+name+" -->\n", "<!-- end "+name+" -->\n"
	full := begin + block + end
	if i := strings.Index(s, begin); i >= 0 {
		if j := strings.Index(s[i:], end); j >= 0 {
			return os.WriteFile(path, []byte(s[:i]+full+s[i+j+len(end):]), 0o644)
		}
	}
	if i := strings.Index(s, heading+"\n"); i >= 0 {
		rest := s[i+len(heading)+1:]
		at := len(s)
		if j := strings.Index(rest, "\n## "); j >= 0 {
			at = i + len(heading) + 1 + j + 1
		}
		return os.WriteFile(path, []byte(s[:at]+full+"\n"+s[at:]), 0o644)
	}
	if s != "" && !strings.HasSuffix(s, "\n\n") {
		s = strings.TrimRight(s, "\n") + "\n\n"
	}
	return os.WriteFile(path, []byte(s+heading+"\n\n"+full), 0o644)
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
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t\t\tcloudevents\t\t1\t%d\t%s\n", e.customer, e.id, e.t.Format(time.DateTime), e.country, e.category, h, ing)
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
		"--query", "INSERT INTO bench_scratch (customer_id, id, time, country, category, pricing_type, pricing_model, source, status, quantity, payload_hash, ingested_at) FORMAT TabSeparated")
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

func startBenchServer(ctx context.Context, cfg config.Config, extraEnv ...string) (*exec.Cmd, string, error) {
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
	cmd.Env = append(cmd.Env, extraEnv...)
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
// over the same customer ids, ~150 countries, 5 categories; event times
// spread over month and each ingested up to a minute later) until the
// table holds rows rows.
func fillEvents(ctx context.Context, a *app.App, o ingestBenchOpts, rows int, month time.Time) error {
	have := tableRows(ctx, a)
	need := int64(rows) - int64(have)
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
		q := fmt.Sprintf(`INSERT INTO events (customer_id, id, time, country, category, pricing_type, pricing_model, source, status, quantity, payload_hash, ingested_at)
SELECT concat('bench-', substring(toString(100000 + toUInt32(floor(pow(%d, rand(1) / 4294967295.0))) - 1), 2)),
       concat('fill-', toString(number + %d)),
       toDateTime(%d + rand(2) %% %d) AS t,
       [%s][1 + toUInt32(floor(pow(%d, rand(3) / 4294967295.0))) - 1],
       ['marketing','utility','authentication','service','authentication_international'][1 + rand(4) %% 5],
       '', '', 'cloudevents', '',
       1, rand64(5), t + rand(6) %% 60
FROM numbers(%d)`, o.customers, int64(have)+off, from, to-from, strings.Join(cs, ","), len(regions), n)
		if err := a.CH.Exec(ctx, q); err != nil {
			return fmt.Errorf("fill events: %w", err)
		}
	}
	return nil
}

// prevFlushStats holds the metrics of the previous flushStatsOf call.
var prevFlushStats = map[string]float64{}

// flushStatsOf reads the server's group-commit metrics since the previous
// call.
func flushStatsOf(ctx context.Context, url, key string) flushFigures {
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return flushFigures{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	v := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		for _, name := range []string{"postage_ingest_flush_seconds_sum", "postage_ingest_flush_seconds_count", "postage_ingest_batch_events_sum",
			"postage_ingest_lookup_seconds_sum", "postage_ingest_lookup_seconds_count", "postage_ingest_insert_seconds_sum", "postage_ingest_insert_seconds_count"} {
			// One series per shard (a shard label; "" on one server): summed.
			rest, ok := strings.CutPrefix(l, name+" ")
			if !ok && strings.HasPrefix(l, name+"{") {
				if i := strings.LastIndexByte(l, ' '); i > 0 {
					rest, ok = l[i+1:], true
				}
			}
			if ok {
				x, _ := strconv.ParseFloat(rest, 64)
				v[name] += x
			}
		}
	}
	for k, x := range v { // this phase only: subtract the previous call's counts
		if x >= prevFlushStats[k] { // a restarted server counts from zero
			v[k] = x - prevFlushStats[k]
		}
		prevFlushStats[k] = x
	}
	n := v["postage_ingest_flush_seconds_count"]
	if n == 0 {
		return flushFigures{}
	}
	per := func(name string) float64 {
		if c := v[name+"_count"]; c > 0 {
			return 1000 * v[name+"_sum"] / c
		}
		return 0
	}
	return flushFigures{
		flushes: n, perFlush: v["postage_ingest_batch_events_sum"] / n, flushMS: 1000 * v["postage_ingest_flush_seconds_sum"] / n,
		lookupMS: per("postage_ingest_lookup_seconds"), insertMS: per("postage_ingest_insert_seconds"), totalS: v["postage_ingest_flush_seconds_sum"],
	}
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

// saveServerHeap saves a heap profile of the server child as
// <name>.pprof in the profile directory, if profiling is on.
func saveServerHeap(name string) {
	dir := os.Getenv(benchProfileEnv)
	if dir == "" || benchPprofAddr == "" {
		return
	}
	resp, err := http.Get("http://" + benchPprofAddr + "/debug/pprof/heap")
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_ = os.MkdirAll(dir, 0o755)
	_ = os.WriteFile(filepath.Join(dir, name+".pprof"), b, 0o644)
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
