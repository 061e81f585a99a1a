package metering

import (
	"strings"
	"testing"
)

func TestReplicatedSettleSQL(t *testing.T) {
	q, args := quorumPendingSQL("/clickhouse/tables/1/postage/events.0022")
	if !strings.Contains(q, "system.zookeeper") || len(args) != 1 || args[0] != "/clickhouse/tables/1/postage/events.0022/quorum" {
		t.Errorf("quorumPendingSQL: %s %v", q, args)
	}
	for _, want := range []string{"system.replicas", "log_pointer <= log_max_index", "system.replication_queue", "type = 'GET_PART'", "currentDatabase()"} {
		if q := replicaBehindSQL(); !strings.Contains(q, want) {
			t.Errorf("replicaBehindSQL does not say %q: %s", want, q)
		}
	}
	if q := zooKeeperPathSQL(); !strings.Contains(q, "table = 'events'") {
		t.Errorf("zooKeeperPathSQL: %s", q)
	}
}
