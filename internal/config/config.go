// Package config loads postage's settings from a TOML file and POSTAGE_*
// environment variables, with defaults for everything, so that `postage dev`
// needs no file at all and `postage serve` needs only database addresses.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"
)

// Duration is a time.Duration written as "250ms", "72h" in TOML and env.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q (use e.g. 250ms, 5s, 72h)", string(b))
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as Go formats it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// Config is every setting. config.example.toml documents each with its default.
type Config struct {
	HTTP       HTTP       `toml:"http"`
	Postgres   Postgres   `toml:"postgres"`
	ClickHouse ClickHouse `toml:"clickhouse"`
	Dev        Dev        `toml:"dev"`
	Ingest     Ingest     `toml:"ingest"`
	WhatsApp   WhatsApp   `toml:"whatsapp"`
	Usage      Usage      `toml:"usage"`
	Billing    Billing    `toml:"billing"`
	Documents  Documents  `toml:"documents"`
	Notify     Notify     `toml:"notify"`
	Reconcile  Reconcile  `toml:"reconcile"`
	Log        Log        `toml:"log"`
}

// HTTP configures the API server.
type HTTP struct {
	Addr         string   `toml:"addr"`
	MaxBodyBytes int64    `toml:"max_body_bytes"`
	ReadTimeout  Duration `toml:"read_timeout"`
	WriteTimeout Duration `toml:"write_timeout"`
	// RequestTimeout bounds the work of one request (its database calls
	// included), so a stalled database answers 503 instead of hanging;
	// long operations (invoice runs, simulations, imports) get
	// WriteTimeout instead.
	RequestTimeout  Duration `toml:"request_timeout"`
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	// AdvertiseURL is where the other postage processes of a cluster
	// reach this one (http://10.0.0.5:8080): it is stored in the write
	// leases this process holds, and the others forward it the events of
	// its shards. "" means nowhere: the others answer those events 503
	// shard_not_owned.
	AdvertiseURL string `toml:"advertise_url"`
}

// Postgres locates the ledger database. An empty DSN means "managed":
// `postage dev` starts its own server under the data directory.
type Postgres struct {
	DSN string `toml:"dsn"`
}

// ClickHouse locates the event store (native protocol). An empty Addr (and
// Addrs) means "managed", as for Postgres. Cluster names a ClickHouse
// cluster instead of one server (docs/SCALING.md).
type ClickHouse struct {
	Addr     string   `toml:"addr"`
	Addrs    []string `toml:"addrs"`
	Database string   `toml:"database"`
	Username string   `toml:"username"`
	Password string   `toml:"password"`
	Cluster  string   `toml:"cluster"`
	// InsertQuorum is how many replicas of a shard must have an insert
	// before it is acknowledged; 0 means a majority of the shard's.
	InsertQuorum        int      `toml:"insert_quorum"`
	InsertQuorumTimeout Duration `toml:"insert_quorum_timeout"`
	// ZooKeeper and ZooKeeperSessionTimeout: the ensemble that holds the
	// shards' write leases (the cluster's own will do).
	ZooKeeper               []string `toml:"zookeeper"`
	ZooKeeperSessionTimeout Duration `toml:"zookeeper_session_timeout"`
	// WriteShards are the numbers of the shards (as in system.clusters)
	// whose write lease this process contends for; empty means every
	// shard. The other shards' events are forwarded to their writers.
	WriteShards []int `toml:"write_shards"`
}

// Addresses returns Addr and then Addrs, without empty ones.
func (c ClickHouse) Addresses() []string {
	var out []string
	for _, a := range append([]string{c.Addr}, c.Addrs...) {
		if a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Dev configures `postage dev` (what `make run` calls).
type Dev struct {
	DataDir string `toml:"data_dir"`
	Demo    bool   `toml:"demo"`
}

// Ingest configures the event pipeline.
type Ingest struct {
	MaxBatch      int      `toml:"max_batch"`
	FlushSize     int      `toml:"flush_size"`
	FlushInterval Duration `toml:"flush_interval"`
	QueueSize     int      `toml:"queue_size"`
	QueueBytes    int64    `toml:"queue_bytes"`
	IndexDir      string   `toml:"index_dir"`
	IndexMemory   int64    `toml:"index_memory"`
	Horizon       Duration `toml:"horizon"`
	FutureSkew    Duration `toml:"future_skew"`
	Categories    []string `toml:"categories"`
}

// WhatsApp configures the Cloud API webhook adapter.
type WhatsApp struct {
	AppSecret   string `toml:"app_secret"`
	VerifyToken string `toml:"verify_token"`
	// BillableStatus is the message status that makes a message billable:
	// "delivered" (as the upstream bills) or "sent".
	BillableStatus string `toml:"billable_status"`
}

// Usage limits usage queries and sizes their cache.
type Usage struct {
	MaxRange Duration `toml:"max_range"`
	// CacheBytes is the memory each events store may use to keep the
	// rows of sealed windows that one-customer reads read (0: none).
	CacheBytes int64 `toml:"cache_bytes"`
}

// Billing configures invoice runs.
type Billing struct {
	Schedule      string   `toml:"schedule"`
	Grace         Duration `toml:"grace"`
	NumberFormat  string   `toml:"number_format"`
	IssuerName    string   `toml:"issuer_name"`
	IssuerAddress string   `toml:"issuer_address"`
	// IssuerTaxID is the issuer's VAT or tax registration number and
	// IssuerBankDetails where to pay (bank, IBAN or account, SWIFT/BIC,
	// one per line); invoices and credit notes print them, frozen when
	// they are issued.
	IssuerTaxID       string `toml:"issuer_tax_id"`
	IssuerBankDetails string `toml:"issuer_bank_details"`
	Scheduler         bool   `toml:"scheduler"`
	// PaymentTermsDays are the payment terms of customers without their own.
	PaymentTermsDays int `toml:"payment_terms_days"`
	// CreditNoteNumberFormat numbers credit notes as NumberFormat numbers invoices.
	CreditNoteNumberFormat string `toml:"credit_note_number_format"`
	// ReverseChargeNote and ExemptNote are the legal notes of invoices of
	// reverse-charge and tax-exempt customers.
	ReverseChargeNote string `toml:"reverse_charge_note"`
	ExemptNote        string `toml:"exempt_note"`
	// Reminders are the payment reminders (invoice.payment_reminder), in
	// days relative to the due date: "-3d" three days before, "+7d"
	// seven days after. Empty: none.
	Reminders []string `toml:"reminders"`
}

// Documents configures how PDF documents (invoices, credit notes,
// quotes) are drawn: printed by one headless Chromium per process
// (internal/pdfrender).
type Documents struct {
	// Chromium is the browser's path; "" finds chromium on PATH.
	Chromium string `toml:"chromium"`
	// Tabs is how many documents print at once.
	Tabs int `toml:"tabs"`
	// Timeout bounds one print.
	Timeout Duration `toml:"timeout"`
	// Idle closes the browser this long after its last print.
	Idle Duration `toml:"idle"`
}

// Notify configures outbound webhooks and usage alerts
// (docs/NOTIFICATIONS.md).
type Notify struct {
	// SecretKey seals endpoint secrets at rest (AES-256-GCM): 32 bytes in
	// base64. Empty: endpoints cannot be created (`postage dev` makes one).
	SecretKey string `toml:"secret_key"`
	// PreviousSecretKeys still open secrets sealed before a key rotation.
	PreviousSecretKeys []string `toml:"previous_secret_keys"`
	// AllowNetworks are the non-public networks (CIDR) endpoints may reach.
	AllowNetworks []string `toml:"allow_networks"`
	// Deliver runs a dispatcher in this process.
	Deliver bool `toml:"deliver"`
	// Workers is how many deliveries one process attempts at once.
	Workers int `toml:"workers"`
	// PollInterval is how often an idle dispatcher looks for due deliveries.
	PollInterval Duration `toml:"poll_interval"`
	// Timeout bounds one delivery attempt.
	Timeout Duration `toml:"timeout"`
	// RetryFor is how long a delivery is retried before it fails.
	RetryFor Duration `toml:"retry_for"`
	// Retention is how long events are kept after their deliveries ended.
	Retention Duration `toml:"retention"`
	// AlertInterval is how often usage alerts are evaluated (0: never in
	// this process).
	AlertInterval Duration `toml:"alert_interval"`
}

// Reconcile configures reconciliation with the upstream's usage-and-cost
// reports.
type Reconcile struct {
	// TolerancePercent is the gross difference a month may have, as a
	// percentage of the upstream's messages and of its cost, a decimal
	// from 0 to 100.
	TolerancePercent string `toml:"tolerance_percent"`
	// HoldFinalization holds the finalization of a month whose difference
	// exceeds the tolerance until finance accepts it.
	HoldFinalization bool `toml:"hold_finalization"`
}

// Log configures structured logging.
type Log struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
	// Requests is the level of the log line of each answered request below
	// 400 (4xx are warnings and 5xx errors whatever it says): "info", or
	// "debug" to keep them out of an info log. Empty: info under `postage
	// serve`, debug under `postage dev` (make run), whose terminal shows the
	// dashboard's address and key.
	Requests string `toml:"requests"`
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		HTTP: HTTP{
			Addr:            "127.0.0.1:8080",
			MaxBodyBytes:    8 << 20,
			ReadTimeout:     Duration{30 * time.Second},
			WriteTimeout:    Duration{120 * time.Second},
			RequestTimeout:  Duration{30 * time.Second},
			ShutdownTimeout: Duration{15 * time.Second},
		},
		ClickHouse: ClickHouse{
			Addrs: []string{}, Database: "postage", Username: "default",
			InsertQuorumTimeout: Duration{10 * time.Second},
			ZooKeeper:           []string{}, ZooKeeperSessionTimeout: Duration{10 * time.Second}, WriteShards: []int{},
		},
		Dev: Dev{DataDir: "data", Demo: true},
		Ingest: Ingest{
			MaxBatch:      10000,
			FlushSize:     40000,
			FlushInterval: Duration{50 * time.Millisecond},
			QueueSize:     200000,
			QueueBytes:    32 << 20,
			IndexMemory:   48 << 20,
			Horizon:       Duration{35 * 24 * time.Hour},
			FutureSkew:    Duration{5 * time.Minute},
			Categories:    []string{"notification", "session", "marketing", "utility", "authentication", "authentication_international", "service"},
		},
		WhatsApp: WhatsApp{BillableStatus: "delivered"},
		Usage:    Usage{MaxRange: Duration{400 * 24 * time.Hour}, CacheBytes: 64 << 20},
		Billing: Billing{Schedule: "0 2 1 * *", Grace: Duration{72 * time.Hour}, NumberFormat: "PST-{year}-{seq:6}", IssuerName: "Postage Messaging Ltd.", IssuerAddress: "1 Example Street, London, United Kingdom", Scheduler: true,
			PaymentTermsDays: 30, CreditNoteNumberFormat: "CN-{year}-{seq:6}", Reminders: []string{},
			ReverseChargeNote: "Reverse charge: VAT to be accounted for by the recipient (Article 196, Council Directive 2006/112/EC).",
			ExemptNote:        "Exempt from tax."},
		Documents: Documents{Tabs: 2, Timeout: Duration{30 * time.Second}, Idle: Duration{5 * time.Minute}},
		Notify: Notify{PreviousSecretKeys: []string{}, AllowNetworks: []string{}, Deliver: true, Workers: 8,
			PollInterval: Duration{time.Second}, Timeout: Duration{10 * time.Second}, RetryFor: Duration{72 * time.Hour},
			Retention: Duration{30 * 24 * time.Hour}, AlertInterval: Duration{5 * time.Minute}},
		Reconcile: Reconcile{TolerancePercent: "0.5", HoldFinalization: true},
		Log:       Log{Level: "info", Format: "text"},
	}
}

// Load reads the TOML file at path (if path is not empty) over the defaults,
// then applies POSTAGE_<SECTION>_<KEY> environment variables, then validates.
// Unknown keys in the file are errors, so a typo never silently falls back to
// a default.
func Load(path string, environ []string) (Config, error) {
	cfg := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		dec := toml.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			var de *toml.DecodeError
			var sm *toml.StrictMissingError
			switch {
			case errors.As(err, &sm):
				return cfg, fmt.Errorf("config %s: unknown setting %s (config.example.toml lists every setting)", path, strings.Join(missingKeys(sm), ", "))
			case errors.As(err, &de):
				row, col := de.Position()
				return cfg, fmt.Errorf("config %s:%d:%d: %s (fix the file; config.example.toml shows every setting)", path, row, col, de.Error())
			}
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func missingKeys(sm *toml.StrictMissingError) []string {
	var keys []string
	for _, e := range sm.Errors {
		keys = append(keys, strings.Join(e.Key(), "."))
	}
	return keys
}

// MaxFutureSkew is the largest ingest.future_skew: metering.MaxFutureSkew
// (internal/app checks that they agree).
const MaxFutureSkew = time.Hour

// Validate checks settings that would otherwise fail later and obscurely.
func (c Config) Validate() error {
	var errs []error
	if c.HTTP.Addr == "" {
		errs = append(errs, errors.New("http.addr is empty"))
	}
	if c.HTTP.MaxBodyBytes <= 0 {
		errs = append(errs, errors.New("http.max_body_bytes must be positive"))
	}
	if c.HTTP.RequestTimeout.Duration <= 0 || c.HTTP.WriteTimeout.Duration < c.HTTP.RequestTimeout.Duration {
		errs = append(errs, errors.New("http.request_timeout must be positive and at most http.write_timeout"))
	}
	if err := checkAdvertiseURL(c.HTTP.AdvertiseURL); err != nil {
		errs = append(errs, fmt.Errorf("http.advertise_url %q: %w", c.HTTP.AdvertiseURL, err))
	}
	if c.Ingest.MaxBatch <= 0 || c.Ingest.FlushSize <= 0 || c.Ingest.QueueSize <= 0 {
		errs = append(errs, errors.New("ingest.max_batch, flush_size and queue_size must be positive"))
	}
	if c.Ingest.QueueBytes < 1<<20 {
		errs = append(errs, errors.New("ingest.queue_bytes must be at least 1048576 (1 MiB)"))
	}
	if c.Ingest.IndexMemory < 1<<20 {
		errs = append(errs, errors.New("ingest.index_memory must be at least 1048576 (1 MiB)"))
	}
	if c.Ingest.FlushInterval.Duration <= 0 {
		errs = append(errs, errors.New("ingest.flush_interval must be positive"))
	}
	if c.Ingest.Horizon.Duration <= 0 {
		errs = append(errs, errors.New("ingest.horizon must be positive"))
	}
	if c.Ingest.FutureSkew.Duration < 0 || c.Ingest.FutureSkew.Duration > MaxFutureSkew {
		errs = append(errs, fmt.Errorf("ingest.future_skew must be 0 to %v (the meter reads a month's events from that long before the month)", MaxFutureSkew))
	}
	switch c.WhatsApp.BillableStatus {
	case "sent", "delivered":
	default:
		errs = append(errs, fmt.Errorf("whatsapp.billable_status %q: use delivered or sent", c.WhatsApp.BillableStatus))
	}
	if c.Usage.MaxRange.Duration <= 0 {
		errs = append(errs, errors.New("usage.max_range must be positive"))
	}
	if c.Usage.CacheBytes < 0 || c.Usage.CacheBytes > 1<<40 {
		errs = append(errs, errors.New("usage.cache_bytes must be between 0 and 1099511627776 (1 TiB)"))
	}
	errs = append(errs, c.ClickHouse.validate()...)
	if c.Billing.Grace.Duration < 0 {
		errs = append(errs, errors.New("billing.grace must not be negative"))
	}
	if c.Notify.Workers <= 0 || c.Notify.PollInterval.Duration <= 0 || c.Notify.Timeout.Duration <= 0 {
		errs = append(errs, errors.New("notify.workers, poll_interval and timeout must be positive"))
	}
	if c.Notify.RetryFor.Duration < time.Minute || c.Notify.Retention.Duration < c.Notify.RetryFor.Duration {
		errs = append(errs, errors.New("notify.retry_for must be at least 1m and notify.retention at least retry_for"))
	}
	if c.Notify.AlertInterval.Duration < 0 {
		errs = append(errs, errors.New("notify.alert_interval must not be negative"))
	}
	if p, err := strconv.ParseFloat(c.Reconcile.TolerancePercent, 64); err != nil || p < 0 || p > 100 || !decimalText.MatchString(c.Reconcile.TolerancePercent) {
		errs = append(errs, fmt.Errorf("reconcile.tolerance_percent %q: a decimal from 0 to 100, as a string (\"0.5\")", c.Reconcile.TolerancePercent))
	}
	for _, f := range []struct{ key, value string }{
		{"billing.issuer_name", c.Billing.IssuerName}, {"billing.issuer_address", c.Billing.IssuerAddress},
		{"billing.issuer_tax_id", c.Billing.IssuerTaxID}, {"billing.issuer_bank_details", c.Billing.IssuerBankDetails},
		{"billing.reverse_charge_note", c.Billing.ReverseChargeNote}, {"billing.exempt_note", c.Billing.ExemptNote},
	} {
		if err := documentText(f.value); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.key, err))
		}
	}
	if c.Documents.Tabs < 1 || c.Documents.Tabs > 16 {
		errs = append(errs, errors.New("documents.tabs must be 1 to 16"))
	}
	if c.Documents.Timeout.Duration <= 0 || c.Documents.Idle.Duration <= 0 {
		errs = append(errs, errors.New("documents.timeout and documents.idle must be positive"))
	}
	if c.Billing.PaymentTermsDays < 1 || c.Billing.PaymentTermsDays > 365 {
		errs = append(errs, errors.New("billing.payment_terms_days must be 1 to 365 (set a customer's own terms to 0 for due on issue)"))
	}
	if len(c.Billing.Reminders) > 10 {
		errs = append(errs, errors.New("billing.reminders: at most 10"))
	}
	seen := map[int]bool{}
	for _, r := range c.Billing.Reminders {
		m := reminderText.FindStringSubmatch(r)
		n := -1
		if m != nil {
			n, _ = strconv.Atoi(m[2])
			if m[1] == "-" {
				n = -n
			}
		}
		if m == nil || n > 365 || n < -365 || seen[n] {
			errs = append(errs, fmt.Errorf("billing.reminders %q: days relative to the due date, \"-3d\" to \"+365d\", each once", r))
			continue
		}
		seen[n] = true
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format %q: use text or json", c.Log.Format))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level %q: use debug, info, warn or error", c.Log.Level))
	}
	switch c.Log.Requests {
	case "", "debug", "info":
	default:
		errs = append(errs, fmt.Errorf("log.requests %q: use info or debug", c.Log.Requests))
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}

var reminderText = regexp.MustCompile(`^([+-]?)([0-9]{1,3})d$`)

// documentText checks a text that documents print: valid UTF-8, no NUL
// or other control characters but line breaks and tabs, at most 2000
// bytes.
func documentText(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	if len(s) > 2000 {
		return errors.New("longer than 2000 bytes")
	}
	for _, r := range s {
		if r == '\n' || r == '\t' || r == '\r' {
			continue
		}
		if unicode.IsControl(r) {
			return fmt.Errorf("has the control character %U", r)
		}
	}
	return nil
}

var decimalText = regexp.MustCompile(`^[0-9]{1,3}(\.[0-9]{1,6})?$`)

var clusterName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c ClickHouse) validate() []error {
	var errs []error
	if c.Cluster == "" {
		if c.InsertQuorum != 0 {
			errs = append(errs, errors.New("clickhouse.insert_quorum needs clickhouse.cluster (one server has no replicas to wait for)"))
		}
		return errs
	}
	if !clusterName.MatchString(c.Cluster) {
		errs = append(errs, fmt.Errorf("clickhouse.cluster %q: the name of a cluster in the servers' remote_servers (letters, digits, _)", c.Cluster))
	}
	if len(c.Addresses()) == 0 {
		errs = append(errs, errors.New("clickhouse.cluster needs clickhouse.addr or clickhouse.addrs: servers of the cluster (the managed servers of `postage dev` are one server)"))
	}
	if len(c.ZooKeeper) == 0 {
		errs = append(errs, errors.New("clickhouse.cluster needs clickhouse.zookeeper: the ZooKeeper servers that hold the shards' write leases (the cluster's own)"))
	}
	if c.InsertQuorum < 0 {
		errs = append(errs, errors.New("clickhouse.insert_quorum must not be negative (0 means a majority of each shard's replicas)"))
	}
	if c.InsertQuorumTimeout.Duration <= 0 {
		errs = append(errs, errors.New("clickhouse.insert_quorum_timeout must be positive"))
	} else if c.InsertQuorumTimeout.Duration >= 30*time.Second {
		errs = append(errs, errors.New("clickhouse.insert_quorum_timeout must be shorter than 30s, the ingester's bound on one flush: ClickHouse must answer a quorum it cannot reach before the ingester gives the insert up"))
	}
	if c.ZooKeeperSessionTimeout.Duration < 2*time.Second {
		errs = append(errs, errors.New("clickhouse.zookeeper_session_timeout must be at least 2s"))
	}
	seen := map[int]bool{}
	for _, n := range c.WriteShards {
		if n < 1 || seen[n] {
			errs = append(errs, fmt.Errorf("clickhouse.write_shards: %d is not a shard number (1, 2, ... as in system.clusters, each once)", n))
		}
		seen[n] = true
	}
	return errs
}

// checkAdvertiseURL accepts "" or an absolute http(s) URL with a host and
// nothing after its path.
func checkAdvertiseURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("must be an http:// or https:// URL with a host (and an optional path), where the other processes reach this one")
	}
	return nil
}

// EnvName returns the environment variable that overrides section.key.
func EnvName(section, key string) string {
	return "POSTAGE_" + strings.ToUpper(section) + "_" + strings.ToUpper(key)
}

// applyEnv sets fields from POSTAGE_SECTION_KEY variables, found by the
// fields' toml tags, so every setting can be given by environment.
func applyEnv(cfg *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "POSTAGE_") {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil
	}
	root := reflect.ValueOf(cfg).Elem()
	for i := 0; i < root.NumField(); i++ {
		section := root.Type().Field(i).Tag.Get("toml")
		sv := root.Field(i)
		for j := 0; j < sv.NumField(); j++ {
			key := sv.Type().Field(j).Tag.Get("toml")
			name := EnvName(section, key)
			val, ok := env[name]
			if !ok {
				continue
			}
			if err := setField(sv.Field(j), val); err != nil {
				return fmt.Errorf("environment %s: %w", name, err)
			}
		}
	}
	return nil
}

func setField(f reflect.Value, val string) error {
	if u, ok := f.Addr().Interface().(interface{ UnmarshalText([]byte) error }); ok {
		return u.UnmarshalText([]byte(val))
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(val)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer: %q", val)
		}
		f.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return fmt.Errorf("not a boolean: %q", val)
		}
		f.SetBool(b)
	case reflect.Slice:
		var parts []string
		for _, p := range strings.Split(val, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		if f.Type().Elem().Kind() == reflect.Int {
			ns := make([]int, len(parts))
			for i, p := range parts {
				n, err := strconv.Atoi(p)
				if err != nil {
					return fmt.Errorf("not a list of integers: %q", val)
				}
				ns[i] = n
			}
			f.Set(reflect.ValueOf(ns))
			return nil
		}
		f.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("unsupported setting type %s", f.Kind())
	}
	return nil
}
