package metering

import (
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"
)

// eventScanner reads CloudEvents from a request body in one pass, for the
// bodies it can read exactly as encoding/json reads them into wireEvent:
// it checks the syntax of everything (as validJSON does) and keeps the
// attributes the meter uses.
//
// It gives up (ok false) on anything it does not read itself, and the
// caller then takes the general path, which decides such bodies exactly:
// a syntax error anywhere; an element that is not an object; "data" that
// is neither an object nor null; a string the meter reads that holds an
// escape (encoding/json decides how to unescape it); a key with an escape
// or a byte outside ASCII, or one that matches an attribute only
// case-insensitively (encoding/json folds case in keys); more events than
// the limit. Values the meter reads are kept as wireValue.UnmarshalJSON
// keeps them: of any type, and strings that are not valid UTF-8 marked as
// such (never replaced), so their event is rejected. Repeated keys are read as
// encoding/json reads them: the last string wins and a repeated "data"
// object adds to the first.
//
// It exists for speed: the syntax check and goccy/go-json's decoding were
// a third of the server's CPU under sustained ingest (docs/METERING.md,
// "Performance and limits"). FuzzDecodeBatch compares what it reads with
// encoding/json.
type eventScanner struct {
	b []byte
	s string // b as a string, without a copy: the strings read are slices of it
	i int
}

// newEventScanner scans body. The strings it reads share body's memory
// (copying a half-megabyte body for each request was measurable): the
// caller must copy what it keeps (Decoded.detach) before body changes.
func newEventScanner(body []byte) *eventScanner {
	return &eventScanner{b: body, s: unsafe.String(unsafe.SliceData(body), len(body))}
}

// batch reads a JSON array of objects and calls each for every element in
// order. each must not keep w: it is reused.
func (p *eventScanner) batch(max int, each func(i int, w *wireEvent)) bool {
	p.space()
	if !p.next('[') {
		return false
	}
	p.space()
	if p.next(']') {
		return p.end()
	}
	var w wireEvent
	for n := 0; ; n++ {
		if n == max {
			return false
		}
		w = wireEvent{}
		if !p.event(&w) {
			return false
		}
		each(n, &w)
		p.space()
		if p.next(']') {
			return p.end()
		}
		if !p.next(',') {
			return false
		}
		p.space()
	}
}

// single reads one JSON object.
func (p *eventScanner) single(w *wireEvent) bool {
	p.space()
	return p.event(w) && p.end()
}

func (p *eventScanner) space() { p.i = skipJSONSpace(p.b, p.i) }

func (p *eventScanner) next(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end reports whether only whitespace is left.
func (p *eventScanner) end() bool {
	p.space()
	return p.i == len(p.b)
}

var eventKeys = []string{"specversion", "type", "id", "subject", "time", "data"}
var dataKeys = []string{"to", "country", "category", "quantity"}

// event reads an object at depth 2 (inside the batch's array; a single
// event's object is read the same way: depth only matters at 10,000).
func (p *eventScanner) event(w *wireEvent) bool {
	return p.object(func(key string) bool {
		switch key {
		case "specversion":
			return p.value(&w.SpecVersion, 2)
		case "type":
			return p.value(&w.Type, 2)
		case "id":
			return p.value(&w.ID, 2)
		case "subject":
			return p.value(&w.Subject, 2)
		case "time":
			return p.value(&w.Time, 2)
		case "data":
			if p.null() {
				return true // encoding/json leaves the struct as it is
			}
			return p.data(&w.Data, 3)
		}
		return unfolded(key, eventKeys) && p.skip(2)
	})
}

// data reads the data object (at depth, counting its own) into d, adding
// to what d holds.
func (p *eventScanner) data(d *wireData, depth int) bool {
	return p.object(func(key string) bool {
		switch key {
		case "to":
			return p.value(&d.To, depth)
		case "country":
			return p.value(&d.Country, depth)
		case "category":
			return p.value(&d.Category, depth)
		case "quantity":
			return p.value(&d.Quantity, depth)
		}
		return unfolded(key, dataKeys) && p.skip(depth)
	})
}

// null reads a null literal, if one is next.
func (p *eventScanner) null() bool {
	if len(p.b)-p.i >= 4 && p.s[p.i:p.i+4] == "null" {
		p.i += 4
		return true
	}
	return false
}

// value reads any value into dst as wireValue.UnmarshalJSON does, inside
// depth open arrays and objects, except a string with an escape, on which
// it gives up (encoding/json decides how to unescape it).
func (p *eventScanner) value(dst *wireValue, depth int) bool {
	if p.i >= len(p.b) {
		return false
	}
	start := p.i
	switch c := p.b[p.i]; {
	case c == '"':
		end, escaped, high, ok := scanString(p.b, p.i)
		if !ok || escaped {
			return false
		}
		s := p.s[start+1 : end-1]
		*dst = wireValue{s: s, kind: isString, bad: high && !utf8.ValidString(s)}
		p.i = end
		return true
	case c == '-' || c >= '0' && c <= '9':
		end, ok := validNumber(p.b, p.i)
		p.i = end
		*dst = wireValue{s: p.s[start:end], kind: isNumber}
		return ok
	case c == 'n':
		end, ok := validLiteral(p.b, p.i, "null")
		p.i = end
		return ok // null leaves dst as it is
	case c == 't':
		end, ok := validLiteral(p.b, p.i, "true")
		p.i = end
		*dst = wireValue{s: "true", kind: isBool}
		return ok
	case c == 'f':
		end, ok := validLiteral(p.b, p.i, "false")
		p.i = end
		*dst = wireValue{s: "false", kind: isBool}
		return ok
	}
	*dst = wireValue{kind: isOther}
	return p.skip(depth)
}

// object reads an object; member is called with p.i at each member's value
// and must read it.
func (p *eventScanner) object(member func(key string) bool) bool {
	if !p.open() {
		return false
	}
	for more := !p.next('}'); more; {
		key, ok := p.key()
		if !ok || !member(key) {
			return false
		}
		if more, ok = p.after(); !ok {
			return false
		}
	}
	return true
}

// open reads an object's opening brace and the space after it.
func (p *eventScanner) open() bool {
	if !p.next('{') {
		return false
	}
	p.space()
	return true
}

// key reads a member's key, the colon and the space around it.
func (p *eventScanner) key() (string, bool) {
	var key string
	if !p.str(&key) {
		return "", false
	}
	p.space()
	if !p.next(':') {
		return "", false
	}
	p.space()
	return key, true
}

// after reads what follows a member: a comma (more members) or the
// closing brace.
func (p *eventScanner) after() (more, ok bool) {
	p.space()
	if p.next('}') {
		return false, true
	}
	if !p.next(',') {
		return false, false
	}
	p.space()
	return true, true
}

// unfolded reports whether an unknown key is safe to skip: encoding/json
// would also skip it, because it matches none of names when case is
// folded. Keys outside ASCII are not judged here (Unicode folding, e.g.
// the Kelvin sign, is left to encoding/json).
func unfolded(key string, names []string) bool {
	for j := 0; j < len(key); j++ {
		if key[j] >= utf8.RuneSelf {
			return false
		}
	}
	for _, n := range names {
		if len(key) == len(n) && strings.EqualFold(key, n) {
			return false
		}
	}
	return true
}

// skip checks the syntax of a value the meter does not read, inside depth
// open arrays and objects.
func (p *eventScanner) skip(depth int) bool {
	end, ok := validValue(p.b, p.i, depth)
	p.i = end
	return ok
}

// str reads a string without escapes that is valid UTF-8 into dst
// (encoding/json would unescape the one and replace bytes of the other).
func (p *eventScanner) str(dst *string) bool {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return false
	}
	end, escaped, high, ok := scanString(p.b, p.i)
	if !ok || escaped {
		return false
	}
	s := p.s[p.i+1 : end-1]
	if high && !utf8.ValidString(s) {
		return false
	}
	*dst, p.i = s, end
	return true
}

// parseEventTime parses an event time as time.Parse(time.RFC3339Nano, s)
// does, with a fast path for the form nearly every event has,
// "2006-01-02T15:04:05Z" (time.Parse was 5% of the server's CPU under
// sustained ingest). Anything else takes time.Parse;
// TestParseEventTime compares the two.
func parseEventTime(s string) (time.Time, error) {
	if len(s) == 20 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':' && s[19] == 'Z' {
		year, ok1 := digits(s[0:4])
		month, ok2 := digits(s[5:7])
		day, ok3 := digits(s[8:10])
		hour, ok4 := digits(s[11:13])
		minute, ok5 := digits(s[14:16])
		sec, ok6 := digits(s[17:19])
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 &&
			month >= 1 && month <= 12 && day >= 1 && day <= daysIn(time.Month(month), year) &&
			hour < 24 && minute < 60 && sec < 60 {
			return time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC), nil
		}
	}
	return time.Parse(time.RFC3339Nano, s)
}

// digits parses a string of ASCII digits.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
