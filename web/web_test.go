package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	h := Handler()
	tests := []struct {
		path       string
		wantStatus int
		wantType   string
		wantBody   string
	}{
		{"/", 200, "text/html", `<script type="module" src="/js/main.js">`},
		{"/index.html", 200, "text/html", "<title>postage</title>"},
		{"/business/acme", 200, "text/html", "<title>postage</title>"}, // any page path opens the app
		{"/app.css", 200, "text/css", "--brand"},
		{"/js/main.js", 200, "text/javascript", "import"},
		{"/vendor/chart.umd.min.js", 200, "text/javascript", "Chart.js v4"},
		{"/favicon.svg", 200, "image/svg+xml", "<svg"},
		{"/missing.js", 404, "text/plain", "not found"},
		{"/../../etc/passwd", 200, "text/html", "<title>postage</title>"}, // cleaned to /etc/passwd: just a page path
		{"/js/../../web.go", 404, "text/plain", "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)
			if got := res.StatusCode; got != tt.wantStatus {
				t.Fatalf("status = %d, want %d", got, tt.wantStatus)
			}
			if got := res.Header.Get("Content-Type"); !strings.HasPrefix(got, tt.wantType) {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantType)
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("body does not contain %q", tt.wantBody)
			}
			if got := res.Header.Get("Content-Security-Policy"); !strings.Contains(got, "script-src 'self'") {
				t.Errorf("CSP = %q", got)
			}
		})
	}
}

func TestHandlerRevalidates(t *testing.T) {
	h := Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/app.css", nil))
	etag := rec.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	req := httptest.NewRequest("GET", "/app.css", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Fatalf("status = %d, want 304", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST status = %d, want 405", rec.Code)
	}
}

// TestNoExternalURLs keeps the dashboard offline: no asset may load from
// another origin.
func TestNoExternalURLs(t *testing.T) {
	h := Handler().(*handler)
	for p, a := range h.files {
		if strings.HasPrefix(p, "/vendor/") {
			continue
		}
		s := strings.ReplaceAll(string(a.body), "http://www.w3.org/", "")
		for _, bad := range []string{"http://", "https://", "//cdn"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s refers to %q: the dashboard must work offline", p, bad)
			}
		}
	}
}
