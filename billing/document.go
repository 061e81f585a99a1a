package billing

import (
	"context"
	"encoding/json"
	"fmt"
)

// Issuer is who invoices are from (billing.issuer_name, issuer_address,
// issuer_tax_id and issuer_bank_details in the configuration). A finalized
// invoice, and a credit note, keeps the issuer of the day it was issued.
type Issuer struct {
	// Name is the issuer's legal name.
	Name string `json:"name"`
	// Address is its registered address (one line, commas between its
	// parts, or several lines).
	Address string `json:"address,omitempty"`
	// TaxID is its VAT or tax registration number.
	TaxID string `json:"tax_id,omitempty"`
	// BankDetails say where to pay: bank, IBAN or account, SWIFT/BIC, one
	// per line.
	BankDetails string `json:"bank_details,omitempty"`
}

// IsZero reports whether no issuer is set.
func (i Issuer) IsZero() bool { return i == Issuer{} }

// Format is a rendered form of an invoice.
type Format string

// Invoice documents besides JSON (which is the frozen document itself).
const (
	FormatCSV Format = "csv"
	FormatPDF Format = "pdf"
)

// Renderer draws invoice documents (reports.InvoiceDocuments). It renders
// only from the invoice it is given, issuer included. A PDF that cannot
// be drawn now (no browser) is postage.ERENDERER.
type Renderer interface {
	RenderInvoice(ctx context.Context, inv Invoice, f Format) ([]byte, error)
}

// plainInvoice is Invoice without its MarshalJSON.
type plainInvoice Invoice

// Freeze makes inv a frozen document: everything it shows is written into
// it (every line's description as the describer gives it now, the issuer
// — kept when inv already has one, else issuer — the customer snapshot
// with its tax details and address, the tax lines, the totals, the
// currency's minor units, and for a finalized invoice its issue date and
// its due date: the issue date plus its payment terms), and inv marshals to those
// bytes from now on (Document returns them). The invoice ledger stores
// them when it finalizes or voids an invoice, and a finalized or void
// invoice is read back from them: later code or configuration never
// changes it.
func Freeze(inv *Invoice, issuer Issuer) error {
	if inv.Issuer.IsZero() {
		inv.Issuer = issuer
	}
	if inv.MinorUnits == 0 {
		inv.MinorUnits = MinorUnitsOf(inv.Currency)
	}
	if inv.Lines == nil {
		inv.Lines = []Line{}
	}
	if inv.TaxLines == nil {
		inv.TaxLines = []TaxLine{}
	}
	if inv.Tax.Places == 0 && inv.MinorUnits != 0 {
		inv.Tax.Places = int32(inv.MinorUnits)
	}
	if inv.IssueDate == nil && inv.FinalizedAt != nil {
		issued := DateOf(*inv.FinalizedAt)
		due := issued.AddDays(inv.PaymentTermsDays)
		inv.IssueDate, inv.DueDate = &issued, &due
	}
	for i := range inv.Lines {
		if inv.Lines[i].Description == "" {
			inv.Lines[i].Description = describe(inv.Lines[i])
		}
	}
	inv.frozen = nil
	b, err := json.Marshal((*plainInvoice)(inv))
	if err != nil {
		return fmt.Errorf("freeze invoice %s: %w", inv.ID, err)
	}
	inv.frozen = b
	return nil
}

// DecodeDocument reads a frozen document (Freeze) back: the invoice it
// shows, which marshals to exactly b.
func DecodeDocument(b []byte) (Invoice, error) {
	var inv Invoice
	if err := json.Unmarshal(b, (*plainInvoice)(&inv)); err != nil {
		return Invoice{}, fmt.Errorf("frozen invoice document: %w", err)
	}
	inv.frozen = b
	return inv, nil
}

// Frozen reports whether inv is a frozen document (a finalized or void
// invoice read from the ledger, or one just frozen).
func (inv Invoice) Frozen() bool { return inv.frozen != nil }

// Document returns the frozen document's bytes (nil when not frozen).
func (inv Invoice) Document() []byte { return inv.frozen }

// MarshalJSON writes a frozen invoice as its frozen document, byte for
// byte, and any other from its fields.
func (inv Invoice) MarshalJSON() ([]byte, error) {
	if inv.frozen != nil {
		return inv.frozen, nil
	}
	return json.Marshal(plainInvoice(inv))
}
