package keyindex

import (
	"fmt"
	"math"
	"math/bits"
	"unsafe"
)

// filterK is the number of bits a key sets in its block. Five is near the
// best for 5 to 10 bits per key, the range the configured memory gives at
// tens to hundreds of millions of keys.
const filterK = 5

// blockWords is the size of one filter block in 64-bit words: 512 bits,
// one cache line, so a probe is one memory access.
const blockWords = 8

// filter is a blocked Bloom filter over fingerprints. Its bits live
// outside the Go heap (an anonymous mapping), so the garbage collector
// neither scans them nor counts them in its heap goal: a 64 MiB filter
// costs 64 MiB of memory, not 128.
//
// A fingerprint is already a uniform 128-bit hash: the block comes from
// Hi, the five bit positions (9 bits each) from Lo.
type filter struct {
	mem     []byte
	words   []uint64
	nblocks uint64
}

// newFilter maps a filter of about size bytes (at least one block).
func newFilter(size int64) (*filter, error) {
	nblocks := uint64(max(size/(blockWords*8), 1))
	n := int(nblocks * blockWords * 8)
	mem, err := mapAnon(n)
	if err != nil {
		return nil, fmt.Errorf("map the key filter (%d bytes): %w", n, err)
	}
	return &filter{
		mem:     mem,
		words:   unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), n/8),
		nblocks: nblocks,
	}, nil
}

// bytes is the filter's size.
func (f *filter) bytes() int64 { return int64(len(f.mem)) }

func (f *filter) block(fp Fingerprint) []uint64 {
	b, _ := bits.Mul64(fp.Hi, f.nblocks)
	return f.words[b*blockWords : b*blockWords+blockWords : b*blockWords+blockWords]
}

func (f *filter) add(fp Fingerprint) {
	blk := f.block(fp)
	lo := fp.Lo
	for range filterK {
		bit := lo & 511
		blk[bit>>6] |= 1 << (bit & 63)
		lo >>= 9
	}
}

func (f *filter) mayContain(fp Fingerprint) bool {
	blk := f.block(fp)
	lo := fp.Lo
	for range filterK {
		bit := lo & 511
		if blk[bit>>6]&(1<<(bit&63)) == 0 {
			return false
		}
		lo >>= 9
	}
	return true
}

// reset clears every bit (the pages are given back to the system and come
// back zeroed when touched).
func (f *filter) reset() {
	if !zeroMapped(f.mem) {
		clear(f.words)
	}
}

// close unmaps the filter.
func (f *filter) close() {
	if f.mem != nil {
		unmap(f.mem)
		f.mem, f.words = nil, nil
	}
}

// falsePositiveRate estimates the chance that an absent key passes the
// filter when it holds n keys: a blocked Bloom filter's rate is the
// average over the blocks' (Poisson-distributed) loads.
func falsePositiveRate(nblocks, n uint64) float64 {
	if nblocks == 0 {
		return 1
	}
	lambda := float64(n) / float64(nblocks) // keys per block
	total, p := 0.0, math.Exp(-lambda)      // p: the chance a block holds j keys
	for j := 0; j < int(lambda*4)+64; j++ {
		if j > 0 {
			p *= lambda / float64(j)
		}
		set := 1 - math.Pow(1-1.0/(blockWords*64), float64(filterK*j))
		total += p * math.Pow(set, filterK)
	}
	return total
}
