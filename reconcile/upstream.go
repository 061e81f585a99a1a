// Package reconcile compares the upstream's usage-and-cost report of a
// month (Meta's WhatsApp pricing analytics: per phone number, day or half
// hour, country, category and pricing type, the volume of messages and
// their cost) with postage's own count and cost, per customer, day,
// market and category, lists every difference with its likely cause, and
// holds the finalization of a month whose difference exceeds the
// tolerance until finance accepts it. docs/RECONCILIATION.md explains the
// method.
package reconcile

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"postage"
	"postage/pricing"
)

// Formats of an upstream report file.
const (
	FormatCSV  = "csv"
	FormatJSON = "json"
)

// Granularities of the upstream's data points (the pricing analytics'
// granularity parameter).
const (
	HalfHour = "HALF_HOUR"
	Daily    = "DAILY"
	Mixed    = "MIXED"
)

// CostDecimals is how many decimals an imported cost keeps: the
// precision of unit prices (pricing); a cost sent with more (a float's
// binary noise, 0.30000000000000004) is rounded half-even to it.
const CostDecimals = 6

// MaxVolume bounds one data point's volume.
const MaxVolume = 1 << 40

// UpstreamRow is the upstream's count and cost of one phone number's
// messages on one UTC day to one country, in one category and pricing
// type: the data points of a day (or its half hours) added together.
type UpstreamRow struct {
	PhoneNumberID string
	Day           time.Time // 00:00 UTC
	Country       string
	// Category and PricingType are the upstream's, lower case
	// (MARKETING → marketing); an absent pricing type is regular.
	Category    string
	PricingType string
	Volume      int64
	Cost        decimal.Decimal
}

// rowKey identifies an UpstreamRow.
type rowKey struct {
	phone           string
	day             int64
	country         string
	category, ptype string
}

// Parsed is a decoded upstream report: its rows (data points of the
// same key added), in the order first seen.
type Parsed struct {
	Rows        []UpstreamRow
	DataPoints  int
	Granularity string // HALF_HOUR, DAILY or MIXED ("" when empty)
	Volume      int64
	Cost        decimal.Decimal
}

// dataPoint is one data point as the pricing analytics export writes it
// (pricing_analytics.data[].data_points[]). Meta's PHONE dimension names
// the number in phone_number; postage maps phone-number ids, so a file
// carries phone_number_id, or phone_number holding the ids.
type dataPoint struct {
	Start           json.RawMessage `json:"start"`
	End             json.RawMessage `json:"end"`
	PhoneNumberID   json.RawMessage `json:"phone_number_id"`
	PhoneNumber     json.RawMessage `json:"phone_number"`
	Country         json.RawMessage `json:"country"`
	PricingCategory json.RawMessage `json:"pricing_category"`
	PricingType     json.RawMessage `json:"pricing_type"`
	Volume          json.RawMessage `json:"volume"`
	Cost            json.RawMessage `json:"cost"`
}

// decoder turns data points into rows for one month, collecting every
// problem.
type decoder struct {
	month    pricing.Month
	from, to int64
	out      Parsed
	index    map[rowKey]int
	errs     []pricing.RowError
	grains   map[string]bool
	strs     map[string]string
}

const maxErrors = 100

func newDecoder(m pricing.Month) *decoder {
	return &decoder{month: m, from: m.Start().Unix(), to: m.End().Unix(), index: map[rowKey]int{}, grains: map[string]bool{}, strs: map[string]string{}}
}

func (d *decoder) bad(row int, column, format string, args ...any) {
	if len(d.errs) < maxErrors {
		d.errs = append(d.errs, pricing.RowError{Row: row, Column: column, Message: fmt.Sprintf(format, args...)})
	}
}

// point is one data point's fields as text ("" when absent).
type point struct {
	start, end, phone, country, category, ptype, volume, cost string
	phoneField                                                string
}

// add checks one data point and adds it to its row.
func (d *decoder) add(row int, p point) {
	before := len(d.errs)
	start, ok := parseStart(p.start)
	if !ok {
		d.bad(row, "start", "want Unix seconds, YYYY-MM-DD or an RFC 3339 time, got %q", clip(p.start))
	} else if start < d.from || start >= d.to {
		d.bad(row, "start", "%s is outside %s", time.Unix(start, 0).UTC().Format(time.RFC3339), d.month)
	}
	dayStart := start - ((start%86400)+86400)%86400
	if p.end != "" && ok {
		end, eok := parseStart(p.end)
		switch {
		case !eok:
			d.bad(row, "end", "want Unix seconds, YYYY-MM-DD or an RFC 3339 time, got %q", clip(p.end))
		case end <= start:
			d.bad(row, "end", "end is not after start")
		case end > dayStart+86400:
			d.bad(row, "end", "a data point must lie within one UTC day (granularity HALF_HOUR or DAILY)")
		default:
			switch end - start {
			case 1800:
				d.grains[HalfHour] = true
			case 86400:
				d.grains[Daily] = true
			default:
				d.grains[Mixed] = true
			}
		}
	}
	if err := checkPhoneID(p.phone); err != "" {
		d.bad(row, p.phoneField, "%s", err)
	}
	country := strings.ToUpper(p.country)
	if !pricing.ValidCountry(country) {
		d.bad(row, "country", "want an ISO 3166-1 alpha-2 code, got %q", clip(p.country))
	}
	category := strings.ToLower(p.category)
	if err := checkName(category); err != "" {
		d.bad(row, "pricing_category", "%s", err)
	}
	ptype := strings.ToLower(p.ptype)
	if ptype == "" {
		ptype = "regular"
	}
	if err := checkName(ptype); err != "" {
		d.bad(row, "pricing_type", "%s", err)
	}
	volume, err := strconv.ParseInt(p.volume, 10, 64)
	if err != nil || volume < 0 || volume > MaxVolume {
		d.bad(row, "volume", "want a whole number of messages from 0 to %d, got %q", int64(MaxVolume), clip(p.volume))
	}
	cost, err := decimal.NewFromString(p.cost)
	if err != nil {
		d.bad(row, "cost", "want a decimal amount, got %q", clip(p.cost))
	} else if cost.IsNegative() || cost.GreaterThan(decimal.New(1, 15)) {
		d.bad(row, "cost", "want an amount from 0 to 10^15, got %s", clip(p.cost))
	}
	if len(d.errs) != before {
		return
	}
	cost = cost.RoundBank(CostDecimals)
	d.out.DataPoints++
	d.out.Volume += volume
	d.out.Cost = d.out.Cost.Add(cost)
	k := rowKey{p.phone, dayStart, country, category, ptype}
	if i, ok := d.index[k]; ok {
		r := &d.out.Rows[i]
		r.Volume += volume
		r.Cost = r.Cost.Add(cost)
		return
	}
	d.index[k] = len(d.out.Rows)
	// A report repeats a few countries, categories and types and each
	// phone number on every day: one string of each is kept.
	d.out.Rows = append(d.out.Rows, UpstreamRow{PhoneNumberID: d.intern(p.phone), Day: time.Unix(dayStart, 0).UTC(), Country: d.intern(country),
		Category: d.intern(category), PricingType: d.intern(ptype), Volume: volume, Cost: cost})
}

func (d *decoder) intern(s string) string {
	if v, ok := d.strs[s]; ok {
		return v
	}
	d.strs[s] = s
	return s
}

// done returns the parsed report, or every problem found.
func (d *decoder) done(what string) (*Parsed, error) {
	if len(d.errs) > 0 {
		more := ""
		if len(d.errs) == maxErrors {
			more = fmt.Sprintf(" (the first %d)", maxErrors)
		}
		return nil, &postage.Error{Code: postage.EINVALID, Message: fmt.Sprintf("%s: %d problems%s, nothing imported", what, len(d.errs), more), Detail: d.errs}
	}
	switch len(d.grains) {
	case 0:
		if d.out.DataPoints > 0 {
			d.out.Granularity = Daily
		}
	case 1:
		for g := range d.grains {
			d.out.Granularity = g
		}
	default:
		d.out.Granularity = Mixed
	}
	return &d.out, nil
}

// Decode reads an upstream report of month m in format (FormatCSV or
// FormatJSON). A file with any bad data point is refused whole, with
// every problem (pricing.RowError: row is the CSV line or the data
// point's 1-based position, column the field): a half-imported report
// would show differences that are not there.
func Decode(r io.Reader, format string, m pricing.Month) (*Parsed, error) {
	if !m.Valid() {
		return nil, postage.Errorf(postage.EINVALID, "month: want YYYY-MM")
	}
	switch format {
	case FormatCSV:
		return decodeCSV(r, m)
	case FormatJSON:
		return decodeJSON(r, m)
	}
	return nil, postage.Errorf(postage.EINVALID, "format %q: want csv or json", format)
}

// csvColumns are the columns a CSV report may have, named as the
// pricing analytics fields.
var csvColumns = []string{"start", "end", "phone_number_id", "phone_number", "country", "pricing_category", "pricing_type", "tier", "volume", "cost"}

func decodeCSV(r io.Reader, m pricing.Month) (*Parsed, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte{0xEF, 0xBB, 0xBF}) {
		_, _ = br.Discard(3) // a spreadsheet's byte-order mark
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	d := newDecoder(m)
	header, err := cr.Read()
	if err == io.EOF {
		return nil, postage.Errorf(postage.EINVALID, "the file is empty: want a header row (%s)", strings.Join(csvColumns, ","))
	} else if err != nil {
		return nil, postage.Errorf(postage.EINVALID, "line 1: %s", csvError(err))
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if _, dup := col[h]; dup && h != "" {
			d.bad(1, h, "column %s appears twice", h)
		}
		col[h] = i
	}
	phoneCol := "phone_number_id"
	if _, ok := col[phoneCol]; !ok {
		phoneCol = "phone_number"
	}
	for _, need := range []string{"start", phoneCol, "country", "pricing_category", "volume", "cost"} {
		if _, ok := col[need]; !ok {
			d.bad(1, need, "missing column %s (columns: %s)", need, strings.Join(csvColumns, ","))
		}
	}
	if len(d.errs) > 0 {
		return d.done("header")
	}
	get := func(rec []string, name string) string {
		i, ok := col[name]
		if !ok || i >= len(rec) {
			return ""
		}
		return strings.TrimSpace(rec[i])
	}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.Line
			}
			d.bad(line, "", "%s", csvError(err))
			if !errors.As(err, &pe) || pe.Err != csv.ErrFieldCount {
				break // the reader cannot go on after a quoting error
			}
			continue
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if !textOK(rec) {
			d.bad(line, "", "not UTF-8 text, or holds control characters")
			continue
		}
		d.add(line, point{start: get(rec, "start"), end: get(rec, "end"), phone: get(rec, phoneCol), phoneField: phoneCol,
			country: get(rec, "country"), category: get(rec, "pricing_category"), ptype: get(rec, "pricing_type"),
			volume: get(rec, "volume"), cost: get(rec, "cost")})
	}
	return d.done("upstream report")
}

func csvError(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// decodeJSON reads the pricing analytics answer
// ({"pricing_analytics":{"data":[{"data_points":[…]}]}, "id": …}), its
// inner object ({"data":[{"data_points":[…]}]}), one data object
// ({"data_points":[…]}) or a bare array of data points, one data point at
// a time.
func decodeJSON(r io.Reader, m pricing.Month) (*Parsed, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	dec.UseNumber()
	d := newDecoder(m)
	n := 0
	var walk func(depth int, path string) error
	points := func() error {
		for dec.More() {
			n++
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return err
			}
			var dp dataPoint
			if err := json.Unmarshal(raw, &dp); err != nil || len(raw) == 0 || raw[0] != '{' {
				d.bad(n, "", "a data point must be an object")
				continue
			}
			var p point
			var errs []string
			for _, f := range []struct {
				name string
				raw  json.RawMessage
				dst  *string
			}{
				{"start", dp.Start, &p.start}, {"end", dp.End, &p.end}, {"country", dp.Country, &p.country},
				{"pricing_category", dp.PricingCategory, &p.category}, {"pricing_type", dp.PricingType, &p.ptype},
				{"volume", dp.Volume, &p.volume}, {"cost", dp.Cost, &p.cost},
			} {
				if s, err := scalar(f.raw); err != "" {
					errs = append(errs, f.name)
					d.bad(n, f.name, "%s", err)
				} else {
					*f.dst = s
				}
			}
			p.phoneField = "phone_number_id"
			phone := dp.PhoneNumberID
			if len(phone) == 0 {
				p.phoneField, phone = "phone_number", dp.PhoneNumber
			}
			if s, err := scalar(phone); err != "" {
				errs = append(errs, p.phoneField)
				d.bad(n, p.phoneField, "%s", err)
			} else {
				p.phone = s
			}
			if len(errs) == 0 {
				d.add(n, p)
			}
		}
		return nil
	}
	expectArray := func() error {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		if t != json.Delim('[') {
			return fmt.Errorf("want an array")
		}
		return nil
	}
	closeArray := func() error {
		_, err := dec.Token()
		return err
	}
	// walk reads an object whose keys lead to data points.
	walk = func(depth int, path string) error {
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := t.(string)
			switch {
			case key == "pricing_analytics" && depth == 0:
				if t, err := dec.Token(); err != nil || t != json.Delim('{') {
					return fmt.Errorf("pricing_analytics: want an object")
				}
				if err := walk(1, "pricing_analytics"); err != nil {
					return err
				}
			case key == "data" && depth <= 1:
				if err := expectArray(); err != nil {
					return fmt.Errorf("%s: %w", strings.TrimPrefix(path+".data", "."), err)
				}
				for dec.More() {
					if t, err := dec.Token(); err != nil || t != json.Delim('{') {
						return fmt.Errorf("data: want objects")
					}
					if err := walk(2, "data[]"); err != nil {
						return err
					}
				}
				if err := closeArray(); err != nil {
					return err
				}
			case key == "data_points":
				if err := expectArray(); err != nil {
					return fmt.Errorf("data_points: %w", err)
				}
				if err := points(); err != nil {
					return err
				}
				if err := closeArray(); err != nil {
					return err
				}
			default:
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					return err
				}
			}
		}
		_, err := dec.Token() // the object's closing brace
		return err
	}
	t, err := dec.Token()
	switch {
	case err == io.EOF:
		return nil, postage.Errorf(postage.EINVALID, "the file is empty: want the pricing analytics answer (JSON)")
	case err != nil:
		return nil, postage.Errorf(postage.EINVALID, "not JSON: %s", err)
	case t == json.Delim('['):
		err = points()
		if err == nil {
			err = closeArray()
		}
	case t == json.Delim('{'):
		err = walk(0, "")
	default:
		err = fmt.Errorf("want an object or an array")
	}
	if err == nil {
		if _, e := dec.Token(); e != io.EOF {
			err = fmt.Errorf("more after the end of the document")
		}
	}
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, postage.Errorf(postage.EINVALID, "not JSON at byte %d: %s", se.Offset, se.Error())
		}
		return nil, postage.Errorf(postage.EINVALID, "not a pricing analytics answer: %s", err)
	}
	return d.done("upstream report")
}

// scalar returns a JSON string's or number's text ("" for absent or
// null), or why it is neither.
func scalar(raw json.RawMessage) (string, string) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", ""
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", "not a valid string"
		}
		if !textOK([]string{s}) || !validJSONString(raw) {
			return "", "not UTF-8 text, or holds control characters"
		}
		return strings.TrimSpace(s), ""
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), ""
	}
	return "", "want a string or a number"
}

// validJSONString reports whether a JSON string holds no escaped lone
// surrogate and no bytes that are not UTF-8 (encoding/json would turn
// either into U+FFFD).
func validJSONString(raw json.RawMessage) bool {
	if !utf8.Valid(raw) {
		return false
	}
	for i := 0; i+5 < len(raw); i++ {
		if raw[i] == '\\' {
			if raw[i+1] == 'u' {
				v, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 16)
				if err == nil && v >= 0xD800 && v <= 0xDFFF {
					return false // any surrogate: none of these fields needs one
				}
			}
			i++
		}
	}
	return true
}

// textOK reports whether every field is UTF-8 without control characters.
func textOK(fields []string) bool {
	for _, f := range fields {
		if !utf8.ValidString(f) {
			return false
		}
		for _, r := range f {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
				return false
			}
		}
	}
	return true
}

// parseStart reads Unix seconds, a date (midnight UTC) or an RFC 3339 time.
func parseStart(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, n >= 0 && n < 1<<40
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.Unix(), true
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.Unix(), true
	}
	return 0, false
}

// checkPhoneID checks a phone-number id: digits, 1-32 (as billing's map).
func checkPhoneID(s string) string {
	if s == "" {
		return "missing"
	}
	if len(s) > 32 {
		return "at most 32 digits"
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return fmt.Sprintf("want the phone number id's digits, got %q", clip(s))
		}
	}
	return ""
}

// checkName checks a category or pricing type: 1-64 of a-z, 0-9 and _.
func checkName(s string) string {
	if s == "" {
		return "missing"
	}
	if len(s) > 64 {
		return "at most 64 characters"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Sprintf("want letters, digits and _, got %q", clip(s))
		}
	}
	return ""
}

// clip shortens a bad value for a message.
func clip(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	if !utf8.ValidString(s) {
		return strings.ToValidUTF8(s, "?")
	}
	return s
}
