package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"postage"
	"postage/billing"
	"postage/internal/auth"
	"postage/reports"
)

// financeRoutes registers tax rates, receivables, payments, write-offs,
// credit notes and the aging report (docs/BILLING.md, "Taxes", "Payments
// and receivables", "Credit notes"). Finance and admin write; a customer
// key reads its own invoices' balance, payments and credit notes.
func (s *Server) financeRoutes() {
	taxRateID := []Param{{Name: "id", Description: "tax rate id"}}
	conflicts := []int{http.StatusConflict}

	// Tax rates.
	s.handle(Route{Method: "POST", Path: "/api/v1/tax-rates", Tag: "taxes", Summary: "Add a tax rate of a jurisdiction from a day (and until a day); one overlapping another of its jurisdiction is 409 tax_rate_overlap.",
		Roles: financeOnly, Request: billing.NewTaxRate{}, Response: billing.TaxRate{}, Status: http.StatusCreated}, func(c *gin.Context) {
		if !s.financeReady(c) {
			return
		}
		var in billing.NewTaxRate
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		r, err := in.Parse()
		if err != nil {
			s.writeError(c, err)
			return
		}
		out, err := s.Billing.Taxes.CreateTaxRate(c.Request.Context(), r)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.Header("Location", "/api/v1/tax-rates/"+out.ID)
		c.JSON(http.StatusCreated, out)
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/tax-rates", Tag: "taxes", Summary: "List tax rates by jurisdiction and start.", Roles: financeOnly,
		Query:    []Param{{Name: "jurisdiction", Description: "only this jurisdiction (DE, CA-QC)"}},
		Response: List[billing.TaxRate]{}}, func(c *gin.Context) {
		if !s.financeReady(c) {
			return
		}
		list, err := s.Billing.Taxes.TaxRates(c.Request.Context(), strings.ToUpper(c.Query("jurisdiction")))
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, listOf(list, ""))
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/tax-rates/:id", Tag: "taxes", Summary: "Get a tax rate.", Roles: financeOnly, PathParams: taxRateID,
		Response: billing.TaxRate{}}, func(c *gin.Context) {
		if !s.financeReady(c) {
			return
		}
		out, err := s.Billing.Taxes.TaxRate(c.Request.Context(), c.Param("id"))
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, out)
	})
	s.handle(Route{Method: "PATCH", Path: "/api/v1/tax-rates/:id", Tag: "taxes", Summary: "End a tax rate on a day (effective_to), move its end, or make it open-ended (\"\"); an overlap is 409 tax_rate_overlap.",
		Roles: financeOnly, PathParams: taxRateID, Request: billing.TaxRateUpdate{}, Response: billing.TaxRate{}}, func(c *gin.Context) {
		if !s.financeReady(c) {
			return
		}
		var in billing.TaxRateUpdate
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		var to *billing.Date
		if in.EffectiveTo != "" {
			d, err := billing.ParseDate(in.EffectiveTo)
			if err != nil {
				s.writeError(c, postage.Errorf(postage.EINVALID, "effective_to: want YYYY-MM-DD, or \"\" for open-ended"))
				return
			}
			to = &d
		}
		out, err := s.Billing.Taxes.SetTaxRateEnd(c.Request.Context(), c.Param("id"), to)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, out)
	})

	// Receivables.
	s.handle(Route{Method: "GET", Path: "/api/v1/receivables", Tag: "receivables", Summary: "What finalized invoices owe, newest issue first: balance, due date, payment status as of today.", Roles: financeOnly,
		Query: append([]Param{
			{Name: "customer", Description: "only this customer id"},
			{Name: "status", Description: "open, partially_paid, paid, overdue or uncollectible", Schema: billing.PaymentStatus("")},
			{Name: "outstanding", Description: "true: only those with a balance left", Schema: false},
		}, pageQuery...),
		Response: List[billing.Receivable]{}}, func(c *gin.Context) {
		if !s.financeReady(c) {
			return
		}
		f := billing.ReceivableFilter{CustomerID: c.Query("customer"), Status: billing.PaymentStatus(c.Query("status"))}
		switch c.Query("outstanding") {
		case "", "false":
		case "true":
			f.Outstanding = true
		default:
			s.writeError(c, postage.Errorf(postage.EINVALID, "outstanding: true or false"))
			return
		}
		writePage(s, c, func(ctx context.Context, p billing.Page) ([]billing.Receivable, string, error) {
			return s.Billing.Accounts.Receivables(ctx, f, p)
		})
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/receivables/aging", Tag: "receivables", Summary: "Accounts-receivable aging as of today: current, 1-30, 31-60, 61-90 and over 90 days past due, per customer and currency, with totals.",
		Roles: financeOnly, Produces: []string{"text/csv"},
		Query: []Param{
			{Name: "customer", Description: "only this customer id"},
			{Name: "format", Description: "csv for CSV (or send Accept: text/csv)", Schema: formatParam("")},
		},
		Response: billing.AgingReport{}}, func(c *gin.Context) {
		if !s.financeReady(c) {
			return
		}
		rep, err := s.Billing.Accounts.Aging(c.Request.Context(), c.Query("customer"))
		if err != nil {
			s.writeError(c, err)
			return
		}
		if !wantsCSV(c) {
			c.JSON(http.StatusOK, rep)
			return
		}
		var b bytes.Buffer
		if err := reports.AgingCSV(&b, rep); err != nil {
			s.writeError(c, err)
			return
		}
		attachment(c, "aging-"+rep.AsOf.String()+".csv")
		c.Data(http.StatusOK, "text/csv; charset=utf-8", b.Bytes())
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/invoices/:id/balance", Tag: "receivables", Summary: "What a finalized invoice owes: total, paid, credited, refunded, balance, due date, payment status (customer keys: their own invoices).",
		Roles: financeAndOwner, PathParams: invoiceID, Response: billing.Receivable{}, Errors: conflicts}, func(c *gin.Context) {
		if !s.financeReady(c) {
			return
		}
		inv, ok := s.visibleInvoice(c, c.Param("id"))
		if !ok {
			return
		}
		r, err := s.Billing.Accounts.Receivable(c.Request.Context(), inv.ID)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, r)
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/invoices/:id/uncollectible", Tag: "receivables", Summary: "Write a finalized invoice's balance off as uncollectible (a later payment is still recorded).",
		Roles: financeOnly, PathParams: invoiceID, Request: ReasonRequest{}, Response: billing.Receivable{}}, func(c *gin.Context) {
		if !s.financeReady(c) {
			return
		}
		var in ReasonRequest
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		r, err := s.Billing.Accounts.MarkUncollectible(c.Request.Context(), c.Param("id"), in.Reason)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, r)
	})

	// Payments and refunds: money moved outside postage, recorded against
	// an invoice.
	moneyRoutes(s, moneyRoute[billing.NewPayment, billing.Payment, RecordedPayment]{
		noun:          "payment",
		recordSummary: "Record a payment against a finalized invoice; another currency (currency_mismatch), more than the balance (overpayment) or a draft or void invoice (invoice_not_finalized) is 409. The same idempotency_key again answers 200 with the first payment.",
		record:        s.Billing.Accounts.RecordPayment,
		answer: func(p billing.Payment, r billing.Receivable) RecordedPayment {
			return RecordedPayment{Payment: p, Receivable: r}
		},
		list: func(ctx context.Context, customer, invoice string, p billing.Page) ([]billing.Payment, string, error) {
			return s.Billing.Accounts.Payments(ctx, billing.PaymentFilter{CustomerID: customer, InvoiceID: invoice}, p)
		},
	})
	moneyRoutes(s, moneyRoute[billing.NewRefund, billing.Refund, RecordedRefund]{
		noun:          "refund",
		recordSummary: "Record a refund paid back outside postage against a finalized invoice that owes the customer money (a negative balance); more than the customer is owed is 409 refund_exceeds_owed, another currency 409 currency_mismatch, a draft or void invoice 409 invoice_not_finalized. The same idempotency_key again answers 200 with the first refund.",
		record:        s.Billing.Accounts.RecordRefund,
		answer: func(f billing.Refund, r billing.Receivable) RecordedRefund {
			return RecordedRefund{Refund: f, Receivable: r}
		},
		list: func(ctx context.Context, customer, invoice string, p billing.Page) ([]billing.Refund, string, error) {
			return s.Billing.Accounts.Refunds(ctx, billing.RefundFilter{CustomerID: customer, InvoiceID: invoice}, p)
		},
	})

	// Credit notes.
	s.handle(Route{Method: "POST", Path: "/api/v1/invoices/:id/credit-notes", Tag: "credit-notes",
		Summary: "Issue a credit note against a finalized invoice: whole lines, part of a line's quantity, or amounts; more than is left to credit is 409 credit_exceeds_remaining, a draft or void invoice 409 invoice_not_finalized. The same idempotency_key again answers 200 with the first.",
		Roles:   financeOnly, PathParams: invoiceID, Request: billing.CreditNoteRequest{}, Response: billing.CreditNote{}, Status: http.StatusCreated,
		Other: map[int]any{http.StatusOK: billing.CreditNote{}}}, func(c *gin.Context) {
		if !s.financeReady(c) {
			return
		}
		var in billing.CreditNoteRequest
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		cn, existing, err := s.Billing.Accounts.IssueCreditNote(c.Request.Context(), c.Param("id"), in)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.Header("Location", "/api/v1/credit-notes/"+cn.ID)
		if existing {
			c.JSON(http.StatusOK, cn)
			return
		}
		c.JSON(http.StatusCreated, cn)
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/invoices/:id/credit-notes", Tag: "credit-notes", Summary: "The credit notes issued against an invoice, newest first (customer keys: their own invoices).",
		Roles: financeAndOwner, PathParams: invoiceID, Query: pageQuery, Response: List[billing.CreditNote]{}}, func(c *gin.Context) {
		if !s.financeReady(c) {
			return
		}
		inv, ok := s.visibleInvoice(c, c.Param("id"))
		if !ok {
			return
		}
		writePage(s, c, func(ctx context.Context, p billing.Page) ([]billing.CreditNote, string, error) {
			return s.Billing.Accounts.CreditNotes(ctx, billing.CreditNoteFilter{InvoiceID: inv.ID}, p)
		})
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/credit-notes", Tag: "credit-notes", Summary: "Credit notes, newest first, of one customer or invoice or all.", Roles: financeOnly,
		Query: append([]Param{
			{Name: "customer", Description: "only this customer id"},
			{Name: "invoice", Description: "only this invoice id"},
		}, pageQuery...),
		Response: List[billing.CreditNote]{}}, func(c *gin.Context) {
		if !s.financeReady(c) {
			return
		}
		writePage(s, c, func(ctx context.Context, p billing.Page) ([]billing.CreditNote, string, error) {
			return s.Billing.Accounts.CreditNotes(ctx, billing.CreditNoteFilter{CustomerID: c.Query("customer"), InvoiceID: c.Query("invoice")}, p)
		})
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/credit-notes/:id/void", Tag: "credit-notes",
		Summary: "Void a credit note (by id or number) with a reason: it keeps its number, its documents say VOID, and its total no longer reduces the invoice. Void already is 409 conflict; refunds that would then exceed what the customer is owed 409 refund_exceeds_owed.",
		Roles:   financeOnly, PathParams: []Param{{Name: "id", Description: "credit note id or number"}}, Request: ReasonRequest{}, Response: VoidedCreditNote{}}, func(c *gin.Context) {
		if !s.financeReady(c) {
			return
		}
		var in ReasonRequest
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		cn, r, err := s.Billing.Accounts.VoidCreditNote(c.Request.Context(), c.Param("id"), in.Reason)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, VoidedCreditNote{CreditNote: cn, Receivable: r})
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/credit-notes/:id", Tag: "credit-notes", Summary: "Get a credit note (by id or number) as JSON; append .csv or .pdf for those formats (customer keys: their own).",
		Roles: financeAndOwner, PathParams: []Param{{Name: "id", Description: "credit note id or number, optionally followed by .csv or .pdf"}},
		Response: billing.CreditNote{}, Produces: []string{"text/csv", "application/pdf"}}, func(c *gin.Context) {
		if !s.financeReady(c) {
			return
		}
		id, format := c.Param("id"), ""
		for _, ext := range []string{".csv", ".pdf"} {
			if base, ok := strings.CutSuffix(id, ext); ok {
				id, format = base, ext
			}
		}
		cn, err := s.Billing.Accounts.CreditNote(c.Request.Context(), id)
		if p := principal(c); err == nil && p.Role == auth.RoleCustomer && !p.CanSeeCustomer(cn.CustomerID) {
			err = postage.Errorf(postage.ENOTFOUND, "credit note %q not found", id)
		}
		if err != nil {
			s.writeError(c, err)
			return
		}
		if format == "" {
			c.JSON(http.StatusOK, cn)
			return
		}
		f, mime := billing.FormatCSV, "text/csv; charset=utf-8"
		if format == ".pdf" {
			f, mime = billing.FormatPDF, "application/pdf"
		}
		doc, err := s.Billing.Accounts.CreditNoteDocument(c.Request.Context(), cn, f)
		if err != nil {
			s.writeError(c, err)
			return
		}
		attachment(c, cn.Number+format)
		c.Data(http.StatusOK, mime, doc)
	})
}

// ReasonRequest is a body that only gives a reason.
type ReasonRequest struct {
	Reason string `json:"reason"`
}

// RecordedPayment is a recorded payment and what its invoice owes now.
type RecordedPayment struct {
	Payment    billing.Payment    `json:"payment"`
	Receivable billing.Receivable `json:"receivable"`
}

// VoidedCreditNote is a credit note just voided and what its invoice owes now.
type VoidedCreditNote struct {
	CreditNote billing.CreditNote `json:"credit_note"`
	Receivable billing.Receivable `json:"receivable"`
}

// RecordedRefund is a recorded refund and what its invoice owes now.
type RecordedRefund struct {
	Refund     billing.Refund     `json:"refund"`
	Receivable billing.Receivable `json:"receivable"`
}

func (s *Server) financeReady(c *gin.Context) bool {
	if s.Billing.Accounts == nil || s.Billing.Taxes == nil || s.Billing.Invoices == nil {
		s.writeError(c, postage.Errorf(postage.EUNAVAILABLE, "finance is not configured on this server"))
		return false
	}
	return true
}

// invoiceID is the path parameter of the routes under an invoice.
var invoiceID = []Param{{Name: "id", Description: "invoice id"}}

// moneyRoute describes the routes of one kind of money moved outside
// postage against invoices (payments, refunds): In is the body that
// records one, Out the record, Answer what recording answers.
type moneyRoute[In, Out, Answer any] struct {
	noun          string // payment, refund: the tag and paths are its plural
	recordSummary string
	record        func(ctx context.Context, invoiceID string, in In) (Out, billing.Receivable, bool, error)
	answer        func(Out, billing.Receivable) Answer
	list          func(ctx context.Context, customer, invoice string, p billing.Page) ([]Out, string, error)
}

// moneyRoutes registers a kind's three routes: record one against an
// invoice (201, or 200 with the first for the same idempotency key), list
// an invoice's (customer keys: their own), and list all (finance).
func moneyRoutes[In, Out, Answer any](s *Server, m moneyRoute[In, Out, Answer]) {
	plural := m.noun + "s"
	s.handle(Route{Method: "POST", Path: "/api/v1/invoices/:id/" + plural, Tag: plural, Summary: m.recordSummary,
		Roles: financeOnly, PathParams: invoiceID, Request: *new(In), Response: *new(Answer), Status: http.StatusCreated,
		Other: map[int]any{http.StatusOK: *new(Answer)}}, func(c *gin.Context) {
		if !s.financeReady(c) {
			return
		}
		var in In
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		out, r, existing, err := m.record(c.Request.Context(), c.Param("id"), in)
		if err != nil {
			s.writeError(c, err)
			return
		}
		status := http.StatusCreated
		if existing {
			status = http.StatusOK
		}
		c.JSON(status, m.answer(out, r))
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/invoices/:id/" + plural, Tag: plural, Summary: "The " + plural + " recorded against an invoice, newest first (customer keys: their own invoices).",
		Roles: financeAndOwner, PathParams: invoiceID, Query: pageQuery, Response: List[Out]{}}, func(c *gin.Context) {
		if !s.financeReady(c) {
			return
		}
		inv, ok := s.visibleInvoice(c, c.Param("id"))
		if !ok {
			return
		}
		writePage(s, c, func(ctx context.Context, p billing.Page) ([]Out, string, error) { return m.list(ctx, "", inv.ID, p) })
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/" + plural, Tag: plural, Summary: strings.ToUpper(plural[:1]) + plural[1:] + ", newest first, of one customer or invoice or all.", Roles: financeOnly,
		Query: append([]Param{
			{Name: "customer", Description: "only this customer id"},
			{Name: "invoice", Description: "only this invoice id"},
		}, pageQuery...),
		Response: List[Out]{}}, func(c *gin.Context) {
		if !s.financeReady(c) {
			return
		}
		writePage(s, c, func(ctx context.Context, p billing.Page) ([]Out, string, error) {
			return m.list(ctx, c.Query("customer"), c.Query("invoice"), p)
		})
	})
}
