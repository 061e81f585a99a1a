package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"postage/internal/app"
	"postage/internal/apptest"
	"postage/internal/auth"
	"postage/metering"
)

// serveProcess is a `postage serve` child process of this test binary.
type serveProcess struct {
	cmd *exec.Cmd
	url string
}

// startServe starts a serve child on the cluster database of a's
// configuration, with its own key index directory.
func startServe(t *testing.T, a *app.App) *serveProcess {
	t.Helper()
	cfg := a.Config
	return startServeWith(t, app.ServeChildConfig{
		PGDSN: cfg.Postgres.DSN, Database: cfg.ClickHouse.Database, Cluster: cfg.ClickHouse.Cluster,
		IndexDir: t.TempDir(), Addrs: cfg.ClickHouse.Addresses(), ZooKeeper: cfg.ClickHouse.ZooKeeper,
	})
}

// startServeWith starts a serve child configured by sc.
func startServeWith(t *testing.T, sc app.ServeChildConfig) *serveProcess {
	t.Helper()
	spec, _ := json.Marshal(sc)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "POSTAGE_TEST_SERVE="+string(spec))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProcess{cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // ours, by its pid
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("serve child: %v", err)
	}
	p.url = strings.TrimSpace(strings.TrimPrefix(line, "URL "))
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return p
}

// balancer is what a load balancer in front of API replicas does: send the
// request to one replica (procs[first % len]), and on a 503 (or no answer)
// to the next, after Retry-After, until one answers.
func balancer(t *testing.T, ctx context.Context, procs []*serveProcess, key string, first int, body []byte) []metering.Result {
	t.Helper()
	for i := first; ; i++ {
		if ctx.Err() != nil {
			t.Errorf("no replica stored the request: %v", ctx.Err())
			return nil
		}
		p := procs[i%len(procs)]
		req, _ := http.NewRequestWithContext(ctx, "POST", p.url+"/api/v1/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil { // the replica is gone: the next one
			if i%len(procs) == len(procs)-1 {
				time.Sleep(200 * time.Millisecond)
			}
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case 200:
			var r struct{ Results []metering.Result }
			if err := json.Unmarshal(b, &r); err != nil {
				t.Error(err)
				return nil
			}
			return r.Results
		case 503:
			var prob struct{ Code string }
			_ = json.Unmarshal(b, &prob)
			if prob.Code != "shard_not_owned" && prob.Code != "unavailable" {
				t.Errorf("503 with code %q: %s", prob.Code, b)
				return nil
			}
			if i%len(procs) == len(procs)-1 {
				time.Sleep(200 * time.Millisecond) // every replica said 503: Retry-After
			}
		default:
			t.Errorf("POST /api/v1/events: %d %s", resp.StatusCode, b)
			return nil
		}
	}
}

// Two serve processes on the same databases and cluster, behind a load
// balancer that retries a 503 on the other: the same events sent to both
// at the same moment (some with another payload) are stored once, answered
// accepted at most once and conflict where the payload differs from the
// stored one; and when the process that owns the shards is killed -9, the
// other takes the shards over and nothing counts twice.
func TestClusterTwoServeProcesses(t *testing.T) {
	ctx := context.Background()
	a, env := apptest.OpenCluster(t, nil)
	key := apptest.Keys(t, a, "")[auth.RoleAdmin]
	procs := []*serveProcess{startServe(t, a), startServe(t, a)}
	customers := faultCustomers()
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second).Format(time.RFC3339)
	body := func(round, variant int) ([]byte, map[string]int) {
		var b bytes.Buffer
		qty := map[string]int{}
		b.WriteString("[")
		for i := range 12 {
			if i > 0 {
				b.WriteString(",")
			}
			id := fmt.Sprintf("r%d-%d", round, i)
			q := 1
			if variant == 1 && i%4 == 0 {
				q = 2 // a conflicting payload
			}
			qty[id] = q
			fmt.Fprintf(&b, `{"specversion":"1.0","id":%q,"source":"two","type":"message.sent","subject":%q,"time":%q,"data":{"country":"DE","category":"marketing","quantity":%d}}`,
				id, customers[(round*12+i)%len(customers)], at, q)
		}
		b.WriteString("]")
		return b.Bytes(), qty
	}
	var mu sync.Mutex
	var all []sentBatch
	var ids []string
	// A round sends its events twice (the second time some with another
	// payload), each time first to another process: at the same moment in
	// even rounds, one after the other in odd ones.
	round := func(r int) {
		var wg sync.WaitGroup
		for v := range 2 {
			send := func() {
				b, qty := body(r, v)
				rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				defer cancel()
				res := balancer(t, rctx, procs, key, v+r, b)
				mu.Lock()
				all = append(all, sentBatch{qty, res})
				mu.Unlock()
			}
			if r%2 == 1 {
				send()
				continue
			}
			wg.Go(send)
		}
		wg.Wait()
		for i := range 12 {
			ids = append(ids, fmt.Sprintf("r%d-%d", r, i))
		}
	}
	for r := range 10 {
		round(r)
	}
	// Kill -9 the process that writes shard 1 (it took both leases, or
	// they are split: then whichever it is), mid-stream.
	owner := -1
	for i, p := range procs {
		req, _ := http.NewRequest("POST", p.url+"/api/v1/events", strings.NewReader(
			fmt.Sprintf(`[{"specversion":"1.0","id":"probe","source":"two","type":"message.sent","subject":%q,"time":%q,"data":{"country":"DE","category":"marketing"}}]`, customers[0], at)))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			owner = i
		}
	}
	if owner < 0 {
		t.Fatal("no process owns the shard of " + customers[0])
	}
	ids = append(ids, "probe")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for r := 10; r < 25; r++ {
			round(r)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	if err := procs[owner].cmd.Process.Kill(); err != nil { // ours, by its pid
		t.Fatal(err)
	}
	<-done
	if t.Failed() {
		return
	}

	// Stored once each, with the payload answered accepted.
	stored := storedEvents(t, env) // id → quantity stored
	if len(stored) != len(ids) {
		t.Errorf("%d events stored, %d sent", len(stored), len(ids))
	}
	accepted, conflicts := checkAnswers(t, all, stored)
	t.Logf("%d events, %d accepted answers, %d conflicts reported; process %d killed", len(stored), accepted, conflicts, owner)
}

// sentBatch is one batch a test sent and the statuses it got back.
type sentBatch struct {
	qty     map[string]int
	results []metering.Result
}

// checkAnswers checks the statuses of batches sent concurrently (re-sends
// with the same or another quantity) against what is stored (quantity by
// id): each event answered accepted at most once, duplicate when the
// stored quantity is the one sent, conflict when not, and at least one
// conflict. It returns how many events were answered accepted and how many
// conflicts were reported.
func checkAnswers(t *testing.T, all []sentBatch, stored map[string]uint64) (accepted, conflicts int) {
	t.Helper()
	acceptedBy := map[string]int{}
	for _, s := range all {
		for _, r := range s.results {
			want := metering.Duplicate
			if uint64(s.qty[r.ID]) != stored[r.ID] {
				want = metering.Conflict
			}
			switch {
			case r.Status == metering.Accepted && want == metering.Duplicate:
				acceptedBy[r.ID]++
			case r.Status == want:
				if want == metering.Conflict {
					conflicts++
				}
			default:
				t.Errorf("event %s sent with quantity %d (stored %d): answered %s", r.ID, s.qty[r.ID], stored[r.ID], r.Status)
			}
		}
	}
	for id, n := range acceptedBy {
		if n > 1 {
			t.Errorf("event %s answered accepted %d times", id, n)
		}
	}
	if conflicts == 0 {
		t.Error("no conflict reported: the test sent none?")
	}
	return len(acceptedBy), conflicts
}
