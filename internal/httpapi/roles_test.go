package httpapi_test

import (
	"flag"
	"os"
	"strings"
	"testing"

	"postage/internal/httpapi"
)

var update = flag.Bool("update", false, "rewrite README.md's role table from the route table")

// README.md's role table is the route table's: this fails when they
// differ; -update rewrites the README.
func TestREADMERoleTable(t *testing.T) {
	s := newStack(t)
	const path = "../../README.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, httpapi.RoleTableBegin)
	j := strings.Index(readme, httpapi.RoleTableEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the role table markers %q ... %q", httpapi.RoleTableBegin, httpapi.RoleTableEnd)
	}
	i += len(httpapi.RoleTableBegin)
	want := "\n" + httpapi.RoleTable(s.Srv.Routes())
	if got := readme[i:j]; got != want {
		if *update {
			if err := os.WriteFile(path, []byte(readme[:i]+want+readme[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Log("README.md role table rewritten")
			return
		}
		t.Errorf("README.md's role table differs from the route table; run go test ./internal/httpapi -run TestREADMERoleTable -update\ngot:\n%s\nwant:\n%s", got, want)
	}
}
