package metering

import (
	"strings"
	"testing"
	"time"

	"postage"
)

func TestParseUsageQuery(t *testing.T) {
	now := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	q, err := ParseUsageQuery(UsageParams{Customer: "c1"}, now, 0)
	if err != nil || !q.From.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) || !q.To.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) || q.Window != Day || len(q.GroupBy) != 0 {
		t.Fatalf("defaults: %+v %v", q, err)
	}
	q, err = ParseUsageQuery(UsageParams{Customer: "c1", From: "2026-10-31T23:00:00+01:00", To: "2026-11-02", Window: "hour", GroupBy: "country, category,"}, now, 0)
	if err != nil || !q.From.Equal(time.Date(2026, 10, 31, 22, 0, 0, 0, time.UTC)) || q.From.Location() != time.UTC || q.Window != Hour || len(q.GroupBy) != 2 {
		t.Fatalf("explicit: %+v %v", q, err)
	}
	tests := []struct {
		p    UsageParams
		max  time.Duration
		want []string
	}{
		{UsageParams{From: "yesterday", Window: "week", GroupBy: "planet"}, 0, []string{`from: "yesterday"`, `window: "week"`, `group_by: "planet"`}},
		{UsageParams{From: "2026-10-02", To: "2026-10-01"}, 0, []string{"to must be after from"}},
		{UsageParams{From: "2026-01-01", To: "2026-12-01"}, 30 * 24 * time.Hour, []string{"longer than the maximum"}},
		// Whole hours only (UTC): an offset of half an hour makes any
		// local time a half hour.
		{UsageParams{From: "2026-10-31T23:59:59Z", To: "2026-11-01T05:00:00+05:30"}, 0, []string{
			"from 2026-10-31T23:59:59Z is not a whole hour (UTC): usage is counted per hour, use 2026-10-31T23:00:00Z",
			"to 2026-10-31T23:30:00Z is not a whole hour"}},
	}
	for _, tt := range tests {
		_, err := ParseUsageQuery(tt.p, now, tt.max)
		if postage.ErrorCode(err) != postage.EINVALID {
			t.Errorf("%+v: got %v, want invalid", tt.p, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(postage.ErrorMessage(err), w) {
				t.Errorf("%+v: %q lacks %q", tt.p, postage.ErrorMessage(err), w)
			}
		}
	}
}
