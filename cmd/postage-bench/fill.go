package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"postage/internal/app"
	"postage/metering"
)

// fillOptions shapes a fill of the events table (fillTable).
type fillOptions struct {
	// Rows is how many events the table holds after the fill (events
	// already there count).
	Rows int64
	// Customers is how many customers send (Zipf, exponent ZipfS: with
	// 1.2 over 10,000 customers the largest sends 15% of everything, so
	// ≥ 1M events in a month from 10M rows on).
	Customers int
	ZipfS     float64
	// From and To bound the events' times: spread evenly over [From, To).
	From, To time.Time
	// Late is the share of events ingested late: between an hour and ten
	// days after their time (the others within a minute of it). No stamp
	// is after Now.
	Late float64
	Now  time.Time
	// Chunk is the rows per INSERT … SELECT (2,000,000).
	Chunk int64
}

// defaultFill is the fill of the usage benchmark and the ingest benchmark:
// last month and this month up to now, 10,000 Zipf customers, 2% late.
func defaultFill(rows int64, now time.Time) fillOptions {
	return fillOptions{Rows: rows, Customers: 10000, ZipfS: 1.2, From: metering.MonthStart(now).AddDate(0, -1, 0), To: now, Late: 0.02, Now: now, Chunk: 2_000_000}
}

// fillResult says what a fill did.
type fillResult struct {
	Inserted      int64         // events added
	Rows          int64         // events in the table after the fill
	Insert, Seal  time.Duration // wall time of the inserts and of sealing
	Sealed        metering.SealResult
	LargestInFrom uint64 // events of the largest customer in From's month
}

// fillTable fills the events table the way production fills it, but
// fast: ClickHouse generates the rows itself (INSERT … SELECT FROM
// numbers(), one chunk of consecutive times per statement, so each insert
// lands in one or two daily partitions as a flush would), with Zipf
// customers over ~150 recipient countries (themselves Zipf) and 5
// categories, ingestion stamps a few seconds after the events' times and a
// share of late events, then seals the rollups of every ingest hour that
// may be sealed now, as the serving process's sealer would have done all
// along (a fill that bypassed the rollups would measure the raw reads).
// The ingest benchmark fills the key index from the table afterwards.
func fillTable(ctx context.Context, a *app.App, o fillOptions, logf func(string, ...any)) (fillResult, error) {
	var res fillResult
	if o.Chunk <= 0 {
		o.Chunk = 2_000_000
	}
	if o.Customers < 1 || !o.To.After(o.From) || o.Now.Before(o.To) {
		return res, fmt.Errorf("fill: need customers >= 1 and From < To <= Now")
	}
	var have uint64
	if err := a.CH.QueryRow(ctx, "SELECT count() FROM events").Scan(&have); err != nil {
		return res, err
	}
	need := o.Rows - int64(have)
	regions := benchRegions()
	var cs []string
	for _, r := range regions {
		cs = append(cs, "'"+r.region+"'")
	}
	from, span := o.From.Unix(), o.To.Unix()-o.From.Unix()
	t0 := time.Now()
	for off := int64(0); off < need; off += o.Chunk {
		n := min(o.Chunk, need-off)
		q := fillSQL(o, strings.Join(cs, ","), len(regions), int64(have)+off, n, from+span*off/need, from+span*(off+n)/need)
		if err := a.CH.Exec(ctx, q); err != nil {
			return res, fmt.Errorf("fill events: %w", err)
		}
		if logf != nil && (off/o.Chunk)%10 == 9 {
			logf("fill: %d of %d rows in %s", off+n, need, time.Since(t0).Round(time.Second))
		}
	}
	res.Inserted, res.Insert = max(need, 0), time.Since(t0)
	var rows uint64
	if err := a.CH.QueryRow(ctx, "SELECT count() FROM events").Scan(&rows); err != nil {
		return res, err
	}
	res.Rows = int64(rows)

	t0 = time.Now()
	var err error
	if res.Sealed, err = sealAll(ctx, a, o.Now, 24*7, logf); err != nil {
		return res, err
	}
	res.Seal = time.Since(t0)
	mFrom, mTo := metering.MonthStart(o.From), metering.MonthStart(o.From).AddDate(0, 1, 0)
	if err := a.CH.QueryRow(ctx, "SELECT count() FROM events WHERE customer_id = ? AND time >= toDateTime(?) AND time < toDateTime(?)",
		benchZipfCustomer(0), mFrom.Unix(), mTo.Unix()).Scan(&res.LargestInFrom); err != nil {
		return res, err
	}
	return res, nil
}

// benchZipfCustomer is the id of the customer of Zipf rank r (0: largest).
func benchZipfCustomer(r int) string { return fmt.Sprintf("bench-%05d", r) }

// fillSQL generates n events numbered from first, times spread over [a, b).
// Ranks follow a continuous Zipf law of exponent s over [1, N+1) by inverse
// transform: x = ((N+1)^(1-s) − 1)·u + 1)^(1/(1-s)), rank = floor(x) − 1.
// A customer sends 80% of its messages to its home country (drawn by a
// hash of its id) and the rest anywhere; both draws are Zipf over the
// regions with exponent 1.05 (the most populous messaging markets first).
func fillSQL(o fillOptions, countries string, nCountries int, first, n, a, b int64) string {
	zipf := func(u string, n int, s float64) string {
		return fmt.Sprintf("least(%d, toUInt32(floor(pow((pow(%d, %g) - 1) * (%s / 4294967296.0) + 1, %g))) - 1)", n-1, n+1, 1-s, u, 1/(1-s))
	}
	late := int64(o.Late * 1e6)
	return fmt.Sprintf(`INSERT INTO events (customer_id, id, time, country, category, pricing_type, pricing_model, source, status, quantity, payload_hash, ingested_at)
SELECT customer_id, concat('fill-', toString(number + %d)), t,
       [%s][1 + if(rand(9) %% 100 < 80, %s, %s)],
       ['marketing','utility','authentication','service','authentication_international'][1 + rand(4) %% 5],
       '', '', 'cloudevents', '', 1, rand64(5),
       toDateTime(least(%d, toUInt32(t) + if(rand(6) %% 1000000 < %d, 3600 + rand(7) %% 860400, rand(8) %% 60)))
FROM (SELECT number, toDateTime(%d + intDiv(number * %d, %d)) AS t, concat('bench-', substring(toString(100000 + %s), 2)) AS customer_id FROM numbers(%d))`,
		first, countries, zipf("cityHash64(customer_id) % 4294967296", nCountries, 1.05), zipf("rand(3)", nCountries, 1.05),
		o.Now.Unix(), late, a, b-a, n, zipf("rand(1)", o.Customers, o.ZipfS), n)
}

// sealAll seals every window of the rollups that may be sealed at now
// (zero: the clock), passHours hours a pass, and returns what it sealed:
// what the serving process's sealer would otherwise do while a bench
// measures.
func sealAll(ctx context.Context, a *app.App, now time.Time, passHours int, logf func(string, ...any)) (metering.SealResult, error) {
	cfg := metering.SealerConfig{PassHours: passHours}
	if !now.IsZero() {
		cfg.Now = func() time.Time { return now }
	}
	sealer := metering.NewSealer(a.Events, cfg)
	t0 := time.Now()
	var sealed metering.SealResult
	for {
		r, err := sealer.SealOnce(ctx)
		if err != nil {
			return sealed, err
		}
		sealed.Hours, sealed.Days, sealed.Months = sealed.Hours+r.Hours, sealed.Days+r.Days, sealed.Months+r.Months
		if !r.More {
			return sealed, nil
		}
		if logf != nil {
			logf("sealed %d hours, %d days, %d months in %s", sealed.Hours, sealed.Days, sealed.Months, time.Since(t0).Round(time.Second))
		}
	}
}
