package httpapi

import (
	"encoding/json"
	"math/rand/v2"
	"testing"

	"postage/metering"
)

// TestEventsResponseAppendJSON checks the hand-written encoder against
// encoding/json on random answers.
func TestEventsResponseAppendJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	strs := []string{"", "evt-1", `q"uote`, "<&>", "ü", "\x01", "bad\xff"}
	str := func() string { return strs[rng.IntN(len(strs))] }
	statuses := []metering.Status{metering.Accepted, metering.Duplicate, metering.Conflict, metering.Rejected, metering.Ignored}
	for n := 0; n < 1000; n++ {
		r := &EventsResponse{Accepted: rng.IntN(3), Duplicate: rng.IntN(3), Conflict: rng.IntN(3), Rejected: rng.IntN(3), Ignored: rng.IntN(2)}
		if rng.IntN(10) > 0 {
			r.Results = []metering.Result{}
		}
		for i := range rng.IntN(5) {
			r.Results = append(r.Results, metering.Result{Index: i * rng.IntN(1000), ID: str(), Status: statuses[rng.IntN(len(statuses))], Field: str(), Reason: str()})
		}
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.AppendJSON(nil); string(got) != string(want) {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	}
}
