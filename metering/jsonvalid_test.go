package metering

import (
	"encoding/json"
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
