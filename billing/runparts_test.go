package billing

import (
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"postage/pricing"
)

func TestGroupUsage(t *testing.T) {
	rows := []MeteredUsage{{CustomerID: "b", Country: "GB", Category: "marketing", Quantity: 1}, {CustomerID: "a", Country: "DE", Category: "utility", Quantity: 2},
		{CustomerID: "b", Country: "IN", Category: "marketing", Quantity: 3}, {CustomerID: "c", Country: "US", Category: "service", Quantity: 4}, {CustomerID: "a", Country: "FR", Category: "utility", Quantity: 5}}
	got := groupUsage(rows)
	want := map[string][]pricing.Usage{
		"a": {{Country: "DE", Category: "utility", Quantity: 2}, {Country: "FR", Category: "utility", Quantity: 5}},
		"b": {{Country: "GB", Category: "marketing", Quantity: 1}, {Country: "IN", Category: "marketing", Quantity: 3}},
		"c": {{Country: "US", Category: "service", Quantity: 4}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("groupUsage = %v, want %v", got, want)
	}
	// Appending to one customer's rows must not overwrite the next's.
	got["a"] = append(got["a"], pricing.Usage{Country: "XX"})
	if got["b"][0].Country != "GB" || got["c"][0].Country != "US" {
		t.Errorf("customers' rows share capacity: %v", got)
	}
	if len(groupUsage(nil)) != 0 {
		t.Error("groupUsage(nil) is not empty")
	}
}

// Enough customers to grow the look-up table twice and enough rows to fill
// several chunks; ids of every length, including empty and shared prefixes.
func TestGroupUsageMany(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var rows []MeteredUsage
	want := map[string][]pricing.Usage{}
	for i := range 150_000 {
		c := strconv.Itoa(rng.IntN(70_000))
		switch i % 1000 {
		case 0:
			c = ""
		case 1:
			c = c + strings.Repeat("x", rng.IntN(40))
		}
		u := pricing.Usage{Country: "GB", Category: "marketing", Quantity: int64(i)}
		rows = append(rows, MeteredUsage{CustomerID: c, Country: u.Country, Category: u.Category, Quantity: u.Quantity})
		want[c] = append(want[c], u)
	}
	if got := groupUsage(rows); !reflect.DeepEqual(got, want) {
		t.Errorf("groupUsage of %d rows: %d customers, want %d", len(rows), len(got), len(want))
	}
}
