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

// newRating is a rating pipeline for one request, with portfolios.
func (s *Service) newRating() *billing.Rating {
	r := billing.NewRating(s.Cards)
	r.Portfolios = s.Customers
	return r
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
	// Hidden: read only because a portfolio member of the report needs its
	// usage (its tiers are the portfolio's); not part of the report.
	Hidden bool
	// Rated is the pipeline's answer (set by rateCurrent): Rater nil and
	// Unbilled set when the month is not billed.
	billing.Rated
}

// billedQuantity is the quantity the rating bills (or shows free): all
// but the rows it could not rate.
func (cm *customerMonth) billedQuantity() int64 {
	q := cm.Quantity
	for _, u := range cm.Result.Unrated {
		q -= u.Quantity
	}
	return q
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
	pre       *billing.Prefetched // every known customer's card of each month and overrides, the months' portfolios
	rows      []*customerMonth    // sorted by customer, then month
	index     map[cmKey]*customerMonth
	groups    sync.Map // groupKey → *groupRating: a portfolio-month rated once for all its members
}

type cmKey struct {
	customer string
	month    pricing.Month
}

type groupKey struct {
	month pricing.Month
	root  string
	kind  string // "current", "proposed", "projected"
}

type groupRating struct {
	once  sync.Once
	err   error
	rated map[string]billing.Rated
}

// rateInGroup returns cm's rating as a member of its portfolio in its
// month: the whole portfolio (its members the book holds) is rated once by
// rate, with each member's usage as usage gives it, and kept for the
// others.
func (b *book) rateInGroup(ctx context.Context, cm *customerMonth, kind string,
	usage func(*customerMonth) []pricing.Usage,
	rate func(group []billing.Member) ([]billing.Rated, error)) (billing.Rated, bool, error) {
	pf, err := b.rating.PortfoliosIn(ctx, b.pre, cm.Month)
	if err != nil {
		return billing.Rated{}, false, err
	}
	ids := pf.Group(cm.CustomerID)
	if len(ids) == 1 {
		return billing.Rated{}, false, nil
	}
	v, _ := b.groups.LoadOrStore(groupKey{cm.Month, ids[0], kind}, &groupRating{})
	g := v.(*groupRating)
	g.once.Do(func() {
		var members []billing.Member
		for _, id := range ids {
			if x := b.index[cmKey{id, cm.Month}]; x != nil && x.Known {
				members = append(members, billing.Member{Customer: x.Customer, Usage: usage(x)})
			}
		}
		rated, err := rate(members)
		if err != nil {
			g.err = err
			return
		}
		g.rated = make(map[string]billing.Rated, len(members))
		for i, m := range members {
			g.rated[m.Customer.ID] = rated[i]
		}
	})
	if g.err != nil {
		return billing.Rated{}, true, g.err
	}
	return g.rated[cm.CustomerID], true, nil
}

// loadBook reads the usage of the months (one aggregate query per month),
// prefetches every customer-month's card and the customers' overrides
// and, unless lazy, rates every customer-month (lazy callers call
// rateCurrent themselves, so they need not keep every result at once).
func (s *Service) loadBook(ctx context.Context, months []pricing.Month, customers []string, rating *billing.Rating, lazy bool) (*book, error) {
	if rating == nil {
		rating = s.newRating()
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
	b.index = make(map[cmKey]*customerMonth, len(b.rows))
	for _, cm := range b.rows {
		b.index[cmKey{cm.CustomerID, cm.Month}] = cm
	}
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

// rateCurrentIn rates cm as rateCurrent does, for a simulation of a
// customer's months that must all be billed in one currency (*currency,
// set by the first month): it returns why the customer cannot be
// simulated ("" if it can) or an outage.
func (b *book) rateCurrentIn(ctx context.Context, cm *customerMonth, currency *string) (string, error) {
	if err := b.rateCurrent(ctx, cm); err != nil {
		return "", err
	}
	if cm.Unbilled != "" {
		return fmt.Sprintf("%s in %s: %s", cm.Unbilled, cm.Month, cm.Detail), nil
	}
	if *currency == "" {
		*currency = cm.Result.Currency
	} else if *currency != cm.Result.Currency {
		return fmt.Sprintf("billed in %s and %s in this range", *currency, cm.Result.Currency), nil
	}
	return "", nil
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
	r, pooled, err := b.rateInGroup(ctx, cm, "current", func(x *customerMonth) []pricing.Usage { return x.Usage },
		func(group []billing.Member) ([]billing.Rated, error) {
			return b.rating.RateGroup(ctx, b.pre, cm.Month, group)
		})
	if !pooled && err == nil {
		r, err = b.rating.Rate(ctx, b.pre, cm.Customer, cm.Month, cm.Usage)
	}
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
// customer and prefetches the known customers' cards and overrides. When
// only some customers are asked for, their portfolios' other members are
// read too (Hidden), since their usage sets the tiers.
func (s *Service) loadMonth(ctx context.Context, b *book, m pricing.Month, customers []string) ([]*customerMonth, error) {
	pf, err := b.rating.PortfoliosIn(ctx, b.pre, m)
	if err != nil {
		return nil, err
	}
	asked := map[string]bool{}
	if customers != nil {
		read := append([]string(nil), customers...)
		for _, c := range customers {
			asked[c] = true
		}
		for _, c := range customers {
			for _, g := range pf.Group(c) {
				if !asked[g] {
					asked[g] = false
					read = append(read, g)
				}
			}
		}
		customers = read
	}
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
				if ask, ok := asked[a.CustomerID]; ok && !ask {
					cm.Hidden = true
				}
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

// rated returns the customer-months of the report that were rated.
func (b *book) rated() []*customerMonth {
	out := make([]*customerMonth, 0, len(b.rows))
	for _, cm := range b.rows {
		if cm.Rater != nil && !cm.Hidden {
			out = append(out, cm)
		}
	}
	return out
}
