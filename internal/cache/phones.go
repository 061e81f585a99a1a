package cache

import (
	"context"
	"log/slog"
	"time"

	"postage/internal/db"
)

// PhoneLookup resolves WhatsApp phone-number ids to customers in the
// ledger (billing.CustomerStore).
type PhoneLookup interface {
	CustomerForPhoneNumber(ctx context.Context, phoneNumberID string) (customerID string, ok bool, err error)
	// CustomersForPhoneNumbers returns the customer of each mapped id of
	// ids; unmapped ids are absent.
	CustomersForPhoneNumbers(ctx context.Context, ids []string) (map[string]string, error)
}

// phoneAnswer is one resolution: the customer, or ok false for an id that
// is not mapped (cached too: unmapped ids are common and legitimate).
type phoneAnswer struct {
	customer string
	ok       bool
}

// Phones resolves phone-number ids through a cache (metering's
// PhoneNumberResolver): an answer, mapped or not, is served for at most
// Refresh (10 s by default) while PostgreSQL answers, all answers are
// re-read in one query every Refresh (Run), and while PostgreSQL is
// unreachable the last answer is served, so webhooks for known numbers keep
// being stored. A mapping added, moved or removed takes effect within
// Refresh.
type Phones struct {
	lookup PhoneLookup
	c      *Cache[phoneAnswer]
}

// NewPhones returns a cache on lookup refreshing every refresh (0: 10 s),
// with now as its clock (nil: time.Now).
func NewPhones(lookup PhoneLookup, refresh time.Duration, now func() time.Time, log *slog.Logger) *Phones {
	p := &Phones{lookup: lookup}
	p.c = New(Options[phoneAnswer]{
		Refresh:  refresh,
		Verify:   p.verify,
		IsOutage: db.IsOutage,
		Now:      now,
		Log:      log,
	})
	return p
}

// CustomerForPhoneNumber resolves a phone-number id (see Phones).
func (p *Phones) CustomerForPhoneNumber(ctx context.Context, phoneNumberID string) (string, bool, error) {
	a, err := p.c.Get(ctx, phoneNumberID, func(ctx context.Context) (phoneAnswer, error) {
		cust, ok, err := p.lookup.CustomerForPhoneNumber(ctx, phoneNumberID)
		return phoneAnswer{customer: cust, ok: ok}, err
	})
	return a.customer, a.ok, err
}

// Forget drops the cached answer for a phone-number id (after this process
// changed its mapping, so the change takes effect here at once).
func (p *Phones) Forget(phoneNumberID string) {
	p.c.mu.Lock()
	delete(p.c.m, phoneNumberID)
	p.c.mu.Unlock()
}

// VerifyAll re-reads every cached answer now (Run does it every Refresh).
func (p *Phones) VerifyAll(ctx context.Context) error { return p.c.VerifyAll(ctx) }

// Run re-reads the cached answers every Refresh until ctx ends.
func (p *Phones) Run(ctx context.Context) { p.c.Run(ctx) }

// Stats returns the cache's counters.
func (p *Phones) Stats() Stats { return p.c.Stats() }

func (p *Phones) verify(ctx context.Context, items []Item[phoneAnswer]) (map[string]phoneAnswer, error) {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.Key
	}
	got, err := p.lookup.CustomersForPhoneNumbers(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]phoneAnswer, len(ids))
	for _, id := range ids {
		cust, ok := got[id]
		out[id] = phoneAnswer{customer: cust, ok: ok}
	}
	return out, nil
}
