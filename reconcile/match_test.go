package reconcile

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/shopspring/decimal"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// cell builds a test cell: postage and upstream regular volumes and costs.
func cell(customer string, day int32, market, category string, pv int64, pc string, uv int64, uc string) *Cell {
	c := &Cell{Key: Key{Customer: customer, Day: day, Market: market, Category: category}}
	c.Postage.Regular = Pool{pv, dec(pc)}
	c.Upstream.Regular = Pool{uv, dec(uc)}
	return c
}

// brief is a Difference in a form that is easy to compare.
type brief struct {
	Key       string
	Cause     Cause
	P, U      int64
	PC, UC, A string
}

func briefs(ds []Difference) []brief {
	var out []brief
	for _, d := range ds {
		out = append(out, brief{d.CustomerID + " " + d.Day + " " + d.Market + "/" + d.Category, d.Cause, d.PostageMessages, d.UpstreamMessages,
			d.PostageCost.String(), d.UpstreamCost.String(), d.Amount.String()})
	}
	return out
}

// day 20400 is 2025-11-08.
const d0 = int32(20400)

func TestAttribute(t *testing.T) {
	tests := []struct {
		name  string
		cells func() []*Cell
		want  []brief
	}{
		{"equal: nothing to explain", func() []*Cell {
			return []*Cell{cell("a", d0, "India", "marketing", 10, "0.5", 10, "0.5")}
		}, nil},
		{"the upstream billed more: not metered, at the upstream's cost", func() []*Cell {
			return []*Cell{cell("a", d0, "India", "marketing", 7, "0.35", 10, "0.5")}
		}, []brief{{"a 2025-11-08 India/marketing", CauseNotMetered, 0, 3, "0", "0.15", "-0.15"}}},
		{"an unknown phone number", func() []*Cell {
			c := cell("unknown:123", d0, "India", "marketing", 0, "0", 4, "0.2")
			c.Unmapped = true
			return []*Cell{c}
		}, []brief{{"unknown:123 2025-11-08 India/marketing", CauseUnknownPhoneNumber, 0, 4, "0", "0.2", "-0.2"}}},
		{"postage counted more: first its sent statuses, then not in the upstream's report", func() []*Cell {
			c := cell("a", d0, "India", "marketing", 15, "0.75", 10, "0.5")
			c.Postage.Sent = 3
			return []*Cell{c}
		}, []brief{
			{"a 2025-11-08 India/marketing", CauseNotDelivered, 3, 0, "0.15", "0", "0.15"},
			{"a 2025-11-08 India/marketing", CauseNotInUpstream, 2, 0, "0.1", "0", "0.1"},
		}},
		{"sent statuses beyond the difference explain only the difference", func() []*Cell {
			c := cell("a", d0, "India", "marketing", 12, "0.6", 10, "0.5")
			c.Postage.Sent = 12
			return []*Cell{c}
		}, []brief{{"a 2025-11-08 India/marketing", CauseNotDelivered, 2, 0, "0.1", "0", "0.1"}}},
		{"free on one side, regular on the other", func() []*Cell {
			c := cell("a", d0, "India", "marketing", 10, "0.5", 7, "0.35")
			c.Upstream.Free = Pool{3, decimal.Zero}
			return []*Cell{c}
		}, []brief{{"a 2025-11-08 India/marketing", CauseFreeType, 3, 3, "0.15", "0", "0.15"}}},
		{"free upstream regular postage, the other way round", func() []*Cell {
			c := cell("a", d0, "India", "utility", 2, "0.1", 4, "0.2")
			c.Postage.Free = Pool{2, decimal.Zero}
			return []*Cell{c}
		}, []brief{{"a 2025-11-08 India/utility", CauseFreeType, 2, 2, "0", "0.1", "-0.1"}}},
		{"a category mapped differently", func() []*Cell {
			return []*Cell{
				cell("a", d0, "India", "marketing", 10, "1.0", 0, "0"),
				cell("a", d0, "India", "utility", 0, "0", 10, "0.3"),
			}
		}, []brief{
			{"a 2025-11-08 India/marketing", CauseCategoryMapping, 10, 0, "1", "0", "1"},
			{"a 2025-11-08 India/utility", CauseCategoryMapping, 0, 10, "0", "0.3", "-0.3"},
		}},
		{"a category mapping, the rest not metered", func() []*Cell {
			return []*Cell{
				cell("a", d0, "India", "marketing", 4, "0.4", 0, "0"),
				cell("a", d0, "India", "utility", 0, "0", 10, "0.3"),
			}
		}, []brief{
			{"a 2025-11-08 India/marketing", CauseCategoryMapping, 4, 0, "0.4", "0", "0.4"},
			{"a 2025-11-08 India/utility", CauseCategoryMapping, 0, 4, "0", "0.12", "-0.12"},
			{"a 2025-11-08 India/utility", CauseNotMetered, 0, 6, "0", "0.18", "-0.18"},
		}},
		{"another market is not a category mapping", func() []*Cell {
			return []*Cell{
				cell("a", d0, "India", "marketing", 1, "0.1", 0, "0"),
				cell("a", d0, "Brazil", "utility", 0, "0", 1, "0.03"),
			}
		}, []brief{
			{"a 2025-11-08 Brazil/utility", CauseNotMetered, 0, 1, "0", "0.03", "-0.03"},
			{"a 2025-11-08 India/marketing", CauseNotInUpstream, 1, 0, "0.1", "0", "0.1"},
		}},
		{"adjacent days", func() []*Cell {
			return []*Cell{
				cell("a", d0, "India", "marketing", 5, "0.5", 4, "0.4"),
				cell("a", d0+1, "India", "marketing", 4, "0.4", 5, "0.5"),
			}
		}, []brief{
			{"a 2025-11-08 India/marketing", CauseDayBoundary, 1, 0, "0.1", "0", "0.1"},
			{"a 2025-11-09 India/marketing", CauseDayBoundary, 0, 1, "0", "0.1", "-0.1"},
		}},
		{"days apart are two differences", func() []*Cell {
			return []*Cell{
				cell("a", d0, "India", "marketing", 5, "0.5", 4, "0.4"),
				cell("a", d0+2, "India", "marketing", 4, "0.4", 5, "0.5"),
			}
		}, []brief{
			{"a 2025-11-08 India/marketing", CauseNotInUpstream, 1, 0, "0.1", "0", "0.1"},
			{"a 2025-11-10 India/marketing", CauseNotMetered, 0, 1, "0", "0.1", "-0.1"},
		}},
		{"other customers are never paired", func() []*Cell {
			return []*Cell{
				cell("a", d0, "India", "marketing", 1, "0.1", 0, "0"),
				cell("b", d0, "India", "utility", 0, "0", 1, "0.1"),
			}
		}, []brief{
			{"a 2025-11-08 India/marketing", CauseNotInUpstream, 1, 0, "0.1", "0", "0.1"},
			{"b 2025-11-08 India/utility", CauseNotMetered, 0, 1, "0", "0.1", "-0.1"},
		}},
		{"the same messages at another price", func() []*Cell {
			return []*Cell{cell("a", d0, "India", "marketing", 10, "0.5", 10, "0.62")}
		}, []brief{{"a 2025-11-08 India/marketing", CausePrice, 10, 10, "0.5", "0.62", "-0.12"}}},
		{"a difference in count and a price", func() []*Cell {
			return []*Cell{cell("a", d0, "India", "marketing", 10, "0.5", 12, "0.72")}
		}, []brief{
			{"a 2025-11-08 India/marketing", CauseNotMetered, 0, 2, "0", "0.12", "-0.12"},
			{"a 2025-11-08 India/marketing", CausePrice, 10, 10, "0.5", "0.6", "-0.1"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := briefs(Attribute(tt.cells()))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestAttributeDetails(t *testing.T) {
	c := cell("a", d0, "India", "marketing_lite", 3, "0", 3, "0.09")
	c.Note = "the cost card does not price marketing_lite"
	p := cell("a", d0, "India", "marketing", 10, "0.5", 10, "0.6")
	ds := Attribute([]*Cell{c, p})
	if len(ds) != 2 || ds[0].Detail != "unit cost: postage 0.05, upstream 0.06" || ds[1].Detail != c.Note {
		t.Errorf("details: %+v", ds)
	}
	m := Attribute([]*Cell{cell("a", d0, "India", "marketing", 1, "0.1", 0, "0"), cell("a", d0, "India", "utility", 0, "0", 1, "0.1")})
	if len(m) != 2 || m[0].Detail != "the upstream counts these as utility" || m[1].Detail != "postage counts these as marketing" {
		t.Errorf("mapping details: %+v", m)
	}
}

// Whatever the cells, each cell's parts add up exactly to its difference
// in messages and in money, and the same input gives the same answer.
func TestAttributeAddsUp(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	markets := []string{"India", "Brazil"}
	cats := []string{"marketing", "utility", "authentication"}
	price := func(v int64, p string) decimal.Decimal { return dec(p).Mul(decimal.NewFromInt(v)) }
	for round := 0; round < 300; round++ {
		var cells []*Cell
		seen := map[Key]bool{}
		for range 1 + rng.IntN(30) {
			k := Key{Customer: fmt.Sprint("c", rng.IntN(3)), Day: d0 + int32(rng.IntN(4)), Market: markets[rng.IntN(2)], Category: cats[rng.IntN(3)]}
			if seen[k] {
				continue
			}
			seen[k] = true
			c := &Cell{Key: k, Unmapped: rng.IntN(5) == 0}
			pv, uv := int64(rng.IntN(20)), int64(rng.IntN(20))
			c.Postage.Regular = Pool{pv, price(pv, "0.0123")}
			c.Upstream.Regular = Pool{uv, price(uv, []string{"0.0123", "0.0125", "0.00999"}[rng.IntN(3)])}
			pf, uf := int64(rng.IntN(4)), int64(rng.IntN(4))
			c.Postage.Free = Pool{pf, decimal.Zero}
			c.Upstream.Free = Pool{uf, price(uf, []string{"0", "0.001"}[rng.IntN(2)])}
			c.Postage.Sent = int64(rng.IntN(int(pv+pf) + 1))
			cells = append(cells, c)
		}
		type tot struct {
			m int64
			a decimal.Decimal
		}
		want := map[Key]tot{}
		unmapped := map[Key]bool{}
		var copies []*Cell
		for _, c := range cells {
			unmapped[c.Key] = c.Unmapped
			want[c.Key] = tot{c.Postage.volume() - c.Upstream.volume(), c.Postage.cost().Sub(c.Upstream.cost())}
			cc := *c
			copies = append(copies, &cc)
		}
		ds := Attribute(cells)
		got := map[Key]tot{}
		for _, d := range ds {
			k := Key{Customer: d.CustomerID, Market: d.Market, Category: d.Category}
			for kk := range want {
				if kk.Customer == k.Customer && kk.Market == k.Market && kk.Category == k.Category && DayTime(kk.Day).Format("2006-01-02") == d.Day {
					k = kk
				}
			}
			g := got[k]
			g.m += d.Messages
			g.a = g.a.Add(d.Amount)
			got[k] = g
			if d.Messages != d.PostageMessages-d.UpstreamMessages || !d.Amount.Equal(d.PostageCost.Sub(d.UpstreamCost)) {
				t.Fatalf("round %d: %+v does not add up", round, d)
			}
			if d.Messages == 0 && d.Amount.IsZero() {
				t.Fatalf("round %d: an empty difference %+v", round, d)
			}
			if (d.Cause == CauseUnknownPhoneNumber) != (unmapped[k] && d.Cause != CauseNotInUpstream && d.Cause != CauseNotDelivered && d.Cause != CausePrice && d.Cause != CauseFreeType && d.Cause != CauseCategoryMapping && d.Cause != CauseDayBoundary) {
				t.Fatalf("round %d: %+v on a cell unmapped=%v", round, d, unmapped[k])
			}
		}
		for k, w := range want {
			g := got[k]
			if g.m != w.m || !g.a.Equal(w.a) {
				t.Fatalf("round %d: %+v explained %d / %s, want %d / %s", round, k, g.m, g.a, w.m, w.a)
			}
		}
		if again := Attribute(copies); !reflect.DeepEqual(briefs(again), briefs(ds)) {
			t.Fatalf("round %d: not deterministic", round)
		}
	}
}
