package httpapi

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"postage"
	"postage/internal/jsonx"
	"postage/metering"
)

// EventSubmitter stores validated events exactly once (metering.Ingester).
type EventSubmitter interface {
	Submit(ctx context.Context, events []metering.Event) ([]metering.Status, error)
}

// MeteringDeps is what the metering routes call into.
type MeteringDeps struct {
	Rules    *metering.Rules
	Ingester EventSubmitter
	Usage    metering.Usage
	Phones   metering.PhoneNumberResolver
	Metrics  *metering.Metrics
	// Router places events on a ClickHouse cluster, where each shard is
	// written by one process (nil on one server): the events of shards
	// another process writes are forwarded to it (forward.go).
	Router EventRouter
}

// Event request media types.
const (
	ctCloudEvent      = "application/cloudevents+json"
	ctCloudEventBatch = "application/cloudevents-batch+json"
)

// EventsResponse is the answer to an accepted events request: one result
// per input event, in input order, and the count of each status.
type EventsResponse struct {
	Accepted  int               `json:"accepted"`
	Duplicate int               `json:"duplicate"`
	Conflict  int               `json:"conflict"`
	Rejected  int               `json:"rejected"`
	Ignored   int               `json:"ignored,omitempty"`
	Results   []metering.Result `json:"results"`
}

// AppendJSON appends r as encoding/json writes it (a test checks it): a
// batch answer has one result per event, and encoding it by reflection
// was a measurable share of the server's CPU under sustained ingest.
func (r *EventsResponse) AppendJSON(b []byte) []byte {
	b = append(b, `{"accepted":`...)
	b = strconv.AppendInt(b, int64(r.Accepted), 10)
	b = append(b, `,"duplicate":`...)
	b = strconv.AppendInt(b, int64(r.Duplicate), 10)
	b = append(b, `,"conflict":`...)
	b = strconv.AppendInt(b, int64(r.Conflict), 10)
	b = append(b, `,"rejected":`...)
	b = strconv.AppendInt(b, int64(r.Rejected), 10)
	if r.Ignored != 0 {
		b = append(b, `,"ignored":`...)
		b = strconv.AppendInt(b, int64(r.Ignored), 10)
	}
	b = append(b, `,"results":`...)
	if r.Results == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range r.Results {
			if i > 0 {
				b = append(b, ',')
			}
			res := &r.Results[i]
			b = append(b, `{"index":`...)
			b = strconv.AppendInt(b, int64(res.Index), 10)
			if res.ID != "" {
				b = append(b, `,"id":`...)
				b = jsonx.AppendString(b, res.ID)
			}
			b = append(b, `,"status":`...)
			b = jsonx.AppendString(b, string(res.Status))
			if res.Field != "" {
				b = append(b, `,"field":`...)
				b = jsonx.AppendString(b, res.Field)
			}
			if res.Reason != "" {
				b = append(b, `,"reason":`...)
				b = jsonx.AppendString(b, res.Reason)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// writeEvents answers an events request with r.
func writeEvents(c *gin.Context, r *EventsResponse) {
	c.Data(http.StatusOK, "application/json; charset=utf-8", r.AppendJSON(make([]byte, 0, 64+48*len(r.Results))))
}

// meteringRoutes registers the metering routes.
func (s *Server) meteringRoutes() {
	if s.Metering.Rules == nil || s.Metering.Ingester == nil {
		return // metering not wired (tests of other domains)
	}
	s.handle(Route{Method: "POST", Path: "/api/v1/events", Tag: "metering", Roles: ingestOnly,
		Request: Media{ctCloudEvent: CloudEvent{}, "application/json": new(StructuredOrBinary), ctCloudEventBatch: []CloudEvent{}},
		Header: []Param{
			{Name: "ce-specversion", Description: "binary mode: the event's specversion (1.0); with it, the application/json body is the event's data"},
			{Name: "ce-type", Description: "binary mode: the event's type (message.sent)"},
			{Name: "ce-id", Description: "binary mode: the event's id, percent-encoded as the CloudEvents HTTP binding says"},
			{Name: "ce-subject", Description: "binary mode: the customer id, percent-encoded"},
			{Name: "ce-time", Description: "binary mode: when the message was sent, RFC 3339"},
			{Name: "ce-source", Description: "binary mode: the producer (not read)"},
			forwardedParam,
		},
		Response: EventsResponse{}, Errors: []int{http.StatusTooManyRequests},
		Summary: "Ingest message.sent CloudEvents in any content mode of the CloudEvents HTTP binding: structured (one event, " +
			"application/cloudevents+json or application/json), batched (application/cloudevents-batch+json) or binary (attributes in " +
			"ce-* headers, the data as a JSON body, the official SDKs' default). A batch always answers 200 with a result per event (accepted, duplicate, " +
			"conflict, rejected with field and reason); a single event answers 200 (accepted or duplicate), 409 (conflict) " +
			"or 400 (rejected). 200 means every accepted event is stored."}, s.postEvents)
	s.handle(Route{Method: "POST", Path: "/api/v1/webhooks/whatsapp", Tag: "metering",
		Request: WhatsAppWebhook{}, Response: EventsResponse{}, Errors: []int{http.StatusUnauthorized, http.StatusTooManyRequests},
		Header:  []Param{{Name: "X-Hub-Signature-256", Description: "sha256=<hex HMAC-SHA256 of the body with the app secret>", Required: true}, forwardedParam},
		Summary: "WhatsApp Cloud API status webhook, authenticated by X-Hub-Signature-256 (HMAC-SHA256 with the app secret)."}, s.postWhatsApp)
	s.handle(Route{Method: "GET", Path: "/api/v1/webhooks/whatsapp", Tag: "metering", Produces: []string{"text/plain"},
		Summary: "WhatsApp webhook verification handshake: echoes hub.challenge when hub.verify_token matches.",
		Query:   []Param{{Name: "hub.mode", Required: true}, {Name: "hub.verify_token", Required: true}, {Name: "hub.challenge", Required: true}},
		Errors:  []int{http.StatusForbidden}}, s.verifyWhatsApp)
	s.usageRoutes()
}

// readBody reads the whole request body under the server's size limit.
// It starts with a buffer of the Content-Length, up to 1 MiB, so a typical
// batch is read into one allocation (io.ReadAll starts at 512 bytes and
// grows step by step), while a client that announces a large body and
// sends little makes the server hold at most 1 MiB for it. The limit itself
// is MaxBytesReader's.
func readBody(c *gin.Context) ([]byte, error) {
	return readBodyInto(c, new(bytes.Buffer))
}

// readBodyInto is readBody into buf, which it empties first.
func readBodyInto(c *gin.Context, buf *bytes.Buffer) ([]byte, error) {
	hint := 0
	if n := c.Request.ContentLength; n > 0 {
		hint = int(min(n, 1<<20))
	}
	buf.Reset()
	buf.Grow(hint + bytes.MinRead) // MinRead spare: EOF is read without growing
	_, err := buf.ReadFrom(c.Request.Body)
	body := buf.Bytes()
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, postage.Errorf(postage.ETOOLARGE, "request body larger than %d bytes", mbe.Limit)
		}
		return nil, postage.Errorf(postage.EINVALID, "reading request body: %s", err.Error())
	}
	return body, nil
}

// maxPooledBody is the largest body buffer kept for re-use: larger ones
// (the body limit is configurable) go to the garbage collector.
const maxPooledBody = 4 << 20

// Content modes of a CloudEvents request (the CloudEvents HTTP binding).
const (
	modeStructured = iota // one event as the body (application/cloudevents+json)
	modeBatch             // a JSON array of events (application/cloudevents-batch+json)
	modeBinary            // attributes in ce-* headers, the data as the body
)

// contentMode chooses how to read an events request, as the CloudEvents
// HTTP binding says: the content type names the structured and batched
// modes; any other request that carries a ce-specversion header is in
// binary mode, whose data the meter reads only as JSON (application/json,
// the type the official SDKs send). A request in
// neither, sent as application/json, is read as one structured event
// (postage has always taken those).
func contentMode(h http.Header) (int, error) {
	ct := h.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = ""
	}
	switch {
	case mt == ctCloudEventBatch:
		return modeBatch, nil
	case mt == ctCloudEvent:
		return modeStructured, nil
	case strings.HasPrefix(mt, "application/cloudevents"):
		return 0, postage.Errorf(postage.EUNSUPPORTED, "event format %s is not supported: use %s or %s", mt, ctCloudEvent, ctCloudEventBatch)
	case len(h.Values("Ce-Specversion")) > 0:
		if mt == "application/json" {
			return modeBinary, nil
		}
		return 0, postage.Errorf(postage.EUNSUPPORTED, "binary-mode event data must be JSON, sent as Content-Type application/json, not %q", ct)
	case mt == "application/json":
		return modeStructured, nil
	}
	return 0, postage.Errorf(postage.EUNSUPPORTED, "Content-Type must be %s, %s, or application/json (one structured event, or binary mode with ce-* headers)", ctCloudEvent, ctCloudEventBatch)
}

func (s *Server) postEvents(c *gin.Context) {
	mode, err := contentMode(c.Request.Header)
	if err != nil {
		s.writeError(c, err)
		return
	}
	// A full ingest queue refuses the request before its body is read and
	// decoded (metering.Ingester.Admit): in a flood while ClickHouse stalls,
	// refused requests then cost the server neither memory nor decoding.
	if a, ok := s.Metering.Ingester.(interface{ Admit() error }); ok {
		if err := a.Admit(); err != nil {
			s.writeError(c, err)
			return
		}
	}
	// The body is read into a recycled buffer: a batch of 2,000 events is
	// about half a megabyte, and a new buffer for each made the garbage
	// collector run for them. The decoders keep nothing of
	// the body (metering.TestDecodedKeepsNothingOfTheBody), so the buffer
	// goes back as soon as the body is decoded.
	buf, _ := s.bodies.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	body, err := readBodyInto(c, buf)
	var d *metering.Decoded
	if err == nil {
		switch mode {
		case modeBatch:
			d, err = s.Metering.Rules.DecodeBatch(body)
		case modeBinary:
			d, err = s.Metering.Rules.DecodeBinary(c.Request.Header, body)
		default:
			d, err = s.Metering.Rules.DecodeSingle(body)
		}
	}
	// On a cluster the body may be forwarded to the writers of other
	// shards (forward.go): the buffer goes back once that is done.
	if s.Metering.Router == nil {
		putBody(&s.bodies, buf)
	} else {
		defer putBody(&s.bodies, buf)
	}
	if err != nil {
		s.writeError(c, err)
		return
	}
	resp, err := s.ingest(c.Request.Context(), d, origin{c.Request, body, c.GetString(ctxRequestID)})
	if err != nil {
		s.writeError(c, err)
		return
	}
	if mode != modeBatch && !s.forwardedToUs(c.Request) {
		r := resp.Results[0]
		switch r.Status {
		case metering.Rejected:
			s.writeError(c, &postage.Error{Code: postage.EINVALID, Message: "event rejected: " + r.Field + ": " + r.Reason, Detail: resp.Results})
			return
		case metering.Conflict:
			s.writeError(c, &postage.Error{Code: postage.ECONFLICT, Message: "event " + r.ID + " was already stored with a different payload", Detail: resp.Results})
			return
		}
	}
	writeEvents(c, resp)
}

// putBody gives a request body's buffer back to pool, unless it grew
// too large to keep.
func putBody(pool *sync.Pool, buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBody {
		pool.Put(buf)
	}
}

// ingest submits a decoded request's valid events and fills in every
// result. It returns only after the accepted events are stored. On a
// cluster (Metering.Router), the events of shards another process writes
// are forwarded to it (forward.go); a request forwarded to this process
// is answered for the shards it names only.
func (s *Server) ingest(ctx context.Context, d *metering.Decoded, o origin) (*EventsResponse, error) {
	forwarded := false
	if s.Metering.Router != nil {
		only, ok, err := forwardedShards(o.req.Header)
		if err != nil {
			return nil, err
		}
		if ok {
			forwarded = true
			d = onlyShards(d, s.Metering.Router, only)
		}
	}
	if len(d.Events) > 0 {
		var err error
		if s.Metering.Router != nil && !forwarded {
			err = s.submitRouted(ctx, d, o)
		} else {
			err = s.submitHere(ctx, d)
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			// The caller left (or timed out) before its flush finished: the
			// events may or may not be stored, so nothing is acknowledged.
			return nil, postage.Errorf(postage.EUNAVAILABLE, "request ended before its events were stored; re-send it")
		}
		if err != nil {
			return nil, err
		}
	}
	if !forwarded { // the process that answers the caller counts
		s.Metering.Metrics.CountResults(d.Results)
	}
	resp := &EventsResponse{Results: d.Results}
	for _, r := range d.Results {
		switch r.Status {
		case metering.Accepted:
			resp.Accepted++
		case metering.Duplicate:
			resp.Duplicate++
		case metering.Conflict:
			resp.Conflict++
		case metering.Rejected:
			resp.Rejected++
		case metering.Ignored:
			resp.Ignored++
		}
	}
	return resp, nil
}

func (s *Server) postWhatsApp(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if !metering.VerifySignature(s.Config.WhatsApp.AppSecret, c.GetHeader("X-Hub-Signature-256"), body) {
		s.writeError(c, postage.Errorf(postage.EUNAUTHORIZED, "bad or missing X-Hub-Signature-256"))
		return
	}
	// A phone-number look-up that failed for an outage is 503 (the
	// platform retries), decided by the one error mapping like any other.
	d, err := s.Metering.Rules.DecodeWebhook(c.Request.Context(), body, s.Metering.Phones)
	if err != nil {
		s.writeError(c, err)
		return
	}
	resp, err := s.ingest(c.Request.Context(), d, origin{c.Request, body, c.GetString(ctxRequestID)})
	if err != nil {
		s.writeError(c, err)
		return
	}
	writeEvents(c, resp)
}

func (s *Server) verifyWhatsApp(c *gin.Context) {
	want := s.Config.WhatsApp.VerifyToken
	got := c.Query("hub.verify_token")
	if c.Query("hub.mode") != "subscribe" || want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		s.writeError(c, postage.Errorf(postage.EFORBIDDEN, "verification failed"))
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(c.Query("hub.challenge")))
}
