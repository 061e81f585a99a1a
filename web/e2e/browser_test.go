package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's chromium. A missing browser fails the test
// with the way to install it: these tests never skip silently.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("POSTAGE_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Fatal("chromium is not installed: the dashboard tests need a headless browser. " +
		"Install it with `apt-get install -y chromium` (or `make deps`), or set POSTAGE_CHROMIUM to its path.")
	return ""
}

// outDir is where screenshots go: testdata/out next to this file (ignored
// by git), or $POSTAGE_SCREENSHOTS.
func outDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("POSTAGE_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("testdata", "out")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browserCtx starts one headless Chromium with a fresh profile for the
// test and returns its context; tabs are opened from it with newTab.
func browserCtx(t *testing.T) (context.Context, string) {
	t.Helper()
	path := chromiumPath(t)
	profile := t.TempDir()
	downloads := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("font-render-hinting", "none"),
		chromedp.WindowSize(1366, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	// Start the browser now so a missing or broken chromium fails here.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium (%s): %v", path, err)
	}
	if _, err := chromedp.CallBrowser(bctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads,
	}); err != nil {
		t.Fatalf("set download directory: %v", err)
	}
	return bctx, downloads
}

// tab is one browser tab: its own sessionStorage, so its own sign-in.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string

	mu     sync.Mutex
	errors []string // uncaught exceptions and console.error calls
}

func newTab(t *testing.T, bctx context.Context, base string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(bctx)
	t.Cleanup(cancel)
	ctx, cancel2 := context.WithTimeout(ctx, 5*time.Minute)
	t.Cleanup(cancel2)
	tb := &tab{t: t, ctx: ctx, base: base}
	// Open the tab on its own context: a tab started under a step's
	// short-lived context would close when that step ends.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 900)); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	// Every uncaught exception and console.error fails the test: the page
	// must not throw while it is used.
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	console := chromedp.Events(ctx, runtime.ConsoleAPICalled)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			msg := ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil && ev.ExceptionDetails.Exception.Description != "" {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
			tb.record(fmt.Sprintf("exception: %s (%s:%d)", msg, ev.ExceptionDetails.URL, ev.ExceptionDetails.LineNumber))
		}
	}()
	go func() {
		for ev, err := range console {
			if err != nil {
				return
			}
			if ev.Type != runtime.ConsoleAPICalledTypeError {
				continue
			}
			var parts []string
			for _, a := range ev.Args {
				if a.Description != "" {
					parts = append(parts, a.Description)
				} else {
					parts = append(parts, string(a.Value))
				}
			}
			tb.record("console.error: " + strings.Join(parts, " "))
		}
	}()
	t.Cleanup(func() {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, e := range tb.errors {
			t.Errorf("page: %s", e)
		}
	})
	return tb
}

func (tb *tab) record(s string) {
	tb.mu.Lock()
	tb.errors = append(tb.errors, s)
	tb.mu.Unlock()
}

// step bounds every browser step, so a missing element fails in seconds.
const step = 20 * time.Second

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, step)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.shot("failure-" + safeName(tb.t.Name()))
		tb.mu.Lock()
		errs := strings.Join(tb.errors, "; ")
		tb.mu.Unlock()
		tb.t.Fatalf("browser: %v (page errors: %s)", err, errs)
	}
}

// text returns the visible text of the first element matching css.
func (tb *tab) text(css string) string {
	tb.t.Helper()
	tb.do(chromedp.WaitVisible(chromedp.CSS(css)))
	ctx, cancel := context.WithTimeout(tb.ctx, step)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		tb.t.Fatalf("text of %s: %v", css, err)
	}
	return strings.Join(strings.Fields(s), " ")
}

// waitText waits until the element's text is want, and fails with what it
// was otherwise.
func (tb *tab) waitText(css, want string) {
	tb.t.Helper()
	deadline := time.Now().Add(step)
	got := ""
	for time.Now().Before(deadline) {
		got = eval[string](tb, fmt.Sprintf(`(document.querySelector(%q)?.textContent || "").replace(/\s+/g, " ").trim()`, css))
		if got == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.t.Errorf("%s shows %q, want %q", css, got, want)
}

// follow clicks the link css names once it is on the page and waits until
// the page went where it leads. The click is the page's own (a list that
// re-renders between finding the link and clicking it cannot make the
// click miss), retried until the location is the link's.
func (tb *tab) follow(css string) {
	tb.t.Helper()
	deadline := time.Now().Add(step)
	for time.Now().Before(deadline) {
		if eval[bool](tb, fmt.Sprintf(`(() => { const a = document.querySelector(%q); if (!a) return false; a.click(); return location.href === a.href })()`, css)) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.t.Fatalf("could not follow %s", css)
}

// eval runs a JavaScript expression (awaiting promises) and decodes its value.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, step)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("evaluate %.80s: %v", expr, err)
	}
	return v
}

// texts returns the trimmed textContent of every element matching css.
func (tb *tab) texts(css string) []string {
	tb.t.Helper()
	return eval[[]string](tb, fmt.Sprintf(`[...document.querySelectorAll(%q)].map(e => e.textContent.replace(/\s+/g, ' ').trim())`, css))
}

// open loads the dashboard at hash (e.g. "#/finance").
func (tb *tab) open(hash string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(tb.base + "/" + hash))
}

// signIn opens the dashboard, types the key and waits for the shell.
func (tb *tab) signIn(key string) {
	tb.t.Helper()
	tb.open("")
	tb.do(
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), key),
	)
	tb.submit("form.signin-form")
	tb.do(chromedp.WaitVisible(chromedp.ID("signout")))
}

// submit submits a form as pressing its button does, running its handler
// (chromedp.Submit calls form.submit(), which skips the handler).
func (tb *tab) submit(form string) {
	tb.t.Helper()
	eval[bool](tb, fmt.Sprintf(`(document.querySelector(%q).requestSubmit(), true)`, form))
}

// shot saves a full-page PNG under the output directory.
func (tb *tab) shot(name string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, step)
	defer cancel()
	// Scroll to the top (a full-page capture draws the sticky header where
	// the page was scrolled to) and let charts settle for two frames.
	_, _ = chromedp.Run(ctx, chromedp.Evaluate[bool](`window.scrollTo(0, 0), new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`, chromedp.EvalAwaitPromise))
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	p := filepath.Join(outDir(tb.t), name+".png")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("screenshot: %s", p)
	return p
}

// shotViewport saves what the window shows (for dialogs, whose backdrop
// covers only the viewport).
func (tb *tab) shotViewport(name string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, step)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(outDir(tb.t), name+".png")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("screenshot: %s", p)
}

// waitFile waits for a downloaded file to be complete in dir.
func waitFile(t *testing.T, dir, name string) []byte {
	t.Helper()
	p := filepath.Join(dir, name)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			if _, err := os.Stat(p + ".crdownload"); os.IsNotExist(err) {
				return b
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	t.Fatalf("download %s did not arrive in %s (have %v)", name, dir, names)
	return nil
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '-'
		}
		return r
	}, s)
}
