package metering

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"postage"
)

// Sharding: on a ClickHouse cluster every customer's events, key index and
// rollups live on one shard (docs/SCALING.md). ShardedUsage and
// ShardedIngester put the per-shard stores and ingesters behind the one
// Usage and submit interfaces the API, billing and reports hold: a
// customer's reads and writes go to its shard, reads over every customer
// run on each shard and add up.

// ShardedUsage answers usage reads over per-shard stores. Shard names the
// index in Shards of a customer's shard.
type ShardedUsage struct {
	Shards []Usage
	Shard  func(customerID string) int
}

var _ Usage = (*ShardedUsage)(nil)

// NewShardedUsage returns the Usage of shards, customers placed by shard.
func NewShardedUsage(shards []Usage, shard func(customerID string) int) *ShardedUsage {
	return &ShardedUsage{Shards: shards, Shard: shard}
}

func (s *ShardedUsage) of(customerID string) Usage { return s.Shards[s.Shard(customerID)] }

// byShard splits customers by shard (nil: every customer of every shard).
func (s *ShardedUsage) byShard(customers []string) [][]string {
	if len(customers) == 0 {
		return make([][]string, len(s.Shards))
	}
	out := make([][]string, len(s.Shards))
	for _, c := range customers {
		i := s.Shard(c)
		out[i] = append(out[i], c)
	}
	return out
}

// shardErr names the shard of a failed read.
func shardErr(i int, err error) error {
	return fmt.Errorf("shard %d: %w", i+1, err)
}

// Usage implements Usage: the customer's shard answers.
func (s *ShardedUsage) Usage(ctx context.Context, q UsageQuery) ([]UsageRow, error) {
	return s.of(q.CustomerID).Usage(ctx, q)
}

// CustomerMonth implements Usage: the customer's shard answers.
func (s *ShardedUsage) CustomerMonth(ctx context.Context, customerID string, month, asOf time.Time) ([]Aggregate, error) {
	return s.of(customerID).CustomerMonth(ctx, customerID, month, asOf)
}

// each runs read on every shard, concurrently, and returns the first error.
func (s *ShardedUsage) each(read func(i int, u Usage) error) error {
	errs := make([]error, len(s.Shards))
	var wg sync.WaitGroup
	for i, u := range s.Shards {
		wg.Go(func() {
			if err := read(i, u); err != nil {
				errs[i] = shardErr(i, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Summary implements Usage: every shard's rows, added up where shards
// share a group (a summary not grouped by customer), in Start and
// dimension order.
func (s *ShardedUsage) Summary(ctx context.Context, q SummaryQuery) ([]UsageRow, error) {
	if _, err := summarySpec(q); err != nil {
		return nil, err
	}
	parts := make([][]UsageRow, len(s.Shards))
	if err := s.each(func(i int, u Usage) error {
		var err error
		parts[i], err = u.Summary(ctx, q)
		return err
	}); err != nil {
		return nil, err
	}
	return mergeRows(parts), nil
}

// Series implements Usage: one customer's from its shard, the book's added
// up over the shards.
func (s *ShardedUsage) Series(ctx context.Context, q SeriesQuery) ([]UsageRow, error) {
	if q.CustomerID != "" {
		return s.of(q.CustomerID).Series(ctx, q)
	}
	if _, err := seriesSpec(q); err != nil {
		return nil, err
	}
	parts := make([][]UsageRow, len(s.Shards))
	if err := s.each(func(i int, u Usage) error {
		var err error
		parts[i], err = u.Series(ctx, q)
		return err
	}); err != nil {
		return nil, err
	}
	return mergeRows(parts), nil
}

// mergeRows adds up rows of the same bucket and dimensions and sorts them
// by Start, customer, country, category (the order of a single store's
// ordered reads: empty dimensions sort equal).
func mergeRows(parts [][]UsageRow) []UsageRow {
	type key struct {
		start                       int64
		customer, country, category string
	}
	idx := map[key]int{}
	var out []UsageRow
	for _, p := range parts {
		for _, r := range p {
			k := key{r.Start.Unix(), r.CustomerID, r.Country, r.Category}
			if i, ok := idx[k]; ok {
				out[i].Quantity += r.Quantity
				out[i].Events += r.Events
				continue
			}
			idx[k] = len(out)
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b UsageRow) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.CustomerID, b.CustomerID),
			cmp.Compare(a.Country, b.Country), cmp.Compare(a.Category, b.Category))
	})
	return out
}

// MonthlyAggregates implements Usage: the rows of the shards concerned
// (a customer is on one shard, so no row is added to another).
func (s *ShardedUsage) MonthlyAggregates(ctx context.Context, month, asOf time.Time, customers ...string) ([]Aggregate, error) {
	var out []Aggregate
	err := s.EachMonthlyAggregate(ctx, month, asOf, customers, func(a *Aggregate) error {
		out = append(out, *a)
		return nil
	})
	return out, err
}

// EachMonthlyAggregate implements Usage: the shards one after another (fn
// is never called concurrently).
func (s *ShardedUsage) EachMonthlyAggregate(ctx context.Context, month, asOf time.Time, customers []string, fn func(*Aggregate) error) error {
	for i, cs := range s.byShard(customers) {
		if len(customers) > 0 && len(cs) == 0 {
			continue
		}
		if err := s.Shards[i].EachMonthlyAggregate(ctx, month, asOf, cs, fn); err != nil {
			return shardErr(i, err)
		}
	}
	return nil
}

// EachDailyAggregate implements Usage: the shards one after another.
func (s *ShardedUsage) EachDailyAggregate(ctx context.Context, month, asOf time.Time, customers []string, fn func(*DayAggregate) error) error {
	for i, cs := range s.byShard(customers) {
		if len(customers) > 0 && len(cs) == 0 {
			continue
		}
		if err := s.Shards[i].EachDailyAggregate(ctx, month, asOf, cs, fn); err != nil {
			return shardErr(i, err)
		}
	}
	return nil
}

// LateIngested implements Usage: the union of the shards' (disjoint)
// customers.
func (s *ShardedUsage) LateIngested(ctx context.Context, month, after, upTo time.Time) (map[string]time.Time, error) {
	parts := make([]map[string]time.Time, len(s.Shards))
	if err := s.each(func(i int, u Usage) error {
		var err error
		parts[i], err = u.LateIngested(ctx, month, after, upTo)
		return err
	}); err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	for _, p := range parts {
		for c, t := range p {
			if old, ok := out[c]; !ok || t.After(old) {
				out[c] = t
			}
		}
	}
	return out, nil
}

// CustomersWithUsage implements Usage: the shards' lists merged, sorted.
func (s *ShardedUsage) CustomersWithUsage(ctx context.Context, month time.Time) ([]string, error) {
	parts := make([][]string, len(s.Shards))
	if err := s.each(func(i int, u Usage) error {
		var err error
		parts[i], err = u.CustomersWithUsage(ctx, month)
		return err
	}); err != nil {
		return nil, err
	}
	out := slices.Concat(parts...)
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Conflicts lists up to limit keys stored more than once in the month, over
// every shard (CHStore.Conflicts of each).
func (s *ShardedUsage) Conflicts(ctx context.Context, month time.Time, limit int) ([]Key, error) {
	var out []Key
	for i, u := range s.Shards {
		c, ok := u.(interface {
			Conflicts(context.Context, time.Time, int) ([]Key, error)
		})
		if !ok {
			continue
		}
		keys, err := c.Conflicts(ctx, month, limit-len(out))
		if err != nil {
			return nil, shardErr(i, err)
		}
		out = append(out, keys...)
		if len(out) >= limit {
			break
		}
	}
	return out, nil
}

// Submitter stores validated events exactly once: an *Ingester, a
// ShardedIngester, or one shard's writer.
type Submitter interface {
	// Submit is Ingester.Submit.
	Submit(ctx context.Context, events []Event) ([]Status, error)
	// Admit is Ingester.Admit.
	Admit() error
}

// ShardedIngester routes each event to the submitter of its customer's
// shard. A request whose events span shards is split, the parts submitted
// concurrently and the statuses put back in request order. If a shard
// fails, the request fails (with that shard's error): what other shards
// stored comes back as duplicates when the request is sent again.
type ShardedIngester struct {
	Shards []Submitter
	Shard  func(customerID string) int
}

// Submit implements Submitter.
func (s *ShardedIngester) Submit(ctx context.Context, events []Event) ([]Status, error) {
	if len(events) == 0 {
		return nil, nil
	}
	first := s.Shard(events[0].CustomerID)
	split := false
	for i := range events {
		if s.Shard(events[i].CustomerID) != first {
			split = true
			break
		}
	}
	if !split {
		return s.Shards[first].Submit(ctx, events)
	}
	type part struct {
		events []Event
		at     []int
		status []Status
		err    error
	}
	parts := make([]part, len(s.Shards))
	for i := range events {
		p := &parts[s.Shard(events[i].CustomerID)]
		p.events = append(p.events, events[i])
		p.at = append(p.at, i)
	}
	var wg sync.WaitGroup
	for i := range parts {
		if len(parts[i].events) == 0 {
			continue
		}
		wg.Go(func() { parts[i].status, parts[i].err = s.Shards[i].Submit(ctx, parts[i].events) })
	}
	wg.Wait()
	out := make([]Status, len(events))
	var errs []error
	for i, p := range parts {
		if p.err != nil {
			errs = append(errs, shardErr(i, p.err))
			continue
		}
		for j, at := range p.at {
			out[at] = p.status[j]
		}
	}
	if len(errs) > 0 {
		return nil, worstError(errs)
	}
	return out, nil
}

// worstError returns one error for a request that failed on several
// shards: the first that is not EUNAVAILABLE or EOVERLOADED (a client's
// mistake or a bug), else the first.
func worstError(errs []error) error {
	for _, err := range errs {
		switch postage.ErrorCode(err) {
		case postage.EUNAVAILABLE, postage.EOVERLOADED, postage.ENOTOWNER:
		default:
			return err
		}
	}
	return errs[0]
}

// Admit implements Submitter. It admits every request: one shard's full
// queue must not refuse the customers of the others, so the shard's
// Submit answers EOVERLOADED instead.
func (s *ShardedIngester) Admit() error { return nil }
