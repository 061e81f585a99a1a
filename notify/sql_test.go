package notify

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"postage/pricing"
)

var placeholder = regexp.MustCompile(`\$([0-9]+)`)

// maxPlaceholder returns the highest $n of q.
func maxPlaceholder(q string) int {
	n := 0
	for _, m := range placeholder.FindAllStringSubmatch(q, -1) {
		k, _ := strconv.Atoi(m[1])
		n = max(n, k)
	}
	return n
}

func TestSQLText(t *testing.T) {
	now := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	nov := pricing.MustParseMonth("2026-11")
	ep := Endpoint{ID: "we_1", URL: "https://x.test/h", EventTypes: []EventType{InvoicePaid}, CreatedAt: now}
	yes, url := true, "https://y.test/h"
	type stmt struct {
		q    string
		args []any
	}
	s := func(q string, args []any) stmt { return stmt{q, args} }
	tests := []struct {
		name  string
		got   stmt
		wants []string
	}{
		{"emit", s(emitSQL(Event{ID: "evt_1", Type: InvoiceFinalized, CustomerID: "c", Created: now}, []byte("{}"))),
			[]string{"enabled AND (customer_id IS NULL OR customer_id = $3)", "'*' = ANY (event_types)", "FOR KEY SHARE",
				"WHERE EXISTS (SELECT 1 FROM subscribed)", "ON CONFLICT (type, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING", "FROM event CROSS JOIN subscribed"}},
		{"lockEndpoints", s(lockEndpointsSQL("c")), []string{"pg_advisory_xact_lock"}},
		{"countEndpoints", s(countEndpointsSQL("")), []string{"customer_id IS NOT DISTINCT FROM $1::text"}},
		{"insertEndpoint", s(insertEndpointSQL(ep, Sealed{KeyID: "k", Box: []byte{1}})), []string{"INSERT INTO webhook_endpoints", "RETURNING " + endpointColumns}},
		{"getEndpoint", s(getEndpointSQL("we_1", "")), []string{"WHERE id = $1"}},
		{"getEndpoint scoped", s(getEndpointSQL("we_1", "c")), []string{"WHERE id = $1 AND customer_id = $2"}},
		{"listEndpoints", s(listEndpointsSQL("c", "c", "we_0", 10)), []string{"id > $1", "customer_id = $2", "customer_id = $3", "ORDER BY id LIMIT $4"}},
		{"updateEndpoint", s(updateEndpointSQL("we_1", "c", EndpointUpdate{URL: &url, Enabled: &yes}, now)),
			[]string{"SET updated_at = $2, url = $3, enabled = $4 WHERE id = $1 AND customer_id = $5 RETURNING"}},
		{"pause", s(pauseSQL("we_1", now)), []string{"SET status = 'paused'", "status = 'pending'"}},
		{"resume", s(resumeSQL("we_1", now)), []string{"SET status = 'pending', next_attempt_at = $2", "status = 'paused'"}},
		{"rotate", s(rotateSecretSQL("we_1", "", Sealed{}, &now, now)), []string{"previous_secret = CASE WHEN $5::timestamptz IS NULL THEN NULL ELSE secret END", "secret = $3"}},
		{"deleteEndpoint", s(deleteEndpointSQL("we_1", "c")), []string{"DELETE FROM webhook_endpoints WHERE id = $1 AND customer_id = $2"}},
		{"listDeliveries", s(listDeliveriesSQL("we_1", DeliveryFailed, 9, 10)), []string{"d.endpoint_id = $1", "d.status = $2", "d.id < $3", "ORDER BY d.id DESC LIMIT $4"}},
		{"getDelivery", s(getDeliverySQL(1, "c")), []string{"WHERE d.id = $1 AND e.customer_id = $2"}},
		{"attempts", s(attemptsSQL(1)), []string{"FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt"}},
		{"lockDelivery", s(lockDeliverySQL(1, "")), []string{"SELECT e.enabled", "FOR UPDATE OF d"}},
		{"resend", s(resendSQL(1, now)), []string{"status = 'pending'", "retry_from = $2", "claim = NULL"}},
		{"claim", s(claimSQL(now, now, 5, "tok")), []string{"status = 'pending' AND next_attempt_at <= $1", "ORDER BY next_attempt_at", "FOR UPDATE SKIP LOCKED",
			"attempts = d.attempts + 1, next_attempt_at = $2, claim = $4"}},
		{"record", s(recordSQL(Result{ID: 1, Status: DeliveryPending})), []string{"INSERT INTO webhook_attempts", "WHEN status = 'paused' THEN 'paused'", "WHERE id = $1 AND claim = $10"}},
		{"release", s(releaseSQL([]int64{1}, "tok", now)), []string{"attempts = attempts - 1", "id = ANY ($1) AND claim = $2"}},
		{"prune", s(pruneSQL(now, 10)), []string{"created_at < $1", "status IN ('pending', 'paused')", "LIMIT $2"}},
		{"lockCustomerAlerts", s(lockCustomerAlertsSQL("c")), []string{"FOR NO KEY UPDATE"}},
		{"countAlerts", s(countAlertsSQL("c")), []string{"count(*) FROM usage_alerts"}},
		{"insertAlert", s(insertAlertSQL(Alert{ID: "al_1", Metric: MetricMessages, Threshold: decimal.NewFromInt(5)})), []string{"INSERT INTO usage_alerts", "RETURNING"}},
		{"customerExists", s(customerExistsSQL("c")), []string{"EXISTS"}},
		{"listAlerts", s(listAlertsSQL("c")), []string{"WHERE customer_id = $1 ORDER BY id"}},
		{"deleteAlert", s(deleteAlertSQL("c", "al_1")), []string{"WHERE customer_id = $1 AND id = $2"}},
		{"unfiredAlerts", s(unfiredAlertsSQL(nov, "", 10)), []string{"customer_id > $2 AND fired_period IS DISTINCT FROM $1", "ORDER BY customer_id, id LIMIT $3"}},
		{"fireAlert", s(fireAlertSQL("al_1", nov, now)), []string{"WHERE id = $1 AND fired_period IS DISTINCT FROM $2 RETURNING id"}},
		{"tryLockAlerts", s(tryLockAlertsSQL()), []string{"pg_try_advisory_lock($1, $2)"}},
		{"unlockAlerts", s(unlockAlertsSQL()), []string{"pg_advisory_unlock($1, $2)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flat := strings.Join(strings.Fields(tt.got.q), " ")
			for _, w := range tt.wants {
				if !strings.Contains(flat, strings.Join(strings.Fields(w), " ")) {
					t.Errorf("%s lacks %q", flat, w)
				}
			}
			if got, want := maxPlaceholder(tt.got.q), len(tt.got.args); got != want {
				t.Errorf("highest placeholder $%d, %d arguments: %s", got, want, flat)
			}
		})
	}
	// The fired period and the dedup key are stored as given.
	if _, args := fireAlertSQL("al_1", nov, now); args[1] != "2026-11" {
		t.Errorf("fired period stored as %v", args[1])
	}
	if _, args := emitSQL(Event{Key: "k"}, nil); args[3] != "k" {
		t.Errorf("key stored as %v", args[3])
	}
	if _, args := emitSQL(Event{}, nil); args[3] != nil {
		t.Errorf("no key stored as %v, want NULL", args[3])
	}
}
