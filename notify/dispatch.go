package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"postage"
	"postage/notify/signature"
)

// maxResponse is how much of a receiver's answer the delivery log keeps.
const maxResponse = 2048

// Dispatcher delivers the outbox: it claims due deliveries (any number of
// dispatchers, in any number of processes, share the work without taking
// the same delivery twice), posts each event signed to its endpoint and
// records the attempt and what comes next. A delivery whose dispatcher
// died during the attempt is due again when its lease ends: deliveries
// are at least once, never lost.
type Dispatcher struct {
	Store Store
	Keys  *Keyring
	// Client posts the requests; it should come from TargetPolicy.Client
	// (the SSRF rules are checked at every connection).
	Client *http.Client
	Retry  Retry
	// Timeout bounds one attempt (10 s when zero); the lease is Timeout
	// plus a minute.
	Timeout time.Duration
	// Workers is how many attempts run at once (8 when zero); Batch how
	// many deliveries one claim takes (Workers × 4 when zero).
	Workers int
	Batch   int
	// Poll is how long Run waits when nothing was due (1 s when zero).
	Poll time.Duration
	// Retention is how long events are kept once their deliveries ended
	// (30 days when zero); Run prunes older ones hourly.
	Retention time.Duration
	UserAgent string
	Now       func() time.Time
	Log       *slog.Logger
	Metrics   *Metrics
}

// Metrics counts attempts by outcome.
type Metrics struct {
	Attempts *prometheus.CounterVec
}

// NewMetrics registers the webhook metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postage_webhook_attempts_total",
		Help: "Webhook delivery attempts by outcome: succeeded, retry (failed, tried again later) or failed (the retry window ended).",
	}, []string{"outcome"})}
	if reg != nil {
		_ = reg.Register(m.Attempts)
	}
	return m
}

func (d *Dispatcher) now() time.Time {
	if d.Now != nil {
		return d.Now().UTC()
	}
	return time.Now().UTC()
}

func (d *Dispatcher) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.Default()
}

func (d *Dispatcher) timeout() time.Duration {
	if d.Timeout > 0 {
		return d.Timeout
	}
	return 10 * time.Second
}

func (d *Dispatcher) workers() int {
	if d.Workers > 0 {
		return d.Workers
	}
	return 8
}

func (d *Dispatcher) batch() int {
	if d.Batch > 0 {
		return d.Batch
	}
	return d.workers() * 4
}

// lease is how long a claimed delivery is ours: longer than any attempt.
func (d *Dispatcher) lease() time.Duration { return d.timeout() + time.Minute }

// DeliverDue claims the deliveries due now (one batch) and attempts each,
// Workers at a time, recording every outcome; it returns how many it
// attempted. When ctx ends, claims not yet attempted are given back.
func (d *Dispatcher) DeliverDue(ctx context.Context) (int, error) {
	now := d.now()
	token := newToken()
	claims, err := d.Store.Claim(ctx, now, now.Add(d.lease()), d.batch(), token)
	if err != nil || len(claims) == 0 {
		return 0, err
	}
	var (
		mu       sync.Mutex
		released []int64
		errs     []error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, d.workers())
	)
	for _, c := range claims {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			released = append(released, c.ID)
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if ctx.Err() != nil {
				mu.Lock()
				released = append(released, c.ID)
				mu.Unlock()
				return
			}
			r, ok := d.attempt(ctx, c, token)
			if !ok { // ctx ended during the attempt: give it back, do not count it
				mu.Lock()
				released = append(released, c.ID)
				mu.Unlock()
				return
			}
			if err := d.Store.Record(context.WithoutCancel(ctx), r); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(released) > 0 {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := d.Store.Release(rctx, released, token, d.now()); err != nil {
			errs = append(errs, err) // their leases run out instead
		}
	}
	return len(claims) - len(released), errors.Join(errs...)
}

// attempt posts one claimed delivery and returns its result; ok is false
// when ctx ended before the attempt had an outcome.
func (d *Dispatcher) attempt(ctx context.Context, c Claimed, token string) (Result, bool) {
	at := d.now()
	r := Result{ID: c.ID, Token: token, Attempt: c.Attempt, At: at}
	start := time.Now()
	code, resp, err := d.post(ctx, c, at)
	r.Duration = time.Since(start) // measured on the wall clock, whatever Now is
	if ctx.Err() != nil {
		return r, false
	}
	r.StatusCode, r.Response = code, resp
	outcome := "succeeded"
	switch {
	case err == nil && code >= 200 && code < 300:
		r.Status = DeliverySucceeded
	default:
		switch {
		case err != nil:
			r.Error = err.Error()
		case code >= 300 && code < 400:
			r.Error = fmt.Sprintf("HTTP %d: redirects are not followed; register the final URL", code)
		default:
			r.Error = fmt.Sprintf("HTTP %d", code)
		}
		if next, ok := d.Retry.Next(c.Attempt, d.now(), c.RetryFrom); ok {
			r.Status, r.Next, outcome = DeliveryPending, next, "retry"
		} else {
			r.Status, outcome = DeliveryFailed, "failed"
		}
	}
	if d.Metrics != nil {
		d.Metrics.Attempts.WithLabelValues(outcome).Inc()
	}
	d.log().Debug("webhook attempt", "delivery", c.ID, "event", c.EventID, "endpoint", c.EndpointID, "attempt", c.Attempt, "status", code, "outcome", outcome, "err", r.Error)
	return r, true
}

// post sends the signed request and returns the status and the start of
// the answer.
func (d *Dispatcher) post(ctx context.Context, c Claimed, at time.Time) (int, string, error) {
	secrets, err := d.secrets(c, at)
	if err != nil {
		return 0, "", err
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return 0, "", fmt.Errorf("url: %w", err)
	}
	ctx, cancel := context.WithTimeout(withScheme(ctx, u.Scheme), d.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(c.Payload))
	if err != nil {
		return 0, "", fmt.Errorf("request: %w", err)
	}
	ua := d.UserAgent
	if ua == "" {
		ua = "postage-webhooks"
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", ua)
	req.Header.Set(signature.Header, signature.Sign(at, c.Payload, secrets...))
	req.Header.Set("Postage-Event-Id", c.EventID)
	req.Header.Set("Postage-Event-Type", string(c.EventType))
	req.Header.Set("Postage-Delivery-Id", strconv.FormatInt(c.ID, 10))
	req.Header.Set("Postage-Attempt", strconv.Itoa(c.Attempt))
	client := d.Client
	if client == nil {
		client = (&TargetPolicy{}).Client(d.timeout())
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", attemptError(err, d.timeout())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	return resp.StatusCode, sanitize(string(b), maxResponse), nil
}

// secrets returns the secrets that sign an attempt at at: the current
// one, and the previous one while it is valid.
func (d *Dispatcher) secrets(c Claimed, at time.Time) ([]string, error) {
	if d.Keys == nil {
		return nil, postage.Errorf(postage.EUNAVAILABLE, "no notify.secret_key configured: cannot sign")
	}
	cur, err := d.Keys.Open(c.EndpointID, c.Secret)
	if err != nil {
		return nil, err
	}
	out := []string{cur}
	if c.Previous != nil && c.PreviousUntil != nil && at.Before(*c.PreviousUntil) {
		if prev, err := d.Keys.Open(c.EndpointID, *c.Previous); err == nil {
			out = append(out, prev)
		}
	}
	return out, nil
}

// attemptError says briefly why a request got no answer.
func attemptError(err error, timeout time.Duration) error {
	var ne net.Error
	var pe *postage.Error
	switch {
	case errors.As(err, &pe):
		return errors.New(pe.Message)
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("timeout: no answer within %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func newToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Run delivers until ctx ends: batches back to back while deliveries are
// due, else a poll every Poll; hourly it prunes events past Retention.
func (d *Dispatcher) Run(ctx context.Context) {
	poll := d.Poll
	if poll <= 0 {
		poll = time.Second
	}
	retention := d.Retention
	if retention <= 0 {
		retention = 30 * 24 * time.Hour
	}
	var lastPrune time.Time
	wait := poll // grows while the database fails, up to 30 s
	for ctx.Err() == nil {
		if now := d.now(); now.Sub(lastPrune) >= time.Hour {
			lastPrune = now
			for {
				n, err := d.Store.Prune(ctx, now.Add(-retention), 1000)
				if err != nil {
					d.log().Warn("prune webhook events", "err", err)
				}
				if err != nil || n < 1000 {
					break
				}
			}
		}
		n, err := d.DeliverDue(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			d.log().Warn("deliver webhooks", "err", err, "retry_in", wait)
			wait = min(2*wait, max(poll, 30*time.Second))
		case err == nil:
			wait = poll
			if n == d.batch() {
				continue // more may be due
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}
