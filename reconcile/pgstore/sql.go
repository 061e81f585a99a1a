package pgstore

import (
	"strconv"
	"time"

	"postage/pricing"
	"postage/reconcile"
)

// Every statement the store runs is built here, by a small pure function
// returning the query and its arguments (sql_test.go checks their text;
// the store tests run them against PostgreSQL).

const reportColumns = `id, month, source, format, granularity, currency, data_points, row_count, volume, cost::text, imported_at, imported_by`

var upstreamColumns = []string{"report_id", "phone_number_id", "day", "country", "category", "pricing_type", "volume", "cost"}

var differenceColumns = []string{"report_id", "seq", "customer_id", "day", "market", "category", "cause",
	"postage_messages", "upstream_messages", "postage_cost", "upstream_cost", "detail"}

func insertReportSQL(r reconcile.Report) (string, []any) {
	return `INSERT INTO upstream_reports (month, source, format, granularity, currency, data_points, row_count, volume, cost, imported_at, imported_by)
	VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) RETURNING id`,
		[]any{r.Month.String(), r.Source, r.Format, r.Granularity, r.Currency, r.DataPoints, r.Rows, r.Volume, numeric(r.Cost), r.ImportedAt, r.ImportedBy}
}

func latestReportSQL(m pricing.Month) (string, []any) {
	return `SELECT ` + reportColumns + ` FROM upstream_reports WHERE month = $1 ORDER BY id DESC LIMIT 1`, []any{m.String()}
}

// upstreamRowsSQL reads a report's rows with their customers (the
// phone-number map's, or "unknown:<id>" as the webhook adapter names a
// number no customer has), in customer order.
func upstreamRowsSQL(reportID int64) (string, []any) {
	return `SELECT coalesce(p.customer_id, 'unknown:' || u.phone_number_id) AS customer, p.customer_id IS NOT NULL,
	u.phone_number_id, u.day, u.country, u.category, u.pricing_type, u.volume, u.cost::text
	FROM upstream_usage u LEFT JOIN phone_numbers p ON p.phone_number_id = u.phone_number_id
	WHERE u.report_id = $1 ORDER BY customer`, []any{reportID}
}

func deleteResultSQL(reportID int64) (string, []any) {
	return `DELETE FROM reconciliations WHERE report_id = $1`, []any{reportID}
}

func insertResultSQL(reportID int64, at time.Time, doc []byte) (string, []any) {
	return `INSERT INTO reconciliations (report_id, compared_at, result) VALUES ($1,$2,$3)`, []any{reportID, at, doc}
}

func resultSQL(reportID int64) (string, []any) {
	return `SELECT result FROM reconciliations WHERE report_id = $1`, []any{reportID}
}

func differencesSQL(reportID int64, f reconcile.DiffFilter) (string, []any) {
	q := `SELECT seq, customer_id, day, market, category, cause, postage_messages, upstream_messages, postage_cost::text, upstream_cost::text, detail
	FROM reconciliation_differences WHERE report_id = $1 AND seq > $2`
	args := []any{reportID, f.After}
	if f.Cause != "" {
		args = append(args, string(f.Cause))
		q += ` AND cause = $` + strconv.Itoa(len(args))
	}
	if f.Customer != "" {
		args = append(args, f.Customer)
		q += ` AND customer_id = $` + strconv.Itoa(len(args))
	}
	q += ` ORDER BY seq`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += ` LIMIT $` + strconv.Itoa(len(args))
	}
	return q, args
}

func insertAcceptanceSQL(reportID int64, a reconcile.Acceptance) (string, []any) {
	return `INSERT INTO reconciliation_acceptances (report_id, accepted_by, accepted_at, reason, gross_messages, gross_amount) VALUES ($1,$2,$3,$4,$5,$6)`,
		[]any{reportID, a.By, a.At, a.Reason, a.GrossMessages, numeric(a.GrossAmount)}
}

func acceptancesSQL(reportID int64) (string, []any) {
	return `SELECT accepted_by, accepted_at, reason, gross_messages, gross_amount::text FROM reconciliation_acceptances WHERE report_id = $1 ORDER BY id`, []any{reportID}
}
