package app_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"postage/internal/apptest"
	"postage/internal/auth"
)

// metricsOf reads the numbers of the /metrics lines that start with
// prefix (a metric name with its labels), by whole line before the value.
func metricsOf(t *testing.T, base, key string) map[string]float64 {
	t.Helper()
	b := get(t, base, key, "GET", "/metrics", "")
	out := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", l, err)
		}
		out[l[:i]] = v
	}
	return out
}

// On a cluster each shard's ingester reports its own series (a shard
// label): the events each shard flushed add up to the events of its
// customers, and its queue gauge is its own.
func TestClusterMetricsPerShard(t *testing.T) {
	a, env := openFaultApp(t)
	base := apptest.Serve(t, a)
	key := apptest.Keys(t, a, "")[auth.RoleAdmin]
	customers := faultCustomers()
	f := newFeeder(a, customers)
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	perShard := map[int]int{}
	for range 5 {
		evs := f.batch(17, at)
		if err := f.send(ctx, evs); err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			perShard[env.CHCluster.Topology.ShardFor(e.CustomerID)+1]++
		}
	}
	m := metricsOf(t, base, key)
	for s := 1; s <= 2; s++ {
		lbl := `{shard="` + strconv.Itoa(s) + `"}`
		got, want := m["postage_ingest_batch_events_sum"+lbl], float64(perShard[s])
		if got != want || want == 0 {
			t.Errorf("shard %d: %v events flushed by its ingester, want %v (metrics %v)", s, got, want, m)
		}
		if n := m["postage_ingest_lookup_seconds_count"+lbl]; n == 0 {
			t.Errorf("shard %d: no key index look-up counted", s)
		}
		if _, ok := m["postage_ingest_queue_events"+lbl]; !ok {
			t.Errorf("shard %d: no queue gauge", s)
		}
	}
	if _, ok := m[`postage_ingest_batch_events_sum{shard=""}`]; ok {
		t.Error(`a cluster reports flushes of shard ""`)
	}
}
