package httpapi

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"postage"
	"postage/metering"
	"postage/pricing"
	"postage/reports"
)

// ReportsDeps is what the reports and simulation routes call into.
type ReportsDeps struct {
	// Reports computes reports and simulations (nil: the routes answer 503).
	Reports *reports.Service
}

// reportsRoutes registers /api/v1/reports/... and /api/v1/simulations
// (docs/REPORTS.md describes the shapes).
func (s *Server) reportsRoutes() {
	const tag = "reports"
	csv := []string{"text/csv"}
	format := Param{Name: "format", Description: "csv for CSV (or send Accept: text/csv)", Schema: formatParam("")}
	monthRange := []Param{
		{Name: "from", Description: "first month, YYYY-MM (default: three months before the last complete one)", Schema: pricing.Month{}},
		{Name: "to", Description: "last month, YYYY-MM, inclusive (default: the last complete month)", Schema: pricing.Month{}},
	}
	s.handle(Route{Method: "GET", Path: "/api/v1/countries", Tag: "meta", Summary: "Every country code rating accepts with its English name: the names the dashboard and documents show.", Roles: staffAndOwner,
		Response: List[reports.Country]{}}, func(c *gin.Context) {
		c.Header("Cache-Control", "private, max-age=86400")
		c.JSON(http.StatusOK, listOf(reports.Countries(), ""))
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/reports/revenue", Tag: tag, Summary: "Revenue (rated usage) by month, customer, market, country or category, per currency.", Roles: staff, Produces: csv,
		Query:    append(monthRange, Param{Name: "group_by", Description: "month (default), customer, market, country or category", Schema: revenueGroup("")}, Param{Name: "customer", Description: "only this customer"}, format),
		Response: reports.RevenueReport{}}, func(c *gin.Context) {
		svc, ok := s.reportsService(c)
		if !ok {
			return
		}
		from, to, err := s.monthRangeParams(c, 0)
		if err != nil {
			s.writeError(c, err)
			return
		}
		rep, err := svc.Revenue(c.Request.Context(), reports.RevenueQuery{From: from, To: to, GroupBy: c.Query("group_by"), CustomerID: c.Query("customer")})
		if err != nil {
			s.writeError(c, err)
			return
		}
		s.writeReport(c, rep, rep.Table(), "revenue-"+from.String()+"-"+to.String())
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/reports/usage", Tag: tag, Summary: "Usage trend per day or month across customers (or one), optionally by category or country.", Roles: staff, Produces: csv,
		Query: []Param{
			{Name: "from", Description: "start, YYYY-MM-DD or RFC 3339 (default: 30 days before today)", Schema: dateOrTime("")},
			{Name: "to", Description: "end (exclusive), YYYY-MM-DD or RFC 3339 (default: tomorrow 00:00 UTC)", Schema: dateOrTime("")},
			{Name: "window", Description: "day (default) or month", Schema: reports.SeriesWindow("")},
			{Name: "group_by", Description: "category or country (default: none)", Schema: usageTrendGroup("")},
			{Name: "customer", Description: "only this customer"},
			format,
		},
		Response: reports.UsageReport{}}, func(c *gin.Context) {
		svc, ok := s.reportsService(c)
		if !ok {
			return
		}
		now := s.Now().UTC()
		tomorrow := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
		from, err := timeParam(c, "from", tomorrow.AddDate(0, 0, -30))
		if err != nil {
			s.writeError(c, err)
			return
		}
		to, err := timeParam(c, "to", tomorrow)
		if err != nil {
			s.writeError(c, err)
			return
		}
		rep, err := svc.UsageTrend(c.Request.Context(), reports.SeriesQuery{From: from, To: to, Window: reports.SeriesWindow(c.Query("window")), GroupBy: c.Query("group_by"), CustomerID: c.Query("customer")})
		if err != nil {
			s.writeError(c, err)
			return
		}
		s.writeReport(c, rep, rep.Table(), "usage-"+from.Format("2006-01-02")+"-"+to.Format("2006-01-02"))
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/reports/top-customers", Tag: tag, Summary: "Customers ranked by rated amount or by quantity.", Roles: staff, Produces: csv,
		Query:    append(monthRange, Param{Name: "by", Description: "amount (default) or quantity", Schema: rankBy("")}, Param{Name: "limit", Description: "1-1000 (default 10)", Schema: pageLimit(0)}, format),
		Response: reports.TopReport{}}, func(c *gin.Context) {
		svc, ok := s.reportsService(c)
		if !ok {
			return
		}
		from, to, err := s.monthRangeParams(c, 0)
		if err != nil {
			s.writeError(c, err)
			return
		}
		limit := 0
		if l := c.Query("limit"); l != "" {
			if limit, err = strconv.Atoi(l); err != nil || limit < 1 {
				s.writeError(c, postage.Errorf(postage.EINVALID, "limit: an integer from 1 to 1000"))
				return
			}
		}
		rep, err := svc.TopCustomers(c.Request.Context(), reports.TopQuery{From: from, To: to, By: c.Query("by"), Limit: limit})
		if err != nil {
			s.writeError(c, err)
			return
		}
		s.writeReport(c, rep, rep.Table(), "top-customers-"+from.String()+"-"+to.String())
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/reports/unbilled", Tag: tag, Summary: "Usage no invoice bills: unknown customers, no rate card, unratable usage (live, per customer-month).", Roles: financeOnly, Produces: csv,
		Query: []Param{
			{Name: "from", Description: "first month, YYYY-MM (default: three months before the running one)", Schema: pricing.Month{}},
			{Name: "to", Description: "last month, YYYY-MM (default: the running month)", Schema: pricing.Month{}},
			format,
		},
		Response: reports.UnbilledReport{}}, func(c *gin.Context) {
		svc, ok := s.reportsService(c)
		if !ok {
			return
		}
		from, to, err := s.monthRangeParams(c, 1)
		if err != nil {
			s.writeError(c, err)
			return
		}
		rep, err := svc.Unbilled(c.Request.Context(), from, to)
		if err != nil {
			s.writeError(c, err)
			return
		}
		s.writeReport(c, rep, rep.Table(), "unbilled-"+from.String()+"-"+to.String())
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/reports/forecast", Tag: tag, Summary: "Month-to-date revenue and its projection to the whole month, per customer.", Roles: financeOnly, Produces: csv,
		Query:    []Param{{Name: "month", Description: "YYYY-MM (default: the running month)", Schema: pricing.Month{}}, {Name: "customer", Description: "only this customer"}, format},
		Response: reports.ForecastReport{}}, func(c *gin.Context) {
		svc, ok := s.reportsService(c)
		if !ok {
			return
		}
		var m pricing.Month
		if v := c.Query("month"); v != "" {
			var err error
			if m, err = pricing.ParseMonth(v); err != nil {
				s.writeError(c, err)
				return
			}
		}
		rep, err := svc.Forecast(c.Request.Context(), reports.ForecastQuery{Month: m, CustomerID: c.Query("customer")})
		if err != nil {
			s.writeError(c, err)
			return
		}
		s.writeReport(c, rep, rep.Table(), "forecast-"+rep.Month.String())
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/simulations", Long: true, Tag: "simulations", Summary: "Re-rate real past usage under a proposed card (a draft version or another card): current vs proposed per customer, by market and category, and book totals.", Roles: salesOnly, Produces: csv,
		Query: []Param{format}, Request: reports.SimulationRequest{}, Response: reports.Simulation{}}, func(c *gin.Context) {
		svc, ok := s.reportsService(c)
		if !ok {
			return
		}
		var req reports.SimulationRequest
		if err := bindJSON(c, &req); err != nil {
			s.writeError(c, err)
			return
		}
		sim, err := svc.Simulate(c.Request.Context(), req)
		if err != nil {
			s.writeError(c, err)
			return
		}
		s.writeReport(c, sim, sim.Table(), "simulation-"+req.CardID+"-"+req.From.String()+"-"+req.To.String())
	})
}

func (s *Server) reportsService(c *gin.Context) (*reports.Service, bool) {
	if s.Reports.Reports == nil {
		s.writeError(c, postage.Errorf(postage.EUNAVAILABLE, "reports are not configured on this server"))
		return nil, false
	}
	return s.Reports.Reports, true
}

// monthRangeParams reads ?from= and ?to= months. By default the range is
// the three months ending `ahead` months after the last complete month
// (ahead 0: the last three complete months; 1: up to the running month).
func (s *Server) monthRangeParams(c *gin.Context, ahead int) (pricing.Month, pricing.Month, error) {
	to := pricing.MonthOf(s.Now()).Prev()
	for range ahead {
		to = to.Next()
	}
	if v := c.Query("to"); v != "" {
		m, err := pricing.ParseMonth(v)
		if err != nil {
			return pricing.Month{}, pricing.Month{}, postage.Errorf(postage.EINVALID, "to: %s", postage.ErrorMessage(err))
		}
		to = m
	}
	from := to.Prev().Prev()
	if v := c.Query("from"); v != "" {
		m, err := pricing.ParseMonth(v)
		if err != nil {
			return pricing.Month{}, pricing.Month{}, postage.Errorf(postage.EINVALID, "from: %s", postage.ErrorMessage(err))
		}
		from = m
	}
	return from, to, nil
}

// timeParam reads a date (YYYY-MM-DD, midnight UTC) or an RFC 3339 time.
func timeParam(c *gin.Context, name string, def time.Time) (time.Time, error) {
	v := c.Query(name)
	if v == "" {
		return def, nil
	}
	t, err := metering.ParseTime(v)
	if err != nil {
		return time.Time{}, postage.Errorf(postage.EINVALID, "%s: %s", name, err)
	}
	return t, nil
}

// wantsCSV reports whether the caller asked for CSV: ?format=csv, or an
// Accept header naming text/csv before (or without) application/json.
// ?format=json wins over the header.
func wantsCSV(c *gin.Context) bool {
	switch strings.ToLower(c.Query("format")) {
	case "csv":
		return true
	case "json":
		return false
	}
	accept := strings.ToLower(c.GetHeader("Accept"))
	i := strings.Index(accept, "text/csv")
	j := strings.Index(accept, "application/json")
	return i >= 0 && (j < 0 || i < j)
}

// writeReport answers the report as JSON, or its table as CSV.
func (s *Server) writeReport(c *gin.Context, v any, t reports.Table, name string) {
	if !wantsCSV(c) {
		c.JSON(http.StatusOK, v)
		return
	}
	var b bytes.Buffer
	if err := t.WriteCSV(&b); err != nil {
		s.writeError(c, err)
		return
	}
	attachment(c, name+".csv")
	c.Data(http.StatusOK, "text/csv; charset=utf-8", b.Bytes())
}
