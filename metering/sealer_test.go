package metering

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// stored inserts events as ingested at ingested.
func stored(t *testing.T, s *CHStore, ingested time.Time, evs ...Event) {
	t.Helper()
	for i := range evs {
		evs[i].IngestedAt = ingested
	}
	if err := s.Insert(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

func sealedHours(s *CHStore) map[int64]bool {
	s.cat.mu.RLock()
	defer s.cat.mu.RUnlock()
	out := map[int64]bool{}
	for _, h := range s.cat.starts[tierHour] {
		out[h] = true
	}
	return out
}

// An hour is sealed only once it ended Delay ago and no insert stamped
// inside it (or before its end) is still running; sealing starts at the
// first event's month, so the month can be sealed whole; a later event
// stamped before that start moves it back.
func TestSealerWaitsForTheLastInsertOfAnHour(t *testing.T) {
	ctx := context.Background()
	env, s := newEnvStore(t)
	at := func(v string) time.Time { return time.Unix(u(t, v), 0).UTC() }
	now := at("2026-11-03T10:01:00Z")
	sealer := NewSealer(s, SealerConfig{Now: func() time.Time { return now }, Delay: 2 * time.Minute})

	if res, err := sealer.SealOnce(ctx); err != nil || res != (SealResult{}) {
		t.Fatalf("nothing stored: %+v %v", res, err)
	}
	stored(t, s, at("2026-11-03T08:10:00Z"), ev("c1", "a", at("2026-11-03T08:00:00Z"), "DE", "service", 1))

	// At 10:01 the hour of 09:00 ended less than Delay ago: hours up to
	// 08:00 only.
	res, err := sealer.SealOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hours := sealedHours(s)
	if !hours[u(t, "2026-11-01T00:00:00Z")] || !hours[u(t, "2026-11-03T08:00:00Z")] || hours[u(t, "2026-11-03T09:00:00Z")] || res.Hours != 57 || res.Days != 2 {
		t.Fatalf("sealed %+v: %d hours, want 1 Nov 00:00 to 3 Nov 08:00", res, len(hours))
	}

	// An insert stamped 10:30 still running at 11:05 holds back 10:00
	// (and everything after), not 09:00.
	defer func() {
		if !sealedHours(s)[u(t, "2026-11-03T09:00:00Z")] {
			t.Error("09:00 not sealed")
		}
	}()
	now = at("2026-11-03T11:05:00Z")
	// The insert runs on a server the store does not read from: on the
	// cluster, another replica of the shard (a former writer's connection
	// failed over there).
	slow := env.CH
	if env.Clustered() {
		slow = env.ReplicaConn(t, 1, 2)
	}
	running := make(chan error, 1)
	go func() {
		qctx := clickhouse.Context(ctx, clickhouse.WithQueryID(fmt.Sprintf("%s%d-%x", InsertQueryPrefix, u(t, "2026-11-03T10:30:00Z"), 99)))
		running <- slow.Exec(qctx, "SELECT sleep(3)")
	}()
	for i := 0; ; i++ {
		var n uint64
		if err := slow.QueryRow(ctx, "SELECT count() FROM system.processes WHERE startsWith(query_id, 'postage-ingest-')").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if i == 200 {
			t.Fatal("the slow query never showed in system.processes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := sealer.SealOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if sealedHours(s)[u(t, "2026-11-03T10:00:00Z")] {
		t.Fatal("10:00 sealed while an insert stamped inside it was running")
	}
	if err := <-running; err != nil {
		t.Fatal(err)
	}
	if _, err := sealer.SealOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if !sealedHours(s)[u(t, "2026-11-03T10:00:00Z")] {
		t.Fatal("10:00 not sealed after the insert ended")
	}

	// An event stamped in October (before the first sealed hour) moves
	// the start back to October; until it is sealed, reads take it raw.
	stored(t, s, at("2026-10-20T05:00:00Z"), ev("c1", "b", at("2026-10-20T04:00:00Z"), "DE", "service", 2))
	got, err := s.MonthlyAggregates(ctx, at("2026-10-01T00:00:00Z"), time.Time{})
	if err != nil || len(got) != 1 || got[0].Quantity != 2 {
		t.Fatalf("October before sealing: %+v %v", got, err)
	}
	for more := true; more; {
		res, err := sealer.SealOnce(ctx) // a pass seals at most a week of hours
		if err != nil {
			t.Fatal(err)
		}
		more = res.More
	}
	s.cat.mu.RLock()
	octSealed := s.cat.sealed(tierMonth, u(t, "2026-10-01T00:00:00Z"))
	s.cat.mu.RUnlock()
	if !octSealed {
		t.Error("October not sealed after an event stamped in it appeared")
	}
	got, err = s.MonthlyAggregates(ctx, at("2026-10-01T00:00:00Z"), time.Time{})
	if err != nil || len(got) != 1 || got[0].Quantity != 2 {
		t.Fatalf("October after sealing: %+v %v", got, err)
	}
	if plan := fmtPlan(planRead(monthlySpec(at("2026-10-01T00:00:00Z"), time.Time{}, nil), s.cat)); plan[0][:5] != "month" {
		t.Errorf("October not read from tier 3: %q", plan)
	}
}

// A pass stops at PassHours and says there is more.
func TestSealerPassIsBounded(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	at := func(v string) time.Time { return time.Unix(u(t, v), 0).UTC() }
	stored(t, s, at("2026-11-01T00:10:00Z"), ev("c1", "a", at("2026-11-01T00:00:00Z"), "DE", "service", 1))
	sealer := NewSealer(s, SealerConfig{Now: func() time.Time { return at("2026-11-03T00:00:00Z") }, PassHours: 10, ChunkHours: 4})
	for i, want := range []SealResult{{Hours: 10, More: true}, {Hours: 10, More: true}, {Hours: 10, Days: 1, More: true}, {Hours: 10, More: true}, {Hours: 7}, {}} {
		res, err := sealer.SealOnce(ctx)
		if err != nil || res != want {
			t.Fatalf("pass %d: %+v %v, want %+v", i, res, err, want)
		}
	}
}
