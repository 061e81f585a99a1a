package metering

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
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

func TestDecodeNormalises(t *testing.T) {
	d, err := testRules().DecodeSingle([]byte(ce("e1", "cust", "2026-10-15T13:30:00.9+02:00", `{"to":"+12125550123","category":"marketing","quantity":2,"extra":true}`)))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Events) != 1 {
		t.Fatalf("results %+v", d.Results)
	}
	got := d.Events[0]
	want := Event{CustomerID: "cust", ID: "e1", Time: time.Date(2026, 10, 15, 11, 30, 0, 0, time.UTC), Country: "US", Category: "marketing", Quantity: 2}
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
		{"invalid UTF-8 in id", "[" + ev(`"id":"`+"e\xff1"+`","time":"2026-10-15T11:00:00Z",`+data) + "]", false},
		{"null id", "[" + ev(`"id":null,"time":"2026-10-15T11:00:00Z",`+data) + "]", false},
		{"number id", "[" + ev(`"id":5,"time":"2026-10-15T11:00:00Z",`+data) + "]", false},
		{"key in another case", "[" + ev(`"ID":"e1","time":"2026-10-15T11:00:00Z",`+data) + "]", false},
		{"key with the Kelvin sign", "[" + ev(`"id":"e1","time":"2026-10-15T11:00:00Z","\u212a":1,`+data) + "]", false},
		{"non-ASCII key", "[" + ev(`"id":"e1","timé":"x","time":"2026-10-15T11:00:00Z",`+data) + "]", false},
		{"quantity as a string", "[" + ev(`"id":"e1","time":"2026-10-15T11:00:00Z","data":{"country":"DE","category":"session","quantity":"3"}`) + "]", false},
		{"null data", "[" + ev(`"id":"e1","time":"2026-10-15T11:00:00Z","data":null`) + "]", false},
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
			if ev.ID == "" || ev.CustomerID == "" || ev.Quantity == 0 || len(ev.Country) != 2 || ev.Category == "" {
				t.Fatalf("invalid event accepted: %+v", ev)
			}
			if d.Results[d.Index[i]].Status != "" {
				t.Fatalf("valid event has status %q", d.Results[d.Index[i]].Status)
			}
		}
	})
}

// TestDecodedBatchDoesNotKeepTheBody checks that a decoded batch, which
// lives until its events are stored, holds far less memory than its body:
// goccy/go-json's strings point into a copy of the whole body.
func TestDecodedBatchDoesNotKeepTheBody(t *testing.T) {
	r := testRules()
	r.MaxBatchLen = 2000
	body := benchBatchBody(2000)
	heap := func() uint64 {
		runtime.GC() // twice: sync.Pool caches (goccy keeps its buffers in one) go after two
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	if _, err := r.DecodeBatch(benchBatchBody(2000)); err != nil { // the decoders' one-time set-up
		t.Fatal(err)
	}
	before := heap()
	d, err := r.DecodeBatch(body)
	if err != nil || len(d.Events) != 2000 {
		t.Fatalf("decode: %v, %d events", err, len(d.Events))
	}
	// Beyond its own slices of events and results, a batch holds the
	// strings it kept: far less than the body.
	held := int64(heap()) - int64(before) - int64(cap(d.Events))*int64(unsafe.Sizeof(Event{})) - int64(cap(d.Results))*int64(unsafe.Sizeof(Result{}))
	if held > int64(len(body))/2 {
		t.Errorf("a decoded batch of %d bytes holds %d bytes besides its events and results, want under half of it", len(body), held)
	}
	if d.Events[1999].ID != "evt-00001999" || d.Results[1999].ID != "evt-00001999" || d.Events[5].CustomerID != "cust-5" {
		t.Errorf("detached strings changed: %q %q %q", d.Events[1999].ID, d.Results[1999].ID, d.Events[5].CustomerID)
	}
	runtime.KeepAlive(d)
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
	}
	r := testRules()
	for _, tt := range tests {
		body := []byte(tt.body)
		decode := r.DecodeSingle
		if tt.batch {
			decode = r.DecodeBatch
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
