package metering

import (
	"context"
	"fmt"
	"time"
)

// Reading a month. Invoice runs, month-to-date bills, reports and
// simulations all read usage through MonthlyAggregates, so its speed and
// exactness are theirs. The cut-off counts only events ingested at or
// before it (an invoice's usage cut-off). A month that ended is read from
// tier 3 (one range of a few partitions), the days and hours since from
// tiers 2 and 1, and only the events after the last sealed hour (or after
// the cut-off's hour) raw.

// monthlySpec is the read of the exact per (customer, country, category,
// pricing type, pricing model) totals of the month holding month, counting
// events ingested at or before asOf (zero: all), for the given customers
// (none: all). Unordered: sorting 600,000 groups costs a third of the
// read, and every caller groups by customer itself.
func monthlySpec(month, asOf time.Time, customers []string) readSpec {
	from, to := monthRange(month)
	iFrom, iTo := ingestUpTo(asOf)
	return readSpec{eventFrom: from, eventTo: to, ingestFrom: iFrom, ingestTo: iTo, dims: dimOrder, customers: customers}
}

// MonthlyAggregates implements Usage.
func (s *CHStore) MonthlyAggregates(ctx context.Context, month, asOf time.Time, customers ...string) ([]Aggregate, error) {
	var out []Aggregate
	err := s.EachMonthlyAggregate(ctx, month, asOf, customers, func(a *Aggregate) error {
		out = append(out, *a)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CustomerMonth implements Usage.
func (s *CHStore) CustomerMonth(ctx context.Context, customerID string, month, asOf time.Time) ([]Aggregate, error) {
	return s.MonthlyAggregates(ctx, month, asOf, customerID)
}

// internedString scans a string column into *s, one string per distinct
// value (encoding.BinaryUnmarshaler: the driver hands over the value's
// bytes, and for a FixedString makes no string of its own).
type internedString struct {
	s      *string
	intern map[string]string
}

func (d *internedString) UnmarshalBinary(b []byte) error {
	if v, ok := d.intern[string(b)]; ok { // no allocation for the look-up
		*d.s = v
		return nil
	}
	v := string(b)
	d.intern[v] = v
	*d.s = v
	return nil
}

// EachMonthlyAggregate implements Usage. It hands fn each row as it
// arrives (the *Aggregate is reused: fn copies what it keeps). A month of
// every customer is 600,000 rows: streaming them spares callers that group
// them anyway a slice that grows, and is copied, up to 40 MB.
func (s *CHStore) EachMonthlyAggregate(ctx context.Context, month, asOf time.Time, customers []string, fn func(*Aggregate) error) error {
	// There are a few hundred countries and categories: one string of
	// each is kept (interned), so a month of 600,000 rows holds 1.2 million
	// strings fewer, and callers comparing them mostly compare pointers.
	// Countries (FixedString) are interned straight from the column's
	// bytes, without a string per row; the driver makes a string of every
	// category (String) before handing over its bytes. (Customer ids,
	// 50,000 in 600,000 rows, cost more to intern than they save: the
	// look-ups miss the cache.)
	intern := map[string]string{}
	var a Aggregate
	country := internedString{s: &a.Country, intern: intern}
	category := internedString{s: &a.Category, intern: intern}
	ptype := internedString{s: &a.PricingType, intern: intern}
	pmodel := internedString{s: &a.PricingModel, intern: intern}
	dest := []any{&a.CustomerID, &country, &category, &ptype, &pmodel, &a.Quantity, &a.Events} // one slice for every row
	var fnErr error
	err := s.run(ctx, monthlySpec(month, asOf, customers), func(scan func(...any) error) error {
		if err := scan(dest...); err != nil {
			return err
		}
		if err := fn(&a); err != nil {
			fnErr = err
			return err
		}
		return nil
	}, nil)
	if err != nil && fnErr == nil {
		return fmt.Errorf("query monthly aggregates: %w", err)
	}
	return err
}
