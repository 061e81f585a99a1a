package metering

import (
	"fmt"
	"strings"
	"time"
)

// Planning a read. A usage read asks for the events of an event-time range
// [eventFrom, eventTo) that were ingested in an ingest-time range
// [ingestFrom, ingestTo), grouped. planRead splits it twice:
//
//   - by event time, into classes by the coarsest granularity the request
//     can take whole: with monthly buckets (or none), the whole months of
//     the range can come from any tier, its whole days from tiers 1–2 and
//     its remaining hours from tier 1; with daily buckets the whole days
//     from tiers 1–2; with hourly buckets everything from tier 1;
//   - by ingest time, for each class: every ingest window fully inside the
//     ingest range that a usable tier has sealed goes to the highest such
//     tier; everything else (the tail after the last sealed hour, the
//     partial hours at a cut-off, a window not sealed yet) to the raw
//     events.
//
// A sealed window whose events lie outside the class's event range is not
// read at all (the catalogue knows each window's event span), so what a
// read touches depends on the request — its event range, its customers,
// the late events of that range — and not on how much history is stored.
// readSQL turns the plan into one query.

// readSpec is one usage read.
type readSpec struct {
	eventFrom, eventTo   int64    // event time, [from, to), Unix seconds, whole hours
	ingestFrom, ingestTo int64    // ingestion time, [from, to); openFrom / openTo for none
	bucket               Window   // "" for none (the whole event range)
	dims                 []string // grouped columns, in canonical order (dimOrder)
	customers            []string // none: every customer
	last                 bool     // also the latest ingestion time of each group
	order                bool     // ORDER BY the bucket and dims
}

// dimOrder is the canonical order of the grouped columns.
var dimOrder = []string{"customer_id", "country", "category", "pricing_type", "pricing_model"}

// ingestRange returns the ingest range of events ingested at or before
// asOf (zero: any time).
func ingestUpTo(asOf time.Time) (int64, int64) {
	if asOf.IsZero() {
		return openFrom, openTo
	}
	return openFrom, asOf.Unix() + 1
}

// planPart is one source of a read: the rows of one tier (or the raw
// events) ingested in the ingest ranges, with event times in the event
// ranges.
type planPart struct {
	tier   tier
	ingest []interval
	event  []interval
}

// eventClasses splits [from, to) by the coarsest tier each piece can be
// read from, given the buckets asked for: classes[t] are the event ranges
// that tiers 1..t may answer.
func eventClasses(from, to int64, bucket Window) (classes [4][]interval) {
	top := tierMonth
	switch bucket {
	case Hour:
		top = tierHour
	case Day:
		top = tierDay
	}
	var split func(t tier, iv interval)
	split = func(t tier, iv interval) {
		if iv.empty() {
			return
		}
		if t == tierHour {
			classes[tierHour] = appendInterval(classes[tierHour], iv)
			return
		}
		a, b := t.ceil(iv.from), t.start(iv.to)
		if a >= b {
			split(t-1, iv)
			return
		}
		split(t-1, interval{iv.from, a})
		classes[t] = appendInterval(classes[t], interval{a, b})
		split(t-1, interval{b, iv.to})
	}
	split(top, interval{from, to})
	return classes
}

// assign covers the ingest range [from, to) with the sealed windows of
// tiers top..1, highest first, adding each tier's windows to byTier and
// what no seal covers to raw. c.mu is held.
func assign(c *sealCatalog, top tier, from, to int64, byTier *[4][]int64, raw *[]interval) {
	if from >= to {
		return
	}
	if top == tierRaw {
		*raw = appendInterval(*raw, interval{from, to})
		return
	}
	cur := from
	for _, w := range c.from(top, from) {
		end := top.next(w)
		if end > to {
			break // windows are sorted, so every later one ends later
		}
		assign(c, top-1, cur, w, byTier, raw)
		byTier[top] = append(byTier[top], w)
		cur = end
	}
	assign(c, top-1, cur, to, byTier, raw)
}

// tierRanges returns the ingest ranges to read of tier t's windows (sorted
// starts, all assigned to t) for the event ranges: only windows holding
// events in them, joined with the windows between them in one contiguous
// run (those hold no such events, so reading them costs nothing wrong).
// c.mu is held.
func tierRanges(c *sealCatalog, t tier, windows []int64, event []interval) []interval {
	var out []interval
	var cur interval
	have := false
	prevEnd := openFrom
	for _, w := range windows {
		if w != prevEnd && have {
			out = append(out, cur)
			have = false
		}
		prevEnd = t.next(w)
		if !c.spans[t][w].overlaps(event) {
			continue
		}
		if !have {
			cur.from, have = w, true
		}
		cur.to = prevEnd
	}
	if have {
		out = append(out, cur)
	}
	return out
}

// planRead decomposes a read over the catalogue's seals (see the top of
// this file). Parts are ordered by tier, highest first. A nil catalogue (or
// an empty one) reads everything from the raw events.
func planRead(spec readSpec, c *sealCatalog) []planPart {
	classes := eventClasses(spec.eventFrom, spec.eventTo, spec.bucket)
	type source struct {
		ingest []interval
		event  []interval
	}
	var byTier [4][]source
	add := func(t tier, ingest, event []interval) {
		if len(ingest) == 0 || len(event) == 0 {
			return
		}
		for i, s := range byTier[t] {
			if equalIntervals(s.ingest, ingest) {
				for _, iv := range event {
					byTier[t][i].event = insertInterval(byTier[t][i].event, iv)
				}
				return
			}
		}
		byTier[t] = append(byTier[t], source{ingest: ingest, event: append([]interval(nil), event...)})
	}
	if c != nil {
		c.mu.RLock()
		defer c.mu.RUnlock()
	}
	for top := tierMonth; top >= tierHour; top-- {
		event := classes[top]
		if len(event) == 0 {
			continue
		}
		if c == nil {
			add(tierRaw, []interval{{spec.ingestFrom, spec.ingestTo}}, event)
			continue
		}
		var windows [4][]int64
		var raw []interval
		assign(c, top, spec.ingestFrom, spec.ingestTo, &windows, &raw)
		for t := top; t >= tierHour; t-- {
			add(t, tierRanges(c, t, windows[t], event), event)
		}
		add(tierRaw, raw, event)
	}
	var parts []planPart
	for t := tierMonth; ; t-- {
		for _, s := range byTier[t] {
			parts = append(parts, planPart{tier: t, ingest: s.ingest, event: s.event})
		}
		if t == tierRaw {
			break
		}
	}
	return parts
}

func equalIntervals(a, b []interval) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// insertInterval adds iv to the sorted, disjoint ivs, merging neighbours.
func insertInterval(ivs []interval, iv interval) []interval {
	var out []interval
	placed := false
	for _, x := range ivs {
		if !placed && iv.from <= x.from {
			out = appendInterval(out, iv)
			placed = true
		}
		out = appendInterval(out, x)
	}
	if !placed {
		out = appendInterval(out, iv)
	}
	return out
}

// The tables of the tiers: name, ingest window column, event column.
var tierTables = [4]struct{ name, ingest, event string }{
	tierRaw:   {"events", "ingested_at", "time"},
	tierHour:  {"usage_hourly", "ingest_hour", "event_hour"},
	tierDay:   {"usage_daily", "ingest_day", "event_day"},
	tierMonth: {"usage_monthly", "ingest_month", "event_month"},
}

// bucketSQL returns the expression of a row's bucket in tier t's table:
// Unix seconds for hours and days, YYYYMM for months, always UInt32.
func bucketSQL(t tier, w Window) string {
	col := tierTables[t].event
	switch w {
	case Hour:
		if t == tierHour {
			return "toUInt32(event_hour)"
		}
		return "toUInt32(intDiv(toUInt32(" + col + "), 3600) * 3600)"
	case Day:
		if t == tierDay {
			return "toUInt32(event_day)"
		}
		return "toUInt32(intDiv(toUInt32(" + col + "), 86400) * 86400)"
	case Month:
		if t == tierMonth {
			return "event_month"
		}
		return "toYYYYMM(" + col + ")"
	}
	return ""
}

// yyyymm returns a month's YYYYMM number.
func yyyymm(u int64) int64 {
	t := time.Unix(u, 0).UTC()
	return int64(t.Year())*100 + int64(t.Month())
}

// rangesSQL returns the condition "col is in one of ivs" and its
// arguments; open ends are left out. Months (tier 3's event column) are
// compared as YYYYMM numbers.
func rangesSQL(col string, ivs []interval, months bool) (string, []any) {
	var terms []string
	var args []any
	for _, iv := range ivs {
		var c []string
		if iv.from > openFrom {
			if months {
				c, args = append(c, col+" >= ?"), append(args, yyyymm(iv.from))
			} else {
				c, args = append(c, col+" >= toDateTime(?)"), append(args, iv.from)
			}
		}
		if iv.to < openTo {
			if months {
				c, args = append(c, col+" < ?"), append(args, yyyymm(iv.to))
			} else {
				c, args = append(c, col+" < toDateTime(?)"), append(args, iv.to)
			}
		}
		if len(c) == 0 {
			return "", nil // one interval is everything
		}
		terms = append(terms, strings.Join(c, " AND "))
	}
	if len(terms) == 1 {
		return terms[0], args
	}
	return "((" + strings.Join(terms, ") OR (") + "))", args
}

// customersSQL returns the condition on the customers (none: all).
func customerFilterSQL(customers []string) (string, []any) {
	switch len(customers) {
	case 0:
		return "", nil
	case 1:
		return "customer_id = ?", []any{customers[0]}
	}
	args := make([]any, len(customers))
	for i, c := range customers {
		args[i] = c
	}
	return "customer_id IN (" + placeholders(len(customers)) + ")", args
}

// partSQL returns the SELECT of one plan part: bucket (if any), dims,
// quantity, events and (if asked) last_ingested, one row per rollup row or,
// for the raw events, per group.
func partSQL(spec readSpec, p planPart) (string, []any) {
	tbl := tierTables[p.tier]
	var sel []string
	if spec.bucket != "" {
		sel = append(sel, bucketSQL(p.tier, spec.bucket)+" AS bucket")
	}
	sel = append(sel, spec.dims...)
	if p.tier == tierRaw {
		sel = append(sel, "sum(quantity) AS quantity", "count() AS events")
		if spec.last {
			sel = append(sel, "max(ingested_at) AS last_ingested")
		}
	} else {
		sel = append(sel, "quantity", "events")
		if spec.last {
			sel = append(sel, "last_ingested")
		}
	}
	var where []string
	var args []any
	and := func(cond string, a []any) {
		if cond != "" {
			where = append(where, cond)
			args = append(args, a...)
		}
	}
	and(rangesSQL(tbl.ingest, p.ingest, false))
	if p.tier != tierRaw {
		// The rows of one recorded seal per window: the least seal id.
		cond, a := rangesSQL("ingest_start", p.ingest, false)
		if cond != "" {
			cond = " AND " + cond
		}
		and(fmt.Sprintf("seal_id IN (SELECT min(seal_id) FROM usage_seals WHERE tier = %d%s GROUP BY ingest_start)", p.tier, cond), a)
	}
	and(rangesSQL(tbl.event, p.event, p.tier == tierMonth))
	and(customerFilterSQL(spec.customers))
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + tbl.name
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	if p.tier == tierRaw {
		q += " GROUP BY " + strings.Join(groupColumns(spec), ", ")
	}
	return q, args
}

// groupColumns returns the bucket (if any) and the dims.
func groupColumns(spec readSpec) []string {
	if spec.bucket == "" {
		return spec.dims
	}
	return append([]string{"bucket"}, spec.dims...)
}

// readSQL returns the one query of a planned read: the parts' rows summed
// per bucket and dims. Columns: bucket (UInt32: Unix seconds, or YYYYMM for
// months) if the spec has buckets, the dims, quantity, events, and
// last_ingested if asked. An empty plan has no query ("").
func readSQL(spec readSpec, parts []planPart) (string, []any) {
	if len(parts) == 0 {
		return "", nil
	}
	group := groupColumns(spec)
	sel := append(append([]string(nil), group...), "sum(quantity) AS quantity", "sum(events) AS events")
	if spec.last {
		sel = append(sel, "max(last_ingested) AS last_ingested")
	}
	subs := make([]string, len(parts))
	var args []any
	for i, p := range parts {
		q, a := partSQL(spec, p)
		subs[i], args = q, append(args, a...)
	}
	q := "SELECT " + strings.Join(sel, ", ") + " FROM (" + strings.Join(subs, " UNION ALL ") + ") GROUP BY " + strings.Join(group, ", ")
	if spec.order {
		q += " ORDER BY " + strings.Join(group, ", ")
	}
	return q, args
}
