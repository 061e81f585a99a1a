package httpapi

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"postage/metering"
)

// randomUsageRows returns n rows with strings that need every kind of
// escaping encoding/json does (quotes, HTML, controls, non-ASCII, invalid
// UTF-8, U+2028) as well as plain ones, and empty ones (omitted).
func randomUsageRows(r *rand.Rand, n int) []metering.UsageRow {
	strs := []string{"", "GB", "marketing", "acme-1", `a"b`, `back\slash`, "<script>", "a&b", "tab\there", "nul\x00", "é", "日本", "bad\xffutf8", "line\u2028sep", "~", " "}
	pick := func() string { return strs[r.IntN(len(strs))] }
	rows := make([]metering.UsageRow, n)
	for i := range rows {
		rows[i] = metering.UsageRow{
			Start:      time.Unix(r.Int64N(4e9), 0).UTC().Truncate(time.Hour),
			CustomerID: pick(), Country: pick(), Category: pick(),
			Quantity: r.Uint64(), Events: r.Uint64() >> uint(r.IntN(64)),
		}
	}
	return rows
}

func TestUsageRowsJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 200 {
		rows := randomUsageRows(r, n%7)
		for _, v := range []any{
			UsageResponse{CustomerID: "acme-1", From: time.Unix(0, 0).UTC(), To: time.Unix(3600, 0).UTC(), Window: metering.Day, GroupBy: []metering.Dimension{metering.ByCountry}, Data: rows},
			SummaryResponse{Period: "2026-11", GroupBy: []metering.Dimension{}, Data: rows},
		} {
			want, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			var empty any
			switch x := v.(type) {
			case UsageResponse:
				x.Data = []metering.UsageRow{}
				empty = x
			case SummaryResponse:
				x.Data = []metering.UsageRow{}
				empty = x
			}
			got, err := usageJSON(empty, rows)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("usageJSON(%d rows):\n%s\nwant (encoding/json):\n%s", len(rows), got, want)
			}
		}
	}
}

// BenchmarkUsageRowsJSON compares encoding/json (the baseline) with
// appendUsageRows on the answer of a large customer's month: 30 days × 250
// countries × 2 categories.
func BenchmarkUsageRowsJSON(b *testing.B) {
	var rows []metering.UsageRow
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for d := range 30 {
		for c := range 250 {
			for _, cat := range []string{"marketing", "utility"} {
				rows = append(rows, metering.UsageRow{Start: day.AddDate(0, 0, d), Country: string([]byte{'A' + byte(c%26), 'A' + byte(c/26)}), Category: cat, Quantity: uint64(d*c + 1), Events: uint64(d*c + 1)})
			}
		}
	}
	resp := UsageResponse{CustomerID: "acme-1", Window: metering.Day, GroupBy: []metering.Dimension{metering.ByCountry, metering.ByCategory}}
	b.Run("encoding_json", func(b *testing.B) {
		resp.Data = rows
		for b.Loop() {
			if _, err := json.Marshal(resp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("appendUsageRows", func(b *testing.B) {
		resp.Data = []metering.UsageRow{}
		for b.Loop() {
			if _, err := usageJSON(resp, rows); err != nil {
				b.Fatal(err)
			}
		}
	})
}
