package notify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"postage"
	"postage/pricing"
)

// PGStore is Store in PostgreSQL (migrations 0050 and 0051).
type PGStore struct {
	DB *pgxpool.Pool
}

var _ Store = (*PGStore)(nil)

// NewPGStore returns a store on db.
func NewPGStore(db *pgxpool.Pool) *PGStore { return &PGStore{DB: db} }

const (
	foreignKeyViolation = "23503"
	uniqueViolation     = "23505"
)

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func scanEndpoint(r pgx.Row) (Endpoint, error) {
	var e Endpoint
	var cust *string
	var types []string
	err := r.Scan(&e.ID, &cust, &e.URL, &e.Description, &types, &e.Enabled, &e.PreviousSecretExpiresAt, &e.CreatedAt, &e.UpdatedAt)
	if err != nil {
		return e, err
	}
	if cust != nil {
		e.CustomerID = *cust
	}
	e.EventTypes = make([]EventType, len(types))
	for i, t := range types {
		e.EventTypes[i] = EventType(t)
	}
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	if t := e.PreviousSecretExpiresAt; t != nil {
		u := t.UTC()
		e.PreviousSecretExpiresAt = &u
	}
	return e, nil
}

func notFoundEndpoint(id string) error {
	return postage.Errorf(postage.ENOTFOUND, "webhook endpoint %q not found", id)
}

// InsertEndpoint implements Store.
func (s *PGStore) InsertEndpoint(ctx context.Context, e Endpoint, secret Sealed) (Endpoint, error) {
	var out Endpoint
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		q, args := lockEndpointsSQL(e.CustomerID)
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return err
		}
		var n int
		q, args = countEndpointsSQL(e.CustomerID)
		if err := tx.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			return err
		}
		if n >= MaxEndpoints {
			whose := "every customer"
			if e.CustomerID != "" {
				whose = "customer " + e.CustomerID
			}
			return postage.Errorf(postage.ECONFLICT, "%s has %d webhook endpoints, the most allowed: delete one first", whose, n)
		}
		q, args = insertEndpointSQL(e, secret)
		var err error
		out, err = scanEndpoint(tx.QueryRow(ctx, q, args...))
		return err
	})
	var pe *postage.Error
	switch {
	case err == nil || errors.As(err, &pe):
		return out, err
	case pgCode(err) == foreignKeyViolation:
		return Endpoint{}, postage.Errorf(postage.ENOTFOUND, "customer %q not found", e.CustomerID)
	case pgCode(err) == uniqueViolation:
		return Endpoint{}, postage.Errorf(postage.ECONFLICT, "webhook endpoint %s exists", e.ID)
	}
	return Endpoint{}, fmt.Errorf("create webhook endpoint: %w", err)
}

// Endpoint implements Store.
func (s *PGStore) Endpoint(ctx context.Context, id, scope string) (Endpoint, error) {
	q, args := getEndpointSQL(id, scope)
	e, err := scanEndpoint(s.DB.QueryRow(ctx, q, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, notFoundEndpoint(id)
	} else if err != nil {
		return e, fmt.Errorf("read webhook endpoint: %w", err)
	}
	return e, nil
}

// Endpoints implements Store.
func (s *PGStore) Endpoints(ctx context.Context, customer, scope string, p Page) ([]Endpoint, string, error) {
	limit := p.limit()
	q, args := listEndpointsSQL(customer, scope, p.Cursor, limit)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list webhook endpoints: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Endpoint, error) { return scanEndpoint(r) })
	if err != nil {
		return nil, "", fmt.Errorf("list webhook endpoints: %w", err)
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		next = list[limit-1].ID
	}
	return list, next, nil
}

// UpdateEndpoint implements Store.
func (s *PGStore) UpdateEndpoint(ctx context.Context, id, scope string, u EndpointUpdate, now time.Time) (Endpoint, error) {
	var out Endpoint
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		q, args := updateEndpointSQL(id, scope, u, now)
		var err error
		if out, err = scanEndpoint(tx.QueryRow(ctx, q, args...)); errors.Is(err, pgx.ErrNoRows) {
			return notFoundEndpoint(id)
		} else if err != nil {
			return fmt.Errorf("update webhook endpoint: %w", err)
		}
		if u.Enabled != nil {
			if *u.Enabled {
				q, args = resumeSQL(id, now)
			} else {
				q, args = pauseSQL(id, now)
			}
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return fmt.Errorf("update webhook endpoint's deliveries: %w", err)
			}
		}
		return nil
	})
	return out, err
}

// RotateSecret implements Store.
func (s *PGStore) RotateSecret(ctx context.Context, id, scope string, secret Sealed, previousUntil *time.Time, now time.Time) (Endpoint, error) {
	q, args := rotateSecretSQL(id, scope, secret, previousUntil, now)
	e, err := scanEndpoint(s.DB.QueryRow(ctx, q, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, notFoundEndpoint(id)
	} else if err != nil {
		return e, fmt.Errorf("rotate webhook secret: %w", err)
	}
	return e, nil
}

// DeleteEndpoint implements Store.
func (s *PGStore) DeleteEndpoint(ctx context.Context, id, scope string) error {
	q, args := deleteEndpointSQL(id, scope)
	tag, err := s.DB.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("delete webhook endpoint: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return notFoundEndpoint(id)
	}
	return nil
}

func scanDelivery(r pgx.Row) (Delivery, error) {
	var d Delivery
	var typ, status string
	var next, retryFrom time.Time
	var code *int
	var lastErr *string
	err := r.Scan(&d.ID, &d.EventID, &typ, &d.CustomerID, &d.EndpointID, &status, &d.Attempts, &next, &retryFrom,
		&d.LastAttemptAt, &code, &lastErr, &d.CreatedAt)
	if err != nil {
		return d, err
	}
	d.EventType, d.Status = EventType(typ), DeliveryStatus(status)
	if d.Status == DeliveryPending {
		n := next.UTC()
		d.NextAttemptAt = &n
	}
	d.RetryUntil = retryFrom.UTC() // the Service adds the retry window
	if code != nil {
		d.LastStatusCode = *code
	}
	if lastErr != nil {
		d.LastError = *lastErr
	}
	if d.LastAttemptAt != nil {
		t := d.LastAttemptAt.UTC()
		d.LastAttemptAt = &t
	}
	d.CreatedAt = d.CreatedAt.UTC()
	return d, nil
}

// Deliveries implements Store. RetryUntil holds the start of the retry
// window; the Service adds its length.
func (s *PGStore) Deliveries(ctx context.Context, endpointID, scope string, status DeliveryStatus, p Page) ([]Delivery, string, error) {
	if _, err := s.Endpoint(ctx, endpointID, scope); err != nil {
		return nil, "", err
	}
	var before int64
	if p.Cursor != "" {
		n, err := strconv.ParseInt(p.Cursor, 10, 64)
		if err != nil || n <= 0 {
			return nil, "", postage.Errorf(postage.EINVALID, "cursor %q: pass back next_cursor as it was given", p.Cursor)
		}
		before = n
	}
	limit := p.limit()
	q, args := listDeliveriesSQL(endpointID, status, before, limit)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list webhook deliveries: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) { return scanDelivery(r) })
	if err != nil {
		return nil, "", fmt.Errorf("list webhook deliveries: %w", err)
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		next = strconv.FormatInt(list[limit-1].ID, 10)
	}
	return list, next, nil
}

func notFoundDelivery(id int64) error {
	return postage.Errorf(postage.ENOTFOUND, "webhook delivery %d not found", id)
}

// Delivery implements Store (RetryUntil as in Deliveries).
func (s *PGStore) Delivery(ctx context.Context, id int64, scope string) (DeliveryDetail, error) {
	q, args := getDeliverySQL(id, scope)
	d, err := scanDelivery(s.DB.QueryRow(ctx, q, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return DeliveryDetail{}, notFoundDelivery(id)
	} else if err != nil {
		return DeliveryDetail{}, fmt.Errorf("read webhook delivery: %w", err)
	}
	q, args = attemptsSQL(id)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return DeliveryDetail{}, fmt.Errorf("read webhook attempts: %w", err)
	}
	log, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Attempt, error) {
		var a Attempt
		var code *int
		err := r.Scan(&a.Attempt, &a.At, &code, &a.DurationMS, &a.Error, &a.Response)
		if code != nil {
			a.StatusCode = *code
		}
		a.At = a.At.UTC()
		return a, err
	})
	if err != nil {
		return DeliveryDetail{}, fmt.Errorf("read webhook attempts: %w", err)
	}
	if log == nil {
		log = []Attempt{}
	}
	return DeliveryDetail{Delivery: d, AttemptLog: log}, nil
}

// Resend implements Store.
func (s *PGStore) Resend(ctx context.Context, id int64, scope string, now time.Time) (Delivery, error) {
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		var enabled bool
		q, args := lockDeliverySQL(id, scope)
		if err := tx.QueryRow(ctx, q, args...).Scan(&enabled); errors.Is(err, pgx.ErrNoRows) {
			return notFoundDelivery(id)
		} else if err != nil {
			return fmt.Errorf("resend webhook delivery: %w", err)
		}
		if !enabled {
			return postage.Errorf(postage.ECONFLICT, "webhook delivery %d: its endpoint is disabled; enable it first (its paused deliveries are then sent)", id)
		}
		q, args = resendSQL(id, now)
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("resend webhook delivery: %w", err)
		}
		return nil
	})
	if err != nil {
		return Delivery{}, err
	}
	d, err := s.Delivery(ctx, id, scope)
	return d.Delivery, err
}

// Claim implements Store.
func (s *PGStore) Claim(ctx context.Context, now, leaseUntil time.Time, limit int, token string) ([]Claimed, error) {
	q, args := claimSQL(now, leaseUntil, limit, token)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Claimed, error) {
		var c Claimed
		var typ, payload string
		var prevKey *string
		var prevBox []byte
		err := r.Scan(&c.ID, &c.Attempt, &c.RetryFrom, &c.EventID, &typ, &payload, &c.URL,
			&c.Secret.KeyID, &c.Secret.Box, &prevKey, &prevBox, &c.PreviousUntil, &c.EndpointID)
		c.EventType, c.Payload = EventType(typ), []byte(payload)
		if prevKey != nil {
			c.Previous = &Sealed{KeyID: *prevKey, Box: prevBox}
		}
		c.RetryFrom = c.RetryFrom.UTC()
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	return list, nil
}

// Record implements Store.
func (s *PGStore) Record(ctx context.Context, r Result) error {
	r.Error = sanitize(r.Error, 1000)
	r.Response = sanitize(r.Response, maxResponse)
	q, args := recordSQL(r)
	if _, err := s.DB.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("record webhook attempt: %w", err)
	}
	return nil
}

// Release implements Store.
func (s *PGStore) Release(ctx context.Context, ids []int64, token string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	q, args := releaseSQL(ids, token, now)
	if _, err := s.DB.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("release webhook deliveries: %w", err)
	}
	return nil
}

// Prune implements Store.
func (s *PGStore) Prune(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	q, args := pruneSQL(cutoff, limit)
	tag, err := s.DB.Exec(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("prune webhook events: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

func scanAlert(r pgx.Row) (Alert, error) {
	var a Alert
	var metric, threshold string
	var currency, fired *string
	err := r.Scan(&a.ID, &a.CustomerID, &metric, &threshold, &currency, &fired, &a.FiredAt, &a.CreatedAt)
	if err != nil {
		return a, err
	}
	a.Metric = Metric(metric)
	if a.Threshold, err = decimal.NewFromString(threshold); err != nil {
		return a, fmt.Errorf("alert %s threshold: %w", a.ID, err)
	}
	if currency != nil {
		a.Currency = *currency
	}
	if fired != nil {
		m, err := pricing.ParseMonth(*fired)
		if err != nil {
			return a, fmt.Errorf("alert %s: %w", a.ID, err)
		}
		a.FiredPeriod = &m
	}
	if a.FiredAt != nil {
		t := a.FiredAt.UTC()
		a.FiredAt = &t
	}
	a.CreatedAt = a.CreatedAt.UTC()
	return a, nil
}

// CreateAlert implements Store.
func (s *PGStore) CreateAlert(ctx context.Context, customerID string, n NewAlert, id string, now time.Time) (Alert, error) {
	var out Alert
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		var currency string
		q, args := lockCustomerAlertsSQL(customerID)
		if err := tx.QueryRow(ctx, q, args...).Scan(&currency); errors.Is(err, pgx.ErrNoRows) {
			return postage.Errorf(postage.ENOTFOUND, "customer %q not found", customerID)
		} else if err != nil {
			return fmt.Errorf("create alert: %w", err)
		}
		if err := n.Validate(currency); err != nil {
			return err
		}
		var count int
		q, args = countAlertsSQL(customerID)
		if err := tx.QueryRow(ctx, q, args...).Scan(&count); err != nil {
			return fmt.Errorf("create alert: %w", err)
		}
		if count >= MaxAlerts {
			return postage.Errorf(postage.ECONFLICT, "customer %s has %d alerts, the most allowed: delete one first", customerID, count)
		}
		a := Alert{ID: id, CustomerID: customerID, Metric: n.Metric, Threshold: n.Threshold, CreatedAt: now}
		if n.Metric == MetricAmount {
			a.Currency = currency
		}
		q, args = insertAlertSQL(a)
		var err error
		if out, err = scanAlert(tx.QueryRow(ctx, q, args...)); err != nil {
			return fmt.Errorf("create alert: %w", err)
		}
		return nil
	})
	return out, err
}

// Alerts implements Store.
func (s *PGStore) Alerts(ctx context.Context, customerID string) ([]Alert, error) {
	var ok bool
	q, args := customerExistsSQL(customerID)
	if err := s.DB.QueryRow(ctx, q, args...).Scan(&ok); err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	if !ok {
		return nil, postage.Errorf(postage.ENOTFOUND, "customer %q not found", customerID)
	}
	q, args = listAlertsSQL(customerID)
	return s.alerts(ctx, q, args)
}

func (s *PGStore) alerts(ctx context.Context, q string, args []any) ([]Alert, error) {
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Alert, error) { return scanAlert(r) })
	if err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	return list, nil
}

// DeleteAlert implements Store.
func (s *PGStore) DeleteAlert(ctx context.Context, customerID, id string) error {
	q, args := deleteAlertSQL(customerID, id)
	tag, err := s.DB.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("delete alert: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return postage.Errorf(postage.ENOTFOUND, "alert %q of customer %q not found", id, customerID)
	}
	return nil
}

// UnfiredAlerts implements Store.
func (s *PGStore) UnfiredAlerts(ctx context.Context, period pricing.Month, afterCustomer string, limit int) ([]Alert, error) {
	limit = max(limit, MaxAlerts+1)
	q, args := unfiredAlertsSQL(period, afterCustomer, limit)
	list, err := s.alerts(ctx, q, args)
	if err != nil || len(list) < limit {
		return list, err
	}
	// Full page: the last customer's alerts may go on; leave them to the
	// next page, which starts after the last whole customer.
	last := list[len(list)-1].CustomerID
	for len(list) > 0 && list[len(list)-1].CustomerID == last {
		list = list[:len(list)-1]
	}
	return list, nil
}

// FireAlert implements Store.
func (s *PGStore) FireAlert(ctx context.Context, a Alert, period pricing.Month, now time.Time, emit func(ctx context.Context, q Querier) error) (bool, error) {
	fired := false
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		var id string
		q, args := fireAlertSQL(a.ID, period, now)
		if err := tx.QueryRow(ctx, q, args...).Scan(&id); errors.Is(err, pgx.ErrNoRows) {
			return nil
		} else if err != nil {
			return fmt.Errorf("fire alert %s: %w", a.ID, err)
		}
		fired = true
		return emit(ctx, tx)
	})
	if err != nil {
		return false, err
	}
	return fired, nil
}

// LockAlerts implements Store: a session advisory lock on a connection of
// its own, released by PostgreSQL if the process or connection dies.
func (s *PGStore) LockAlerts(ctx context.Context) (unlock func(), ok bool, err error) {
	conn, err := s.DB.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("alert lock: %w", err)
	}
	q, args := tryLockAlertsSQL()
	if err := conn.QueryRow(ctx, q, args...).Scan(&ok); err != nil || !ok {
		conn.Release()
		if err != nil {
			return nil, false, fmt.Errorf("alert lock: %w", err)
		}
		return nil, false, nil
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		q, args := unlockAlertsSQL()
		if _, err := conn.Exec(uctx, q, args...); err != nil {
			conn.Conn().Close(uctx) // a closed session releases its locks
		}
		conn.Release()
	}, true, nil
}
