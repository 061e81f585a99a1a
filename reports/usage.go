package reports

import (
	"context"
	"fmt"
	"sort"
	"time"

	"postage"
)

// MaxSeriesDays bounds a daily series (about three years).
const MaxSeriesDays = 1100

// UsageReport is a usage trend: exact counts per window (and key).
type UsageReport struct {
	From    time.Time    `json:"from"`
	To      time.Time    `json:"to"`
	Window  SeriesWindow `json:"window"`
	GroupBy string       `json:"group_by"`
	Points  []Point      `json:"points"`
	Totals  []KeyTotal   `json:"totals"`
}

// KeyTotal is the total quantity of one key of a series.
type KeyTotal struct {
	Key      string `json:"key"`
	Quantity int64  `json:"quantity"`
}

// Validate checks the window, grouping and range of a series query.
func (q SeriesQuery) Validate() error {
	switch q.Window {
	case Day, Month:
	default:
		return postage.Errorf(postage.EINVALID, "window %q: want day or month", q.Window)
	}
	switch q.GroupBy {
	case "", "category", "country":
	default:
		return postage.Errorf(postage.EINVALID, "group_by %q: want category or country (or nothing)", q.GroupBy)
	}
	if q.From.IsZero() || q.To.IsZero() || !q.To.After(q.From) {
		return postage.Errorf(postage.EINVALID, "from must be before to")
	}
	if q.To.Sub(q.From) > MaxSeriesDays*24*time.Hour {
		return postage.Errorf(postage.EINVALID, "a range of at most %d days, please", MaxSeriesDays)
	}
	return nil
}

// UsageTrend returns the usage series the query asks for, one query.
func (s *Service) UsageTrend(ctx context.Context, q SeriesQuery) (*UsageReport, error) {
	if q.Window == "" {
		q.Window = Day
	}
	q.From, q.To = q.From.UTC(), q.To.UTC()
	if err := q.Validate(); err != nil {
		return nil, err
	}
	pts, err := s.Series.Series(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("usage series: %w", err)
	}
	if pts == nil {
		pts = []Point{}
	}
	sort.Slice(pts, func(i, j int) bool {
		if !pts[i].Start.Equal(pts[j].Start) {
			return pts[i].Start.Before(pts[j].Start)
		}
		return pts[i].Key < pts[j].Key
	})
	tot := map[string]int64{}
	for i := range pts {
		pts[i].Start = pts[i].Start.UTC()
		tot[pts[i].Key] += pts[i].Quantity
	}
	rep := &UsageReport{From: q.From, To: q.To, Window: q.Window, GroupBy: q.GroupBy, Points: pts, Totals: []KeyTotal{}}
	for k, n := range tot {
		rep.Totals = append(rep.Totals, KeyTotal{k, n})
	}
	sort.Slice(rep.Totals, func(i, j int) bool {
		if rep.Totals[i].Quantity != rep.Totals[j].Quantity {
			return rep.Totals[i].Quantity > rep.Totals[j].Quantity
		}
		return rep.Totals[i].Key < rep.Totals[j].Key
	})
	return rep, nil
}

// Table returns the points as a CSV table.
func (r *UsageReport) Table() Table {
	t := Table{Header: []string{"start", "key", "quantity"}}
	for _, p := range r.Points {
		t.Rows = append(t.Rows, []string{p.Start.Format(time.RFC3339), p.Key, itoa(p.Quantity)})
	}
	return t
}
