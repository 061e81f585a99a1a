package reports

import (
	"bytes"
	"context"
	"embed"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/billing"
)

// PDFPrinter prints an HTML document to PDF (internal/pdfrender.Printer:
// headless Chromium, which shapes every script). created is the
// document's own date, which the PDF's dates say.
type PDFPrinter interface {
	PrintPDF(ctx context.Context, html []byte, created time.Time) ([]byte, error)
}

//go:embed templates
var templateFS embed.FS

// The documents' one template set: the page, and the partials for the
// header, the parties, a table of lines, the totals and the notes that
// invoices, credit notes and quotes share.
var documentTemplate = template.Must(template.New("").ParseFS(templateFS, "templates/document.html"))

// documentCSS is the one stylesheet of every document.
var documentCSS = func() template.CSS {
	b, err := templateFS.ReadFile("templates/document.css")
	if err != nil {
		panic(err)
	}
	return template.CSS(b) // our own file, not input
}()

// page is what the document template draws. Every string in it is text:
// html/template escapes it.
type page struct {
	Title   string // the HTML title (the PDF's title)
	Footer  string // the footer line before "page N of M"
	Heading string // INVOICE, CREDIT NOTE, QUOTE
	Lead    string // a line under the header (quotes)
	Issuer  *issuerView

	PartyLabel string   // "Bill to"
	Party      []string // the customer: name first
	Facts      []fact

	Banner string // a void invoice's notice
	Reason string // a credit note's reason

	Tables []table
	Totals []total

	BankLabel string   // "Payment to" (invoices), "Bank details"
	Bank      []string // the issuer's bank details
	LegalNote string   // reverse charge, exemption
	Notes     []string
}

// CSS is the stylesheet (a method, so it stays out of the views' data).
func (page) CSS() template.CSS { return documentCSS }

type issuerView struct {
	Name    string
	Address []string
	TaxID   string
}

type fact struct{ Label, Value string }

type total struct {
	Label, Amount string
	Grand         bool
}

type column struct {
	Label string
	Num   bool
	Width string // CSS width, "" for auto
}

// table is a table of lines: rows grouped so that a line and its detail
// rows stay on one page; the header repeats on every page.
type table struct {
	Title   string
	Columns []column
	Groups  [][]row
}

type row struct {
	Class string // "", sub (a line's detail), total, muted
	Cells []cell
}

type cell struct {
	Text string
	Span int
	Num  bool
}

// newRow lays texts out under cols: the first text spans the empty
// columns after it (a detail's wording runs across), numeric columns are
// right-aligned.
func newRow(class string, cols []column, texts ...string) row {
	r := row{Class: class}
	for i := 0; i < len(cols); i++ {
		t := ""
		if i < len(texts) {
			t = texts[i]
		}
		c := cell{Text: t, Span: 1, Num: cols[i].Num}
		if i == 0 {
			for i+1 < len(cols) && (i+1 >= len(texts) || texts[i+1] == "") && i+1 < len(cols)-1 {
				i++
				c.Span++
			}
			c.Num = false
		}
		r.Cells = append(r.Cells, c)
	}
	return r
}

// drawHTML writes p as an HTML document.
func drawHTML(w io.Writer, p page) error {
	return documentTemplate.ExecuteTemplate(w, "document", p)
}

// printPDF draws p and prints it with the printer.
func printPDF(ctx context.Context, pr PDFPrinter, p page, created time.Time) ([]byte, error) {
	if pr == nil {
		return nil, postage.Errorf(postage.ERENDERER, "PDF documents are not configured on this server")
	}
	var buf bytes.Buffer
	if err := drawHTML(&buf, p); err != nil {
		return nil, err
	}
	return pr.PrintPDF(ctx, buf.Bytes(), created)
}

func issuerOf(i billing.Issuer) *issuerView {
	if i.IsZero() {
		return nil
	}
	return &issuerView{Name: i.Name, Address: splitAddress(i.Address), TaxID: i.TaxID}
}

// splitAddress splits an issuer's address into lines: at line breaks,
// or at commas when it is one line.
func splitAddress(s string) []string {
	sep := ","
	if strings.Contains(s, "\n") {
		sep = "\n"
	}
	return nonEmptyLines(strings.Split(s, sep))
}

// bankLines are the issuer's bank details, one line each.
func bankLines(s string) []string {
	return nonEmptyLines(strings.Split(s, "\n"))
}

func nonEmptyLines(in []string) []string {
	var out []string
	for _, l := range in {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// groupAmount writes a decimal string with thousands separators in its
// integer part ("-10330.00" → "-10,330.00").
func groupAmount(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i := range len(intPart) {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteByte(intPart[i])
	}
	if hasFrac {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}

// money writes an amount with its currency's decimals and thousands
// separators.
func money(m billing.Money) string { return groupAmount(m.String()) }

// fixedDecimals are the decimals unit prices print with in one document:
// as many as the most precise of them has, at least minor+2 (at most 8),
// so the column lines up.
func fixedDecimals(minor int, prices ...decimal.Decimal) int32 {
	n := int32(minor + 2)
	for _, p := range prices {
		s := p.String()
		if _, frac, ok := strings.Cut(s, "."); ok && int32(len(frac)) > n {
			n = int32(len(frac))
		}
	}
	return min(n, 8)
}
