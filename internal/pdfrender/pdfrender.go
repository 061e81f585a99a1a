// Package pdfrender prints HTML documents to PDF with one long-lived
// headless Chromium, whose text shaping (HarfBuzz) and fonts (Debian's
// Noto) draw every script: Arabic joined and right to left, Devanagari
// conjuncts, Thai, Chinese.
//
// A Printer starts its browser on first use, prints at most Tabs documents
// at once (one tab each), bounds each print by Timeout, and closes the
// browser once it has been idle for Idle, so an idle server holds no
// Chromium. The page gets no network and runs no script: every request it
// would make is failed, JavaScript is off, and the document is set as the
// page's content (never navigated to).
package pdfrender

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"postage"
)

// Defaults of Options.
const (
	DefaultTabs    = 2
	DefaultTimeout = 30 * time.Second
	DefaultIdle    = 5 * time.Minute
)

// Options configure a Printer; zero fields take the defaults.
type Options struct {
	// Chromium is the browser's executable; "" looks for chromium,
	// chromium-browser, google-chrome (POSTAGE_CHROMIUM first).
	Chromium string
	// Tabs is how many documents print at once.
	Tabs int
	// Timeout bounds one print (waiting for a tab included).
	Timeout time.Duration
	// Idle is how long the browser stays open after its last print.
	Idle time.Duration
	// Log receives the browser's starts and stops (nil: discarded).
	Log *slog.Logger
}

// Printer prints HTML to PDF with one headless Chromium. It is safe for
// concurrent use; Close ends the browser.
type Printer struct {
	opts  Options
	slots chan struct{}

	mu      sync.Mutex
	browser context.Context // nil when no browser runs
	stop    func()
	active  int
	idle    *time.Timer
	gen     int // counts starts: an idle timer closes only its own browser
	closed  bool
	starts  int

	// extraFlags are further command-line flags (tests).
	extraFlags map[string]any
}

// New returns a Printer; no browser starts until the first print.
func New(o Options) *Printer {
	if o.Tabs <= 0 {
		o.Tabs = DefaultTabs
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Idle <= 0 {
		o.Idle = DefaultIdle
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Printer{opts: o, slots: make(chan struct{}, o.Tabs)}
}

// FindChromium returns the path of the browser: path when it is set, else
// $POSTAGE_CHROMIUM, else the first of chromium, chromium-browser and
// google-chrome found, or an error saying how to install it.
func FindChromium(path string) (string, error) {
	for _, p := range []string{path, os.Getenv("POSTAGE_CHROMIUM")} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("chromium %s: %w", p, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		if p := "/usr/bin/" + name; fileExists(p) {
			return p, nil
		}
	}
	return "", errors.New("chromium is not installed (apt-get install chromium fonts-noto-core fonts-noto-cjk, or make deps)")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// unavailable is the error of a print the browser could not make: msg is
// safe to show a caller, cause (which may name paths) is for the log.
func unavailable(msg string, cause error) error {
	e := postage.Errorf(postage.ERENDERER, "PDF documents cannot be drawn now: %s", msg)
	if cause == nil {
		return e
	}
	return fmt.Errorf("%w: %w", e, cause)
}

// PrintPDF prints html (a whole document, UTF-8) as PDF: paper size and
// margins from its CSS @page rule, backgrounds printed. created is the
// document's own date: the PDF's creation and modification dates say it,
// so the same document prints the same bytes (with the same browser).
// A missing or broken browser, or a print over Timeout, is
// postage.ERENDERER; a caller that gives up gets ctx's error.
func (p *Printer) PrintPDF(ctx context.Context, html []byte, created time.Time) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, p.ctxError(ctx, "waiting for a free tab")
	}
	defer func() { <-p.slots }()

	browser, err := p.acquire()
	if err != nil {
		return nil, err
	}
	defer p.release()

	tab, closeTab := chromedp.NewContext(browser)
	defer closeTab()
	stopAfter := context.AfterFunc(ctx, closeTab) // the caller's end or the timeout closes the tab
	defer stopAfter()

	out, err := print(tab, html)
	if err != nil {
		if ctx.Err() != nil {
			return nil, p.ctxError(ctx, "printing")
		}
		p.discard(browser) // a browser that failed a print is started afresh next time
		return nil, unavailable("the PDF renderer (Chromium) failed; try again", err)
	}
	return stampDates(out, created), nil
}

func (p *Printer) ctxError(ctx context.Context, what string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return unavailable(fmt.Sprintf("%s took longer than %v", what, p.opts.Timeout), nil)
	}
	return ctx.Err()
}

// print loads html into the tab, with no network and no script, waits
// for it to load (its blocked requests failed), and prints it.
func print(tab context.Context, html []byte) ([]byte, error) {
	err := chromedp.Do(tab,
		chromedp.Navigate("about:blank"),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			if _, err := cdp.Call(ctx, t, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
				return fmt.Errorf("disable scripts: %w", err)
			}
			// Every request the document would make (none should: its
			// styles are inline and its fonts local) fails.
			if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
				return fmt.Errorf("network: %w", err)
			}
			if _, err := cdp.Call(ctx, t, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: []*network.BlockPattern{{URLPattern: "*://*:*/*", Block: true}}}); err != nil {
				return fmt.Errorf("block requests: %w", err)
			}
			return nil
		}),
	)
	if err != nil {
		return nil, err
	}
	setContent := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		tree, err := cdp.Call(ctx, t, page.GetFrameTree, cdp.Empty{})
		if err != nil {
			return fmt.Errorf("frame tree: %w", err)
		}
		if _, err := cdp.Call(ctx, t, page.SetDocumentContent, page.SetDocumentContentParams{FrameID: tree.FrameTree.Frame.ID, HTML: string(html)}); err != nil {
			return fmt.Errorf("set the document: %w", err)
		}
		return nil
	})
	if _, err := chromedp.Run(tab, chromedp.WaitEvent(page.LoadEventFired, nil, setContent)); err != nil {
		return nil, fmt.Errorf("load the document: %w", err)
	}
	return chromedp.Run(tab, chromedp.PrintToPDF(chromedp.PDFPreferCSSPageSize(), chromedp.PDFPrintBackground(), chromedp.PDFStream()))
}

// pdfDate matches the dates Skia writes in a PDF's Info dictionary.
var pdfDate = regexp.MustCompile(`/(CreationDate|ModDate) \(D:[0-9]{14}[-+Z][0-9]{2}'[0-9]{2}'\)`)

// stampDates sets the PDF's creation and modification dates to created, in
// place: the new date has the old one's length, so the file's offsets stay
// right. A PDF whose dates read otherwise is returned as it is.
func stampDates(pdf []byte, created time.Time) []byte {
	if created.IsZero() {
		return pdf
	}
	d := created.UTC().Format("20060102150405") + "+00'00'"
	return pdfDate.ReplaceAllFunc(pdf, func(m []byte) []byte {
		key := m[1:bytes.IndexByte(m, ' ')]
		r := []byte("/" + string(key) + " (D:" + d + ")")
		if len(r) != len(m) {
			return m
		}
		return r
	})
}

// acquire returns the running browser, starting it if none runs.
func (p *Printer) acquire() (context.Context, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, unavailable("the PDF renderer is closed", nil)
	}
	if p.idle != nil {
		p.idle.Stop()
		p.idle = nil
	}
	if p.browser != nil && p.browser.Err() != nil { // the browser exited
		p.stopLocked()
	}
	if p.browser == nil {
		if err := p.startLocked(); err != nil {
			return nil, err
		}
	}
	p.active++
	return p.browser, nil
}

// release ends a print; the last one out arms the idle timer.
func (p *Printer) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.active--
	if p.active > 0 || p.browser == nil {
		return
	}
	gen := p.gen
	p.idle = time.AfterFunc(p.opts.Idle, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.gen == gen && p.active == 0 && p.browser != nil {
			p.opts.Log.Debug("pdf renderer idle: closing chromium", "idle", p.opts.Idle)
			p.stopLocked()
		}
	})
}

// discard stops browser if it is still the running one, so the next print
// starts another.
func (p *Printer) discard(browser context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.browser == browser && p.active == 1 {
		p.stopLocked()
	}
}

func (p *Printer) startLocked() error {
	path, err := FindChromium(p.opts.Chromium)
	if err != nil {
		return unavailable("Chromium is not installed on this server (documents.chromium)", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		// The sandbox needs user namespaces or a setuid helper, which
		// containers and root lack; the page is postage's own escaped
		// document with scripts off and every request failed.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("font-render-hinting", "none"),
		// Nothing leaves the machine even if a request escaped the
		// blocking: the proxy is a closed port.
		chromedp.ProxyServer("127.0.0.1:9"),
		chromedp.Flag("proxy-bypass-list", "<-loopback>"),
	}
	for k, v := range p.extraFlags {
		opts = append(opts, chromedp.Flag(k, v))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(bctx) }() // starts the browser
	select {
	case err = <-started:
	case <-time.After(p.opts.Timeout):
		err = fmt.Errorf("no answer within %v", p.opts.Timeout)
	}
	if err != nil {
		cancelBrowser()
		cancelAlloc()
		return unavailable("the PDF renderer (Chromium) did not start", fmt.Errorf("start %s: %w", path, err))
	}
	p.gen++
	p.starts++
	p.browser = bctx
	p.stop = func() { cancelBrowser(); cancelAlloc() }
	p.opts.Log.Debug("pdf renderer: chromium started", "path", path)
	return nil
}

func (p *Printer) stopLocked() {
	if p.stop != nil {
		p.stop()
	}
	p.browser, p.stop = nil, nil
	p.gen++
}

// Running reports whether the browser is running now.
func (p *Printer) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.browser != nil && p.browser.Err() == nil
}

// Starts is how many times the browser was started.
func (p *Printer) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// Close ends the browser; prints after Close fail.
func (p *Printer) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.idle != nil {
		p.idle.Stop()
	}
	p.stopLocked()
	return nil
}
