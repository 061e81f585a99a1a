package pricing

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func TestMonth(t *testing.T) {
	m, err := ParseMonth("2026-10")
	if err != nil || m != (Month{2026, time.October}) || m.String() != "2026-10" {
		t.Fatalf("%v %v", m, err)
	}
	for _, bad := range []string{"", "2026-13", "2026-1", "26-10", "2026-10-01", "2026/10"} {
		if _, err := ParseMonth(bad); err == nil {
			t.Errorf("ParseMonth(%q) accepted", bad)
		}
	}
	tests := []struct {
		m, next, prev string
	}{{"2026-12", "2027-01", "2026-11"}, {"2026-01", "2026-02", "2025-12"}, {"2000-06", "2000-07", "2000-05"}}
	for _, tt := range tests {
		m := MustParseMonth(tt.m)
		if got := m.Next().String(); got != tt.next {
			t.Errorf("%s.Next() = %s, want %s", tt.m, got, tt.next)
		}
		if got := m.Prev().String(); got != tt.prev {
			t.Errorf("%s.Prev() = %s, want %s", tt.m, got, tt.prev)
		}
		if !m.End().Equal(m.Next().Start()) || m.Start().Day() != 1 || m.Start().Location() != time.UTC {
			t.Errorf("%s: start %v end %v", tt.m, m.Start(), m.End())
		}
		if MonthOf(m.End().Add(-time.Nanosecond)) != m || MonthOf(m.Start()) != m {
			t.Errorf("%s: MonthOf at the edges", tt.m)
		}
	}
	// MonthOf uses UTC.
	if got := MonthOf(time.Date(2026, 3, 1, 0, 30, 0, 0, time.FixedZone("CET", 3600))); got.String() != "2026-02" {
		t.Errorf("MonthOf CET = %s", got)
	}
	a, b := MustParseMonth("2026-01"), MustParseMonth("2026-02")
	if !a.Before(b) || !b.After(a) || a.Compare(a) != 0 || a.Compare(b) != -1 {
		t.Error("ordering")
	}
	var v struct {
		M Month `json:"m"`
	}
	if err := json.Unmarshal([]byte(`{"m":"2026-07"}`), &v); err != nil || v.M.String() != "2026-07" {
		t.Fatalf("%v %v", v, err)
	}
	if bs, _ := json.Marshal(v); string(bs) != `{"m":"2026-07"}` {
		t.Fatalf("%s", bs)
	}
	if (Month{}).String() != "" || !(Month{}).IsZero() {
		t.Error("zero")
	}
}

func TestMonthStringMatchesFmt(t *testing.T) {
	for _, y := range []int{-1, 0, 7, 99, 999, 2026, 9999, 10000} {
		for mo := -1; mo <= 13; mo++ {
			m := Month{Year: y, Month: time.Month(mo)}
			if m.IsZero() {
				continue
			}
			if got, want := m.String(), fmt.Sprintf("%04d-%02d", y, mo); got != want {
				t.Errorf("Month{%d, %d}.String() = %q, want %q", y, mo, got, want)
			}
		}
	}
}
