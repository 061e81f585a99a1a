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

// newCH returns a connection to a fresh, migrated ClickHouse database.
func newCH(t testing.TB) driver.Conn {
	t.Helper()
	return testenv.New(t).CH
}
