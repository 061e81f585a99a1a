package httpapi

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"postage/metering"
	"postage/pricing/pgstore"
)

// describedServer registers every route without databases: the stores are
// typed nil pointers, never called by building the document.
func describedServer() *Server {
	return New(Deps{
		Version:  "test",
		Metering: MeteringDeps{Rules: &metering.Rules{}, Ingester: (*metering.Ingester)(nil), Usage: (*metering.CHStore)(nil)},
		Pricing:  PricingDeps{Store: (*pgstore.Store)(nil)},
	})
}

// The document is a valid OpenAPI 3.0 document by kin-openapi's validator,
// loaded from its JSON as a client would.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	s := describedServer()
	b := s.openAPIJSON()
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	t.Logf("%d bytes", len(out))
	_ = out
}

