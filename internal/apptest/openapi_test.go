package apptest

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"postage/internal/httpapi"
)

// The checker accepts what the document describes and refuses an
// undocumented status, media type, field or value.
func TestCheckerRefusesWhatTheDocumentDoesNotDescribe(t *testing.T) {
	c, err := newChecker(httpapi.New(httpapi.Deps{Version: "test"}))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path string
		status             int
		ctype, body        string
		ok                 bool
	}{
		{"documented", "GET", "/healthz", 200, "application/json; charset=utf-8", `{"status":"ok"}`, true},
		{"undocumented field", "GET", "/healthz", 200, "application/json", `{"status":"ok","uptime":3}`, false},
		{"value outside the enum", "GET", "/healthz", 200, "application/json", `{"status":"fine"}`, false},
		{"missing required field", "GET", "/api/v1/me", 200, "application/json", `{"key_id":"k","name":"n","role":"admin"}`, false},
		{"undocumented status", "GET", "/healthz", 418, "application/json", `{"status":"ok"}`, false},
		{"undocumented media type", "GET", "/healthz", 200, "text/html", `<p>ok</p>`, false},
		{"documented problem", "GET", "/api/v1/me", 401, "application/problem+json",
			`{"type":"https://postage.dev/problems/unauthorized","title":"Unauthorized","status":401,"code":"unauthorized","request_id":"r"}`, true},
		{"problem with an unknown code", "GET", "/api/v1/me", 401, "application/problem+json",
			`{"type":"t","title":"Unauthorized","status":401,"code":"nope"}`, false},
		{"problem as JSON", "GET", "/api/v1/me", 401, "application/json", `{"type":"t","title":"t","status":401,"code":"unauthorized"}`, false},
		{"no such route", "GET", "/api/v1/nothing", 404, "application/problem+json", `{"type":"t","title":"Not Found","status":404,"code":"not_found"}`, true},
		{"no such route, not a problem", "GET", "/api/v1/nothing", 404, "text/plain", `404 page not found`, false},
		{"body where none is described", "DELETE", "/api/v1/apikeys/k", 204, "application/json", `{}`, false},
		{"the dashboard is not checked", "GET", "/js/main.js", 200, "text/javascript", `x`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{ResponseWriter: httptest.NewRecorder()}
			rec.Header().Set("Content-Type", tt.ctype)
			rec.WriteHeader(tt.status)
			if tt.body != "" && tt.status != http.StatusNoContent {
				_, _ = rec.Write([]byte(tt.body))
			} else {
				rec.body.WriteString(tt.body)
			}
			err := c.check(httptest.NewRequest(tt.method, tt.path, nil), rec)
			if got := err == nil; got != tt.ok {
				t.Errorf("accepted: got %v, want %v (%v)", got, tt.ok, err)
			}
		})
	}
}
