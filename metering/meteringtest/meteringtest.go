// Package meteringtest builds metering's stores, usage reads and ingest
// over a test's ClickHouse database (internal/testenv) the way app.Open
// does: on one server one CHStore; on the cluster one replicated store per
// shard (quorum inserts) behind a ShardedUsage and a ShardedIngester, so
// that the suites of the packages that read usage (billing, reports) run
// the same test bodies on both.
package meteringtest

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"postage/internal/testenv"
	"postage/metering"
)

// Meter is the event side of a test: its stores and their usage reads.
type Meter struct {
	// Usage reads every customer's usage: the CHStore on one server, a
	// ShardedUsage over the shards' stores on the cluster.
	Usage metering.Usage
	// Stores are the stores of each shard, in shard order (one on a
	// server).
	Stores []*metering.CHStore
	// Shard returns the index in Stores of a customer's shard.
	Shard func(customerID string) int
}

// Open returns env's Meter (env from testenv.NewBackend or NewCluster).
func Open(t testing.TB, env *testenv.Env) *Meter {
	t.Helper()
	if !env.Clustered() {
		s := metering.NewCHStore(env.CH)
		return &Meter{Usage: s, Stores: []*metering.CHStore{s}, Shard: func(string) int { return 0 }}
	}
	m := &Meter{Shard: env.ShardFor}
	var usages []metering.Usage
	for _, sh := range env.Shards(t) {
		s := metering.NewReplicatedCHStore(sh.Writer, metering.ReplicatedOptions{Replicas: sh.Replicas})
		m.Stores = append(m.Stores, s)
		usages = append(usages, s)
	}
	m.Usage = metering.NewShardedUsage(usages, env.ShardFor)
	return m
}

// Insert stores events as they are (their IngestedAt and PayloadHash
// included), each on its customer's shard with the shard's insert quorum,
// as an ingester's flush stores them; without the key index's checks.
func (m *Meter) Insert(ctx context.Context, events []metering.Event) error {
	parts := make([][]metering.Event, len(m.Stores))
	for _, e := range events {
		i := m.Shard(e.CustomerID)
		parts[i] = append(parts[i], e)
	}
	for i, p := range parts {
		if err := m.Stores[i].Insert(ctx, p); err != nil {
			return fmt.Errorf("shard %d: %w", i+1, err)
		}
	}
	return nil
}

// Ingester is an ingester per shard behind the routing of each event to
// its customer's shard.
type Ingester struct {
	metering.ShardedIngester
	shards []*metering.Ingester
}

// NewIngester starts an ingester on each shard's store with cfg (IndexDir,
// if set, gets a directory per shard: shard-<n>), closed when t ends.
func (m *Meter) NewIngester(t testing.TB, cfg metering.IngesterConfig) *Ingester {
	t.Helper()
	in := &Ingester{ShardedIngester: metering.ShardedIngester{Shard: m.Shard}}
	for i, s := range m.Stores {
		c := cfg
		if cfg.IndexDir != "" && len(m.Stores) > 1 {
			c.IndexDir = filepath.Join(cfg.IndexDir, fmt.Sprintf("shard-%d", i+1))
		}
		si := metering.NewIngester(s, c)
		in.shards = append(in.shards, si)
		in.Shards = append(in.Shards, si)
	}
	t.Cleanup(in.Close)
	return in
}

// Close closes every shard's ingester.
func (in *Ingester) Close() {
	for _, s := range in.shards {
		s.Close()
	}
}
