package metering_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"postage/internal/auth"
	"postage/internal/testenv"
	"postage/metering"
)

// TestCrashDuringIngest runs `postage serve` as a child process, posts
// batches from concurrent clients, SIGKILLs the server in the middle of the
// load, starts it again and re-sends every batch, acknowledged or not (what
// a client that retries until it gets a 2xx does). Afterwards every event is
// stored exactly once: every acknowledged event is present, no event has two
// rows even before merges, and the re-sent acknowledged events all answer
// duplicate.
func TestCrashDuringIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	testenv.SingleServerOnly(t, "runs `postage serve` on a one-server configuration; on the cluster, a serving process killed -9 mid-stream is internal/app TestClusterTwoServeProcesses")
	env := testenv.New(t)
	ctx := context.Background()
	bin := os.Getenv("POSTAGE_TEST_BINARY") // a prebuilt server, or build one
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "postage")
		build := exec.Command("go", "build", "-o", bin, "postage/cmd/postage")
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			t.Fatalf("build: %v", err)
		}
	}
	_, token, err := auth.NewStore(env.PG).Create(ctx, auth.NewKey{Name: "crash test", Role: auth.RoleIngest})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	indexDir := t.TempDir() // the key index survives the crash, as on a server's disk

	start := func() *exec.Cmd {
		t.Helper()
		cmd := exec.Command(bin, "serve")
		cmd.Env = append(os.Environ(),
			"POSTAGE_POSTGRES_DSN="+env.PGDSN,
			"POSTAGE_CLICKHOUSE_ADDR="+env.CHAddr,
			"POSTAGE_CLICKHOUSE_DATABASE="+env.CHDatabase,
			"POSTAGE_HTTP_ADDR="+addr,
			"POSTAGE_INGEST_INDEX_DIR="+indexDir,
			"POSTAGE_BILLING_SCHEDULER=false",
			"POSTAGE_LOG_LEVEL=error",
		)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			resp, err := http.Get("http://" + addr + "/readyz") // the key index is open and caught up
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return cmd
				}
			}
			if i > 300 {
				cmd.Process.Kill()
				t.Fatalf("server did not start: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	now := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	batchBody := func(client, n int) []byte {
		var b bytes.Buffer
		b.WriteString("[")
		for i := range 200 {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"specversion":"1.0","type":"message.sent","source":"crash","id":"c%d-b%d-e%d","subject":"cust-%d","time":%q,"data":{"country":"DE","category":"utility"}}`,
				client, n, i, i%7, now)
		}
		b.WriteString("]")
		return b.Bytes()
	}
	post := func(body []byte) (*metering.Result, []metering.Result, error) {
		req, _ := http.NewRequest("POST", "http://"+addr+"/api/v1/events", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return nil, nil, fmt.Errorf("status %d", resp.StatusCode)
		}
		var r struct{ Results []metering.Result }
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return nil, nil, err
		}
		return nil, r.Results, nil
	}

	server := start()
	const clients = 4
	var mu sync.Mutex
	sent := map[[2]int][]byte{} // every batch ever sent
	acked := map[string]bool{}  // ids answered accepted or duplicate with 200
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				body := batchBody(c, n)
				mu.Lock()
				sent[[2]int{c, n}] = body
				mu.Unlock()
				_, res, err := post(body)
				if err != nil {
					return // the server died
				}
				mu.Lock()
				for _, r := range res {
					if r.Status == metering.Accepted || r.Status == metering.Duplicate {
						acked[r.ID] = true
					}
				}
				mu.Unlock()
			}
		}()
	}
	// Kill the server once a good number of batches were acknowledged.
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 20000 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := server.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	server.Wait()
	close(stop)
	wg.Wait()
	t.Logf("killed after %d acknowledged events, %d batches sent", len(acked), len(sent))

	server = start()
	defer func() { server.Process.Kill(); server.Wait() }()
	total, landedUnacked := 0, 0
	for key, body := range sent {
		_, res, err := post(body)
		if err != nil {
			t.Fatalf("re-send %v: %v", key, err)
		}
		for _, r := range res {
			total++
			switch {
			case acked[r.ID] && r.Status != metering.Duplicate:
				t.Fatalf("acknowledged event %s re-sent: %s, want duplicate", r.ID, r.Status)
			case r.Status != metering.Duplicate && r.Status != metering.Accepted:
				t.Fatalf("event %s: %+v", r.ID, r)
			case !acked[r.ID] && r.Status == metering.Duplicate:
				landedUnacked++ // stored by the killed server, never acknowledged
			}
		}
	}
	t.Logf("re-sent %d events; %d of the unacknowledged ones had landed before the kill", total, landedUnacked)
	var rows, ids uint64
	if err := env.CH.QueryRow(ctx, "SELECT count(), uniqExact(customer_id, id) FROM events").Scan(&rows, &ids); err != nil {
		t.Fatal(err)
	}
	if rows != uint64(total) || ids != uint64(total) {
		t.Errorf("%d events sent; table has %d rows, %d distinct ids", total, rows, ids)
	}
	stored := map[string]bool{}
	idRows, err := env.CH.Query(ctx, "SELECT DISTINCT id FROM events")
	if err != nil {
		t.Fatal(err)
	}
	for idRows.Next() {
		var id string
		if err := idRows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stored[id] = true
	}
	idRows.Close()
	missing := 0
	for id := range acked {
		if !stored[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d acknowledged events missing", missing)
	}
}
