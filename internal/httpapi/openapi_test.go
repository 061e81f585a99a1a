package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

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

// The committed document (the Go client's generator input) is the one the
// route table builds. After changing a route or a type it answers, run
// go test ./internal/httpapi -run TestOpenAPIFileIsCurrent -update-openapi
// and go generate ./internal/apiclient.
func TestOpenAPIFileIsCurrent(t *testing.T) {
	got := committedForm(t, describedServer().OpenAPI())
	if *updateOpenAPI {
		if err := os.WriteFile(committedOpenAPI, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(committedOpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date: run go test ./internal/httpapi -run TestOpenAPIFileIsCurrent -update-openapi, then go generate ./internal/apiclient", committedOpenAPI)
	}
}
