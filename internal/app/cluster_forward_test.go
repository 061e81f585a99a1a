package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"postage/billing"
	"postage/internal/app"
	"postage/internal/apptest"
	"postage/internal/auth"
	"postage/internal/testenv"
	"postage/metering"
)

// startWriter starts a serve child that advertises its URL and contends
// for the leases of shards (nil: every shard).
func startWriter(t *testing.T, a *app.App, shards []int) *serveProcess {
	t.Helper()
	cfg := a.Config
	return startServeWith(t, app.ServeChildConfig{
		PGDSN: cfg.Postgres.DSN, Database: cfg.ClickHouse.Database, Cluster: cfg.ClickHouse.Cluster,
		IndexDir: t.TempDir(), Addrs: cfg.ClickHouse.Addresses(), ZooKeeper: cfg.ClickHouse.ZooKeeper,
		Advertise: true, WriteShards: shards, AppSecret: fwdAppSecret,
	})
}

const fwdAppSecret = "forward-app-secret"

// answer is one answer to POST /api/v1/events.
type answer struct {
	status  int
	code    string // the problem's code
	results []metering.Result
	body    string
}

// postEvents sends a batch to one process.
func postEvents(ctx context.Context, p *serveProcess, key string, body []byte) (answer, error) {
	req, _ := http.NewRequestWithContext(ctx, "POST", p.url+"/api/v1/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/cloudevents-batch+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, body: string(b)}
	if resp.StatusCode == 200 {
		var r struct{ Results []metering.Result }
		if err := json.Unmarshal(b, &r); err != nil {
			return a, err
		}
		a.results = r.Results
		return a, nil
	}
	var prob struct{ Code string }
	_ = json.Unmarshal(b, &prob)
	a.code = prob.Code
	return a, nil
}

// untilStored sends body to p (only p: never to another process) until p
// answers 200, waiting after each 503; it returns the results.
func untilStored(t *testing.T, ctx context.Context, p *serveProcess, key string, body []byte) ([]metering.Result, int) {
	t.Helper()
	refused := 0
	for {
		a, err := postEvents(ctx, p, key, body)
		switch {
		case err != nil && ctx.Err() != nil:
			t.Errorf("%s never stored the request: %v (last: %d %s)", p.url, err, a.status, a.body)
			return nil, refused
		case err != nil:
			t.Errorf("%s: %v", p.url, err)
			return nil, refused
		case a.status == 200:
			return a.results, refused
		case a.status == 503 && (a.code == "unavailable" || a.code == "shard_not_owned"):
			refused++
			t.Logf("%s answered 503: %s", p.url, a.body)
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		default:
			t.Errorf("%s: %d %s", p.url, a.status, a.body)
			return nil, refused
		}
	}
}

// batchOf is a CloudEvents batch of events id → (customer, quantity).
func batchOf(ids []string, customer map[string]string, qty map[string]int, at string) []byte {
	var b bytes.Buffer
	b.WriteString("[")
	for i, id := range ids {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"specversion":"1.0","id":%q,"source":"fwd","type":"message.sent","subject":%q,"time":%q,"data":{"country":"DE","category":"marketing","quantity":%d}}`,
			id, customer[id], at, qty[id])
	}
	b.WriteString("]")
	return b.Bytes()
}

// storedEvents reads every event of the test database from one replica
// of each shard: id → quantity; an id stored twice fails the test.
func storedEvents(t *testing.T, env *testenv.Env) map[string]uint64 {
	t.Helper()
	ctx := context.Background()
	stored := map[string]uint64{}
	for s := 1; s <= 2; s++ {
		conn := env.ReplicaConn(t, s, 1)
		if err := conn.Exec(ctx, "SYSTEM SYNC REPLICA events"); err != nil {
			t.Fatal(err)
		}
		rows, err := conn.Query(ctx, "SELECT id, quantity FROM events")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			var q uint64
			if err := rows.Scan(&id, &q); err != nil {
				t.Fatal(err)
			}
			if _, dup := stored[id]; dup {
				t.Errorf("event %s stored twice", id)
			}
			stored[id] = q
		}
		rows.Close()
	}
	return stored
}

// Any process takes any ingest request: two serve processes, each writing
// one shard, get mixed-shard batches and their re-sends (some with another
// payload) at the same moment, each batch sent to both; every request is
// stored by the process it was sent to, which forwards the other shard's
// part to its writer. Every event is stored once, answered accepted at
// most once, conflict where its payload differs from the stored one; each
// process's metrics show only the shard it writes. A part that fails fails
// the request, and what the other shard stored comes back as duplicates;
// kill -9 of a writer mid-stream loses nothing acknowledged.
func TestClusterForwarding(t *testing.T) {
	ctx := context.Background()
	a, env := apptest.OpenCluster(t, quickQuorum)
	key := apptest.Keys(t, a, "")[auth.RoleAdmin]
	topo := env.CHCluster.Topology
	customers := faultCustomers()
	shardOf := func(c string) int { return topo.ShardFor(c) + 1 }
	var on [3][]string
	for _, c := range customers {
		on[shardOf(c)] = append(on[shardOf(c)], c)
	}
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second).Format(time.RFC3339)

	// p2 writes shard 2 only; p1, started once p2 holds shard 2, takes
	// shard 1 and would take shard 2 over.
	p2 := startWriter(t, a, []int{2})
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	untilStored(t, wctx, p2, key, batchOf([]string{"warm-2"}, map[string]string{"warm-2": on[2][0]}, map[string]int{"warm-2": 1}, at))
	p1 := startWriter(t, a, nil)
	untilStored(t, wctx, p1, key, batchOf([]string{"warm-1"}, map[string]string{"warm-1": on[1][0]}, map[string]int{"warm-1": 1}, at))
	if t.Failed() {
		t.FailNow()
	}
	procs := []*serveProcess{p1, p2}

	customer := map[string]string{"warm-1": on[1][0], "warm-2": on[2][0]}
	var ids []string
	var mu sync.Mutex
	var all []sentBatch
	refusals := 0
	// round r: 12 events over both shards' customers, sent to both
	// processes at the same moment (the second copy with other payloads
	// for a third of them); each process retries only itself.
	round := func(t *testing.T, r int, send func(p *serveProcess, body []byte) []metering.Result) {
		var rid []string
		for i := range 12 {
			id := fmt.Sprintf("r%d-%d", r, i)
			rid = append(rid, id)
			mu.Lock()
			customer[id] = on[1+i%2][(r*12+i)%len(on[1+i%2])]
			mu.Unlock()
		}
		var wg sync.WaitGroup
		for v, p := range procs {
			qty := map[string]int{}
			for i, id := range rid {
				qty[id] = 1
				if v == 1 && i%3 == 0 {
					qty[id] = 2 // a conflicting payload
				}
			}
			mu.Lock()
			body := batchOf(rid, customer, qty, at)
			mu.Unlock()
			wg.Go(func() {
				res := send(p, body)
				mu.Lock()
				all = append(all, sentBatch{qty, res})
				mu.Unlock()
			})
		}
		wg.Wait()
		ids = append(ids, rid...)
	}
	direct := func(p *serveProcess, body []byte) []metering.Result {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		res, n := untilStored(t, rctx, p, key, body)
		mu.Lock()
		refusals += n
		mu.Unlock()
		return res
	}
	for r := range 10 {
		round(t, r, direct)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("10 rounds to both processes: %d answers 503 (retried on the same process)", refusals)

	// Each process's flushes are its own shard's only.
	for i, p := range procs {
		m := metricsOf(t, p.url, key)
		mine, other := strconv.Itoa(i+1), strconv.Itoa(2-i)
		if m[`postage_ingest_batch_events_sum{shard="`+mine+`"}`] == 0 {
			t.Errorf("process %d flushed no event of shard %s", i+1, mine)
		}
		if n := m[`postage_ingest_batch_events_sum{shard="`+other+`"}`]; n != 0 {
			t.Errorf("process %d flushed %v events of shard %s, which it does not write", i+1, n, other)
		}
	}

	// Shard 2 down: a mixed batch fails whole on both processes (p1's
	// forwarded part, p2's own); shard 1's events, stored, come back as
	// duplicates once shard 2 is back.
	for r := 1; r <= 3; r++ {
		if err := env.Cluster.StopServer(2, r); err != nil {
			t.Fatal(err)
		}
	}
	down := []string{"d-1a", "d-2a", "d-1b", "d-2b"}
	qty := map[string]int{}
	for i, id := range down {
		customer[id] = on[1+i%2][i]
		qty[id] = 1
	}
	downBody := batchOf(down, customer, qty, at)
	for i, p := range procs {
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		got, err := postEvents(dctx, p, key, downBody)
		cancel()
		if err != nil || got.status != 503 || got.code != "unavailable" {
			t.Errorf("process %d, shard 2 down: %d %s (%v), want 503 unavailable", i+1, got.status, got.body, err)
		}
	}
	for r := 1; r <= 3; r++ {
		restart(t, env, 2, r)
	}
	rctx, rcancel := context.WithTimeout(ctx, 3*time.Minute)
	defer rcancel()
	for i, p := range procs {
		res, _ := untilStored(t, rctx, p, key, downBody)
		for _, r := range res {
			want := metering.Duplicate // shard 1's, stored by the failed try
			if shardOf(customer[r.ID]) == 2 && i == 0 {
				want = metering.Accepted
			}
			if r.Status != want {
				t.Errorf("process %d, re-send after shard 2 is back: %s answered %s, want %s", i+1, r.ID, r.Status, want)
			}
		}
	}
	ids = append(ids, down...)

	// A forwarded request is never forwarded again: p2 does not write
	// shard 1, so a request marked for shard 1 is refused, not stored.
	loop := map[string]int{"loop-1": 1}
	customer["loop-1"] = on[1][0]
	loopBody := batchOf([]string{"loop-1"}, customer, loop, at)
	req, _ := http.NewRequest("POST", p2.url+"/api/v1/events", bytes.NewReader(loopBody))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/cloudevents-batch+json")
	req.Header.Set("Postage-Forwarded-Shards", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !bytes.Contains(b, []byte(`"code":"shard_not_owned"`)) {
		t.Errorf("a request forwarded to a process that does not write its shard: %d %s, want 503 shard_not_owned", resp.StatusCode, b)
	}
	if res, _ := untilStored(t, rctx, p2, key, loopBody); len(res) != 1 || res[0].Status != metering.Accepted {
		t.Errorf("the refused forwarded event, sent again unmarked: %+v, want accepted (it was not stored)", res)
	}
	ids = append(ids, "loop-1")

	// One structured event for a shard p2 does not write: forwarded,
	// and its answer is the single event's (409 for a conflict).
	single := func(id string, q int) (int, string) {
		body := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"fwd","type":"message.sent","subject":%q,"time":%q,"data":{"country":"DE","category":"marketing","quantity":%d}}`, id, on[1][1], at, q)
		req, _ := http.NewRequest("POST", p2.url+"/api/v1/events", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/cloudevents+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, b := single("one-1", 1); st != 200 || !strings.Contains(b, `"accepted":1`) {
		t.Errorf("a single event of shard 1 sent to p2: %d %s, want 200 accepted", st, b)
	}
	if st, b := single("one-1", 5); st != 409 || !strings.Contains(b, `"code":"conflict"`) {
		t.Errorf("the single event again with another payload, to p2: %d %s, want 409 conflict", st, b)
	}
	ids = append(ids, "one-1")

	// A WhatsApp webhook with the statuses of two phone numbers, one on
	// each shard, sent to p2: shard 1's status is forwarded with the
	// platform's signature (the writer checks it), both stored; the same
	// webhook to p1 finds both stored.
	for i, phone := range []string{"2001", "2002"} {
		c := on[1+i][2]
		if _, err := a.Customers.Create(ctx, billing.Customer{ID: c, Name: c, Currency: "USD", Country: "DE"}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Customers.AddPhoneNumber(ctx, c, phone); err != nil {
			t.Fatal(err)
		}
		customer["wamid.fwd-"+phone] = c
	}
	ts := time.Now().Add(-time.Hour).Unix()
	change := func(phone string) string {
		return fmt.Sprintf(`{"field":"messages","value":{"metadata":{"phone_number_id":%q},"statuses":[{"id":"wamid.fwd-%s","status":"delivered","timestamp":"%d","recipient_id":"919876543210","pricing":{"billable":true,"category":"authentication"}}]}}`, phone, phone, ts)
	}
	hook := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[` + change("2001") + "," + change("2002") + `]}]}`)
	for i, p := range []*serveProcess{p2, p1} {
		req, _ := http.NewRequest("POST", p.url+"/api/v1/webhooks/whatsapp", bytes.NewReader(hook))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Hub-Signature-256", metering.SignBody(fwdAppSecret, hook))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := `"accepted":2,"duplicate":0`
		if i == 1 {
			want = `"accepted":0,"duplicate":2`
		}
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("webhook with both shards' statuses to %s: %d %s, want %s", p.url, resp.StatusCode, b, want)
		}
	}
	ids = append(ids, "wamid.fwd-2001", "wamid.fwd-2002")

	// kill -9 of p2, the writer of shard 2, mid-stream: p1 forwards to
	// it until it is gone, then takes shard 2 over (after p2's session
	// timeout); the requests to p2 go to p1 as a balancer would send them.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for r := 10; r < 25; r++ {
			round(t, r, func(p *serveProcess, body []byte) []metering.Result {
				bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				defer cancel()
				first := 0
				if p == p2 {
					first = 1
				}
				return balancer(t, bctx, procs, key, first, body)
			})
		}
	}()
	time.Sleep(100 * time.Millisecond)
	if err := p2.cmd.Process.Kill(); err != nil { // ours, by its pid
		t.Fatal(err)
	}
	<-done
	if t.Failed() {
		return
	}

	stored := storedEvents(t, env)
	if len(stored) != len(ids)+2 { // and the two warm-up events
		t.Errorf("%d events stored, %d sent", len(stored), len(ids)+2)
	}
	for _, id := range ids {
		if _, ok := stored[id]; !ok {
			t.Errorf("event %s (acknowledged) is not stored", id)
		}
	}
	accepted, conflicts := checkAnswers(t, all, stored)
	t.Logf("%d events stored, %d accepted answers, %d conflicts reported", len(stored), accepted, conflicts)
}
