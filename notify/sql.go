package notify

import (
	"strconv"
	"strings"
	"time"

	"postage/pricing"
)

// Every statement of the outbox and of PGStore is built here, by a pure
// function tested on its text (sql_test.go) and run against PostgreSQL by
// the package's other tests.

// alertLockKey is the alert job's advisory lock: ("pstg", 50).
const (
	lockSpace    = 0x70737467 // "pstg", as billing's run locks
	alertLockKey = 50
)

// emitSQL writes an event and its deliveries in one statement: the
// enabled endpoints subscribed to it (locked FOR KEY SHARE, so one being
// deleted at the same moment is either waited for and skipped, or keeps
// its row until the deliveries reference it), the event if any endpoint
// is subscribed and its key is new, and a pending delivery per endpoint,
// due now.
func emitSQL(e Event, body []byte) (string, []any) {
	var key any
	if e.Key != "" {
		key = e.Key
	}
	return `WITH subscribed AS (
    SELECT id FROM webhook_endpoints
    WHERE enabled AND (customer_id IS NULL OR customer_id = $3)
      AND ($2 = ANY (event_types) OR '*' = ANY (event_types))
    FOR KEY SHARE
), event AS (
    INSERT INTO webhook_events (id, type, customer_id, dedup_key, payload, created_at)
    SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM subscribed)
    ON CONFLICT (type, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
    RETURNING id
)
INSERT INTO webhook_deliveries (event_id, endpoint_id, status, next_attempt_at, retry_from, created_at, updated_at)
SELECT event.id, subscribed.id, 'pending', $6, $6, $6, $6 FROM event CROSS JOIN subscribed`,
		[]any{e.ID, string(e.Type), e.CustomerID, key, string(body), e.Created}
}

const endpointColumns = `id, customer_id, url, description, event_types, enabled, previous_secret_expires_at, created_at, updated_at`

// scoped appends "AND <col> = $n" when scope is not "" (a customer key's
// customer) and returns the query and args.
func scoped(q string, args []any, col, scope string) (string, []any) {
	if scope == "" {
		return q, args
	}
	args = append(args, scope)
	return q + " AND " + col + " = $" + strconv.Itoa(len(args)), args
}

// lockEndpointsSQL serializes endpoint creation per customer ("" = the
// every-customer endpoints), so the count check holds.
func lockEndpointsSQL(customer string) (string, []any) {
	return `SELECT pg_advisory_xact_lock(hashtextextended('webhook_endpoints:' || $1, 0))`, []any{customer}
}

func countEndpointsSQL(customer string) (string, []any) {
	var c any
	if customer != "" {
		c = customer
	}
	return `SELECT count(*) FROM webhook_endpoints WHERE customer_id IS NOT DISTINCT FROM $1::text`, []any{c}
}

func insertEndpointSQL(e Endpoint, s Sealed) (string, []any) {
	var c any
	if e.CustomerID != "" {
		c = e.CustomerID
	}
	return `INSERT INTO webhook_endpoints (id, customer_id, url, description, event_types, enabled, secret_key_id, secret, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, true, $6, $7, $8, $8)
RETURNING ` + endpointColumns, []any{e.ID, c, e.URL, e.Description, typeStrings(e.EventTypes), s.KeyID, s.Box, e.CreatedAt}
}

func getEndpointSQL(id, scope string) (string, []any) {
	return scoped(`SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = $1`, []any{id}, "customer_id", scope)
}

// listEndpointsSQL lists endpoints by id after the cursor: of customer
// when set, else of the scope, else all.
func listEndpointsSQL(customer, scope, after string, limit int) (string, []any) {
	q, args := `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id > $1`, []any{after}
	if customer != "" {
		args = append(args, customer)
		q += " AND customer_id = $" + strconv.Itoa(len(args))
	}
	q, args = scoped(q, args, "customer_id", scope)
	args = append(args, limit+1)
	return q + " ORDER BY id LIMIT $" + strconv.Itoa(len(args)), args
}

func updateEndpointSQL(id, scope string, u EndpointUpdate, now time.Time) (string, []any) {
	args := []any{id, now}
	set := []string{"updated_at = $2"}
	add := func(col string, v any) {
		args = append(args, v)
		set = append(set, col+" = $"+strconv.Itoa(len(args)))
	}
	if u.URL != nil {
		add("url", *u.URL)
	}
	if u.Description != nil {
		add("description", *u.Description)
	}
	if u.EventTypes != nil {
		add("event_types", typeStrings(u.EventTypes))
	}
	if u.Enabled != nil {
		add("enabled", *u.Enabled)
	}
	q, args := scoped(`UPDATE webhook_endpoints SET `+strings.Join(set, ", ")+` WHERE id = $1`, args, "customer_id", scope)
	return q + " RETURNING " + endpointColumns, args
}

// pauseSQL pauses an endpoint's pending deliveries (it was disabled).
func pauseSQL(endpointID string, now time.Time) (string, []any) {
	return `UPDATE webhook_deliveries SET status = 'paused', updated_at = $2 WHERE endpoint_id = $1 AND status = 'pending'`, []any{endpointID, now}
}

// resumeSQL makes an endpoint's paused deliveries due now (it was enabled).
func resumeSQL(endpointID string, now time.Time) (string, []any) {
	return `UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2, updated_at = $2 WHERE endpoint_id = $1 AND status = 'paused'`, []any{endpointID, now}
}

func rotateSecretSQL(id, scope string, s Sealed, previousUntil *time.Time, now time.Time) (string, []any) {
	q, args := scoped(`UPDATE webhook_endpoints SET
    previous_secret_key_id = CASE WHEN $5::timestamptz IS NULL THEN NULL ELSE secret_key_id END,
    previous_secret = CASE WHEN $5::timestamptz IS NULL THEN NULL ELSE secret END,
    previous_secret_expires_at = $5,
    secret_key_id = $2, secret = $3, updated_at = $4
WHERE id = $1`, []any{id, s.KeyID, s.Box, now, previousUntil}, "customer_id", scope)
	return q + " RETURNING " + endpointColumns, args
}

func deleteEndpointSQL(id, scope string) (string, []any) {
	return scoped(`DELETE FROM webhook_endpoints WHERE id = $1`, []any{id}, "customer_id", scope)
}

const deliveryColumns = `d.id, d.event_id, v.type, v.customer_id, d.endpoint_id, d.status, d.attempts, d.next_attempt_at, d.retry_from,
    d.last_attempt_at, d.last_status_code, d.last_error, d.created_at`

// listDeliveriesSQL lists an endpoint's deliveries, newest first, before
// the cursor (0: from the newest).
func listDeliveriesSQL(endpointID string, status DeliveryStatus, before int64, limit int) (string, []any) {
	q, args := `SELECT `+deliveryColumns+`
FROM webhook_deliveries d JOIN webhook_events v ON v.id = d.event_id
WHERE d.endpoint_id = $1`, []any{endpointID}
	if status != "" {
		args = append(args, string(status))
		q += " AND d.status = $" + strconv.Itoa(len(args))
	}
	if before > 0 {
		args = append(args, before)
		q += " AND d.id < $" + strconv.Itoa(len(args))
	}
	args = append(args, limit+1)
	return q + " ORDER BY d.id DESC LIMIT $" + strconv.Itoa(len(args)), args
}

func getDeliverySQL(id int64, scope string) (string, []any) {
	return scoped(`SELECT `+deliveryColumns+`
FROM webhook_deliveries d JOIN webhook_events v ON v.id = d.event_id JOIN webhook_endpoints e ON e.id = d.endpoint_id
WHERE d.id = $1`, []any{id}, "e.customer_id", scope)
}

func attemptsSQL(deliveryID int64) (string, []any) {
	return `SELECT attempt, at, status_code, duration_ms, error, response FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt`, []any{deliveryID}
}

// lockDeliverySQL locks a delivery (in scope) and says whether its
// endpoint is enabled.
func lockDeliverySQL(id int64, scope string) (string, []any) {
	q, args := scoped(`SELECT e.enabled FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id = $1`, []any{id}, "e.customer_id", scope)
	return q + " FOR UPDATE OF d", args
}

// resendSQL makes a delivery pending and due now, its retry window
// starting again; a claim in flight no longer owns it.
func resendSQL(id int64, now time.Time) (string, []any) {
	return `UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2, retry_from = $2, claim = NULL, updated_at = $2 WHERE id = $1`, []any{id, now}
}

// claimSQL claims due deliveries: the earliest due first, skipping rows
// another dispatcher has locked, each counted as attempted and leased
// (next_attempt_at moved to the lease's end) under the token; it returns
// what the attempts need.
func claimSQL(now, leaseUntil time.Time, limit int, token string) (string, []any) {
	return `WITH due AS (
    SELECT id FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= $1
    ORDER BY next_attempt_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE webhook_deliveries d SET attempts = d.attempts + 1, next_attempt_at = $2, claim = $4, updated_at = $1
    FROM due WHERE d.id = due.id
    RETURNING d.id, d.attempts, d.retry_from, d.event_id, d.endpoint_id
)
SELECT c.id, c.attempts, c.retry_from, c.event_id, v.type, v.payload, e.url,
    e.secret_key_id, e.secret, e.previous_secret_key_id, e.previous_secret, e.previous_secret_expires_at, c.endpoint_id
FROM claimed c JOIN webhook_events v ON v.id = c.event_id JOIN webhook_endpoints e ON e.id = c.endpoint_id`,
		[]any{now, leaseUntil, limit, token}
}

// recordSQL logs an attempt and, if the delivery is still leased under
// the token, sets its next state: succeeded or failed as given, else
// pending again at next (paused stays paused: its endpoint was disabled
// meanwhile).
func recordSQL(r Result) (string, []any) {
	var code any
	if r.StatusCode != 0 {
		code = r.StatusCode
	}
	return `WITH attempt AS (
    INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, duration_ms, error, response)
    SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = $1)
    ON CONFLICT (delivery_id, attempt) DO NOTHING
)
UPDATE webhook_deliveries SET
    status = CASE WHEN $8::text IN ('succeeded', 'failed') THEN $8::text WHEN status = 'paused' THEN 'paused' ELSE 'pending' END,
    next_attempt_at = CASE WHEN $8::text = 'pending' THEN $9 ELSE next_attempt_at END,
    claim = NULL, last_attempt_at = $3, last_status_code = $4, last_error = $6, updated_at = $3
WHERE id = $1 AND claim = $10`,
		[]any{r.ID, r.Attempt, r.At, code, r.Duration.Milliseconds(), r.Error, r.Response, string(r.Status), r.Next, r.Token}
}

// releaseSQL gives claimed deliveries back unattempted.
func releaseSQL(ids []int64, token string, now time.Time) (string, []any) {
	return `UPDATE webhook_deliveries SET attempts = attempts - 1, next_attempt_at = $3, claim = NULL, updated_at = $3
WHERE id = ANY ($1) AND claim = $2`, []any{ids, token, now}
}

// pruneSQL deletes old events with no open delivery (their deliveries
// and attempts cascade), oldest first.
func pruneSQL(cutoff time.Time, limit int) (string, []any) {
	return `DELETE FROM webhook_events WHERE id IN (
    SELECT v.id FROM webhook_events v
    WHERE v.created_at < $1
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = v.id AND d.status IN ('pending', 'paused'))
    ORDER BY v.created_at
    LIMIT $2)`, []any{cutoff, limit}
}

const alertColumns = `id, customer_id, metric, threshold::text, currency, fired_period, fired_at, created_at`

// lockCustomerAlertsSQL locks the customer's row, which serializes
// alert creation per customer (the count check holds), and returns its
// currency (no row: no such customer).
func lockCustomerAlertsSQL(customerID string) (string, []any) {
	return `SELECT currency FROM customers WHERE id = $1 FOR NO KEY UPDATE`, []any{customerID}
}

func countAlertsSQL(customerID string) (string, []any) {
	return `SELECT count(*) FROM usage_alerts WHERE customer_id = $1`, []any{customerID}
}

func insertAlertSQL(a Alert) (string, []any) {
	var cur any
	if a.Currency != "" {
		cur = a.Currency
	}
	return `INSERT INTO usage_alerts (id, customer_id, metric, threshold, currency, created_at)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING ` + alertColumns,
		[]any{a.ID, a.CustomerID, string(a.Metric), a.Threshold.String(), cur, a.CreatedAt}
}

func customerExistsSQL(customerID string) (string, []any) {
	return `SELECT EXISTS (SELECT 1 FROM customers WHERE id = $1)`, []any{customerID}
}

func listAlertsSQL(customerID string) (string, []any) {
	return `SELECT ` + alertColumns + ` FROM usage_alerts WHERE customer_id = $1 ORDER BY id`, []any{customerID}
}

func deleteAlertSQL(customerID, id string) (string, []any) {
	return `DELETE FROM usage_alerts WHERE customer_id = $1 AND id = $2`, []any{customerID, id}
}

// unfiredAlertsSQL reads the alerts that have not fired in period, by
// customer then id, after a customer.
func unfiredAlertsSQL(period pricing.Month, afterCustomer string, limit int) (string, []any) {
	return `SELECT ` + alertColumns + ` FROM usage_alerts
WHERE customer_id > $2 AND fired_period IS DISTINCT FROM $1
ORDER BY customer_id, id LIMIT $3`, []any{period.String(), afterCustomer, limit}
}

// fireAlertSQL marks an alert fired in period unless it already did.
func fireAlertSQL(id string, period pricing.Month, now time.Time) (string, []any) {
	return `UPDATE usage_alerts SET fired_period = $2, fired_at = $3 WHERE id = $1 AND fired_period IS DISTINCT FROM $2 RETURNING id`,
		[]any{id, period.String(), now}
}

func tryLockAlertsSQL() (string, []any) {
	return `SELECT pg_try_advisory_lock($1, $2)`, []any{lockSpace, alertLockKey}
}

func unlockAlertsSQL() (string, []any) {
	return `SELECT pg_advisory_unlock($1, $2)`, []any{lockSpace, alertLockKey}
}

func typeStrings(ts []EventType) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t)
	}
	return out
}
