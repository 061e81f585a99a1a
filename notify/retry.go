package notify

import (
	"math/rand/v2"
	"time"
)

// Retry is the schedule of a delivery's attempts: the first when the
// event is emitted, then after each failure a wait of First, ×Factor each
// time up to Max, each with ±20% jitter (so endpoints that failed
// together are not retried together), for as long as the next attempt
// falls within For of the delivery's creation (or manual re-send); after
// that the delivery fails. The defaults (DefaultRetry) make Stripe's
// shape: 1 min, 5 min, 21 min, 1.4 h, 5.7 h, then every 12 h, 11 attempts
// over three days.
type Retry struct {
	First  time.Duration
	Factor int
	Max    time.Duration
	For    time.Duration
	// Jitter returns a number in [0, 1) (math/rand/v2's Float64 when nil).
	Jitter func() float64
}

// DefaultRetry is the schedule postage uses unless configured
// (notify.retry_for changes For).
var DefaultRetry = Retry{First: time.Minute, Factor: 4, Max: 12 * time.Hour, For: 72 * time.Hour}

func (r Retry) norm() Retry {
	if r.First <= 0 {
		r.First = DefaultRetry.First
	}
	if r.Factor < 1 {
		r.Factor = DefaultRetry.Factor
	}
	if r.Max <= 0 {
		r.Max = DefaultRetry.Max
	}
	if r.For <= 0 {
		r.For = DefaultRetry.For
	}
	return r
}

// Wait returns the base wait (without jitter) after the n-th failed
// attempt (n from 1).
func (r Retry) Wait(n int) time.Duration {
	r = r.norm()
	d := r.First
	for i := 1; i < n && d < r.Max; i++ {
		d *= time.Duration(r.Factor)
	}
	return min(d, r.Max)
}

// Next returns when to try again after the n-th attempt failed at now,
// and false when that would be past the retry window that started at
// from: the delivery has failed.
func (r Retry) Next(n int, now, from time.Time) (time.Time, bool) {
	r = r.norm()
	j := r.Jitter
	if j == nil {
		j = rand.Float64
	}
	w := r.Wait(n)
	w += time.Duration((j()*0.4 - 0.2) * float64(w))
	next := now.Add(w)
	if next.After(from.Add(r.For)) {
		return time.Time{}, false
	}
	return next, true
}
