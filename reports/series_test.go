package reports

import (
	"context"

	"postage/metering"
)

// meterSeries answers usage series from metering's Usage.Series, as
// internal/app wires reports (the app's adapter cannot be imported here).
type meterSeries struct{ m metering.Usage }

func (s meterSeries) Series(ctx context.Context, q SeriesQuery) ([]Point, error) {
	rows, err := s.m.Series(ctx, metering.SeriesQuery{From: q.From, To: q.To, Window: metering.Window(q.Window), GroupBy: metering.Dimension(q.GroupBy), CustomerID: q.CustomerID})
	if err != nil {
		return nil, err
	}
	var out []Point
	for _, r := range rows {
		p := Point{Start: r.Start, Quantity: int64(r.Quantity)}
		switch q.GroupBy {
		case "country":
			p.Key = r.Country
		case "category":
			p.Key = r.Category
		}
		out = append(out, p)
	}
	return out, nil
}
