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

// Unbilled reasons: why usage is not on any invoice.
const (
	ReasonUnknownCustomer = "unknown_customer"
	ReasonNoRateCard      = "no_rate_card"
	ReasonRatingError     = "rating_error"
)

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

// customerMonth is one customer's usage of one month, rated with the
// customer's own card (what the invoice bills).
type customerMonth struct {
	CustomerID string
	Month      pricing.Month
	Usage      []pricing.Usage
	Quantity   int64

	Customer billing.Customer // zero when unknown
	Known    bool
	Rater    *pricing.Rater // the current card version; nil when not rated
	CardID   string
	Result   pricing.Result
	// Unbilled is the reason the month is not billed ("" when rated), Detail says more.
	Unbilled string
	Detail   string
}

// Opts returns the rating options of the customer-month.
func (cm *customerMonth) Opts() pricing.RateOptions {
	return pricing.RateOptions{CustomerCountry: cm.Customer.Country, Month: cm.Month}
}

// resolver finds and compiles the card version of each customer-month,
// compiling each (card, version) once.
type resolver struct {
	cards Cards

	mu        sync.Mutex
	raters    map[verKey]*pricing.Rater
	inEffect  map[cardMonth]verResult
	cardOf    map[custMonth]string
	overrides map[string]pricing.Overrides
}

type verKey struct {
	card   string
	number int
}

type cardMonth struct {
	card  string
	month pricing.Month
}

type custMonth struct {
	customer string
	month    pricing.Month
}

type verResult struct {
	r   *pricing.Rater
	err error
}

func newResolver(c Cards) *resolver {
	return &resolver{
		cards:    c,
		raters:   map[verKey]*pricing.Rater{},
		inEffect: map[cardMonth]verResult{},
		cardOf:   map[custMonth]string{},
	}
}

// compile returns the Rater of a version, compiling it once.
func (r *resolver) compile(v *pricing.Version) (*pricing.Rater, error) {
	k := verKey{v.CardID, v.Number}
	r.mu.Lock()
	rt, ok := r.raters[k]
	r.mu.Unlock()
	if ok {
		return rt, nil
	}
	rt, err := pricing.Compile(v)
	if err != nil {
		return nil, fmt.Errorf("compile card %s version %d: %w", v.CardID, v.Number, err)
	}
	r.mu.Lock()
	r.raters[k] = rt
	r.mu.Unlock()
	return rt, nil
}

// version returns the Rater of one version of a card (drafts included).
func (r *resolver) version(ctx context.Context, cardID string, number int) (*pricing.Rater, error) {
	r.mu.Lock()
	rt, ok := r.raters[verKey{cardID, number}]
	r.mu.Unlock()
	if ok {
		return rt, nil
	}
	v, err := r.cards.GetVersion(ctx, cardID, number)
	if err != nil {
		return nil, err
	}
	return r.compile(v)
}

// inEffectFor returns the Rater of the active version of a card in month.
func (r *resolver) inEffectFor(ctx context.Context, cardID string, m pricing.Month) (*pricing.Rater, error) {
	k := cardMonth{cardID, m}
	r.mu.Lock()
	res, ok := r.inEffect[k]
	r.mu.Unlock()
	if ok {
		return res.r, res.err
	}
	v, err := r.cards.VersionFor(ctx, cardID, m)
	var rt *pricing.Rater
	if err == nil {
		rt, err = r.compile(v)
	}
	r.mu.Lock()
	r.inEffect[k] = verResult{rt, err}
	r.mu.Unlock()
	return rt, err
}

// loadCards resolves the card of every customer for month, in bulk when
// the store can, else with a few concurrent look-ups.
func (r *resolver) loadCards(ctx context.Context, customers []string, m pricing.Month, workers int) error {
	if b, ok := r.cards.(BulkCards); ok {
		cards, err := b.CardsFor(ctx, customers, m)
		if err != nil {
			return fmt.Errorf("resolve rate cards for %s: %w", m, err)
		}
		r.mu.Lock()
		for c, card := range cards {
			r.cardOf[custMonth{c, m}] = card.ID
		}
		r.mu.Unlock()
		return nil
	}
	var mu sync.Mutex
	var firstErr error
	parallel(len(customers), max(workers, 8), func(i int) {
		c := customers[i]
		card, err := r.cards.CardFor(ctx, c, m)
		if err != nil {
			if postage.ErrorCode(err) == postage.ENOTFOUND {
				return // no card: unbilled
			}
			mu.Lock()
			if firstErr == nil {
				firstErr = fmt.Errorf("rate card of %s in %s: %w", c, m, err)
			}
			mu.Unlock()
			return
		}
		r.mu.Lock()
		r.cardOf[custMonth{c, m}] = card.ID
		r.mu.Unlock()
	})
	return firstErr
}

// loadOverrides reads the overrides of the customers, in bulk when the
// store can.
func (r *resolver) loadOverrides(ctx context.Context, customers []string, workers int) error {
	if r.overrides != nil {
		return nil
	}
	if b, ok := r.cards.(BulkCards); ok {
		all, err := b.OverridesFor(ctx, nil)
		if err != nil {
			return fmt.Errorf("load overrides: %w", err)
		}
		r.overrides = all
		return nil
	}
	ovs := make([]pricing.Overrides, len(customers))
	errs := make([]error, len(customers))
	parallel(len(customers), max(workers, 8), func(i int) {
		ov, err := r.cards.Overrides(ctx, customers[i])
		if err != nil && postage.ErrorCode(err) != postage.ENOTFOUND {
			errs[i] = fmt.Errorf("overrides of %s: %w", customers[i], err)
		}
		ovs[i] = ov
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.overrides = make(map[string]pricing.Overrides, len(customers))
	for i, c := range customers {
		if !ovs[i].IsZero() {
			r.overrides[c] = ovs[i]
		}
	}
	return nil
}

func (r *resolver) overridesOf(customer string) pricing.Overrides {
	return r.overrides[customer]
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

// book is the rated usage of a set of months.
type book struct {
	months    []pricing.Month
	customers map[string]billing.Customer
	res       *resolver
	rows      []*customerMonth // sorted by customer, then month
}

// loadBook reads the usage of the months (one aggregate query per month),
// resolves every customer-month's card and, unless lazy, rates it with
// that card (lazy callers call rateCurrent themselves, so they need not
// keep every result at once).
func (s *Service) loadBook(ctx context.Context, months []pricing.Month, customers []string, res *resolver, lazy bool) (*book, error) {
	if res == nil {
		res = newResolver(s.Cards)
	}
	known, err := s.Customers.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("load customers: %w", err)
	}
	b := &book{months: months, customers: known, res: res}
	// The months are read concurrently (ClickHouse reads each month's
	// partition on its own), each grouped and its cards resolved as soon
	// as it arrives.
	perMonth := make([][]*customerMonth, len(months))
	errs := make([]error, len(months))
	var read atomic.Int64
	if s.Progress != nil {
		s.Progress("reading usage", 0, len(months))
	}
	parallel(len(months), 3, func(i int) {
		perMonth[i], errs[i] = s.loadMonth(ctx, months[i], customers, known, res)
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
	var ids []string
	for i, cm := range b.rows {
		if cm.Known && (i == 0 || b.rows[i-1].CustomerID != cm.CustomerID) {
			ids = append(ids, cm.CustomerID)
		}
	}
	if err := res.loadOverrides(ctx, ids, s.workers()); err != nil {
		return nil, err
	}
	// Resolve the versions serially (a handful of cards), then rate in parallel.
	for _, cm := range b.rows {
		if !cm.Known {
			cm.Unbilled, cm.Detail = ReasonUnknownCustomer, "no customer with this id"
			continue
		}
		card, ok := res.cardOf[custMonth{cm.CustomerID, cm.Month}]
		if !ok {
			cm.Unbilled, cm.Detail = ReasonNoRateCard, "no rate card assigned and no default card"
			continue
		}
		rt, err := res.inEffectFor(ctx, card, cm.Month)
		if err != nil {
			if postage.ErrorCode(err) == postage.ENOTFOUND {
				cm.Unbilled, cm.Detail = ReasonNoRateCard, fmt.Sprintf("card %s has no version in effect in %s", card, cm.Month)
				continue
			}
			return nil, err
		}
		cm.CardID, cm.Rater = card, rt
	}
	if lazy {
		return b, nil
	}
	total := len(b.rows)
	var done atomic.Int64
	parallel(total, s.workers(), func(i int) {
		b.rateCurrent(b.rows[i])
		if s.Progress != nil {
			if n := done.Add(1); n%256 == 0 || int(n) == total {
				s.Progress("rating", int(n), total)
			}
		}
	})
	return b, nil
}

// rateCurrent rates a customer-month with the customer's own card, or
// marks it unbilled when that fails.
func (b *book) rateCurrent(cm *customerMonth) {
	if cm.Rater == nil {
		return
	}
	r, err := cm.Rater.Rate(b.res.overridesOf(cm.CustomerID), cm.Usage, cm.Opts())
	if err != nil {
		cm.Rater, cm.Unbilled, cm.Detail = nil, ReasonRatingError, postage.ErrorMessage(err)
		return
	}
	cm.Result = r
}

// loadMonth reads one month's aggregates (one query), groups them per
// customer and resolves the known customers' cards.
func (s *Service) loadMonth(ctx context.Context, m pricing.Month, customers []string, known map[string]billing.Customer, res *resolver) ([]*customerMonth, error) {
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
				cm.Customer, cm.Known = known[a.CustomerID]
				byCustomer[a.CustomerID] = cm
				rows = append(rows, cm)
				if cm.Known {
					ids = append(ids, a.CustomerID)
				}
			}
			last = cm
		}
		cm.Usage = append(cm.Usage, pricing.Usage{Country: a.Country, Category: a.Category, Quantity: a.Quantity})
		cm.Quantity += a.Quantity
	}
	if err := res.loadCards(ctx, ids, m, s.workers()); err != nil {
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
