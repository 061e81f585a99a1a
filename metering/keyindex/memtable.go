package keyindex

import (
	"fmt"
	"math/bits"
	"slices"
	"time"
	"unsafe"
)

// memtable holds the newest entries in memory: an array of entries in
// the order they came and an open-addressing table of their positions.
// Both live outside the Go heap (one anonymous mapping, unmapped when the
// memtable has been written out), so the index's memory is a fixed amount
// that the garbage collector neither scans nor counts.
type memtable struct {
	mem     []byte
	entries []Entry  // the first n are used
	slots   []uint32 // position+1 of an entry, 0 for an empty slot; a power of two, twice the capacity
	n       int

	watermark time.Time
	created   time.Time
}

const entrySize = int(unsafe.Sizeof(Entry{}))

// newMemtable maps a memtable for capacity entries.
func newMemtable(capacity int, wm, now time.Time) (*memtable, error) {
	nslots := 1 << bits.Len(uint(2*capacity-1))
	size := capacity*entrySize + nslots*4
	mem, err := mapAnon(size)
	if err != nil {
		return nil, fmt.Errorf("map a key index memtable (%d bytes): %w", size, err)
	}
	return &memtable{
		mem:       mem,
		entries:   unsafe.Slice((*Entry)(unsafe.Pointer(&mem[0])), capacity),
		slots:     unsafe.Slice((*uint32)(unsafe.Pointer(&mem[capacity*entrySize])), nslots),
		watermark: wm,
		created:   now,
	}, nil
}

func (m *memtable) full() bool { return m.n == len(m.entries) }

// find returns the slot for fp: the one holding it, or the empty slot
// where it belongs.
func (m *memtable) find(fp Fingerprint) int {
	mask := len(m.slots) - 1
	for h := int(fp.Lo) & mask; ; h = (h + 1) & mask {
		p := m.slots[h]
		if p == 0 || m.entries[p-1].FP == fp {
			return h
		}
	}
}

func (m *memtable) get(fp Fingerprint) (Value, bool) {
	if p := m.slots[m.find(fp)]; p != 0 {
		return m.entries[p-1].Value, true
	}
	return Value{}, false
}

// put adds e, or replaces the value of its fingerprint. The memtable must
// not be full.
func (m *memtable) put(e Entry) {
	h := m.find(e.FP)
	if p := m.slots[h]; p != 0 {
		m.entries[p-1].Value = e.Value
		return
	}
	m.entries[m.n] = e
	m.n++
	m.slots[h] = uint32(m.n)
}

// sorted returns the positions of the entries in fingerprint order (perm
// is re-used as the result's storage).
func (m *memtable) sorted(perm []uint32) []uint32 {
	perm = perm[:0]
	for i := range m.n {
		perm = append(perm, uint32(i))
	}
	slices.SortFunc(perm, func(a, b uint32) int {
		x, y := m.entries[a].FP, m.entries[b].FP
		switch {
		case x.less(y):
			return -1
		case y.less(x):
			return 1
		}
		return 0
	})
	return perm
}

// free unmaps the memtable.
func (m *memtable) free() {
	if m != nil && m.mem != nil {
		unmap(m.mem)
		m.mem, m.entries, m.slots = nil, nil, nil
	}
}
