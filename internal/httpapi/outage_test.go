package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"postage/internal/app"
	"postage/internal/auth"
	"postage/internal/config"
	"postage/internal/httpapi"
	"postage/internal/testenv"
	"postage/metering"
)

// outageApp wires postage on a private server pair that the test may take
// down, with the fixture's data.
func outageApp(t *testing.T) (*testenv.Private, *fixture, []httpapi.Route) {
	t.Helper()
	p := testenv.NewPrivate(t)
	cfg := config.Default()
	fixtureConfig(&cfg)
	// Short enough that a walk against a stalled database stays short,
	// long enough for the fixture's requests on a loaded machine.
	cfg.HTTP.RequestTimeout = config.Duration{Duration: 5 * time.Second}
	cfg.HTTP.WriteTimeout = config.Duration{Duration: 10 * time.Second}
	cfg.Postgres.DSN, cfg.ClickHouse.Addr, cfg.ClickHouse.Database = p.PGDSN, p.CHAddr, p.CHDatabase
	cfg.Ingest.IndexDir = t.TempDir() // the key index, not under the package's data/
	ctx := context.Background()
	a, err := app.Open(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	if err := a.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	f := fillFixture(t, a)
	f.FreshEvents = true // events that need ClickHouse to be stored
	return p, f, a.Server().Routes()
}

// queryNames lists a route's documented query parameters.
func queryNames(r httpapi.Route) []string {
	var names []string
	for _, q := range r.Query {
		names = append(names, q.Name)
	}
	return names
}

// walkOutage sends every route a valid request as admin and checks that
// no answer is a 5xx other than 503, that every 503 carries Retry-After and
// (except /readyz, which has its own body) a problem+json body with code
// unavailable. It returns the routes ("METHOD /path") that answered 503.
func walkOutage(t *testing.T, f *fixture, routes []httpapi.Route) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	for _, r := range routes {
		ctype, body, hdr, _ := f.sample(r.Method, r.Path)
		w := f.do(auth.RoleAdmin, r.Method, f.target(r.Path, queryNames(r)), ctype, body, hdr)
		name := r.Method + " " + r.Path
		switch {
		case w.Code == http.StatusServiceUnavailable:
			got[name] = true
			if w.Header().Get("Retry-After") == "" {
				t.Errorf("%s: 503 without Retry-After", name)
			}
			if r.Path != "/readyz" {
				checkProblem(t, name, w, "unavailable")
			}
		case w.Code >= 500:
			t.Errorf("%s: %d %s", name, w.Code, w.Body.Bytes())
		}
	}
	return got
}

// checkProblem checks that w is a problem+json answer with code.
func checkProblem(t *testing.T, name string, w *httptest.ResponseRecorder, code string) {
	t.Helper()
	var p httpapi.Problem
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: %d answer has Content-Type %q", name, w.Code, ct)
	} else if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Status != w.Code || p.RequestID == "" {
		t.Errorf("%s: bad problem body %s (%v)", name, w.Body.Bytes(), err)
	} else if code != "" && p.Code != code {
		t.Errorf("%s: code %q, want %q: %s", name, p.Code, code, w.Body.Bytes())
	}
}

// waitReady polls /readyz until both databases answer again (a restarted
// server takes a moment; this is a wait, not an assertion on time).
func waitReady(t *testing.T, f *fixture) {
	t.Helper()
	for i := 0; ; i++ {
		if w := f.do("", "GET", "/readyz", "", nil, nil); w.Code == http.StatusOK {
			return
		} else if i == 600 {
			t.Fatalf("not ready again: %d %s", w.Code, w.Body.Bytes())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// withoutPostgres are the routes that need no PostgreSQL for the
// fixture's requests: health, the caller's own identity, the document,
// the country names (compiled in), the meter (keys and phone numbers come from the cache) and a customer's usage
// (ClickHouse). Every other route answers 503 while PostgreSQL is away.
var withoutPostgres = []string{
	"GET /healthz", "GET /metrics", "GET /api/v1/openapi.json", "GET /api/v1/me", "GET /api/v1/countries",
	"POST /api/v1/events", "POST /api/v1/webhooks/whatsapp", "GET /api/v1/webhooks/whatsapp",
	"GET /api/v1/customers/:id/usage", "GET /api/v1/usage/summary", "GET /api/v1/reports/usage",
}

// needClickHouse are routes that read usage (defect: they answered 500
// while ClickHouse was down); each must answer 503 then.
var needClickHouse = []string{
	"GET /readyz", "POST /api/v1/events", "POST /api/v1/webhooks/whatsapp",
	"GET /api/v1/customers/:id/usage", "GET /api/v1/usage/summary", "GET /api/v1/customers/:id/invoices/upcoming",
	"GET /api/v1/reports/revenue", "GET /api/v1/reports/usage", "GET /api/v1/reports/top-customers",
	"GET /api/v1/reports/unbilled", "GET /api/v1/reports/forecast", "POST /api/v1/simulations", "POST /api/v1/invoice-runs",
}

// TestOutageWalk kills, then stops, each database and walks every route
// of the route table: every answer is 503 + Retry-After + problem+json or
// not an error of the server; never a 500. Between outages the databases
// come back and every route works again.
func TestOutageWalk(t *testing.T) {
	p, f, routes := outageApp(t)
	// The fixture's requests are valid: with both databases up each
	// reaches its stores and succeeds (or conflicts with the fixture's
	// state, e.g. editing an active version).
	for _, r := range routes {
		ctype, body, hdr, _ := f.sample(r.Method, r.Path)
		w := f.do(auth.RoleAdmin, r.Method, f.target(r.Path, queryNames(r)), ctype, body, hdr)
		if w.Code >= 300 && w.Code != http.StatusConflict {
			t.Errorf("%s %s with both databases up: %d %s", r.Method, r.Path, w.Code, w.Body.Bytes())
		}
	}
	downs := []struct {
		name  string
		down  func(testing.TB)
		up    func(testing.TB)
		check func(t *testing.T, got map[string]bool)
	}{
		{"postgres killed", p.KillPostgres, p.StartPostgres, checkPostgresDown(routes)},
		{"postgres stopped", p.StopPostgres, p.StartPostgres, checkPostgresDown(routes)},
		{"clickhouse killed", p.KillClickHouse, p.StartClickHouse, checkClickHouseDown},
		{"clickhouse stopped", p.StopClickHouse, p.StartClickHouse, checkClickHouseDown},
	}
	for _, d := range downs {
		t.Run(strings.ReplaceAll(d.name, " ", "_"), func(t *testing.T) {
			d.down(t)
			got := walkOutage(t, f, routes)
			d.check(t, got)
			t.Logf("%s: %d of %d routes answered 503", d.name, len(got), len(routes))
			d.up(t)
			waitReady(t, f)
			if got := walkOutage(t, f, routes); len(got) != 0 {
				t.Errorf("503 after the database came back: %v", got)
			}
		})
	}
}

// TestStalledDatabaseWalk stalls (SIGSTOP) each database in turn and sends
// every route a valid request at once: no request hangs past its deadline
// (http.request_timeout, or write_timeout for long operations), the
// routes that need the stalled database answer 503 + Retry-After +
// problem+json, none answers another 5xx, and all is well once it runs
// again.
func TestStalledDatabaseWalk(t *testing.T) {
	p, f, routes := outageApp(t)
	// Both databases up: every key and phone number the walk uses is
	// verified once, as in a running server.
	if got := walkOutage(t, f, routes); len(got) != 0 {
		t.Fatalf("503 with both databases up: %v", got)
	}
	stalls := []struct {
		name         string
		freeze, thaw func(testing.TB)
		check        func(t *testing.T, got map[string]bool)
	}{
		{"postgres", p.FreezePostgres, p.ThawPostgres, checkPostgresDown(routes)},
		{"clickhouse", p.FreezeClickHouse, p.ThawClickHouse, checkClickHouseDown},
	}
	for _, st := range stalls {
		t.Run(st.name, func(t *testing.T) {
			st.freeze(t)
			got := walkOutageAtOnce(t, f, routes)
			st.thaw(t)
			st.check(t, got)
			t.Logf("%s stalled: %d of %d routes answered 503", st.name, len(got), len(routes))
			waitReady(t, f)
			if got := walkOutage(t, f, routes); len(got) != 0 {
				t.Errorf("503 after %s ran again: %v", st.name, got)
			}
		})
	}
}

// walkOutageAtOnce is walkOutage with every request sent at the same
// time (against a stalled database each waits for its deadline).
func walkOutageAtOnce(t *testing.T, f *fixture, routes []httpapi.Route) map[string]bool {
	t.Helper()
	var wg sync.WaitGroup
	answers := make([]*httptest.ResponseRecorder, len(routes))
	for i, r := range routes {
		ctype, body, hdr, _ := f.sample(r.Method, r.Path)
		wg.Go(func() { answers[i] = f.do(auth.RoleAdmin, r.Method, f.target(r.Path, queryNames(r)), ctype, body, hdr) })
	}
	wg.Wait()
	got := map[string]bool{}
	for i, r := range routes {
		w, name := answers[i], r.Method+" "+r.Path
		switch {
		case w.Code == http.StatusServiceUnavailable:
			got[name] = true
			if w.Header().Get("Retry-After") == "" {
				t.Errorf("%s: 503 without Retry-After", name)
			}
			if r.Path != "/readyz" {
				checkProblem(t, name, w, "unavailable")
			}
		case w.Code >= 500:
			t.Errorf("%s: %d %s", name, w.Code, w.Body.Bytes())
		case r.Path == "/readyz":
			t.Logf("%s answered %d %s", name, w.Code, w.Body.Bytes()) // what the check below may call wrong
		}
	}
	return got
}

func checkPostgresDown(routes []httpapi.Route) func(*testing.T, map[string]bool) {
	return func(t *testing.T, got map[string]bool) {
		t.Helper()
		for _, r := range routes {
			name := r.Method + " " + r.Path
			if want := !slices.Contains(withoutPostgres, name); got[name] != want {
				t.Errorf("%s: 503 %v, want %v", name, got[name], want)
			}
		}
	}
}

func checkClickHouseDown(t *testing.T, got map[string]bool) {
	t.Helper()
	for _, name := range needClickHouse {
		if !got[name] {
			t.Errorf("%s: did not answer 503 while ClickHouse was down", name)
		}
	}
}

// While PostgreSQL is down, ingest and webhooks with known keys and phone
// numbers keep answering 2xx, and every event they accepted is stored.
func TestIngestWhilePostgresDown(t *testing.T) {
	p, f, _ := outageApp(t)
	ctx := context.Background()
	at := f.Now.Add(-time.Hour)
	// The webhook's phone number is known: one delivery before the outage.
	wa := func(wamid string) *httptest.ResponseRecorder {
		b := waBody(wamid, at)
		return f.do("", "POST", "/api/v1/webhooks/whatsapp", "application/json", b, http.Header{"X-Hub-Signature-256": {metering.SignBody(fixSecret, b)}})
	}
	if w := wa("wamid.before"); w.Code != 200 {
		t.Fatalf("webhook before the outage: %d %s", w.Code, w.Body.Bytes())
	}
	f.mustDo(t, auth.RoleAdmin, "GET", "/api/v1/me", "", nil, http.StatusOK) // the admin key is known too
	p.KillPostgres(t)
	accepted := 0
	for i := range 5 {
		// A refresh interval passes between requests: the cached answers
		// are stale, PostgreSQL does not answer, the last answer is served.
		f.Now = f.Now.Add(f.App.KeyCache.Refresh())
		w := f.do(auth.RoleIngest, "POST", "/api/v1/events", "application/cloudevents-batch+json", cloudEvents(fmt.Sprintf("pgdown-%d", i), 10, at), nil)
		if w.Code != 200 {
			t.Fatalf("events while PostgreSQL is down: %d %s", w.Code, w.Body.Bytes())
		}
		r := decodeEvents(t, w.Body.Bytes())
		accepted += r.Accepted
		w = wa(fmt.Sprintf("wamid.pgdown-%d", i))
		if w.Code != 200 {
			t.Fatalf("webhook while PostgreSQL is down: %d %s", w.Code, w.Body.Bytes())
		}
		accepted += decodeEvents(t, w.Body.Bytes()).Accepted
	}
	if accepted != 55 {
		t.Errorf("accepted %d events while PostgreSQL was down, want 55", accepted)
	}
	var stored uint64
	if err := p.CH.QueryRow(ctx, `SELECT count() FROM events WHERE startsWith(id, 'pgdown-') OR startsWith(id, 'wamid.pgdown-')`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != uint64(accepted) {
		t.Errorf("stored %d of the %d events accepted while PostgreSQL was down", stored, accepted)
	}
	// A key never seen before cannot be checked: 503, retry later.
	w := f.do(auth.Role("pst_abcdefghij12_"+strings.Repeat("A", 43)), "GET", "/api/v1/me", "", nil, nil)
	if w.Code != 503 {
		t.Errorf("unknown key while PostgreSQL is down: %d %s", w.Code, w.Body.Bytes())
	}
	if st := f.App.KeyCache.Stats(); st.Stale == 0 {
		t.Errorf("no stale answer served: %+v", st)
	}
	// Operators see it: /metrics counts the stale answers.
	metrics := string(f.mustDo(t, auth.RoleAdmin, "GET", "/metrics", "", nil, http.StatusOK))
	for _, c := range []string{"api_keys", "phone_numbers"} {
		prefix := `postage_cache_stale_answers_total{cache="` + c + `"} `
		i := strings.Index(metrics, prefix)
		if i < 0 || strings.HasPrefix(metrics[i+len(prefix):], "0\n") {
			t.Errorf("metrics show no stale %s answers", c)
		}
	}
}

// A key revoked elsewhere (another process, the CLI) is refused once the
// refresh interval has passed; a key revoked before an outage stays
// refused during it, while known good keys keep working.
func TestRevokedKeyBound(t *testing.T) {
	p, f, _ := outageApp(t)
	ctx := context.Background()
	newKey := func(name string) (string, auth.Role) {
		k, tok, err := f.App.Keys.Create(ctx, auth.NewKey{Name: name, Role: auth.RoleSales})
		if err != nil {
			t.Fatal(err)
		}
		f.Keys[auth.Role(name)] = tok
		if w := f.do(auth.Role(name), "GET", "/api/v1/me", "", nil, nil); w.Code != 200 {
			t.Fatalf("%s: %d %s", name, w.Code, w.Body.Bytes())
		}
		return k.ID, auth.Role(name)
	}
	refresh := f.App.KeyCache.Refresh()

	// Revoked behind the cache's back: refused from the bound on.
	id, role := newKey("revoked-elsewhere")
	if err := f.App.Keys.Revoke(ctx, id); err != nil {
		t.Fatal(err)
	}
	f.Now = f.Now.Add(refresh)
	if w := f.do(role, "GET", "/api/v1/me", "", nil, nil); w.Code != 401 {
		t.Errorf("key revoked %v ago: %d %s", refresh, w.Code, w.Body.Bytes())
	}

	// Revoked just before the outage: the background re-verification
	// (every refresh interval) sees it, and the outage does not bring it
	// back; a good key keeps working through the outage.
	id, role = newKey("revoked-before-outage")
	_, good := newKey("good")
	if err := f.App.Keys.Revoke(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := f.App.KeyCache.VerifyAll(ctx); err != nil {
		t.Fatal(err)
	}
	p.KillPostgres(t)
	for range 3 {
		f.Now = f.Now.Add(refresh)
		if w := f.do(role, "GET", "/api/v1/me", "", nil, nil); w.Code < 400 {
			t.Errorf("key revoked before the outage: %d %s", w.Code, w.Body.Bytes())
		}
		if w := f.do(good, "GET", "/api/v1/me", "", nil, nil); w.Code != 200 {
			t.Errorf("good key during the outage: %d %s", w.Code, w.Body.Bytes())
		}
	}
	// A revocation through this process's API takes effect at once.
	p.StartPostgres(t)
	waitReady(t, f)
	id, role = newKey("revoked-here")
	f.mustDo(t, auth.RoleAdmin, "DELETE", "/api/v1/apikeys/"+id, "", nil, http.StatusNoContent)
	if w := f.do(role, "GET", "/api/v1/me", "", nil, nil); w.Code != 401 {
		t.Errorf("key revoked through the API: %d %s", w.Code, w.Body.Bytes())
	}
}
