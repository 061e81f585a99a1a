package metering

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"

	"postage"
)

var errMalformed = errors.New("malformed JSON")

// fastDecodable reports whether goccy/go-json reads body exactly as
// encoding/json would: the body must be syntactically valid for
// encoding/json (goccy alone accepts some trailing garbage) and valid
// UTF-8 (encoding/json replaces invalid bytes with U+FFFD, goccy keeps
// them). Other bodies take the encoding/json path, so an event decodes the
// same whatever its neighbours are.
func fastDecodable(body []byte) bool {
	return utf8.Valid(body) && validJSON(body)
}

// EventType is the only CloudEvents type the meter takes.
const EventType = "message.sent"

// wireEvent is a CloudEvent as it arrives. Unknown fields are ignored.
// An absent attribute, a null one and an empty string are all "missing".
type wireEvent struct {
	SpecVersion wireValue `json:"specversion"`
	Type        wireValue `json:"type"`
	ID          wireValue `json:"id"`
	Subject     wireValue `json:"subject"`
	Time        wireValue `json:"time"`
	Data        wireData  `json:"data"`
}

type wireData struct {
	To       wireValue `json:"to"`
	Country  wireValue `json:"country"`
	Category wireValue `json:"category"`
	Quantity wireValue `json:"quantity"`
}

func (d *wireData) empty() bool {
	return d.To.kind == absent && d.Country.kind == absent && d.Category.kind == absent && d.Quantity.kind == absent
}

// wireValue is one JSON value the meter reads, as sent: what kind of value
// it was and, for a string, whether its bytes were all kept. A field of
// this type never fails to decode, so a value of the wrong type (or a
// string that is not text) rejects its own event, never the request.
type wireValue struct {
	s    string    // a string's value, a number's text, "true" or "false"
	kind valueKind // absent for null too: encoding/json leaves a field as it is on null
	// bad is set for a string that encoding/json would not keep as sent:
	// bytes that are not UTF-8, or an escaped UTF-16 surrogate that is not
	// half of a pair (both become U+FFFD, so two different ids could
	// decode to the same string). Such a value is rejected as invalid.
	bad bool
}

type valueKind uint8

const (
	absent valueKind = iota
	isString
	isNumber
	isBool
	isOther // an object or an array
)

// text returns the string, if v is one.
func (v *wireValue) text() (string, bool) { return v.s, v.kind == isString }

// empty reports whether v is absent, null or "".
func (v *wireValue) empty() bool { return v.kind == absent || v.kind == isString && v.s == "" }

// UnmarshalJSON records the value b as sent (see wireValue); it is what
// encoding/json and goccy/go-json call, on every path but the one-pass
// scanner, which reads values the same way (FuzzDecodeBatch compares them).
func (v *wireValue) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	switch c := b[0]; {
	case c == 'n': // null: leave the field as it is, as encoding/json does for a string
	case c == '"':
		raw := b[1 : len(b)-1]
		if bytes.IndexByte(raw, '\\') < 0 {
			*v = wireValue{s: string(raw), kind: isString, bad: !utf8.Valid(raw)}
			return nil
		}
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = wireValue{s: s, kind: isString, bad: !utf8.Valid(raw) || loneSurrogate(raw)}
	case c == '-' || c >= '0' && c <= '9':
		*v = wireValue{s: string(b), kind: isNumber}
	case c == 't':
		*v = wireValue{s: "true", kind: isBool}
	case c == 'f':
		*v = wireValue{s: "false", kind: isBool}
	default:
		*v = wireValue{kind: isOther}
	}
	return nil
}

// loneSurrogate reports whether the inside of a JSON string (valid
// syntax) holds a \u escape of a UTF-16 surrogate that encoding/json does
// not decode as half of a pair, and so replaces with U+FFFD.
func loneSurrogate(raw []byte) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++
		if raw[i] != 'u' {
			continue
		}
		r := hex4(raw[i+1 : i+5])
		i += 4
		if r < 0xd800 || r > 0xdfff {
			continue
		}
		if r >= 0xdc00 || i+6 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
			return true // a low half first, or a high half not followed by an escape
		}
		if r2 := hex4(raw[i+3 : i+7]); r2 < 0xdc00 || r2 > 0xdfff {
			return true
		}
		i += 6
	}
	return false
}

// hex4 parses four hexadecimal digits (already checked by the syntax check).
func hex4(h []byte) rune {
	var r rune
	for _, c := range h {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// Decoded is the result of decoding a request body: one Result per input
// event, in order, and the valid events with the index of each in Results.
// Results of valid events have Status "" until the Ingester decides them.
type Decoded struct {
	Events  []Event
	Index   []int // Index[i] is the position of Events[i] in Results
	Results []Result
}

// DecodeBatch decodes a CloudEvents JSON batch (a JSON array of events).
// A body that is not a JSON array is an EINVALID error; an element that is
// not a valid event is rejected in its Result and its neighbours are kept.
// A batch longer than Rules.MaxBatchLen is an ETOOLARGE error. The result
// keeps nothing of body, which the caller may re-use once it returns.
func (r *Rules) DecodeBatch(body []byte) (*Decoded, error) {
	r.init()
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return nil, postage.Errorf(postage.EINVALID, "malformed JSON: a batch must be a JSON array of CloudEvents")
	}
	now := r.Now()
	// Fastest path: the bodies eventScanner reads exactly, in one pass.
	if d, ok := r.scanBatch(body, now); ok {
		return d, nil
	}
	// Fast path: the whole array into typed structs in one pass, with
	// goccy/go-json (5x faster than encoding/json here: 0.42 ms against
	// 2.3 ms per 1,000 events) after encoding/json's syntax check, so both
	// accept exactly the same bodies (the fuzz test also checks they read
	// the same values). Any error takes the encoding/json paths below, which
	// classify it exactly (malformed body, or one bad event).
	var wire []wireEvent
	err := errMalformed
	if fastDecodable(body) {
		err = gojson.Unmarshal(body, &wire)
	}
	if err != nil {
		// encoding/json decides what the error is (and wins any
		// disagreement between the two decoders).
		wire = nil
		err = json.Unmarshal(body, &wire)
	}
	if err == nil {
		if len(wire) > r.MaxBatchLen {
			return nil, postage.Errorf(postage.ETOOLARGE, "batch of %d events is over the limit of %d", len(wire), r.MaxBatchLen)
		}
		d := newDecoded(len(wire))
		for i := range wire {
			d.add(r, i, &wire[i], now)
		}
		d.detach()
		return d, nil
	}
	if !isTypeError(err) {
		return nil, malformed(err)
	}
	// Slow path: some element has a field of the wrong type; decode the
	// elements one by one so the others survive.
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, malformed(err)
	}
	if len(raws) > r.MaxBatchLen {
		return nil, postage.Errorf(postage.ETOOLARGE, "batch of %d events is over the limit of %d", len(raws), r.MaxBatchLen)
	}
	d := newDecoded(len(raws))
	for i, raw := range raws {
		var w wireEvent
		if err := json.Unmarshal(raw, &w); err != nil {
			d.Results[i] = Result{Index: i, Status: Rejected, Field: typeErrorField(err), Reason: ReasonBadType}
			if bytes.TrimSpace(raw)[0] != '{' {
				d.Results[i].Field, d.Results[i].Reason = "", ReasonNotAnObject
			}
			continue
		}
		d.add(r, i, &w, now)
	}
	return d, nil
}

// DecodeSingle decodes one CloudEvent (structured JSON mode). A body that is
// not a JSON object is an EINVALID error; an invalid event is reported in
// the single Result. The result keeps nothing of body.
func (r *Rules) DecodeSingle(body []byte) (*Decoded, error) {
	r.init()
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, postage.Errorf(postage.EINVALID, "malformed JSON: a single event must be a JSON object")
	}
	var w wireEvent
	d := newDecoded(1)
	now := r.Now()
	if newEventScanner(body).single(&w) {
		d.add(r, 0, &w, now)
		d.detach()
		return d, nil
	}
	w = wireEvent{}
	err := errMalformed
	if fastDecodable(body) {
		err = gojson.Unmarshal(body, &w)
	}
	if err != nil {
		// encoding/json decides what the error is (and wins any
		// disagreement between the two decoders).
		w = wireEvent{}
		if err := json.Unmarshal(body, &w); err != nil {
			if !isTypeError(err) {
				return nil, malformed(err)
			}
			d.Results[0] = Result{Status: Rejected, Field: typeErrorField(err), Reason: ReasonBadType}
			return d, nil
		}
	}
	d.add(r, 0, &w, now)
	d.detach()
	return d, nil
}

// DecodeBinary decodes one CloudEvent sent in binary content mode (the
// CloudEvents HTTP binding, the official SDKs' default): the attributes in
// ce-* headers, whose values are read as the binding says (a quoted
// string unescaped, then one round of percent-decoding; a value that does
// not decode to UTF-8 is invalid), and the data, a JSON object, as the
// body. A body that is not JSON is an EINVALID error; an invalid event is
// reported in the single Result. The result keeps nothing of body.
func (r *Rules) DecodeBinary(h http.Header, body []byte) (*Decoded, error) {
	r.init()
	w := wireEvent{
		SpecVersion: headerValue(h, "Ce-Specversion"),
		Type:        headerValue(h, "Ce-Type"),
		ID:          headerValue(h, "Ce-Id"),
		Subject:     headerValue(h, "Ce-Subject"),
		Time:        headerValue(h, "Ce-Time"),
	}
	d := newDecoded(1)
	now := r.Now()
	if len(bytes.TrimLeft(body, " \t\r\n")) > 0 {
		p := newEventScanner(body)
		p.space()
		var scanned bool
		if p.null() {
			scanned = p.end()
		} else if p.i < len(body) && body[p.i] == '{' {
			scanned = p.data(&w.Data, 1) && p.end()
		}
		if !scanned {
			w.Data = wireData{}
			if err := json.Unmarshal(body, &w.Data); err != nil {
				if !isTypeError(err) {
					return nil, malformed(err)
				}
				d.Results[0] = Result{Status: Rejected, Field: "data", Reason: ReasonBadType}
				if id, ok := w.ID.text(); ok && !w.ID.bad && len(id) <= r.MaxIDLen {
					d.Results[0].ID = id
				}
				d.detach()
				return d, nil
			}
		}
	}
	d.add(r, 0, &w, now)
	d.detach()
	return d, nil
}

// headerValue reads the attribute header name as the CloudEvents HTTP
// binding encodes it. A header sent twice is invalid (which one would be
// the attribute?).
func headerValue(h http.Header, name string) wireValue {
	vs := h[name]
	switch len(vs) {
	case 0:
		return wireValue{}
	case 1:
	default:
		return wireValue{s: vs[0], kind: isString, bad: true}
	}
	v := vs[0]
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		// A quoted-string (RFC 9110, 5.6.4): a backslash escapes the
		// next byte.
		var b strings.Builder
		for i := 1; i < len(v)-1; i++ {
			if v[i] == '\\' && i+1 < len(v)-1 {
				i++
			}
			b.WriteByte(v[i])
		}
		v = b.String()
	}
	s, err := url.PathUnescape(v) // one round of percent-decoding, nothing else ('+' stays)
	if err != nil {
		return wireValue{s: v, kind: isString, bad: true}
	}
	return wireValue{s: s, kind: isString, bad: !utf8.ValidString(s)}
}

var openBrace = []byte{'{'}

// scanBatch decodes the batches eventScanner reads, and reports whether it
// did.
func (r *Rules) scanBatch(body []byte, now time.Time) (*Decoded, bool) {
	// Room for half as many events as the body has opening braces (an
	// event and its data are two objects; counting one byte runs at memory
	// speed, and a batch of other shapes only costs the slices a growth):
	// a guess from the body's size was twice too large, and these slices
	// were a third of what the server allocated under sustained ingest.
	est := min(bytes.Count(body, openBrace)/2+1, r.MaxBatchLen)
	d := &Decoded{Events: make([]Event, 0, est), Index: make([]int, 0, est), Results: make([]Result, 0, est)}
	ok := newEventScanner(body).batch(r.MaxBatchLen, func(i int, w *wireEvent) {
		d.Results = append(d.Results, Result{})
		d.add(r, i, w, now)
	})
	if !ok {
		return nil, false
	}
	d.detach()
	return d, true
}

func newDecoded(n int) *Decoded {
	return &Decoded{Events: make([]Event, 0, n), Index: make([]int, 0, n), Results: make([]Result, n)}
}

// detach copies the strings the events and results keep into one
// allocation of their own. The scanner's strings point into the request
// body, which the HTTP server re-uses for the next request and which is
// about ten times what they keep (category and country are already the
// rules' and the region table's own strings).
func (d *Decoded) detach() {
	n := 0
	for i := range d.Events {
		n += len(d.Events[i].CustomerID) + len(d.Events[i].ID)
	}
	var b strings.Builder
	b.Grow(n)
	for i := range d.Events {
		b.WriteString(d.Events[i].CustomerID)
		b.WriteString(d.Events[i].ID)
	}
	all, off := b.String(), 0
	for k := range d.Events {
		e := &d.Events[k]
		c, l := len(e.CustomerID), len(e.ID)
		e.CustomerID, e.ID = all[off:off+c], all[off+c:off+c+l]
		off += c + l
		if r := &d.Results[d.Index[k]]; r.ID != "" {
			r.ID = e.ID
		}
	}
	for i := range d.Results {
		if r := &d.Results[i]; r.Status == Rejected && r.ID != "" {
			r.ID = strings.Clone(r.ID)
		}
	}
}

func (d *Decoded) add(r *Rules, i int, w *wireEvent, now time.Time) {
	ev, field, reason := r.validate(w, now)
	res := &d.Results[i]
	res.Index = i
	if id, ok := w.ID.text(); ok && !w.ID.bad && len(id) <= r.MaxIDLen {
		res.ID = id
	}
	if reason != "" {
		res.Status, res.Field, res.Reason = Rejected, field, reason
		return
	}
	d.Events = append(d.Events, ev)
	d.Index = append(d.Index, i)
}

// validate turns a wire event into an Event or names the first bad field.
// now is the time of the request.
func (r *Rules) validate(w *wireEvent, now time.Time) (ev Event, field, reason string) {
	if reason := constant(&w.SpecVersion, "1.0", ReasonBadSpec); reason != "" {
		return ev, "specversion", reason
	}
	if reason := constant(&w.Type, EventType, ReasonBadEventType); reason != "" {
		return ev, "type", reason
	}
	if reason := checkText(&w.ID, r.MaxIDLen); reason != "" {
		return ev, "id", reason
	}
	if reason := checkText(&w.Subject, r.MaxIDLen); reason != "" {
		return ev, "subject", reason
	}
	if reason := kindReason(&w.Time); reason != "" {
		return ev, "time", reason
	}
	t, err := parseEventTime(w.Time.s)
	if err != nil {
		return ev, "time", ReasonInvalid
	}
	t = t.UTC().Truncate(time.Second)
	if reason := r.checkTime(t, now); reason != "" {
		return ev, "time", reason
	}
	d := &w.Data
	if d.empty() {
		return ev, "data", ReasonMissing
	}
	var country string
	switch {
	case !d.To.empty():
		if d.To.kind != isString {
			return ev, "data.to", ReasonBadType
		}
		c, ok := CountryOfNumber(d.To.s)
		if !ok {
			return ev, "data.to", notText(&d.To, ReasonBadNumber)
		}
		if !d.Country.empty() {
			if d.Country.kind != isString {
				return ev, "data.country", ReasonBadType
			}
			if d.Country.s != c {
				return ev, "data.country", notText(&d.Country, ReasonBadCountry)
			}
		}
		country = c
	case !d.Country.empty():
		if d.Country.kind != isString {
			return ev, "data.country", ReasonBadType
		}
		c, ok := knownCountry(d.Country.s)
		if !ok {
			return ev, "data.country", notText(&d.Country, ReasonBadCountry)
		}
		country = c
	default:
		return ev, "data.to", ReasonMissing
	}
	if reason := kindReason(&d.Category); reason != "" {
		return ev, "data.category", reason
	}
	cat := r.category(d.Category.s)
	if cat == "" {
		return ev, "data.category", notText(&d.Category, ReasonUnknownCat)
	}
	qty, reason := quantity(&d.Quantity)
	if reason != "" {
		return ev, "data.quantity", reason
	}
	ev = Event{
		CustomerID: w.Subject.s,
		ID:         w.ID.s,
		Time:       t,
		Country:    country,
		Category:   cat,
		Quantity:   qty,
		Source:     SourceCloudEvents,
	}
	ev.PayloadHash = HashPayload(t, true, country, cat, qty)
	return ev, "", ""
}

// quantity reads data.quantity: absent or null is 1; an integer from 1 to
// maxQuantity is taken, as a JSON number or as a string that holds one
// ("5", as Stripe's meter events send values); anything else is rejected.
func quantity(v *wireValue) (uint64, string) {
	switch v.kind {
	case absent:
		return 1, ""
	case isNumber:
	case isString:
		// The string must be a JSON number, read as if it were one: "05",
		// " 5" and "+5" are not.
		if end, ok := validNumberAt(v.s); !ok || end != len(v.s) {
			return 0, ReasonBadQuantity
		}
	default:
		return 0, ReasonBadType
	}
	q, err := strconv.ParseUint(v.s, 10, 64)
	if err != nil || q == 0 || q > maxQuantity {
		return 0, ReasonBadQuantity
	}
	return q, ""
}

// validNumberAt checks that s starts with a JSON number and returns where
// it ends.
func validNumberAt(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	return validNumber([]byte(s), 0)
}

// maxQuantity bounds one event's quantity so sums over a month of events
// cannot overflow UInt64.
const maxQuantity = 1_000_000

// kindReason rejects a value that is missing (absent, null or "") or not a
// string.
func kindReason(v *wireValue) string {
	switch {
	case v.empty():
		return ReasonMissing
	case v.kind != isString:
		return ReasonBadType
	}
	return ""
}

// constant checks an attribute that must equal want; reason is the answer
// for another text.
func constant(v *wireValue, want, reason string) string {
	if v.kind == isString && v.s == want {
		return ""
	}
	if r := kindReason(v); r != "" {
		return r
	}
	return notText(v, reason)
}

// notText returns ReasonInvalid for a string that is not text, else
// reason: a value that did not match is invalid before it is unknown.
func notText(v *wireValue, reason string) string {
	if v.bad || !isText(v.s) {
		return ReasonInvalid
	}
	return reason
}

// checkText checks a string the meter keeps (an id, a customer): present,
// at most max bytes, text (see isText).
func checkText(v *wireValue, max int) string {
	if r := kindReason(v); r != "" {
		return r
	}
	if len(v.s) > max {
		return ReasonTooLong
	}
	return notText(v, "")
}

func isTypeError(err error) bool {
	var te *json.UnmarshalTypeError
	return errors.As(err, &te)
}

func typeErrorField(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field
	}
	return ""
}

func malformed(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return postage.Errorf(postage.EINVALID, "malformed JSON at byte %d: %s", se.Offset, se.Error())
	}
	return postage.Errorf(postage.EINVALID, "malformed JSON: %s", err.Error())
}
