package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"postage/billing"
	"postage/internal/app"
	"postage/internal/apptest"
	"postage/internal/auth"
	"postage/internal/config"
	"postage/internal/httpapi"
	"postage/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// stack is a fully wired postage on fresh databases, served by httptest.
type stack struct {
	App  *app.App
	Srv  *httpapi.Server
	URL  string
	Keys map[auth.Role]string // a token per role; the customer key is bound to "cust-a"
}

func newStack(t *testing.T) *stack {
	t.Helper()
	return newStackWith(t, func(c *config.Config) { c.HTTP.MaxBodyBytes = 64 << 10 }, nil)
}

// newStackWith wires postage on fresh databases with the configuration
// changed by tweak, customers cust-a and cust-b, and a key per role (the
// customer key bound to cust-a); prepare (if not nil) may change the app
// before its server is built.
func newStackWith(t *testing.T, tweak func(*config.Config), prepare func(*app.App)) *stack {
	t.Helper()
	a := apptest.Open(t, tweak)
	for _, id := range []string{"cust-a", "cust-b"} {
		if _, err := a.Customers.Create(context.Background(), billing.Customer{ID: id, Name: "Customer " + id, Currency: "USD", Country: "GB"}); err != nil {
			t.Fatal(err)
		}
	}
	s := &stack{App: a, Keys: apptest.Keys(t, a, "cust-a")}
	if prepare != nil {
		prepare(a)
	}
	s.Srv = a.Server()
	s.URL = apptest.ServeServer(t, s.Srv)
	return s
}

func (s *stack) do(t *testing.T, role auth.Role, method, path, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+s.Keys[role])
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func problemCode(t *testing.T, resp *http.Response, body []byte) string {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%d answer has Content-Type %q, want application/problem+json; body %s", resp.StatusCode, ct, body)
	}
	var p httpapi.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Status != resp.StatusCode || p.Code == "" || p.RequestID == "" {
		t.Fatalf("problem body incomplete: %s", body)
	}
	return p.Code
}

// Every route the router serves is in the OpenAPI document with its method,
// and the document the wired app serves is the committed one
// (internal/apiclient/openapi.json) but for the server's version.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	s := newStack(t)
	resp, body := s.do(t, auth.RoleSales, "GET", "/api/v1/openapi.json", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("openapi: %d %s", resp.StatusCode, body)
	}
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	engine := s.Srv.Handler().(*gin.Engine)
	routes := engine.Routes()
	if len(routes) < 10 {
		t.Fatalf("only %d routes registered", len(routes))
	}
	for _, r := range routes {
		p := openAPIPath(r.Path)
		if _, ok := doc.Paths[p][strings.ToLower(r.Method)]; !ok {
			t.Errorf("route %s %s is missing from the OpenAPI document", r.Method, r.Path)
		}
	}
	committed, err := os.ReadFile(filepath.Join("..", "apiclient", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var served, want map[string]any
	if err := json.Unmarshal(body, &served); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(committed, &want); err != nil {
		t.Fatal(err)
	}
	served["info"].(map[string]any)["version"] = want["info"].(map[string]any)["version"]
	if !reflect.DeepEqual(served, want) {
		t.Error("the served OpenAPI document is not internal/apiclient/openapi.json")
	}
}

func openAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, x := range parts {
		if strings.HasPrefix(x, ":") || strings.HasPrefix(x, "*") {
			parts[i] = "{" + x[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// Each role against each route: a role outside the route's roles gets 403
// forbidden, a role inside never gets 401/403; no key gets 401.
func TestEveryRoleAgainstEveryRoute(t *testing.T) {
	s := newStack(t)
	for _, r := range s.Srv.Routes() {
		if r.Roles == nil {
			continue
		}
		path := strings.NewReplacer(":id", "cust-a", ":key_id", "nokey", ":phone_number_id", "1").Replace(r.Path)
		path = strings.ReplaceAll(path, ":", "x-") // any other parameter: a value that matches nothing
		resp, body := s.do(t, "", r.Method, path, "", nil)
		if resp.StatusCode != 401 || problemCode(t, resp, body) != "unauthorized" {
			t.Errorf("%s %s without a key: %d %s", r.Method, r.Path, resp.StatusCode, body)
		}
		for _, role := range auth.Roles {
			allowed := role == auth.RoleAdmin || slices.Contains(r.Roles, role)
			resp, body := s.do(t, role, r.Method, path, "application/json", []byte(`{}`))
			switch {
			case allowed && (resp.StatusCode == 401 || resp.StatusCode == 403):
				t.Errorf("%s %s as %s: %d, want access; %s", r.Method, r.Path, role, resp.StatusCode, body)
			case !allowed && resp.StatusCode != 403:
				t.Errorf("%s %s as %s: %d, want 403; %s", r.Method, r.Path, role, resp.StatusCode, body)
			case resp.StatusCode >= 500:
				t.Errorf("%s %s as %s: %d %s", r.Method, r.Path, role, resp.StatusCode, body)
			}
		}
	}
}

// A customer key sees its own customer and nothing of any other: another
// customer's id answers 404, exactly like a customer that does not exist.
func TestCustomerKeySeesOnlyItsOwnCustomer(t *testing.T) {
	s := newStack(t)
	for _, r := range s.Srv.Routes() {
		if r.Method != "GET" || !strings.HasPrefix(r.Path, "/api/v1/customers/:id") || !slices.Contains(r.Roles, auth.RoleCustomer) {
			continue
		}
		other := strings.ReplaceAll(r.Path, ":id", "cust-b")
		resp, body := s.do(t, auth.RoleCustomer, "GET", other, "", nil)
		if resp.StatusCode != 404 || problemCode(t, resp, body) != "not_found" {
			t.Errorf("GET %s with cust-a's key: %d %s, want 404", other, resp.StatusCode, body)
		}
		missing := strings.ReplaceAll(r.Path, ":id", "no-such")
		resp2, body2 := s.do(t, auth.RoleCustomer, "GET", missing, "", nil)
		if resp2.StatusCode != 404 {
			t.Errorf("GET %s: %d %s, want 404", missing, resp2.StatusCode, body2)
		}
	}
	resp, body := s.do(t, auth.RoleCustomer, "GET", "/api/v1/customers/cust-a", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"id":"cust-a"`) {
		t.Errorf("own customer: %d %s", resp.StatusCode, body)
	}
}

func TestCustomersCRUDAndPagination(t *testing.T) {
	s := newStack(t)
	for _, id := range []string{"c-1", "c-2", "c-3"} {
		resp, body := s.do(t, auth.RoleFinance, "POST", "/api/v1/customers", "application/json", []byte(`{"id":"`+id+`","name":"N `+id+`"}`))
		if resp.StatusCode != 201 {
			t.Fatalf("create %s: %d %s", id, resp.StatusCode, body)
		}
	}
	resp, body := s.do(t, auth.RoleFinance, "POST", "/api/v1/customers", "application/json", []byte(`{"id":"c-1","name":"again"}`))
	if resp.StatusCode != 409 || problemCode(t, resp, body) != "conflict" {
		t.Errorf("duplicate: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, auth.RoleFinance, "POST", "/api/v1/customers", "application/json", []byte(`{"id":"bad id!","name":"","currency":"usd"}`))
	if resp.StatusCode != 400 || problemCode(t, resp, body) != "invalid" || !strings.Contains(string(body), "currency") || !strings.Contains(string(body), "name") {
		t.Errorf("invalid: %d %s", resp.StatusCode, body)
	}
	var seen []string
	cursor := ""
	for range 10 {
		resp, body := s.do(t, auth.RoleSales, "GET", "/api/v1/customers?limit=2&cursor="+cursor, "", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("list: %d %s", resp.StatusCode, body)
		}
		var l httpapi.List[billing.Customer]
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatal(err)
		}
		for _, c := range l.Data {
			seen = append(seen, c.ID)
		}
		if cursor = l.NextCursor; cursor == "" {
			break
		}
	}
	if got, want := strings.Join(seen, ","), "c-1,c-2,c-3,cust-a,cust-b"; got != want {
		t.Errorf("pages: got %s, want %s", got, want)
	}
	resp, body = s.do(t, auth.RoleFinance, "PATCH", "/api/v1/customers/c-2", "application/json", []byte(`{"name":"Renamed","country":"DE"}`))
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"name":"Renamed"`) || !strings.Contains(string(body), `"country":"DE"`) {
		t.Errorf("update: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, auth.RoleFinance, "POST", "/api/v1/customers/c-2/phone_numbers", "application/json", []byte(`{"phone_number_id":"106540352242922"}`))
	if resp.StatusCode != 201 {
		t.Errorf("phone number: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, auth.RoleFinance, "POST", "/api/v1/customers/c-3/phone_numbers", "application/json", []byte(`{"phone_number_id":"106540352242922"}`))
	if resp.StatusCode != 409 {
		t.Errorf("phone number of another customer: %d %s", resp.StatusCode, body)
	}
	if got, ok, err := s.App.Customers.CustomerForPhoneNumber(context.Background(), "106540352242922"); err != nil || !ok || got != "c-2" {
		t.Errorf("resolve phone number: %q %v %v", got, ok, err)
	}
}

func TestErrorsAreProblems(t *testing.T) {
	s := newStack(t)
	tests := []struct {
		name        string
		role        auth.Role
		method, url string
		ctype, body string
		status      int
		code        string
	}{
		{"malformed json", auth.RoleFinance, "POST", "/api/v1/customers", "application/json", `{"id":`, 400, "invalid"},
		{"unknown field", auth.RoleFinance, "POST", "/api/v1/customers", "application/json", `{"id":"x","nmae":"y"}`, 400, "invalid"},
		{"wrong content type", auth.RoleFinance, "POST", "/api/v1/customers", "text/plain", `{}`, 415, "unsupported_media_type"},
		{"oversize body", auth.RoleFinance, "POST", "/api/v1/customers", "application/json", `{"name":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "too_large"},
		{"unknown route", auth.RoleFinance, "GET", "/api/v1/nothing", "", "", 404, "not_found"},
		{"bad limit", auth.RoleFinance, "GET", "/api/v1/customers?limit=0", "", "", 400, "invalid"},
		{"wrong role", auth.RoleIngest, "GET", "/api/v1/customers", "", "", 403, "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := s.do(t, tt.role, tt.method, tt.url, tt.ctype, []byte(tt.body))
			if resp.StatusCode != tt.status {
				t.Fatalf("got %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if got := problemCode(t, resp, body); got != tt.code {
				t.Errorf("code: got %s, want %s", got, tt.code)
			}
		})
	}
}

func TestAPIKeysLifecycle(t *testing.T) {
	s := newStack(t)
	resp, body := s.do(t, auth.RoleAdmin, "POST", "/api/v1/apikeys", "application/json", []byte(`{"name":"ops","role":"finance"}`))
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	var created struct {
		Key   auth.Key `json:"key"`
		Token string   `json:"token"`
	}
	if err := json.Unmarshal(body, &created); err != nil {
		t.Fatal(err)
	}
	s.Keys["ops"] = created.Token
	if resp, body := s.do(t, "ops", "GET", "/api/v1/customers", "", nil); resp.StatusCode != 200 {
		t.Fatalf("new key: %d %s", resp.StatusCode, body)
	}
	// The list never shows secrets, and the stored hash is not the secret.
	_, body = s.do(t, auth.RoleAdmin, "GET", "/api/v1/apikeys", "", nil)
	// pst_<id>_<secret>: the secret may itself hold "_".
	secret := strings.SplitN(created.Token, "_", 3)[2]
	if len(secret) != 43 {
		t.Fatalf("token %q: secret %q", created.Token, secret)
	}
	if strings.Contains(string(body), secret) {
		t.Fatal("key list shows a secret")
	}
	var stored []byte
	if err := s.App.PG.QueryRow(context.Background(), `SELECT secret_sha256 FROM api_keys WHERE id=$1`, created.Key.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, []byte(secret)) || len(stored) != 32 {
		t.Fatalf("stored secret is not a SHA-256 hash: %d bytes", len(stored))
	}
	if resp, body := s.do(t, auth.RoleAdmin, "DELETE", "/api/v1/apikeys/"+created.Key.ID, "", nil); resp.StatusCode != 204 {
		t.Fatalf("revoke: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, "ops", "GET", "/api/v1/customers", "", nil)
	if resp.StatusCode != 401 || !strings.Contains(string(body), "revoked") {
		t.Fatalf("revoked key: %d %s", resp.StatusCode, body)
	}
	// A key whose secret part is wrong is refused.
	s.Keys["forged"] = created.Token[:len(created.Token)-4] + "AAAA"
	if resp, _ := s.do(t, "forged", "GET", "/api/v1/me", "", nil); resp.StatusCode != 401 {
		t.Fatalf("forged key: %d", resp.StatusCode)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	s := newStack(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, body := s.do(t, "", "GET", p, "", nil)
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"ok"`) {
			t.Errorf("%s: %d %s", p, resp.StatusCode, body)
		}
	}
	resp, body := s.do(t, auth.RoleAdmin, "GET", "/metrics", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "postage_http_requests_total") {
		t.Errorf("metrics: %d", resp.StatusCode)
	}
	if resp.Header.Get("X-Request-ID") == "" {
		t.Error("no request id header")
	}
}
