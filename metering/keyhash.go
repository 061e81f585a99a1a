package metering

import (
	"strconv"

	"github.com/go-faster/city"

	"postage/metering/keyindex"
)

// keyHasher computes the 128-bit fingerprint that the key index keeps of
// an event's identity (customer, id), in a form ClickHouse computes too, so
// the index can be rebuilt from the events table without sending every id
// over the wire (fingerprintColumns):
//
//   - Hi is cityHash64(customer_id, id): CityHash64 v1.0.2 of each string,
//     combined with Hash128to64;
//   - Lo is cityHash64(concat(toString(length(customer_id)), ':',
//     customer_id, id)): one hash of an unambiguous encoding of the pair.
//
// Two distinct keys share a fingerprint only if both 64-bit hashes
// collide, about one chance in 2^128 per pair of keys
// (TestFingerprintMatchesClickHouse compares the two computations on
// random keys of every length class).
type keyHasher struct{ buf []byte }

// fingerprintColumns is the SQL of the two halves of the fingerprint.
const fingerprintColumns = "cityHash64(customer_id, id), cityHash64(concat(toString(length(customer_id)), ':', customer_id, id))"

func (h *keyHasher) fingerprint(customerID, id string) keyindex.Fingerprint {
	h.buf = append(h.buf[:0], customerID...)
	c := city.CH64(h.buf)
	h.buf = append(h.buf[:0], id...)
	hi := hash128to64(c, city.CH64(h.buf))
	h.buf = strconv.AppendInt(h.buf[:0], int64(len(customerID)), 10)
	h.buf = append(h.buf, ':')
	h.buf = append(h.buf, customerID...)
	h.buf = append(h.buf, id...)
	return keyindex.Fingerprint{Hi: hi, Lo: city.CH64(h.buf)}
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
