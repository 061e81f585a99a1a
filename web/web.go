// Package web is postage's dashboard: a single-page application of plain ES
// modules and vendored libraries, embedded in the binary so the dashboard
// works offline with no build step. The httpapi server hands it every GET
// request that is not under /api/.
//
// The page signs in with an API key, which it keeps in sessionStorage and
// sends only in the Authorization header, and shows the views the key's
// role allows (see docs/DASHBOARD.md). It reads data only through the
// public JSON API, so it can see nothing the key itself could not.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// Assets returns the embedded files, rooted at the directory served at /.
func Assets() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the directory exists
	}
	return sub
}

// csp allows only the page's own scripts and styles: no inline script, no
// third-party origin, so the API key in sessionStorage is not reachable by
// injected markup. Chart.js sizes its canvas through the CSSOM, which
// style-src does not restrict; blob: serves invoice downloads.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type asset struct {
	body  []byte
	etag  string
	ctype string
}

// handler serves the embedded assets with strong ETags so browsers
// revalidate cheaply, and index.html for paths without an extension, so a
// reload on any dashboard address still opens the application.
type handler struct {
	files map[string]asset
}

// Handler returns the http.Handler serving the dashboard.
func Handler() http.Handler {
	h := &handler{files: map[string]asset{}}
	root := Assets()
	err := fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = http.DetectContentType(b)
		}
		h.files["/"+p] = asset{body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: ct}
		return nil
	})
	if err != nil {
		panic(err) // embedded files are always readable
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := path.Clean("/" + r.URL.Path)
	a, ok := h.files[p]
	if !ok && (p == "/" || !strings.Contains(path.Base(p), ".")) {
		a, ok = h.files["/index.html"]
	}
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", csp)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	hdr.Set("Content-Type", a.ctype)
	hdr.Set("ETag", a.etag)
	// Revalidate every time: the ETag makes that a 304 without a body, and
	// a new binary's assets are picked up at once.
	hdr.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
