package reconcile

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"postage"
	"postage/pricing"
)

var oct = pricing.MustParseMonth("2026-10")

// The pricing analytics answer as Meta's Graph API writes it (field
// names of pricing_analytics.data[].data_points[]), here with the phone
// number ids in phone_number.
const graphJSON = `{
  "pricing_analytics": {
    "data": [
      {
        "data_points": [
          {"start": 1790812800, "end": 1790814600, "phone_number": "106540352242922", "country": "IN",
           "pricing_type": "REGULAR", "pricing_category": "MARKETING", "tier": "0:250000", "volume": 2, "cost": 0.0214},
          {"start": 1790814600, "end": 1790816400, "phone_number": "106540352242922", "country": "IN",
           "pricing_type": "REGULAR", "pricing_category": "MARKETING", "volume": 3, "cost": 0.0321},
          {"start": 1790899200, "end": 1790985600, "phone_number": "106540352242922", "country": "BR",
           "pricing_type": "FREE_CUSTOMER_SERVICE", "pricing_category": "SERVICE", "volume": 7, "cost": 0},
          {"start": 1790899200, "end": 1790985600, "phone_number": "200", "country": "de",
           "pricing_category": "AUTHENTICATION_INTERNATIONAL", "volume": "4", "cost": "0.30000000000000004"}
        ]
      }
    ]
  },
  "id": "1029384756"
}`

func TestDecode(t *testing.T) {
	d1, d2 := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 2, 0, 0, 0, 0, time.UTC)
	want := []UpstreamRow{
		{PhoneNumberID: "106540352242922", Day: d1, Country: "IN", Category: "marketing", PricingType: "regular", Volume: 5, Cost: dec("0.0535")},
		{PhoneNumberID: "106540352242922", Day: d2, Country: "BR", Category: "service", PricingType: "free_customer_service", Volume: 7, Cost: dec("0")},
		{PhoneNumberID: "200", Day: d2, Country: "DE", Category: "authentication_international", PricingType: "regular", Volume: 4, Cost: dec("0.3")},
	}
	csvFile := "phone_number_id,start,end,country,pricing_category,pricing_type,volume,cost,tier\n" +
		"106540352242922,1790812800,1790814600,IN,MARKETING,REGULAR,2,0.0214,0:250000\n" +
		"106540352242922,2026-10-01T00:30:00Z,2026-10-01T01:00:00Z,IN,marketing,regular,3,0.0321,\n" +
		"\n" +
		"106540352242922,2026-10-02,,BR,SERVICE,FREE_CUSTOMER_SERVICE,7,0,\n" +
		"200,2026-10-02,2026-10-03,DE,AUTHENTICATION_INTERNATIONAL,,4,0.30000000000000004,\n"
	tests := []struct {
		name, format, body, grain string
	}{
		{"graph answer", FormatJSON, graphJSON, Mixed},
		{"inner object", FormatJSON, `{"data":` + graphJSON[strings.Index(graphJSON, `[`):strings.LastIndex(graphJSON, `]`)+1] + `}`, Mixed},
		{"csv", FormatCSV, csvFile, Mixed},
		{"csv with a byte-order mark", FormatCSV, "\ufeff" + csvFile, Mixed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Decode(strings.NewReader(tt.body), tt.format, oct)
			if err != nil {
				t.Fatalf("%v %v", err, postage.ErrorDetail(err))
			}
			if len(p.Rows) != len(want) {
				t.Fatalf("rows %+v", p.Rows)
			}
			for i := range want {
				g, w := p.Rows[i], want[i]
				if g.PhoneNumberID != w.PhoneNumberID || !g.Day.Equal(w.Day) || g.Country != w.Country || g.Category != w.Category ||
					g.PricingType != w.PricingType || g.Volume != w.Volume || !g.Cost.Equal(w.Cost) {
					t.Errorf("row %d = %+v, want %+v", i, g, w)
				}
			}
			if p.DataPoints != 4 || p.Volume != 16 || !p.Cost.Equal(dec("0.3535")) || p.Granularity != tt.grain {
				t.Errorf("totals %d points, %d messages, %s, %s", p.DataPoints, p.Volume, p.Cost, p.Granularity)
			}
		})
	}
	// A bare array of daily data points.
	p, err := Decode(strings.NewReader(`[{"start":"1790812800","end":1790899200,"phone_number_id":"1","country":"US","pricing_category":"UTILITY","volume":1,"cost":1.5e-2}]`), FormatJSON, oct)
	if err != nil || len(p.Rows) != 1 || p.Granularity != Daily || !p.Rows[0].Cost.Equal(dec("0.015")) {
		t.Errorf("array: %+v %v", p, err)
	}
	// Empty reports are reports without data points.
	for _, body := range []string{`{"pricing_analytics":{"data":[]}}`, `[]`, `{"data":[{"data_points":[]}]}`} {
		if p, err := Decode(strings.NewReader(body), FormatJSON, oct); err != nil || len(p.Rows) != 0 || p.Granularity != "" {
			t.Errorf("%s: %+v %v", body, p, err)
		}
	}
}

// Every bad data point is reported with where it is and which field; the
// file is refused whole.
func TestDecodeProblems(t *testing.T) {
	tests := []struct {
		name, format, body string
		want               []pricing.RowError
	}{
		{"outside the month", FormatCSV, "phone_number_id,start,country,pricing_category,volume,cost\n1,2026-11-01,US,MARKETING,1,0.1\n1,2026-09-30T23:59:59Z,US,MARKETING,1,0.1\n",
			[]pricing.RowError{{Row: 2, Column: "start", Message: "2026-11-01T00:00:00Z is outside 2026-10"}, {Row: 3, Column: "start", Message: "2026-09-30T23:59:59Z is outside 2026-10"}}},
		{"a point over two days", FormatJSON, `[{"start":1790812800,"end":1790985600,"phone_number_id":"1","country":"US","pricing_category":"marketing","volume":1,"cost":0}]`,
			[]pricing.RowError{{Row: 1, Column: "end", Message: "a data point must lie within one UTC day (granularity HALF_HOUR or DAILY)"}}},
		{"bad fields", FormatCSV, "phone_number_id,start,country,pricing_category,pricing_type,volume,cost\nabc,x,USA,MARKETING LITE,REGULAR,-1,ten\n",
			[]pricing.RowError{
				{Row: 2, Column: "start", Message: `want Unix seconds, YYYY-MM-DD or an RFC 3339 time, got "x"`},
				{Row: 2, Column: "phone_number_id", Message: `want the phone number id's digits, got "abc"`},
				{Row: 2, Column: "country", Message: `want an ISO 3166-1 alpha-2 code, got "USA"`},
				{Row: 2, Column: "pricing_category", Message: `want letters, digits and _, got "marketing lite"`},
				{Row: 2, Column: "volume", Message: `want a whole number of messages from 0 to 1099511627776, got "-1"`},
				{Row: 2, Column: "cost", Message: `want a decimal amount, got "ten"`},
			}},
		{"missing columns", FormatCSV, "start,country\n",
			[]pricing.RowError{
				{Row: 1, Column: "phone_number", Message: "missing column phone_number (columns: start,end,phone_number_id,phone_number,country,pricing_category,pricing_type,tier,volume,cost)"},
				{Row: 1, Column: "pricing_category", Message: "missing column pricing_category (columns: start,end,phone_number_id,phone_number,country,pricing_category,pricing_type,tier,volume,cost)"},
				{Row: 1, Column: "volume", Message: "missing column volume (columns: start,end,phone_number_id,phone_number,country,pricing_category,pricing_type,tier,volume,cost)"},
				{Row: 1, Column: "cost", Message: "missing column cost (columns: start,end,phone_number_id,phone_number,country,pricing_category,pricing_type,tier,volume,cost)"},
			}},
		{"wrong JSON types", FormatJSON, `{"data":[{"data_points":[7,{"start":true,"phone_number_id":"1","country":"US","pricing_category":"m","volume":1,"cost":{}}]}]}`,
			[]pricing.RowError{{Row: 1, Message: "a data point must be an object"}, {Row: 2, Column: "start", Message: "want a string or a number"}, {Row: 2, Column: "cost", Message: "want a string or a number"}}},
		{"control characters and a lone surrogate", FormatJSON, `[{"start":1790812800,"phone_number_id":"1","country":"U\u0000","pricing_category":"\ud800","volume":1,"cost":0}]`,
			[]pricing.RowError{{Row: 1, Column: "country", Message: "not UTF-8 text, or holds control characters"}, {Row: 1, Column: "pricing_category", Message: "not UTF-8 text, or holds control characters"}}},
		{"a CSV line that is not text", FormatCSV, "phone_number_id,start,country,pricing_category,volume,cost\n1,2026-10-01,US,MARK\xffETING,1,0\n",
			[]pricing.RowError{{Row: 2, Message: "not UTF-8 text, or holds control characters"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tt.body), tt.format, oct)
			if postage.ErrorCode(err) != postage.EINVALID {
				t.Fatalf("err = %v, want invalid", err)
			}
			got, _ := postage.ErrorDetail(err).([]pricing.RowError)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
	for _, body := range []string{``, `{`, `{"pricing_analytics": 5}`, `"x"`, `[] []`, `{"data": {}}`} {
		if _, err := Decode(strings.NewReader(body), FormatJSON, oct); postage.ErrorCode(err) != postage.EINVALID {
			t.Errorf("%q: %v, want invalid", body, err)
		}
	}
	if _, err := Decode(strings.NewReader(""), FormatCSV, oct); postage.ErrorCode(err) != postage.EINVALID {
		t.Errorf("empty csv: %v", err)
	}
	if _, err := Decode(strings.NewReader("[]"), "xml", oct); postage.ErrorCode(err) != postage.EINVALID {
		t.Errorf("xml: %v", err)
	}
	// At most 100 problems are listed.
	var b strings.Builder
	b.WriteString("phone_number_id,start,country,pricing_category,volume,cost\n")
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&b, "1,2026-10-01,US,MARKETING,x,0\n")
	}
	_, err := Decode(strings.NewReader(b.String()), FormatCSV, oct)
	if rows, _ := postage.ErrorDetail(err).([]pricing.RowError); len(rows) != 100 || !strings.Contains(postage.ErrorMessage(err), "the first 100") {
		t.Errorf("%d problems listed: %v", len(rows), err)
	}
}
