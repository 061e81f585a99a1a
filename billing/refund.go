package billing

import (
	"time"

	"github.com/shopspring/decimal"

	"postage"
)

// Refund is money finance paid back to a customer, outside postage (by
// bank transfer, through the card processor), against an invoice whose
// balance is negative: a credit note that came after payment left the
// customer owed. It is a ledger row of its own, recorded once, never
// changed; it brings the balance back toward zero, never above it.
type Refund struct {
	ID            string        `json:"id"`
	InvoiceID     string        `json:"invoice_id"`
	InvoiceNumber string        `json:"invoice_number"`
	CustomerID    string        `json:"customer_id"`
	Amount        Money         `json:"amount"`
	Currency      string        `json:"currency"`
	Date          Date          `json:"date"`
	Method        PaymentMethod `json:"method"`
	Reference     string        `json:"reference,omitempty"`
	// IdempotencyKey is the key the refund was recorded with: recording
	// again with it returns this refund instead of a second one.
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

// NewRefund is the body that records a refund: as a payment's, with the
// day the money was paid back.
type NewRefund struct {
	// Amount is a positive decimal with at most the currency's decimals,
	// at most what the customer is owed (minus the balance).
	Amount string `json:"amount"`
	// Currency must be the invoice's.
	Currency string `json:"currency"`
	// Date is the day the money was paid back, YYYY-MM-DD, not in the future.
	Date   string        `json:"date"`
	Method PaymentMethod `json:"method"`
	// Reference is the bank's or processor's reference.
	Reference string `json:"reference,omitempty"`
	// IdempotencyKey makes a retry safe: a second request with the same
	// key and the same refund returns the first; with another refund it
	// is a conflict.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// Parse checks the body's formats (not yet against the invoice) and
// returns the refund it describes, dated no later than today.
func (n NewRefund) Parse(today Date) (Refund, error) {
	p, err := NewPayment(n).parse(today, "the day the money was paid back")
	if err != nil {
		return Refund{}, err
	}
	return Refund(p), nil
}

// Owed is what the customer is owed on a receivable: minus its balance
// when that is negative, zero otherwise.
func (r Receivable) Owed() decimal.Decimal {
	if r.Balance.IsNegative() {
		return r.Balance.Neg()
	}
	return decimal.Zero
}

// checkRefund checks a parsed refund against the invoice it refunds: the
// currency, the currency's decimals and what the customer is owed. It
// completes f.
func checkRefund(f Refund, r Receivable) (Refund, error) {
	amount, err := moneyAgainst("refund", f.Amount, f.Currency, r)
	if err != nil {
		return Refund{}, err
	}
	f.Amount = amount
	places := MinorUnitsOf(r.Currency)
	if owed := r.Owed(); f.Amount.GreaterThan(owed) {
		if !owed.IsPositive() {
			return Refund{}, postage.Errorf(postage.EOVERREFUND, "invoice %s owes the customer nothing (balance %s %s): nothing to refund", r.Number, r.Balance, r.Currency)
		}
		return Refund{}, postage.Errorf(postage.EOVERREFUND, "the refund of %s %s is more than the %s %s invoice %s owes the customer", f.Amount, r.Currency, NewMoney(owed, places), r.Currency, r.Number)
	}
	f.InvoiceID, f.InvoiceNumber, f.CustomerID = r.InvoiceID, r.Number, r.CustomerID
	return f, nil
}

// RefundFilter narrows a list of refunds; zero fields do not filter.
type RefundFilter struct {
	CustomerID string
	InvoiceID  string
}
