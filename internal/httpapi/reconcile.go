package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"postage"
	"postage/internal/auth"
	"postage/pricing"
	"postage/reconcile"
	"postage/reports"
)

// ReconcileDeps is what the reconciliation routes call into.
type ReconcileDeps struct {
	// Service imports upstream reports, compares and accepts (nil: the
	// routes answer 503).
	Service *reconcile.Service
}

// marginRoles may read margins and simulate an upstream price change:
// sales (pricing) and finance (the books).
var marginRoles = []auth.Role{auth.RoleAdmin, auth.RoleFinance, auth.RoleSales}

// Types that stand for parameters in the document.
type (
	// marginGroup is the margin report's grouping.
	marginGroup string
)

// marginRoutes registers the margin report and the margin simulation
// (docs/REPORTS.md, "Margin").
func (s *Server) marginRoutes() {
	csv := []string{"text/csv"}
	format := Param{Name: "format", Description: "csv for CSV (or send Accept: text/csv)", Schema: formatParam("")}
	s.handle(Route{Method: "GET", Path: "/api/v1/reports/margin", Tag: "reports", Summary: "Margin: revenue (the customers' cards) minus upstream cost (the cost card in effect) by customer, market, category or line, month to date and projected; negative margins flagged.", Roles: marginRoles, Produces: csv,
		Query: []Param{
			{Name: "month", Description: "YYYY-MM (default: the running month)", Schema: pricing.Month{}},
			{Name: "group_by", Description: "customer (default), market, category or line (customer × market × category)", Schema: marginGroup("")},
			{Name: "customer", Description: "only this customer"},
			format,
		},
		Response: reports.MarginReport{}, Long: true}, func(c *gin.Context) {
		svc, ok := s.reportsService(c)
		if !ok {
			return
		}
		var m pricing.Month
		if v := c.Query("month"); v != "" {
			var err error
			if m, err = pricing.ParseMonth(v); err != nil {
				s.writeError(c, postage.Errorf(postage.EINVALID, "month: %s", postage.ErrorMessage(err)))
				return
			}
		}
		rep, err := svc.Margin(c.Request.Context(), reports.MarginQuery{Month: m, GroupBy: c.Query("group_by"), CustomerID: c.Query("customer")})
		if err != nil {
			s.writeError(c, err)
			return
		}
		s.writeReport(c, rep, rep.Table(), "margin-"+rep.Month.String()+"-"+rep.GroupBy)
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/simulations/margin", Tag: "simulations", Summary: "What an upstream price change does to margin: past usage at a proposed cost card version (a draft) against the version in effect, per customer, market and category, and for the whole book.", Roles: marginRoles, Produces: csv,
		Query: []Param{format}, Request: reports.MarginSimulationRequest{}, Response: reports.MarginSimulation{}, Long: true}, func(c *gin.Context) {
		svc, ok := s.reportsService(c)
		if !ok {
			return
		}
		var req reports.MarginSimulationRequest
		if err := bindJSON(c, &req); err != nil {
			s.writeError(c, err)
			return
		}
		sim, err := svc.SimulateMargin(c.Request.Context(), req)
		if err != nil {
			s.writeError(c, err)
			return
		}
		s.writeReport(c, sim, sim.Table(), "margin-simulation-"+sim.CardID+"-"+strconv.Itoa(sim.ProposedVersion))
	})
}

// reconcileRoutes registers /api/v1/reconciliations/... (finance's;
// docs/RECONCILIATION.md).
func (s *Server) reconcileRoutes() {
	const tag = "reconciliation"
	month := []Param{{Name: "month", Description: "the month, YYYY-MM", Schema: pricing.Month{}}}
	s.handle(Route{Method: "POST", Path: "/api/v1/reconciliations/:month/reports", Tag: tag, Summary: "Import the upstream's usage-and-cost report of a month (Meta's pricing analytics, CSV or JSON) and compare it with postage's own count and cost; a bad file is refused whole with every problem.", Roles: financeOnly,
		PathParams: month,
		Query: []Param{
			{Name: "source", Description: "the file's name, kept with the report"},
			{Name: "currency", Description: "the currency of the file's costs (default: the cost card's)"},
		},
		Request: Media{"text/csv": nil, "application/json": nil}, Response: reconcile.Reconciliation{}, Status: http.StatusCreated, Long: true}, func(c *gin.Context) {
		svc, ok := s.reconcileService(c)
		if !ok {
			return
		}
		m, ok := s.monthParam(c)
		if !ok {
			return
		}
		var format string
		switch ct := c.ContentType(); ct {
		case "text/csv", "text/plain":
			format = reconcile.FormatCSV
		case "application/json":
			format = reconcile.FormatJSON
		default:
			s.writeError(c, postage.Errorf(postage.EUNSUPPORTED, "Content-Type must be text/csv or application/json, not %q", ct))
			return
		}
		body, err := io.ReadAll(c.Request.Body)
		if err != nil {
			s.writeError(c, jsonError(err))
			return
		}
		check := checkCSVText
		if format == reconcile.FormatJSON {
			check = checkJSONText
		}
		if err := check(body); err != nil {
			s.writeError(c, err)
			return
		}
		rec, err := svc.Import(c.Request.Context(), reconcile.ImportRequest{Month: m, Format: format, Currency: c.Query("currency"),
			Source: c.Query("source"), By: who(c), Body: bytes.NewReader(body)})
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusCreated, rec)
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/reconciliations/:month", Tag: tag, Summary: "A month's reconciliation: both sides' totals, the differences per cause, unmapped phone numbers, the status against the tolerance and the acceptances.", Roles: financeOnly,
		PathParams: month, Response: reconcile.Reconciliation{}}, func(c *gin.Context) {
		svc, ok := s.reconcileService(c)
		if !ok {
			return
		}
		m, ok := s.monthParam(c)
		if !ok {
			return
		}
		rec, err := svc.Get(c.Request.Context(), m)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, rec)
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/reconciliations/:month/compare", Tag: tag, Summary: "Compare the month's latest report again with postage's usage as it is now (late events, phone numbers mapped since).", Roles: financeOnly,
		PathParams: month, Response: reconcile.Reconciliation{}, Long: true}, func(c *gin.Context) {
		svc, ok := s.reconcileService(c)
		if !ok {
			return
		}
		m, ok := s.monthParam(c)
		if !ok {
			return
		}
		rec, err := svc.Compare(c.Request.Context(), m)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, rec)
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/reconciliations/:month/differences", Tag: tag, Summary: "Every difference of the month's reconciliation with its likely cause, per customer, day, market and category (CSV: all of them).", Roles: financeOnly,
		PathParams: month, Produces: []string{"text/csv"},
		Query: []Param{
			{Name: "cause", Description: "only this cause", Schema: reconcile.Cause("")},
			{Name: "customer", Description: "only this customer"},
			{Name: "limit", Description: "page size, 1-1000 (default 100; CSV: all)", Schema: pageLimit(0)},
			{Name: "cursor", Description: "next_cursor of the previous page"},
			{Name: "format", Description: "csv for CSV (or send Accept: text/csv)", Schema: formatParam("")},
		},
		Response: List[reconcile.Difference]{}}, func(c *gin.Context) {
		svc, ok := s.reconcileService(c)
		if !ok {
			return
		}
		m, ok := s.monthParam(c)
		if !ok {
			return
		}
		f := reconcile.DiffFilter{Cause: reconcile.Cause(c.Query("cause")), Customer: c.Query("customer"), Limit: 100}
		if v := c.Query("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				s.writeError(c, postage.Errorf(postage.EINVALID, "limit: an integer from 1 to 1000"))
				return
			}
			f.Limit = n
		}
		if v := c.Query("cursor"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				s.writeError(c, postage.Errorf(postage.EINVALID, "cursor: the next_cursor of a previous page"))
				return
			}
			f.After = n
		}
		csvOut := wantsCSV(c)
		if csvOut && c.Query("limit") == "" {
			f.Limit = 0
		}
		ds, next, err := svc.Differences(c.Request.Context(), m, f)
		if err != nil {
			s.writeError(c, err)
			return
		}
		if csvOut {
			var b bytes.Buffer
			if err := reconcile.DifferencesTable(ds).WriteCSV(&b); err != nil {
				s.writeError(c, err)
				return
			}
			attachment(c, "reconciliation-"+m.String()+".csv")
			c.Data(http.StatusOK, "text/csv; charset=utf-8", b.Bytes())
			return
		}
		cursor := ""
		if next > 0 {
			cursor = strconv.Itoa(next)
		}
		c.JSON(http.StatusOK, listOf(ds, cursor))
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/reconciliations/:month/accept", Tag: tag, Summary: "Accept the month's difference (recorded with who, when and why): a month held for it may then be finalized.", Roles: financeOnly,
		PathParams: month, Request: reconcile.AcceptRequest{}, Response: reconcile.Reconciliation{}}, func(c *gin.Context) {
		svc, ok := s.reconcileService(c)
		if !ok {
			return
		}
		m, ok := s.monthParam(c)
		if !ok {
			return
		}
		var req reconcile.AcceptRequest
		if err := bindJSON(c, &req); err != nil {
			s.writeError(c, err)
			return
		}
		rec, err := svc.Accept(c.Request.Context(), m, who(c), req.Reason)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, rec)
	})
}

// who names the caller for the record: the API key's name and id.
func who(c *gin.Context) string {
	p := principal(c)
	return fmt.Sprintf("%s (key %s)", p.Name, p.KeyID)
}

func (s *Server) reconcileService(c *gin.Context) (*reconcile.Service, bool) {
	if s.Reconcile.Service == nil {
		s.writeError(c, postage.Errorf(postage.EUNAVAILABLE, "reconciliation is not configured on this server"))
		return nil, false
	}
	return s.Reconcile.Service, true
}

// monthParam reads the :month path parameter.
func (s *Server) monthParam(c *gin.Context) (pricing.Month, bool) {
	m, err := pricing.ParseMonth(c.Param("month"))
	if err != nil {
		s.writeError(c, postage.Errorf(postage.EINVALID, "month: %s", postage.ErrorMessage(err)))
		return m, false
	}
	return m, true
}
