package billing

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"postage"
	"postage/pricing"
)

// draftRequest asks for the draft of one account-period: the invoice of
// a customer for itself or, when it is a parent that consolidates, for its
// portfolio's members too.
type draftRequest struct {
	Customer Customer // the account invoiced
	Period   pricing.Month
	Cutoff   time.Time // usage ingested up to here counts
	// Usage is the period's usage by customer when the caller has read it
	// (a run: every customer's); nil: read from the meter for the
	// customers needed.
	Usage map[string][]pricing.Usage
	// Known are the customers by id (a run: all of them); nil: asked one
	// at a time.
	Known map[string]Customer
	// Adjust lists earlier, closed months to re-rate for adjustment lines.
	Adjust []pricing.Month
	// ID and Seq are the draft's own; Replaces is the void invoice a
	// reissue replaces ("" otherwise).
	ID       string
	Seq      int
	Replaces string
	// Alone bills the customer's own usage even when its parent's invoice
	// bills it (the month-to-date bill a consolidated member sees).
	Alone bool
	// Groups, when set (a run), keeps each portfolio's rating of the
	// period for all its accounts.
	Groups *sync.Map
	// Prefetched holds the run's customers' cards and overrides (nil:
	// asked one at a time).
	Prefetched *Prefetched
	// Taxes are the tax rates (nil: read from r.Taxes).
	Taxes TaxTable
}

// draft computes the draft of a planned account, encoded for the ledger;
// nil when there is nothing to write (no billable usage for a new draft,
// or a draft whose content did not change).
func (r *Runner) draft(ctx context.Context, p *runPlan, pl *planned) (*Draft, []UnbilledUsage, error) {
	id, seq := pl.live.ID, pl.live.Seq
	if !pl.exists {
		id, seq = InvoiceID(pl.customer.ID, p.period, 1), 1
	}
	inv, unbilled, err := r.compute(ctx, draftRequest{Customer: pl.customer, Period: p.period, Cutoff: p.cutoff, Usage: p.usage, Known: p.customers,
		Adjust: pl.late, ID: id, Seq: seq, Prefetched: p.pre, Groups: &p.groups, Taxes: p.taxes})
	if err != nil {
		return nil, nil, fmt.Errorf("invoice of %s: %w", pl.customer.ID, err)
	}
	if inv == nil || (!pl.exists && len(inv.Lines) == 0) {
		return nil, unbilled, nil
	}
	d := EncodeDraft(inv)
	if pl.exists && bytes.Equal(d.Hash, pl.live.Hash) {
		return nil, unbilled, nil // unchanged: nothing to write
	}
	d.Fresh = !pl.exists
	return d, unbilled, nil
}

// accountMonth is an account's customers in one month, each rated with the
// customers it shares tier counts with.
type accountMonth struct {
	month        pricing.Month
	consolidated bool // the account bills its portfolio's members
	billed       []Customer
	usage        [][]pricing.Usage
	rated        []Rated
	// one backs the slices for an account billed alone (most), so it
	// costs no allocations of its own.
	one struct {
		c [1]Customer
		u [1][]pricing.Usage
		r [1]Rated
	}
}

// rateAccount rates the month m of the customers an account's invoice
// bills: the account itself, or a consolidating parent and its members
// (none for a member its parent's invoice bills, unless req.Alone). Each
// is rated through the pipeline together with its whole portfolio, whose
// usage of m is read too, so tiers are the portfolio's.
func (r *Runner) rateAccount(ctx context.Context, req *draftRequest, m pricing.Month, periodUsage map[string][]pricing.Usage) (*accountMonth, error) {
	g := r.pipeline()
	pf, err := g.PortfoliosIn(ctx, req.Prefetched, m)
	if err != nil {
		return nil, err
	}
	acct := req.Customer.ID
	am := &accountMonth{month: m, consolidated: pf.Consolidated(acct)}
	if pf.Alone(acct) {
		// Neither in a portfolio nor a parent: rated on its own.
		var usage []pricing.Usage
		if periodUsage != nil {
			usage = periodUsage[acct]
		} else {
			rows, err := r.Usage.MonthlyUsage(ctx, m, req.Cutoff, []string{acct})
			if err != nil {
				return nil, fmt.Errorf("read usage of %s: %w", m, err)
			}
			for _, x := range rows {
				usage = append(usage, x.Rateable())
			}
		}
		rd, err := g.Rate(ctx, req.Prefetched, req.Customer, m, usage)
		if err != nil {
			return nil, err
		}
		am.one.c[0], am.one.u[0], am.one.r[0] = req.Customer, usage, rd
		am.billed, am.usage, am.rated = am.one.c[:], am.one.u[:], am.one.r[:]
		return am, nil
	}
	billed := pf.Billed(acct)
	if len(billed) == 0 && req.Alone {
		billed = []string{acct}
	}
	if len(billed) == 0 {
		return am, nil
	}
	var need []string
	seen := map[string]bool{}
	for _, b := range billed {
		for _, c := range pf.Group(b) {
			if !seen[c] {
				seen[c] = true
				need = append(need, c)
			}
		}
	}
	usage := periodUsage
	if usage == nil {
		rows, err := r.Usage.MonthlyUsage(ctx, m, req.Cutoff, need)
		if err != nil {
			return nil, fmt.Errorf("read usage of %s: %w", m, err)
		}
		usage = map[string][]pricing.Usage{}
		for _, x := range rows {
			usage[x.CustomerID] = append(usage[x.CustomerID], x.Rateable())
		}
	}
	rate := func() ([]Member, []Rated, error) {
		group := make([]Member, 0, len(need))
		for _, id := range need {
			c, ok, err := r.customerOf(ctx, req, id)
			if err != nil {
				return nil, nil, err
			}
			if !ok {
				continue // deleted meanwhile: its usage is some other run's unknown customer
			}
			group = append(group, Member{Customer: c, Usage: usage[id]})
		}
		rated, err := g.RateGroup(ctx, req.Prefetched, m, group)
		return group, rated, err
	}
	var group []Member
	var rated []Rated
	if req.Groups != nil && periodUsage != nil {
		// A run rates each portfolio once for all its accounts (members
		// invoiced each on its own would otherwise rate it once each).
		v, _ := req.Groups.LoadOrStore(groupOf{m, need[0]}, &ratedGroup{})
		rg := v.(*ratedGroup)
		rg.once.Do(func() { rg.group, rg.rated, rg.err = rate() })
		group, rated, err = rg.group, rg.rated, rg.err
	} else {
		group, rated, err = rate()
	}
	if err != nil {
		return nil, err
	}
	for _, b := range billed {
		for i := range group {
			if group[i].Customer.ID == b {
				am.billed = append(am.billed, group[i].Customer)
				am.usage = append(am.usage, group[i].Usage)
				am.rated = append(am.rated, rated[i])
			}
		}
	}
	return am, nil
}

// groupOf names a portfolio in a month: its first customer (the parent).
type groupOf struct {
	month pricing.Month
	first string
}

// ratedGroup is a portfolio-month rated once per run.
type ratedGroup struct {
	once  sync.Once
	group []Member
	rated []Rated
	err   error
}

func (r *Runner) customerOf(ctx context.Context, req *draftRequest, id string) (Customer, bool, error) {
	if id == req.Customer.ID {
		return req.Customer, true, nil
	}
	if req.Known != nil {
		c, ok := req.Known[id]
		return c, ok, nil
	}
	c, err := r.Customers.Get(ctx, id)
	if postage.ErrorCode(err) == postage.ENOTFOUND {
		return c, false, nil
	}
	return c, err == nil, err
}

// lines returns the account-month's lines (tagged with their member when
// the account consolidates), what it leaves unbilled, and the invoice's
// rated result: the account's own, else the first member's.
func (am *accountMonth) lines(cutoff time.Time) (lines []Line, unbilled []UnbilledUsage, first *pricing.Result) {
	for i, c := range am.billed {
		rd := &am.rated[i]
		if rd.Unbilled != "" {
			unbilled = append(unbilled, unbilledRows(c.ID, am.month, cutoff, am.usage[i], rd.Unbilled, rd.Detail)...)
			continue
		}
		if first == nil {
			first = &rd.Result
		}
		member := ""
		if am.consolidated {
			member = c.ID
		}
		if ul := usageLines(rd.Result, am.month, member); lines == nil {
			lines = ul // most accounts bill one customer: no copy
		} else {
			lines = append(lines, ul...)
		}
		for _, u := range rd.Result.Unrated {
			unbilled = append(unbilled, UnbilledUsage{Period: am.month.String(), CustomerID: c.ID, Reason: u.Reason, Detail: u.Detail,
				Country: u.Country, Category: u.Category, Quantity: u.Quantity, UsageCutoff: cutoff})
		}
	}
	return lines, unbilled, first
}

// compute builds a draft: usage lines rated with the customers' card
// versions of the period (the rating pipeline, portfolios pooled), plus
// adjustment lines for the earlier months in req.Adjust. A reissue also
// subtracts what later invoices billed for the period itself as
// adjustments. It returns a nil invoice (and the unbilled rows) when none
// of the period's usage can be billed.
func (r *Runner) compute(ctx context.Context, req draftRequest) (*Invoice, []UnbilledUsage, error) {
	c, period := req.Customer, req.Period
	exclude := []string{req.ID}
	if req.Replaces != "" {
		exclude = append(exclude, req.Replaces)
	}
	am, err := r.rateAccount(ctx, &req, period, req.Usage)
	if err != nil {
		return nil, nil, err
	}
	lines, unbilled, res := am.lines(req.Cutoff)
	if res == nil && len(am.billed) == 0 && len(req.Adjust) > 0 {
		// A member its parent's invoice bills this month, with late usage
		// of a month it was invoiced for itself: its own invoice carries
		// the adjustments, in its card's currency.
		own, err := r.pipeline().Rate(ctx, req.Prefetched, c, period, nil)
		if err != nil {
			return nil, nil, err
		}
		if own.Unbilled == "" {
			res = &own.Result
		}
	}
	if res == nil {
		return nil, unbilled, nil
	}
	places := res.MinorUnits
	fx := fxOf(nil, am)
	if req.Replaces != "" {
		billed, err := r.Invoices.BilledLines(ctx, c.ID, period, exclude)
		if err != nil {
			return nil, nil, err
		}
		for _, l := range adjustmentLines(nil, billed, period, places) {
			l.Description = fmt.Sprintf("Already billed as adjustments on later invoices: %s messages, %s", l.Category, l.Market)
			lines = append(lines, l)
		}
	}
	adjust := append([]pricing.Month(nil), req.Adjust...)
	sort.Slice(adjust, func(i, j int) bool { return adjust[i].Before(adjust[j]) })
	for _, m := range adjust {
		mam, err := r.rateAccount(ctx, &req, m, nil)
		if err != nil {
			return nil, nil, err
		}
		mlines, munbilled, mres := mam.lines(req.Cutoff)
		unbilled = append(unbilled, munbilled...)
		if mres == nil {
			continue
		}
		if mres.Currency != res.Currency {
			return nil, nil, postage.Errorf(postage.ECONFLICT, "customer %s: %s is billed in %s but %s in %s", c.ID, m, mres.Currency, period, res.Currency)
		}
		billed, err := r.Invoices.BilledLines(ctx, c.ID, m, exclude)
		if err != nil {
			return nil, nil, err
		}
		lines = append(lines, adjustmentLines(mlines, billed, m, places)...)
		fx = fxOf(fx, mam)
	}
	inv := newDraft(req, res, lines, r.now(), r.Grace)
	inv.Sections = sections(inv, am, req.Known)
	for _, u := range unbilled {
		m, _ := pricing.ParseMonth(u.Period)
		member := ""
		if am.consolidated || u.CustomerID != c.ID {
			member = u.CustomerID
		}
		inv.Unbilled = append(inv.Unbilled, UnbilledLine{Period: m, Member: member, Country: u.Country, Category: u.Category,
			Quantity: u.Quantity, Reason: u.Reason, Detail: u.Detail})
	}
	inv.CostCard = res.Cost
	for _, rd := range am.rated {
		if inv.CostCard == nil && rd.Unbilled == "" && rd.Result.Cost != nil {
			inv.CostCard = rd.Result.Cost
		}
	}
	inv.ExchangeRates = fx
	table := req.Taxes
	if table == nil {
		if table, err = r.taxTable(ctx); err != nil {
			return nil, nil, err
		}
	}
	applyTaxes(inv, table, r.taxNotes())
	inv.PaymentTermsDays = r.termsOf(c)
	return inv, unbilled, nil
}

// fxOf adds the exchange rates an account-month's ratings used to list,
// each (pair, month) once.
func fxOf(list []pricing.ExchangeRate, am *accountMonth) []pricing.ExchangeRate {
	for _, rd := range am.rated {
		x := rd.Result.FX
		if rd.Unbilled != "" || x == nil {
			continue
		}
		dup := false
		for _, y := range list {
			if y.From == x.From && y.To == x.To && y.Month == x.Month {
				dup = true
			}
		}
		if !dup {
			list = append(list, *x)
		}
	}
	return list
}

// sections returns the members' parts of an invoice whose lines name
// members (a consolidated invoice): the account's own first, then the
// others by id, each with the sum of its lines.
func sections(inv *Invoice, am *accountMonth, known map[string]Customer) []Section {
	var ids []string
	for _, l := range inv.Lines {
		if l.Member != "" && !slices.Contains(ids, l.Member) {
			ids = append(ids, l.Member)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	for _, c := range am.billed {
		if !slices.Contains(ids, c.ID) {
			ids = append(ids, c.ID)
		}
	}
	slices.SortFunc(ids, func(a, b string) int {
		switch {
		case a == inv.CustomerID:
			return -1
		case b == inv.CustomerID:
			return 1
		}
		return strings.Compare(a, b)
	})
	out := make([]Section, 0, len(ids))
	for _, id := range ids {
		sec := Section{CustomerID: id}
		for i, c := range am.billed {
			if c.ID == id {
				sec.Name = c.Name
				if rd := am.rated[i]; rd.Unbilled == "" {
					sec.CardID, sec.CardVersion = rd.Result.CardID, rd.Result.Version
				}
			}
		}
		if sec.Name == "" {
			if c, ok := known[id]; ok {
				sec.Name = c.Name
			} else if id == inv.CustomerID {
				sec.Name = inv.Customer.Name
			}
		}
		var sum []Line
		for _, l := range inv.Lines {
			if l.Member == id || (l.Member == "" && id == inv.CustomerID) {
				sum = append(sum, l)
			}
		}
		_, _, total := sumLines(sum, inv.MinorUnits)
		sec.Total = total
		out = append(out, sec)
	}
	return out
}

// applyTaxes adds the invoice's taxes (Taxes) and makes its total
// subtotal + adjustments + tax.
func applyTaxes(inv *Invoice, table TaxTable, notes TaxNotes) {
	// sumLines made Total = Subtotal + Adjustments (the net amount).
	inv.TaxLines, inv.Tax, inv.TaxNote = Taxes(inv.Customer, inv.Total.Decimal, inv.Period, inv.MinorUnits, table, notes)
	if !inv.Tax.IsZero() {
		inv.Total = NewMoney(inv.Total.Add(inv.Tax.Decimal), inv.MinorUnits)
	}
}

// taxTable reads every tax rate (none when the Runner has no TaxRates).
func (r *Runner) taxTable(ctx context.Context) (TaxTable, error) {
	if r.Taxes == nil {
		return TaxTable{}, nil
	}
	rates, err := r.Taxes.TaxRates(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("read tax rates: %w", err)
	}
	return NewTaxTable(rates), nil
}

func (r *Runner) taxNotes() TaxNotes {
	n := r.TaxNotes
	if n.ReverseCharge == "" {
		n.ReverseCharge = DefaultReverseChargeNote
	}
	if n.Exempt == "" {
		n.Exempt = DefaultExemptNote
	}
	return n
}

// termsOf returns the customer's payment terms in days: its own, else the
// Runner's default.
func (r *Runner) termsOf(c Customer) int {
	if c.PaymentTermsDays != nil {
		return *c.PaymentTermsDays
	}
	if r.PaymentTermsDays > 0 {
		return r.PaymentTermsDays
	}
	return DefaultPaymentTermsDays
}

// DefaultPaymentTermsDays are the payment terms of customers without
// their own when none are configured: net 30.
const DefaultPaymentTermsDays = 30

// newDraft is the draft req asks for, with lines, rated by res.
func newDraft(req draftRequest, res *pricing.Result, lines []Line, now time.Time, grace time.Duration) *Invoice {
	c, places := req.Customer, res.MinorUnits
	sub, adj, total := sumLines(lines, places)
	inv := &Invoice{
		ID: req.ID, CustomerID: c.ID, Period: req.Period, Seq: req.Seq, Status: StatusDraft, Replaces: req.Replaces,
		Customer: c.Snapshot(),
		Currency: res.Currency, MinorUnits: places, CardID: res.CardID, CardVersion: res.Version,
		Lines: lines, Subtotal: sub, Adjustments: adj, Total: total,
		UsageCutoff:   req.Cutoff,
		FinalizeAfter: maxTime(req.Period.End(), now).Add(grace),
		CreatedAt:     now, UpdatedAt: now,
	}
	if inv.Lines == nil {
		inv.Lines = []Line{}
	}
	return inv
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
