package billing

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/pricing"
)

// CreditNote corrects part of a finalized invoice: whole lines, part of a
// line's quantity, or an amount, never more than is left to credit. It has
// its own gapless numbering (CN-2026-000001), reduces the invoice's
// balance, and is frozen the moment it is issued: its JSON is the document
// written then, byte for byte, forever (like a finalized invoice's).
type CreditNote struct {
	ID            string           `json:"id"`
	Number        string           `json:"number"`
	InvoiceID     string           `json:"invoice_id"`
	InvoiceNumber string           `json:"invoice_number"`
	CustomerID    string           `json:"customer_id"`
	Period        pricing.Month    `json:"period"`
	Issuer        Issuer           `json:"issuer"`
	Customer      CustomerSnapshot `json:"customer"`
	Currency      string           `json:"currency"`
	MinorUnits    int              `json:"minor_units"`
	Reason        string           `json:"reason"`
	Lines         []CreditLine     `json:"lines"`
	// Subtotal is the credited net amount (the lines' sum).
	Subtotal Money `json:"subtotal"`
	// TaxLines credit the invoice's taxes on the subtotal, rate by rate.
	TaxLines []TaxLine `json:"tax_lines"`
	Tax      Money     `json:"tax"`
	// Total is Subtotal + Tax: what the invoice's balance goes down by.
	Total     Money     `json:"total"`
	TaxNote   string    `json:"tax_note,omitempty"`
	IssueDate Date      `json:"issue_date"`
	IssuedAt  time.Time `json:"issued_at"`
	// VoidedAt and VoidReason are set on a void credit note: it keeps
	// its number, no longer reduces the invoice, and its documents say
	// VOID.
	VoidedAt   *time.Time `json:"voided_at,omitempty"`
	VoidReason string     `json:"void_reason,omitempty"`

	frozen []byte
}

// Void reports whether the credit note was voided.
func (cn CreditNote) Void() bool { return cn.VoidedAt != nil }

// CreditLine is one line of a credit note: a line of the invoice (whole,
// or part of its quantity, or an amount of it), or an amount of the
// invoice as a whole.
type CreditLine struct {
	// InvoiceLine is the position of the credited line in the invoice's
	// lines, from 1; 0 for an amount not tied to a line.
	InvoiceLine int           `json:"invoice_line,omitempty"`
	Description string        `json:"description"`
	Period      pricing.Month `json:"period,omitzero"`
	Market      string        `json:"market,omitempty"`
	Category    string        `json:"category,omitempty"`
	// Quantity is how many of the line's units are credited (0 for an
	// amount).
	Quantity int64 `json:"quantity,omitempty"`
	// Amount is the credited net amount.
	Amount Money `json:"amount"`
}

// CreditNoteRequest asks for a credit note against a finalized invoice.
type CreditNoteRequest struct {
	// Reason says why (printed on the credit note).
	Reason string       `json:"reason"`
	Lines  []CreditItem `json:"lines"`
	// IdempotencyKey makes a retry safe: the same key returns the credit
	// note it issued.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// CreditItem is one thing to credit:
//
//   - {"line": 2}: what is left of the invoice's second line;
//   - {"line": 2, "quantity": 100}: 100 of its units, at the line's
//     average price (its amount × 100 / its quantity, rounded half-even);
//   - {"line": 2, "amount": "5.00"}: 5.00 off that line;
//   - {"amount": "5.00", "description": "goodwill"}: 5.00 off the invoice.
//
// Amounts are net (before tax): the credit note adds the invoice's tax.
type CreditItem struct {
	Line        int    `json:"line,omitempty"`
	Quantity    int64  `json:"quantity,omitempty"`
	Amount      string `json:"amount,omitempty"`
	Description string `json:"description,omitempty"`
}

// Limits of a credit note request.
const (
	maxCreditItems  = 100
	maxReasonLength = 500
)

// Validate checks the request's own shape (not yet against the invoice).
func (q CreditNoteRequest) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, postage.Errorf(postage.EINVALID, format, args...))
	}
	if r := strings.TrimSpace(q.Reason); r == "" || len(q.Reason) > maxReasonLength {
		bad("reason: required, at most %d characters", maxReasonLength)
	}
	if len(q.Lines) == 0 || len(q.Lines) > maxCreditItems {
		bad("lines: 1 to %d things to credit", maxCreditItems)
	}
	if q.IdempotencyKey != "" && !idempotencyKeyPattern.MatchString(q.IdempotencyKey) {
		bad("idempotency_key: 1-100 letters, digits, '.', '_', ':' or '-'")
	}
	for i, it := range q.Lines {
		at := fmt.Sprintf("lines[%d]", i)
		switch {
		case it.Line < 0:
			bad("%s.line: the position of an invoice line, from 1", at)
		case it.Line == 0 && it.Amount == "":
			bad("%s: give a line (its position in the invoice, from 1) or an amount", at)
		case it.Line == 0 && it.Quantity != 0:
			bad("%s.quantity: only with a line", at)
		}
		if it.Quantity < 0 {
			bad("%s.quantity: must be more than 0", at)
		}
		if it.Quantity != 0 && it.Amount != "" {
			bad("%s: a quantity or an amount, not both", at)
		}
		if it.Amount != "" {
			if d, err := decimal.NewFromString(it.Amount); err != nil || !d.IsPositive() {
				bad("%s.amount: a positive decimal such as \"5.00\"", at)
			}
		}
		if len(it.Description) > 200 {
			bad("%s.description: at most 200 characters", at)
		}
	}
	return postage.JoinInvalid(errs)
}

// PlanCreditNote computes the credit note req asks for against inv, given
// the credit notes already issued against it (prior): the lines, the
// credited net amount, and the taxes. It never credits more than is left:
// of a line's quantity, of a line's amount, or of the invoice (ENOVERCREDIT,
// and nothing is issued). The caller numbers, dates and freezes it.
//
// Taxes follow the invoice's own tax lines: each is credited at its rate
// on the credited net amount, rounded half away from zero (as the invoice
// was), and never beyond what is left of that tax; a credit note that
// takes what is left of the invoice takes exactly what is left of each
// tax, so credit notes that add up to the invoice add up to its total.
func PlanCreditNote(inv Invoice, prior []CreditNote, req CreditNoteRequest) (*CreditNote, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if inv.Status != StatusFinalized {
		return nil, postage.Errorf(postage.ENOTFINALIZED, "invoice %s is %s: only a finalized invoice can be credited", inv.ID, inv.Status)
	}
	places := inv.MinorUnits
	if places == 0 && inv.Total.Places > 0 {
		places = int(inv.Total.Places)
	}
	zero := decimal.Zero
	// What earlier credit notes took, per line and in all.
	lineAmt := make([]decimal.Decimal, len(inv.Lines))
	lineQty := make([]int64, len(inv.Lines))
	priorNet := zero
	priorTax := make([]decimal.Decimal, len(inv.TaxLines))
	for i := range lineAmt {
		lineAmt[i] = zero
	}
	for i := range priorTax {
		priorTax[i] = zero
	}
	for _, cn := range prior {
		priorNet = priorNet.Add(cn.Subtotal.Decimal)
		for _, l := range cn.Lines {
			if l.InvoiceLine >= 1 && l.InvoiceLine <= len(inv.Lines) {
				lineAmt[l.InvoiceLine-1] = lineAmt[l.InvoiceLine-1].Add(l.Amount.Decimal)
				lineQty[l.InvoiceLine-1] += l.Quantity
			}
		}
		for i, t := range cn.TaxLines {
			if i < len(priorTax) {
				priorTax[i] = priorTax[i].Add(t.Tax.Decimal)
			}
		}
	}
	invNet := inv.Subtotal.Add(inv.Adjustments.Decimal)
	netLeft := invNet.Sub(priorNet)

	cn := &CreditNote{
		InvoiceID: inv.ID, InvoiceNumber: inv.Number, CustomerID: inv.CustomerID, Period: inv.Period,
		Customer: inv.Customer, Currency: inv.Currency, MinorUnits: places, Reason: strings.TrimSpace(req.Reason), TaxNote: inv.TaxNote,
	}
	net := zero
	for i, it := range req.Lines {
		at := fmt.Sprintf("lines[%d]", i)
		var amount decimal.Decimal
		if it.Amount != "" {
			amount, _ = decimal.NewFromString(it.Amount)
			if !amount.Equal(amount.Truncate(int32(places))) {
				return nil, postage.Errorf(postage.EINVALID, "%s.amount: %s has more decimals than %s (%d)", at, it.Amount, inv.Currency, places)
			}
			amount = amount.Round(int32(places))
		}
		if it.Line == 0 {
			desc := strings.TrimSpace(it.Description)
			if desc == "" {
				desc = "Credit"
			}
			cn.Lines = append(cn.Lines, CreditLine{Description: desc, Amount: NewMoney(amount, places)})
			net = net.Add(amount)
			continue
		}
		if it.Line > len(inv.Lines) {
			return nil, postage.Errorf(postage.EINVALID, "%s.line: invoice %s has %d lines", at, inv.Number, len(inv.Lines))
		}
		k := it.Line - 1
		l := inv.Lines[k]
		if !l.Amount.IsPositive() {
			return nil, postage.Errorf(postage.EINVALID, "%s.line: line %d of invoice %s bills %s %s: nothing to credit", at, it.Line, inv.Number, l.Amount, inv.Currency)
		}
		amtLeft, qtyLeft := l.Amount.Sub(lineAmt[k]), l.Quantity-lineQty[k]
		if !amtLeft.IsPositive() {
			return nil, postage.Errorf(postage.EOVERCREDIT, "%s.line: line %d of invoice %s is credited in full", at, it.Line, inv.Number)
		}
		var qty int64
		switch {
		case it.Quantity > 0:
			if it.Quantity > qtyLeft {
				return nil, postage.Errorf(postage.EOVERCREDIT, "%s.quantity: %d is more than the %d units of line %d left to credit", at, it.Quantity, max(qtyLeft, 0), it.Line)
			}
			qty = it.Quantity
			if qty == qtyLeft {
				amount = amtLeft
			} else {
				amount = l.Amount.Mul(decimal.NewFromInt(qty)).Div(decimal.NewFromInt(l.Quantity)).RoundBank(int32(places))
				if amount.GreaterThan(amtLeft) {
					amount = amtLeft
				}
			}
			if !amount.IsPositive() {
				return nil, postage.Errorf(postage.EINVALID, "%s.quantity: %d units of line %d are worth less than the currency's smallest unit", at, qty, it.Line)
			}
		case it.Amount != "":
			if amount.GreaterThan(amtLeft) {
				return nil, postage.Errorf(postage.EOVERCREDIT, "%s.amount: %s %s is more than the %s %s of line %d left to credit", at, NewMoney(amount, places), inv.Currency, NewMoney(amtLeft, places), inv.Currency, it.Line)
			}
		default:
			qty, amount = max(qtyLeft, 0), amtLeft
		}
		lineAmt[k] = lineAmt[k].Add(amount)
		lineQty[k] += qty
		desc := strings.TrimSpace(it.Description)
		if desc == "" {
			desc = l.Description
			if desc == "" {
				desc = describe(l)
			}
		}
		cn.Lines = append(cn.Lines, CreditLine{InvoiceLine: it.Line, Description: desc, Period: l.Period, Market: l.Market,
			Category: l.Category, Quantity: qty, Amount: NewMoney(amount, places)})
		net = net.Add(amount)
	}
	if net.GreaterThan(netLeft) {
		return nil, postage.Errorf(postage.EOVERCREDIT, "the credit of %s %s is more than the %s %s of invoice %s left to credit",
			NewMoney(net, places), inv.Currency, NewMoney(decimal.Max(netLeft, zero), places), inv.Currency, inv.Number)
	}
	cn.Subtotal = NewMoney(net, places)
	cn.TaxLines = []TaxLine{}
	tax := zero
	all := net.Equal(netLeft)
	for i, t := range inv.TaxLines {
		left := t.Tax.Sub(priorTax[i])
		credit := RoundTax(net, t.Rate, places)
		switch {
		case all:
			credit = left
		case credit.GreaterThan(left) && !left.IsNegative():
			credit = left
		}
		tax = tax.Add(credit)
		cn.TaxLines = append(cn.TaxLines, TaxLine{Name: t.Name, Jurisdiction: t.Jurisdiction, Rate: t.Rate, RateID: t.RateID,
			TaxableAmount: NewMoney(net, places), Tax: NewMoney(credit, places)})
	}
	cn.Tax = NewMoney(tax, places)
	cn.Total = NewMoney(net.Add(tax), places)
	return cn, nil
}

// plainCreditNote is CreditNote without its MarshalJSON.
type plainCreditNote CreditNote

// FreezeCreditNote writes the issued credit note's document: it marshals
// to those bytes from now on.
func FreezeCreditNote(cn *CreditNote) error {
	if cn.Lines == nil {
		cn.Lines = []CreditLine{}
	}
	if cn.TaxLines == nil {
		cn.TaxLines = []TaxLine{}
	}
	cn.frozen = nil
	b, err := json.Marshal((*plainCreditNote)(cn))
	if err != nil {
		return fmt.Errorf("freeze credit note %s: %w", cn.ID, err)
	}
	cn.frozen = b
	return nil
}

// DecodeCreditNote reads a frozen credit note document back.
func DecodeCreditNote(b []byte) (CreditNote, error) {
	var cn CreditNote
	if err := json.Unmarshal(b, (*plainCreditNote)(&cn)); err != nil {
		return CreditNote{}, fmt.Errorf("frozen credit note document: %w", err)
	}
	cn.frozen = b
	return cn, nil
}

// Document returns the frozen document's bytes (nil when not frozen).
func (cn CreditNote) Document() []byte { return cn.frozen }

// MarshalJSON writes a frozen credit note as its document, byte for byte.
func (cn CreditNote) MarshalJSON() ([]byte, error) {
	if cn.frozen != nil {
		return cn.frozen, nil
	}
	return json.Marshal(plainCreditNote(cn))
}

// CreditKey is a credit note request's idempotency key ("" for none) and
// the hash of the request, which a retry with the key must match.
type CreditKey struct {
	Key  string
	Hash []byte
}

// creditKey returns req's key and hash (of the invoice and the request).
func creditKey(invoiceID string, req CreditNoteRequest) CreditKey {
	if req.IdempotencyKey == "" {
		return CreditKey{}
	}
	b, _ := json.Marshal(struct {
		Invoice string
		Req     CreditNoteRequest
	}{invoiceID, req})
	h := sha256.Sum256(b)
	return CreditKey{Key: req.IdempotencyKey, Hash: h[:]}
}

// CreditNoteFilter narrows a list of credit notes; zero fields do not filter.
type CreditNoteFilter struct {
	CustomerID string
	InvoiceID  string
}

// checkVoidCreditNote checks that cn can be voided on the invoice's
// receivable r: not void already, and taking its total off what was
// credited leaves the refunds within what the customer is still owed
// (EOVERREFUND otherwise: the money was paid back).
func checkVoidCreditNote(r Receivable, cn CreditNote) error {
	if cn.Void() {
		return postage.Errorf(postage.ECONFLICT, "credit note %s was voided on %s", cn.Number, cn.VoidedAt.Format(DateLayout))
	}
	if !r.Refunded.IsPositive() {
		return nil
	}
	owed := r.Paid.Add(r.Credited.Decimal).Sub(cn.Total.Decimal).Sub(r.Total.Decimal)
	if r.Refunded.GreaterThan(owed) {
		places := MinorUnitsOf(r.Currency)
		return postage.Errorf(postage.EOVERREFUND, "voiding credit note %s (%s %s) would leave the %s %s refunded on invoice %s above the %s %s the customer would be owed",
			cn.Number, cn.Total, cn.Currency, r.Refunded, r.Currency, r.Number, NewMoney(decimal.Max(owed, decimal.Zero), places), r.Currency)
	}
	return nil
}

// CreditNoteRenderer draws credit note documents (reports.InvoiceDocuments),
// from the credit note alone.
type CreditNoteRenderer interface {
	RenderCreditNote(ctx context.Context, cn CreditNote, f Format) ([]byte, error)
}

// DefaultCreditNoteNumberFormat is the pattern of credit note numbers when
// none is configured (billing.credit_note_number_format).
const DefaultCreditNoteNumberFormat = "CN-{year}-{seq:6}"
