package httpapi

import (
	"strings"
	"testing"

	"postage"
)

func TestTextProblem(t *testing.T) {
	tests := []struct {
		in   string
		want string // substring of the reason; "" = accepted
	}{
		{"acme-1", ""},
		{"Müller & Söhne GmbH", ""},
		{"O'Brien \"quoted\" \\ back; DROP TABLE customers;--", ""},
		{"شركة الرياض", ""},                       // right-to-left script is text
		{"e\u0301te\u0301 Zalgo\u0336\u0335", ""}, // combining marks are text
		{"emoji 👍🏽", ""},
		{"tab\there", "U+0009, a control character"},
		{"a\x00b", "U+0000, a control character"},
		{"\x1b[31m", "U+001B, a control character"},
		{"del\x7f", "U+007F, a control character"},
		{"c1\u0085", "U+0085, a control character"},
		{"bad\xff", "not valid UTF-8 (byte 3)"},
		{"\xc3", "not valid UTF-8 (byte 0)"},
		{"evil\u202Egpj.exe", "U+202E, a bidirectional control character"},
		{"iso\u2067x", "U+2067, a bidirectional control character"},
		{"line\u2028sep", "U+2028, a line or paragraph separator"},
		{"repl\uFFFD", "U+FFFD, the replacement character"},
		{"non\uFFFF", "U+FFFF, a noncharacter"},
		{strings.Repeat("x", 101), "longer than 100 bytes"},
		{strings.Repeat("x", 100), ""},
	}
	for _, tt := range tests {
		got := textProblem(tt.in, 100)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("textProblem(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCheckJSONText(t *testing.T) {
	tests := []struct {
		body string
		want []string // "field: reason" substrings of the message; none = accepted
	}{
		{`{"id":"acme","name":"Acme \"Ltd\" \\ ; --","n":5,"ok":true,"x":null}`, nil},
		{`{"name":"a\u0000b"}`, []string{"body name: contains U+0000"}},
		{"{\"name\":\"a\x00b\"}", nil}, // a raw NUL is a syntax error: the decoder's to report
		{`{"items":[{"country":"DE"},{"country":"D\u001bE","category":"x"}]}`, []string{"body items[1].country: contains U+001B"}},
		{`{"items":[[1,2],["ok","\ud800"]]}`, []string{"body items[1][1]: contains U+FFFD"}},
		{`{"countries":{"DE":"eu","\u202eXX":"eu"}}`, []string{`body countries: member name "\u202eXX" contains U+202E`}},
		{"{\"name\":\"caf\xe9\"}", []string{"body (body): not valid UTF-8 (byte 12)"}},
		{`"` + strings.Repeat("x", maxBodyString+1) + `"`, []string{"body (body): longer than"}},
		{`{"a":"\u0001","b":{"c":"\u0002"}}`, []string{"body a: contains U+0001", "body b.c: contains U+0002"}},
		{`{"name":`, nil}, // a syntax error is the decoder's to report
	}
	for _, tt := range tests {
		err := checkJSONText([]byte(tt.body))
		if len(tt.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tt.body, err)
			}
			continue
		}
		if postage.ErrorCode(err) != postage.EINVALID {
			t.Errorf("%.60s: got %v, want invalid", tt.body, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(postage.ErrorMessage(err), w) {
				t.Errorf("%.60s: %q lacks %q", tt.body, postage.ErrorMessage(err), w)
			}
		}
		if _, ok := postage.ErrorDetail(err).([]FieldProblem); !ok {
			t.Errorf("%.60s: detail %T, want []FieldProblem", tt.body, postage.ErrorDetail(err))
		}
	}
}

func TestCheckCSVText(t *testing.T) {
	tests := []struct {
		body, want string
	}{
		{"a,b\r\nc,\"e, \"\"quoted\"\"\"\n", ""},
		{"a\tb\n", "line 1, column 1: contains U+0009"},
		{"a,b\nc\x00d\n", "line 2, column 1: contains U+0000"},
		{"a\n\nb\xff\n", "line 3: not valid UTF-8"},
		{"x,a\u202e\n", "line 1, column 3: contains U+202E"},
		{"x,\"two\nlines\"\n", "line 1, column 3: contains U+000A"},
		{"# a comment\x01\nx,y\n", ""},
	}
	for _, tt := range tests {
		err := checkCSVText([]byte(tt.body))
		got := ""
		if err != nil {
			got = postage.ErrorMessage(err)
		}
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("%q: got %q, want %q", tt.body, got, tt.want)
		}
	}
}
