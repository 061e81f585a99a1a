package metering

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var validJSONCases = []string{
	``, ` `, `null`, ` true `, `false`, `tru`, `nul`, `truex`, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-`, `1e`, `-1.5e-07`, `2 3`,
	`""`, `"a"`, `"a`, `"\"\\\/\b\f\n\r\t"`, `"\u00e9"`, `"\u00g9"`, `"\u00"`, `"\x"`, "\"tab\there\"", "\"nl\nhere\"", "\"\x7f\"", "\"\xff\xfe\"", "\"é\"",
	`[]`, `[ ]`, `[1,]`, `[,1]`, `[1 2]`, `[1,[2,[3]]]`, `[`, `]`, `{}`, `{ }`, `{"a":1}`, `{"a" : [1, {"b": null}] }`, `{"a":1,}`, `{a:1}`, `{"a"}`, `{"a":}`,
	`{"a":1 "b":2}`, `{"a":1}}`, `[{}]`, "\t\r\n[1]\n", `[1]x`, `"\ud800"`, `{"specversion":"1.0","data":{"quantity":1e3}}`,
}

func TestValidJSONAgreesWithEncodingJSON(t *testing.T) {
	cases := append([]string{}, validJSONCases...)
	for _, d := range []int{maxJSONDepth - 1, maxJSONDepth, maxJSONDepth + 1} {
		cases = append(cases, strings.Repeat("[", d)+strings.Repeat("]", d), strings.Repeat(`{"a":`, d)+"1"+strings.Repeat("}", d))
	}
	// The committed fuzz corpus of the batch decoder: real-looking batches.
	files, _ := filepath.Glob("testdata/fuzz/FuzzDecodeBatch/*")
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			cases = append(cases, string(b))
		}
	}
	for _, c := range cases {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("validJSON(%.60q) = %v, encoding/json says %v", c, got, want)
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, c := range validJSONCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}

func BenchmarkValidJSON(b *testing.B) {
	body := benchBatchBody(1000)
	b.Run("encoding/json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			json.Valid(body)
		}
	})
	b.Run("validJSON", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			validJSON(body)
		}
	})
}

// plainPrefix agrees with a byte-by-byte check on random words, on words
// drawn from bytes at the edges of each test (several special bytes in a
// word is where a borrow could move a flag), and on every word with one
// special byte at each position among plain ones (and high bytes, which
// are plain).
func TestPlainPrefix(t *testing.T) {
	ref := func(x uint64) int {
		for i := 0; i < 8; i++ {
			c := byte(x >> (8 * i))
			if c == '"' || c == '\\' || c < 0x20 {
				return i
			}
		}
		return 8
	}
	rng := rand.New(rand.NewPCG(9, 10))
	for range 1_000_000 {
		x := rng.Uint64()
		if got, want := plainPrefix(x), ref(x); got != want {
			t.Fatalf("plainPrefix(%#016x) = %v, want %v", x, got, want)
		}
	}
	edges := []byte{0x00, 0x01, 0x1f, 0x20, 0x21, '"', '#', '[', '\\', ']', 'a', 0x7f, 0x80, 0xff}
	for range 1_000_000 {
		var x uint64
		for i := range 8 {
			x |= uint64(edges[rng.IntN(len(edges))]) << (8 * i)
		}
		if got, want := plainPrefix(x), ref(x); got != want {
			t.Fatalf("plainPrefix(%#016x) = %v, want %v", x, got, want)
		}
	}
	for _, fill := range []byte{'a', 0xff, 0x80, 0x20, 0x21, 0x23, 0x5b, 0x5d} {
		for pos := range 8 {
			for c := range 256 {
				var x uint64
				for i := range 8 {
					b := fill
					if i == pos {
						b = byte(c)
					}
					x |= uint64(b) << (8 * i)
				}
				if got, want := plainPrefix(x), ref(x); got != want {
					t.Fatalf("plainPrefix(%#016x) = %v, want %v", x, got, want)
				}
			}
		}
	}
}
