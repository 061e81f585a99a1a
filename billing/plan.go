package billing

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"postage/pricing"
)

// runPlan is what a run rates: the customers that get a draft, each with
// its records looked up once, and the usage no customer can be billed for.
type runPlan struct {
	period pricing.Month
	cutoff time.Time
	todo   []planned
	// order is todo's indexes in customer order: drafts are written that
	// way (PostgreSQL's customer-leading indexes take in-order inserts
	// faster); the order is sorted, not the records, which are large to move.
	order     []int32
	unbilled  []UnbilledUsage // of unknown customers
	pre       *Prefetched     // every customer's card and overrides, the period's portfolios
	usage     map[string][]pricing.Usage
	customers map[string]Customer
	groups    sync.Map // groupOf → *ratedGroup: each portfolio of the period rated once
	taxes     TaxTable // every tax rate
}

// planned is one account a run computes a draft for: a customer invoiced
// for itself, or a parent invoiced for its portfolio's members too.
type planned struct {
	customer Customer
	late     []pricing.Month // earlier closed months with late usage
	live     LiveInvoice     // its draft, when exists
	exists   bool
}

// plan reads the period's usage (ClickHouse) and the ledger (PostgreSQL)
// at once, then decides who gets a draft: customers with usage, with a
// draft to refresh, or with late usage of an earlier month.
func (r *Runner) plan(ctx context.Context, period pricing.Month, cutoff time.Time) (*runPlan, error) {
	var (
		customers map[string]Customer
		groups    usageGroups
		live      map[string]LiveInvoice
		late      map[string][]pricing.Month
		elsewhere map[string]bool
		pre       *Prefetched
		taxes     TaxTable
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { taxes, err = r.taxTable(gctx); return err })
	g.Go(func() error {
		if err := r.Usage.EachMonthlyUsage(gctx, period, cutoff, func(u MeteredUsage) error { groups.add(u); return nil }); err != nil {
			return fmt.Errorf("read usage of %s: %w", period, err)
		}
		return nil
	})
	g.Go(func() (err error) {
		if customers, err = r.Customers.All(gctx); err != nil {
			return err
		}
		all := make([]string, 0, len(customers))
		for c := range customers {
			all = append(all, c)
		}
		pre, err = r.pipeline().Prefetch(gctx, nil, all, period)
		return err
	})
	g.Go(func() (err error) { live, err = r.Invoices.LiveInvoices(gctx, period); return err })
	g.Go(func() (err error) { late, err = r.lateMonths(gctx, period, cutoff); return err })
	g.Go(func() (err error) {
		elsewhere, err = r.Invoices.AdjustedLater(gctx, period, addMonths(period, r.lookback()+1))
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	usage := groups.byCustomer()
	pf, err := r.pipeline().PortfoliosIn(ctx, pre, period)
	if err != nil {
		return nil, err
	}

	p := &runPlan{period: period, cutoff: cutoff, todo: make([]planned, 0, len(usage)), pre: pre, taxes: taxes,
		usage: make(map[string][]pricing.Usage, len(usage)), customers: customers}
	// Accounts: whoever is invoiced for the usage (a consolidating parent
	// for its members), each once.
	planned := map[string]bool{}
	consider := func(c string) {
		if planned[c] {
			return
		}
		planned[c] = true
		cust, ok := customers[c]
		if !ok {
			return // an unknown customer: listed unbilled below
		}
		l, exists := live[c]
		if exists && l.Status != StatusDraft {
			return // finalized: late usage goes to the next invoice
		}
		if !exists && elsewhere[c] {
			return // this month is already billed through adjustments
		}
		p.todo = append(p.todo, plannedAccount(cust, late[c], l, exists))
	}
	for _, u := range usage {
		p.usage[u.id] = u.usage
		if _, ok := customers[u.id]; !ok {
			p.unbilled = append(p.unbilled, unbilledRows(u.id, period, cutoff, u.usage, UnbilledUnknownCustomer, "no customer with this id")...)
			continue
		}
		consider(pf.Account(u.id))
	}
	for c, l := range live {
		if l.Status == StatusDraft {
			consider(c)
		}
	}
	for c := range late {
		consider(c)
	}
	p.order = make([]int32, len(p.todo))
	for i := range p.order {
		p.order[i] = int32(i)
	}
	slices.SortFunc(p.order, func(a, b int32) int { return strings.Compare(p.todo[a].customer.ID, p.todo[b].customer.ID) })
	return p, nil
}

func plannedAccount(c Customer, late []pricing.Month, l LiveInvoice, exists bool) planned {
	return planned{customer: c, late: late, live: l, exists: exists}
}

// unbilledRows lists a customer-month's usage as unbilled, for a reason.
func unbilledRows(customerID string, m pricing.Month, cutoff time.Time, usage []pricing.Usage, reason, detail string) []UnbilledUsage {
	out := make([]UnbilledUsage, 0, len(usage))
	for _, u := range usage {
		out = append(out, UnbilledUsage{Period: m.String(), CustomerID: customerID, Reason: reason, Detail: detail,
			Country: u.Country, Category: u.Category, Quantity: u.Quantity, UsageCutoff: cutoff})
	}
	return out
}

func addMonths(m pricing.Month, n int) pricing.Month {
	for ; n > 0; n-- {
		m = m.Next()
	}
	for ; n < 0; n++ {
		m = m.Prev()
	}
	return m
}

// lateMonths finds, for the months of the lookback window before period,
// the customers whose usage of a closed month was ingested after what
// their invoices of that month counted. A month is closed for a customer
// when a finalized invoice bills it, or when a run of that month completed
// and left the customer without an invoice; it is open while a draft of
// it exists (the draft will count the usage itself).
func (r *Runner) lateMonths(ctx context.Context, period pricing.Month, cutoff time.Time) (map[string][]pricing.Month, error) {
	from := addMonths(period, -r.lookback())
	cl, err := r.Invoices.Closings(ctx, from, period)
	if err != nil {
		return nil, err
	}
	out := map[string][]pricing.Month{}
	for m := from; m.Before(period); m = m.Next() {
		// Usage ingested after the earliest of what was billed of m (or
		// its run's cut-off) may be late for someone.
		floor, ok := cl.RunCutoffs[m]
		for k, t := range cl.BilledTo {
			if k.Month == m && (!ok || t.Before(floor)) {
				floor, ok = t, true
			}
		}
		if !ok || !floor.Before(cutoff) {
			continue
		}
		lateBy, err := r.Usage.LateUsage(ctx, m, floor, cutoff)
		if err != nil {
			return nil, fmt.Errorf("read late usage of %s: %w", m, err)
		}
		// Late usage of a portfolio member changes its whole portfolio's
		// tiers: every account of the portfolio in m is re-rated.
		pf, err := r.pipeline().PortfoliosIn(ctx, nil, m)
		if err != nil {
			return nil, err
		}
		accounts := map[string]time.Time{}
		for c, last := range lateBy {
			for _, g := range pf.Group(c) {
				if a := pf.Account(g); last.After(accounts[a]) {
					accounts[a] = last
				}
			}
		}
		for c, last := range accounts {
			k := CustomerMonth{c, m}
			if cl.Open[k] {
				continue
			}
			thr, billed := cl.BilledTo[k]
			if !billed {
				rc, ran := cl.RunCutoffs[m]
				if !ran {
					continue
				}
				thr = rc
			}
			if last.After(thr) {
				out[c] = append(out[c], m)
			}
		}
	}
	return out, nil
}
