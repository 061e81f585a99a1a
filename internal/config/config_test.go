package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "postage.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadDefaultsWithoutFile(t *testing.T) {
	got, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.HTTP.Addr != "127.0.0.1:8080" || got.Billing.Grace.Duration != 72*time.Hour || got.Billing.Schedule != "0 2 1 * *" {
		t.Errorf("defaults: got %+v", got)
	}
}

func TestLoadFileThenEnvironment(t *testing.T) {
	p := writeFile(t, `
[http]
addr = "0.0.0.0:9000"
[postgres]
dsn = "postgres://file"
[ingest]
flush_interval = "10ms"
categories = ["a", "b"]
`)
	got, err := Load(p, []string{"POSTAGE_POSTGRES_DSN=postgres://env", "POSTAGE_INGEST_MAX_BATCH=77", "POSTAGE_BILLING_GRACE=1h", "POSTAGE_INGEST_CATEGORIES=x, y", "OTHER=1"})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"file addr", got.HTTP.Addr, "0.0.0.0:9000"},
		{"env beats file", got.Postgres.DSN, "postgres://env"},
		{"file duration", got.Ingest.FlushInterval.Duration, 10 * time.Millisecond},
		{"env int", got.Ingest.MaxBatch, 77},
		{"env duration", got.Billing.Grace.Duration, time.Hour},
		{"env list", strings.Join(got.Ingest.Categories, "|"), "x|y"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestLoadErrorsAreClear(t *testing.T) {
	tests := []struct {
		name, body string
		env        []string
		want       string
	}{
		{"syntax", "[http\naddr = 1", nil, "postage.toml:1"},
		{"unknown key", "[http]\nadress = \"x\"\n", nil, "unknown setting http.adress"},
		{"bad duration", "[billing]\ngrace = \"3 days\"\n", nil, "bad duration"},
		{"bad env int", "", []string{"POSTAGE_INGEST_MAX_BATCH=many"}, "POSTAGE_INGEST_MAX_BATCH: not an integer"},
		{"invalid value", "[log]\nformat = \"xml\"\n", nil, `log.format "xml"`},
		{"billable status", "[whatsapp]\nbillable_status = \"read\"\n", nil, `whatsapp.billable_status "read"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeFile(t, tt.body), tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"), nil)
	if err == nil || !strings.Contains(err.Error(), "read config") {
		t.Fatalf("got %v", err)
	}
}
