package billing

import (
	"testing"

	"github.com/shopspring/decimal"

	"postage"
	"postage/pricing"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func usd(s string) Money { return NewMoney(dec(s), 2) }

func dp(s string) *Date { d := MustParseDate(s); return &d }

// TestTaxesRoundPerRate: each tax is rounded once on the sum of the
// rounded lines it applies to, half away from zero. Rounding each line's
// tax instead gives other totals on the same lines.
func TestTaxesRoundPerRate(t *testing.T) {
	table := NewTaxTable([]TaxRate{
		{ID: "txr_de19", Jurisdiction: "DE", Name: "VAT", Rate: dec("19"), EffectiveFrom: MustParseDate("2020-01-01"), EffectiveTo: dp("2026-10-01")},
		{ID: "txr_de20", Jurisdiction: "DE", Name: "VAT", Rate: dec("20"), EffectiveFrom: MustParseDate("2026-10-01")},
		{ID: "txr_ca", Jurisdiction: "CA", Name: "GST", Rate: dec("5"), EffectiveFrom: MustParseDate("2008-01-01")},
		{ID: "txr_qc", Jurisdiction: "CA-QC", Name: "QST", Rate: dec("9.975"), EffectiveFrom: MustParseDate("2013-01-01")},
	})
	notes := TaxNotes{ReverseCharge: "RC note", Exempt: "EX note"}
	oct, sep := pricing.MustParseMonth("2026-10"), pricing.MustParseMonth("2026-09")
	de := CustomerSnapshot{ID: "de", Country: "DE", TaxStatus: TaxTaxable}
	tests := []struct {
		name     string
		c        CustomerSnapshot
		lines    []string // rounded line amounts
		period   pricing.Month
		wantTax  []string // per tax line
		wantNote string
	}{
		// Two lines of 0.02 at 20%: 0.004 + 0.004 per line would round to
		// 0.00; on their sum, 0.008 rounds to 0.01.
		{"per rate, not per line", de, []string{"0.02", "0.02"}, oct, []string{"0.01"}, ""},
		// Two lines of 0.03 at 20%: per line 0.006 → 0.01 each (0.02); on the sum 0.012 → 0.01.
		{"per rate, lines would round up", de, []string{"0.03", "0.03"}, oct, []string{"0.01"}, ""},
		// 0.25 at 20% is 0.05; 0.125 needs half away from zero: 0.625 at 20%.
		{"half up, not half even", de, []string{"0.625"}, oct, []string{"0.13"}, ""},
		{"rate of the period's last day", de, []string{"100.00"}, sep, []string{"19.00"}, ""},
		{"country and region", CustomerSnapshot{Country: "CA", TaxRegion: "CA-QC", TaxStatus: TaxTaxable}, []string{"10.00"}, oct, []string{"0.50", "1.00"}, ""},
		{"tax country over country", CustomerSnapshot{Country: "US", TaxCountry: "DE", TaxStatus: TaxTaxable}, []string{"10.00"}, oct, []string{"2.00"}, ""},
		{"no rate: no tax", CustomerSnapshot{Country: "US", TaxStatus: TaxTaxable}, []string{"10.00"}, oct, nil, ""},
		{"negative adjustments", de, []string{"-10.00"}, oct, []string{"-2.00"}, ""},
		{"reverse charge", CustomerSnapshot{Country: "DE", TaxStatus: TaxReverseCharge, TaxID: "DE123"}, []string{"10.00"}, oct, []string{"0.00"}, "RC note"},
		{"exempt", CustomerSnapshot{Country: "DE", TaxStatus: TaxExempt}, []string{"10.00"}, oct, []string{"0.00"}, "EX note"},
	}
	for _, tt := range tests {
		net := decimal.Zero
		for _, l := range tt.lines {
			net = net.Add(dec(l))
		}
		lines, tax, note := Taxes(tt.c, net, tt.period, 2, table, notes)
		var got []string
		sum := decimal.Zero
		for _, l := range lines {
			got = append(got, l.Tax.String())
			sum = sum.Add(l.Tax.Decimal)
			if !l.TaxableAmount.Equal(net) {
				t.Errorf("%s: taxable %s, want %s", tt.name, l.TaxableAmount, net)
			}
		}
		if len(got) != len(tt.wantTax) {
			t.Errorf("%s: tax lines %v, want %v", tt.name, got, tt.wantTax)
			continue
		}
		for i := range got {
			if got[i] != tt.wantTax[i] {
				t.Errorf("%s: tax lines %v, want %v", tt.name, got, tt.wantTax)
			}
		}
		if !tax.Equal(sum) || note != tt.wantNote {
			t.Errorf("%s: tax %s (lines %s), note %q", tt.name, tax, sum, note)
		}
	}
	// The per-line alternative really differs on the first case.
	perLine := RoundTax(dec("0.02"), dec("20"), 2).Add(RoundTax(dec("0.02"), dec("20"), 2))
	if perLine.String() != "0" {
		t.Fatalf("per-line rounding of the first case: %s", perLine)
	}
}

func TestTaxRateValidate(t *testing.T) {
	ok := NewTaxRate{Jurisdiction: "DE", Name: "VAT", Rate: "19", EffectiveFrom: "2026-01-01"}
	if _, err := ok.Parse(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []NewTaxRate{
		{Jurisdiction: "de", Name: "VAT", Rate: "19", EffectiveFrom: "2026-01-01"},
		{Jurisdiction: "DE", Name: "", Rate: "19", EffectiveFrom: "2026-01-01"},
		{Jurisdiction: "DE", Name: "VAT", Rate: "101", EffectiveFrom: "2026-01-01"},
		{Jurisdiction: "DE", Name: "VAT", Rate: "-1", EffectiveFrom: "2026-01-01"},
		{Jurisdiction: "DE", Name: "VAT", Rate: "19.12345", EffectiveFrom: "2026-01-01"},
		{Jurisdiction: "DE", Name: "VAT", Rate: "x", EffectiveFrom: "2026-01-01"},
		{Jurisdiction: "DE", Name: "VAT", Rate: "19", EffectiveFrom: "2026-13-01"},
		{Jurisdiction: "DE", Name: "VAT", Rate: "19", EffectiveFrom: "2026-01-01", EffectiveTo: "2026-01-01"},
	} {
		if _, err := bad.Parse(); postage.ErrorCode(err) != postage.EINVALID {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

func TestReceivableDerive(t *testing.T) {
	due := MustParseDate("2026-12-01")
	ts := MustParseDate("2026-11-20").Time()
	tests := []struct {
		name                  string
		total, paid, credited string
		uncollectible         bool
		today                 string
		want                  PaymentStatus
		daysPastDue           int
	}{
		{"open", "10.00", "0", "0", false, "2026-11-15", PaymentOpen, 0},
		{"due today is not overdue", "10.00", "0", "0", false, "2026-12-01", PaymentOpen, 0},
		{"partially paid", "10.00", "4.00", "0", false, "2026-11-15", PaymentPartiallyPaid, 0},
		{"partly credited", "10.00", "0", "1.00", false, "2026-11-15", PaymentPartiallyPaid, 0},
		{"overdue", "10.00", "4.00", "0", false, "2026-12-02", PaymentOverdue, 1},
		{"paid", "10.00", "10.00", "0", false, "2027-03-01", PaymentPaid, 0},
		{"paid by credit", "10.00", "4.00", "6.00", false, "2027-03-01", PaymentPaid, 0},
		{"nothing to pay", "0.00", "0", "0", false, "2026-11-15", PaymentPaid, 0},
		{"uncollectible", "10.00", "0", "0", true, "2027-01-01", PaymentUncollectible, 31},
		{"uncollectible, then paid", "10.00", "10.00", "0", true, "2027-01-01", PaymentPaid, 0},
	}
	for _, tt := range tests {
		r := Receivable{Total: usd(tt.total), Paid: usd(tt.paid), Credited: usd(tt.credited), DueDate: due}
		r.Balance = NewMoney(r.Total.Sub(r.Paid.Decimal).Sub(r.Credited.Decimal), 2)
		if tt.uncollectible {
			r.UncollectibleAt = &ts
		}
		r.Derive(MustParseDate(tt.today))
		if r.Status != tt.want || r.DaysPastDue != tt.daysPastDue {
			t.Errorf("%s: %s %d days, want %s %d", tt.name, r.Status, r.DaysPastDue, tt.want, tt.daysPastDue)
		}
	}
}

func TestCheckPayment(t *testing.T) {
	r := Receivable{InvoiceID: "in_a", Number: "PST-1", Currency: "USD", Total: usd("10.00"), Balance: usd("6.00")}
	today := MustParseDate("2026-11-10")
	parse := func(n NewPayment) Payment {
		t.Helper()
		p, err := n.Parse(today)
		if err != nil {
			t.Fatalf("%+v: %v", n, err)
		}
		return p
	}
	base := NewPayment{Amount: "6.00", Currency: "USD", Date: "2026-11-10", Method: MethodBankTransfer}
	if p, err := checkPayment(parse(base), r); err != nil || p.Amount.String() != "6.00" || p.InvoiceID != "in_a" {
		t.Fatalf("whole balance: %+v %v", p, err)
	}
	for _, tt := range []struct {
		name string
		edit func(*NewPayment)
		code string
	}{
		{"overpayment", func(n *NewPayment) { n.Amount = "6.01" }, postage.EOVERPAYMENT},
		{"another currency", func(n *NewPayment) { n.Currency = "EUR" }, postage.ECURRENCYMISMATCH},
		{"more decimals than the currency", func(n *NewPayment) { n.Amount = "1.005" }, postage.EINVALID},
	} {
		n := base
		tt.edit(&n)
		if _, err := checkPayment(parse(n), r); postage.ErrorCode(err) != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
		}
	}
	for _, n := range []NewPayment{
		{Amount: "0", Currency: "USD", Date: "2026-11-10", Method: MethodCard},
		{Amount: "-1", Currency: "USD", Date: "2026-11-10", Method: MethodCard},
		{Amount: "1", Currency: "usd", Date: "2026-11-10", Method: MethodCard},
		{Amount: "1", Currency: "USD", Date: "2026-11-11", Method: MethodCard}, // tomorrow
		{Amount: "1", Currency: "USD", Date: "10/11/2026", Method: MethodCard},
		{Amount: "1", Currency: "USD", Date: "2026-11-10", Method: "bitcoin"},
		{Amount: "1", Currency: "USD", Date: "2026-11-10", Method: MethodCard, IdempotencyKey: "has space"},
	} {
		if _, err := n.Parse(today); postage.ErrorCode(err) != postage.EINVALID {
			t.Errorf("%+v: %v", n, err)
		}
	}
	paid := r
	paid.Balance = usd("0.00")
	if _, err := checkPayment(parse(NewPayment{Amount: "0.01", Currency: "USD", Date: "2026-11-10", Method: MethodCard}), paid); postage.ErrorCode(err) != postage.EOVERPAYMENT {
		t.Errorf("payment on a paid invoice: %v", err)
	}
}

// creditInvoice: two usage lines (100 units for 10.00, 3 units for 0.10),
// a negative adjustment, VAT 19%.
func creditInvoice() Invoice {
	inv := Invoice{ID: "in_c", Number: "PST-2026-000009", CustomerID: "c", Status: StatusFinalized, Currency: "USD", MinorUnits: 2,
		Period: pricing.MustParseMonth("2026-10"),
		Lines: []Line{
			{Kind: KindUsage, Market: "DE", Category: "marketing", Quantity: 100, Amount: usd("10.00"), Description: "marketing messages, DE"},
			{Kind: KindUsage, Market: "GB", Category: "utility", Quantity: 3, Amount: usd("0.10")},
			{Kind: KindAdjustment, Market: "DE", Category: "marketing", Quantity: -1, Amount: usd("-0.10")},
			{Kind: KindUsage, Market: "DE", Category: "service", Quantity: 5, Free: true, Amount: usd("0.00")},
		},
		Subtotal: usd("10.10"), Adjustments: usd("-0.10"),
		TaxLines: []TaxLine{{Name: "VAT", Jurisdiction: "DE", Rate: dec("19"), RateID: "txr_de", TaxableAmount: usd("10.00"), Tax: usd("1.90")}},
		Tax:      usd("1.90"), Total: usd("11.90"),
	}
	return inv
}

func TestPlanCreditNote(t *testing.T) {
	inv := creditInvoice()
	req := func(items ...CreditItem) CreditNoteRequest { return CreditNoteRequest{Reason: "test", Lines: items} }
	plan := func(prior []CreditNote, r CreditNoteRequest) *CreditNote {
		t.Helper()
		cn, err := PlanCreditNote(inv, prior, r)
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		return cn
	}
	// Part of a line's quantity: proportional, rounded half-even; the tax at the invoice's rate.
	a := plan(nil, req(CreditItem{Line: 1, Quantity: 25}))
	if a.Subtotal.String() != "2.50" || a.Tax.String() != "0.48" || a.Total.String() != "2.98" || a.Lines[0].Quantity != 25 || a.Lines[0].Description != "marketing messages, DE" {
		t.Fatalf("25 of 100: %+v", a)
	}
	// The rest of that line (75 units: exactly what is left of its amount).
	b := plan([]CreditNote{*a}, req(CreditItem{Line: 1}))
	if b.Subtotal.String() != "7.50" || b.Lines[0].Quantity != 75 {
		t.Fatalf("rest of line 1: %+v", b)
	}
	// Line 1 is now credited in full.
	if _, err := PlanCreditNote(inv, []CreditNote{*a, *b}, req(CreditItem{Line: 1, Amount: "0.01"})); postage.ErrorCode(err) != postage.EOVERCREDIT {
		t.Fatalf("line credited in full: %v", err)
	}
	// The two add up to the invoice's total, tax included: the second takes
	// exactly what is left of the tax (1.42, not 7.50 × 19% = 1.43).
	if b.Tax.String() != "1.42" || !a.Total.Add(b.Total.Decimal).Equal(inv.Total.Decimal) {
		t.Fatalf("credit notes add up to %s + %s, tax %s", a.Total, b.Total, b.Tax)
	}
	// Line 2 has room of its own, but the invoice's net (10.10 - 0.10) is credited.
	if _, err := PlanCreditNote(inv, []CreditNote{*a, *b}, req(CreditItem{Line: 2})); postage.ErrorCode(err) != postage.EOVERCREDIT {
		t.Fatalf("more than the invoice: %v", err)
	}
	// An amount off a line, and an amount off the invoice.
	d := plan(nil, req(CreditItem{Line: 2, Amount: "0.05"}, CreditItem{Amount: "1.00", Description: "goodwill"}))
	if d.Subtotal.String() != "1.05" || d.Tax.String() != "0.20" || d.Lines[1].Description != "goodwill" || d.Lines[1].InvoiceLine != 0 || d.Lines[0].Quantity != 0 {
		t.Fatalf("amounts: %+v", d)
	}
	for _, tt := range []struct {
		name  string
		prior []CreditNote
		r     CreditNoteRequest
		code  string
	}{
		{"more than a line's amount", nil, req(CreditItem{Line: 2, Amount: "0.11"}), postage.EOVERCREDIT},
		{"more than a line's quantity", nil, req(CreditItem{Line: 2, Quantity: 4}), postage.EOVERCREDIT},
		{"a line twice, too much together", nil, req(CreditItem{Line: 2, Quantity: 2}, CreditItem{Line: 2, Quantity: 2}), postage.EOVERCREDIT},
		{"more than the invoice", nil, req(CreditItem{Amount: "10.01"}), postage.EOVERCREDIT},
		{"after an earlier credit note", []CreditNote{*d}, req(CreditItem{Amount: "8.96"}), postage.EOVERCREDIT},
		{"a free line", nil, req(CreditItem{Line: 4}), postage.EINVALID},
		{"a negative adjustment", nil, req(CreditItem{Line: 3}), postage.EINVALID},
		{"no such line", nil, req(CreditItem{Line: 5}), postage.EINVALID},
		{"more decimals than USD", nil, req(CreditItem{Amount: "0.001"}), postage.EINVALID},
		{"quantity and amount", nil, req(CreditItem{Line: 1, Quantity: 1, Amount: "0.10"}), postage.EINVALID},
		{"nothing", nil, req(), postage.EINVALID},
		{"no reason", nil, CreditNoteRequest{Lines: []CreditItem{{Line: 1}}}, postage.EINVALID},
		{"neither line nor amount", nil, req(CreditItem{Description: "x"}), postage.EINVALID},
		{"negative amount", nil, req(CreditItem{Amount: "-1"}), postage.EINVALID},
	} {
		if _, err := PlanCreditNote(inv, tt.prior, tt.r); postage.ErrorCode(err) != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
		}
	}
	if ok := plan([]CreditNote{*d}, req(CreditItem{Amount: "8.95"})); !ok.Subtotal.Add(d.Subtotal.Decimal).Equal(dec("10.00")) || ok.Tax.String() != "1.70" {
		t.Fatalf("the rest of the invoice after an amount: %+v", ok)
	}
	draft := inv
	draft.Status = StatusDraft
	if _, err := PlanCreditNote(draft, nil, req(CreditItem{Line: 1})); postage.ErrorCode(err) != postage.ENOTFINALIZED {
		t.Fatalf("draft: %v", err)
	}
}
