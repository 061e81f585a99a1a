package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/shopspring/decimal"

	"postage/internal/auth"
)

// aging is the API's aging report.
type aging struct {
	AsOf      string     `json:"as_of"`
	Customers []agingRow `json:"customers"`
	Totals    []agingRow `json:"totals"`
}

type agingRow struct {
	CustomerID string `json:"customer_id"`
	Currency   string `json:"currency"`
	Current    string `json:"current"`
	D1         string `json:"days_1_30"`
	D31        string `json:"days_31_60"`
	D61        string `json:"days_61_90"`
	D90        string `json:"days_over_90"`
	Total      string `json:"total"`
}

type receivable struct {
	InvoiceID    string `json:"invoice_id"`
	Number       string `json:"number"`
	CustomerID   string `json:"customer_id"`
	CustomerName string `json:"customer_name"`
	Currency     string `json:"currency"`
	Total        string `json:"total"`
	Paid         string `json:"paid"`
	Credited     string `json:"credited"`
	Refunded     string `json:"refunded"`
	Balance      string `json:"balance"`
	Status       string `json:"status"`
}

func sum(amounts ...string) string {
	s := decimal.Zero
	for _, a := range amounts {
		s = s.Add(decimal.RequireFromString(a))
	}
	return s.StringFixed(2)
}

// TestFinanceDashboard: the finance view's headline figures split what
// finalized invoices bill from what drafts would, its customer filter
// finds customers by name, and the receivables view shows the aging
// report, records payments, issues credit notes and writes balances off,
// each equal to what the API says.
func TestFinanceDashboard(t *testing.T) {
	s := newStack(t)
	bctx, downloads := browserCtx(t)
	fin := s.Keys[auth.RoleFinance]

	t.Run("js helpers", func(t *testing.T) {
		tb := newTab(t, bctx, s.URL)
		tb.open("")
		tb.do(chromedp.WaitVisible(chromedp.ID("key")))
		for expr, want := range map[string]string{
			`c.pickCustomer("acme", [{id:"acme",name:"Acme"},{id:"acme-2",name:"Acme Two"}])`:                                        "acme",
			`c.pickCustomer("globex travel ltd", [{id:"g",name:"Globex Travel Ltd"},{id:"h",name:"x"}])`:                             "g",
			`c.pickCustomer("trav", [{id:"g",name:"Globex Travel Ltd"}])`:                                                            "g",
			`c.pickCustomer("ac", [{id:"a",name:"Acme"},{id:"b",name:"Acorn"}])`:                                                     "",
			`JSON.stringify(r.overdueTotals([{currency:"USD",days_1_30:"1.10",days_31_60:"2",days_61_90:"0",days_over_90:"0.05"}]))`: `[{"currency":"USD","amount":"3.15"}]`,
		} {
			got := eval[string](tb, fmt.Sprintf(`Promise.all([import("/js/customers.js"), import("/js/views/receivables.js")]).then(([c, r]) => %s)`, expr))
			if got != want {
				t.Errorf("%s = %q, want %q", expr, got, want)
			}
		}
	})

	t.Run("billed and customers by name", func(t *testing.T) {
		tb := newTab(t, bctx, s.URL)
		tb.signIn(fin)
		// Last month: drafts only. Nothing is billed yet; the drafts' sum is apart.
		last := time.Now().UTC().AddDate(0, -1, 0).Format("2006-01")
		var list struct {
			Data []struct {
				ID, Status, Total, Currency string
				CustomerID                  string `json:"customer_id"`
			} `json:"data"`
		}
		s.mustJSON(t, auth.RoleFinance, "GET", "/api/v1/invoices?period="+last+"&limit=200", nil, http.StatusOK, &list)
		var drafts []string
		for _, inv := range list.Data {
			if inv.Status == "draft" {
				drafts = append(drafts, inv.Total)
			}
		}
		tb.do(chromedp.WaitVisible(chromedp.CSS("#invoice-list table")))
		tb.waitText("#kpi-billed", "—")
		tb.waitText("#kpi-billed-draft", money(sum(drafts...), "USD"))
		// Two months ago: finalized only.
		older := time.Now().UTC().AddDate(0, -2, 0).Format("2006-01")
		s.mustJSON(t, auth.RoleFinance, "GET", "/api/v1/invoices?period="+older+"&limit=200", nil, http.StatusOK, &list)
		var finalized []string
		for _, inv := range list.Data {
			if inv.Status == "finalized" {
				finalized = append(finalized, inv.Total)
			}
		}
		eval[bool](tb, fmt.Sprintf(`(document.getElementById("f-period").value = %q, true)`, older))
		tb.submit("form.filters")
		tb.waitText("#kpi-billed", money(sum(finalized...), "USD"))
		tb.waitText("#kpi-billed-draft", "—")
		tb.shot("60-finance-billed-split")
		// A customer's name (part of it, any case) finds its invoices.
		tb.do(chromedp.SendKeys(chromedp.ID("f-customer"), "globex trav"))
		tb.submit("form.filters")
		tb.do(chromedp.WaitVisible(chromedp.CSS(`#invoice-list tr[data-invoice]`)))
		var globex struct {
			Data []struct{ ID string } `json:"data"`
		}
		s.mustJSON(t, auth.RoleFinance, "GET", "/api/v1/invoices?period="+older+"&customer=globex", nil, http.StatusOK, &globex)
		deadline := time.Now().Add(step)
		for {
			shown := tb.texts(`#invoice-list tr[data-invoice] td[data-col="customer_id"]`)
			if len(shown) == len(globex.Data) && len(shown) > 0 && !strings.Contains(strings.Join(shown, ""), "Acme") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("filtered by name: rows %q, API %d invoices of globex", shown, len(globex.Data))
			}
			time.Sleep(100 * time.Millisecond)
		}
		// A text several customers match says so instead of guessing.
		tb.do(chromedp.SetValue(chromedp.ID("f-customer"), "e"))
		tb.submit("form.filters")
		tb.do(chromedp.WaitVisible(chromedp.CSS("#invoice-list .state.empty")))
		if got := tb.text("#invoice-list .state.empty"); !strings.Contains(got, "customers match") {
			t.Errorf("ambiguous customer: %q", got)
		}
	})

	t.Run("receivables", func(t *testing.T) {
		// Forty-five days on: invoices finalized at the seeding (due after
		// net 30) are fifteen days overdue.
		s.setAhead(45 * 24 * time.Hour)
		tb := newTab(t, bctx, s.URL)
		tb.signIn(fin)
		tb.open("#/receivables")
		tb.do(chromedp.WaitVisible(chromedp.CSS("#aging table")), chromedp.WaitVisible(chromedp.CSS("#receivables table")))
		var rep aging
		s.mustJSON(t, auth.RoleFinance, "GET", "/api/v1/receivables/aging", nil, http.StatusOK, &rep)
		if len(rep.Totals) != 1 || len(rep.Customers) == 0 {
			t.Fatalf("aging %+v", rep)
		}
		tot := rep.Totals[0]
		tb.waitText("#kpi-outstanding", money(tot.Total, tot.Currency))
		tb.waitText("#kpi-overdue", money(sum(tot.D1, tot.D31, tot.D61, tot.D90), tot.Currency))
		if tot.D1 == "0.00" {
			t.Errorf("nothing 1-30 days overdue 45 days on: %+v", tot)
		}
		for _, r := range rep.Customers {
			row := fmt.Sprintf(`#aging tr[data-customer=%q]`, r.CustomerID)
			for col, want := range map[string]string{"current": r.Current, "days_1_30": r.D1, "days_over_90": r.D90, "total": r.Total} {
				if got := tb.text(row + fmt.Sprintf(` td[data-col=%q]`, col)); got != money(want, r.Currency) {
					t.Errorf("aging %s %s shown %q, API %s", r.CustomerID, col, got, want)
				}
			}
		}
		tb.shot("61-receivables")
		var owed struct {
			Data []receivable `json:"data"`
		}
		s.mustJSON(t, auth.RoleFinance, "GET", "/api/v1/receivables?outstanding=true&limit=500", nil, http.StatusOK, &owed)
		if len(owed.Data) < 3 {
			t.Fatalf("want several invoices owed, have %d", len(owed.Data))
		}
		a, b, c := owed.Data[0], owed.Data[1], owed.Data[2]
		get := func(id string) receivable {
			var r receivable
			s.mustJSON(t, auth.RoleFinance, "GET", "/api/v1/invoices/"+id+"/balance", nil, http.StatusOK, &r)
			return r
		}
		row := func(id string) string { return fmt.Sprintf(`#receivables tr[data-invoice=%q]`, id) }
		if got := tb.text(row(a.InvoiceID) + ` td[data-col="balance"]`); got != money(a.Balance, a.Currency) {
			t.Errorf("balance of %s shown %q, API %s", a.Number, got, a.Balance)
		}

		// A partial payment, through the dialog.
		tb.do(chromedp.Click(chromedp.CSS(row(a.InvoiceID)+` button[data-action="pay"]`)), chromedp.WaitVisible(chromedp.CSS("dialog.modal[open]")),
			chromedp.SetValue(chromedp.ID("pay-amount"), "1.00"), chromedp.SendKeys(chromedp.ID("pay-reference"), "SEPA 0042"))
		tb.shotViewport("62-receivables-payment-dialog")
		tb.do(chromedp.Click(chromedp.CSS(`dialog.modal button[data-confirm]`)),
			chromedp.WaitVisible(chromedp.CSS(`#payments tr[data-payment]`)))
		if r := get(a.InvoiceID); r.Paid != "1.00" || r.Balance != sum(a.Balance, "-1.00") || r.Status != "overdue" {
			t.Fatalf("after the payment: %+v", r)
		}
		if got := tb.text(`#payments tr[data-payment] td[data-col="amount"]`); got != money("1.00", a.Currency) {
			t.Errorf("payment shown %q", got)
		}
		// More than the balance is refused in the API's words, and nothing is recorded.
		tb.do(chromedp.WaitVisible(chromedp.CSS(row(a.InvoiceID)+` button[data-action="pay"]`)),
			chromedp.Click(chromedp.CSS(row(a.InvoiceID)+` button[data-action="pay"]`)), chromedp.WaitVisible(chromedp.CSS("dialog.modal[open]")),
			chromedp.SetValue(chromedp.ID("pay-amount"), sum(a.Balance, "5")),
			chromedp.Click(chromedp.CSS(`dialog.modal button[data-confirm]`)),
			chromedp.WaitVisible(chromedp.CSS(".toast.error")))
		if got := tb.text(".toast.error"); !strings.Contains(got, "more than the balance") {
			t.Errorf("overpayment shown %q", got)
		}
		if r := get(a.InvoiceID); r.Paid != "1.00" {
			t.Errorf("refused payment recorded: %+v", r)
		}

		// A credit note of 2.00 (before tax), through the dialog.
		tb.do(chromedp.Click(chromedp.CSS(row(b.InvoiceID)+` button[data-action="credit"]`)), chromedp.WaitVisible(chromedp.CSS("dialog.modal[open]")),
			chromedp.SetValue(chromedp.ID("credit-amount"), "2.00"), chromedp.SendKeys(chromedp.ID("credit-reason"), "duplicate sends on the 3rd"))
		tb.shotViewport("63-receivables-credit-dialog")
		tb.do(chromedp.Click(chromedp.CSS(`dialog.modal button[data-confirm]`)),
			chromedp.WaitVisible(chromedp.CSS(`#credit-notes tr[data-credit-note]`)))
		var cns struct {
			Data []struct {
				ID, Number, Total string
				InvoiceID         string `json:"invoice_id"`
			} `json:"data"`
		}
		s.mustJSON(t, auth.RoleFinance, "GET", "/api/v1/credit-notes", nil, http.StatusOK, &cns)
		if len(cns.Data) != 1 || cns.Data[0].InvoiceID != b.InvoiceID || !strings.HasPrefix(cns.Data[0].Number, "CN-") {
			t.Fatalf("credit notes %+v", cns.Data)
		}
		if r := get(b.InvoiceID); r.Credited != cns.Data[0].Total || r.Balance != sum(b.Balance, "-"+cns.Data[0].Total) {
			t.Errorf("after the credit note: %+v", r)
		}
		tb.do(chromedp.Click(chromedp.CSS(`#credit-notes tr[data-credit-note] button[data-download="pdf"]`)))
		if pdf := waitFile(t, downloads, cns.Data[0].Number+".pdf"); !strings.HasPrefix(string(pdf), "%PDF-") {
			t.Errorf("credit note PDF starts %q", pdf[:min(8, len(pdf))])
		}
		// Voided through the dialog: it stays listed, says void, and b owes its total again.
		cnRow := fmt.Sprintf(`#credit-notes tr[data-credit-note=%q]`, cns.Data[0].ID)
		tb.do(chromedp.Click(chromedp.CSS(cnRow+` button[data-action="void-credit-note"]`)), chromedp.WaitVisible(chromedp.CSS("dialog.modal[open]")),
			chromedp.SendKeys(chromedp.ID("void-cn-reason"), "credited the wrong invoice"))
		tb.shotViewport("63b-receivables-void-credit-note-dialog")
		tb.do(chromedp.Click(chromedp.CSS(`dialog.modal button[data-confirm]`)),
			chromedp.WaitVisible(chromedp.CSS(cnRow+`[data-status="void"]`)))
		if r := get(b.InvoiceID); r.Credited != "0.00" || r.Balance != b.Balance {
			t.Errorf("after the void: %+v, before the credit note %+v", r, b)
		}
		if got := tb.text(cnRow + ` td[data-col="status"]`); got != "Void" {
			t.Errorf("void credit note shown %q", got)
		}
		cns.Data[0].Total = "0.00" // it no longer reduces what is owed

		// A write-off: the row says uncollectible and the aging leaves it out.
		tb.do(chromedp.Click(chromedp.CSS(row(c.InvoiceID)+` button[data-action="write-off"]`)), chromedp.WaitVisible(chromedp.CSS("dialog.modal[open]")),
			chromedp.SendKeys(chromedp.ID("writeoff-reason"), "insolvent"),
			chromedp.Click(chromedp.CSS(`dialog.modal button[data-confirm]`)),
			chromedp.WaitVisible(chromedp.CSS(row(c.InvoiceID)+`[data-status="uncollectible"]`)))
		var after aging
		s.mustJSON(t, auth.RoleFinance, "GET", "/api/v1/receivables/aging", nil, http.StatusOK, &after)
		tb.waitText("#kpi-outstanding", money(after.Totals[0].Total, after.Totals[0].Currency))
		if got, want := after.Totals[0].Total, sum(tot.Total, "-1.00", "-"+cns.Data[0].Total, "-"+c.Balance); got != want {
			t.Errorf("aging total after payment, credit and write-off: %s, want %s", got, want)
		}
		tb.shot("64-receivables-after")

		// Settling a through the dialog (its amount is the balance): it
		// leaves the invoices with a balance and is listed as paid.
		rest := get(a.InvoiceID).Balance
		tb.do(chromedp.Click(chromedp.CSS(row(a.InvoiceID)+` button[data-action="pay"]`)), chromedp.WaitVisible(chromedp.CSS("dialog.modal[open]")))
		if got := eval[string](tb, `document.getElementById("pay-amount").value`); got != rest {
			t.Errorf("payment dialog offers %q, the balance is %s", got, rest)
		}
		tb.do(chromedp.Click(chromedp.CSS(`dialog.modal button[data-confirm]`)), chromedp.WaitNotPresent(chromedp.CSS(row(a.InvoiceID))))
		shownRows := func(want []string) {
			t.Helper()
			slices.Sort(want)
			deadline := time.Now().Add(step)
			for {
				got := eval[[]string](tb, `[...document.querySelectorAll("#receivables tr[data-invoice]")].map(e => e.dataset.invoice + " " + e.dataset.status)`)
				slices.Sort(got)
				if slices.Equal(got, want) {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("invoices shown %q, the API lists %q", got, want)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		listed := func(query string) []string {
			t.Helper()
			var l struct {
				Data []receivable `json:"data"`
			}
			s.mustJSON(t, auth.RoleFinance, "GET", "/api/v1/receivables?limit=500&"+query, nil, http.StatusOK, &l)
			out := []string{}
			for _, r := range l.Data {
				out = append(out, r.InvoiceID+" "+r.Status)
			}
			return out
		}
		if r := get(a.InvoiceID); r.Status != "paid" || r.Balance != "0.00" {
			t.Fatalf("after the settling payment: %+v", r)
		}
		stillOwed := listed("outstanding=true")
		if slices.Contains(stillOwed, a.InvoiceID+" paid") || len(stillOwed) != len(owed.Data)-1 {
			t.Errorf("outstanding after settling %s: %q", a.Number, stillOwed)
		}
		shownRows(stillOwed)
		filterBy := func(status, customer string) {
			t.Helper()
			eval[bool](tb, fmt.Sprintf(`(document.getElementById("r-status").value = %q, document.getElementById("r-customer").value = %q, true)`, status, customer))
			tb.submit("#recv-filters")
		}
		// The status filter shows what the API lists for each status.
		for _, st := range []string{"paid", "overdue", "uncollectible"} {
			filterBy(st, "")
			want := listed("status=" + st)
			if len(want) == 0 {
				t.Errorf("no %s invoice to show", st)
			}
			shownRows(want)
		}
		// And with a customer found by name: only that customer's.
		filterBy("uncollectible", c.CustomerName)
		shownRows([]string{c.InvoiceID + " uncollectible"})
		tb.shot("66-receivables-filtered")
		filterBy("outstanding", "")
		shownRows(stillOwed)

		// A credit note after a's payment leaves the customer owed; a
		// refund through the dialog (its amount is what is owed) brings
		// the balance back to zero and is listed with the refunds.
		var cn struct{ Total string }
		s.mustJSON(t, auth.RoleFinance, "POST", "/api/v1/invoices/"+a.InvoiceID+"/credit-notes",
			map[string]any{"reason": "SLA credit", "lines": []map[string]string{{"amount": "0.50"}}}, http.StatusCreated, &cn)
		if r := get(a.InvoiceID); r.Balance != "-"+cn.Total {
			t.Fatalf("after a credit note on a paid invoice: %+v", r)
		}
		filterBy("paid", "")
		tb.do(chromedp.WaitVisible(chromedp.CSS(row(a.InvoiceID) + ` button[data-action="refund"]`)))
		if got := tb.text(row(a.InvoiceID) + ` td[data-col="balance"]`); got != money("-"+cn.Total, a.Currency) {
			t.Errorf("negative balance shown %q, API -%s", got, cn.Total)
		}
		tb.do(chromedp.Click(chromedp.CSS(row(a.InvoiceID)+` button[data-action="refund"]`)), chromedp.WaitVisible(chromedp.CSS("dialog.modal[open]")))
		if got := eval[string](tb, `document.getElementById("refund-amount").value`); got != cn.Total {
			t.Errorf("refund dialog offers %q, the customer is owed %s", got, cn.Total)
		}
		tb.do(chromedp.SendKeys(chromedp.ID("refund-reference"), "SEPA RF-7"))
		tb.shotViewport("65a-receivables-refund-dialog")
		tb.do(chromedp.Click(chromedp.CSS(`dialog.modal button[data-confirm]`)),
			chromedp.WaitVisible(chromedp.CSS(`#refunds tr[data-refund]`)))
		if r := get(a.InvoiceID); r.Balance != "0.00" || r.Refunded != cn.Total || r.Status != "paid" {
			t.Fatalf("after the refund: %+v", r)
		}
		if got := tb.text(`#refunds tr[data-refund] td[data-col="amount"]`); got != money(cn.Total, a.Currency) {
			t.Errorf("refund shown %q, API %s", got, cn.Total)
		}
		tb.do(chromedp.WaitNotPresent(chromedp.CSS(row(a.InvoiceID) + ` button[data-action="refund"]`)))
		if got := tb.text(row(a.InvoiceID) + ` td[data-col="refunded"]`); got != money(cn.Total, a.Currency) {
			t.Errorf("refunded shown %q, API %s", got, cn.Total)
		}
		filterBy("outstanding", "")
		shownRows(stillOwed)

		// The aging CSV download is the API's.
		tb.do(chromedp.Click(chromedp.ID("aging-csv")))
		_, csv, _ := s.call(t, fin, "GET", "/api/v1/receivables/aging?format=csv", nil, "")
		if got := waitFile(t, downloads, "aging-"+after.AsOf+".csv"); string(got) != string(csv) {
			t.Errorf("aging CSV differs from the API's:\n%s\n%s", got, csv)
		}

		// A phone screen: nothing wider than it.
		tb.do(chromedp.EmulateViewport(390, 844))
		tb.open("#/receivables")
		tb.do(chromedp.WaitVisible(chromedp.CSS("#receivables table")))
		if w := eval[float64](tb, `document.documentElement.scrollWidth`); w > 390 {
			t.Errorf("receivables is %v px wide on a 390 px screen", w)
		}
		tb.shot("65-receivables-phone")
	})

	t.Run("customer key", func(t *testing.T) {
		tb := newTab(t, bctx, s.URL)
		tb.signIn(s.Keys[auth.RoleCustomer])
		tb.open("#/receivables")
		tb.do(chromedp.WaitVisible(chromedp.ID("forbidden")))
		if status, _, _ := s.call(t, s.Keys[auth.RoleCustomer], "GET", "/api/v1/receivables", nil, ""); status != http.StatusForbidden {
			t.Errorf("customer lists receivables: %d", status)
		}
	})
}
