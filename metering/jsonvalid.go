package metering

import (
	"encoding/binary"
	"math/bits"
)

// validJSON reports whether b is exactly one JSON value with optional
// surrounding whitespace, deciding as encoding/json.Valid does (RFC 8259
// syntax, nesting at most 10,000 deep; bytes of 0x80 and above in strings
// are not checked, as there), in one pass and without allocating.
//
// It is the syntax check in front of the fast batch decoder: a fifth of
// the server's CPU went to encoding/json.Valid under sustained ingest
// (docs/METERING.md). TestValidJSONAgreesWithEncodingJSON and FuzzValidJSON
// (with go test -fuzz; make fuzz runs it) compare the two.
func validJSON(b []byte) bool {
	i, ok := validValue(b, skipJSONSpace(b, 0), 0)
	return ok && skipJSONSpace(b, i) == len(b)
}

// maxJSONDepth is encoding/json's limit on nested arrays and objects.
const maxJSONDepth = 10000

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// validValue checks the value starting at b[i] (no leading space) inside
// depth open arrays and objects, and returns the index just after it.
func validValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		return validString(b, i)
	case c == '{' || c == '[':
		if depth++; depth > maxJSONDepth {
			return i, false
		}
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		i = skipJSONSpace(b, i+1)
		if i < len(b) && b[i] == closing {
			return i + 1, true
		}
		for {
			var ok bool
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return i, false
				}
				if i, ok = validString(b, i); !ok {
					return i, false
				}
				if i = skipJSONSpace(b, i); i >= len(b) || b[i] != ':' {
					return i, false
				}
				i = skipJSONSpace(b, i+1)
			}
			if i, ok = validValue(b, i, depth); !ok {
				return i, false
			}
			if i = skipJSONSpace(b, i); i >= len(b) {
				return i, false
			}
			switch b[i] {
			case closing:
				return i + 1, true
			case ',':
				i = skipJSONSpace(b, i+1)
			default:
				return i, false
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return validNumber(b, i)
	case c == 't':
		return validLiteral(b, i, "true")
	case c == 'f':
		return validLiteral(b, i, "false")
	case c == 'n':
		return validLiteral(b, i, "null")
	}
	return i, false
}

func validLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

// Eight bytes at a time: lo has 0x01 in every byte, hi 0x80.
const lo, hi = 0x0101010101010101, 0x8080808080808080

// plainPrefix returns how many of the 8 bytes in x (little-endian: the
// first byte is the lowest) come before the first one that needs a look on
// its own in a JSON string — a quote, a backslash or a control character —
// or 8 if none does. Each test ("a byte is zero", "a byte is below 0x20";
// Hacker's Delight / Bit Twiddling Hacks) flags every such byte and can
// wrongly flag only bytes after one (a borrow moves up), so the lowest
// flag is exact.
func plainPrefix(x uint64) int {
	zero := func(v uint64) uint64 { return (v - lo) & ^v & hi }
	below20 := (x - lo*0x20) & ^x & hi
	return bits.TrailingZeros64(below20|zero(x^(lo*'"'))|zero(x^(lo*'\\'))) >> 3
}

// validString checks the string whose opening quote is b[i].
func validString(b []byte, i int) (int, bool) {
	end, _, _, ok := scanString(b, i)
	return end, ok
}

// scanString checks the string whose opening quote is b[i] and returns the
// index just after its closing quote, and whether the string holds an
// escape and whether it holds a byte of 0x80 or above (which encoding/json
// checks for UTF-8 when it decodes the string, not when it checks syntax).
func scanString(b []byte, i int) (end int, escaped, high bool, ok bool) {
	i++
	var or uint64 // the plain bytes seen, or-ed: bit 7 of a byte is set if one was 0x80 or above
	for i < len(b) {
		for i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i:])
			n := plainPrefix(x)
			if n < 8 {
				or |= x & (1<<(8*n) - 1) // the plain bytes only
				i += n
				break
			}
			or |= x
			i += 8
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, escaped, or&hi != 0, true
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return i, escaped, false, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 {
					return i, escaped, false, false
				}
				for _, h := range b[i+2 : i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return i, escaped, false, false
					}
				}
				i += 6
			default:
				return i, escaped, false, false
			}
		case c < 0x20:
			return i, escaped, false, false
		default:
			or |= uint64(c)
			i++
		}
	}
	return i, escaped, false, false
}

// validNumber checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at b[i].
func validNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	digits := func() bool {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if !digits() {
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return i, false
		}
	}
	return i, true
}
