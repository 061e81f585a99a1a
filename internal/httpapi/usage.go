package httpapi

import (
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"postage"
	"postage/metering"
	"postage/pricing"
)

// UsageResponse is a customer's usage over a range.
type UsageResponse struct {
	CustomerID string               `json:"customer_id"`
	From       time.Time            `json:"from"`
	To         time.Time            `json:"to"`
	Window     metering.Window      `json:"window"`
	GroupBy    []metering.Dimension `json:"group_by"`
	Data       []metering.UsageRow  `json:"data"`
}

// SummaryResponse is everyone's usage in a month.
type SummaryResponse struct {
	Period  string               `json:"period"`
	GroupBy []metering.Dimension `json:"group_by"`
	Data    []metering.UsageRow  `json:"data"`
}

func (s *Server) usageRoutes() {
	if s.Metering.Usage == nil {
		return
	}
	s.handle(Route{Method: "GET", Path: "/api/v1/customers/:id/usage", Tag: "metering", Roles: staffAndOwner, Produces: []string{"text/csv"},
		Summary: "A customer's exact usage in [from, to), bucketed by UTC hour, day or month; empty buckets omitted (customer keys: only their own). CSV with Accept: text/csv.",
		Query: []Param{
			{Name: "from", Description: "RFC 3339 time or YYYY-MM-DD, a whole hour in UTC (default: first of the current month)", Schema: dateOrTime("")},
			{Name: "to", Description: "RFC 3339 time or YYYY-MM-DD, exclusive, a whole hour in UTC (default: from + 1 month)", Schema: dateOrTime("")},
			{Name: "window", Description: "hour, day (default) or month", Schema: metering.Window("")},
			{Name: "group_by", Description: "comma list of country, category"},
			{Name: "format", Description: "csv for CSV (or send Accept: text/csv)", Schema: formatParam("")},
		},
		Response: UsageResponse{}}, s.getUsage)
	s.handle(Route{Method: "GET", Path: "/api/v1/usage/summary", Tag: "metering", Roles: financeOnly, Produces: []string{"text/csv"},
		Summary: "Every customer's exact usage in a calendar month, grouped. Customer ids unknown to the ledger (e.g. unknown:<phone_number_id>) are unbilled usage.",
		Query: []Param{
			{Name: "period", Description: "YYYY-MM (default: current month)", Schema: pricing.Month{}},
			{Name: "group_by", Description: "comma list of customer, country, category (default customer)"},
			{Name: "format", Description: "csv for CSV (or send Accept: text/csv)", Schema: formatParam("")},
		},
		Response: SummaryResponse{}}, s.getUsageSummary)
}

// usageQuery validates the usage route's query string.
func (s *Server) usageQuery(c *gin.Context, customer string) (metering.UsageQuery, error) {
	return metering.ParseUsageQuery(metering.UsageParams{
		Customer: customer, From: c.Query("from"), To: c.Query("to"), Window: c.Query("window"), GroupBy: c.Query("group_by"),
	}, s.Now(), s.Config.Usage.MaxRange.Duration)
}

func (s *Server) getUsage(c *gin.Context) {
	id, ok := s.customerParam(c)
	if !ok {
		return
	}
	q, err := s.usageQuery(c, id)
	if err != nil {
		s.writeError(c, err)
		return
	}
	rows, err := s.Metering.Usage.Usage(c.Request.Context(), q)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if wantsCSV(c) {
		writeUsageCSV(c, fmt.Sprintf("usage-%s.csv", id), q.GroupBy, rows)
		return
	}
	if q.GroupBy == nil {
		q.GroupBy = []metering.Dimension{}
	}
	s.writeUsageJSON(c, UsageResponse{CustomerID: id, From: q.From, To: q.To, Window: q.Window, GroupBy: q.GroupBy, Data: []metering.UsageRow{}}, rows)
}

func (s *Server) getUsageSummary(c *gin.Context) {
	var errs []error
	month := metering.MonthStart(s.Now())
	if v := c.Query("period"); v != "" {
		t, err := time.Parse("2006-01", v)
		if err != nil {
			errs = append(errs, fmt.Errorf("period: %q is not YYYY-MM", v))
		}
		month = t
	}
	g, err := metering.ParseDimensions(c.Query("group_by"), metering.ByCustomer, metering.ByCountry, metering.ByCategory)
	errs = append(errs, err)
	if len(g) == 0 {
		g = []metering.Dimension{metering.ByCustomer}
	}
	if err := errors.Join(errs...); err != nil {
		s.writeError(c, postage.Errorf(postage.EINVALID, "%s", err.Error()))
		return
	}
	rows, err := s.Metering.Usage.Summary(c.Request.Context(), metering.SummaryQuery{Month: month, GroupBy: g})
	if err != nil {
		s.writeError(c, err)
		return
	}
	if wantsCSV(c) {
		writeUsageCSV(c, "usage-summary-"+month.Format("2006-01")+".csv", append([]metering.Dimension{metering.ByCustomer}, g...), rows)
		return
	}
	s.writeUsageJSON(c, SummaryResponse{Period: month.Format("2006-01"), GroupBy: g, Data: []metering.UsageRow{}}, rows)
}

// writeUsageCSV writes rows as CSV: start, the grouped dimensions, quantity,
// events. Cells that a spreadsheet would run as a formula are prefixed with
// a quote.
func writeUsageCSV(c *gin.Context, filename string, dims []metering.Dimension, rows []metering.UsageRow) {
	c.Header("Content-Type", "text/csv; charset=utf-8")
	attachment(c, filename)
	c.Status(http.StatusOK)
	w := csv.NewWriter(c.Writer)
	has := map[metering.Dimension]bool{}
	for _, d := range dims {
		has[d] = true
	}
	head := []string{"start"}
	for _, d := range []metering.Dimension{metering.ByCustomer, metering.ByCountry, metering.ByCategory} {
		if has[d] {
			head = append(head, string(d))
		}
	}
	_ = w.Write(append(head, "quantity", "events"))
	for _, r := range rows {
		rec := []string{r.Start.Format(time.RFC3339)}
		if has[metering.ByCustomer] {
			rec = append(rec, csvSafe(r.CustomerID))
		}
		if has[metering.ByCountry] {
			rec = append(rec, r.Country)
		}
		if has[metering.ByCategory] {
			rec = append(rec, r.Category)
		}
		_ = w.Write(append(rec, strconv.FormatUint(r.Quantity, 10), strconv.FormatUint(r.Events, 10)))
	}
	w.Flush()
}

func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
