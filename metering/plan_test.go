package metering

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// u returns the Unix seconds of an RFC 3339 time.
func u(t testing.TB, v string) int64 {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, v)
	if err != nil {
		t.Fatal(err)
	}
	return tm.Unix()
}

// fmtIntervals prints intervals as RFC 3339 pairs ("-inf"/"+inf" for open
// ends).
func fmtIntervals(ivs []interval) string {
	var s []string
	f := func(x int64) string {
		switch x {
		case openFrom:
			return "-inf"
		case openTo:
			return "+inf"
		}
		return time.Unix(x, 0).UTC().Format(time.RFC3339)
	}
	for _, iv := range ivs {
		s = append(s, "["+f(iv.from)+" "+f(iv.to)+")")
	}
	return strings.Join(s, " ")
}

func TestEventClasses(t *testing.T) {
	from, to := u(t, "2026-10-15T10:00:00Z"), u(t, "2026-12-03T05:00:00Z")
	tests := []struct {
		bucket           Window
		month, day, hour string
	}{
		{Month, "[2026-11-01T00:00:00Z 2026-12-01T00:00:00Z)",
			"[2026-10-16T00:00:00Z 2026-11-01T00:00:00Z) [2026-12-01T00:00:00Z 2026-12-03T00:00:00Z)",
			"[2026-10-15T10:00:00Z 2026-10-16T00:00:00Z) [2026-12-03T00:00:00Z 2026-12-03T05:00:00Z)"},
		{"", "[2026-11-01T00:00:00Z 2026-12-01T00:00:00Z)",
			"[2026-10-16T00:00:00Z 2026-11-01T00:00:00Z) [2026-12-01T00:00:00Z 2026-12-03T00:00:00Z)",
			"[2026-10-15T10:00:00Z 2026-10-16T00:00:00Z) [2026-12-03T00:00:00Z 2026-12-03T05:00:00Z)"},
		{Day, "", "[2026-10-16T00:00:00Z 2026-12-03T00:00:00Z)",
			"[2026-10-15T10:00:00Z 2026-10-16T00:00:00Z) [2026-12-03T00:00:00Z 2026-12-03T05:00:00Z)"},
		{Hour, "", "", "[2026-10-15T10:00:00Z 2026-12-03T05:00:00Z)"},
	}
	for _, tt := range tests {
		c := eventClasses(from, to, tt.bucket)
		got := []string{fmtIntervals(c[tierMonth]), fmtIntervals(c[tierDay]), fmtIntervals(c[tierHour])}
		want := []string{tt.month, tt.day, tt.hour}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q:\n got %q\nwant %q", tt.bucket, got, want)
		}
	}
	// Inside one day: hours only, whatever the buckets.
	c := eventClasses(u(t, "2026-10-15T10:00:00Z"), u(t, "2026-10-15T12:00:00Z"), Month)
	if len(c[tierMonth])+len(c[tierDay]) != 0 || fmtIntervals(c[tierHour]) != "[2026-10-15T10:00:00Z 2026-10-15T12:00:00Z)" {
		t.Errorf("inside a day: %v", c)
	}
}

// testCatalog seals October 2026 at every tier, the days and hours of
// November up to 2 Nov 05:00 (days: 1 Nov), each hour holding events of
// its own hour except 1 Nov 10:00, which also holds a late event of 20
// Oct, and 1 Nov 03:00, which is empty.
func testCatalog(t testing.TB) *sealCatalog {
	t.Helper()
	c := newSealCatalog()
	late := u(t, "2026-10-20T12:00:00Z")
	for h := u(t, "2026-10-01T00:00:00Z"); h < u(t, "2026-11-02T05:00:00Z"); h += 3600 {
		s := sealSpan{h, h + 3599, 10}
		if h == u(t, "2026-11-01T10:00:00Z") {
			s.first = late
		}
		if h == u(t, "2026-11-01T03:00:00Z") {
			s = sealSpan{}
		}
		c.add(tierHour, h, s)
	}
	for d := u(t, "2026-10-01T00:00:00Z"); d < u(t, "2026-11-02T00:00:00Z"); d += 86400 {
		s, ok := c.children(tierDay, d)
		if !ok {
			t.Fatal("hours missing")
		}
		c.add(tierDay, d, s)
	}
	s, _ := c.children(tierMonth, u(t, "2026-10-01T00:00:00Z"))
	c.add(tierMonth, u(t, "2026-10-01T00:00:00Z"), s)
	return c
}

func fmtPlan(parts []planPart) []string {
	var out []string
	for _, p := range parts {
		out = append(out, fmt.Sprintf("%s ingest %s event %s", p.tier, fmtIntervals(p.ingest), fmtIntervals(p.event)))
	}
	return out
}

func TestPlanRead(t *testing.T) {
	c := testCatalog(t)
	oct, nov := u(t, "2026-10-01T00:00:00Z"), u(t, "2026-11-01T00:00:00Z")
	tests := []struct {
		name string
		spec readSpec
		want []string
	}{
		{"October, no cut-off: tier 3, the late day from tier 2, the tail raw",
			readSpec{eventFrom: oct, eventTo: nov, ingestFrom: openFrom, ingestTo: openTo},
			[]string{
				"month ingest [2026-10-01T00:00:00Z 2026-11-01T00:00:00Z) event [2026-10-01T00:00:00Z 2026-11-01T00:00:00Z)",
				"day ingest [2026-11-01T00:00:00Z 2026-11-02T00:00:00Z) event [2026-10-01T00:00:00Z 2026-11-01T00:00:00Z)",
				"raw ingest [-inf 2026-10-01T00:00:00Z) [2026-11-02T05:00:00Z +inf) event [2026-10-01T00:00:00Z 2026-11-01T00:00:00Z)",
			}},
		{"October, cut-off inside 1 Nov 10:00: the hours before it hold nothing of October, the cut hour raw",
			readSpec{eventFrom: oct, eventTo: nov, ingestFrom: openFrom, ingestTo: u(t, "2026-11-01T10:30:00Z") + 1},
			[]string{
				"month ingest [2026-10-01T00:00:00Z 2026-11-01T00:00:00Z) event [2026-10-01T00:00:00Z 2026-11-01T00:00:00Z)",
				"raw ingest [-inf 2026-10-01T00:00:00Z) [2026-11-01T10:00:00Z 2026-11-01T10:30:01Z) event [2026-10-01T00:00:00Z 2026-11-01T00:00:00Z)",
			}},
		{"late events of October ingested in (1 Nov 09:59:59, 2 Nov 04:00:00]",
			readSpec{eventFrom: oct, eventTo: nov, ingestFrom: u(t, "2026-11-01T10:00:00Z"), ingestTo: u(t, "2026-11-02T04:00:00Z") + 1, last: true},
			[]string{
				"hour ingest [2026-11-01T10:00:00Z 2026-11-01T11:00:00Z) event [2026-10-01T00:00:00Z 2026-11-01T00:00:00Z)",
				"raw ingest [2026-11-02T04:00:00Z 2026-11-02T04:00:01Z) event [2026-10-01T00:00:00Z 2026-11-01T00:00:00Z)",
			}},
		{"hourly buckets of 1 Nov 02:00-06:00: tier 1 (the empty hour read between two others, up to the hour holding the late event, whose span covers the range), nothing raw but the ends",
			readSpec{eventFrom: u(t, "2026-11-01T02:00:00Z"), eventTo: u(t, "2026-11-01T06:00:00Z"), ingestFrom: openFrom, ingestTo: openTo, bucket: Hour},
			[]string{
				"hour ingest [2026-11-01T02:00:00Z 2026-11-01T11:00:00Z) event [2026-11-01T02:00:00Z 2026-11-01T06:00:00Z)",
				"raw ingest [-inf 2026-10-01T00:00:00Z) [2026-11-02T05:00:00Z +inf) event [2026-11-01T02:00:00Z 2026-11-01T06:00:00Z)",
			}},
		{"daily buckets of 31 Oct 12:00 – 2 Nov 00:00: the whole day from tier 2, the half day from tier 1",
			readSpec{eventFrom: u(t, "2026-10-31T12:00:00Z"), eventTo: u(t, "2026-11-02T00:00:00Z"), ingestFrom: openFrom, ingestTo: openTo, bucket: Day},
			[]string{
				"day ingest [2026-11-01T00:00:00Z 2026-11-02T00:00:00Z) event [2026-11-01T00:00:00Z 2026-11-02T00:00:00Z)",
				"hour ingest [2026-10-31T12:00:00Z 2026-11-01T11:00:00Z) event [2026-10-31T12:00:00Z 2026-11-01T00:00:00Z)",
				"raw ingest [-inf 2026-10-01T00:00:00Z) [2026-11-02T05:00:00Z +inf) event [2026-10-31T12:00:00Z 2026-11-02T00:00:00Z)",
			}},
	}
	for _, tt := range tests {
		got := fmtPlan(planRead(tt.spec, c))
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
	// Without seals, everything is raw.
	got := fmtPlan(planRead(readSpec{eventFrom: oct, eventTo: nov, ingestFrom: openFrom, ingestTo: openTo, bucket: Day}, nil))
	want := []string{"raw ingest [-inf +inf) event [2026-10-01T00:00:00Z 2026-11-01T00:00:00Z)"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("no catalogue:\n got %q\nwant %q", got, want)
	}
}

func TestReadSQL(t *testing.T) {
	oct, nov := u(t, "2026-10-01T00:00:00Z"), u(t, "2026-11-01T00:00:00Z")
	spec := readSpec{eventFrom: oct, eventTo: nov, ingestFrom: openFrom, ingestTo: openTo, bucket: Day, dims: []string{"country"}, customers: []string{"c1"}, order: true}
	parts := []planPart{
		{tier: tierDay, ingest: []interval{{oct, nov}}, event: []interval{{oct, nov}}},
		{tier: tierRaw, ingest: []interval{{openFrom, oct}, {nov, openTo}}, event: []interval{{oct, nov}}},
	}
	q, args := readSQL(spec, parts)
	want := "SELECT bucket, country, sum(quantity) AS quantity, sum(events) AS events FROM (" +
		"SELECT toUInt32(event_day) AS bucket, country, quantity, events FROM usage_daily" +
		" WHERE ingest_day >= toDateTime(?) AND ingest_day < toDateTime(?)" +
		" AND seal_id IN (SELECT min(seal_id) FROM usage_seals WHERE tier = 2 AND ingest_start >= toDateTime(?) AND ingest_start < toDateTime(?) GROUP BY ingest_start)" +
		" AND event_day >= toDateTime(?) AND event_day < toDateTime(?) AND customer_id = ?" +
		" UNION ALL SELECT toUInt32(intDiv(toUInt32(time), 86400) * 86400) AS bucket, country, sum(quantity) AS quantity, count() AS events FROM events" +
		" WHERE ((ingested_at < toDateTime(?)) OR (ingested_at >= toDateTime(?))) AND time >= toDateTime(?) AND time < toDateTime(?) AND customer_id = ?" +
		" GROUP BY bucket, country) GROUP BY bucket, country ORDER BY bucket, country"
	wantArgs := []any{oct, nov, oct, nov, oct, nov, "c1", oct, nov, oct, nov, "c1"}
	if q != want || !reflect.DeepEqual(args, wantArgs) {
		t.Errorf("got  %s\n%v\nwant %s\n%v", q, args, want, wantArgs)
	}

	// Tier 3 compares months as YYYYMM; the latest stamp when asked.
	spec = readSpec{eventFrom: oct, eventTo: nov, dims: []string{"customer_id"}, customers: []string{"a", "b"}, last: true}
	q, args = readSQL(spec, []planPart{{tier: tierMonth, ingest: []interval{{oct, nov}}, event: []interval{{oct, nov}}}})
	want = "SELECT customer_id, sum(quantity) AS quantity, sum(events) AS events, max(last_ingested) AS last_ingested FROM (" +
		"SELECT customer_id, quantity, events, last_ingested FROM usage_monthly" +
		" WHERE ingest_month >= toDateTime(?) AND ingest_month < toDateTime(?)" +
		" AND seal_id IN (SELECT min(seal_id) FROM usage_seals WHERE tier = 3 AND ingest_start >= toDateTime(?) AND ingest_start < toDateTime(?) GROUP BY ingest_start)" +
		" AND event_month >= ? AND event_month < ? AND customer_id IN (?, ?)) GROUP BY customer_id"
	wantArgs = []any{oct, nov, oct, nov, int64(202610), int64(202611), "a", "b"}
	if q != want || !reflect.DeepEqual(args, wantArgs) {
		t.Errorf("got  %s\n%v\nwant %s\n%v", q, args, want, wantArgs)
	}
	if q, _ := readSQL(spec, nil); q != "" {
		t.Errorf("empty plan: %q", q)
	}
}

func TestBucketSQL(t *testing.T) {
	tests := []struct {
		t    tier
		w    Window
		want string
	}{
		{tierRaw, Hour, "toUInt32(intDiv(toUInt32(time), 3600) * 3600)"},
		{tierHour, Hour, "toUInt32(event_hour)"},
		{tierHour, Day, "toUInt32(intDiv(toUInt32(event_hour), 86400) * 86400)"},
		{tierDay, Day, "toUInt32(event_day)"},
		{tierDay, Month, "toYYYYMM(event_day)"},
		{tierMonth, Month, "event_month"},
		{tierRaw, Month, "toYYYYMM(time)"},
	}
	for _, tt := range tests {
		if got := bucketSQL(tt.t, tt.w); got != tt.want {
			t.Errorf("bucketSQL(%s, %s) = %s, want %s", tt.t, tt.w, got, tt.want)
		}
	}
}

func TestTierWindows(t *testing.T) {
	at := u(t, "2026-02-14T13:45:10Z")
	tests := []struct {
		t           tier
		start, next string
	}{
		{tierHour, "2026-02-14T13:00:00Z", "2026-02-14T14:00:00Z"},
		{tierDay, "2026-02-14T00:00:00Z", "2026-02-15T00:00:00Z"},
		{tierMonth, "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"},
	}
	for _, tt := range tests {
		s := tt.t.start(at)
		if s != u(t, tt.start) || tt.t.next(s) != u(t, tt.next) || tt.t.ceil(at) != u(t, tt.next) || tt.t.ceil(s) != s {
			t.Errorf("%s: start %d next %d", tt.t, s, tt.t.next(s))
		}
	}
	if tierHour.start(-1) != -3600 {
		t.Errorf("before 1970: %d", tierHour.start(-1))
	}
}

func TestInsertStamp(t *testing.T) {
	tests := []struct {
		id   string
		want int64
		ok   bool
	}{
		{"postage-ingest-1764000000-9f3a", 1764000000, true},
		{"postage-ingest-1764000000", 1764000000, true},
		{"postage-ingest-x-1", 0, false},
		{"something-else", 0, false},
	}
	for _, tt := range tests {
		got, ok := insertStamp(tt.id)
		if got != tt.want || ok != tt.ok {
			t.Errorf("insertStamp(%q) = %d, %v; want %d, %v", tt.id, got, ok, tt.want, tt.ok)
		}
	}
}

func TestSealSQL(t *testing.T) {
	ch := interval{u(t, "2026-10-01T00:00:00Z"), u(t, "2026-10-02T00:00:00Z")}
	q, args := sealHoursSQL(ch, 100, piece{0, 1})
	want := "INSERT INTO usage_hourly (ingest_hour, seal_id, event_hour, customer_id, country, category, pricing_type, pricing_model, quantity, events, last_ingested)" +
		" SELECT toUInt32(intDiv(toUInt32(ingested_at), 3600) * 3600) AS ih, toUInt64(?) + intDiv(ih - ?, 3600), toUInt32(intDiv(toUInt32(time), 3600) * 3600) AS eh," +
		" customer_id, country, category, pricing_type, pricing_model, sum(quantity), count(), max(ingested_at)" +
		" FROM events WHERE ingested_at >= toDateTime(?) AND ingested_at < toDateTime(?)" +
		" GROUP BY ih, eh, customer_id, country, category, pricing_type, pricing_model"
	if q != want || !reflect.DeepEqual(args, []any{uint64(100), ch.from, ch.from, ch.to}) {
		t.Errorf("got %s %v", q, args)
	}
	q, _ = sealDaysSQL(ch, 7, piece{})
	if !strings.Contains(q, "FROM usage_hourly WHERE ingest_hour >= toDateTime(?) AND ingest_hour < toDateTime(?) AND seal_id IN (SELECT min(seal_id) FROM usage_seals WHERE tier = 1 AND") {
		t.Errorf("days from the recorded hours: %s", q)
	}
	q, args = sealMonthSQL(ch.from, ch.to, 7, piece{2, 3})
	if !strings.Contains(q, "FROM usage_daily WHERE ingest_day >= toDateTime(?) AND ingest_day < toDateTime(?) AND seal_id IN (SELECT min(seal_id) FROM usage_seals WHERE tier = 2 AND") ||
		!strings.Contains(q, "GROUP BY ingest_start) AND cityHash64(customer_id) % ? = ? GROUP BY em") || !reflect.DeepEqual(args[len(args)-2:], []any{uint64(3), uint64(2)}) {
		t.Errorf("months from the recorded days, piece 2 of 3: %s %v", q, args)
	}
}

func TestGroupWindows(t *testing.T) {
	tests := []struct {
		sizes []uint64
		max   uint64
		n     int
		want  []windowGroup
	}{
		{[]uint64{0, 0, 0}, 10, 24, nil},
		{[]uint64{3, 0, 4, 5, 0}, 10, 24, []windowGroup{{0, 3, 7}, {3, 2, 5}}},
		{[]uint64{3, 25, 4}, 10, 24, []windowGroup{{0, 1, 3}, {1, 1, 25}, {2, 1, 4}}},
		{[]uint64{1, 1, 1, 1, 1}, 10, 2, []windowGroup{{0, 2, 2}, {2, 2, 2}, {4, 1, 1}}},
	}
	for _, tt := range tests {
		if got := groupWindows(tt.sizes, tt.max, tt.n); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("groupWindows(%v, %d, %d) = %v, want %v", tt.sizes, tt.max, tt.n, got, tt.want)
		}
	}
}
