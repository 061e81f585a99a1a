package metering

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"postage"
)

// UsageParams is a usage query as text, from a URL query string or
// command-line flags. Empty fields take their defaults.
type UsageParams struct {
	Customer string
	From, To string // RFC 3339 time or YYYY-MM-DD (UTC midnight); default: this month
	Window   string // hour, day (default) or month
	GroupBy  string // comma-separated: country, category
}

// ParseUsageQuery validates p, listing every problem, and returns the
// query: from defaults to the start of now's month, to to a month after
// from, both must be whole hours (UTC; usage is counted per hour, and a
// time inside an hour is an error naming the hour to use, not rounded), and
// the range may be at most maxRange (0: unlimited). The API and the CLI
// both build their queries here.
func ParseUsageQuery(p UsageParams, now time.Time, maxRange time.Duration) (UsageQuery, error) {
	q := UsageQuery{CustomerID: p.Customer, Window: Day, From: MonthStart(now)}
	var errs []error
	if p.From != "" {
		t, err := ParseTime(p.From)
		errs = append(errs, field("from", err))
		q.From = t
	}
	q.To = q.From.AddDate(0, 1, 0)
	if p.To != "" {
		t, err := ParseTime(p.To)
		errs = append(errs, field("to", err))
		q.To = t
	}
	if p.Window != "" {
		switch w := Window(p.Window); w {
		case Hour, Day, Month:
			q.Window = w
		default:
			errs = append(errs, fmt.Errorf("window: %q is not hour, day or month", p.Window))
		}
	}
	g, err := ParseDimensions(p.GroupBy, ByCountry, ByCategory)
	errs = append(errs, field("group_by", err))
	q.GroupBy = g
	if err := errors.Join(errs...); err != nil {
		return q, postage.Errorf(postage.EINVALID, "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if err := checkRange(q.From, q.To); err != nil {
		return q, postage.Errorf(postage.EINVALID, "%s", joinLines(err))
	}
	if maxRange > 0 && q.To.Sub(q.From) > maxRange {
		return q, postage.Errorf(postage.EINVALID, "range from %s to %s is longer than the maximum of %s", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339), maxRange)
	}
	return q, nil
}

func field(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", name, err)
}

// ParseTime reads an RFC 3339 time (kept as UTC) or a YYYY-MM-DD date (UTC
// midnight), the two forms every usage range accepts.
func ParseTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time or YYYY-MM-DD date", v)
}

// ParseDimensions reads a comma-separated list of dimensions, each one of
// allowed; empty items are skipped and "" is no dimension.
func ParseDimensions(v string, allowed ...Dimension) ([]Dimension, error) {
	out := []Dimension{}
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		d := Dimension(p)
		ok := false
		for _, a := range allowed {
			ok = ok || a == d
		}
		if !ok {
			return nil, fmt.Errorf("%q is not one of %v", p, allowed)
		}
		out = append(out, d)
	}
	return out, nil
}
