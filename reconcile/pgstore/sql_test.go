package pgstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/internal/testenv"
	"postage/pricing"
	"postage/reconcile"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestSQLText(t *testing.T) {
	oct := pricing.MustParseMonth("2026-10")
	tests := []struct {
		name  string
		q     string
		args  []any
		wants []string
		nargs int
	}{
		{"latest", first(latestReportSQL(oct)), second(latestReportSQL(oct)), []string{"WHERE month = $1 ORDER BY id DESC LIMIT 1"}, 1},
		{"rows", first(upstreamRowsSQL(7)), second(upstreamRowsSQL(7)), []string{"LEFT JOIN phone_numbers p", "'unknown:' || u.phone_number_id", "ORDER BY customer"}, 1},
		{"all differences", first(differencesSQL(7, reconcile.DiffFilter{})), second(differencesSQL(7, reconcile.DiffFilter{})), []string{"report_id = $1 AND seq > $2 ORDER BY seq"}, 2},
		{"filtered page", first(differencesSQL(7, reconcile.DiffFilter{Cause: reconcile.CausePrice, Customer: "a", After: 3, Limit: 10})),
			second(differencesSQL(7, reconcile.DiffFilter{Cause: reconcile.CausePrice, Customer: "a", After: 3, Limit: 10})),
			[]string{"AND cause = $3 AND customer_id = $4 ORDER BY seq LIMIT $5"}, 5},
		{"accept", first(insertAcceptanceSQL(7, reconcile.Acceptance{})), second(insertAcceptanceSQL(7, reconcile.Acceptance{})), []string{"INSERT INTO reconciliation_acceptances"}, 6},
		{"acceptances", first(acceptancesSQL(7)), second(acceptancesSQL(7)), []string{"WHERE report_id = $1 ORDER BY id"}, 1},
	}
	for _, tt := range tests {
		for _, w := range tt.wants {
			if !strings.Contains(tt.q, w) {
				t.Errorf("%s: %q lacks %q", tt.name, tt.q, w)
			}
		}
		if len(tt.args) != tt.nargs {
			t.Errorf("%s: %d args, want %d", tt.name, len(tt.args), tt.nargs)
		}
	}
}

func first(q string, _ []any) string { return q }
func second(_ string, a []any) []any { return a }

// Reports keep their rows exactly; acceptances are never changed; a month
// without a report is not found.
func TestStore(t *testing.T) {
	env := testenv.New(t)
	s := New(env.PG)
	ctx := context.Background()
	oct := pricing.MustParseMonth("2026-10")
	if _, err := s.LatestReport(ctx, oct); postage.ErrorCode(err) != postage.ENOTFOUND {
		t.Errorf("no report: %v", err)
	}
	day := time.Date(2026, 10, 3, 0, 0, 0, 0, time.UTC)
	rows := []reconcile.UpstreamRow{{PhoneNumberID: "1", Day: day, Country: "IN", Category: "marketing", PricingType: "regular", Volume: 3, Cost: decimal.RequireFromString("0.035400")}}
	r, err := s.CreateReport(ctx, reconcile.Report{Month: oct, Format: "csv", Currency: "USD", Cost: decimal.RequireFromString("0.0354"), ImportedAt: day, ImportedBy: "f"}, rows)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.LatestReport(ctx, oct)
	if err != nil || got.ID != r.ID || !got.Cost.Equal(r.Cost) || !got.ImportedAt.Equal(day) {
		t.Fatalf("latest = %+v, %v", got, err)
	}
	var n int
	err = s.EachUpstreamRow(ctx, r.ID, func(customer string, mapped bool, u *reconcile.UpstreamRow) error {
		n++
		if customer != "unknown:1" || mapped || !u.Day.Equal(day) || !u.Cost.Equal(rows[0].Cost) || u.Volume != 3 {
			t.Errorf("row %s %v %+v", customer, mapped, u)
		}
		return nil
	})
	if err != nil || n != 1 {
		t.Fatal(n, err)
	}
	if err := s.Accept(ctx, r.ID, reconcile.Acceptance{By: "ana", At: day, Reason: "ok", GrossMessages: 3, GrossAmount: decimal.RequireFromString("0.5")}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.PG.Exec(ctx, "UPDATE reconciliation_acceptances SET reason = 'changed'"); err == nil || !strings.Contains(err.Error(), "never changed") {
		t.Errorf("an acceptance was changed: %v", err)
	}
	acc, err := s.Acceptances(ctx, r.ID)
	if err != nil || len(acc) != 1 || acc[0].Reason != "ok" || !acc[0].GrossAmount.Equal(decimal.RequireFromString("0.5")) {
		t.Errorf("acceptances = %+v, %v", acc, err)
	}
	if _, err := s.Result(ctx, r.ID); postage.ErrorCode(err) != postage.ENOTFOUND {
		t.Errorf("no result yet: %v", err)
	}
}
