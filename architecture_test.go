package postage_test

import (
	"go/build"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestArchitectureTableIsTrue checks docs/ARCHITECTURE.md's package table
// against the code: every package of the module has a row, and a row's
// "depends on" names exactly the module's packages it imports ("root" is
// this package, "—" none; "everything" and "domains" are checked only for
// imports of this module).
func TestArchitectureTableIsTrue(t *testing.T) {
	pkgs := modulePackages(t)
	rows := architectureRows(t, pkgs)
	domains := []string{"postage", "pricing", "metering", "billing", "notify", "reports", "reconcile"}
	for _, p := range pkgs {
		deps, ok := rows[p.name]
		if !ok {
			t.Errorf("package %s has no row in docs/ARCHITECTURE.md", p.name)
			continue
		}
		delete(rows, p.name)
		switch {
		case slices.Equal(deps, []string{"everything"}):
			continue
		case slices.Equal(deps, []string{"domains"}):
			for _, imp := range p.imports {
				if !slices.Contains(domains, imp) && !strings.HasPrefix(imp, "internal/") {
					t.Errorf("%s imports %s, which is neither a domain package nor internal", p.name, imp)
				}
			}
			continue
		}
		if got, want := p.imports, deps; !slices.Equal(got, want) {
			t.Errorf("%s imports %v; docs/ARCHITECTURE.md says it depends on %v", p.name, got, want)
		}
	}
	for name := range rows {
		t.Errorf("docs/ARCHITECTURE.md has a row for %s, which is not a package", name)
	}
}

type modulePackage struct {
	name    string   // as in the table: "billing", "postage" for the root
	imports []string // the module's packages it imports (tests excluded), sorted
}

// modulePackages lists the module's packages with Go files for this
// platform (tests and testdata excluded; web/node_modules skipped).
func modulePackages(t *testing.T) []modulePackage {
	t.Helper()
	var out []modulePackage
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if base := d.Name(); path != "." && (strings.HasPrefix(base, ".") || base == "testdata" || base == "node_modules" || base == "data" || base == "bin") {
			return filepath.SkipDir
		}
		p, err := build.ImportDir(path, 0)
		if err != nil {
			if _, ok := err.(*build.NoGoError); ok {
				return nil
			}
			return err
		}
		name := filepath.ToSlash(path)
		if name == "." {
			name = "postage"
		}
		var imps []string
		for _, imp := range p.Imports {
			switch {
			case imp == "postage":
				imps = append(imps, "postage")
			case strings.HasPrefix(imp, "postage/"):
				imps = append(imps, strings.TrimPrefix(imp, "postage/"))
			}
		}
		sort.Strings(imps)
		out = append(out, modulePackage{name: name, imports: imps})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// architectureRows reads the package table: package → the packages its
// "depends on" cell names (first word of each comma-separated item outside
// parentheses; "root" is "postage", "db" is internal/db when there is no
// package db), sorted.
func architectureRows(t *testing.T, pkgs []modulePackage) map[string][]string {
	t.Helper()
	known := map[string]bool{}
	for _, p := range pkgs {
		known[p.name] = true
	}
	b, err := os.ReadFile("docs/ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if i := strings.Index(name, "`"); i >= 0 {
			name = name[:i]
		}
		if name == "postage" || strings.HasPrefix(name, "postage` ") {
			name = "postage"
		}
		deps := []string{}
		for _, item := range splitOutsideParens(strings.TrimSpace(cells[len(cells)-2])) {
			word := strings.Trim(strings.Fields(item + " ")[0], "`")
			switch word {
			case "—", "":
				continue
			case "root":
				word = "postage"
			}
			if !known[word] && known["internal/"+word] {
				word = "internal/" + word
			}
			deps = append(deps, word)
		}
		sort.Strings(deps)
		rows[name] = deps
	}
	if len(rows) == 0 {
		t.Fatal("no package table in docs/ARCHITECTURE.md")
	}
	return rows
}

// splitOutsideParens splits s on commas that are not inside parentheses.
func splitOutsideParens(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}
