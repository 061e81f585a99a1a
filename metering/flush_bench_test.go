package metering

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkFlushParts times the two halves of a flush of 8,000 new events:
// the id look-up and the insert.
func BenchmarkFlushParts(b *testing.B) {
	conn := newCH(b)
	s := NewCHStore(conn)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Second)
	var look, ins time.Duration
	for n := 0; b.Loop(); n++ {
		evs := make([]Event, 8000)
		keys := make([]Key, len(evs))
		for i := range evs {
			evs[i] = ev(fmt.Sprintf("cust-%d", i%500), fmt.Sprintf("evt-%d-%d", n, i), t0, "DE", "marketing", 1)
			evs[i].IngestedAt = t0
			keys[i] = evs[i].Key()
		}
		st := time.Now()
		if _, err := s.Existing(ctx, keys, time.Time{}); err != nil {
			b.Fatal(err)
		}
		look += time.Since(st)
		st = time.Now()
		if err := s.Insert(ctx, evs); err != nil {
			b.Fatal(err)
		}
		ins += time.Since(st)
	}
	b.ReportMetric(float64(look.Microseconds())/float64(b.N)/1000, "lookup-ms")
	b.ReportMetric(float64(ins.Microseconds())/float64(b.N)/1000, "insert-ms")
}
