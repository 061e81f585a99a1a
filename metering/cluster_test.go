package metering

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"postage"
	"postage/internal/db"
	"postage/internal/testenv"
)

// TestClusterPartOnlyOnADeadReplica is the case of docs/SCALING.md
// ("Settling before a read-back") that only a cluster has: a flush's part
// is committed on the replica the writer talks to, and that replica is
// killed (kill -9) before any other replica fetched the part, so the
// insert's quorum is not reached and its outcome is unknown (503). While
// the quorum insert is pending, ClickHouse refuses further quorum inserts
// on the shard (code 286) and the shard's ingest answers 503: its key index
// is not caught up before the part is on a quorum or given up. Then either
//
//   - the replica returns: the others fetch the part, it is on a quorum,
//     and the re-sent events are duplicates; or
//   - the replica stays away past its ZooKeeper session and a live replica
//     looks for the part: ClickHouse gives the quorum insert up
//     (quorum/failed_parts), ingest resumes without the dead replica, the
//     re-sent events are stored (they were never acknowledged), and the
//     returning replica drops its copy of the failed part.
//
// Either way every replica ends with each event once: none lost, none
// twice. Fetches are stopped on the live replicas while the test decides
// which case happens (a replica that cannot fetch cannot give the quorum
// up), so no case depends on timing.
func TestClusterPartOnlyOnADeadReplica(t *testing.T) {
	if !testenv.ClusterMode() {
		t.Skipf("a fault of the cluster: runs in the cluster-mode run (%s=cluster)", testenv.BackendVar)
	}
	t.Run("the replica returns", func(t *testing.T) { partOnlyOnADeadReplica(t, true) })
	t.Run("the replica stays away", func(t *testing.T) { partOnlyOnADeadReplica(t, false) })
}

func partOnlyOnADeadReplica(t *testing.T, returns bool) {
	ctx := context.Background()
	env, store := newEnvStore(t)
	cl := env.Cluster
	r2, r3 := env.ReplicaConn(t, 1, 2), env.ReplicaConn(t, 1, 3)
	fetches := func(cmd string) {
		t.Helper()
		for _, r := range []driver.Conn{r2, r3} {
			if err := r.Exec(ctx, "SYSTEM "+cmd+" FETCHES events"); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Whatever happens, the cluster is left whole for the next tests.
	t.Cleanup(func() {
		for _, r := range []driver.Conn{r2, r3} {
			_ = r.Exec(context.Background(), "SYSTEM START FETCHES events")
		}
		if err := cl.StartServer(context.Background(), 1, 1); err == nil {
			t.Log("restarted shard 1 replica 1")
		}
	})
	in := NewIngester(store, IngesterConfig{IndexDir: t.TempDir(), FlushTimeout: 3 * time.Second})
	defer in.Close()
	t0 := time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC)
	a := ev("c", "a", t0, "DE", "service", 1)
	if got := submit(t, in, a); got[0] != Accepted {
		t.Fatalf("before the fault: %v", got)
	}

	// The live replicas fetch nothing: the next part stays on replica 1,
	// whose insert waits for a second replica.
	fetches("STOP")
	var path string
	if err := r2.QueryRow(ctx, zooKeeperPathSQL()).Scan(&path); err != nil {
		t.Fatal(err)
	}
	pending := func() bool {
		t.Helper()
		var n uint64
		q, args := quorumPendingSQL(path)
		if err := r2.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	b := []Event{ev("c", "b1", t0, "DE", "service", 1), ev("c", "b2", t0, "DE", "service", 2), ev("d", "b3", t0, "FR", "service", 1)}
	done := make(chan error, 1)
	go func() {
		_, err := in.Submit(ctx, b)
		done <- err
	}()
	for i := 0; !pending(); i++ {
		if i == 500 {
			t.Fatal("the insert never waited for its quorum")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The part is committed on replica 1 alone; it dies.
	if err := cl.KillServer(1, 1); err != nil {
		t.Fatal(err)
	}
	if err := <-done; postage.ErrorCode(err) != postage.EUNAVAILABLE {
		t.Fatalf("the insert whose server died: %v, want unavailable", err)
	}

	// Replicas 2 and 3 are a quorum, but ClickHouse refuses a quorum
	// insert while the earlier one is pending: 286.
	probe := ev("e", "probe", t0, "DE", "service", 1)
	probe.IngestedAt = t0
	err := db.InsertQuorum(ctx, db.Quorum{Replicas: 2}, func(ctx context.Context) error { return NewCHStore(r2).Insert(ctx, []Event{probe}) })
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || ex.Code != 286 {
		t.Fatalf("a quorum insert on the live replicas: %v, want code 286", err)
	}
	// The shard's ingest waits: its key index cannot be caught up.
	c := ev("c", "c", t0, "DE", "service", 1)
	if _, err := in.Submit(ctx, []Event{c}); postage.ErrorCode(err) != postage.EUNAVAILABLE {
		t.Fatalf("ingest while the part is only on the dead replica: %v, want unavailable", err)
	}
	if !pending() {
		t.Fatal("the quorum insert is no longer pending with its part's only replica down")
	}

	want := []Status{Duplicate, Duplicate, Duplicate, Accepted}
	if returns {
		// Replica 1 returns, the others fetch its part: it is on a
		// quorum.
		if err := cl.StartServer(ctx, 1, 1); err != nil {
			t.Fatal(err)
		}
		fetches("START")
	} else {
		// Replica 1 stays away past its session; a live replica looks for
		// the part and finds it nowhere: ClickHouse gives the quorum
		// insert up.
		for i := 0; ; i++ {
			var active uint8
			if err := r2.QueryRow(ctx, "SELECT active_replicas FROM system.replicas WHERE database = currentDatabase() AND table = 'events'").Scan(&active); err != nil {
				t.Fatal(err)
			}
			if active == 2 {
				break
			}
			if i == 1200 {
				t.Fatal("replica 1's ZooKeeper session never expired")
			}
			time.Sleep(50 * time.Millisecond)
		}
		fetches("START")
		for i := 0; pending(); i++ {
			if i == 1200 {
				t.Fatal("ClickHouse never gave the quorum insert up")
			}
			time.Sleep(50 * time.Millisecond)
		}
		var failed uint64
		if err := r2.QueryRow(ctx, "SELECT count() FROM system.zookeeper WHERE path = ?", path+"/quorum/failed_parts").Scan(&failed); err != nil || failed != 1 {
			t.Fatalf("%d failed quorum parts (%v), want 1", failed, err)
		}
		want = []Status{Accepted, Accepted, Accepted, Accepted}
	}
	// The re-send of b and c, until the shard's writer answers.
	resend := append(append([]Event{}, b...), c)
	var got []Status
	for i := 0; ; i++ {
		got, err = in.Submit(ctx, resend)
		if err == nil {
			break
		}
		if postage.ErrorCode(err) != postage.EUNAVAILABLE || i == 60 {
			t.Fatalf("re-send: %v", err)
		}
		time.Sleep(time.Second)
	}
	// c's own request was answered 503, but its flush may have gone on
	// and stored it once the shard could be written again: then the
	// re-send finds it (a 503 promises nothing stored, and a re-send is
	// never counted twice).
	if len(got) == len(want) && got[3] == Duplicate {
		want[3] = Duplicate
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("re-send: %v, want %v", got, want)
	}
	if !returns {
		if err := cl.StartServer(ctx, 1, 1); err != nil {
			t.Fatal(err)
		}
	}
	wantIDs := map[string]uint64{"a": 1, "b1": 1, "b2": 1, "b3": 1, "c": 1}
	for r := 1; r <= 3; r++ {
		conn := env.ReplicaConn(t, 1, r)
		var ids map[string]uint64
		for i := 0; ; i++ { // the restarted replica may refuse until its old session is gone
			if ids, err = storedIDs(ctx, conn); err == nil || i == 30 {
				break
			}
			time.Sleep(time.Second)
		}
		if err != nil {
			t.Fatalf("replica %d: %v", r, err)
		}
		if !reflect.DeepEqual(ids, wantIDs) {
			t.Errorf("replica %d holds %v, want each event once: %v", r, ids, wantIDs)
		}
	}
}

// storedIDs counts the rows of each event id on one replica, once it has
// every part its shard logged.
func storedIDs(ctx context.Context, conn driver.Conn) (map[string]uint64, error) {
	if err := conn.Exec(ctx, "SYSTEM SYNC REPLICA events"); err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, "SELECT id, count() FROM events GROUP BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var id string
		var n uint64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		out[id] = n
	}
	return out, rows.Err()
}
