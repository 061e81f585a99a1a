package metering

import (
	"slices"
	"sync"
	"time"
)

// Exact rollups by ingest time (docs/METERING.md, "Usage queries").
//
// Every accepted event is one row of events, stamped with the time of the
// flush that stored it (ingested_at). Once no insert stamped inside an
// ingest window can still land, the window is sealed: its events are
// summed into a rollup table, and the seal (tier, window, seal id) is
// recorded in usage_seals only after that insert completed. Three tiers:
//
//	tier 1, usage_hourly:  per ingest hour,  event hour  × dimensions (from events)
//	tier 2, usage_daily:   per ingest day,   event day   × dimensions (from tier 1)
//	tier 3, usage_monthly: per ingest month, event month × dimensions (from tier 2)
//
// Reads take, for each ingest window, the highest tier that has sealed it
// and whose event granularity the request can use, and the raw events for
// every ingest time that no usable seal covers (the tail after the last
// sealed hour, the partial hour at a cut-off). Rollup rows count only under
// one recorded seal id per window (the least), so a crash mid-seal (rows
// without a recorded seal) and two processes sealing the same window (two
// recorded seals with equal rows) never count twice.

// tier is a rollup tier; 0 is the raw events.
type tier uint8

const (
	tierRaw   tier = 0
	tierHour  tier = 1
	tierDay   tier = 2
	tierMonth tier = 3
)

// start returns the start of the window of tier t holding u (Unix seconds).
func (t tier) start(u int64) int64 {
	switch t {
	case tierHour:
		return floorDiv(u, 3600) * 3600
	case tierDay:
		return floorDiv(u, 86400) * 86400
	case tierMonth:
		return MonthStart(time.Unix(u, 0)).Unix()
	}
	return u
}

// next returns the start of the window after the one starting at start.
func (t tier) next(start int64) int64 {
	switch t {
	case tierHour:
		return start + 3600
	case tierDay:
		return start + 86400
	case tierMonth:
		return time.Unix(start, 0).UTC().AddDate(0, 1, 0).Unix()
	}
	return start
}

// aligned reports whether u is the start of a window of tier t.
func (t tier) aligned(u int64) bool { return t.start(u) == u }

// ceil returns the first window start of tier t at or after u.
func (t tier) ceil(u int64) int64 {
	if s := t.start(u); s != u {
		return t.next(s)
	}
	return u
}

func (t tier) String() string {
	switch t {
	case tierHour:
		return "hour"
	case tierDay:
		return "day"
	case tierMonth:
		return "month"
	}
	return "raw"
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Open ends of an ingest-time range.
const (
	openFrom int64 = -1 << 62
	openTo   int64 = 1 << 62
)

// interval is a half-open range of Unix seconds [from, to).
type interval struct{ from, to int64 }

func (i interval) empty() bool { return i.to <= i.from }

// appendInterval appends iv to ivs, merging it into the last one when they
// touch (ivs is sorted and iv starts at or after the last one's start).
func appendInterval(ivs []interval, iv interval) []interval {
	if iv.empty() {
		return ivs
	}
	if n := len(ivs); n > 0 && ivs[n-1].to >= iv.from {
		ivs[n-1].to = max(ivs[n-1].to, iv.to)
		return ivs
	}
	return append(ivs, iv)
}

// sealSpan is what the catalogue knows of one sealed window: the event
// times its rows cover, [first, last] in Unix seconds, and how many events
// it holds (0: an empty window, which no read needs).
type sealSpan struct {
	first, last int64
	events      uint64
}

// overlaps reports whether the window holds events in one of ivs.
func (s sealSpan) overlaps(ivs []interval) bool {
	if s.events == 0 {
		return false
	}
	for _, iv := range ivs {
		if s.first < iv.to && s.last >= iv.from {
			return true
		}
	}
	return false
}

// union returns the span of two windows' events together.
func (s sealSpan) union(o sealSpan) sealSpan {
	switch {
	case o.events == 0:
		return s
	case s.events == 0:
		return o
	}
	return sealSpan{first: min(s.first, o.first), last: max(s.last, o.last), events: s.events + o.events}
}

// sealCatalog is the set of recorded seals one process knows, per tier:
// which windows are sealed and the event span of each. It only grows (a
// recorded seal is never withdrawn), so a stale catalogue is still right,
// only slower: a window it does not know yet is read from the tier below or
// the raw events. The sealer adds what it records; reads refresh it from
// usage_seals when it is older than CHStore's refresh interval.
type sealCatalog struct {
	mu     sync.RWMutex
	spans  [4]map[int64]sealSpan // by tier, window start → span
	starts [4][]int64            // by tier, the sealed window starts, sorted
	// loaded is set after the first full read of usage_seals; refreshed
	// is when the last read of it started, highWater the latest sealed_at
	// it returned (server clock, Unix seconds).
	loaded    bool
	refreshed time.Time
	highWater int64
}

func newSealCatalog() *sealCatalog {
	c := &sealCatalog{}
	for t := range c.spans {
		c.spans[t] = map[int64]sealSpan{}
	}
	return c
}

// add records a sealed window (the caller holds mu for writing).
func (c *sealCatalog) add(t tier, start int64, s sealSpan) {
	if old, ok := c.spans[t][start]; ok {
		// Two seals of one window hold the same events; keep the widest
		// span to be safe.
		c.spans[t][start] = sealSpan{first: min(old.first, s.first), last: max(old.last, s.last), events: max(old.events, s.events)}
		return
	}
	c.spans[t][start] = s
	st := c.starts[t]
	if n := len(st); n == 0 || st[n-1] < start {
		c.starts[t] = append(st, start)
		return
	}
	i, _ := slices.BinarySearch(st, start)
	c.starts[t] = slices.Insert(st, i, start)
}

// sealed reports whether the window of tier t starting at start is sealed
// (the caller holds mu).
func (c *sealCatalog) sealed(t tier, start int64) bool {
	_, ok := c.spans[t][start]
	return ok
}

// from returns the sealed window starts of tier t at or after u, in order
// (the caller holds mu; the slice must not be kept).
func (c *sealCatalog) from(t tier, u int64) []int64 {
	st := c.starts[t]
	i, _ := slices.BinarySearch(st, u)
	return st[i:]
}
