package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"postage"
	"postage/metering"
)

// Forwarding on a ClickHouse cluster (docs/SCALING.md, "Serving from a
// cluster"). Each shard's events are written by the one process that
// holds the shard's lease. Any process takes any ingest request: it stores
// the events of the shards it writes and sends the request, as the caller
// sent it (body, credentials and all), to the writer of each other shard,
// marked with the shards that writer is to store (forwardedShardsHeader).
// The writer authenticates and decodes it as any request, stores only
// those shards' events, answers only for them, and never forwards it
// again. The statuses come back in request order; if any part fails, the
// request fails, and what other parts stored comes back as duplicates
// when the caller sends it again.

// EventRouter places events on a cluster.
type EventRouter interface {
	// ShardOf is the number (1, 2, ... as in system.clusters) of the shard
	// that stores customerID's events.
	ShardOf(customerID string) int
	// ForwardTo is the URL of the process to forward shard's events to:
	// another process that holds the shard's write lease and advertised
	// its URL. "" means this process submits them itself: it writes the
	// shard, or is taking its lease, or knows no writer it can forward to
	// (then the submission answers why not: 503 shard_not_owned). While
	// this process is taking the shard's lease or learning its holder, it
	// waits a little (ctx bounds the wait).
	ForwardTo(ctx context.Context, shard int) string
}

// forwardedShardsHeader marks a request forwarded by a postage process to
// the writer of the shards it lists ("2" or "1,3"): the receiver stores
// and answers only those shards' events and never forwards it. A client
// that sends it only narrows its own request.
const forwardedShardsHeader = "Postage-Forwarded-Shards"

// forwardedParam documents forwardedShardsHeader on the ingest routes.
var forwardedParam = Param{Name: forwardedShardsHeader, Description: "set by a postage process of a cluster that forwards the request " +
	"to the writer of these shards (numbers, comma-separated): only their events are stored and answered for, and the request is not " +
	"forwarded again (503 shard_not_owned if this process does not write them). Clients do not send it."}

// forwardDialTimeout bounds connecting to a shard's writer; the request's
// own deadline (http.request_timeout) bounds the rest.
const forwardDialTimeout = 2 * time.Second

// maxForwardAnswer bounds the answer read from a shard's writer: a result
// is under 2 KB (an id and a reason of at most 256 bytes, escaped), and a
// request holds at most ingest.max_batch events.
func (s *Server) maxForwardAnswer() int64 {
	return 4096 + 2048*int64(max(s.Config.Ingest.MaxBatch, 1))
}

// origin is the request an ingest came from, for forwarding.
type origin struct {
	req       *http.Request
	body      []byte
	requestID string
}

// newForwardClient is the HTTP client of forwarded requests.
func newForwardClient(requestTimeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil, // writers are reached directly
			DialContext:           (&net.Dialer{Timeout: forwardDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   forwardDialTimeout,
			ResponseHeaderTimeout: requestTimeout,
		},
		// A writer answers; it never redirects.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// forwardedToUs reports whether r was forwarded to this process by
// another (on a cluster).
func (s *Server) forwardedToUs(r *http.Request) bool {
	return s.Metering.Router != nil && len(r.Header.Values(forwardedShardsHeader)) > 0
}

// forwardedShards reads forwardedShardsHeader: the shard numbers and
// whether the header is there.
func forwardedShards(h http.Header) ([]int, bool, error) {
	vals := h.Values(forwardedShardsHeader)
	if len(vals) == 0 {
		return nil, false, nil
	}
	var out []int
	for _, v := range vals {
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return nil, true, postage.Errorf(postage.EINVALID, "%s: a list of shard numbers, not %q", forwardedShardsHeader, v)
			}
			out = append(out, n)
		}
	}
	return out, true, nil
}

// onlyShards narrows a decoded request to the events of shards: their
// events and results (with their indexes in the whole request); the
// others' results, rejections included, are the forwarding process's to
// give.
func onlyShards(d *metering.Decoded, router EventRouter, shards []int) *metering.Decoded {
	out := &metering.Decoded{}
	for i, e := range d.Events {
		if slices.Contains(shards, router.ShardOf(e.CustomerID)) {
			out.Index = append(out.Index, len(out.Results))
			out.Events = append(out.Events, e)
			out.Results = append(out.Results, d.Results[d.Index[i]])
		}
	}
	if out.Results == nil {
		out.Results = []metering.Result{}
	}
	return out
}

// submitHere submits the decoded events to this process's pipeline and
// fills in their statuses.
func (s *Server) submitHere(ctx context.Context, d *metering.Decoded) error {
	statuses, err := s.Metering.Ingester.Submit(ctx, d.Events)
	if err != nil {
		return err
	}
	for i, st := range statuses {
		d.Results[d.Index[i]].Status = st
	}
	return nil
}

// submitRouted submits the events of the shards this process writes here
// and forwards the others to their writers, all at once, and fills in
// every result. If any part fails, the request fails.
func (s *Server) submitRouted(ctx context.Context, d *metering.Decoded, o origin) error {
	router := s.Metering.Router
	type part struct {
		at     []int // positions in d.Events
		shards []int
	}
	parts := map[string]*part{} // by writer URL; "" = here
	to := map[int]string{}      // shard → writer URL, asked once per request
	for i, e := range d.Events {
		sh := router.ShardOf(e.CustomerID)
		u, ok := to[sh]
		if !ok {
			u = router.ForwardTo(ctx, sh)
			to[sh] = u
		}
		p := parts[u]
		if p == nil {
			p = &part{}
			parts[u] = p
		}
		if !slices.Contains(p.shards, sh) {
			p.shards = append(p.shards, sh)
		}
		p.at = append(p.at, i)
	}
	if len(parts) == 1 && parts[""] != nil {
		return s.submitHere(ctx, d)
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for u, p := range parts {
		wg.Go(func() {
			var err error
			if u == "" {
				err = s.submitPart(ctx, d, p.at)
			} else {
				err = s.forward(ctx, u, p.shards, d, p.at, o)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return worstError(errs)
	}
	return nil
}

// submitPart submits the events at positions at here.
func (s *Server) submitPart(ctx context.Context, d *metering.Decoded, at []int) error {
	evs := make([]metering.Event, len(at))
	for j, i := range at {
		evs[j] = d.Events[i]
	}
	statuses, err := s.Metering.Ingester.Submit(ctx, evs)
	if err != nil {
		return err
	}
	for j, i := range at {
		d.Results[d.Index[i]].Status = statuses[j]
	}
	return nil
}

// hopHeaders are not passed on to a shard's writer (RFC 9110 7.6.1, and
// what the client computes itself).
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "Host", "Content-Length", "Accept-Encoding", forwardedShardsHeader}

// forward sends the request to the writer at base (an advertised URL),
// marked with shards, and takes its results for the events at positions
// at. The writer's refusal is the part's error, with the writer's code;
// a writer that cannot be reached or does not answer in time is 503
// unavailable.
func (s *Server) forward(ctx context.Context, base string, shards []int, d *metering.Decoded, at []int, o origin) error {
	names := make([]string, len(shards))
	for i, n := range shards {
		names[i] = strconv.Itoa(n)
	}
	list := strings.Join(names, ",")
	req, err := http.NewRequestWithContext(ctx, o.req.Method, strings.TrimRight(base, "/")+o.req.URL.RequestURI(), bytes.NewReader(o.body))
	if err != nil {
		return fmt.Errorf("forward to the writer of shard %s at %s: %w", list, base, err)
	}
	req.Header = o.req.Header.Clone()
	for _, h := range hopHeaders {
		req.Header.Del(h)
	}
	req.Header.Set(forwardedShardsHeader, list)
	if o.requestID != "" {
		req.Header.Set("X-Request-ID", o.requestID) // the writer logs it under the same id
	}
	resp, err := s.forwards.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %w", postage.Errorf(postage.EUNAVAILABLE, "the writer of shard %s (%s) cannot be reached; retry", list, base), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.maxForwardAnswer()))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %w", postage.Errorf(postage.EUNAVAILABLE, "the writer of shard %s (%s) did not finish its answer; retry", list, base), err)
	}
	if resp.StatusCode != http.StatusOK {
		var p Problem
		if json.Unmarshal(body, &p) != nil || p.Code == "" {
			return postage.Errorf(postage.EUNAVAILABLE, "the writer of shard %s (%s) answered %d; retry", list, base, resp.StatusCode)
		}
		return &postage.Error{Code: p.Code, Message: "shard " + list + " (its writer " + base + "): " + p.Detail}
	}
	var ans EventsResponse
	if err := json.Unmarshal(body, &ans); err != nil {
		return fmt.Errorf("%w: %w", postage.Errorf(postage.EUNAVAILABLE, "the writer of shard %s (%s) answered something else than results; retry", list, base), err)
	}
	byIndex := make(map[int]metering.Result, len(ans.Results))
	for _, r := range ans.Results {
		byIndex[r.Index] = r
	}
	for _, i := range at {
		k := d.Index[i]
		r, ok := byIndex[d.Results[k].Index]
		if !ok || r.Status == "" {
			// Both processes decode the same body alike; a writer that does
			// not answer for an event runs other rules (a mixed-version
			// cluster): acknowledge nothing.
			return postage.Errorf(postage.EUNAVAILABLE, "the writer of shard %s (%s) gave no status for event %d; retry", list, base, d.Results[k].Index)
		}
		d.Results[k] = r
	}
	return nil
}

// worstError returns one error for a request whose parts failed: the
// first that is not a reason to retry (a client's mistake, a bug), else
// the first.
func worstError(errs []error) error {
	for _, err := range errs {
		switch postage.ErrorCode(err) {
		case postage.EUNAVAILABLE, postage.EOVERLOADED, postage.ENOTOWNER:
		default:
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
		}
	}
	return errs[0]
}
