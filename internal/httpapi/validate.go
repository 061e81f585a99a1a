package httpapi

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"postage"
)

// Limits on the strings of a request, in bytes. They are a backstop that
// holds on every route; the inputs' Validate methods set tighter limits
// where a field has one (a customer's name: 200 characters).
const (
	maxPathParam   = 256
	maxQueryName   = 64
	maxQueryValue  = 1000
	maxQueryParams = 50
	maxHeaderValue = 1000
	maxBodyString  = 1000
	// maxFieldProblems bounds the problems listed in one answer.
	maxFieldProblems = 20
)

// checkedHeaders are the request headers postage reads; checkRequest
// checks them like every other string taken from a request.
var checkedHeaders = []string{"Authorization", "Content-Type", "Accept", "X-Hub-Signature-256"}

// FieldProblem is one bad string of a request, as listed in the "errors"
// member of a 400 invalid problem.
type FieldProblem struct {
	// In is where the field is: path, query, header or body.
	In string `json:"in"`
	// Field names it: the path or query parameter, the header, or the
	// JSON path in the body (items[2].category).
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// textProblem returns why s may not be taken from a request, or "" when
// it may: it must be valid UTF-8, at most max bytes long, and free of
// control characters (C0, DEL, C1), bidirectional embedding, override and
// isolate characters (which make text display in another order than it is
// stored), line and paragraph separators, noncharacters and the
// replacement character U+FFFD (which only appears where an encoding was
// already broken, such as a JSON escape of an unpaired surrogate).
func textProblem(s string, max int) string {
	if len(s) > max {
		return fmt.Sprintf("longer than %d bytes", max)
	}
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return fmt.Sprintf("not valid UTF-8 (byte %d)", i)
			}
		}
		if why := runeProblem(r); why != "" {
			return why
		}
	}
	return ""
}

// runeProblem returns why a (validly encoded) character may not be taken
// from a request, or "" (see textProblem).
func runeProblem(r rune) string {
	switch {
	case r < 0x20 || (r >= 0x7f && r <= 0x9f):
		return fmt.Sprintf("contains %U, a control character", r)
	case (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
		return fmt.Sprintf("contains %U, a bidirectional control character", r)
	case r == 0x2028 || r == 0x2029:
		return fmt.Sprintf("contains %U, a line or paragraph separator", r)
	case r == 0xfffe || r == 0xffff:
		return fmt.Sprintf("contains %U, a noncharacter", r)
	case r == utf8.RuneError:
		return "contains U+FFFD, the replacement character (mis-encoded text, or an unpaired surrogate escape)"
	}
	return ""
}

// checkCSVText checks every cell of a CSV body as textProblem checks a
// string (within maxBodyString) and names the first bad one by line and
// column; the file must be valid UTF-8. It reads the CSV as the rate-card
// decoder does ('#' comments, any number of fields); a syntax error is not
// reported here: the decoder that follows reports it.
func checkCSVText(body []byte) error {
	if !utf8.Valid(body) {
		line := 1 + bytes.Count(body[:invalidUTF8At(body)], []byte("\n"))
		return invalidFields([]FieldProblem{{In: "body", Field: "line " + strconv.Itoa(line), Reason: "not valid UTF-8"}})
	}
	r := csv.NewReader(bytes.NewReader(body))
	r.Comment = '#'
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	for {
		rec, err := r.Read()
		if err != nil {
			return nil // the end, or a syntax error the decoder reports
		}
		for i, cell := range rec {
			if why := textProblem(cell, maxBodyString); why != "" {
				line, col := r.FieldPos(i)
				return invalidFields([]FieldProblem{{In: "body", Field: fmt.Sprintf("line %d, column %d", line, col), Reason: why}})
			}
		}
	}
}

// invalidUTF8At returns the offset of the first invalid UTF-8 byte of b
// (len(b) if there is none).
func invalidUTF8At(b []byte) int {
	off := 0
	for off < len(b) {
		r, size := utf8.DecodeRune(b[off:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		off += size
	}
	return off
}

// invalidFields folds the problems into one EINVALID error that names
// every field (up to maxFieldProblems).
func invalidFields(ps []FieldProblem) error {
	if len(ps) == 0 {
		return nil
	}
	if len(ps) > maxFieldProblems {
		ps = ps[:maxFieldProblems]
	}
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.In + " " + p.Field + ": " + p.Reason
	}
	return &postage.Error{Code: postage.EINVALID, Message: strings.Join(msgs, "; "), Detail: ps}
}

// checkRequest is the one check of a request's strings before anything
// else (authentication included) sees them: every path parameter, every
// query parameter (names and values), and the headers postage reads must
// pass textProblem within their limits; a bad one is a 400 invalid naming
// it. JSON bodies are checked by bindJSON (checkJSONText); event batches
// and webhooks check their bodies per event (metering).
func (s *Server) checkRequest(c *gin.Context) {
	var ps []FieldProblem
	for _, p := range c.Params {
		if why := textProblem(p.Value, maxPathParam); why != "" {
			ps = append(ps, FieldProblem{In: "path", Field: p.Key, Reason: why})
		}
	}
	if raw := c.Request.URL.RawQuery; raw != "" {
		q, err := url.ParseQuery(raw)
		switch {
		case err != nil:
			ps = append(ps, FieldProblem{In: "query", Field: "(query string)", Reason: "malformed: " + strings.TrimPrefix(err.Error(), "invalid URL escape ")})
		case len(q) > maxQueryParams:
			ps = append(ps, FieldProblem{In: "query", Field: "(query string)", Reason: "more than " + strconv.Itoa(maxQueryParams) + " parameters"})
		default:
			for name, vals := range q {
				if why := textProblem(name, maxQueryName); why != "" {
					ps = append(ps, FieldProblem{In: "query", Field: strconv.Quote(name), Reason: "name " + why})
					continue
				}
				for _, v := range vals {
					if why := textProblem(v, maxQueryValue); why != "" {
						ps = append(ps, FieldProblem{In: "query", Field: name, Reason: why})
						break
					}
				}
			}
		}
	}
	for _, h := range checkedHeaders {
		for _, v := range c.Request.Header.Values(h) {
			if why := textProblem(v, maxHeaderValue); why != "" {
				ps = append(ps, FieldProblem{In: "header", Field: h, Reason: why})
				break
			}
		}
	}
	if err := invalidFields(ps); err != nil {
		s.writeError(c, err)
		return
	}
	c.Next()
}

// checkJSONText checks every string of a JSON document, object keys
// included, with textProblem (within maxBodyString), and names each bad
// one by its JSON path. The raw bytes must be valid UTF-8 (encoding/json
// would silently turn invalid bytes into U+FFFD); escapes are checked
// after decoding, so \u0000 is a NUL like any other. A syntax error is not
// reported here: the decoder that follows reports it.
func checkJSONText(body []byte) error {
	if !utf8.Valid(body) {
		return invalidFields([]FieldProblem{{In: "body", Field: "(body)", Reason: fmt.Sprintf("not valid UTF-8 (byte %d)", invalidUTF8At(body))}})
	}
	type frame struct {
		object bool
		key    string // object: the current member
		index  int    // array: the current element
		inKey  bool   // object: the next token is a key
	}
	var stack []frame
	path := func(stack []frame) string {
		var b strings.Builder
		for _, f := range stack {
			if f.object {
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(f.key)
			} else {
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
			}
		}
		if b.Len() == 0 {
			return "(body)"
		}
		return b.String()
	}
	// valueDone moves the innermost container past the value just read.
	valueDone := func() {
		if n := len(stack); n > 0 {
			if stack[n-1].object {
				stack[n-1].inKey = true
			} else {
				stack[n-1].index++
			}
		}
	}
	var ps []FieldProblem
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for len(ps) < maxFieldProblems {
		tok, err := dec.Token()
		if err != nil {
			break // the end, or a syntax error the decoder reports
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, frame{object: true, inKey: true})
			case '[':
				stack = append(stack, frame{})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].inKey {
				stack[n-1].key, stack[n-1].inKey = t, false
				if why := textProblem(t, maxBodyString); why != "" {
					name := strconv.QuoteToASCII(t)
					if len(name) > 40 {
						name = name[:40] + "…"
					}
					stack[n-1].key = name
					ps = append(ps, FieldProblem{In: "body", Field: path(stack[:n-1]), Reason: "member name " + name + " " + why})
				}
				continue
			}
			if why := textProblem(t, maxBodyString); why != "" {
				ps = append(ps, FieldProblem{In: "body", Field: path(stack), Reason: why})
			}
			valueDone()
		default:
			valueDone()
		}
	}
	return invalidFields(ps)
}
