package pricing

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The embedded seed files are copies of ../shared/data; when that
// directory is next to the repository, they must be byte-identical.
func TestSeedFilesMatchSharedData(t *testing.T) {
	shared := filepath.Join("..", "..", "shared", "data")
	if _, err := os.Stat(shared); err != nil {
		t.Skip("no ../shared/data next to the repository")
	}
	for _, name := range []string{"launch-prices.csv", "meta-markets.csv", "meta-rates-2026-01.csv"} {
		want, err := os.ReadFile(filepath.Join(shared, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := seedFS.ReadFile("seed/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("pricing/seed/%s differs from %s", name, filepath.Join(shared, name))
		}
	}
}
