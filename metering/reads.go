package metering

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"postage"
)

// Usage reads. Each method turns its question into a readSpec (pure
// functions below), plans it over the seals the catalogue knows (plan.go)
// and runs the plan's one query.

// DefaultCatalogRefresh is how old the seal catalogue may get before a read
// refreshes it from usage_seals. The sealer of the serving process adds its
// own seals at once; this only bounds how long a read of another process
// (a replica, the CLI) takes from the raw events what was sealed meanwhile.
const DefaultCatalogRefresh = 5 * time.Second

// reads is the read state of a CHStore: the seal catalogue.
type reads struct {
	cat       *sealCatalog
	refreshMu sync.Mutex
	rawOnly   atomic.Bool
	sealed    atomic.Pointer[sealedCache] // nil: off
	// CatalogRefresh overrides DefaultCatalogRefresh when positive.
	CatalogRefresh time.Duration
}

func newReads() reads { return reads{cat: newSealCatalog()} }

// RawOnly makes every read ignore the rollups and answer from the raw
// events alone (on), or use them again (off): the reference the rollups
// are checked against (audits, tests). Such reads cost a scan of the
// events they may concern.
func (s *CHStore) RawOnly(on bool) { s.rawOnly.Store(on) }

// catalog returns the seal catalogue to plan a read with, refreshed if it
// is older than the refresh interval (nil in raw-only mode). A refresh
// that fails leaves the stale catalogue, which is still exact.
func (s *CHStore) catalog(ctx context.Context) (*sealCatalog, error) {
	if s.rawOnly.Load() {
		return nil, nil
	}
	every := s.CatalogRefresh
	if every <= 0 {
		every = DefaultCatalogRefresh
	}
	c := s.cat
	c.mu.RLock()
	loaded, age := c.loaded, time.Since(c.refreshed)
	c.mu.RUnlock()
	if loaded && age < every {
		return c, nil
	}
	if err := s.refreshCatalog(ctx, !loaded); err != nil && !loaded {
		return nil, err
	}
	return c, nil
}

// refreshCatalog reads the seals recorded since the last refresh (all of
// them the first time) into the catalogue. With wait unset it returns at
// once if another refresh is running.
func (s *CHStore) refreshCatalog(ctx context.Context, wait bool) error {
	if wait {
		s.refreshMu.Lock()
	} else if !s.refreshMu.TryLock() {
		return nil
	}
	defer s.refreshMu.Unlock()
	c := s.cat
	c.mu.RLock()
	since := int64(0)
	if c.loaded {
		// A margin for seals committed out of their sealed_at order and
		// for the clocks of several sealing servers.
		since = c.highWater - 3600
	}
	c.mu.RUnlock()
	started := time.Now()
	q, args := sealsSQL(since)
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read usage seals: %w", err)
	}
	defer rows.Close()
	type rec struct {
		t     tier
		start int64
		span  sealSpan
	}
	var recs []rec
	high := int64(0)
	for rows.Next() {
		var t uint8
		var start, first, last, sealed uint32
		var events uint64
		if err := rows.Scan(&t, &start, &first, &last, &events, &sealed); err != nil {
			return fmt.Errorf("read usage seals: %w", err)
		}
		if t < uint8(tierHour) || t > uint8(tierMonth) {
			continue
		}
		recs = append(recs, rec{tier(t), int64(start), sealSpan{int64(first), int64(last), events}})
		high = max(high, int64(sealed))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read usage seals: %w", err)
	}
	c.mu.Lock()
	for _, r := range recs {
		c.add(r.t, r.start, r.span)
	}
	c.loaded, c.refreshed, c.highWater = true, started, max(c.highWater, high)
	c.mu.Unlock()
	return nil
}

// sealsSQL reads the recorded seals (sealed at or after since, Unix
// seconds; 0 for all), one row per window.
func sealsSQL(since int64) (string, []any) {
	q := "SELECT tier, toUInt32(ingest_start), min(toUInt32(first_event)), max(toUInt32(last_event)), max(events), max(toUInt32(sealed_at)) FROM usage_seals"
	var args []any
	if since > 0 {
		q += " WHERE sealed_at >= toDateTime(?)"
		args = append(args, since)
	}
	return q + " GROUP BY tier, ingest_start", args
}

// run plans spec over the catalogue and runs its query, handing scan each
// row's scanner; grow, if set, may first learn how many rows there may be.
// scan is not called for an empty plan.
func (s *CHStore) run(ctx context.Context, spec readSpec, scan func(func(dest ...any) error) error, grow func(n int)) error {
	c, err := s.catalog(ctx)
	if err != nil {
		return err
	}
	parts := planRead(spec, c)
	if len(parts) == 0 {
		return nil
	}
	if cache := s.cacheFor(spec); cache != nil {
		return s.runCached(ctx, cache, spec, parts, scan, grow)
	}
	q, args := readSQL(spec, parts)
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

// query runs a read's query. A pooled connection to a server that went
// away (a replica stopped or restarted) fails its first use; nothing was
// read yet, so the query is asked again, a few times, and the pool dials a
// live server.
func (s *CHStore) query(ctx context.Context, q string, args ...any) (driver.Rows, error) {
	rows, err := s.conn.Query(ctx, q, args...)
	for try := 0; err != nil && brokenConn(err) && ctx.Err() == nil && try < 3; try++ {
		rows, err = s.conn.Query(ctx, q, args...)
	}
	return rows, err
}

// brokenConn reports whether err is a connection that broke under the
// query (the server closed or reset it) rather than an answer.
func brokenConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// dimColumn is a dimension's column.
func dimColumn(d Dimension) (string, error) {
	switch d {
	case ByCustomer:
		return "customer_id", nil
	case ByCountry:
		return "country", nil
	case ByCategory:
		return "category", nil
	}
	return "", fmt.Errorf("unknown dimension %q", d)
}

// dimColumns returns the grouped columns in canonical order (customer,
// country, category).
func dimColumns(groupBy []Dimension, allowed ...Dimension) ([]string, error) {
	want := map[string]bool{}
	for _, d := range groupBy {
		ok := false
		for _, a := range allowed {
			ok = ok || a == d
		}
		if !ok {
			return nil, fmt.Errorf("cannot group by %q", d)
		}
		c, _ := dimColumn(d)
		want[c] = true
	}
	var cols []string
	for _, c := range dimOrder {
		if want[c] {
			cols = append(cols, c)
		}
	}
	return cols, nil
}

// checkRange checks an event range of a usage read: whole hours (UTC),
// from before to.
func checkRange(from, to time.Time) error {
	var errs []error
	for _, e := range []struct {
		name string
		t    time.Time
	}{{"from", from}, {"to", to}} {
		if e.t.IsZero() {
			errs = append(errs, fmt.Errorf("%s is missing", e.name))
		} else if e.t.Nanosecond() != 0 || e.t.Unix()%3600 != 0 {
			errs = append(errs, fmt.Errorf("%s %s is not a whole hour (UTC): usage is counted per hour, use %s", e.name,
				e.t.UTC().Format(time.RFC3339), e.t.UTC().Truncate(time.Hour).Format(time.RFC3339)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if !to.After(from) {
		return errors.New("to must be after from")
	}
	return nil
}

// Validate checks a usage query: a known window, country and category
// groupings only, and a range of whole hours.
func (q UsageQuery) Validate() error {
	var errs []error
	switch q.Window {
	case Hour, Day, Month:
	default:
		errs = append(errs, fmt.Errorf("window %q is not hour, day or month", q.Window))
	}
	if _, err := dimColumns(q.GroupBy, ByCountry, ByCategory); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, checkRange(q.From, q.To))
	return errors.Join(errs...)
}

// usageSpec is the read of one customer's usage.
func usageSpec(q UsageQuery) (readSpec, error) {
	if err := q.Validate(); err != nil {
		return readSpec{}, postage.Errorf(postage.EINVALID, "usage query: %s", joinLines(err))
	}
	cols, _ := dimColumns(q.GroupBy, ByCountry, ByCategory)
	iFrom, iTo := ingestUpTo(q.AsOf)
	return readSpec{
		eventFrom: q.From.Unix(), eventTo: q.To.Unix(), ingestFrom: iFrom, ingestTo: iTo,
		bucket: q.Window, dims: cols, customers: []string{q.CustomerID}, order: true,
	}, nil
}

// Usage implements Usage.
func (s *CHStore) Usage(ctx context.Context, q UsageQuery) ([]UsageRow, error) {
	spec, err := usageSpec(q)
	if err != nil {
		return nil, err
	}
	out, err := s.usageRows(ctx, spec, q.CustomerID)
	if err != nil {
		return nil, fmt.Errorf("query usage of %s: %w", q.CustomerID, err)
	}
	return out, nil
}

// usageRows runs a read whose rows are UsageRows: its bucket (if any), its
// dims (customer, country, category), quantity and events. Rows without a
// customer column get customer.
func (s *CHStore) usageRows(ctx context.Context, spec readSpec, customer string) ([]UsageRow, error) {
	var out []UsageRow
	var r UsageRow
	var bucket uint32
	var dest []any
	if spec.bucket != "" {
		dest = append(dest, &bucket)
	}
	for _, c := range spec.dims {
		switch c {
		case "customer_id":
			dest = append(dest, &r.CustomerID)
		case "country":
			dest = append(dest, &r.Country)
		case "category":
			dest = append(dest, &r.Category)
		default:
			return nil, fmt.Errorf("usage rows: column %s", c)
		}
	}
	dest = append(dest, &r.Quantity, &r.Events)
	err := s.run(ctx, spec, func(scan func(...any) error) error {
		r = UsageRow{CustomerID: customer}
		if err := scan(dest...); err != nil {
			return err
		}
		r.Start = bucketStart(spec.bucket, bucket)
		out = append(out, r)
		return nil
	}, func(n int) { out = slices.Grow(out, n) })
	return out, err
}

// bucketStart converts a bucket (Unix seconds, YYYYMM for months) to its
// start.
func bucketStart(w Window, b uint32) time.Time {
	switch w {
	case "":
		return time.Time{}
	case Month:
		return time.Date(int(b/100), time.Month(b%100), 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Unix(int64(b), 0).UTC()
}

// summarySpec is the read of every customer's usage in a month.
func summarySpec(q SummaryQuery) (readSpec, error) {
	cols, err := dimColumns(q.GroupBy, ByCustomer, ByCountry, ByCategory)
	if err != nil {
		return readSpec{}, postage.Errorf(postage.EINVALID, "usage summary: %s", err)
	}
	if len(cols) == 0 {
		return readSpec{}, postage.Errorf(postage.EINVALID, "usage summary: group by at least one of customer, country, category")
	}
	from, to := monthRange(q.Month)
	iFrom, iTo := ingestUpTo(q.AsOf)
	return readSpec{eventFrom: from, eventTo: to, ingestFrom: iFrom, ingestTo: iTo, dims: cols, order: true}, nil
}

// Summary implements Usage.
func (s *CHStore) Summary(ctx context.Context, q SummaryQuery) ([]UsageRow, error) {
	spec, err := summarySpec(q)
	if err != nil {
		return nil, err
	}
	out, err := s.usageRows(ctx, spec, "")
	if err != nil {
		return nil, fmt.Errorf("query usage summary: %w", err)
	}
	start := MonthStart(q.Month)
	for i := range out {
		out[i].Start = start
	}
	return out, nil
}

// Validate checks a series query: a known window, at most one of country
// or category, and a range of whole hours.
func (q SeriesQuery) Validate() error {
	var errs []error
	switch q.Window {
	case Hour, Day, Month:
	default:
		errs = append(errs, fmt.Errorf("window %q is not hour, day or month", q.Window))
	}
	if q.GroupBy != "" {
		if _, err := dimColumns([]Dimension{q.GroupBy}, ByCountry, ByCategory); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, checkRange(q.From, q.To))
	return errors.Join(errs...)
}

// seriesSpec is the read of a book-wide (or one customer's) series.
func seriesSpec(q SeriesQuery) (readSpec, error) {
	if err := q.Validate(); err != nil {
		return readSpec{}, postage.Errorf(postage.EINVALID, "usage series: %s", joinLines(err))
	}
	var cols []string
	if q.GroupBy != "" {
		cols, _ = dimColumns([]Dimension{q.GroupBy}, ByCountry, ByCategory)
	}
	spec := readSpec{eventFrom: q.From.Unix(), eventTo: q.To.Unix(), ingestFrom: openFrom, ingestTo: openTo, bucket: q.Window, dims: cols, order: true}
	if q.CustomerID != "" {
		spec.customers = []string{q.CustomerID}
	}
	return spec, nil
}

// Series implements Usage.
func (s *CHStore) Series(ctx context.Context, q SeriesQuery) ([]UsageRow, error) {
	spec, err := seriesSpec(q)
	if err != nil {
		return nil, err
	}
	out, err := s.usageRows(ctx, spec, q.CustomerID)
	if err != nil {
		return nil, fmt.Errorf("query usage series: %w", err)
	}
	return out, nil
}

// lateSpec is the read of the customers with events of a month ingested in
// (after, upTo].
func lateSpec(month, after, upTo time.Time) readSpec {
	from, to := monthRange(month)
	spec := readSpec{eventFrom: from, eventTo: to, ingestFrom: openFrom, ingestTo: upTo.Unix() + 1, dims: []string{"customer_id"}, last: true}
	if !after.IsZero() {
		spec.ingestFrom = after.Unix() + 1
	}
	return spec
}

// LateIngested implements Usage.
func (s *CHStore) LateIngested(ctx context.Context, month, after, upTo time.Time) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	if !upTo.After(after) {
		return out, nil
	}
	var c string
	var q, n uint64
	var last time.Time
	err := s.run(ctx, lateSpec(month, after, upTo), func(scan func(...any) error) error {
		if err := scan(&c, &q, &n, &last); err != nil {
			return err
		}
		out[c] = last.UTC()
		return nil
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("query late events: %w", err)
	}
	return out, nil
}

// customersSpec is the read of the customers with events in a month.
func customersSpec(month time.Time) readSpec {
	from, to := monthRange(month)
	return readSpec{eventFrom: from, eventTo: to, ingestFrom: openFrom, ingestTo: openTo, dims: []string{"customer_id"}, order: true}
}

// CustomersWithUsage implements Usage.
func (s *CHStore) CustomersWithUsage(ctx context.Context, month time.Time) ([]string, error) {
	var out []string
	var c string
	var q, n uint64
	err := s.run(ctx, customersSpec(month), func(scan func(...any) error) error {
		if err := scan(&c, &q, &n); err != nil {
			return err
		}
		out = append(out, c)
		return nil
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("query customers with usage: %w", err)
	}
	return out, nil
}

// joinLines puts the problems of a joined error on one line.
func joinLines(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
