package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"sync"
	"testing"
	"time"

	"postage/billing"
	"postage/internal/apptest"
	"postage/internal/auth"
	"postage/metering"
	"postage/pricing"
)

// Every screen that shows usage reads it through metering.Usage, which
// answers from the sealed rollups plus the raw tail. This test drives the
// whole app over a month's edge — events ingested over days, late events,
// re-sends and conflicts, the sealer run at random moments — and compares
// what each screen answers with what it answers when the store reads the
// raw events alone (CHStore.RawOnly), which is the exact count because the
// raw table holds every event once (checked with GROUP BY customer_id, id):
// the usage API, the usage summary, the month-to-date bill, invoice runs
// (with late usage of a closed month), the reports and a simulation.
// metering's differential test checks the reads themselves against an
// exact count computed in Go.
// timing matches what differs between two computations of one answer: how
// long it took.
var timing = regexp.MustCompile(`"elapsed_ms":[0-9]+,?`)

func TestEveryScreenReadsExactUsage(t *testing.T) {
	ctx := context.Background()
	a := apptest.Open(t, nil)
	var mu sync.Mutex
	now := time.Date(2026, 10, 31, 18, 0, 0, 0, time.UTC)
	a.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	a.Billing.CutoffLag = time.Minute
	for _, c := range []billing.Customer{{ID: "acme", Name: "Acme", Currency: "USD", Country: "DE"}, {ID: "globex", Name: "Globex", Currency: "USD", Country: "IN"}} {
		if _, err := a.Customers.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	keys := apptest.Keys(t, a, "")
	base := apptest.Serve(t, a)
	get := func(method, path string, body string) []byte {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = bytes.NewBufferString(body)
		}
		req, _ := http.NewRequestWithContext(ctx, method, base+path, rd)
		req.Header.Set("Authorization", "Bearer "+keys[auth.RoleAdmin])
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return b
	}

	rng := rand.New(rand.NewPCG(5, 8))
	customers := []string{"acme", "globex", "unknown:7"}
	countries := []string{"DE", "IN", "US", "BR"}
	categories := []string{"marketing", "utility", "authentication", "service"}
	var sent []metering.Event
	n := 0
	ingest := func() {
		t.Helper()
		var evs []metering.Event
		for range 1 + rng.IntN(30) {
			if len(sent) > 0 && rng.IntN(8) == 0 {
				e := sent[rng.IntN(len(sent))] // a re-send, or (changed) a conflict
				if rng.IntN(2) == 0 {
					e.Quantity++
					e.PayloadHash = metering.HashPayload(e.Time, true, e.Country, e.Category, e.Quantity)
				}
				evs = append(evs, e)
				continue
			}
			n++
			tm := a.Now().Add(-time.Duration(rng.Int64N(int64(3 * time.Hour))))
			if rng.IntN(8) == 0 { // late, up to 20 days
				tm = a.Now().Add(-time.Duration(rng.Int64N(int64(20 * 24 * time.Hour))))
			}
			tm = tm.Truncate(time.Second)
			e := metering.Event{CustomerID: customers[rng.IntN(len(customers))], ID: fmt.Sprintf("m%d", n), Time: tm,
				Country: countries[rng.IntN(len(countries))], Category: categories[rng.IntN(len(categories))], Quantity: uint64(1 + rng.IntN(3))}
			if rng.IntN(6) == 0 {
				e.PricingType = metering.PricingFreeCustomerService
			}
			e.PayloadHash = metering.HashPayload(e.Time, true, e.Country, e.Category, e.Quantity)
			evs = append(evs, e)
			sent = append(sent, e)
		}
		if _, err := a.Ingester.Submit(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	seal := func() {
		t.Helper()
		for {
			res, err := a.Sealer.SealOnce(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !res.More {
				return
			}
		}
	}
	// compare asks fn for its answer with the rollups and with the raw
	// events alone, which must be the same.
	compare := func(what string, fn func() []byte) {
		t.Helper()
		a.Events.RawOnly(false)
		got := timing.ReplaceAll(fn(), nil)
		a.Events.RawOnly(true)
		want := timing.ReplaceAll(fn(), nil)
		a.Events.RawOnly(false)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s at %s:\n with rollups %s\n   raw only   %s", what, a.Now().Format(time.RFC3339), got, want)
		}
	}
	screens := func() {
		t.Helper()
		var dup uint64
		if err := a.CH.QueryRow(ctx, "SELECT count() FROM (SELECT customer_id, id FROM events GROUP BY customer_id, id HAVING count() > 1)").Scan(&dup); err != nil || dup != 0 {
			t.Fatalf("events stored twice: %d, %v", dup, err)
		}
		day := a.Now().Truncate(24 * time.Hour)
		month := pricing.MonthOf(a.Now())
		for _, c := range customers[:2] {
			for _, w := range []string{"hour", "day", "month"} {
				q := url.Values{"from": {day.AddDate(0, 0, -25).Add(5 * time.Hour).Format(time.RFC3339)}, "to": {day.AddDate(0, 0, 2).Format(time.RFC3339)}, "window": {w}, "group_by": {"country,category"}}
				compare("usage of "+c+" by "+w, func() []byte { return get("GET", "/api/v1/customers/"+c+"/usage?"+q.Encode(), "") })
			}
			compare("month-to-date bill of "+c, func() []byte { return get("GET", "/api/v1/customers/"+c+"/invoices/upcoming", "") })
		}
		for _, p := range []pricing.Month{month.Prev(), month} {
			compare("usage summary of "+p.String(), func() []byte {
				return get("GET", "/api/v1/usage/summary?period="+p.String()+"&group_by=customer,country,category", "")
			})
		}
		span := "from=" + month.Prev().Prev().String() + "&to=" + month.String()
		compare("revenue report", func() []byte { return get("GET", "/api/v1/reports/revenue?"+span+"&group_by=category", "") })
		compare("top customers", func() []byte { return get("GET", "/api/v1/reports/top-customers?"+span, "") })
		compare("unbilled usage report", func() []byte { return get("GET", "/api/v1/reports/unbilled?"+span, "") })
		compare("forecast", func() []byte { return get("GET", "/api/v1/reports/forecast", "") })
		for _, w := range []string{"day", "month"} {
			compare("usage trend by "+w, func() []byte {
				return get("GET", "/api/v1/reports/usage?window="+w+"&group_by=country&from="+day.AddDate(0, 0, -40).Format(time.DateOnly)+"&to="+day.AddDate(0, 0, 1).Format(time.DateOnly), "")
			})
		}
		compare("simulation", func() []byte {
			return get("POST", "/api/v1/simulations", `{"card_id":"`+pricing.MetaCardID+`","from":"`+month.Prev().Prev().String()+`","to":"`+month.String()+`","breakdown":true}`)
		})
	}
	// runPeriod runs an invoice run of p with the rollups, then again
	// reading raw events only: the second finds every draft unchanged.
	runPeriod := func(p pricing.Month) {
		t.Helper()
		first, err := a.Billing.Run(ctx, billing.RunRequest{Period: p, Trigger: billing.TriggerManual, Wait: true})
		if err != nil {
			t.Fatal(err)
		}
		before := get("GET", "/api/v1/invoices?period="+p.String(), "")
		a.Events.RawOnly(true)
		again, err := a.Billing.Run(ctx, billing.RunRequest{Period: p, Trigger: billing.TriggerManual, Wait: true})
		a.Events.RawOnly(false)
		if err != nil {
			t.Fatal(err)
		}
		after := get("GET", "/api/v1/invoices?period="+p.String(), "")
		if again.Created != 0 || again.Refreshed != 0 || !bytes.Equal(before, after) {
			t.Fatalf("run of %s: with rollups %+v, again from raw events %+v\n%s\n%s", p, first, again, before, after)
		}
		if first.Customers == 0 {
			t.Fatalf("run of %s billed nobody: %+v", p, first)
		}
	}

	// 31 Oct 18:00 to 1 Nov 12:00: October ends.
	for step := 0; step < 18; step++ {
		ingest()
		if rng.IntN(3) == 0 {
			seal()
		}
		advance(time.Duration(30+rng.IntN(60)) * time.Minute)
	}
	seal()
	screens()
	runPeriod(pricing.MustParseMonth("2026-10"))
	// October's drafts are approved; late October events keep coming and
	// go on November's invoices as adjustments.
	var drafts struct{ Data []struct{ ID string } }
	if err := json.Unmarshal(get("GET", "/api/v1/invoices?period=2026-10", ""), &drafts); err != nil || len(drafts.Data) == 0 {
		t.Fatalf("October's drafts: %+v %v", drafts, err)
	}
	for _, d := range drafts.Data {
		get("POST", "/api/v1/invoices/"+d.ID+"/approve", "{}")
	}
	for step := 0; step < 40; step++ {
		ingest()
		if rng.IntN(3) == 0 {
			seal()
		}
		advance(time.Duration(30+rng.IntN(90)) * time.Minute)
		if step%10 == 9 {
			screens()
		}
	}
	// December: November is billed, with October's adjustments.
	mu.Lock()
	now = time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	mu.Unlock()
	ingest()
	seal()
	screens()
	runPeriod(pricing.MustParseMonth("2026-11"))
	adjusted := get("GET", "/api/v1/invoices?period=2026-11", "")
	if !bytes.Contains(adjusted, []byte(`"2026-10"`)) {
		t.Errorf("November's invoices carry no adjustment for October's late events: %s", adjusted)
	}
	// The rollups were used: October is sealed at every tier.
	var months uint64
	if err := a.CH.QueryRow(ctx, "SELECT count() FROM usage_seals WHERE tier = 3").Scan(&months); err != nil || months == 0 {
		t.Fatalf("no month sealed: %d %v", months, err)
	}
}
