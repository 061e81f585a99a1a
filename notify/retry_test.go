package notify

import (
	"testing"
	"time"
)

func TestRetrySchedule(t *testing.T) {
	noJitter := func() float64 { return 0.5 }
	r := Retry{Jitter: noJitter}
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var got []time.Duration
	now := from
	for n := 1; ; n++ {
		next, ok := r.Next(n, now, from)
		if !ok {
			break
		}
		got = append(got, next.Sub(from))
		now = next
	}
	h := time.Hour
	want := []time.Duration{time.Minute, 5 * time.Minute, 21 * time.Minute, 85 * time.Minute, 341 * time.Minute,
		341*time.Minute + 12*h, 341*time.Minute + 24*h, 341*time.Minute + 36*h, 341*time.Minute + 48*h, 341*time.Minute + 60*h}
	if len(got) != len(want) {
		t.Fatalf("retries at %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("retry %d at %v, want %v", i+1, got[i], want[i])
		}
	}
	// Jitter stays within ±20% of the wait.
	for _, j := range []float64{0, 0.999999} {
		r := Retry{Jitter: func() float64 { return j }}
		next, _ := r.Next(3, from, from)
		w := next.Sub(from)
		if w < 12*time.Minute+48*time.Second || w > 19*time.Minute+12*time.Second {
			t.Errorf("jitter %v: wait %v outside 16m ±20%%", j, w)
		}
	}
	// A custom window.
	if _, ok := (Retry{For: time.Hour, Jitter: noJitter}).Next(4, from.Add(21*time.Minute), from); ok {
		t.Error("a retry 85 minutes after creation is inside a one-hour window")
	}
}
