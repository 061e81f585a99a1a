package billing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"postage"
	"postage/billing"
	"postage/pricing"
)

// invoiceDocs are the three forms of an invoice, as served.
type invoiceDocs struct {
	json, csv, pdf []byte
	pdfText        string
}

func (f *fixture) docs(id string) invoiceDocs {
	f.t.Helper()
	ctx := context.Background()
	inv, err := f.store.Get(ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	var d invoiceDocs
	if d.json, err = json.Marshal(inv); err != nil {
		f.t.Fatal(err)
	}
	if d.csv, err = f.runner.Document(ctx, inv, billing.FormatCSV); err != nil {
		f.t.Fatal(err)
	}
	if d.pdf, err = f.runner.Document(ctx, inv, billing.FormatPDF); err != nil {
		f.t.Fatal(err)
	}
	d.pdfText = pdfText(f.t, d.pdf)
	return d
}

// pdfText extracts a PDF's text with pdftotext (poppler-utils).
func pdfText(t *testing.T, pdf []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "invoice.pdf")
	if err := os.WriteFile(path, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", "-layout", path, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext (poppler-utils, installed by scripts/install-deps.sh): %v", err)
	}
	return string(out)
}

// restyled draws documents differently from reports.InvoiceDocuments: the
// stand-in for a release that restyles invoices.
type restyled struct{}

func (restyled) RenderInvoice(ctx context.Context, inv billing.Invoice, f billing.Format) ([]byte, error) {
	inv.Customer.Name = "RESTYLED " + inv.Customer.Name
	return testDocs.RenderInvoice(ctx, inv, f)
}

// A finalized invoice never changes: its JSON, CSV and PDF stay byte for
// byte what they were when it was first served, after the code that
// describes lines, the issuer in the configuration and the way documents
// are drawn all change. Drafts follow the current code and configuration.
func TestFinalizedInvoiceNeverChanges(t *testing.T) {
	f := newFixture(t, "a", "b")
	ctx := context.Background()
	f.events(
		ev{customer: "a", country: "DE", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 3},
		ev{customer: "a", country: "GB", category: "session", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 2},
		ev{customer: "a", country: "FR", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", pricingType: "free_customer_service"},
		ev{customer: "b", country: "DE", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01"},
	)
	f.run("2026-10")
	fin, err := f.runner.Approve(ctx, billing.InvoiceID("a", pricing.MustParseMonth("2026-10"), 1))
	if err != nil {
		t.Fatal(err)
	}
	if !fin.Frozen() || fin.Issuer != testIssuer {
		t.Fatalf("finalized invoice not frozen with the issuer: %+v", fin)
	}
	draftID := billing.InvoiceID("b", pricing.MustParseMonth("2026-10"), 1)
	before, draftBefore := f.docs(fin.ID), f.docs(draftID)
	for _, want := range []string{"Postage Test Ltd.", "marketing messages, DE", "free — customer service window"} {
		if !strings.Contains(string(before.json), want) {
			t.Errorf("finalized JSON lacks %q:\n%s", want, before.json)
		}
	}
	for _, want := range []string{"Postage Test Ltd.", fin.Number, "Tax id GB123456789", "IBAN GB33 BUKB 2020 1555 5555 55", "SWIFT BUKBGB22"} {
		if !strings.Contains(before.pdfText, want) {
			t.Fatalf("PDF text lacks %q:\n%s", want, before.pdfText)
		}
	}

	// A release words lines differently, the issuer moves, documents are
	// drawn in a new style.
	restore := billing.SetDescriber(func(l billing.Line) string { return "NEW WORDING " + billing.DescribeLine(l) })
	defer restore()
	f.runner.Issuer = billing.Issuer{Name: "Renamed Holdings plc", Address: "2 Other Road, Elsewhere", TaxID: "GB999999973", BankDetails: "Other Bank\nIBAN GB94 BARC 1020 1530 0934 59"}
	f.runner.Render = restyled{}

	after := f.docs(fin.ID)
	if !bytes.Equal(after.json, before.json) {
		t.Errorf("finalized JSON changed:\nbefore %s\n after %s", before.json, after.json)
	}
	if !bytes.Equal(after.csv, before.csv) {
		t.Errorf("finalized CSV changed:\nbefore %s\n after %s", before.csv, after.csv)
	}
	if !bytes.Equal(after.pdf, before.pdf) {
		t.Errorf("finalized PDF changed (%d bytes, was %d)", len(after.pdf), len(before.pdf))
	}
	if after.pdfText != before.pdfText {
		t.Errorf("finalized PDF text changed:\nbefore %s\n after %s", before.pdfText, after.pdfText)
	}
	// The frozen document alone draws the same invoice: its first
	// rendering is kept, but drawing it again from the frozen data (with
	// the old style) gives the same text.
	again, err := f.store.Get(ctx, fin.ID)
	if err != nil {
		t.Fatal(err)
	}
	redrawn, err := testDocs.RenderInvoice(ctx, again, billing.FormatPDF)
	if err != nil {
		t.Fatal(err)
	}
	if got := pdfText(t, redrawn); got != before.pdfText {
		t.Errorf("PDF drawn again from the frozen document:\n%s\nwant\n%s", got, before.pdfText)
	}

	// Drafts are drawn from the current code and configuration (so the
	// changes above were real).
	draftAfter := f.docs(draftID)
	if bytes.Equal(draftAfter.json, draftBefore.json) || !strings.Contains(string(draftAfter.json), "NEW WORDING") {
		t.Errorf("the draft did not take the new wording:\n%s", draftAfter.json)
	}
	if !strings.Contains(draftAfter.pdfText, "Renamed Holdings plc") || !strings.Contains(draftAfter.pdfText, "RESTYLED") ||
		!strings.Contains(draftAfter.pdfText, "GB999999973") || !strings.Contains(draftAfter.pdfText, "IBAN GB94 BARC") {
		t.Errorf("the draft's PDF did not take the new issuer and style:\n%s", draftAfter.pdfText)
	}

	// Voiding freezes the void invoice with the issuer it was finalized
	// with, and its documents stay as first served too.
	voided, _, err := f.runner.Void(ctx, fin.ID, "wrong address")
	if err != nil {
		t.Fatal(err)
	}
	if voided.Issuer != testIssuer || voided.Status != billing.StatusVoid || !voided.Frozen() {
		t.Fatalf("void invoice: %+v", voided)
	}
	v1 := f.docs(fin.ID)
	if !strings.Contains(v1.pdfText, "VOID") || !strings.Contains(v1.pdfText, "Postage Test Ltd.") || strings.Contains(string(v1.json), "Renamed Holdings") {
		t.Errorf("void documents:\n%s\n%s", v1.json, v1.pdfText)
	}
	restore()
	f.runner.Render = testDocs
	v2 := f.docs(fin.ID)
	if !bytes.Equal(v1.json, v2.json) || !bytes.Equal(v1.csv, v2.csv) || !bytes.Equal(v1.pdf, v2.pdf) {
		t.Error("a void invoice's documents changed")
	}

	// The database refuses to change what a finalized invoice bills.
	_, err = f.env.PG.Exec(ctx, `UPDATE invoices SET total = total + 1 WHERE id = $1`, fin.ID)
	if err == nil || !strings.Contains(err.Error(), "never changes") {
		t.Errorf("updating a void invoice's total: %v, want it refused", err)
	}
	_, err = f.env.PG.Exec(ctx, `UPDATE invoice_documents SET body = 'x' WHERE invoice_id = $1`, fin.ID)
	if err == nil || !strings.Contains(err.Error(), "never changes") {
		t.Errorf("updating a stored document: %v, want it refused", err)
	}
}

// Two finalizations of one invoice cannot both happen, and a rendering
// stored by one request is the one every other gets.
func TestFirstRenderingIsKept(t *testing.T) {
	f := newFixture(t, "a")
	ctx := context.Background()
	f.events(ev{customer: "a", country: "DE", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01"})
	f.run("2026-10")
	fin, err := f.runner.Approve(ctx, billing.InvoiceID("a", pricing.MustParseMonth("2026-10"), 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.runner.Approve(ctx, fin.ID); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Fatalf("second finalization: %v", err)
	}
	first, err := f.store.PutDocument(ctx, fin.ID, billing.StatusFinalized, billing.FormatCSV, []byte("first"))
	if err != nil || string(first) != "first" {
		t.Fatalf("%q %v", first, err)
	}
	second, err := f.store.PutDocument(ctx, fin.ID, billing.StatusFinalized, billing.FormatCSV, []byte("second"))
	if err != nil || string(second) != "first" {
		t.Fatalf("second rendering: %q %v, want the first kept", second, err)
	}
	got, err := f.runner.Document(ctx, fin, billing.FormatCSV)
	if err != nil || string(got) != "first" {
		t.Fatalf("served %q %v", got, err)
	}
}

// An invoice finalized before finalization froze invoices (no document) is
// read from its columns until FreezeFinalized freezes it, once.
func TestFreezeFinalizedBeforeFreezing(t *testing.T) {
	f := newFixture(t, "a")
	ctx := context.Background()
	f.events(ev{customer: "a", country: "DE", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01"})
	f.run("2026-10")
	fin, err := f.runner.Approve(ctx, billing.InvoiceID("a", pricing.MustParseMonth("2026-10"), 1))
	if err != nil {
		t.Fatal(err)
	}
	// As finalized by an earlier release: no frozen document.
	for _, q := range []string{`ALTER TABLE invoices DISABLE TRIGGER invoices_never_change`, `UPDATE invoices SET document = NULL`, `ALTER TABLE invoices ENABLE TRIGGER invoices_never_change`} {
		if _, err := f.env.PG.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if old, _ := f.store.Get(ctx, fin.ID); old.Frozen() || !old.Issuer.IsZero() {
		t.Fatalf("unfrozen invoice read as %+v", old)
	}
	if n, err := f.runner.FreezeFinalized(ctx); err != nil || n != 1 {
		t.Fatalf("froze %d, %v", n, err)
	}
	frozen, err := f.store.Get(ctx, fin.ID)
	if err != nil || !frozen.Frozen() || frozen.Issuer != testIssuer || frozen.Lines[0].Description != "marketing messages, DE" {
		t.Fatalf("frozen = %+v, %v", frozen, err)
	}
	restore := billing.SetDescriber(func(billing.Line) string { return "changed" })
	defer restore()
	if again, _ := f.store.Get(ctx, fin.ID); again.Lines[0].Description != "marketing messages, DE" {
		t.Fatalf("a frozen invoice took a new description: %+v", again.Lines[0])
	}
	if n, err := f.runner.FreezeFinalized(ctx); err != nil || n != 0 {
		t.Fatalf("second freeze: %d, %v", n, err)
	}
}
