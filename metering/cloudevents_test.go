package metering

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"postage"
)

var testNow = time.Date(2026, 10, 15, 12, 0, 0, 0, time.UTC)

func testRules() *Rules {
	return &Rules{Now: func() time.Time { return testNow }, MaxBatchLen: 100}
}

func ce(id, subject, time, data string) string {
	return fmt.Sprintf(`{"specversion":"1.0","type":"message.sent","source":"/api","id":%q,"subject":%q,"time":%q,"data":%s}`, id, subject, time, data)
}

// ceRaw is a valid event whose id and subject are the given JSON string
// contents, as they are (escapes and bytes that are not UTF-8 included).
func ceRaw(id, subject string) string {
	return `{"specversion":"1.0","type":"message.sent","id":"` + id + `","subject":"` + subject + `","time":"2026-10-15T11:00:00Z","data":{"country":"DE","category":"service"}}`
}

func TestDecodeBatch(t *testing.T) {
	ok := ce("e1", "cust", "2026-10-15T11:00:00Z", `{"to":"+4915123456789","category":"marketing"}`)
	tests := []struct {
		name   string
		event  string
		field  string
		reason string
	}{
		{"valid number", ok, "", ""},
		{"valid country, quantity", ce("e2", "c", "2026-10-15T11:00:00.5+02:00", `{"country":"BR","category":"utility","quantity":3}`), "", ""},
		{"missing specversion", `{"type":"message.sent","id":"x","subject":"c","time":"2026-10-15T11:00:00Z","data":{"country":"DE","category":"service"}}`, "specversion", ReasonMissing},
		{"spec 0.3", strings.Replace(ok, `"1.0"`, `"0.3"`, 1), "specversion", ReasonBadSpec},
		{"other type", strings.Replace(ok, "message.sent", "message.read", 1), "type", ReasonBadEventType},
		{"missing id", ce("", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service"}`), "id", ReasonMissing},
		{"long id", ce(strings.Repeat("x", 201), "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service"}`), "id", ReasonTooLong},
		{"control char id", ce("a\tb", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service"}`), "id", ReasonInvalid},
		{"missing subject", ce("x", "", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service"}`), "subject", ReasonMissing},
		{"bad time", ce("x", "c", "yesterday", `{"country":"DE","category":"service"}`), "time", ReasonInvalid},
		{"future", ce("x", "c", "2026-10-15T12:05:01Z", `{"country":"DE","category":"service"}`), "time", ReasonFuture},
		{"almost future", ce("x", "c", "2026-10-15T12:05:00Z", `{"country":"DE","category":"service"}`), "", ""},
		{"too old", ce("x", "c", "2026-09-10T11:59:59Z", `{"country":"DE","category":"service"}`), "time", ReasonTooOld},
		{"no data", `{"specversion":"1.0","type":"message.sent","id":"x","subject":"c","time":"2026-10-15T11:00:00Z"}`, "data", ReasonMissing},
		{"bad number", ce("x", "c", "2026-10-15T11:00:00Z", `{"to":"+80012345678","category":"service"}`), "data.to", ReasonBadNumber},
		{"number without plus", ce("x", "c", "2026-10-15T11:00:00Z", `{"to":"4915123456789","category":"service"}`), "data.to", ReasonBadNumber},
		{"number and other country", ce("x", "c", "2026-10-15T11:00:00Z", `{"to":"+4915123456789","country":"FR","category":"service"}`), "data.country", ReasonBadCountry},
		{"bad country", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"de","category":"service"}`), "data.country", ReasonBadCountry},
		{"unknown country", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"QQ","category":"service"}`), "data.country", ReasonBadCountry},
		{"no recipient", ce("x", "c", "2026-10-15T11:00:00Z", `{"category":"service"}`), "data.to", ReasonMissing},
		{"no category", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE"}`), "data.category", ReasonMissing},
		{"unknown category", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"promo"}`), "data.category", ReasonUnknownCat},
		{"zero quantity", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service","quantity":0}`), "data.quantity", ReasonBadQuantity},
		{"negative quantity", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service","quantity":-1}`), "data.quantity", ReasonBadQuantity},
		{"fractional quantity", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service","quantity":1.5}`), "data.quantity", ReasonBadQuantity},
		{"huge quantity", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service","quantity":1e30}`), "data.quantity", ReasonBadQuantity},
		{"wrong type id", `{"specversion":"1.0","type":"message.sent","id":5,"subject":"c","time":"2026-10-15T11:00:00Z","data":{"country":"DE","category":"service"}}`, "id", ReasonBadType},
		{"wrong type data", `{"specversion":"1.0","type":"message.sent","id":"x","subject":"c","time":"2026-10-15T11:00:00Z","data":"DE"}`, "data", ReasonBadType},
		{"not an object", `"hello"`, "", ReasonNotAnObject},
		// data.quantity: a JSON integer, or a string holding one.
		{"quantity as a string", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service","quantity":"5"}`), "", ""},
		{"quantity null", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service","quantity":null}`), "", ""},
		{"quantity not a number", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service","quantity":"abc"}`), "data.quantity", ReasonBadQuantity},
		{"quantity empty string", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service","quantity":""}`), "data.quantity", ReasonBadQuantity},
		{"quantity string with a space", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service","quantity":" 5"}`), "data.quantity", ReasonBadQuantity},
		{"quantity string with a leading zero", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service","quantity":"05"}`), "data.quantity", ReasonBadQuantity},
		{"quantity string with a sign", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service","quantity":"+5"}`), "data.quantity", ReasonBadQuantity},
		{"quantity string fractional", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service","quantity":"1.5"}`), "data.quantity", ReasonBadQuantity},
		{"quantity string zero", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service","quantity":"0"}`), "data.quantity", ReasonBadQuantity},
		{"quantity string too large", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service","quantity":"1000001"}`), "data.quantity", ReasonBadQuantity},
		{"quantity escaped string", `{"specversion":"1.0","type":"message.sent","id":"x","subject":"c","time":"2026-10-15T11:00:00Z","data":{"country":"DE","category":"service","quantity":"\u0035"}}`, "", ""},
		{"quantity true", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service","quantity":true}`), "data.quantity", ReasonBadType},
		{"quantity object", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service","quantity":{"n":1}}`), "data.quantity", ReasonBadType},
		{"quantity array", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service","quantity":[5]}`), "data.quantity", ReasonBadType},
		// Strings that are not text are rejected, never rewritten.
		{"invalid UTF-8 id", ceRaw("e\xff", "c"), "id", ReasonInvalid},
		{"invalid UTF-8 subject", ceRaw("x", "c\xfe"), "subject", ReasonInvalid},
		{"escaped lone surrogate id", `{"specversion":"1.0","type":"message.sent","id":"e\ud800","subject":"c","time":"2026-10-15T11:00:00Z","data":{"country":"DE","category":"service"}}`, "id", ReasonInvalid},
		{"escaped low surrogate first", `{"specversion":"1.0","type":"message.sent","id":"e\udc00\ud800","subject":"c","time":"2026-10-15T11:00:00Z","data":{"country":"DE","category":"service"}}`, "id", ReasonInvalid},
		{"escaped surrogate pair id", `{"specversion":"1.0","type":"message.sent","id":"e\ud83d\ude00","subject":"c","time":"2026-10-15T11:00:00Z","data":{"country":"DE","category":"service"}}`, "", ""},
		{"escaped replacement character id", `{"specversion":"1.0","type":"message.sent","id":"e\ufffd","subject":"c","time":"2026-10-15T11:00:00Z","data":{"country":"DE","category":"service"}}`, "", ""},
		{"replacement character id", ce("e\ufffd", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service"}`), "", ""},
		{"NUL in id", ceRaw(`e\u0000`, "c"), "id", ReasonInvalid},
		{"NUL in subject", ceRaw("x", `c\u0000`), "subject", ReasonInvalid},
		{"DEL in id", ceRaw("e\x7f", "c"), "id", ReasonInvalid},
		{"C1 control in id", ce("e\u0085", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service"}`), "id", ReasonInvalid},
		{"right-to-left id", ce("e\u202e1", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service"}`), "", ""},
		{"invalid UTF-8 category", ce("x", "c", "2026-10-15T11:00:00Z", "{\"country\":\"DE\",\"category\":\"serv\xffice\"}"), "data.category", ReasonInvalid},
		{"NUL in category", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service\u0000"}`), "data.category", ReasonInvalid},
		{"invalid UTF-8 country", ce("x", "c", "2026-10-15T11:00:00Z", "{\"country\":\"D\xff\",\"category\":\"service\"}"), "data.country", ReasonInvalid},
		{"NUL in to", ce("x", "c", "2026-10-15T11:00:00Z", `{"to":"+4915123456789\u0000","category":"service"}`), "data.to", ReasonInvalid},
		{"NUL in specversion", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service"}`)[:16] + `1.0\u0000"` + ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service"}`)[20:], "specversion", ReasonInvalid},
		{"id of another type", `{"specversion":"1.0","type":"message.sent","id":true,"subject":"c","time":"2026-10-15T11:00:00Z","data":{"country":"DE","category":"service"}}`, "id", ReasonBadType},
		{"null id", `{"specversion":"1.0","type":"message.sent","id":null,"subject":"c","time":"2026-10-15T11:00:00Z","data":{"country":"DE","category":"service"}}`, "id", ReasonMissing},
		{"time of another type", `{"specversion":"1.0","type":"message.sent","id":"x","subject":"c","time":1760526000,"data":{"country":"DE","category":"service"}}`, "time", ReasonBadType},
		{"country of another type", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":49,"category":"service"}`), "data.country", ReasonBadType},
		{"category of another type", ce("x", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":["service"]}`), "data.category", ReasonBadType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The event sits between two good ones, which must survive.
			body := "[" + ok + "," + tt.event + "," + ok + "]"
			d, err := testRules().DecodeBatch([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Results) != 3 {
				t.Fatalf("got %d results", len(d.Results))
			}
			got := d.Results[1]
			if tt.reason == "" {
				if got.Status != "" || len(d.Events) != 3 {
					t.Fatalf("got %+v, want valid", got)
				}
				return
			}
			if got.Status != Rejected || got.Field != tt.field || got.Reason != tt.reason || got.Index != 1 {
				t.Errorf("got %+v, want rejected %s/%s", got, tt.field, tt.reason)
			}
			if len(d.Events) != 2 || d.Index[0] != 0 || d.Index[1] != 2 {
				t.Errorf("neighbours lost: %d events, index %v", len(d.Events), d.Index)
			}
		})
	}
}

// TestDecodeIDsAreNeverRewritten checks that two ids that differ only in
// bytes that are not UTF-8 (or in escaped lone surrogates) are rejected,
// on every decoding path: encoding/json would turn both into the same
// string with U+FFFD, and the second event would be answered "duplicate"
// and never counted.
func TestDecodeIDsAreNeverRewritten(t *testing.T) {
	good := ce("g1", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service"}`)
	escaped := ce(`g\/2`, "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service"}`) // takes the slower paths
	typeErr := `{"specversion":"1.0","id":"t","data":5}`                                        // takes the slowest path
	pairs := []struct {
		events [2]string
		field  string
		id     string // echoed in the answer: only an id that is text
	}{
		{[2]string{ceRaw("evt-\xff", "c"), ceRaw("evt-\xfe", "c")}, "id", ""},
		{[2]string{ceRaw("evt", "c\xff"), ceRaw("evt", "c\xfe")}, "subject", "evt"},
		{[2]string{ceRaw(`evt-\ud800`, "c"), ceRaw(`evt-\udbff`, "c")}, "id", ""},
	}
	for _, pair := range pairs {
		p := pair.events
		for _, extra := range []string{"", "," + escaped, "," + typeErr} {
			body := "[" + good + "," + p[0] + "," + p[1] + extra + "]"
			d, err := testRules().DecodeBatch([]byte(body))
			if err != nil {
				t.Fatalf("%q: %v", body, err)
			}
			for _, i := range []int{1, 2} {
				if r := d.Results[i]; r.Status != Rejected || r.Field != pair.field || r.Reason != ReasonInvalid || r.ID != pair.id {
					t.Errorf("%q: result %d %+v, want rejected %s invalid", body, i, r, pair.field)
				}
			}
			if d.Results[0].Status != "" || d.Events[0].ID != "g1" {
				t.Errorf("%q: the good event was lost: %+v", body, d.Results[0])
			}
		}
		for _, e := range p {
			d, err := testRules().DecodeSingle([]byte(e))
			if err != nil || d.Results[0].Reason != ReasonInvalid || len(d.Events) != 0 {
				t.Errorf("single %q: %v %+v", e, err, d)
			}
		}
	}
}

// TestDecodeQuantityString checks that a quantity sent as a string of
// digits is the same event as the number: a re-send in the other form is
// a duplicate.
func TestDecodeQuantityString(t *testing.T) {
	asNumber := ce("q", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service","quantity":5}`)
	asString := ce("q", "c", "2026-10-15T11:00:00Z", `{"country":"DE","category":"service","quantity":"5"}`)
	d, err := testRules().DecodeBatch([]byte("[" + asNumber + "," + asString + "]"))
	if err != nil || len(d.Events) != 2 {
		t.Fatalf("%v %+v", err, d)
	}
	if got, want := d.Events[1], d.Events[0]; got != want || got.Quantity != 5 {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestDecodeNormalises(t *testing.T) {
	d, err := testRules().DecodeSingle([]byte(ce("e1", "cust", "2026-10-15T13:30:00.9+02:00", `{"to":"+12125550123","category":"marketing","quantity":2,"extra":true}`)))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Events) != 1 {
		t.Fatalf("results %+v", d.Results)
	}
	got := d.Events[0]
	want := Event{CustomerID: "cust", ID: "e1", Time: time.Date(2026, 10, 15, 11, 30, 0, 0, time.UTC), Country: "US", Category: "marketing", Quantity: 2, Source: SourceCloudEvents}
	want.PayloadHash = HashPayload(want.Time, true, "US", "marketing", 2)
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	// The same event by country instead of number is the same payload.
	d2, _ := testRules().DecodeSingle([]byte(ce("e1", "cust", "2026-10-15T11:30:00Z", `{"country":"US","category":"marketing","quantity":2}`)))
	if d2.Events[0].PayloadHash != got.PayloadHash {
		t.Error("same payload, different hash")
	}
}

func TestDecodeWholeBodyErrors(t *testing.T) {
	r := testRules()
	many := "[" + strings.TrimSuffix(strings.Repeat(`{},`, 101), ",") + "]"
	tests := []struct {
		name, body, code string
		batch            bool
	}{
		{"truncated", `[{"id":"x"`, postage.EINVALID, true},
		{"object as batch", `{}`, postage.EINVALID, true},
		{"empty", ``, postage.EINVALID, true},
		{"garbage", `[1,2,}`, postage.EINVALID, true},
		{"too many", many, postage.ETOOLARGE, true},
		{"array as single", `[]`, postage.EINVALID, false},
		{"truncated single", `{"id":`, postage.EINVALID, false},
	}
	for _, tt := range tests {
		var err error
		if tt.batch {
			_, err = r.DecodeBatch([]byte(tt.body))
		} else {
			_, err = r.DecodeSingle([]byte(tt.body))
		}
		if got := postage.ErrorCode(err); got != tt.code {
			t.Errorf("%s: code %q (%v), want %q", tt.name, got, err, tt.code)
		}
	}
}

// benchBatchBody is a batch of n typical CloudEvents.
func benchBatchBody(n int) []byte {
	var sb strings.Builder
	sb.WriteString("[")
	for i := range n {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(ce(fmt.Sprintf("evt-%08d", i), fmt.Sprintf("cust-%d", i%97), "2026-10-15T11:00:00Z", `{"to":"+4915123456789","category":"marketing"}`))
	}
	sb.WriteString("]")
	return []byte(sb.String())
}

func BenchmarkDecodeBatch1000(b *testing.B) {
	body := benchBatchBody(1000)
	r := testRules()
	r.MaxBatchLen = 1000
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := r.DecodeBatch(body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}

// decodeStd decodes a batch with encoding/json alone, if it can.
func decodeStd(r *Rules, body []byte) (*Decoded, bool) {
	var std []wireEvent
	if err := json.Unmarshal(body, &std); err != nil {
		return nil, false
	}
	want := newDecoded(len(std))
	for i := range std {
		want.add(r, i, &std[i], testNow)
	}
	return want, true
}

// TestEventScanner checks which bodies the one-pass scanner reads itself
// (the common ones must not fall through to the slower decoders) and that
// what DecodeBatch returns for each equals encoding/json's reading.
func TestEventScanner(t *testing.T) {
	ev := func(fields string) string {
		return `{"specversion":"1.0","type":"message.sent","subject":"c",` + fields + `}`
	}
	data := `"data":{"to":"+4915123456789","category":"marketing"}`
	tests := []struct {
		name string
		body string
		want bool // read by the scanner
	}{
		{"typical", "[" + ev(`"id":"e1","time":"2026-10-15T11:00:00Z",`+data) + "]", true},
		{"empty array", " [ ] ", true},
		{"spaces everywhere", "\n[ " + ev(`"id" : "e1" , "time":"2026-10-15T11:00:00Z", `+data) + " ,\t" + ev(`"id":"e2","time":"2026-10-15T11:00:00Z",`+data) + " ]\r\n", true},
		{"unknown keys of every kind", "[" + ev(`"id":"e1","source":"/x","n":-1.5e3,"b":[true,false,null,{"id":"x"}],"o":{"to":"+1"},"time":"2026-10-15T11:00:00Z",`+data) + "]", true},
		{"unknown data keys", "[" + ev(`"id":"e1","time":"2026-10-15T11:00:00Z","data":{"x":{"y":[1]},"country":"DE","category":"session","quantity":3}`) + "]", true},
		{"last key wins", "[" + ev(`"id":"e1","id":"e2","time":"2026-10-15T11:00:00Z",`+data) + "]", true},
		{"second data object adds", "[" + ev(`"id":"e1","time":"2026-10-15T11:00:00Z","data":{"country":"DE"},"data":{"category":"session"}`) + "]", true},
		{"UTF-8 id", "[" + ev(`"id":"é—€","time":"2026-10-15T11:00:00Z",`+data) + "]", true},
		{"invalid UTF-8 in a skipped value", "[" + ev(`"id":"e1","x":"`+"\xff"+`","time":"2026-10-15T11:00:00Z",`+data) + "]", true},
		{"rejected events", `[{"specversion":"0.3"},{},{"data":{}}]`, true},
		{"escape in id", "[" + ev(`"id":"e\/1","time":"2026-10-15T11:00:00Z",`+data) + "]", false},
		{"invalid UTF-8 in id", "[" + ev(`"id":"`+"e\xff1"+`","time":"2026-10-15T11:00:00Z",`+data) + "]", true},
		{"invalid UTF-8 in subject and category", "[" + `{"specversion":"1.0","type":"message.sent","subject":"` + "c\xfe" + `","id":"e1","time":"2026-10-15T11:00:00Z","data":{"country":"DE","category":"` + "m\xc0" + `"}}` + "]", true},
		{"null id", "[" + ev(`"id":null,"time":"2026-10-15T11:00:00Z",`+data) + "]", true},
		{"number id", "[" + ev(`"id":5,"time":"2026-10-15T11:00:00Z",`+data) + "]", true},
		{"values of every type", "[" + ev(`"id":true,"time":false,"specversion":[1,{"a":null}],"type":{"x":[]},"data":{"to":-0.5e+3,"country":null,"category":{},"quantity":[]}`) + "]", true},
		{"repeated keys of other types", "[" + ev(`"id":"e1","id":7,"time":"2026-10-15T11:00:00Z","time":null,`+data+`,"data":{"quantity":true,"quantity":"2"}`) + "]", true},
		{"escaped lone surrogate in id", "[" + ev(`"id":"e\ud800","time":"2026-10-15T11:00:00Z",`+data) + "]", false},
		{"key in another case", "[" + ev(`"ID":"e1","time":"2026-10-15T11:00:00Z",`+data) + "]", false},
		{"key with the Kelvin sign", "[" + ev(`"id":"e1","time":"2026-10-15T11:00:00Z","\u212a":1,`+data) + "]", false},
		{"non-ASCII key", "[" + ev(`"id":"e1","timé":"x","time":"2026-10-15T11:00:00Z",`+data) + "]", false},
		{"quantity as a string", "[" + ev(`"id":"e1","time":"2026-10-15T11:00:00Z","data":{"country":"DE","category":"session","quantity":"3"}`) + "]", true},
		{"quantity not a number", "[" + ev(`"id":"e1","time":"2026-10-15T11:00:00Z","data":{"country":"DE","category":"session","quantity":"abc"}`) + "," + ev(`"id":"e2","time":"2026-10-15T11:00:00Z","data":{"country":"DE","category":"session","quantity":""}`) + "]", true},
		{"null data", "[" + ev(`"id":"e1","time":"2026-10-15T11:00:00Z","data":null`) + "]", true},
		{"null data after data", "[" + ev(`"id":"e1","time":"2026-10-15T11:00:00Z",`+data+`,"data":null`) + "]", true},
		{"data of another type", "[" + ev(`"id":"e1","time":"2026-10-15T11:00:00Z","data":"DE"`) + "]", false},
		{"element not an object", `[1]`, false},
		{"trailing comma", "[" + ev(`"id":"e1","time":"2026-10-15T11:00:00Z",`+data) + ",]", false},
		{"trailing garbage", "[]x", false},
		{"over the batch limit", "[" + strings.Repeat(`{},`, 100) + `{}]`, false},
	}
	r := testRules()
	for _, tt := range tests {
		body := []byte(tt.body)
		_, got := r.scanBatch(body, testNow)
		if got != tt.want {
			t.Errorf("%s: scanner read it: %v, want %v", tt.name, got, tt.want)
		}
		d, err := r.DecodeBatch(body)
		want, ok := decodeStd(r, body)
		if !ok {
			want = &Decoded{}
		}
		switch {
		case len(want.Results) > r.MaxBatchLen:
			if postage.ErrorCode(err) != postage.ETOOLARGE {
				t.Errorf("%s: DecodeBatch: %v, want %s", tt.name, err, postage.ETOOLARGE)
			}
		case ok && err != nil:
			t.Errorf("%s: DecodeBatch: %v", tt.name, err)
		case ok && !reflect.DeepEqual(d, want):
			t.Errorf("%s: DecodeBatch disagrees with encoding/json:\n got %+v\nwant %+v", tt.name, d, want)
		}
	}
}

// FuzzDecodeBatch checks that no input panics the decoder, that it returns
// one result per array element, and that every valid event is well formed.
// Its seed corpus is in testdata/fuzz/FuzzDecodeBatch.
func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte("[" + ce("e1", "c", "2026-10-15T11:00:00Z", `{"to":"+4915123456789","category":"marketing"}`) + "]"))
	f.Add([]byte(`[{"specversion":"1.0","id":5},"x",null,{"data":{"quantity":"7"}}]`))
	f.Add([]byte(`[`))
	f.Add([]byte(`[{"id":"\ud800x","subject":"\u00e9\uDFFF","specversion":"1.0"}]`))
	f.Add([]byte("[{\"id\":\"\x83\"}]"))
	f.Add([]byte("[{}]\x00"))
	f.Add([]byte(`[{"ID":"a","id":"b","Id":"c"}]`))
	f.Add([]byte(`[{"specversion":"1.0","type":"message.sent","id":"e","subject":"c","time":"2026-10-15T11:00:00Z","x":[{"id":1}],"data":{"country":"DE"},"data":{"category":"session","quantity":2}}]`))
	f.Add([]byte(`[{"specversion":"1.0","type":"message.sent","id":"é","subject":"c","time":"2026-10-15T11:00:00Z","data":{"to":"+4915123456789","category":"marketing","quantity":1e2}}]`))
	f.Add([]byte(`[{"specversion":"1.0","type":"message.sent","id":"q","subject":"c","time":"2026-10-15T11:00:00Z","data":{"country":"DE","category":"session","quantity":"abc"}},{"specversion":"1.0","type":"message.sent","id":"r","subject":"c","time":"2026-10-15T11:00:00Z","data":{"country":"DE","category":"session","quantity":"5"}}]`))
	f.Add([]byte("[" + ceRaw("evt-\xff", "c") + "," + ceRaw("evt-\xfe", "c") + "," + ceRaw(`e\ud800\udc00`, `\udbff`) + "]"))
	f.Add([]byte(`[{"specversion":"1.0","type":"message.sent","id":true,"subject":7,"time":null,"data":{"to":[],"country":{},"category":false,"quantity":"\u0031"}}]`))
	r := testRules()
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := r.DecodeBatch(body)
		if err != nil {
			if c := postage.ErrorCode(err); c != postage.EINVALID && c != postage.ETOOLARGE {
				t.Fatalf("unexpected error code %q: %v", c, err)
			}
			return
		}
		var raws []json.RawMessage
		if err := json.Unmarshal(body, &raws); err != nil {
			t.Fatalf("decoder accepted what encoding/json rejects: %v", err)
		}
		// The fast decoders (eventScanner, goccy/go-json) must read
		// exactly what encoding/json reads.
		if want, ok := decodeStd(r, body); ok && !reflect.DeepEqual(d, want) {
			t.Fatalf("fast decoder disagrees with encoding/json:\n got %+v\nwant %+v", d, want)
		}
		if len(d.Results) != len(raws) || len(d.Events) != len(d.Index) {
			t.Fatalf("%d results for %d elements", len(d.Results), len(raws))
		}
		for i, ev := range d.Events {
			if ev.ID == "" || ev.CustomerID == "" || ev.Quantity == 0 || len(ev.Country) != 2 || ev.Category == "" ||
				!isText(ev.ID) || !isText(ev.CustomerID) || !bytes.Contains(body, []byte(ev.ID)) && !bytes.Contains(body, []byte(`\`)) {
				t.Fatalf("invalid event accepted: %+v", ev)
			}
			if d.Results[d.Index[i]].Status != "" {
				t.Fatalf("valid event has status %q", d.Results[d.Index[i]].Status)
			}
		}
	})
}

// TestDecodedBatchDoesNotKeepTheBody checks that a decoded batch, which
// lives until its events are stored, holds its events and results and
// nothing of the body (goccy/go-json's strings point into a copy of the
// whole body; the scanner's into the body itself), on the scanner's path
// and on goccy's.
func TestDecodedBatchDoesNotKeepTheBody(t *testing.T) {
	r := testRules()
	r.MaxBatchLen = 2000
	heap := func() uint64 {
		runtime.GC() // twice: sync.Pool caches (goccy keeps its buffers in one) go after two
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	goccy := func() []byte { // an escape in one id takes the batch off the scanner's path
		return bytes.Replace(benchBatchBody(2000), []byte(`"evt-00000007"`), []byte(`"evt-0000000\u0037"`), 1)
	}
	for name, body := range map[string]func() []byte{"scanner": func() []byte { return benchBatchBody(2000) }, "goccy": goccy} {
		if _, err := r.DecodeBatch(body()); err != nil { // the decoders' one-time set-up
			t.Fatal(err)
		}
		if _, ok := r.scanBatch(body(), testNow); ok != (name == "scanner") {
			t.Fatalf("%s: the body does not take its path", name)
		}
		size := len(body())
		before := heap()
		// The body is garbage once decoded, unless the decoded batch
		// points into it (or into a copy of it).
		d, err := r.DecodeBatch(body())
		if err != nil || len(d.Events) != 2000 {
			t.Fatalf("%s: decode: %v, %d events", name, err, len(d.Events))
		}
		held := int64(heap()) - int64(before)
		// What the decoded batch itself is: its slices and the strings
		// detach copied.
		own := cap(d.Events)*int(unsafe.Sizeof(Event{})) + cap(d.Index)*int(unsafe.Sizeof(int(0))) + cap(d.Results)*int(unsafe.Sizeof(Result{}))
		for _, e := range d.Events {
			own += len(e.ID) + len(e.CustomerID)
		}
		if held > int64(own)+int64(size)/4 {
			t.Errorf("%s: a decoded batch of %d bytes holds %d bytes, want its own %d and under a quarter of the body more", name, size, held, own)
		}
		if d.Events[1999].ID != "evt-00001999" || d.Results[1999].ID != "evt-00001999" || d.Events[5].CustomerID != "cust-5" || d.Events[7].ID != "evt-00000007" {
			t.Errorf("%s: detached strings changed: %q %q %q", name, d.Events[1999].ID, d.Results[1999].ID, d.Events[5].CustomerID)
		}
		runtime.KeepAlive(d)
	}
}

// TestDecodedKeepsNothingOfTheBody checks, for every decoding path, that a
// decoded request does not change when its body is overwritten: the HTTP
// server re-uses body buffers, and the scanner's strings share the body's
// memory until they are copied.
func TestDecodedKeepsNothingOfTheBody(t *testing.T) {
	good := ce("e1", "cust", "2026-10-15T11:00:00Z", `{"to":"+4915123456789","category":"marketing"}`)
	escaped := ce(`e\/2`, "cust", "2026-10-15T11:00:00Z", `{"to":"+4915123456789","category":"marketing"}`)
	badTime := ce("e3", "cust", "yesterday", `{"country":"DE","category":"session"}`)
	typeErr := `{"specversion":"1.0","id":5}`
	tests := []struct {
		name  string
		batch bool
		body  string
	}{
		{"scanned batch", true, "[" + good + "," + badTime + "]"},
		{"goccy batch", true, "[" + good + "," + escaped + "," + badTime + "]"},
		{"encoding/json batch", true, "[" + good + "," + typeErr + "," + badTime + "]"},
		{"scanned single", false, good},
		{"goccy single", false, escaped},
		{"rejected single", false, badTime},
		{"binary scanned", false, `{"to":"+4915123456789","category":"marketing"}`},
		{"binary decoded", false, `{"to":"+4915123456789","category":"m\u0061rketing"}`},
		{"binary rejected", false, `{"to":"+4915123456789","category":"nope"}`},
	}
	binary := func(body []byte) (*Decoded, error) {
		h := http.Header{"Ce-Specversion": {"1.0"}, "Ce-Type": {"message.sent"}, "Ce-Id": {"e1"}, "Ce-Subject": {"cust"}, "Ce-Time": {"2026-10-15T11:00:00Z"}}
		return testRules().DecodeBinary(h, body)
	}
	r := testRules()
	for _, tt := range tests {
		body := []byte(tt.body)
		decode := r.DecodeSingle
		if tt.batch {
			decode = r.DecodeBatch
		}
		if strings.HasPrefix(tt.name, "binary") {
			decode = binary
		}
		d, err := decode(body)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		before := fmt.Sprintf("%+v", *d)
		if len(d.Results) == 0 || d.Results[0].ID == "" {
			t.Fatalf("%s: decoded %s", tt.name, before)
		}
		for i := range body {
			body[i] = 'x'
		}
		if after := fmt.Sprintf("%+v", *d); after != before {
			t.Errorf("%s: decoded request changed with its body:\n before %s\n after  %s", tt.name, before, after)
		}
	}
}

// TestParseEventTime checks the fast path of parseEventTime against
// time.Parse on the edges of every field and on random strings of the
// fast path's shape.
func TestParseEventTime(t *testing.T) {
	inputs := []string{
		"2026-10-15T11:00:00Z", "2024-02-29T23:59:59Z", "2026-02-29T00:00:00Z", "2100-02-29T00:00:00Z",
		"2000-02-29T00:00:00Z", "2026-12-31T23:59:59Z", "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z",
		"2026-04-31T00:00:00Z", "2026-04-00T00:00:00Z", "2026-10-15T24:00:00Z", "2026-10-15T23:60:00Z",
		"2026-10-15T23:59:60Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-10-15t11:00:00Z",
		"2026-10-15T11:00:00z", "2026-1a-15T11:00:00Z", "+026-10-15T11:00:00Z", "2026-10-15 11:00:00Z",
		"2026-10-15T11:00:00+02:00", "2026-10-15T11:00:00.123Z", "", "2026-10-15",
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const shape = "dddd-dd-ddTdd:dd:ddZ"
	for range 100000 {
		b := []byte(shape)
		for i, c := range shape {
			if c == 'd' {
				b[i] = byte('0' + rng.IntN(10))
			}
		}
		if rng.IntN(20) == 0 {
			b[rng.IntN(len(b))] = byte(rng.IntN(128))
		}
		inputs = append(inputs, string(b))
	}
	for _, s := range inputs {
		got, gotErr := parseEventTime(s)
		want, wantErr := time.Parse(time.RFC3339Nano, s)
		if (gotErr != nil) != (wantErr != nil) || !got.Equal(want) {
			t.Fatalf("parseEventTime(%q) = %v, %v; time.Parse: %v, %v", s, got, gotErr, want, wantErr)
		}
	}
}

// FuzzWireString checks how a JSON string is read, against encoding/json:
// a string is marked bad exactly when encoding/json would not keep what
// was sent (an invalid byte or an unpaired surrogate escape, each of which
// it replaces with U+FFFD), an unmarked string reads as encoding/json
// reads it, and the scanner reads what UnmarshalJSON reads.
func FuzzWireString(f *testing.F) {
	for _, s := range []string{"abc", `a\u00e9`, `\ud83d\ude00`, `\ud800`, `\udc00`, `\ud800\ud800`, `\ud800\u0041`,
		`\ud800x`, `\\ud800`, `\ufffd`, "\xef\xbf\xbd", "\xff", "\xed\xa0\x80", `\u0000`, `\"\/\b`, "é\xc3"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		quoted := append(append([]byte{'"'}, raw...), '"')
		if !json.Valid(quoted) {
			return
		}
		var v wireValue
		if err := v.UnmarshalJSON(quoted); err != nil {
			t.Fatal(err)
		}
		var std string
		if err := json.Unmarshal(quoted, &std); err != nil {
			t.Fatal(err)
		}
		want, lost := decodeJSONString(raw)
		if v.bad != lost {
			t.Fatalf("%q: bad %v, want %v", raw, v.bad, lost)
		}
		if !lost && (v.s != std || v.s != want) {
			t.Fatalf("%q: read %q, encoding/json %q, want %q", raw, v.s, std, want)
		}
		var sc wireValue
		p := newEventScanner(quoted)
		if p.value(&sc, 1) && sc != v {
			t.Fatalf("%q: scanner read %+v, UnmarshalJSON %+v", raw, sc, v)
		}
	})
}

// decodeJSONString decodes the inside of a valid JSON string strictly,
// on its own (the oracle of FuzzWireString): lost is true if it holds a
// byte that is not UTF-8 or a surrogate escape that is not half of a pair.
func decodeJSONString(raw []byte) (s string, lost bool) {
	var out []rune
	for len(raw) > 0 {
		if raw[0] != '\\' {
			r, n := utf8.DecodeRune(raw)
			if r == utf8.RuneError && n == 1 {
				lost = true
			}
			out = append(out, r)
			raw = raw[n:]
			continue
		}
		if raw[1] != 'u' {
			out = append(out, map[byte]rune{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}[raw[1]])
			raw = raw[2:]
			continue
		}
		n, _ := strconv.ParseUint(string(raw[2:6]), 16, 32)
		raw = raw[6:]
		r := rune(n)
		if utf16.IsSurrogate(r) {
			if len(raw) >= 6 && raw[0] == '\\' && raw[1] == 'u' {
				n2, _ := strconv.ParseUint(string(raw[2:6]), 16, 32)
				if d := utf16.DecodeRune(r, rune(n2)); d != utf8.RuneError {
					out = append(out, d)
					raw = raw[6:]
					continue
				}
			}
			lost = true
			r = utf8.RuneError
		}
		out = append(out, r)
	}
	return string(out), lost
}

// TestDecodeBinary checks CloudEvents in binary content mode: attributes
// in ce-* headers, decoded as the HTTP binding says, and the data as the
// body.
func TestDecodeBinary(t *testing.T) {
	headers := func(kv ...string) http.Header {
		h := http.Header{"Ce-Specversion": {"1.0"}, "Ce-Type": {"message.sent"}, "Ce-Id": {"e1"}, "Ce-Subject": {"cust"},
			"Ce-Time": {"2026-10-15T11:00:00Z"}, "Ce-Source": {"/app"}, "Content-Type": {"application/json"}}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "<none>" {
				delete(h, kv[i])
			} else {
				h[kv[i]] = strings.Split(kv[i+1], "|")
			}
		}
		return h
	}
	data := `{"to":"+4915123456789","category":"marketing"}`
	tests := []struct {
		name          string
		h             http.Header
		body          string
		id, customer  string // of the event, when valid
		field, reason string // of the rejection
	}{
		{"valid", headers(), data, "e1", "cust", "", ""},
		{"spaces around the body", headers(), " \n" + data + "\t", "e1", "cust", "", ""},
		{"percent-encoded", headers("Ce-Id", "e%201%E2%82%AC", "Ce-Subject", "c%75st"), data, "e 1€", "cust", "", ""},
		{"lower-case percent-encoding", headers("Ce-Id", "%e2%82%ac"), data, "€", "cust", "", ""},
		{"plus is not a space", headers("Ce-Id", "e+1"), data, "e+1", "cust", "", ""},
		{"a quoted string", headers("Ce-Subject", `"cu\"st"`), data, "e1", `cu"st`, "", ""},
		{"escaped data", headers(), `{"to":"+4915123456789","category":"m\u0061rketing"}`, "e1", "cust", "", ""},
		{"quantity as a string", headers(), `{"to":"+4915123456789","category":"marketing","quantity":"3"}`, "e1", "cust", "", ""},
		{"bad percent-encoding", headers("Ce-Subject", "50%off"), data, "", "", "subject", ReasonInvalid},
		{"percent-encoding that is not hex", headers("Ce-Id", "e%zz"), data, "", "", "id", ReasonInvalid},
		{"percent-encoded invalid UTF-8", headers("Ce-Id", "e%FF"), data, "", "", "id", ReasonInvalid},
		{"percent-encoded overlong space", headers("Ce-Id", "e%C0%A0"), data, "", "", "id", ReasonInvalid},
		{"percent-encoded NUL", headers("Ce-Subject", "c%00"), data, "", "", "subject", ReasonInvalid},
		{"raw bytes that are not UTF-8", headers("Ce-Subject", "c\xff"), data, "", "", "subject", ReasonInvalid},
		{"an attribute sent twice", headers("Ce-Id", "e1|e2"), data, "", "", "id", ReasonInvalid},
		{"no specversion", headers("Ce-Specversion", "<none>"), data, "", "", "specversion", ReasonMissing},
		{"another specversion", headers("Ce-Specversion", "0.3"), data, "", "", "specversion", ReasonBadSpec},
		{"another type", headers("Ce-Type", "message.read"), data, "", "", "type", ReasonBadEventType},
		{"no id", headers("Ce-Id", "<none>"), data, "", "", "id", ReasonMissing},
		{"no time", headers("Ce-Time", "<none>"), data, "", "", "time", ReasonMissing},
		{"no body", headers(), "", "", "", "data", ReasonMissing},
		{"null body", headers(), "null", "", "", "data", ReasonMissing},
		{"a string body", headers(), `"DE"`, "", "", "data", ReasonBadType},
		{"an array body", headers(), `[1]`, "", "", "data", ReasonBadType},
		{"a bad quantity", headers(), `{"country":"DE","category":"marketing","quantity":"abc"}`, "", "", "data.quantity", ReasonBadQuantity},
		{"an unknown category", headers(), `{"country":"DE","category":"promo"}`, "", "", "data.category", ReasonUnknownCat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := testRules().DecodeBinary(tt.h, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			got := d.Results[0]
			if tt.reason != "" {
				if got.Status != Rejected || got.Field != tt.field || got.Reason != tt.reason || len(d.Events) != 0 {
					t.Errorf("got %+v, want rejected %s %s", got, tt.field, tt.reason)
				}
				return
			}
			if got.Status != "" || len(d.Events) != 1 {
				t.Fatalf("got %+v, want an event", got)
			}
			if ev := d.Events[0]; ev.ID != tt.id || ev.CustomerID != tt.customer || ev.Country != "DE" || ev.Source != SourceCloudEvents {
				t.Errorf("event %+v, want id %q customer %q", ev, tt.id, tt.customer)
			}
		})
	}
	for _, body := range []string{`{"to":`, `{"a":1}x`, "\xff", `null{"country":"DE","category":"marketing"}`, data + data, `nul`} {
		if _, err := testRules().DecodeBinary(headers(), []byte(body)); postage.ErrorCode(err) != postage.EINVALID {
			t.Errorf("body %q: %v, want %s", body, err, postage.EINVALID)
		}
	}
	// The same event in binary and structured mode is one event.
	b, _ := testRules().DecodeBinary(headers(), []byte(data))
	s, _ := testRules().DecodeSingle([]byte(ce("e1", "cust", "2026-10-15T11:00:00Z", data)))
	if b.Events[0] != s.Events[0] {
		t.Errorf("binary %+v\nstructured %+v", b.Events[0], s.Events[0])
	}
}

// TestIsText compares isText with its definition (valid UTF-8 without a
// character of Unicode's control category) on every character class and
// on random strings.
func TestIsText(t *testing.T) {
	want := func(s string) bool {
		if !utf8.ValidString(s) {
			return false
		}
		for _, r := range s {
			if unicode.IsControl(r) {
				return false
			}
		}
		return true
	}
	inputs := []string{"", "evt-1", "é", "\u0085", "\u009f", "\u00a0", "\u202e", "\ufffd", "\x7f", "\x00", "\x1f", " ", "~",
		"\xff", "\xc0\xa0", "\xed\xa0\x80", "a\xe2\x82", "€€€", "\U0001F600"}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200000 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			switch rng.IntN(4) {
			case 0:
				b[i] = byte(rng.IntN(256))
			case 1:
				b[i] = byte(0x80 + rng.IntN(0x40))
			default:
				b[i] = byte(0x20 + rng.IntN(0x5f))
			}
		}
		inputs = append(inputs, string(b))
	}
	for r := rune(0); r < 0x3000; r++ {
		inputs = append(inputs, "a"+string(r))
	}
	for _, s := range inputs {
		if got := isText(s); got != want(s) {
			t.Fatalf("isText(%q) = %v", s, got)
		}
	}
}

// FuzzDecodeBinaryData checks that the data of a binary-mode event is read
// by the scanner exactly as encoding/json reads it.
func FuzzDecodeBinaryData(f *testing.F) {
	for _, s := range []string{`{"to":"+4915123456789","category":"marketing"}`, `null`, ` `, `null{}`, `{"quantity":"5","country":"DE","category":"session"}`,
		`{"country":"D\u0045","category":"session"}`, "{\"country\":\"DE\",\"category\":\"s\xff\"}", `[1]`, `"DE"`, `{"Country":"DE"}`} {
		f.Add([]byte(s))
	}
	h := http.Header{"Ce-Specversion": {"1.0"}, "Ce-Type": {"message.sent"}, "Ce-Id": {"e1"}, "Ce-Subject": {"cust"}, "Ce-Time": {"2026-10-15T11:00:00Z"}}
	r := testRules()
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := r.DecodeBinary(h, body)
		if len(bytes.TrimLeft(body, " \t\r\n")) > 0 && !json.Valid(body) {
			if postage.ErrorCode(err) != postage.EINVALID {
				t.Fatalf("invalid JSON %q: %v", body, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		w := wireEvent{SpecVersion: headerValue(h, "Ce-Specversion"), Type: headerValue(h, "Ce-Type"), ID: headerValue(h, "Ce-Id"),
			Subject: headerValue(h, "Ce-Subject"), Time: headerValue(h, "Ce-Time")}
		want := newDecoded(1)
		if len(bytes.TrimLeft(body, " \t\r\n")) > 0 {
			if err := json.Unmarshal(body, &w.Data); err != nil {
				want.Results[0] = Result{ID: "e1", Status: Rejected, Field: "data", Reason: ReasonBadType}
			} else {
				want.add(r, 0, &w, testNow)
			}
		} else {
			want.add(r, 0, &w, testNow)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %+v\nwant %+v", body, got, want)
		}
	})
}
