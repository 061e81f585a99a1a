package metering

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultSealDelay is how long after an ingest window ends the sealer waits
// before sealing it: longer than the ingester's flush timeout (30 s: an
// insert stamped inside the window has landed or failed by then) plus the
// clock skew allowed between the processes that ingest and the one that
// seals (90 s).
const DefaultSealDelay = 2 * time.Minute

// SealerConfig configures a Sealer; zero fields take their defaults.
type SealerConfig struct {
	// Delay is how long after a window ends it may be sealed
	// (DefaultSealDelay). It must exceed the ingester's flush timeout plus
	// the clock skew between processes.
	Delay time.Duration
	// Interval is the pause between passes when there is nothing left to
	// seal (1 minute; each pass waits a random tenth more, so replicas
	// started together do not seal the same windows at the same moment).
	Interval time.Duration
	// ChunkHours is how many consecutive ingest hours one rollup insert
	// may cover when catching up (24), and ChunkEvents how many events
	// (10,000,000): a chunk is split before either is exceeded (an hour
	// is never split), so one insert's GROUP BY stays a bounded size.
	ChunkHours  int
	ChunkEvents uint64
	// PassHours bounds the hours sealed by one pass (24 × 7), so a pass
	// after a long stop (or the first one over a filled table) takes
	// bounded time and days and months get sealed as it goes.
	PassHours int
	Now       func() time.Time
	Log       *slog.Logger
}

// Sealer seals ingest windows into the rollups (docs/METERING.md, "Usage
// queries"). It runs in every serving process: several processes sealing
// the same window is safe (the reads take one recorded seal per window),
// only wasted work.
type Sealer struct {
	store *CHStore
	cfg   SealerConfig
	mu    sync.Mutex // one pass at a time
	// crash, when set (tests), is called after a rollup insert and before
	// its seals are recorded; an error stops the pass there, as a crash
	// would: the rows stay, unrecorded.
	crash func(t tier, from, to int64) error
}

// SealResult counts what one pass sealed.
type SealResult struct {
	Hours, Days, Months int
	// More is set when the pass stopped at its bound with more to seal.
	More bool
}

// NewSealer returns a sealer of store's rollups; store's reads see what it
// seals at once.
func NewSealer(store *CHStore, cfg SealerConfig) *Sealer {
	if cfg.Delay <= 0 {
		cfg.Delay = DefaultSealDelay
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.ChunkHours <= 0 {
		cfg.ChunkHours = 24
	}
	if cfg.ChunkEvents <= 0 {
		cfg.ChunkEvents = 10_000_000
	}
	if cfg.PassHours <= 0 {
		cfg.PassHours = 24 * 7
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Sealer{store: store, cfg: cfg}
}

// Run seals until ctx ends: a pass, then the next one at once if the last
// stopped at its bound, or after Interval.
func (s *Sealer) Run(ctx context.Context) {
	for {
		res, err := s.SealOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := s.cfg.Interval + rand.N(s.cfg.Interval/10+1)
		switch {
		case err != nil:
			s.cfg.Log.Error("sealing usage rollups failed; reads stay exact and read more raw events until it works", "err", err)
		case res.More:
			wait = 0
		}
		if res.Hours+res.Days+res.Months > 0 {
			s.cfg.Log.Debug("sealed usage rollups", "hours", res.Hours, "days", res.Days, "months", res.Months, "more", res.More)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// SealOnce seals what can be sealed now, oldest first: ingest hours that
// ended at least Delay ago and hold no insert still running, then every
// day whose hours are all sealed, then every month whose days are.
func (s *Sealer) SealOnce(ctx context.Context) (SealResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var res SealResult
	if err := s.store.settle(ctx); err != nil {
		return res, fmt.Errorf("seal usage: %w", err)
	}
	if err := s.store.refreshCatalog(ctx, true); err != nil {
		return res, err
	}
	origin, ok, err := s.origin(ctx)
	if err != nil || !ok {
		return res, err
	}
	limit, err := s.sealableUntil(ctx)
	if err != nil {
		return res, err
	}
	if res.Hours, res.More, err = s.sealHours(ctx, origin, limit); err != nil {
		return res, err
	}
	if res.Days, err = s.sealDays(ctx, origin); err != nil {
		return res, err
	}
	res.Months, err = s.sealMonths(ctx, origin)
	return res, err
}

// origin returns where sealing starts: the month of the first sealed hour,
// or of the first stored event when nothing is sealed yet, moved back if
// events stamped before it exist (so months start complete and a month's
// days can all be sealed). ok is false when there is no event yet.
func (s *Sealer) origin(ctx context.Context) (int64, bool, error) {
	c := s.store.cat
	c.mu.RLock()
	first := int64(0)
	if st := c.starts[tierHour]; len(st) > 0 {
		first = st[0]
	}
	c.mu.RUnlock()
	q, args := firstIngestSQL(first)
	var n uint64
	var min uint32
	if err := s.store.conn.QueryRow(ctx, q, args...).Scan(&n, &min); err != nil {
		return 0, false, fmt.Errorf("seal usage: find the first event: %w", err)
	}
	switch {
	case n > 0:
		return tierMonth.start(int64(min)), true, nil
	case first != 0:
		return tierMonth.start(first), true, nil
	}
	return 0, false, nil
}

// firstIngestSQL counts the events stamped before the first sealed hour
// (before, or all when 0) and the earliest stamp among them.
func firstIngestSQL(before int64) (string, []any) {
	if before == 0 {
		return "SELECT count(), min(toUInt32(ingested_at)) FROM events", nil
	}
	return "SELECT count(), min(toUInt32(ingested_at)) FROM events WHERE ingested_at < toDateTime(?)", []any{before}
}

// sealableUntil returns the end of the last ingest hour that may be sealed
// now: it ended at least Delay ago, and no running insert carries a stamp
// before its end.
func (s *Sealer) sealableUntil(ctx context.Context) (int64, error) {
	limit := tierHour.start(s.cfg.Now().Add(-s.cfg.Delay).Unix())
	running, err := s.store.RunningInserts(ctx, InsertQueryPrefix)
	if err != nil {
		return 0, fmt.Errorf("seal usage: %w", err)
	}
	for _, id := range running {
		if stamp, ok := insertStamp(id); ok {
			limit = min(limit, tierHour.start(stamp))
		}
	}
	return limit, nil
}

// insertStamp returns the stamp of an insert's id (InsertQueryPrefix, the
// stamp in Unix seconds, "-" and random hex: insertQueryID).
func insertStamp(queryID string) (int64, bool) {
	rest, ok := strings.CutPrefix(queryID, InsertQueryPrefix)
	if !ok {
		return 0, false
	}
	stamp, _, _ := strings.Cut(rest, "-")
	n, err := strconv.ParseInt(stamp, 10, 64)
	return n, err == nil
}

// sealHours seals the unsealed hours of [origin, limit), in chunks of
// consecutive hours, at most PassHours.
func (s *Sealer) sealHours(ctx context.Context, origin, limit int64) (n int, more bool, err error) {
	c := s.store.cat
	var chunks []interval
	c.mu.RLock()
	for h := origin; h < limit; h += 3600 {
		if c.sealed(tierHour, h) {
			continue
		}
		if n == s.cfg.PassHours {
			more = true
			break
		}
		n++
		if k := len(chunks); k > 0 && chunks[k-1].to == h && chunks[k-1].to-chunks[k-1].from < int64(s.cfg.ChunkHours)*3600 {
			chunks[k-1].to += 3600
		} else {
			chunks = append(chunks, interval{h, h + 3600})
		}
	}
	c.mu.RUnlock()
	for i, ch := range chunks {
		if err := s.sealHourChunk(ctx, ch); err != nil {
			done := 0
			for _, d := range chunks[:i] {
				done += int((d.to - d.from) / 3600)
			}
			return done, more, err
		}
	}
	return n, more, nil
}

// sealHourChunk seals the hours of ch: it reads each hour's event span,
// inserts the non-empty hours' rollup rows (seal ids base, base+1, … by
// hour; one statement per run of hours holding at most ChunkEvents events),
// and then records a seal for every hour.
func (s *Sealer) sealHourChunk(ctx context.Context, ch interval) error {
	q, args := hourSpansSQL(ch)
	rows, err := s.store.conn.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("seal usage hours: %w", err)
	}
	spans := map[int64]sealSpan{}
	for rows.Next() {
		var h, first, last uint32
		var n uint64
		if err := rows.Scan(&h, &first, &last, &n); err != nil {
			rows.Close()
			return fmt.Errorf("seal usage hours: %w", err)
		}
		spans[int64(h)] = sealSpan{first: int64(first), last: int64(last), events: n}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("seal usage hours: %w", err)
	}
	base := newSealBase()
	var recs []sealRecord
	var sizes []uint64
	for h := ch.from; h < ch.to; h += 3600 {
		recs = append(recs, sealRecord{tier: tierHour, start: h, id: base + uint64((h-ch.from)/3600), span: spans[h]})
		sizes = append(sizes, spans[h].events)
	}
	for _, g := range groupWindows(sizes, s.cfg.ChunkEvents, len(sizes)) {
		from := ch.from + int64(g.first)*3600
		sub := interval{from, from + int64(g.n)*3600}
		if err := s.insertPieces(ctx, g.events, func(p piece) (string, []any) { return sealHoursSQL(sub, base+uint64(g.first), p) }); err != nil {
			return fmt.Errorf("seal usage hours: %w", err)
		}
	}
	if s.crash != nil {
		if err := s.crash(tierHour, ch.from, ch.to); err != nil {
			return err
		}
	}
	return s.record(ctx, recs)
}

// windowGroup is a run of consecutive windows inserted together: the
// index of the first, how many, and their events.
type windowGroup struct {
	first, n int
	events   uint64
}

// groupWindows splits consecutive windows of the given sizes (events) into
// runs of at most maxWindows holding at most maxEvents events together; a
// window above maxEvents is a run of its own. Empty runs are left out.
func groupWindows(sizes []uint64, maxEvents uint64, maxWindows int) []windowGroup {
	var out []windowGroup
	cur := windowGroup{}
	for i, n := range sizes {
		if cur.n > 0 && (cur.events+n > maxEvents || cur.n == maxWindows) {
			if cur.events > 0 {
				out = append(out, cur)
			}
			cur = windowGroup{first: i}
		}
		if cur.n == 0 {
			cur.first = i
		}
		cur.n++
		cur.events += n
	}
	if cur.events > 0 {
		out = append(out, cur)
	}
	return out
}

// piece is one of k parts of a rollup insert, by a hash of the customer
// (k = 1: all of it).
type piece struct{ i, k uint64 }

// pieceSQL is the condition selecting a piece's customers.
func pieceSQL(p piece) (string, []any) {
	if p.k <= 1 {
		return "", nil
	}
	return " AND cityHash64(customer_id) % ? = ?", []any{p.k, p.i}
}

// insertPieces runs a rollup insert of events events in as many pieces (by
// customer) as keep each at most ChunkEvents events: one GROUP BY of
// bounded size per statement, whatever the ingest rate. The pieces share
// their seal ids; the seal is recorded only after all of them, so pieces
// of a sealing that stopped half-way are never counted.
func (s *Sealer) insertPieces(ctx context.Context, events uint64, sql func(piece) (string, []any)) error {
	if events == 0 {
		return nil
	}
	k := (events + s.cfg.ChunkEvents - 1) / s.cfg.ChunkEvents
	for i := uint64(0); i < k; i++ {
		q, args := sql(piece{i, k})
		if err := s.store.conn.Exec(ctx, q, args...); err != nil {
			return err
		}
	}
	return nil
}

// newSealBase returns a random first seal id; a chunk's windows take the
// ids after it. Below 2^62, so base+i never wraps.
func newSealBase() uint64 { return rand.Uint64() >> 2 }

// hourSpansSQL returns, per non-empty ingest hour of ch, the first and last
// event time and the number of events.
func hourSpansSQL(ch interval) (string, []any) {
	return "SELECT toUInt32(intDiv(toUInt32(ingested_at), 3600) * 3600) AS h, min(toUInt32(time)), max(toUInt32(time)), count() FROM events" +
		" WHERE ingested_at >= toDateTime(?) AND ingested_at < toDateTime(?) GROUP BY h", []any{ch.from, ch.to}
}

// rollupColumns are the columns every rollup table shares after its ingest
// window, seal id and event bucket.
const rollupColumns = "customer_id, country, category, pricing_type, pricing_model, quantity, events, last_ingested"

// sealHoursSQL builds tier 1 from the raw events of the ingest hours of ch
// (the customers of piece p): per (ingest hour, event hour, dimensions)
// the sum of quantities, the count of events and the latest stamp, under
// seal id base + the hour's index in ch.
func sealHoursSQL(ch interval, base uint64, p piece) (string, []any) {
	cond, pargs := pieceSQL(p)
	return "INSERT INTO usage_hourly (ingest_hour, seal_id, event_hour, " + rollupColumns + ")" +
			" SELECT toUInt32(intDiv(toUInt32(ingested_at), 3600) * 3600) AS ih, toUInt64(?) + intDiv(ih - ?, 3600), toUInt32(intDiv(toUInt32(time), 3600) * 3600) AS eh," +
			" customer_id, country, category, pricing_type, pricing_model, sum(quantity), count(), max(ingested_at)" +
			" FROM events WHERE ingested_at >= toDateTime(?) AND ingested_at < toDateTime(?)" + cond +
			" GROUP BY ih, eh, customer_id, country, category, pricing_type, pricing_model",
		append([]any{base, ch.from, ch.from, ch.to}, pargs...)
}

// sealDaysSQL builds tier 2 for the ingest days of ch (the customers of
// piece p) from the tier 1 rows of their hours' recorded seals (the least
// id of each hour), under seal id base + the day's index in ch.
func sealDaysSQL(ch interval, base uint64, p piece) (string, []any) {
	cond, pargs := pieceSQL(p)
	return "INSERT INTO usage_daily (ingest_day, seal_id, event_day, " + rollupColumns + ")" +
			" SELECT toUInt32(intDiv(toUInt32(ingest_hour), 86400) * 86400) AS id, toUInt64(?) + intDiv(id - ?, 86400), toUInt32(intDiv(toUInt32(event_hour), 86400) * 86400) AS ed," +
			" customer_id, country, category, pricing_type, pricing_model, sum(quantity), sum(events), max(last_ingested)" +
			" FROM usage_hourly WHERE ingest_hour >= toDateTime(?) AND ingest_hour < toDateTime(?)" +
			" AND seal_id IN (SELECT min(seal_id) FROM usage_seals WHERE tier = 1 AND ingest_start >= toDateTime(?) AND ingest_start < toDateTime(?) GROUP BY ingest_start)" + cond +
			" GROUP BY id, ed, customer_id, country, category, pricing_type, pricing_model",
		append([]any{base, ch.from, ch.from, ch.to, ch.from, ch.to}, pargs...)
}

// sealMonthSQL builds tier 3 for the ingest month [from, to) (the
// customers of piece p) from the tier 2 rows of its days' recorded seals,
// under seal id id.
func sealMonthSQL(from, to int64, id uint64, p piece) (string, []any) {
	cond, pargs := pieceSQL(p)
	return "INSERT INTO usage_monthly (ingest_month, seal_id, event_month, " + rollupColumns + ")" +
			" SELECT toDateTime(?), toUInt64(?), toYYYYMM(event_day) AS em," +
			" customer_id, country, category, pricing_type, pricing_model, sum(quantity), sum(events), max(last_ingested)" +
			" FROM usage_daily WHERE ingest_day >= toDateTime(?) AND ingest_day < toDateTime(?)" +
			" AND seal_id IN (SELECT min(seal_id) FROM usage_seals WHERE tier = 2 AND ingest_start >= toDateTime(?) AND ingest_start < toDateTime(?) GROUP BY ingest_start)" + cond +
			" GROUP BY em, customer_id, country, category, pricing_type, pricing_model",
		append([]any{from, id, from, to, from, to}, pargs...)
}

// sealDays seals, in chunks of consecutive days, every unsealed day from
// origin's whose 24 hours are all sealed. A day whose hours are all empty
// is recorded without an insert.
func (s *Sealer) sealDays(ctx context.Context, origin int64) (int, error) {
	c := s.store.cat
	var days []sealRecord
	c.mu.RLock()
	for d := tierDay.start(origin); ; d += 86400 {
		if c.sealed(tierDay, d) {
			continue
		}
		span, ok := c.children(tierDay, d)
		if !ok {
			break // the sealed hours stop here (or have a gap: sealed later)
		}
		days = append(days, sealRecord{tier: tierDay, start: d, span: span})
	}
	c.mu.RUnlock()
	n := 0
	for i := 0; i < len(days); {
		j := i + 1
		for j < len(days) && days[j].start == days[j-1].start+86400 && j-i < 31 {
			j++
		}
		if err := s.sealDayChunk(ctx, days[i:j]); err != nil {
			return n, err
		}
		n += j - i
		i = j
	}
	return n, nil
}

// sealDayChunk seals consecutive days (their spans known) from tier 1,
// in runs of at most ChunkEvents events per insert, and records them.
func (s *Sealer) sealDayChunk(ctx context.Context, days []sealRecord) error {
	base := newSealBase()
	recs := make([]sealRecord, len(days))
	sizes := make([]uint64, len(days))
	for k, d := range days {
		recs[k] = sealRecord{tier: tierDay, start: d.start, id: base + uint64(k), span: d.span}
		sizes[k] = d.span.events
	}
	for _, g := range groupWindows(sizes, s.cfg.ChunkEvents, len(days)) {
		sub := interval{days[g.first].start, days[g.first].start + int64(g.n)*86400}
		if err := s.insertPieces(ctx, g.events, func(p piece) (string, []any) { return sealDaysSQL(sub, base+uint64(g.first), p) }); err != nil {
			return fmt.Errorf("seal usage days: %w", err)
		}
	}
	if s.crash != nil {
		if err := s.crash(tierDay, days[0].start, days[len(days)-1].start+86400); err != nil {
			return err
		}
	}
	return s.record(ctx, recs)
}

// sealMonths seals every unsealed month from origin's whose days are all
// sealed, one insert per month.
func (s *Sealer) sealMonths(ctx context.Context, origin int64) (int, error) {
	c := s.store.cat
	var months []sealRecord
	c.mu.RLock()
	for m := tierMonth.start(origin); ; m = tierMonth.next(m) {
		if c.sealed(tierMonth, m) {
			continue
		}
		span, ok := c.children(tierMonth, m)
		if !ok {
			break
		}
		months = append(months, sealRecord{tier: tierMonth, start: m, span: span})
	}
	c.mu.RUnlock()
	for i, m := range months {
		if err := s.sealMonth(ctx, m); err != nil {
			return i, err
		}
	}
	return len(months), nil
}

// sealMonth seals one month (its span known) from tier 2 and records it.
func (s *Sealer) sealMonth(ctx context.Context, m sealRecord) error {
	m.id = newSealBase()
	end := tierMonth.next(m.start)
	if err := s.insertPieces(ctx, m.span.events, func(p piece) (string, []any) { return sealMonthSQL(m.start, end, m.id, p) }); err != nil {
		return fmt.Errorf("seal usage months: %w", err)
	}
	if s.crash != nil {
		if err := s.crash(tierMonth, m.start, end); err != nil {
			return err
		}
	}
	return s.record(ctx, []sealRecord{m})
}

// children reports whether every window of the tier below that makes up
// the window of tier t starting at start is sealed, and their span
// together (c.mu is held).
func (c *sealCatalog) children(t tier, start int64) (sealSpan, bool) {
	below := t - 1
	var span sealSpan
	for w, end := start, t.next(start); w < end; w = below.next(w) {
		s, ok := c.spans[below][w]
		if !ok {
			return sealSpan{}, false
		}
		span = span.union(s)
	}
	return span, true
}

// sealRecord is one row of usage_seals.
type sealRecord struct {
	tier  tier
	start int64
	id    uint64
	span  sealSpan
}

// insertSealsSQL records seals; sealed_at takes the server's now().
const insertSealsSQL = "INSERT INTO usage_seals (tier, ingest_start, seal_id, first_event, last_event, events)"

// record writes recs to usage_seals (after their rows are in: only then
// do reads count them) and adds them to the catalogue.
func (s *Sealer) record(ctx context.Context, recs []sealRecord) error {
	if len(recs) == 0 {
		return nil
	}
	batch, err := s.store.conn.PrepareBatch(ctx, insertSealsSQL)
	if err != nil {
		return fmt.Errorf("record usage seals: %w", err)
	}
	defer batch.Abort()
	for _, r := range recs {
		if err := batch.Append(uint8(r.tier), time.Unix(r.start, 0).UTC(), r.id, time.Unix(r.span.first, 0).UTC(), time.Unix(r.span.last, 0).UTC(), r.span.events); err != nil {
			return fmt.Errorf("record usage seals: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("record usage seals: %w", err)
	}
	c := s.store.cat
	c.mu.Lock()
	for _, r := range recs {
		c.add(r.tier, r.start, r.span)
	}
	c.mu.Unlock()
	return nil
}
