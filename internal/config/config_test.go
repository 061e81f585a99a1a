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
		{"tiny queue bytes", "[ingest]\nqueue_bytes = 1000\n", nil, "ingest.queue_bytes must be at least"},
		{"tiny index memory", "", []string{"POSTAGE_INGEST_INDEX_MEMORY=4096"}, "ingest.index_memory must be at least"},
		{"reminder without days", "[billing]\nreminders = [\"-3\"]\n", nil, `billing.reminders "-3"`},
		{"reminder twice", "[billing]\nreminders = [\"7d\", \"+7d\"]\n", nil, `billing.reminders "+7d"`},
		{"reminder past a year", "[billing]\nreminders = [\"-400d\"]\n", nil, `billing.reminders "-400d"`},
		{"future skew over an hour", "[ingest]\nfuture_skew = \"2h\"\n", nil, "ingest.future_skew must be 0 to 1h0m0s"},
		{"NUL in the issuer's tax id", "", []string{"POSTAGE_BILLING_ISSUER_TAX_ID=GB1\x002"}, "billing.issuer_tax_id: has the control character U+0000"},
		{"bank details not UTF-8", "", []string{"POSTAGE_BILLING_ISSUER_BANK_DETAILS=IBAN \xff"}, "billing.issuer_bank_details: not valid UTF-8"},
		{"control character in the issuer's name", "[billing]\nissuer_name = \"Acme\\u001b[31m\"\n", nil, "billing.issuer_name: has the control character U+001B"},
		{"no tabs", "[documents]\ntabs = 0\n", nil, "documents.tabs must be 1 to 16"},
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

// The issuer's bank details are several lines, in any script.
func TestIssuerDetails(t *testing.T) {
	body := "[billing]\nissuer_name = \"شركة البريد\"\nissuer_tax_id = \"GB123456789\"\nissuer_bank_details = \"\"\"\nExample Bank plc\nIBAN GB33 BUKB 2020 1555 5555 55\nSWIFT BUKBGB22\"\"\"\n"
	got, err := Load(writeFile(t, body), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Billing.IssuerName != "شركة البريد" || got.Billing.IssuerTaxID != "GB123456789" ||
		got.Billing.IssuerBankDetails != "Example Bank plc\nIBAN GB33 BUKB 2020 1555 5555 55\nSWIFT BUKBGB22" {
		t.Errorf("issuer %q %q %q", got.Billing.IssuerName, got.Billing.IssuerTaxID, got.Billing.IssuerBankDetails)
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"), nil)
	if err == nil || !strings.Contains(err.Error(), "read config") {
		t.Fatalf("got %v", err)
	}
}

func TestClusterSettings(t *testing.T) {
	tests := []struct {
		name string
		body string
		env  []string
		want string // "" = valid
	}{
		{"one server (default)", "", nil, ""},
		{"a cluster", "[clickhouse]\ncluster = \"prod\"\naddrs = [\"ch1:9000\", \"ch2:9000\"]\nzookeeper = [\"zk1:2181\"]\ninsert_quorum = 2\n", nil, ""},
		{"a cluster from the environment", "", []string{"POSTAGE_CLICKHOUSE_CLUSTER=prod", "POSTAGE_CLICKHOUSE_ADDRS=ch1:9000,ch2:9000", "POSTAGE_CLICKHOUSE_ZOOKEEPER=zk1:2181"}, ""},
		{"no servers", "[clickhouse]\ncluster = \"prod\"\nzookeeper = [\"zk1:2181\"]\n", nil, "clickhouse.cluster needs clickhouse.addr or clickhouse.addrs"},
		{"no zookeeper", "[clickhouse]\ncluster = \"prod\"\naddr = \"ch1:9000\"\n", nil, "clickhouse.cluster needs clickhouse.zookeeper"},
		{"bad name", "[clickhouse]\ncluster = \"a b\"\naddr = \"ch1:9000\"\nzookeeper = [\"zk1:2181\"]\n", nil, `clickhouse.cluster "a b"`},
		{"negative quorum", "[clickhouse]\ncluster = \"prod\"\naddr = \"ch1:9000\"\nzookeeper = [\"zk1:2181\"]\ninsert_quorum = -1\n", nil, "insert_quorum must not be negative"},
		{"quorum without a cluster", "[clickhouse]\ninsert_quorum = 2\n", nil, "insert_quorum needs clickhouse.cluster"},
		{"zero timeout", "[clickhouse]\ncluster = \"prod\"\naddr = \"ch1:9000\"\nzookeeper = [\"zk1:2181\"]\ninsert_quorum_timeout = \"0s\"\n", nil, "insert_quorum_timeout must be positive"},
		{"timeout past a flush's", "[clickhouse]\ncluster = \"prod\"\naddr = \"ch1:9000\"\nzookeeper = [\"zk1:2181\"]\ninsert_quorum_timeout = \"30s\"\n", nil, "insert_quorum_timeout must be shorter than 30s"},
		{"writers spread", "[http]\nadvertise_url = \"http://10.0.0.5:8080\"\n[clickhouse]\ncluster = \"prod\"\naddrs = [\"ch1:9000\", \"ch2:9000\"]\nzookeeper = [\"zk1:2181\"]\nwrite_shards = [1, 3]\n", nil, ""},
		{"write shards from the environment", "", []string{"POSTAGE_CLICKHOUSE_CLUSTER=prod", "POSTAGE_CLICKHOUSE_ADDRS=ch1:9000,ch2:9000", "POSTAGE_CLICKHOUSE_ZOOKEEPER=zk1:2181", "POSTAGE_CLICKHOUSE_WRITE_SHARDS=2, 4", "POSTAGE_HTTP_ADVERTISE_URL=https://api-3.internal"}, ""},
		{"write shard 0", "[clickhouse]\ncluster = \"prod\"\naddr = \"ch1:9000\"\nzookeeper = [\"zk1:2181\"]\nwrite_shards = [0]\n", nil, "write_shards: 0 is not a shard number"},
		{"write shard twice", "[clickhouse]\ncluster = \"prod\"\naddr = \"ch1:9000\"\nzookeeper = [\"zk1:2181\"]\nwrite_shards = [2, 2]\n", nil, "write_shards: 2 is not a shard number"},
		{"write shards not numbers", "", []string{"POSTAGE_CLICKHOUSE_WRITE_SHARDS=one"}, "not a list of integers"},
		{"advertise without a host", "[http]\nadvertise_url = \"10.0.0.5:8080\"\n", nil, "http.advertise_url"},
		{"advertise with a query", "[http]\nadvertise_url = \"http://a:1/?x=1\"\n", nil, "http.advertise_url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(writeFile(t, tt.body), tt.env)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got.ClickHouse.Cluster != "" && len(got.ClickHouse.Addresses()) != 2 {
					t.Errorf("addresses %v, want 2", got.ClickHouse.Addresses())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
