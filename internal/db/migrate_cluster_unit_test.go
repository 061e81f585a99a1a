package db

import (
	"fmt"
	"strings"
	"testing"
)

func TestClusterStatementFor(t *testing.T) {
	tests := []struct {
		name     string
		stmt     string
		want     string
		perShard bool
		wantErr  string
	}{
		{"replacing engine with a version",
			"CREATE TABLE IF NOT EXISTS events (\n    id String,\n    v UInt64\n) ENGINE = ReplacingMergeTree(v)\nPARTITION BY toYYYYMM(t)\nORDER BY (id)\nSETTINGS index_granularity = 1024",
			"CREATE TABLE IF NOT EXISTS `pg`.events ON CLUSTER `c` (\n    id String,\n    v UInt64\n) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/pg/events.0020', '{replica}', v)\nPARTITION BY toYYYYMM(t)\nORDER BY (id)\nSETTINGS index_granularity = 1024",
			false, ""},
		{"plain MergeTree without parentheses",
			"CREATE TABLE t (x UInt8) ENGINE = MergeTree ORDER BY x",
			"CREATE TABLE `pg`.t ON CLUSTER `c` (x UInt8) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/pg/t.0020', '{replica}') ORDER BY x",
			false, ""},
		{"empty parentheses, lower case, no space before the columns",
			"create table if not exists t(x UInt8) engine=MergeTree() order by x",
			"CREATE TABLE IF NOT EXISTS `pg`.t ON CLUSTER `c`(x UInt8) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/pg/t.0020', '{replica}') order by x",
			false, ""},
		{"summing with a tuple of columns",
			"CREATE TABLE r (k String, n UInt64, m UInt64) ENGINE = SummingMergeTree((n, m)) ORDER BY k",
			"CREATE TABLE `pg`.r ON CLUSTER `c` (k String, n UInt64, m UInt64) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/pg/r.0020', '{replica}', (n, m)) ORDER BY k",
			false, ""},
		{"a column default naming MergeTree-like words is left alone",
			"CREATE TABLE t (e String DEFAULT 'ENGINE = MergeTree') ENGINE = Memory",
			"CREATE TABLE `pg`.t ON CLUSTER `c` (e String DEFAULT 'ENGINE = MergeTree') ENGINE = Memory",
			false, ""},
		{"backquoted table",
			"CREATE TABLE `my table` (x UInt8) ENGINE = CollapsingMergeTree(sign) ORDER BY x",
			"CREATE TABLE `pg`.`my table` ON CLUSTER `c` (x UInt8) ENGINE = ReplicatedCollapsingMergeTree('/clickhouse/tables/{shard}/pg/my table.0020', '{replica}', sign) ORDER BY x",
			false, ""},
		{"non-replicable engine stays",
			"CREATE TABLE m (x UInt8) ENGINE = Memory",
			"CREATE TABLE `pg`.m ON CLUSTER `c` (x UInt8) ENGINE = Memory",
			false, ""},
		{"alter",
			"ALTER TABLE events ADD COLUMN key_hash UInt64 DEFAULT cityHash64(customer_id, id)",
			"ALTER TABLE `pg`.events ON CLUSTER `c` ADD COLUMN key_hash UInt64 DEFAULT cityHash64(customer_id, id)",
			false, ""},
		{"drop", "DROP TABLE IF EXISTS old", "DROP TABLE IF EXISTS `pg`.old ON CLUSTER `c`", false, ""},
		{"drop without if", "drop table old", "DROP TABLE `pg`.old ON CLUSTER `c`", false, ""},
		{"truncate", "TRUNCATE TABLE t", "TRUNCATE TABLE `pg`.t ON CLUSTER `c`", false, ""},
		{"rename two", "RENAME TABLE a TO b, c TO d", "RENAME TABLE `pg`.a TO `pg`.b, `pg`.c TO `pg`.d ON CLUSTER `c`", false, ""},
		{"insert select runs per shard", "INSERT INTO b (x) SELECT x FROM a", "INSERT INTO b (x) SELECT x FROM a", true, ""},
		{"optimize runs per shard", "OPTIMIZE TABLE t FINAL", "OPTIMIZE TABLE t FINAL", true, ""},
		{"already replicated", "CREATE TABLE t (x UInt8) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY x", "", false, "Replicated already"},
		{"own ON CLUSTER", "CREATE TABLE t ON CLUSTER x (x UInt8) ENGINE = Memory", "", false, "ON CLUSTER itself"},
		{"qualified name", "CREATE TABLE other.t (x UInt8) ENGINE = Memory", "", false, "not supported on a cluster"},
		{"create as", "CREATE TABLE t AS u ENGINE = MergeTree ORDER BY x", "", false, "AS ...: not supported"},
		{"materialized view", "CREATE MATERIALIZED VIEW v TO t AS SELECT 1", "", false, "CREATE MATERIALIZED ...: not supported on a cluster"},
		{"select", "SELECT 1", "", false, "not supported on a cluster"},
		{"unbalanced", "CREATE TABLE t (x UInt8) ENGINE = SummingMergeTree((x) ORDER BY x", "", false, "unbalanced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := clusterStatementFor(tt.stmt, "pg", "c", 20)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want an error containing %q", got.SQL, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.SQL != tt.want || got.PerShard != tt.perShard {
				t.Errorf("got (per shard %v)\n%s\nwant (per shard %v)\n%s", got.PerShard, got.SQL, tt.perShard, tt.want)
			}
		})
	}
}

// Every embedded ClickHouse migration can run on a cluster.
func TestEmbeddedMigrationsRunOnACluster(t *testing.T) {
	ms, err := loadMigrations(migrationFiles, "migrations/clickhouse")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		for i, stmt := range splitStatements(m.SQL) {
			if _, err := clusterStatementFor(stmt, "postage", "postage", m.Version); err != nil {
				t.Errorf("%s statement %d: %v", m.Name, i+1, err)
			}
		}
	}
}

func TestShardStatementFor(t *testing.T) {
	tests := []struct {
		stmt  string
		want  string
		every bool
	}{
		{"CREATE TABLE events_next (x UInt8) ENGINE = MergeTree ORDER BY x",
			"CREATE TABLE events_next (x UInt8) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/pg/events_next.0022', '{replica}') ORDER BY x", true},
		{"DROP TABLE IF EXISTS events_next", "DROP TABLE IF EXISTS events_next", true},
		{"RENAME TABLE events TO old, events_next TO events", "RENAME TABLE events TO old, events_next TO events", true},
		{"ALTER TABLE events ADD COLUMN x UInt8", "ALTER TABLE events ADD COLUMN x UInt8", false},
		{"INSERT INTO events_next (x) SELECT x FROM events", "INSERT INTO events_next (x) SELECT x FROM events", false},
	}
	for _, tt := range tests {
		got, every, err := shardStatementFor(tt.stmt, "pg", 22)
		if err != nil || got != tt.want || every != tt.every {
			t.Errorf("shardStatementFor(%q) = %q, every replica %v, %v; want %q, %v", tt.stmt, got, every, err, tt.want, tt.every)
		}
	}
}

func TestShardForWeights(t *testing.T) {
	topo := Topology{Shards: []Shard{{Num: 1, Weight: 1}, {Num: 2, Weight: 3}}}
	counts := make([]int, 2)
	for i := 0; i < 4000; i++ {
		counts[topo.ShardFor(fmt.Sprint("c", i))]++
	}
	// Weights 1:3: about 1,000 and 3,000.
	if counts[0] < 800 || counts[0] > 1200 {
		t.Errorf("keys per shard %v, want about 1000 and 3000", counts)
	}
	if got := (Topology{}).ShardFor("x"); got != 0 {
		t.Errorf("no shards: %d, want 0", got)
	}
}
