// Package jsonx appends JSON by hand for the few hot paths where
// encoding/json's reflection is a measurable share of the work (ingest
// answers, stored invoice lines), byte for byte as encoding/json writes it.
package jsonx

import "encoding/json"

// AppendString appends s as a JSON string: plain printable ASCII directly,
// anything else through encoding/json (its escaping of <, >, &, control
// characters, U+2028/9 and invalid UTF-8).
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
