package pdfrender

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"postage"
)

// needChromium fails the test when the browser is missing: these tests
// never skip (scripts/install-deps.sh installs it).
func needChromium(t *testing.T) {
	t.Helper()
	if _, err := FindChromium(""); err != nil {
		t.Fatal(err)
	}
}

func text(t *testing.T, pdf []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(path, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", path, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext (poppler-utils): %v", err)
	}
	return string(out)
}

var stamp = time.Date(2026, 11, 4, 2, 17, 0, 0, time.UTC)

// One browser prints every document; its dates are the document's own,
// so a document prints the same bytes twice.
func TestPrintPDF(t *testing.T) {
	needChromium(t)
	p := New(Options{})
	defer p.Close()
	html := []byte(`<!doctype html><html><head><meta charset="utf-8"><title>T</title></head><body><p>Hello, Zürich</p></body></html>`)
	a, err := p.PrintPDF(context.Background(), html, stamp)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(a, []byte("%PDF-")) || !strings.Contains(text(t, a), "Hello, Zürich") {
		t.Fatalf("not the document: %.40q", a)
	}
	b, err := p.PrintPDF(context.Background(), html, stamp)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("two prints of one document differ")
	}
	for _, want := range []string{"/CreationDate (D:20261104021700+00'00')", "/ModDate (D:20261104021700+00'00')"} {
		if !bytes.Contains(a, []byte(want)) {
			t.Errorf("the PDF lacks %s", want)
		}
	}
	if got := p.Starts(); got != 1 {
		t.Errorf("the browser started %d times, want once", got)
	}
}

// Documents print at once, each in its own tab, up to Tabs at a time.
func TestPrintPDFConcurrently(t *testing.T) {
	needChromium(t)
	p := New(Options{Tabs: 2})
	defer p.Close()
	var wg sync.WaitGroup
	errs := make([]error, 6)
	texts := make([]string, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pdf, err := p.PrintPDF(context.Background(), fmt.Appendf(nil, `<!doctype html><p>document %d</p>`, i), stamp)
			errs[i] = err
			if err == nil {
				texts[i] = text(t, pdf)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("print %d: %v", i, err)
		} else if !strings.Contains(texts[i], fmt.Sprintf("document %d", i)) {
			t.Errorf("print %d has another document's text: %q", i, texts[i])
		}
	}
	if got := p.Starts(); got != 1 {
		t.Errorf("the browser started %d times, want once", got)
	}
}

// An idle browser closes, and the next print starts another.
func TestIdleBrowserCloses(t *testing.T) {
	needChromium(t)
	p := New(Options{Idle: 50 * time.Millisecond})
	defer p.Close()
	if _, err := p.PrintPDF(context.Background(), []byte(`<p>one</p>`), stamp); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); p.Running(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the browser is still running a minute after its last print")
		}
	}
	if _, err := p.PrintPDF(context.Background(), []byte(`<p>two</p>`), stamp); err != nil {
		t.Fatal(err)
	}
	if got := p.Starts(); got != 2 {
		t.Errorf("the browser started %d times, want 2 (once more after closing idle)", got)
	}
}

// The page reaches nothing: stylesheets, images, fonts and frames it
// names are never requested, and its scripts do not run. (Chromium's own
// Local Network Access checks would refuse this test's loopback server
// anyway; they are turned off here so that the test sees the printer's
// blocking: the blocked URLs stop subresources, the closed proxy every
// request, frames' included.)
func TestPageHasNoNetworkAndNoScript(t *testing.T) {
	needChromium(t)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/css")
		fmt.Fprint(w, `body::after { content: "FETCHED" }`)
	}))
	defer srv.Close()
	p := New(Options{})
	p.extraFlags = map[string]any{"disable-features": "LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights"}
	defer p.Close()
	html := fmt.Sprintf(`<!doctype html><html><head><link rel="stylesheet" href="%[1]s/style.css">
<style>@font-face { font-family: X; src: url(%[1]s/font.woff2) } body { font-family: X; background: url(%[1]s/bg.png) }</style></head>
<body><p id="p">static text</p><img src="%[1]s/img.png"><iframe src="%[1]s/frame"></iframe>
<script>document.getElementById("p").textContent = "SCRIPT RAN"; fetch("%[1]s/fetch")</script></body></html>`, srv.URL)
	pdf, err := p.PrintPDF(context.Background(), []byte(html), stamp)
	if err != nil {
		t.Fatal(err)
	}
	got := text(t, pdf)
	if strings.Contains(got, "SCRIPT RAN") || !strings.Contains(got, "static text") {
		t.Errorf("a script ran: %q", got)
	}
	if strings.Contains(got, "FETCHED") {
		t.Errorf("the page loaded a stylesheet: %q", got)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the page made %d requests", n)
	}
}

// Without a browser a print is ERENDERER (503 renderer_unavailable), and
// says how to install one.
func TestMissingChromium(t *testing.T) {
	p := New(Options{Chromium: filepath.Join(t.TempDir(), "no-chromium")})
	defer p.Close()
	_, err := p.PrintPDF(context.Background(), []byte(`<p>x</p>`), stamp)
	if got := postage.ErrorCode(err); got != postage.ERENDERER {
		t.Fatalf("error %v (code %s), want %s", err, got, postage.ERENDERER)
	}
	if msg := postage.ErrorMessage(err); !strings.Contains(msg, "Chromium is not installed") || strings.Contains(msg, "no-chromium") {
		t.Errorf("message %q: want it to say what is missing, without the server's paths", msg)
	}
	if !strings.Contains(err.Error(), "no-chromium") {
		t.Errorf("error %q does not name the path, for the log", err)
	}
	t.Setenv("PATH", t.TempDir())
	t.Setenv("POSTAGE_CHROMIUM", "")
	if _, err := FindChromium(""); err == nil || !strings.Contains(err.Error(), "apt-get install chromium") {
		if _, statErr := os.Stat("/usr/bin/chromium"); statErr != nil {
			t.Errorf("FindChromium with no browser: %v", err)
		}
	}
}

// A caller that gives up gets its context's error; a print over the
// timeout is ERENDERER.
func TestCancelAndTimeout(t *testing.T) {
	needChromium(t)
	p := New(Options{})
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.PrintPDF(ctx, []byte(`<p>x</p>`), stamp); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled print: %v", err)
	}
	short := New(Options{Timeout: time.Nanosecond})
	defer short.Close()
	if _, err := short.PrintPDF(context.Background(), []byte(`<p>x</p>`), stamp); postage.ErrorCode(err) != postage.ERENDERER {
		t.Errorf("print over its timeout: %v, want %s", err, postage.ERENDERER)
	}
	// The printer still prints after both.
	if _, err := p.PrintPDF(context.Background(), []byte(`<p>x</p>`), stamp); err != nil {
		t.Fatal(err)
	}
}

// After Close no print starts a browser.
func TestClosed(t *testing.T) {
	p := New(Options{})
	p.Close()
	if _, err := p.PrintPDF(context.Background(), []byte(`<p>x</p>`), stamp); postage.ErrorCode(err) != postage.ERENDERER {
		t.Errorf("print after Close: %v", err)
	}
	if p.Starts() != 0 {
		t.Error("a closed printer started a browser")
	}
}
