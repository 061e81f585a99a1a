package billing

import (
	"context"
	"regexp"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/pricing"
)

// PaymentStatus is where a finalized invoice is in being paid. It is
// derived, never stored: from the invoice's total, its payments and credit
// notes, its due date, the clock, and whether finance wrote it off.
type PaymentStatus string

// Payment statuses.
const (
	// PaymentOpen: nothing paid yet, not yet due.
	PaymentOpen PaymentStatus = "open"
	// PaymentPartiallyPaid: something paid, a balance left, not yet due.
	PaymentPartiallyPaid PaymentStatus = "partially_paid"
	// PaymentPaid: nothing left to pay (payments and credit notes cover
	// the total; an invoice whose total is zero or less is paid at once).
	PaymentPaid PaymentStatus = "paid"
	// PaymentOverdue: a balance left after the due date.
	PaymentOverdue PaymentStatus = "overdue"
	// PaymentUncollectible: finance wrote the balance off; a payment that
	// arrives later is still recorded and can make it paid.
	PaymentUncollectible PaymentStatus = "uncollectible"
)

// Receivable is what is owed on one finalized invoice: its total, what was
// paid and credited, the balance, the due date and the payment status. The
// frozen invoice never changes; this is kept beside it, in the ledger.
type Receivable struct {
	InvoiceID    string        `json:"invoice_id"`
	Number       string        `json:"number"`
	CustomerID   string        `json:"customer_id"`
	CustomerName string        `json:"customer_name"`
	Period       pricing.Month `json:"period"`
	Currency     string        `json:"currency"`
	// Total is the invoice's total, tax included.
	Total Money `json:"total"`
	// Paid is the sum of the payments recorded against it.
	Paid Money `json:"paid"`
	// Credited is the sum of its credit notes' totals (void ones left out).
	Credited Money `json:"credited"`
	// Refunded is the sum of the refunds paid back against it.
	Refunded Money `json:"refunded"`
	// Balance is Total - Paid - Credited + Refunded: what is still owed
	// (negative when a credit note came after payment: what the customer
	// is owed until it is refunded).
	Balance   Money         `json:"balance"`
	IssueDate Date          `json:"issue_date"`
	DueDate   Date          `json:"due_date"`
	Status    PaymentStatus `json:"status"`
	// DaysPastDue counts the days since the due date while a balance is
	// left (0 when not yet due or settled).
	DaysPastDue int `json:"days_past_due"`
	// SettledOn is the day the balance reached zero (or less).
	SettledOn           *Date      `json:"settled_on,omitempty"`
	UncollectibleAt     *time.Time `json:"uncollectible_at,omitempty"`
	UncollectibleReason string     `json:"uncollectible_reason,omitempty"`
}

// Derive sets the status and days past due as of today.
func (r *Receivable) Derive(today Date) {
	r.DaysPastDue = 0
	switch {
	case !r.Balance.IsPositive():
		r.Status = PaymentPaid
		return
	case today.After(r.DueDate):
		r.DaysPastDue = today.DaysSince(r.DueDate)
	}
	switch {
	case r.UncollectibleAt != nil:
		r.Status = PaymentUncollectible
	case r.DaysPastDue > 0:
		r.Status = PaymentOverdue
	case r.Paid.IsPositive() || r.Credited.IsPositive():
		r.Status = PaymentPartiallyPaid
	default:
		r.Status = PaymentOpen
	}
}

// ReceivableFilter narrows a list of receivables; zero fields do not filter.
type ReceivableFilter struct {
	CustomerID string
	Status     PaymentStatus
	// Outstanding keeps those with a balance left (open, partially paid,
	// overdue, uncollectible).
	Outstanding bool
}

// Validate checks the filter's values.
func (f ReceivableFilter) Validate() error {
	switch f.Status {
	case "", PaymentOpen, PaymentPartiallyPaid, PaymentPaid, PaymentOverdue, PaymentUncollectible:
		return nil
	}
	return postage.Errorf(postage.EINVALID, "status %q: open, partially_paid, paid, overdue or uncollectible", f.Status)
}

// PaymentMethod is how a payment was made.
type PaymentMethod string

// Payment methods.
const (
	MethodBankTransfer PaymentMethod = "bank_transfer"
	MethodCard         PaymentMethod = "card"
	MethodDirectDebit  PaymentMethod = "direct_debit"
	MethodCash         PaymentMethod = "cash"
	MethodCheck        PaymentMethod = "check"
	MethodOther        PaymentMethod = "other"
)

// Valid reports whether m is a known method.
func (m PaymentMethod) Valid() bool {
	switch m {
	case MethodBankTransfer, MethodCard, MethodDirectDebit, MethodCash, MethodCheck, MethodOther:
		return true
	}
	return false
}

// Payment is money received against one finalized invoice. It is a ledger
// row of its own: recorded once, never changed.
type Payment struct {
	ID            string        `json:"id"`
	InvoiceID     string        `json:"invoice_id"`
	InvoiceNumber string        `json:"invoice_number"`
	CustomerID    string        `json:"customer_id"`
	Amount        Money         `json:"amount"`
	Currency      string        `json:"currency"`
	Date          Date          `json:"date"`
	Method        PaymentMethod `json:"method"`
	Reference     string        `json:"reference,omitempty"`
	// IdempotencyKey is the key the payment was recorded with: recording
	// again with it returns this payment instead of a second one.
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

// NewPayment is the body that records a payment. Amount and date are
// strings so that a bad one is named in the answer.
type NewPayment struct {
	// Amount is a positive decimal with at most the currency's decimals.
	Amount string `json:"amount"`
	// Currency must be the invoice's.
	Currency string `json:"currency"`
	// Date is the day the money was received, YYYY-MM-DD, not in the future.
	Date   string        `json:"date"`
	Method PaymentMethod `json:"method"`
	// Reference is the bank's or processor's reference.
	Reference string `json:"reference,omitempty"`
	// IdempotencyKey makes a retry safe: a second request with the same
	// key and the same payment returns the first; with another payment it
	// is a conflict.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

var idempotencyKeyPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,100}$`)

// Parse checks the body's formats (not yet against the invoice) and
// returns the payment it describes, dated no later than today.
func (n NewPayment) Parse(today Date) (Payment, error) {
	return n.parse(today, "the day the money was received")
}

// parse is Parse, with what the date is for the error message.
func (n NewPayment) parse(today Date, dateIs string) (Payment, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, postage.Errorf(postage.EINVALID, format, args...))
	}
	p := Payment{Currency: strings.TrimSpace(n.Currency), Method: n.Method, Reference: strings.TrimSpace(n.Reference), IdempotencyKey: n.IdempotencyKey}
	amount, err := decimal.NewFromString(strings.TrimSpace(n.Amount))
	switch {
	case err != nil:
		bad("amount: a decimal number such as \"12.30\"")
	case !amount.IsPositive():
		bad("amount: must be more than 0")
	default:
		p.Amount = Money{Decimal: amount}
	}
	if !currencyPattern.MatchString(p.Currency) {
		bad("currency: an ISO 4217 code such as USD")
	}
	if d, err := ParseDate(strings.TrimSpace(n.Date)); err != nil {
		bad("date: %s, YYYY-MM-DD", dateIs)
	} else if d.After(today) {
		bad("date: %s is in the future (today is %s)", d, today)
	} else {
		p.Date = d
	}
	if !p.Method.Valid() {
		bad("method: bank_transfer, card, direct_debit, cash, check or other")
	}
	if len(p.Reference) > 200 {
		bad("reference: at most 200 characters")
	}
	if p.IdempotencyKey != "" && !idempotencyKeyPattern.MatchString(p.IdempotencyKey) {
		bad("idempotency_key: 1-100 letters, digits, '.', '_', ':' or '-'")
	}
	if len(errs) > 0 {
		return Payment{}, postage.JoinInvalid(errs)
	}
	return p, nil
}

// checkPayment checks a parsed payment against the invoice it pays: the
// currency, the currency's decimals and the balance. It completes p.
func checkPayment(p Payment, r Receivable) (Payment, error) {
	amount, err := moneyAgainst("payment", p.Amount, p.Currency, r)
	if err != nil {
		return Payment{}, err
	}
	p.Amount = amount
	if p.Amount.GreaterThan(r.Balance.Decimal) {
		if !r.Balance.IsPositive() {
			return Payment{}, postage.Errorf(postage.EOVERPAYMENT, "invoice %s is paid: nothing is left to pay", r.Number)
		}
		return Payment{}, postage.Errorf(postage.EOVERPAYMENT, "the payment of %s %s is more than the balance of invoice %s, %s %s", p.Amount, r.Currency, r.Number, r.Balance, r.Currency)
	}
	p.InvoiceID, p.InvoiceNumber, p.CustomerID = r.InvoiceID, r.Number, r.CustomerID
	return p, nil
}

// moneyAgainst checks money recorded against r (a payment, a refund: the
// noun): in r's currency, with no more decimals than the currency has. It
// returns the amount at the currency's minor units.
func moneyAgainst(noun string, amount Money, currency string, r Receivable) (Money, error) {
	if currency != r.Currency {
		return Money{}, postage.Errorf(postage.ECURRENCYMISMATCH, "invoice %s is in %s, the %s in %s: record it in %s", r.Number, r.Currency, noun, currency, r.Currency)
	}
	places := MinorUnitsOf(r.Currency)
	if !amount.Equal(amount.Truncate(int32(places))) {
		return Money{}, postage.Errorf(postage.EINVALID, "amount: %s has more decimals than %s has (%d)", amount.Decimal, r.Currency, places)
	}
	return NewMoney(amount.Decimal, places), nil
}

// PaymentFilter narrows a list of payments; zero fields do not filter.
type PaymentFilter struct {
	CustomerID string
	InvoiceID  string
}

// AgingRow is what one customer (or, in totals, everyone) owes in one
// currency, by how late it is: not yet due (current), 1-30, 31-60, 61-90
// and more than 90 days past the due date.
type AgingRow struct {
	CustomerID   string `json:"customer_id,omitempty"`
	CustomerName string `json:"customer_name,omitempty"`
	Currency     string `json:"currency"`
	Current      Money  `json:"current"`
	Days1To30    Money  `json:"days_1_30"`
	Days31To60   Money  `json:"days_31_60"`
	Days61To90   Money  `json:"days_61_90"`
	Over90       Money  `json:"days_over_90"`
	Total        Money  `json:"total"`
	// Invoices counts the invoices with a balance.
	Invoices int `json:"invoices"`
}

// AgingReport is the accounts-receivable aging as of a day: per customer
// and currency, and totals per currency. Invoices written off as
// uncollectible, and balances of zero or less, are left out.
type AgingReport struct {
	AsOf      Date       `json:"as_of"`
	Customers []AgingRow `json:"customers"`
	Totals    []AgingRow `json:"totals"`
}

// Receivables is the accounts-receivable ledger (billing/pgstore
// implements it): one receivable per finalized invoice, the payments and
// credit notes against it. Each write locks the invoice's receivable, so
// two payments or credit notes at once never take more than is left.
type Receivables interface {
	// Receivable returns the receivable of an invoice: ENOTFOUND for no
	// such invoice, ENOTFINALIZED for a draft or void one.
	Receivable(ctx context.Context, invoiceID string) (Receivable, error)
	// ListReceivables lists receivables matching f as of today, newest
	// issue first, a page at a time.
	ListReceivables(ctx context.Context, f ReceivableFilter, today Date, p Page) ([]Receivable, string, error)
	// RecordPayment locks the invoice's receivable, hands it to check,
	// and records the payment check returns (its id and time set), in
	// one transaction. A payment with the idempotency key of an earlier
	// one is that one when check agrees (existing true), a conflict
	// otherwise.
	RecordPayment(ctx context.Context, invoiceID string, p Payment, check func(Receivable, Payment) (Payment, error)) (out Payment, r Receivable, existing bool, err error)
	// Payments lists payments matching f, newest first.
	Payments(ctx context.Context, f PaymentFilter, p Page) ([]Payment, string, error)
	// RecordRefund locks the invoice's receivable, hands it to check, and
	// records the refund check returns (its id and time set), in one
	// transaction; idempotency keys work as RecordPayment's.
	RecordRefund(ctx context.Context, invoiceID string, f Refund, check func(Receivable, Refund) (Refund, error)) (out Refund, r Receivable, existing bool, err error)
	// Refunds lists refunds matching f, newest first.
	Refunds(ctx context.Context, f RefundFilter, p Page) ([]Refund, string, error)
	// MarkUncollectible writes an invoice's balance off.
	MarkUncollectible(ctx context.Context, invoiceID, reason string, today Date) (Receivable, error)
	// IssueCreditNote locks the invoice's receivable, reads the invoice
	// and its credit notes, hands them to plan and issues the credit note
	// plan returns: numbered (the year's next number), frozen, stored,
	// and the receivable credited, in one transaction. A key of an
	// earlier credit note returns it (existing true) when it was issued
	// for the same request (its hash), and is a conflict otherwise.
	IssueCreditNote(ctx context.Context, invoiceID string, key CreditKey, plan func(Invoice, []CreditNote) (*CreditNote, error)) (cn CreditNote, existing bool, err error)
	// CreditNote returns one credit note.
	CreditNote(ctx context.Context, id string) (CreditNote, error)
	// CreditNotes lists credit notes matching f, newest first.
	CreditNotes(ctx context.Context, f CreditNoteFilter, p Page) ([]CreditNote, string, error)
	// CreditNoteDocument returns the stored rendering of a credit note
	// as issued, or (void) as voided.
	CreditNoteDocument(ctx context.Context, id string, f Format, void bool) ([]byte, bool, error)
	// PutCreditNoteDocument stores a rendering unless one is stored, and
	// returns the stored one.
	PutCreditNoteDocument(ctx context.Context, id string, f Format, void bool, body []byte) ([]byte, error)
	// VoidCreditNote locks the receivable of the credit note's invoice,
	// hands it and the credit note to check, and voids the credit note:
	// frozen again with the void (voided_at, void_reason), its total taken
	// off what the invoice was credited, credit_note.voided emitted, in
	// one transaction. It returns the void credit note and the receivable.
	VoidCreditNote(ctx context.Context, id, reason string, check func(Receivable, CreditNote) error) (CreditNote, Receivable, error)
	// Aging returns the aging rows (per customer and currency) as of today.
	Aging(ctx context.Context, customerID string, today Date) ([]AgingRow, error)
	// MarkOverdue finds the invoices that became overdue by today and
	// were not yet reported, reports them (invoice.overdue) and returns
	// how many.
	MarkOverdue(ctx context.Context, today Date) (int, error)
	// SendReminders emits invoice.payment_reminder for the invoices with
	// a balance (not written off) that reached a reminder offset (days
	// relative to the due date, sorted) by today: for each, only the
	// latest offset reached, once per invoice and offset (a stored mark
	// in the event's transaction); earlier offsets an invoice passed
	// without one are never sent late. It returns how many it sent.
	SendReminders(ctx context.Context, today Date, offsets []int) (int, error)
}
