package reports

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"postage/billing"
)

// Names in WhatsApp's largest markets' scripts: Arabic (joined, right to
// left), Devanagari (conjuncts), Chinese, Cyrillic, Thai.
var scriptNames = []struct{ script, name, address string }{
	{"Arabic", "شركة الرسائل", "شارع الملك فهد ١٢، الرياض"},
	{"Devanagari", "संदेश सेवा", "क्षेत्र १२, नई दिल्ली"},
	{"Chinese", "消息服务有限公司", "北京市朝阳区建国路88号"},
	{"Cyrillic", "Сообщения ООО", "ул. Тверская, 7, Москва"},
	{"Thai", "บริการข้อความ", "ถนนสุขุมวิท กรุงเทพมหานคร"},
}

// An invoice to customers named in five scripts prints every name and
// address in the PDF's text layer, and draws no character with a missing
// glyph (glyph 0, which shows as an empty box).
func TestInvoicePDFPrintsEveryScript(t *testing.T) {
	for _, tool := range []string{"pdftotext", "mutool"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: apt-get install -y poppler-utils mupdf-tools (scripts/install-deps.sh does)", tool)
		}
	}
	for _, sc := range scriptNames {
		t.Run(sc.script, func(t *testing.T) {
			inv := withIssuer(sampleInvoice(), billing.Issuer{Name: "Postage Messaging Ltd.", Address: "1 Example Street, London"})
			inv.Customer.Name = sc.name
			inv.Customer.Address = &billing.Address{Line1: sc.address, Country: "AE"}
			pdf := renderPDF(t, inv)
			text := pdfText(t, pdf)
			for _, want := range []string{sc.name, sc.address} {
				if !containsText(text, want) && !(sc.script == "Arabic" && lineHasWords(text, want)) {
					t.Errorf("the PDF's text lacks %q:\n%s", want, text)
				}
			}
			missing, fonts := traceGlyphs(t, pdf)
			if len(missing) > 0 {
				t.Errorf("characters drawn with a missing glyph (glyph 0): %q", missing)
			}
			// Every character is drawn in the stylesheet's Noto families,
			// not in whatever fallback font the machine has. (Chromium's
			// PDF backend embeds CFF fonts, Noto Sans CJK's, as unnamed
			// Type 3 fonts.)
			for _, f := range fonts {
				if !strings.Contains(f, "Noto") && f != "Unnamed-T3" {
					t.Errorf("text drawn in %s, not a Noto font (fonts: %q)", f, fonts)
				}
			}
			keepPages(t, "script-"+strings.ToLower(sc.script), pdf)
		})
	}
}

// containsText reports whether text holds want once both are normalized:
// NFKC (Arabic may come out as presentation forms), bidirectional marks
// that pdftotext adds around right-to-left runs dropped, and runs of
// spaces folded.
func containsText(text, want string) bool {
	clean := func(s string) string {
		s = norm.NFKC.String(s)
		s = strings.Map(func(r rune) rune {
			switch r {
			case '\u200e', '\u200f', '\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069':
				return -1
			}
			return r
		}, s)
		return strings.Join(strings.Fields(s), " ")
	}
	return strings.Contains(clean(text), clean(want))
}

// lineHasWords reports whether one line of text has every word of want
// (normalized as containsText does, punctuation dropped). pdftotext writes
// a line's runs in visual order, each right-to-left run in logical order:
// a line that mixes Arabic words with digits and an Arabic comma comes
// out with its runs reordered ("الرياض ،١٢ شارع الملك فهد"), its words
// intact.
func lineHasWords(text, want string) bool {
	words := func(s string) []string {
		return strings.Fields(strings.Map(func(r rune) rune {
			if unicode.IsPunct(r) || unicode.Is(unicode.Bidi_Control, r) {
				return ' ' // a run's end is a word's
			}
			return r
		}, norm.NFKC.String(s)))
	}
	need := words(want)
	for _, line := range strings.Split(text, "\n") {
		have := words(line)
		if !slices.ContainsFunc(need, func(w string) bool { return !slices.Contains(have, w) }) {
			return true
		}
	}
	return false
}

var (
	glyphZero = regexp.MustCompile(`<g unicode="([^"]*)" glyph="0"`)
	spanFont  = regexp.MustCompile(`<span font="(?:[A-Z]{6}\+)?([^"]+)"`)
)

// traceGlyphs lists the characters mutool trace (mupdf-tools) shows drawn
// with glyph 0 (the font had no glyph for them), and the fonts text is
// drawn in.
func traceGlyphs(t *testing.T, pdf []byte) (missing, fonts []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(path, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mutool", "trace", path).Output()
	if err != nil {
		t.Fatalf("mutool trace (mupdf-tools): %v", err)
	}
	if !strings.Contains(string(out), "<g unicode=") {
		t.Fatalf("mutool trace shows no glyphs:\n%.2000s", out)
	}
	for _, m := range glyphZero.FindAllStringSubmatch(string(out), -1) {
		if !slices.Contains(missing, m[1]) {
			missing = append(missing, m[1])
		}
	}
	for _, m := range spanFont.FindAllStringSubmatch(string(out), -1) {
		if !slices.Contains(fonts, m[1]) {
			fonts = append(fonts, m[1])
		}
	}
	return missing, fonts
}
