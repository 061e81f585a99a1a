package billing

import (
	"hash/maphash"

	"postage/pricing"
)

// usageGroups groups usage rows by customer as they stream in from a
// month's read (600,000 rows of 50,000 customers, in no order): one
// look-up per row, the rows kept in fixed chunks (one growing slice would
// be copied over and over), then a stable counting sort into one
// allocation.
//
// The look-up is a small open-addressing table over the customer ids
// stored one after another, not a map[string]: with ClickHouse busy on the
// other core, a map of 50,000 separately allocated keys missed the cache on
// nearly every row (a sixth of a run's own CPU time).
type usageGroups struct {
	seed    maphash.Seed
	slots   []int32 // group+1 per slot, 0 when free; at most half full
	keys    []byte  // the customer ids, one after another
	ends    []int   // customer k is keys[ends[k-1]:ends[k]]
	counts  []int
	rowCust []int32 // pointer-free: the collector skips it
	chunks  [][]pricing.Usage
}

const usageChunk = 8192

// group returns customer's group, adding it when new.
func (g *usageGroups) group(customer string) int32 {
	if 2*(len(g.ends)+1) > len(g.slots) {
		g.grow()
	}
	slot, k := g.find(customer)
	if k < 0 {
		k = int32(len(g.ends))
		g.keys = append(g.keys, customer...)
		g.ends = append(g.ends, len(g.keys))
		g.counts = append(g.counts, 0)
		g.slots[slot] = k + 1
	}
	return k
}

// find probes for customer: its group, or -1 and the free slot where it
// would go. The table must have a free slot.
func (g *usageGroups) find(customer string) (slot uint64, k int32) {
	mask := uint64(len(g.slots) - 1)
	for i := maphash.String(g.seed, customer) & mask; ; i = (i + 1) & mask {
		k := g.slots[i] - 1
		if k < 0 || string(g.key(k)) == customer {
			return i, k
		}
	}
}

func (g *usageGroups) key(k int32) []byte {
	start := 0
	if k > 0 {
		start = g.ends[k-1]
	}
	return g.keys[start:g.ends[k]]
}

// grow doubles the table (starting at 64K slots: a month of every
// customer has tens of thousands) and re-inserts every customer.
func (g *usageGroups) grow() {
	n := 1 << 16
	if len(g.slots) > 0 {
		n = 2 * len(g.slots)
	} else {
		g.seed = maphash.MakeSeed()
	}
	g.slots = make([]int32, n)
	mask := uint64(n - 1)
	for k := range int32(len(g.ends)) {
		i := maphash.Bytes(g.seed, g.key(k)) & mask
		for g.slots[i] != 0 {
			i = (i + 1) & mask
		}
		g.slots[i] = k + 1
	}
}

func (g *usageGroups) add(r MeteredUsage) {
	k := g.group(r.CustomerID)
	g.counts[k]++
	g.rowCust = append(g.rowCust, k)
	if n := len(g.chunks); n == 0 || len(g.chunks[n-1]) == usageChunk {
		g.chunks = append(g.chunks, make([]pricing.Usage, 0, usageChunk))
	}
	last := &g.chunks[len(g.chunks)-1]
	*last = append(*last, r.Rateable())
}

// customerUsage is one customer's rows of a month.
type customerUsage struct {
	id    string
	usage []pricing.Usage
}

// byCustomer returns each customer's rows, customers in the order they
// first appeared and rows in the order they were added.
func (g *usageGroups) byCustomer() []customerUsage {
	start := make([]int, len(g.counts)+1)
	for k, n := range g.counts {
		start[k+1] = start[k] + n
	}
	pos := append([]int(nil), start[:len(g.counts)]...) // each customer's next free slot
	all := make([]pricing.Usage, len(g.rowCust))
	i := 0
	for _, chunk := range g.chunks {
		for _, u := range chunk {
			k := g.rowCust[i]
			all[pos[k]] = u
			pos[k]++
			i++
		}
	}
	ids := string(g.keys) // one allocation for every id
	out := make([]customerUsage, len(g.ends))
	from := 0
	for k, end := range g.ends {
		out[k] = customerUsage{id: ids[from:end], usage: all[start[k]:start[k+1]:start[k+1]]}
		from = end
	}
	return out
}

// has reports whether customer has rows.
func (g *usageGroups) has(customer string) bool {
	if len(g.slots) == 0 {
		return false
	}
	_, k := g.find(customer)
	return k >= 0
}

// groupUsage returns each customer's rows (see usageGroups).
func groupUsage(rows []MeteredUsage) map[string][]pricing.Usage {
	var g usageGroups
	for _, r := range rows {
		g.add(r)
	}
	out := map[string][]pricing.Usage{}
	for _, c := range g.byCustomer() {
		out[c.id] = c.usage
	}
	return out
}
