package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"postage/internal/apptest"
	"postage/internal/auth"
	"postage/metering"
)

// twoShards is a cluster's router seen from the writer of shard 1:
// cust-a's events are on shard 1, every other customer's on shard 2,
// written by the process at owner.
type twoShards struct{ owner string }

func (r twoShards) ShardOf(c string) int {
	if c == "cust-a" {
		return 1
	}
	return 2
}

func (r twoShards) ForwardTo(_ context.Context, shard int) string {
	if shard == 2 {
		return r.owner
	}
	return ""
}

// peer stands for the postage process that writes shard 2: it records
// what it is sent and answers what the test sets.
type peer struct {
	mu     sync.Mutex
	got    []*http.Request
	bodies [][]byte
	status int
	answer string
}

func (p *peer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got, p.bodies = append(p.got, r), append(p.bodies, b)
	ct := "application/json"
	if p.status != 200 {
		ct = "application/problem+json"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(p.status)
	_, _ = io.WriteString(w, p.answer)
}

func (p *peer) set(status int, answer string) {
	p.mu.Lock()
	p.status, p.answer = status, answer
	p.mu.Unlock()
}

// The forwarding process's side: the events of a shard another process
// writes are sent to it as the caller's request (same body and key,
// marked with the shard), its statuses merged in request order with this
// process's own and its rejections; the writer's refusal, an unreachable
// writer, or an answer without an event's status fail the whole request;
// a request marked for shard 1 is answered for shard 1's events only.
func TestForwardToTheShardsWriter(t *testing.T) {
	s := newMeteringStack(t, meterNow)
	p := &peer{}
	owner := httptest.NewServer(p)
	defer owner.Close()
	s.Srv.Metering.Router = twoShards{owner: owner.URL}
	url := apptest.ServeServer(t, s.Srv)
	data := `{"country":"DE","category":"marketing","quantity":1}`
	batch := func(ids ...string) []byte {
		var evs []string
		for i, id := range ids {
			c := "cust-a"
			if i%2 == 1 {
				c = "cust-b"
			}
			d := data
			if strings.HasPrefix(id, "bad") {
				d = `{"country":"DE","category":"nope"}`
			}
			evs = append(evs, cloudEvent(id, c, "2026-10-31T12:00:00Z", d))
		}
		return []byte("[" + strings.Join(evs, ",") + "]")
	}
	post := func(body []byte, header ...string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("POST", url+"/api/v1/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.Keys[auth.RoleIngest])
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code := func(b []byte) string {
		var pr struct{ Code string }
		_ = json.Unmarshal(b, &pr)
		return pr.Code
	}

	// The writer stores e2 (index 1) and answers conflict for it; bad-4
	// (index 3, cust-b) is rejected here and not asked about.
	body := batch("e1", "e2", "e3", "bad-4")
	p.set(200, `{"accepted":0,"duplicate":0,"conflict":1,"rejected":0,"results":[{"index":1,"id":"e2","status":"conflict"}]}`)
	st, b := post(body)
	if st != 200 {
		t.Fatalf("forwarded batch: %d %s", st, b)
	}
	r := decodeEvents(t, b)
	var got []string
	for _, x := range r.Results {
		got = append(got, x.ID+":"+string(x.Status))
	}
	if want := "e1:accepted e2:conflict e3:accepted bad-4:rejected"; strings.Join(got, " ") != want || r.Accepted != 2 || r.Conflict != 1 || r.Rejected != 1 {
		t.Errorf("results %v (%+v), want %s", got, r, want)
	}
	p.mu.Lock()
	if len(p.got) != 1 {
		t.Fatalf("the writer got %d requests, want 1", len(p.got))
	}
	fw := p.got[0]
	if fw.Header.Get("Postage-Forwarded-Shards") != "2" || fw.Header.Get("Authorization") != "Bearer "+s.Keys[auth.RoleIngest] ||
		fw.URL.Path != "/api/v1/events" || !bytes.Equal(p.bodies[0], body) || fw.Header.Get("X-Request-ID") == "" {
		t.Errorf("forwarded %s %s, headers %v, body equal %v; want the caller's request marked for shard 2", fw.Method, fw.URL, fw.Header, bytes.Equal(p.bodies[0], body))
	}
	p.mu.Unlock()

	// The writer refuses (full queue): the request fails with its code;
	// this process's part, stored, is a duplicate when sent again.
	body = batch("f1", "f2")
	p.set(429, `{"type":"https://postage.dev/problems/overloaded","title":"Too Many Requests","status":429,"detail":"ingest queue full, retry later","code":"overloaded"}`)
	if st, b := post(body); st != 429 || code(b) != "overloaded" {
		t.Errorf("the writer refuses: %d %s, want 429 overloaded", st, b)
	}
	// An answer without the event's status acknowledges nothing.
	p.set(200, `{"accepted":0,"duplicate":0,"conflict":0,"rejected":0,"results":[]}`)
	if st, b := post(body); st != 503 || code(b) != "unavailable" {
		t.Errorf("the writer gives no status: %d %s, want 503 unavailable", st, b)
	}
	p.set(200, `{"accepted":1,"duplicate":0,"conflict":0,"rejected":0,"results":[{"index":1,"id":"f2","status":"accepted"}]}`)
	st, b = post(body)
	if r := decodeEvents(t, b); st != 200 || len(r.Results) != 2 || r.Results[0].Status != metering.Duplicate || r.Results[1].Status != metering.Accepted {
		t.Errorf("sent again: %d %s, want f1 duplicate (stored by the failed try), f2 accepted", st, b)
	}

	// A request marked for shard 1 (forwarded to this process): only
	// cust-a's events are stored and answered; none is forwarded.
	p.mu.Lock()
	asked := len(p.got)
	p.mu.Unlock()
	st, b = post(batch("g1", "g2", "g3"), "Postage-Forwarded-Shards", "1")
	r = decodeEvents(t, b)
	if st != 200 || len(r.Results) != 2 || r.Results[0].Index != 0 || r.Results[1].Index != 2 || r.Accepted != 2 {
		t.Errorf("marked for shard 1: %d %s, want g1 and g3 (indexes 0 and 2) accepted only", st, b)
	}
	p.mu.Lock()
	if len(p.got) != asked {
		t.Error("a request forwarded to this process was forwarded again")
	}
	p.mu.Unlock()
	if st, b := post(batch("h1"), "Postage-Forwarded-Shards", "one"); st != 400 || code(b) != "invalid" {
		t.Errorf("a malformed mark: %d %s, want 400 invalid", st, b)
	}

	// The writer cannot be reached: 503 unavailable.
	owner.Close()
	if st, b := post(batch("k1", "k2")); st != 503 || code(b) != "unavailable" {
		t.Errorf("the writer is gone: %d %s, want 503 unavailable", st, b)
	}
}
