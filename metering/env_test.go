package metering

import (
	"os"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"postage/internal/testenv"
)

func TestMain(m *testing.M) {
	if arg := os.Getenv(crashChildEnv); arg != "" {
		crashChild(arg) // never returns
	}
	testenv.Main(m)
}

// newEnvStore returns a fresh database on the run's ClickHouse backend
// (testenv.NewBackend) and the store the test writes and reads: on one
// server a CHStore on it; on the cluster the store of its first shard as
// app.Open builds each shard's (NewReplicatedCHStore on a connection that
// sends the shard's insert quorum, with connections to each replica), the
// store every shard's ingester, sealer and reads run on. A customer's
// shard is the application's business (ShardedUsage, ShardedIngester): a
// shard's store takes whatever it is given.
func newEnvStore(t testing.TB) (*testenv.Env, *CHStore) {
	t.Helper()
	env := testenv.NewBackend(t)
	if !env.Clustered() {
		return env, NewCHStore(env.CH)
	}
	sh := env.Shards(t)[0]
	return env, NewReplicatedCHStore(sh.Writer, ReplicatedOptions{Replicas: sh.Replicas})
}

// newStore is newEnvStore's store.
func newStore(t testing.TB) *CHStore {
	t.Helper()
	_, s := newEnvStore(t)
	return s
}

// newCH returns the connection of newStore's store, for the tests of SQL
// run on it.
func newCH(t testing.TB) driver.Conn {
	t.Helper()
	return newStore(t).conn
}
