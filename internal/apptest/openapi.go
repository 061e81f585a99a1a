package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"postage/internal/httpapi"
)

func init() {
	// The document describes CSV files and PDF invoices as strings (a rate
	// card's CSV has rows of different lengths, which kin-openapi's CSV
	// decoder refuses).
	openapi3filter.RegisterBodyDecoder("text/csv", openapi3filter.PlainBodyDecoder)
	openapi3filter.RegisterBodyDecoder("application/pdf", openapi3filter.FileBodyDecoder)
}

// ServeServer serves srv on a loopback httptest server until the test ends
// and returns its base URL. Every answer is checked against srv's OpenAPI
// document (CheckResponses).
func ServeServer(t testing.TB, srv *httpapi.Server) string {
	t.Helper()
	ts := httptest.NewServer(CheckResponses(t, srv))
	t.Cleanup(ts.Close)
	return ts.URL
}

// CheckResponses wraps srv's handler so that every answer it gives under
// /api/, /healthz, /readyz and /metrics is checked against the server's own
// OpenAPI document, as kin-openapi validates it: the status must be
// documented for the operation, the Content-Type must be one of that
// status's media types, the body must match its schema, and documented
// response headers must be right. Object schemas are checked strictly: a
// field the document does not list fails (the published document leaves
// them open, so clients may ignore fields added later). A mismatch fails
// the test t with the request, the answer and the reason. Other paths (the
// dashboard) pass unchecked.
func CheckResponses(t testing.TB, srv *httpapi.Server) http.Handler {
	t.Helper()
	c, err := newChecker(srv)
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		var reqBody bytes.Buffer
		if r.Body != nil {
			r.Body = struct {
				io.Reader
				io.Closer
			}{io.TeeReader(r.Body, &reqBody), r.Body}
		}
		h.ServeHTTP(rec, r)
		if rec.status() < 300 {
			if err := c.checkRequest(r, reqBody.Bytes()); err != nil {
				t.Errorf("OpenAPI: %s %s was accepted (%d), but the document does not describe the request: %v",
					r.Method, r.URL.RequestURI(), rec.status(), err)
			}
		}
		if err := c.check(r, rec); err != nil {
			body := rec.body.String()
			if len(body) > 600 {
				body = body[:600] + "..."
			}
			t.Errorf("OpenAPI: %s %s answered %d %s, which the document does not describe: %v\nbody: %s",
				r.Method, r.URL.RequestURI(), rec.status(), rec.Header().Get("Content-Type"), err, body)
		}
	})
}

// checker holds a strict copy of a server's document and its router.
type checker struct {
	doc    *openapi3.T
	router routers.Router
}

var (
	checkersMu sync.Mutex
	checkers   = map[string]*checker{} // by the document's JSON
)

func newChecker(srv *httpapi.Server) (*checker, error) {
	b, err := json.Marshal(srv.OpenAPI())
	if err != nil {
		return nil, err
	}
	checkersMu.Lock()
	defer checkersMu.Unlock()
	if c := checkers[string(b)]; c != nil {
		return c, nil
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		return nil, fmt.Errorf("loading the OpenAPI document: %w", err)
	}
	for _, s := range doc.Components.Schemas {
		closeObjects(s.Value)
	}
	doc.Servers = nil // match paths as they are
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("the OpenAPI document: %w", err)
	}
	c := &checker{doc: doc, router: router}
	checkers[string(b)] = c
	return c, nil
}

// closeObjects makes every object schema with properties reject other
// properties.
func closeObjects(s *openapi3.Schema) {
	if s == nil {
		return
	}
	if len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
		no := false
		s.AdditionalProperties.Has = &no
	}
	for _, p := range s.Properties {
		if p.Ref == "" {
			closeObjects(p.Value)
		}
	}
	if s.Items != nil && s.Items.Ref == "" {
		closeObjects(s.Items.Value)
	}
}

func (c *checker) check(r *http.Request, rec *recorder) error {
	p := r.URL.Path
	if !strings.HasPrefix(p, "/api/") && p != "/healthz" && p != "/readyz" && p != "/metrics" {
		return nil
	}
	route, params, err := c.router.FindRoute(r)
	if err != nil {
		// No operation: the answer must be a not-found problem.
		if rec.status() != http.StatusNotFound {
			return fmt.Errorf("no operation %s %s, yet the status is not 404", r.Method, p)
		}
		return c.checkProblem(rec)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route},
		Status:                 rec.status(),
		Header:                 rec.Header(),
		Body:                   io.NopCloser(bytes.NewReader(rec.body.Bytes())),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return err
	}
	resp := route.Operation.Responses.Status(rec.status())
	if len(resp.Value.Content) == 0 && rec.body.Len() > 0 {
		return errors.New("the status has no body in the document, yet the answer has one")
	}
	return nil
}

// checkRequest checks a request the server accepted against the document:
// its parameters and body, so that the document asks for no more than the
// server does (authentication is the server's to check).
func (c *checker) checkRequest(r *http.Request, body []byte) error {
	p := r.URL.Path
	if !strings.HasPrefix(p, "/api/") {
		return nil
	}
	route, params, err := c.router.FindRoute(r)
	if err != nil {
		return err
	}
	req := r.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(body))
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		// A client may send back the read-only fields of what it read
		// (PUT a version it got): the server ignores them.
		Options: &openapi3filter.Options{MultiError: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, ExcludeReadOnlyValidations: true}}
	return openapi3filter.ValidateRequest(context.Background(), in)
}

// checkProblem checks an answer against the Problem schema.
func (c *checker) checkProblem(rec *recorder) error {
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		return fmt.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var v any
	if err := json.Unmarshal(rec.body.Bytes(), &v); err != nil {
		return err
	}
	return c.doc.Components.Schemas["Problem"].Value.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.MultiErrors())
}

// recorder passes an answer through and keeps a copy.
type recorder struct {
	http.ResponseWriter
	code int
	body bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}
