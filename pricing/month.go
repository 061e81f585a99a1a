package pricing

import (
	"fmt"
	"time"

	"postage"
)

// Month is a calendar month in UTC. Rate card versions take effect on the
// first of a month, tier volume is counted per month, and invoices cover one
// month, so every package that deals with billing periods uses this type.
// The zero Month means "no month" (for example a draft that was never
// activated); see IsZero.
type Month struct {
	Year  int
	Month time.Month
}

// ParseMonth parses "YYYY-MM" (for example "2026-10").
func ParseMonth(s string) (Month, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil || len(s) != 7 {
		return Month{}, postage.Errorf(postage.EINVALID, "month %q: want YYYY-MM", s)
	}
	return Month{Year: t.Year(), Month: t.Month()}, nil
}

// MustParseMonth is ParseMonth for constants in tests and seeds; it panics on a bad month.
func MustParseMonth(s string) Month {
	m, err := ParseMonth(s)
	if err != nil {
		panic(err)
	}
	return m
}

// MonthOf returns the UTC calendar month containing t.
func MonthOf(t time.Time) Month {
	t = t.UTC()
	return Month{Year: t.Year(), Month: t.Month()}
}

// String formats the month as "YYYY-MM"; the zero Month formats as "".
func (m Month) String() string {
	b, _ := m.AppendText(make([]byte, 0, 7))
	return string(b)
}

// AppendText appends String's form of m to b (encoding.TextAppender): invoice
// runs write the month of every line they encode.
func (m Month) AppendText(b []byte) ([]byte, error) {
	if m.IsZero() {
		return b, nil
	}
	if m.Year < 0 || m.Year > 9999 || m.Month < 1 || m.Month > 12 {
		return fmt.Appendf(b, "%04d-%02d", m.Year, int(m.Month)), nil
	}
	// Without fmt: invoice runs format tens of thousands of months.
	y, mo := m.Year, int(m.Month)
	return append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-', byte('0'+mo/10%10), byte('0'+mo%10)), nil
}

// IsZero reports whether m is the zero Month.
func (m Month) IsZero() bool { return m.Year == 0 && m.Month == 0 }

// Valid reports whether m is a real month (1..12 of a four-digit year).
func (m Month) Valid() bool {
	return m.Year >= 1 && m.Year <= 9999 && m.Month >= time.January && m.Month <= time.December
}

// Start returns the first instant of the month, 00:00 UTC on the 1st.
func (m Month) Start() time.Time {
	return time.Date(m.Year, m.Month, 1, 0, 0, 0, 0, time.UTC)
}

// End returns the first instant after the month (the Start of the next
// month): months are half-open intervals [Start, End).
func (m Month) End() time.Time { return m.Next().Start() }

// Next returns the following month.
func (m Month) Next() Month { return m.add(1) }

// Prev returns the preceding month.
func (m Month) Prev() Month { return m.add(-1) }

func (m Month) add(n int) Month {
	i := m.Year*12 + int(m.Month) - 1 + n
	return Month{Year: i / 12, Month: time.Month(i%12 + 1)}
}

// Compare returns -1, 0 or +1 as m is before, equal to or after o.
func (m Month) Compare(o Month) int {
	a, b := m.Year*12+int(m.Month), o.Year*12+int(o.Month)
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Before reports whether m is before o.
func (m Month) Before(o Month) bool { return m.Compare(o) < 0 }

// After reports whether m is after o.
func (m Month) After(o Month) bool { return m.Compare(o) > 0 }

// MarshalText encodes the month as "YYYY-MM" (JSON strings, CSV, SQL text).
func (m Month) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText decodes "YYYY-MM"; an empty text gives the zero Month.
func (m *Month) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*m = Month{}
		return nil
	}
	v, err := ParseMonth(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}
