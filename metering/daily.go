package metering

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Reading a month day by day. Reconciliation compares postage's own count
// with the upstream's per customer and UTC day, and tells messages
// counted at the `sent` status from those counted at delivery, so it reads
// the month once with the event's day and status as dimensions.

// DayAggregate is the usage of one customer on one UTC day in one
// (country, category, pricing type, pricing model, status): Aggregate with
// the day and the status that made the events billable ("" for
// CloudEvents; sent, delivered or read for WhatsApp statuses).
type DayAggregate struct {
	Day time.Time // 00:00 UTC of the events' day
	Aggregate
	Status string
}

// dailySQL builds the exact per (customer, UTC day, country, category,
// pricing type, pricing model, status) totals of the month holding month,
// counting events ingested at or before asOf (zero: all), for the given
// customers (none: all). Columns: customer_id, day (Unix seconds),
// country, category, pricing_type, pricing_model, status, quantity,
// events.
func dailySQL(month, asOf time.Time, customers []string) (string, []any) {
	from, to := monthRange(month)
	var b strings.Builder
	b.WriteString("SELECT customer_id, toUInt32(intDiv(toUInt32(time), 86400) * 86400) AS day, country, category, pricing_type, pricing_model, status, sum(quantity) AS quantity, count() AS events FROM events")
	// An event is ingested at most MaxFutureSkew before its time: the
	// events ingested before that are not read (the partitions are by
	// ingest day), so the read costs the month's events and those ingested
	// since, not the table's history.
	b.WriteString(" PREWHERE ingested_at >= toDateTime(?)")
	args := []any{from - int64(MaxFutureSkew/time.Second)}
	if !asOf.IsZero() {
		b.WriteString(" AND ingested_at <= toDateTime(?)")
		args = append(args, asOf.Unix())
	}
	b.WriteString(" WHERE time >= toDateTime(?) AND time < toDateTime(?)")
	args = append(args, from, to)
	if len(customers) > 0 {
		b.WriteString(" AND customer_id IN (" + placeholders(len(customers)) + ")")
		for _, c := range customers {
			args = append(args, c)
		}
	}
	b.WriteString(" GROUP BY customer_id, day, country, category, pricing_type, pricing_model, status")
	return b.String(), args
}

// EachDailyAggregate implements Usage.
func (s *CHStore) EachDailyAggregate(ctx context.Context, month, asOf time.Time, customers []string, fn func(*DayAggregate) error) error {
	q, args := dailySQL(month, asOf, customers)
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("query daily aggregates: %w", err)
	}
	defer rows.Close()
	intern := map[string]string{}
	var a DayAggregate
	var day uint32
	country := internedString{s: &a.Country, intern: intern}
	category := internedString{s: &a.Category, intern: intern}
	ptype := internedString{s: &a.PricingType, intern: intern}
	pmodel := internedString{s: &a.PricingModel, intern: intern}
	status := internedString{s: &a.Status, intern: intern}
	dest := []any{&a.CustomerID, &day, &country, &category, &ptype, &pmodel, &status, &a.Quantity, &a.Events}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("query daily aggregates: %w", err)
		}
		a.Day = time.Unix(int64(day), 0).UTC()
		if err := fn(&a); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("query daily aggregates: %w", err)
	}
	return nil
}
