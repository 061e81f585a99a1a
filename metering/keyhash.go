package metering

import "github.com/go-faster/city"

// keyHasher computes the fingerprint of an event's identity exactly as
// ClickHouse computes cityHash64(customer_id, id): CityHash64 v1.0.2 of
// each string combined
// with Hash128to64. The look-up sends fingerprints, 8 bytes a key, instead
// of both strings for ClickHouse to hash (TestKeyHashMatchesClickHouse
// compares the two on random strings).
type keyHasher struct{ buf []byte }

func (h *keyHasher) hash(customerID, id string) uint64 {
	h.buf = append(h.buf[:0], customerID...)
	c := city.CH64(h.buf)
	h.buf = append(h.buf[:0], id...)
	return hash128to64(c, city.CH64(h.buf))
}

// hash128to64 is CityHash's Hash128to64 of the 128-bit value (low, high),
// which ClickHouse uses to combine the hashes of cityHash64's arguments.
func hash128to64(low, high uint64) uint64 {
	const mul = 0x9ddfea08eb382d69
	a := (low ^ high) * mul
	a ^= a >> 47
	b := (high ^ a) * mul
	b ^= b >> 47
	return b * mul
}
