package reports

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"postage"
	"postage/billing"
	"postage/pricing"
)

// MaxMonths bounds the month range of one report or simulation.
const MaxMonths = 36

// MonthRange returns the months from..to inclusive, checking the range.
func MonthRange(from, to pricing.Month) ([]pricing.Month, error) {
	if !from.Valid() || !to.Valid() {
		return nil, postage.Errorf(postage.EINVALID, "from and to must be months (YYYY-MM)")
	}
	if to.Before(from) {
		return nil, postage.Errorf(postage.EINVALID, "to %s is before from %s", to, from)
	}
	var ms []pricing.Month
	for m := from; !m.After(to); m = m.Next() {
		if len(ms) == MaxMonths {
			return nil, postage.Errorf(postage.EINVALID, "a range of at most %d months, please (%s to %s)", MaxMonths, from, to)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// customerMonth is one customer's usage of one month, rated by billing's
// rating pipeline with the customer's own card (what the invoice bills).
type customerMonth struct {
	CustomerID string
	Month      pricing.Month
	Usage      []pricing.Usage
	Quantity   int64

	Customer billing.Customer // zero when unknown
	Known    bool
	// Rated is the pipeline's answer (set by rateCurrent): Rater nil and
	// Unbilled set when the month is not billed.
	billing.Rated
}

// Opts returns the rating options of the customer-month.
func (cm *customerMonth) Opts() pricing.RateOptions {
	return pricing.RateOptions{CustomerCountry: cm.Customer.Country, Month: cm.Month}
}

// parallel runs f(0..n-1) on up to workers goroutines.
func parallel(n, workers int, f func(i int)) {
	if workers < 1 {
		workers = 1
	}
	workers = min(workers, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

func (s *Service) workers() int {
	if s.Workers > 0 {
		return s.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// book is the usage of a set of months, to be rated through one pipeline.
type book struct {
	months    []pricing.Month
	customers map[string]billing.Customer
	rating    *billing.Rating
	pre       *billing.Prefetched // every known customer's card of each month and overrides
	rows      []*customerMonth    // sorted by customer, then month
}

// loadBook reads the usage of the months (one aggregate query per month),
// prefetches every customer-month's card and the customers' overrides
// and, unless lazy, rates every customer-month (lazy callers call
// rateCurrent themselves, so they need not keep every result at once).
func (s *Service) loadBook(ctx context.Context, months []pricing.Month, customers []string, rating *billing.Rating, lazy bool) (*book, error) {
	if rating == nil {
		rating = billing.NewRating(s.Cards)
	}
	known, err := s.Customers.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("load customers: %w", err)
	}
	b := &book{months: months, customers: known, rating: rating, pre: &billing.Prefetched{}}
	// The months are read concurrently (ClickHouse reads each month's
	// partition on its own), each grouped and its cards prefetched as soon
	// as it arrives.
	perMonth := make([][]*customerMonth, len(months))
	errs := make([]error, len(months))
	var read atomic.Int64
	if s.Progress != nil {
		s.Progress("reading usage", 0, len(months))
	}
	parallel(len(months), 3, func(i int) {
		perMonth[i], errs[i] = s.loadMonth(ctx, b, months[i], customers)
		if n := read.Add(1); s.Progress != nil {
			s.Progress("reading usage", int(n), len(months))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	n := 0
	for _, rows := range perMonth {
		n += len(rows)
	}
	b.rows = make([]*customerMonth, 0, n)
	for _, rows := range perMonth {
		b.rows = append(b.rows, rows...)
	}
	sort.Slice(b.rows, func(i, j int) bool {
		if b.rows[i].CustomerID != b.rows[j].CustomerID {
			return b.rows[i].CustomerID < b.rows[j].CustomerID
		}
		return b.rows[i].Month.Before(b.rows[j].Month)
	})
	if lazy {
		return b, nil
	}
	total := len(b.rows)
	var done atomic.Int64
	errs = make([]error, total)
	parallel(total, s.workers(), func(i int) {
		errs[i] = b.rateCurrent(ctx, b.rows[i])
		if s.Progress != nil {
			if n := done.Add(1); n%256 == 0 || int(n) == total {
				s.Progress("rating", int(n), total)
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return b, nil
}

// rateCurrent rates a customer-month with the customer's own card through
// billing's pipeline, or marks it unbilled (an unknown customer, no card,
// a card in another currency, usage the card cannot rate). An error is an
// outage.
func (b *book) rateCurrent(ctx context.Context, cm *customerMonth) error {
	if !cm.Known {
		cm.Unbilled, cm.Detail = billing.UnbilledUnknownCustomer, "no customer with this id"
		return nil
	}
	r, err := b.rating.Rate(ctx, b.pre, cm.Customer, cm.Month, cm.Usage)
	if err != nil {
		return fmt.Errorf("rate %s %s: %w", cm.CustomerID, cm.Month, err)
	}
	if r.Unbilled != "" {
		r.Rater = nil
	}
	cm.Rated = r
	return nil
}

// loadMonth reads one month's aggregates (one query), groups them per
// customer and prefetches the known customers' cards and overrides.
func (s *Service) loadMonth(ctx context.Context, b *book, m pricing.Month, customers []string) ([]*customerMonth, error) {
	aggs, err := s.Usage.MonthlyUsage(ctx, m, time.Time{}, customers)
	if err != nil {
		return nil, fmt.Errorf("usage of %s: %w", m, err)
	}
	var rows []*customerMonth
	var ids []string
	byCustomer := map[string]*customerMonth{}
	var last *customerMonth
	for _, a := range aggs {
		cm := last
		if cm == nil || cm.CustomerID != a.CustomerID { // rows usually come sorted by customer
			cm = byCustomer[a.CustomerID]
			if cm == nil {
				cm = &customerMonth{CustomerID: a.CustomerID, Month: m}
				cm.Customer, cm.Known = b.customers[a.CustomerID]
				byCustomer[a.CustomerID] = cm
				rows = append(rows, cm)
				if cm.Known {
					ids = append(ids, a.CustomerID)
				}
			}
			last = cm
		}
		cm.Usage = append(cm.Usage, a.Rateable())
		cm.Quantity += a.Quantity
	}
	if _, err := b.rating.Prefetch(ctx, b.pre, ids, m); err != nil {
		return nil, err
	}
	return rows, nil
}

// rated returns the customer-months that were rated.
func (b *book) rated() []*customerMonth {
	out := make([]*customerMonth, 0, len(b.rows))
	for _, cm := range b.rows {
		if cm.Rater != nil {
			out = append(out, cm)
		}
	}
	return out
}
