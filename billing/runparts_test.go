package billing

import (
	"math/rand/v2"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"postage/pricing"
)

func TestRaiseGCRestores(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	r1 := raiseGC(400)
	r2 := raiseGC(400)
	if got := debug.SetGCPercent(400); got != 400 {
		t.Errorf("during runs GOGC = %d, want 400", got)
	}
	r1()
	if got := debug.SetGCPercent(400); got != 400 {
		t.Errorf("with one run left GOGC = %d, want 400", got)
	}
	r2()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("after the runs GOGC = %d, want 100 back", got)
	}
	debug.SetGCPercent(800)
	raiseGC(400)()
	if got := debug.SetGCPercent(100); got != 800 {
		t.Errorf("a higher GOGC was changed to %d", got)
	}
}

func TestGroupUsage(t *testing.T) {
	rows := []UsageRow{{"b", "GB", "marketing", 1}, {"a", "DE", "utility", 2}, {"b", "IN", "marketing", 3}, {"c", "US", "service", 4}, {"a", "FR", "utility", 5}}
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
	var rows []UsageRow
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
		rows = append(rows, UsageRow{CustomerID: c, Country: u.Country, Category: u.Category, Quantity: u.Quantity})
		want[c] = append(want[c], u)
	}
	if got := groupUsage(rows); !reflect.DeepEqual(got, want) {
		t.Errorf("groupUsage of %d rows: %d customers, want %d", len(rows), len(got), len(want))
	}
}
