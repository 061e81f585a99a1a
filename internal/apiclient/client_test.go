package apiclient_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"postage/internal/apiclient"
	"postage/internal/apptest"
	"postage/internal/auth"
	"postage/internal/config"
	"postage/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// clientFor is the generated client with token as its bearer key.
func clientFor(t *testing.T, url, token string) *apiclient.ClientWithResponses {
	t.Helper()
	c, err := apiclient.NewClientWithResponses(url, apiclient.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ptr[T any](v T) *T { return &v }

// The generated client drives a real postage (PostgreSQL and ClickHouse)
// through a customer's life: keys, customers and pagination, ingest with
// per-event answers, usage, a quote and the month-to-date bill; problems
// decode into the documented Problem with its code. Every answer is also
// checked against the document by apptest.Serve.
func TestGeneratedClientAgainstTheApp(t *testing.T) {
	a := apptest.Open(t, func(c *config.Config) {
		c.Ingest.FlushInterval = config.Duration{Duration: time.Millisecond}
	})
	keys := apptest.Keys(t, a, "")
	url := apptest.Serve(t, a)
	ctx := context.Background()
	admin, finance, ingest := clientFor(t, url, keys[auth.RoleAdmin]), clientFor(t, url, keys[auth.RoleFinance]), clientFor(t, url, keys[auth.RoleIngest])

	me, err := finance.GetMeWithResponse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if me.JSON200 == nil || me.JSON200.Role != apiclient.AuthRole("finance") {
		t.Fatalf("me: %d %s", me.StatusCode(), me.Body)
	}

	// Customers, a conflict, and pages of one.
	for _, id := range []string{"acme", "globex"} {
		r, err := finance.PostCustomersWithResponse(ctx, apiclient.BillingCustomer{Id: id, Name: "Customer " + id, Currency: ptr("USD"), Country: ptr("DE")})
		if err != nil {
			t.Fatal(err)
		}
		if r.JSON201 == nil || r.JSON201.Id != id || r.JSON201.CreatedAt == nil {
			t.Fatalf("create %s: %d %s", id, r.StatusCode(), r.Body)
		}
	}
	dup, err := finance.PostCustomersWithResponse(ctx, apiclient.BillingCustomer{Id: "acme", Name: "again", Currency: ptr("USD")})
	if err != nil {
		t.Fatal(err)
	}
	if dup.ApplicationproblemJSON409 == nil || dup.ApplicationproblemJSON409.Code != apiclient.ProblemCode("conflict") {
		t.Fatalf("duplicate customer: %d %s", dup.StatusCode(), dup.Body)
	}
	var ids []string
	params := &apiclient.GetCustomersParams{Limit: ptr(1)}
	for range 5 {
		page, err := finance.GetCustomersWithResponse(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if page.JSON200 == nil {
			t.Fatalf("list: %d %s", page.StatusCode(), page.Body)
		}
		for _, c := range page.JSON200.Data {
			ids = append(ids, c.Id)
		}
		if page.JSON200.NextCursor == "" {
			break
		}
		params.Cursor = &page.JSON200.NextCursor
	}
	if got, want := len(ids), 2; got != want || ids[0] != "acme" || ids[1] != "globex" {
		t.Fatalf("pages: got %v, want acme, globex", ids)
	}

	// A customer key sees only its own customer.
	created, err := admin.PostApikeysWithResponse(ctx, apiclient.AuthNewKey{Name: "acme app", Role: "customer", CustomerId: ptr("acme")})
	if err != nil {
		t.Fatal(err)
	}
	if created.JSON201 == nil || created.JSON201.Token == "" {
		t.Fatalf("create key: %d %s", created.StatusCode(), created.Body)
	}
	acme := clientFor(t, url, created.JSON201.Token)
	other, err := acme.GetCustomersIdWithResponse(ctx, "globex")
	if err != nil {
		t.Fatal(err)
	}
	if other.ApplicationproblemJSON404 == nil || other.ApplicationproblemJSON404.Code != "not_found" {
		t.Fatalf("another customer: %d %s", other.StatusCode(), other.Body)
	}

	// A batch answers per event; a single rejected event is a problem
	// whose errors hold the event's result.
	at := a.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	event := func(id, country, category string, qty int) apiclient.CloudEvent {
		var q apiclient.CloudEventData_Quantity // a number or a string that holds one
		if err := q.FromCloudEventDataQuantity0(qty); err != nil {
			t.Fatal(err)
		}
		return apiclient.CloudEvent{Specversion: "1.0", Type: "message.sent", Source: ptr("client-test"), Id: id, Subject: "acme", Time: at,
			Data: apiclient.CloudEventData{Country: ptr(country), Category: category, Quantity: &q}}
	}
	batch, err := ingest.PostEventsWithApplicationCloudeventsBatchPlusJSONBodyWithResponse(ctx, nil,
		apiclient.PostEventsApplicationCloudeventsBatchPlusJSONRequestBody{event("e1", "DE", "marketing", 3), event("e2", "FR", "utility", 2), event("e3", "DE", "no-such-category", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if batch.JSON200 == nil || batch.JSON200.Accepted != 2 || batch.JSON200.Rejected != 1 {
		t.Fatalf("batch: %d %s", batch.StatusCode(), batch.Body)
	}
	if r := batch.JSON200.Results[2]; r.Status != "rejected" || r.Field == nil || *r.Field != "data.category" {
		t.Errorf("rejected event's result: %+v", r)
	}
	single, err := ingest.PostEventsWithApplicationCloudeventsPlusJSONBodyWithResponse(ctx, nil, event("e4", "DE", "no-such-category", 1))
	if err != nil {
		t.Fatal(err)
	}
	if single.ApplicationproblemJSON400 == nil || single.ApplicationproblemJSON400.Errors == nil || len(*single.ApplicationproblemJSON400.Errors) != 1 {
		t.Fatalf("single rejected event: %d %s", single.StatusCode(), single.Body)
	}
	res, err := (*single.ApplicationproblemJSON400.Errors)[0].AsMeteringResult()
	if err != nil || res.Status != "rejected" || res.Reason == nil || *res.Reason != "unknown_category" {
		t.Errorf("single rejected event's result: %+v %v", res, err)
	}

	// Usage counts what was accepted.
	usage, err := acme.GetCustomersIdUsageWithResponse(ctx, "acme", &apiclient.GetCustomersIdUsageParams{
		From: ptr(at.Truncate(time.Hour).Format(time.RFC3339)), To: ptr(at.Truncate(time.Hour).Add(time.Hour).Format(time.RFC3339)),
		Window: ptr(apiclient.MeteringWindow("hour")), GroupBy: ptr("category"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if usage.JSON200 == nil {
		t.Fatalf("usage: %d %s", usage.StatusCode(), usage.Body)
	}
	got := map[string]int64{}
	for _, r := range usage.JSON200.Data {
		got[*r.Category] += r.Quantity
	}
	if got["marketing"] != 3 || got["utility"] != 2 || len(got) != 2 {
		t.Errorf("usage by category: got %v, want marketing 3, utility 2", got)
	}

	// A quote and the month-to-date bill carry money as decimal strings
	// with their currency.
	quote, err := clientFor(t, url, keys[auth.RoleSales]).PostQuotesWithResponse(ctx, nil, apiclient.QuoteRequest{
		Items: []apiclient.PricingUsage{{Country: "DE", Category: "marketing", Quantity: 1000}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if quote.JSON200 == nil || quote.JSON200.Currency == "" || quote.JSON200.Total == "" || len(quote.JSON200.Lines) != 1 {
		t.Fatalf("quote: %d %s", quote.StatusCode(), quote.Body)
	}
	bill, err := acme.GetCustomersIdInvoicesUpcomingWithResponse(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if bill.JSON200 == nil || bill.JSON200.Status != "upcoming" || bill.JSON200.Currency != "USD" || bill.JSON200.Total == "" || bill.JSON200.Id != nil {
		t.Fatalf("upcoming invoice: %d %s", bill.StatusCode(), bill.Body)
	}
}
