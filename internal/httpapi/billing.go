package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"postage"
	"postage/billing"
	"postage/internal/auth"
	"postage/pricing"
	"postage/reports"
)

// BillingDeps is what the invoice routes call into.
type BillingDeps struct {
	// Runner runs periods, approves, voids and computes upcoming bills
	// (nil: the routes answer 503).
	Runner   *billing.Runner
	Invoices billing.Invoices
	// Accounts records payments and credit notes and reports what is owed
	// (nil: those routes answer 503).
	Accounts *billing.Accounts
	// Taxes keeps tax rates.
	Taxes billing.TaxRates
}

// billingRoutes registers the finance invoice API and the customers'
// invoice reads (docs/BILLING.md).
func (s *Server) billingRoutes() {
	const tag = "invoices"
	invoiceID := []Param{{Name: "id", Description: "invoice id"}}
	listQuery := append([]Param{
		{Name: "period", Description: "only this month, YYYY-MM", Schema: pricing.Month{}},
		{Name: "status", Description: "draft, finalized or void", Schema: billing.Status("")},
		{Name: "customer", Description: "only this customer id"},
		{Name: "number", Description: "only the invoice with this number (PST-2026-000099)"},
	}, pageQuery...)
	s.handle(Route{Method: "GET", Path: "/api/v1/invoices", Tag: tag, Summary: "List invoices, newest period first, with filters and cursor pagination.", Roles: financeOnly, Query: listQuery,
		Response: List[billing.Invoice]{}}, func(c *gin.Context) {
		if !s.billingReady(c) {
			return
		}
		f, err := invoiceFilter(c)
		if err != nil {
			s.writeError(c, err)
			return
		}
		writePage(s, c, func(ctx context.Context, p billing.Page) ([]billing.Invoice, string, error) {
			return s.Billing.Invoices.List(ctx, f, p)
		})
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/invoices.csv", Tag: tag, Summary: "Export every invoice of a period (all statuses) as one CSV, one row per line.", Roles: financeOnly, Produces: []string{"text/csv"},
		Query: []Param{{Name: "period", Description: "the month, YYYY-MM", Required: true, Schema: pricing.Month{}}}}, func(c *gin.Context) {
		if !s.billingReady(c) {
			return
		}
		period, err := requiredMonth(c, "period")
		if err != nil {
			s.writeError(c, err)
			return
		}
		invs, err := s.Billing.Invoices.PeriodInvoices(c.Request.Context(), period)
		if err != nil {
			s.writeError(c, err)
			return
		}
		s.writeInvoiceCSV(c, "invoices-"+period.String()+".csv", invs)
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/invoices/:id", Tag: tag, Summary: "Get an invoice as JSON; append .csv or .pdf to the id for those formats (customer keys: their own finalized or void invoices).", Roles: financeAndOwner,
		PathParams: []Param{{Name: "id", Description: "invoice id, optionally followed by .csv or .pdf"}}, Response: billing.Invoice{}, Produces: []string{"text/csv", "application/pdf"}}, func(c *gin.Context) {
		if !s.billingReady(c) {
			return
		}
		id, format := c.Param("id"), ""
		for _, ext := range []string{".csv", ".pdf"} {
			if base, ok := strings.CutSuffix(id, ext); ok {
				id, format = base, ext
			}
		}
		inv, ok := s.visibleInvoice(c, id)
		if !ok {
			return
		}
		switch format {
		case ".csv", ".pdf":
			// A finalized invoice's documents are drawn once and served byte
			// for byte ever after (docs/BILLING.md).
			f, mime := billing.FormatCSV, "text/csv; charset=utf-8"
			if format == ".pdf" {
				f, mime = billing.FormatPDF, "application/pdf"
			}
			doc, err := s.Billing.Runner.Document(c.Request.Context(), inv, f)
			if err != nil {
				s.writeError(c, err)
				return
			}
			attachment(c, invoiceFileName(inv)+format)
			c.Data(http.StatusOK, mime, doc)
		default:
			c.JSON(http.StatusOK, inv)
		}
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/invoices/:id/approve", Tag: tag, Summary: "Finalize a draft now (assigns its number); another status is 409.", Roles: financeOnly,
		PathParams: invoiceID, Response: billing.Invoice{}}, func(c *gin.Context) {
		if !s.billingReady(c) {
			return
		}
		inv, err := s.Billing.Runner.Approve(c.Request.Context(), c.Param("id"))
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, inv)
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/invoices/:id/void", Tag: tag, Summary: "Void a finalized invoice with a reason and reissue it as a new draft; another status is 409.", Roles: financeOnly,
		PathParams: invoiceID, Request: VoidRequest{}, Response: VoidResult{}}, func(c *gin.Context) {
		if !s.billingReady(c) {
			return
		}
		var in VoidRequest
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		voided, reissued, err := s.Billing.Runner.Void(c.Request.Context(), c.Param("id"), strings.TrimSpace(in.Reason))
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, VoidResult{Voided: voided, Reissued: reissued})
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/invoice-runs", Long: true, Tag: tag, Summary: "Run a past period now: create or refresh its drafts, finalize those past grace (waits for a run in progress).", Roles: financeOnly,
		Request: RunRequest{}, Response: billing.Run{}}, func(c *gin.Context) {
		if !s.billingReady(c) {
			return
		}
		var in RunRequest
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		period, err := pricing.ParseMonth(in.Period)
		if err != nil {
			s.writeError(c, err)
			return
		}
		run, err := s.Billing.Runner.Run(c.Request.Context(), billing.RunRequest{Period: period, Trigger: billing.TriggerAPI, Wait: true})
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, run)
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/invoice-runs", Tag: tag, Summary: "The latest invoice runs, newest first.", Roles: financeOnly,
		Query:    []Param{{Name: "period", Description: "only this month, YYYY-MM", Schema: pricing.Month{}}, {Name: "limit", Description: "1-1000 (default 50)", Schema: pageLimit(0)}},
		Response: List[billing.Run]{}}, func(c *gin.Context) {
		if !s.billingReady(c) {
			return
		}
		var period pricing.Month
		if p := c.Query("period"); p != "" {
			var err error
			if period, err = pricing.ParseMonth(p); err != nil {
				s.writeError(c, err)
				return
			}
		}
		limit := 50
		if l := c.Query("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil || n < 1 || n > 1000 {
				s.writeError(c, postage.Errorf(postage.EINVALID, "limit: an integer from 1 to 1000"))
				return
			}
			limit = n
		}
		runs, err := s.Billing.Invoices.Runs(c.Request.Context(), period, limit)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, listOf(runs, ""))
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/invoice-runs/unbilled", Tag: tag, Summary: "Usage the last run of a period could not bill: unknown customers, customers without a rate card.", Roles: financeOnly,
		Query:    []Param{{Name: "period", Description: "the month, YYYY-MM", Required: true, Schema: pricing.Month{}}},
		Response: List[billing.UnbilledUsage]{}}, func(c *gin.Context) {
		if !s.billingReady(c) {
			return
		}
		period, err := requiredMonth(c, "period")
		if err != nil {
			s.writeError(c, err)
			return
		}
		rows, err := s.Billing.Invoices.Unbilled(c.Request.Context(), period)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, listOf(rows, ""))
	})

	// Customers' own view.
	s.handle(Route{Method: "GET", Path: "/api/v1/customers/:id/invoices", Tag: tag, Summary: "A customer's invoices (customer keys: their own, finalized and void only).", Roles: financeAndOwner,
		Query: append([]Param{
			{Name: "period", Description: "only this month, YYYY-MM", Schema: pricing.Month{}},
			{Name: "status", Description: "draft, finalized or void", Schema: billing.Status("")},
			{Name: "number", Description: "only the invoice with this number (PST-2026-000099)"},
		}, pageQuery...),
		Response: List[billing.Invoice]{}}, func(c *gin.Context) {
		id, ok := s.customerParam(c)
		if !ok || !s.billingReady(c) {
			return
		}
		if _, err := s.Customers.Get(c.Request.Context(), id); err != nil {
			s.writeError(c, err)
			return
		}
		f, err := invoiceFilter(c)
		if err != nil {
			s.writeError(c, err)
			return
		}
		f.CustomerID = id
		if principal(c).Role == auth.RoleCustomer {
			if f.Status == billing.StatusDraft {
				c.JSON(http.StatusOK, listOf([]billing.Invoice{}, ""))
				return
			}
			f.NotDraft = true
		}
		writePage(s, c, func(ctx context.Context, p billing.Page) ([]billing.Invoice, string, error) {
			return s.Billing.Invoices.List(ctx, f, p)
		})
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/customers/:id/invoices/upcoming", Tag: tag, Summary: "The month-to-date bill: this month's usage so far, rated exactly as its invoice will be (customer keys: their own).", Roles: financeAndOwner,
		Response: billing.Invoice{}}, func(c *gin.Context) {
		id, ok := s.customerParam(c)
		if !ok || !s.billingReady(c) {
			return
		}
		inv, err := s.Billing.Runner.Upcoming(c.Request.Context(), id)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, inv)
	})

	s.financeRoutes()
}

// VoidRequest is the body of POST /api/v1/invoices/{id}/void.
type VoidRequest struct {
	Reason string `json:"reason"`
}

// VoidResult is the voided invoice and its reissued replacement.
type VoidResult struct {
	Voided   billing.Invoice `json:"voided"`
	Reissued billing.Invoice `json:"reissued"`
}

// RunRequest is the body of POST /api/v1/invoice-runs.
type RunRequest struct {
	Period string `json:"period"`
}

// requiredMonth reads a required YYYY-MM query parameter; a missing or
// malformed one is an error that names it.
func requiredMonth(c *gin.Context, name string) (pricing.Month, error) {
	v := c.Query(name)
	if v == "" {
		return pricing.Month{}, postage.Errorf(postage.EINVALID, "query parameter %s is required: a month, YYYY-MM (e.g. ?%s=2026-10)", name, name)
	}
	m, err := pricing.ParseMonth(v)
	if err != nil {
		return m, postage.Errorf(postage.EINVALID, "query parameter %s: %q is not a month, YYYY-MM", name, v)
	}
	return m, nil
}

func (s *Server) billingReady(c *gin.Context) bool {
	if s.Billing.Runner == nil || s.Billing.Invoices == nil {
		s.writeError(c, postage.Errorf(postage.EUNAVAILABLE, "billing is not configured on this server"))
		return false
	}
	return true
}

func invoiceFilter(c *gin.Context) (billing.InvoiceFilter, error) {
	f := billing.InvoiceFilter{Status: billing.Status(c.Query("status")), CustomerID: c.Query("customer"), Number: c.Query("number")}
	if p := c.Query("period"); p != "" {
		m, err := pricing.ParseMonth(p)
		if err != nil {
			return f, err
		}
		f.Period = m
	}
	return f, f.Validate()
}

// visibleInvoice loads an invoice the caller may see: customer keys see
// only their own customer's finalized and void invoices; anything else is
// not found, exactly as if it did not exist.
func (s *Server) visibleInvoice(c *gin.Context, id string) (billing.Invoice, bool) {
	inv, err := s.Billing.Invoices.Get(c.Request.Context(), id)
	p := principal(c)
	if err == nil && p.Role == auth.RoleCustomer && (!p.CanSeeCustomer(inv.CustomerID) || inv.Status == billing.StatusDraft) {
		err = postage.Errorf(postage.ENOTFOUND, "invoice %q not found", id)
	}
	if err != nil {
		s.writeError(c, err)
		return billing.Invoice{}, false
	}
	return inv, true
}

func invoiceFileName(inv billing.Invoice) string {
	if inv.Number != "" {
		return inv.Number
	}
	return inv.ID
}

func (s *Server) writeInvoiceCSV(c *gin.Context, name string, invs []billing.Invoice) {
	var buf bytes.Buffer
	if err := reports.InvoiceCSV(&buf, invs); err != nil {
		s.writeError(c, err)
		return
	}
	attachment(c, name)
	c.Data(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
}
