package metering

import (
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"postage/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newCH returns a connection to a fresh, migrated ClickHouse database.
func newCH(t testing.TB) driver.Conn {
	t.Helper()
	return testenv.New(t).CH
}
