package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/invopop/jsonschema"

	"postage/metering"
	"postage/pricing/pgstore"
)

var updateOpenAPI = flag.Bool("update-openapi", false, "rewrite internal/apiclient/openapi.json from the route table")

// committedOpenAPI is where the document is committed: the Go client's
// generator input (internal/apiclient), for clients in other languages too.
var committedOpenAPI = filepath.Join("..", "apiclient", "openapi.json")

// describedServer registers every route without databases: the stores are
// typed nil pointers, never called by building the document.
func describedServer() *Server {
	return New(Deps{
		Version:  "test",
		Metering: MeteringDeps{Rules: &metering.Rules{}, Ingester: (*metering.Ingester)(nil), Usage: (*metering.CHStore)(nil)},
		Pricing:  PricingDeps{Store: (*pgstore.Store)(nil)},
	})
}

// CommittedForm is the document as it is committed: indented, with the
// API's version instead of the server's build.
func committedForm(t *testing.T, doc *openapi3.T) []byte {
	t.Helper()
	doc.Info.Version = "v1"
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// The document is a valid OpenAPI 3.0 document by kin-openapi's validator,
// loaded from its JSON as a client would.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	b := describedServer().openAPIJSON()
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := doc.OpenAPI, "3.0.3"; got != want {
		t.Errorf("openapi: got %s, want %s", got, want)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// sourceComments extracts the doc comments of the types the document
// describes, and of their fields, from the source of their packages.
func sourceComments(t *testing.T, routes []Route) []byte {
	t.Helper()
	_, types, err := buildOpenAPITypes(routes, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	dirs := map[string]bool{}
	for _, typ := range types {
		if typ.PkgPath() != "postage" && !strings.HasPrefix(typ.PkgPath(), "postage/") {
			continue
		}
		names[typ.PkgPath()+"."+typ.Name()] = true
		dirs[strings.TrimPrefix(strings.TrimPrefix(typ.PkgPath(), "postage"), "/")] = true
	}
	all := map[string]string{}
	r := &jsonschema.Reflector{CommentMap: all}
	for _, dir := range slices.Sorted(maps.Keys(dirs)) {
		// The extractor names packages by their path from the module's
		// root: run it there.
		root, _ := filepath.Abs(filepath.Join("..", ".."))
		if err := withDir(root, func() error { return r.AddGoComments("postage", dir) }); err != nil {
			t.Fatal(err)
		}
	}
	kept := map[string]string{}
	for k, v := range all {
		typ := k
		if i := strings.LastIndex(k, "."); i > strings.LastIndex(k, "/") && !names[k] {
			typ = k[:i] // a field: Type.Field
		}
		if names[typ] && v != "" {
			kept[k] = v
		}
	}
	b, err := json.MarshalIndent(kept, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// withDir runs f in dir (tests of this package do not run in parallel).
func withDir(dir string, f func() error) error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	if err := os.Chdir(dir); err != nil {
		return err
	}
	defer os.Chdir(wd)
	return f()
}

// The committed document (the Go client's generator input) is the one the
// route table builds, with the doc comments the source has now. After
// changing a route, a type it answers or their comments, run
// go test ./internal/httpapi -run TestOpenAPIFileIsCurrent -update-openapi
// and go generate ./internal/apiclient.
func TestOpenAPIFileIsCurrent(t *testing.T) {
	const commentsFile = "openapi_comments.json"
	routes := describedServer().routes
	comments := sourceComments(t, routes)
	var m map[string]string
	if err := json.Unmarshal(comments, &m); err != nil {
		t.Fatal(err)
	}
	doc, _, err := buildOpenAPITypes(routes, "", m)
	if err != nil {
		t.Fatal(err)
	}
	got := committedForm(t, doc)
	if *updateOpenAPI {
		if err := os.WriteFile(commentsFile, comments, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(committedOpenAPI, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for file, want := range map[string][]byte{commentsFile: comments, committedOpenAPI: got} {
		have, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(have, want) {
			t.Errorf("%s is out of date: run go test ./internal/httpapi -run TestOpenAPIFileIsCurrent -update-openapi, then go generate ./internal/apiclient", file)
		}
	}
}

var errorCodeName = regexp.MustCompile(`^E[A-Z]+$`)

// constValues returns the string constants a package's source declares,
// by type name ("error code" for untyped EXXX ones).
func constValues(t *testing.T, pkgPath string) map[string][]string {
	t.Helper()
	dir := filepath.Join("..", "..", strings.TrimPrefix(strings.TrimPrefix(pkgPath, "postage"), "/"))
	fset := token.NewFileSet()
	out := map[string][]string{}
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no source for %s in %s: %v", pkgPath, dir, err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				typ := ""
				if id, ok := vs.Type.(*ast.Ident); ok {
					typ = id.Name
				}
				for i, v := range vs.Values {
					if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						s, _ := strconv.Unquote(lit.Value)
						key := typ
						if key == "" && errorCodeName.MatchString(vs.Names[i].Name) {
							key = "error code"
						}
						out[key] = append(out[key], s)
					}
				}
			}
		}
	}
	return out
}

// Each enumeration in the document lists exactly the constants its Go
// type has (a new status or role cannot be left out of the document).
func TestOpenAPIEnumsAreTheConstants(t *testing.T) {
	extra := map[string]bool{"upcoming": true} // billing.Status of the month-to-date bill, not a stored state
	for typ, vals := range enums {
		consts := constValues(t, typ.PkgPath())[typ.Name()]
		got, want := slices.Sorted(slices.Values(slices.DeleteFunc(slices.Clone(vals), func(v string) bool { return extra[v] }))), slices.Sorted(slices.Values(consts))
		if !slices.Equal(got, want) {
			t.Errorf("%v: the document lists %v, the package declares %v", typ, got, want)
		}
	}
	codes := slices.Sorted(slices.Values(constValues(t, "postage")["error code"]))
	if got := slices.Sorted(slices.Values(slices.Clone(errorCodes))); !slices.Equal(got, codes) {
		t.Errorf("problem codes: the document lists %v, errors.go declares %v", got, codes)
	}
}
