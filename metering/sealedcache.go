package metering

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"github.com/maypok86/otter/v2"
)

// The sealed-rows cache. A sealed window's rollup rows never change: a
// recorded seal is never withdrawn, no insert of its ingest window can
// still arrive, and two seals of one window hold the same sums. So what a
// plan part reads from sealed windows is a pure function of the question
// (customer, event ranges, buckets, dims) and of the windows it reads, and
// can be kept. A one-customer read (its usage screen, its month-to-date
// bill) then asks ClickHouse only for the parts it has not kept — after
// the first read, the raw tail since the last sealed hour — and adds the
// kept rows to them. The first read of a question, and the first after an
// hour or a day is sealed, costs what a read without the cache costs.
//
// On a cluster the cache is off: a replica that has not fetched a newly
// sealed part yet would answer without it, and the cache would keep that
// answer where a plain read is wrong only until the replica catches up.

// DefaultSealedCacheBytes is the memory the sealed-rows cache of a store
// may use unless configured (SetSealedCache).
const DefaultSealedCacheBytes = 64 << 20

// sealedRow is one row of a sealed plan part: its bucket (0 without
// buckets), its dims in the spec's order, and its sums.
type sealedRow struct {
	bucket           uint32
	dims             [maxDims]string
	quantity, events uint64
}

// maxDims is how many dims a read may group by (len(dimOrder)).
const maxDims = 5

// sealedCache keeps the rows of sealed plan parts of one-customer reads,
// by partKey, weighed by the memory they hold.
type sealedCache struct {
	c *otter.Cache[string, []sealedRow]
}

// newSealedCache returns a cache holding up to maxBytes of rows.
func newSealedCache(maxBytes uint64) *sealedCache {
	return &sealedCache{c: otter.Must(&otter.Options[string, []sealedRow]{
		MaximumWeight: maxBytes,
		Weigher:       sealedWeight,
	})}
}

// sealedWeight is the memory an entry holds: its key, its rows and the
// strings they point at (shared strings are counted in every row: an
// upper bound).
func sealedWeight(key string, rows []sealedRow) uint32 {
	n := uint64(len(key)) + uint64(cap(rows))*uint64(unsafe.Sizeof(sealedRow{})) + 64
	for i := range rows {
		for _, d := range rows[i].dims {
			n += uint64(len(d))
		}
	}
	return uint32(min(n, 1<<32-1))
}

// SetSealedCache sets how much memory the store's sealed-rows cache may
// use (0 turns it off). Stores of a cluster's shards (NewReplicatedCHStore)
// never cache (see the top of sealedcache.go).
func (s *CHStore) SetSealedCache(maxBytes uint64) {
	if maxBytes == 0 || s.repl != nil {
		s.sealed.Store(nil)
		return
	}
	s.sealed.Store(newSealedCache(maxBytes))
}

// cacheFor returns the sealed-rows cache if a read may use it (nil if
// not): one customer's, without last_ingested, not in raw-only mode.
func (s *CHStore) cacheFor(spec readSpec) *sealedCache {
	if len(spec.customers) != 1 || spec.last || s.rawOnly.Load() {
		return nil
	}
	return s.sealed.Load()
}

// partKey identifies what a sealed plan part reads.
func partKey(spec readSpec, p planPart) string {
	var b strings.Builder
	b.WriteString(string(spec.bucket))
	b.WriteByte('|')
	b.WriteString(strings.Join(spec.dims, ","))
	b.WriteByte('|')
	b.WriteString(strconv.Itoa(int(p.tier)))
	for _, ivs := range [][]interval{p.ingest, p.event} {
		b.WriteByte('|')
		for _, iv := range ivs {
			b.WriteString(strconv.FormatInt(iv.from, 36))
			b.WriteByte('-')
			b.WriteString(strconv.FormatInt(iv.to, 36))
			b.WriteByte(' ')
		}
	}
	b.WriteByte('|')
	b.WriteString(spec.customers[0]) // last: it may hold any byte
	return b.String()
}

// runCached runs a planned one-customer read, taking the rows of sealed
// parts it has kept from the cache, asking ClickHouse (one query) for the
// others and keeping what they return, and hands scan the sum of all parts
// per bucket and dims, ordered by them (grow, if set, first learns how many
// rows there may be).
func (s *CHStore) runCached(ctx context.Context, cache *sealedCache, spec readSpec, parts []planPart, scan func(func(dest ...any) error) error, grow func(int)) error {
	lists := make([][]sealedRow, 0, len(parts))
	keys := make([]string, len(parts))
	var ask []int
	for i, p := range parts {
		if p.tier != tierRaw {
			keys[i] = partKey(spec, p)
			if rows, ok := cache.c.GetIfPresent(keys[i]); ok {
				lists = append(lists, rows)
				continue
			}
		}
		ask = append(ask, i)
	}
	if len(ask) > 0 {
		got, err := s.readParts(ctx, spec, parts, ask)
		if err != nil {
			return err
		}
		for j, i := range ask {
			if parts[i].tier != tierRaw {
				cache.c.Set(keys[i], got[j])
			}
			lists = append(lists, got[j])
		}
	}
	if grow != nil {
		n := 0
		for _, l := range lists {
			n += len(l)
		}
		grow(n)
	}
	var row func(dest ...any) error // scans the merged row, which is reused
	return mergeSealedRows(lists, len(spec.dims), func(r *sealedRow) error {
		if row == nil {
			row = func(dest ...any) error { return r.scanInto(spec, dest) }
		}
		return scan(row)
	})
}

// readParts asks ClickHouse for the parts ask (indexes into parts) in one
// query and returns each one's rows, ordered by bucket and dims.
func (s *CHStore) readParts(ctx context.Context, spec readSpec, parts []planPart, ask []int) ([][]sealedRow, error) {
	q, args := taggedReadSQL(spec, parts, ask)
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([][]sealedRow, len(ask))
	intern := map[string]string{}
	var part uint8
	var r sealedRow
	dims := make([]internedString, len(spec.dims))
	dest := []any{&part}
	if spec.bucket != "" {
		dest = append(dest, &r.bucket)
	}
	for i := range dims {
		dims[i] = internedString{s: &r.dims[i], intern: intern}
		dest = append(dest, &dims[i])
	}
	dest = append(dest, &r.quantity, &r.events)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		if int(part) >= len(out) {
			return nil, fmt.Errorf("read parts: part %d of %d", part, len(out))
		}
		out[part] = append(out[part], r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		out[i] = out[i][:len(out[i]):len(out[i])] // appends to a kept list copy it
	}
	return out, nil
}

// taggedReadSQL returns the query of the parts ask (indexes into parts),
// each row tagged with its part's position in ask: columns part (UInt8),
// the bucket (if any), the dims, quantity and events, one row per part,
// bucket and dims, ordered by them.
func taggedReadSQL(spec readSpec, parts []planPart, ask []int) (string, []any) {
	group := append([]string{"part"}, groupColumns(spec)...)
	subs := make([]string, len(ask))
	var args []any
	for j, i := range ask {
		q, a := partSQL(spec, parts[i])
		subs[j] = "SELECT toUInt8(" + strconv.Itoa(j) + ") AS part, * FROM (" + q + ")"
		args = append(args, a...)
	}
	cols := strings.Join(group, ", ")
	return "SELECT " + cols + ", sum(quantity) AS quantity, sum(events) AS events FROM (" + strings.Join(subs, " UNION ALL ") +
		") GROUP BY " + cols + " ORDER BY " + cols, args
}

// compareSealedRows orders rows by bucket, then dims (as ClickHouse orders
// strings: by their bytes).
func compareSealedRows(a, b *sealedRow, ndims int) int {
	if c := cmp.Compare(a.bucket, b.bucket); c != 0 {
		return c
	}
	for i := range ndims {
		if c := strings.Compare(a.dims[i], b.dims[i]); c != 0 {
			return c
		}
	}
	return 0
}

// mergeSealedRows calls fn with the rows of lists, each ordered by bucket
// and dims, in that order, equal rows added up into one. The lists are not
// changed (cached lists are shared); fn's row is reused.
func mergeSealedRows(lists [][]sealedRow, ndims int, fn func(*sealedRow) error) error {
	pos := make([]int, len(lists))
	var r sealedRow
	for {
		least := -1
		for i, l := range lists {
			if pos[i] < len(l) && (least < 0 || compareSealedRows(&l[pos[i]], &r, ndims) < 0) {
				least, r = i, l[pos[i]]
			}
		}
		if least < 0 {
			return nil
		}
		pos[least]++
		for i, l := range lists {
			if i != least && pos[i] < len(l) && compareSealedRows(&l[pos[i]], &r, ndims) == 0 {
				r.quantity += l[pos[i]].quantity
				r.events += l[pos[i]].events
				pos[i]++
			}
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
}

// scanInto stores r in the destinations a caller of run passes for a read
// of spec: the bucket (*uint32, if any), the dims (*string or
// *internedString), quantity and events (*uint64).
func (r *sealedRow) scanInto(spec readSpec, dest []any) error {
	want := len(spec.dims) + 2
	if spec.bucket != "" {
		want++
	}
	if len(dest) != want {
		return fmt.Errorf("scan a kept row: %d columns into %d destinations", want, len(dest))
	}
	k := 0
	if spec.bucket != "" {
		d, ok := dest[0].(*uint32)
		if !ok {
			return fmt.Errorf("scan a kept row: bucket into %T", dest[0])
		}
		*d, k = r.bucket, 1
	}
	for i := range spec.dims {
		switch d := dest[k].(type) {
		case *string:
			*d = r.dims[i]
		case *internedString:
			*d.s = r.dims[i] // kept rows' strings are interned already
		default:
			return fmt.Errorf("scan a kept row: %s into %T", spec.dims[i], d)
		}
		k++
	}
	q, ok1 := dest[k].(*uint64)
	e, ok2 := dest[k+1].(*uint64)
	if !ok1 || !ok2 {
		return fmt.Errorf("scan a kept row: sums into %T, %T", dest[k], dest[k+1])
	}
	*q, *e = r.quantity, r.events
	return nil
}
