package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"postage"
	"postage/internal/auth"
	"postage/internal/httpapi"
)

// hostile is a value an adversarial caller puts into a request. refuse:
// wherever it is put, it must be refused (400 invalid naming the field,
// nothing stored); otherwise it is text a field may legitimately hold
// (quotes, SQL, right-to-left script...), and the request must only not
// fail on the server's side.
type hostile struct {
	name   string
	value  string
	refuse bool
}

var hostiles = []hostile{
	{"NUL", "a\x00b", true},
	{"lone NUL", "\x00", true},
	{"invalid UTF-8 (%FF)", "\xff", true},
	{"truncated UTF-8", "ab\xc3", true},
	{"10,000 characters", strings.Repeat("x", 10000), true},
	{"escape sequence", "\x1b[2J", true},
	{"CR LF", "a\r\nb", true},
	{"C1 control", "a\u0085b", true},
	{"right-to-left override", "inv\u202Egpj.exe", true},
	{"replacement character", "\uFFFD", true},
	{"quotes", `"'` + "`", false},
	{"backslashes", `\\\"\'`, false},
	{"SQL", `x' OR '1'='1'; DROP TABLE customers; --`, false},
	{"JSON", `{"id":"x","$where":[1,2]}`, false},
	{"right-to-left text", "مرحبا שלום", false},
	{"combining marks", "Z\u0335\u0321a\u0337l\u0338g\u0334o e\u0301", false},
	{"percent and dots", "%00%ff/../..", false},
	{"emoji", "👍🏽", false},
}

// callers are the roles the walk calls as, "" for no key.
var callers = append([]auth.Role{""}, auth.Roles...)

// docRoute is a route as the OpenAPI document lists it.
type docRoute struct {
	Method, Path string // Path in gin syntax (/customers/:id)
	PathParams   []string
	Query        []string
	Headers      []string
	Body         bool
	Roles        []string // nil: no key needed
}

// openAPIRoutes reads the route list from GET /api/v1/openapi.json.
func openAPIRoutes(t testing.TB, f *fixture) []docRoute {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
			RequestBody json.RawMessage `json:"requestBody"`
			Roles       []string        `json:"x-roles"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(f.mustDo(t, auth.RoleAdmin, "GET", "/api/v1/openapi.json", "", nil, http.StatusOK), &doc); err != nil {
		t.Fatal(err)
	}
	brace := regexp.MustCompile(`\{([A-Za-z_]+)\}`)
	var routes []docRoute
	for p, ops := range doc.Paths {
		for m, op := range ops {
			r := docRoute{Method: strings.ToUpper(m), Path: brace.ReplaceAllString(p, ":$1"), Body: len(op.RequestBody) > 0, Roles: op.Roles}
			for _, prm := range op.Parameters {
				switch prm.In {
				case "path":
					r.PathParams = append(r.PathParams, prm.Name)
				case "query":
					r.Query = append(r.Query, prm.Name)
				case "header":
					r.Headers = append(r.Headers, prm.Name)
				}
			}
			routes = append(routes, r)
		}
	}
	sort.Slice(routes, func(i, j int) bool {
		return routes[i].Path+" "+routes[i].Method < routes[j].Path+" "+routes[j].Method
	})
	return routes
}

// allowed reports whether role may call r (admin may call everything).
func (r docRoute) allowed(role auth.Role) bool {
	return r.Roles == nil || role == auth.RoleAdmin || (role != "" && slices.Contains(r.Roles, string(role)))
}

// slot is where a hostile value goes.
type slot struct {
	in    string   // path, query, header or body
	name  string   // parameter, header or (body) JSON path as the problem names it
	jpath []string // body: the path to the string; a last element "{key}" means the member name
}

// slots lists where a request of r can carry a string: each path and
// query parameter, an undocumented query parameter (every parameter is
// checked, read or not), the Accept and Content-Type headers (and the
// webhook's signature), and each string of the body (one element of each
// array, and one member name of each object).
func (f *fixture) slots(r docRoute) []slot {
	var ss []slot
	for _, p := range r.PathParams {
		ss = append(ss, slot{in: "path", name: p})
	}
	for _, q := range append(slices.Clone(r.Query), "unused") {
		ss = append(ss, slot{in: "query", name: q})
	}
	ss = append(ss, slot{in: "header", name: "Accept"}, slot{in: "header", name: "Content-Type"})
	for _, h := range r.Headers {
		// The signature is checked at the edge; the ce-* headers of a
		// binary-mode event are its attributes, checked per event.
		if http.CanonicalHeaderKey(h) == "X-Hub-Signature-256" {
			ss = append(ss, slot{in: "header", name: "X-Hub-Signature-256"})
		}
	}
	if r.Path == "/api/v1/events" || r.Path == "/api/v1/webhooks/whatsapp" {
		return ss // their bodies are checked per event (metering's tests)
	}
	ctype, body, _, ok := f.sample(r.Method, r.Path)
	switch {
	case !ok:
	case ctype == "text/csv":
		ss = append(ss, slot{in: "body", name: "line"})
	default:
		var v any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			panic(err)
		}
		for _, jp := range stringPaths(v, nil) {
			ss = append(ss, slot{in: "body", name: jsonPathName(jp), jpath: jp})
		}
	}
	return ss
}

// stringPaths lists the paths to v's strings and member names.
func stringPaths(v any, at []string) [][]string {
	var out [][]string
	switch x := v.(type) {
	case string:
		out = append(out, slices.Clone(at))
	case []any:
		if len(x) > 0 {
			out = append(out, stringPaths(x[0], append(at, "[0]"))...)
		}
	case map[string]any:
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range x {
				if !yield(k) {
					return
				}
			}
		})
		if len(keys) > 0 { // a member name
			out = append(out, append(slices.Clone(at), "{"+keys[0]+"}"))
		}
		for _, k := range keys {
			out = append(out, stringPaths(x[k], append(at, k))...)
		}
	}
	return out
}

// jsonPathName names a path the way the server's problems do.
func jsonPathName(jp []string) string {
	var b strings.Builder
	for _, e := range jp {
		switch {
		case strings.HasPrefix(e, "["):
			b.WriteString(e)
		case strings.HasPrefix(e, "{"):
			// a member name: the server names the object
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(e)
		}
	}
	if b.Len() == 0 {
		return "(body)"
	}
	return b.String()
}

// rawJSONString writes s as a JSON string literal, escaping quotes,
// backslashes and control characters (\u0000 for a NUL) but leaving invalid
// UTF-8 bytes raw, as a hostile client would send them.
func rawJSONString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteByte(s[i])
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('"')
}

// encodeWith writes v as JSON with the string (or member name) at jp
// replaced by h.
func encodeWith(b *bytes.Buffer, v any, jp []string, h string) {
	switch x := v.(type) {
	case string:
		if len(jp) == 0 {
			rawJSONString(b, h)
		} else {
			rawJSONString(b, x)
		}
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			if i == 0 && len(jp) > 0 && jp[0] == "[0]" {
				encodeWith(b, e, jp[1:], h)
			} else {
				encodeWith(b, e, []string{"-"}, h)
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range x {
				if !yield(k) {
					return
				}
			}
		})
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			switch {
			case len(jp) == 1 && jp[0] == "{"+k+"}":
				rawJSONString(b, h)
				b.WriteByte(':')
				encodeWith(b, x[k], []string{"-"}, h)
			case len(jp) > 0 && jp[0] == k:
				rawJSONString(b, k)
				b.WriteByte(':')
				encodeWith(b, x[k], jp[1:], h)
			default:
				rawJSONString(b, k)
				b.WriteByte(':')
				encodeWith(b, x[k], []string{"-"}, h)
			}
		}
		b.WriteByte('}')
	default:
		out, _ := json.Marshal(x)
		b.Write(out)
	}
}

// hostileRequest builds route r's valid request with v in slot s.
func (f *fixture) hostileRequest(r docRoute, s slot, v string) (target, ctype string, body []byte, header http.Header) {
	ctype, body, header, _ = f.sample(r.Method, r.Path)
	parts := strings.Split(r.Path, "/")
	for i, p := range parts {
		if name, ok := strings.CutPrefix(p, ":"); ok {
			val := f.paramValue(r.Path, name)
			if s.in == "path" && s.name == name {
				val = v
			}
			parts[i] = url.PathEscape(val)
		}
	}
	target = strings.Join(parts, "/")
	var q []string
	for _, name := range append(slices.Clone(r.Query), "unused") {
		val := f.queryValue(r.Path, name)
		if s.in == "query" && s.name == name {
			val = v
		}
		if val != "" || (s.in == "query" && s.name == name) {
			q = append(q, url.QueryEscape(name)+"="+url.QueryEscape(val))
		}
	}
	if len(q) > 0 {
		target += "?" + strings.Join(q, "&")
	}
	header = header.Clone()
	if header == nil {
		header = http.Header{}
	}
	if s.in == "header" {
		if s.name == "Content-Type" {
			ctype = v
		} else {
			header[s.name] = []string{v}
		}
	}
	if s.in == "body" {
		if ctype == "text/csv" {
			cell := `"` + strings.ReplaceAll(v, `"`, `""`) + `"`
			body = bytes.Replace(body, []byte("notification"), []byte(cell), 1)
		} else {
			var doc any
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			_ = dec.Decode(&doc)
			var b bytes.Buffer
			encodeWith(&b, doc, s.jpath, v)
			body = b.Bytes()
		}
	}
	return target, ctype, body, header
}

// codes are the stable problem codes (errors.go).
var codes = []string{"invalid", "not_found", "conflict", "unauthorized", "forbidden", "unavailable", "overloaded", "too_large", "unsupported_media_type",
	postage.EOVERPAYMENT, postage.ECURRENCYMISMATCH, postage.ENOTFINALIZED, postage.EOVERCREDIT, postage.ETAXOVERLAP, postage.EOVERREFUND, postage.ENOTOWNER, postage.ERENDERER}

// walkStats counts a hostile walk.
type walkStats struct {
	requests, refused, serverErrors int
	routes, slots                   int
}

// walkHostile sends every route of the OpenAPI document, as every caller,
// each value of hs in each slot, and checks the answers: never a 5xx; a
// problem+json with a stable code for every error; a value that must be
// refused is a 400 invalid naming the field (or, in a body the caller may
// not send, 401/403).
func walkHostile(t *testing.T, f *fixture, routes []docRoute, hs []hostile) walkStats {
	t.Helper()
	var st walkStats
	st.routes = len(routes)
	for _, r := range routes {
		slots := f.slots(r)
		st.slots += len(slots)
		for _, s := range slots {
			for _, h := range hs {
				target, ctype, body, header := f.hostileRequest(r, s, h.value)
				for _, role := range callers {
					st.requests++
					w := f.do(role, r.Method, target, ctype, body, header)
					what := fmt.Sprintf("%s %s, %s %s = %s, as %q", r.Method, r.Path, s.in, s.name, h.name, role)
					if w.Code >= 500 {
						st.serverErrors++
						t.Errorf("%s: %d %.300s", what, w.Code, w.Body.Bytes())
						continue
					}
					if w.Code >= 400 {
						if !isProblem(w) {
							t.Errorf("%s: %d is not a problem with a stable code: %.300s", what, w.Code, w.Body.Bytes())
						}
					}
					if !h.refuse {
						continue
					}
					want := http.StatusBadRequest
					if s.in == "body" && !r.allowed(role) {
						want = http.StatusForbidden
						if role == "" {
							want = http.StatusUnauthorized
						}
					}
					if w.Code != want {
						t.Errorf("%s: %d, want %d: %.300s", what, w.Code, want, w.Body.Bytes())
						continue
					}
					st.refused++
					if want == http.StatusBadRequest && !namesField(w, s) {
						t.Errorf("%s: the problem does not name %s %s: %.300s", what, s.in, s.name, w.Body.Bytes())
					}
				}
			}
		}
	}
	return st
}

func isProblem(w *httptest.ResponseRecorder) bool {
	var p httpapi.Problem
	return w.Header().Get("Content-Type") == "application/problem+json" &&
		json.Unmarshal(w.Body.Bytes(), &p) == nil && p.Status == w.Code && slices.Contains(codes, p.Code) && p.RequestID != ""
}

// namesField reports whether a 400 problem names the slot's field.
func namesField(w *httptest.ResponseRecorder, s slot) bool {
	var p struct {
		Code   string                 `json:"code"`
		Errors []httpapi.FieldProblem `json:"errors"`
	}
	if json.Unmarshal(w.Body.Bytes(), &p) != nil || p.Code != "invalid" {
		return false
	}
	for _, e := range p.Errors {
		if e.In != s.in {
			continue
		}
		switch {
		case e.Field == s.name,
			s.in == "body" && s.name == "line" && strings.HasPrefix(e.Field, "line "), // CSV: line and column
			s.in == "body" && e.Field == "(body)":                                     // invalid UTF-8 is the body's
			return true
		}
	}
	return false
}

// digest sums up everything stored in both databases (api keys without
// their last use, which authentication updates), so a walk can show it
// stored nothing.
func digest(t *testing.T, f *fixture) string {
	t.Helper()
	ctx := context.Background()
	rows, err := f.App.PG.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	var b strings.Builder
	for _, tbl := range tables {
		q := `SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM ` + tbl + ` t`
		if tbl == "api_keys" {
			q = `SELECT count(*), coalesce(md5(string_agg((id, name, role, customer_id, revoked_at)::text, '|' ORDER BY id)), '') FROM api_keys`
		}
		var n int64
		var sum string
		if err := f.App.PG.QueryRow(ctx, q).Scan(&n, &sum); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%d:%s ", tbl, n, sum)
	}
	var n, h uint64
	if err := f.App.CH.QueryRow(ctx, `SELECT count(), sum(cityHash64(customer_id, id)) FROM events`).Scan(&n, &h); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "events:%d:%d", n, h)
	return b.String()
}

// TestHostileWalk walks every route of the OpenAPI document with hostile
// values in every path parameter, query parameter, read header and JSON
// body string, as every role and without a key (docs/RELIABILITY.md has
// the figures).
func TestHostileWalk(t *testing.T) {
	f := newFixture(t)
	routes := openAPIRoutes(t, f)
	if len(routes) < 40 {
		t.Fatalf("only %d routes in the OpenAPI document", len(routes))
	}
	for _, r := range routes {
		if _, _, _, ok := f.sample(r.Method, r.Path); r.Body && !ok {
			t.Errorf("%s %s takes a body, and the walk has no sample of it: add one to fixture.sample", r.Method, r.Path)
		}
	}
	var refuse, text []hostile
	for _, h := range hostiles {
		if h.refuse {
			refuse = append(refuse, h)
		} else {
			text = append(text, h)
		}
	}
	before := digest(t, f)
	st := walkHostile(t, f, routes, refuse)
	if after := digest(t, f); after != before {
		t.Errorf("values that must be refused changed the databases:\nbefore %s\nafter  %s", before, after)
	}
	st2 := walkHostile(t, f, routes, text)
	t.Logf("hostile walk: %d routes, %d slots, %d callers; must-refuse values: %d kinds, %d requests, %d refused; text values: %d kinds, %d requests; 5xx: %d",
		st.routes, st.slots, len(callers), len(refuse), st.requests, st.refused, len(text), st2.requests, st.serverErrors+st2.serverErrors)
}
