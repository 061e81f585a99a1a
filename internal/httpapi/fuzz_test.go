package httpapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"postage/internal/auth"
)

var fuzzMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}

var writeCorpus = flag.Bool("fuzzcorpus", false, "rewrite testdata/fuzz/FuzzRouter from the hostile walk's values")

// FuzzRouter drives the whole router (real databases behind it) with
// arbitrary requests: any caller, method, target, content type and body.
// Whatever comes in, the answer is never a 5xx, and every error under
// /api/ is a problem+json with a stable code. The seed corpus
// (testdata/fuzz/FuzzRouter, written by TestWriteFuzzCorpus -fuzzcorpus
// from the hostile walk's values on every route) runs in every go test;
// make fuzz fuzzes on.
func FuzzRouter(f *testing.F) {
	fx := newFixture(f)
	f.Add(uint8(1), uint8(0), "/api/v1/customers/a%00b", "", []byte(nil))
	f.Fuzz(func(t *testing.T, role, method uint8, target, ctype string, body []byte) {
		req, err := http.NewRequest(fuzzMethods[int(method)%len(fuzzMethods)], "http://postage.test"+target, bytes.NewReader(body))
		if err != nil || !strings.HasPrefix(target, "/") {
			t.Skip("not a request target")
		}
		if r := callers[int(role)%len(callers)]; r != "" {
			req.Header.Set("Authorization", "Bearer "+fx.Keys[r])
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		w := httptest.NewRecorder()
		fx.Handler.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %q: %d %.300s", req.Method, target, w.Code, w.Body.Bytes())
		}
		if w.Code >= 400 && strings.HasPrefix(req.URL.Path, "/api/") && !isProblem(w) {
			t.Fatalf("%s %q: %d is not a problem with a stable code: %.300s", req.Method, target, w.Code, w.Body.Bytes())
		}
	})
}

// TestWriteFuzzCorpus writes FuzzRouter's seed corpus when run with
// -fuzzcorpus: for every route of the OpenAPI document, each must-refuse
// hostile value in each of its slots but headers, one value per slot
// (varied across slots), as a caller allowed on the route.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*writeCorpus {
		t.Skip("run with -fuzzcorpus to rewrite the seed corpus")
	}
	f := newFixture(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzRouter")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range openAPIRoutes(t, f) {
		method := 0
		for i, m := range fuzzMethods {
			if m == r.Method {
				method = i
			}
		}
		role := 1 // admin
		for i, c := range callers {
			if c != "" && c != auth.RoleAdmin && r.allowed(c) {
				role = i
				break
			}
		}
		for si, s := range f.slots(r) {
			if s.in == "header" {
				continue // the fuzz target has no header of its own
			}
			h := hostiles[(si+len(r.Path))%len(hostiles)] // vary the value across slots
			if len(h.value) > 100 {
				h.value = h.value[:1001] // just over the limit keeps the corpus small
			}
			target, ctype, body, _ := f.hostileRequest(r, s, h.value)
			entry := fmt.Sprintf("go test fuzz v1\nuint8(%d)\nuint8(%d)\nstring(%q)\nstring(%q)\n[]byte(%q)\n", role, method, target, ctype, body)
			sum := sha256.Sum256([]byte(entry))
			if err := os.WriteFile(filepath.Join(dir, hex.EncodeToString(sum[:8])), []byte(entry), 0o644); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	t.Logf("wrote %d seeds to %s", n, dir)
}
