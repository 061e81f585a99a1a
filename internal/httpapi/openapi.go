package httpapi

import (
	"bytes"
	_ "embed"
	"encoding"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/invopop/jsonschema"
	"github.com/shopspring/decimal"

	"postage"
	"postage/billing"
	"postage/internal/auth"
	"postage/metering"
	"postage/notify"
	"postage/pricing"
	"postage/reconcile"
	"postage/reports"
)

// The OpenAPI document is built from the route table that serves requests:
// each Route names the Go types its handler decodes and encodes, and the
// JSON Schemas of those types are reflected by invopop/jsonschema with the
// same rules as encoding/json (field names, omitempty, embedded structs).
// The few types whose JSON is written by hand (decimals, months, money) and
// the enumerations are mapped below; a type that marshals itself and is not
// mapped stops the build of the document, so a new one cannot slip in
// undescribed. The document is OpenAPI 3.0.3, which kin-openapi validates
// and every common client generator (oapi-codegen, openapi-generator)
// reads; see docs/API.md.

// OpenAPIVersion is the version of the OpenAPI specification the document
// follows.
const OpenAPIVersion = "3.0.3"

// Media lists a request body by media type, for a route whose body is not
// (only) application/json. A nil value is a body the document does not
// describe further than its media type (a CSV file).
type Media map[string]any

// Types that stand for query parameters in the document.
type (
	// pageLimit is a page size: 1 to 1000.
	pageLimit int
	// dateOrTime is YYYY-MM-DD (midnight UTC) or an RFC 3339 time.
	dateOrTime string
	// revenueGroup is the revenue report's grouping.
	revenueGroup string
	// usageTrendGroup is the usage report's grouping.
	usageTrendGroup string
	// rankBy is what ranks customers.
	rankBy string
	// countryCode is an ISO 3166-1 alpha-2 code.
	countryCode string
	// formatParam picks the answer's format over the Accept header.
	formatParam string
	// documentFormat picks JSON or a document (CSV, PDF) over the Accept
	// header.
	documentFormat string
)

// openAPIDocument stands for the OpenAPI document in the route table: a
// JSON object.
type openAPIDocument map[string]any

var ginParam = regexp.MustCompile(`[:*]([A-Za-z_]+)`)

// openAPIPath turns gin's /customers/:id into OpenAPI's /customers/{id}.
func openAPIPath(p string) string { return ginParam.ReplaceAllString(p, "{$1}") }

// OpenAPI returns the OpenAPI document of every registered route. It is
// generated from the route table that serves requests, so it cannot drift.
// It panics on a route whose types the document cannot describe: that is a
// programming error that every test of the package finds.
func (s *Server) OpenAPI() *openapi3.T {
	doc, err := buildOpenAPI(s.routes, s.Version)
	if err != nil {
		panic(err)
	}
	return doc
}

// openAPIJSON is the served form of the document, built once.
func (s *Server) openAPIJSON() []byte {
	s.openAPIOnce.Do(func() {
		b, err := json.Marshal(s.OpenAPI())
		if err != nil {
			panic(err)
		}
		s.openAPIBytes = b
	})
	return s.openAPIBytes
}

// pathParams documents the path parameters that routes do not describe
// themselves, by name.
var pathParams = map[string]Param{
	"id":              {Description: "customer id"},
	"card_id":         {Description: "rate card id"},
	"number":          {Description: "version number (1, 2, ...)", Schema: int(0)},
	"key_id":          {Description: "API key id (the 12 characters after pst_)"},
	"phone_number_id": {Description: "WhatsApp Business phone-number id"},
}

func buildOpenAPI(routes []Route, version string) (*openapi3.T, error) {
	doc, _, err := buildOpenAPITypes(routes, version, goComments())
	return doc, err
}

// buildOpenAPITypes builds the document with the given descriptions of Go
// types and fields ("postage/billing.Invoice.Lines": text) and returns the
// named Go types it describes.
func buildOpenAPITypes(routes []Route, version string, comments map[string]string) (*openapi3.T, []reflect.Type, error) {
	g := newSchemaGen()
	g.r.CommentMap = comments
	paths := openapi3.NewPaths()
	tags := map[string]bool{}
	ids := map[string]bool{}
	for _, r := range routes {
		op, err := g.operation(r)
		if err != nil {
			return nil, nil, fmt.Errorf("openapi: %s %s: %w", r.Method, r.Path, err)
		}
		if ids[op.OperationID] {
			return nil, nil, fmt.Errorf("openapi: %s %s: operation id %s twice", r.Method, r.Path, op.OperationID)
		}
		ids[op.OperationID] = true
		tags[r.Tag] = true
		p := openAPIPath(r.Path)
		item := paths.Value(p)
		if item == nil {
			item = &openapi3.PathItem{}
			paths.Set(p, item)
		}
		item.SetOperation(r.Method, op)
	}
	problems := g.problemComponents()
	schemas, err := g.components()
	if err != nil {
		return nil, nil, fmt.Errorf("openapi: %w", err)
	}
	var tagList openapi3.Tags
	for _, t := range slices.Sorted(maps.Keys(tags)) {
		tagList = append(tagList, &openapi3.Tag{Name: t})
	}
	doc := &openapi3.T{
		OpenAPI: OpenAPIVersion,
		Info: &openapi3.Info{
			Title:   "postage API",
			Version: version,
			Description: "Usage metering and billing for per-message pricing.\n\n" +
				"Conventions: JSON in snake_case; money is a decimal string (\"12.30\") next to its ISO 4217 currency code; " +
				"times are RFC 3339 in UTC; months are YYYY-MM; lists answer {\"data\": [...], \"next_cursor\": \"...\"} " +
				"(pass next_cursor back as ?cursor=, empty on the last page); errors are RFC 9457 application/problem+json " +
				"with a stable code. Every answer carries X-Request-ID (the caller's if valid, else a new one). Every route but /healthz, /readyz and the WhatsApp webhook needs Authorization: Bearer <API key>; " +
				"x-roles lists the roles that may call an operation (admin may call everything). See docs/API.md.",
		},
		Servers: openapi3.Servers{{URL: "/"}},
		Tags:    tagList,
		Paths:   paths,
		Components: &openapi3.Components{
			Schemas:   schemas,
			Responses: problems,
			Headers:   headerComponents(),
			SecuritySchemes: openapi3.SecuritySchemes{
				"apiKey": {Value: &openapi3.SecurityScheme{Type: "http", Scheme: "bearer", Description: "Authorization: Bearer pst_<id>_<secret>"}},
			},
		},
	}
	return doc, slices.Collect(maps.Values(g.types)), nil
}

// openAPIComments are the doc comments of the Go types and fields the
// document describes, extracted from the source when the committed
// document is rewritten (TestOpenAPIFileIsCurrent), so that the server,
// which has no source, describes them too.
//
//go:embed openapi_comments.json
var openAPIComments []byte

// goComments returns openAPIComments as a map.
func goComments() map[string]string {
	m := map[string]string{}
	if err := json.Unmarshal(openAPIComments, &m); err != nil {
		panic(fmt.Sprintf("openapi_comments.json: %v", err))
	}
	return m
}

// operation describes one route.
func (g *schemaGen) operation(r Route) (*openapi3.Operation, error) {
	op := &openapi3.Operation{
		OperationID: operationID(r),
		Summary:     r.Summary,
		Tags:        []string{r.Tag},
		Responses:   openapi3.NewResponses(),
	}
	if r.Roles != nil {
		roles := make([]string, len(r.Roles))
		for i, x := range r.Roles {
			roles[i] = string(x)
		}
		op.Security = &openapi3.SecurityRequirements{{"apiKey": []string{}}}
		op.Extensions = map[string]any{"x-roles": roles}
		op.Description = "Roles: " + strings.Join(roles, ", ") + "."
	} else {
		op.Security = &openapi3.SecurityRequirements{}
	}

	// Parameters.
	seen := map[string]bool{}
	for _, m := range ginParam.FindAllStringSubmatch(r.Path, -1) {
		p, ok := pathParams[m[1]]
		for _, x := range r.PathParams {
			if x.Name == m[1] {
				p, ok = x, true
			}
		}
		if !ok {
			return nil, fmt.Errorf("path parameter %s is not described (Route.PathParams or pathParams)", m[1])
		}
		p.Name, p.Required = m[1], true
		op.Parameters = append(op.Parameters, g.param("path", p))
		seen[m[1]] = true
	}
	for _, x := range r.PathParams {
		if !seen[x.Name] {
			return nil, fmt.Errorf("path parameter %s is not in the path", x.Name)
		}
	}
	for _, q := range r.Query {
		op.Parameters = append(op.Parameters, g.param("query", q))
	}
	for _, h := range r.Header {
		op.Parameters = append(op.Parameters, g.param("header", h))
	}

	// Request body.
	if r.Request != nil {
		content := openapi3.NewContent()
		media, ok := r.Request.(Media)
		if !ok {
			media = Media{"application/json": r.Request}
		}
		for _, mt := range slices.Sorted(maps.Keys(media)) {
			content[mt] = g.mediaType(mt, media[mt])
		}
		op.RequestBody = &openapi3.RequestBodyRef{Value: &openapi3.RequestBody{Required: true, Content: content}}
	}

	// Success.
	status := r.Status
	if status == 0 {
		status = http.StatusOK
	}
	ok := &openapi3.Response{Headers: responseHeaders(status)}
	ok.WithDescription(http.StatusText(status))
	if r.Response != nil || len(r.Produces) > 0 {
		ok.Content = openapi3.NewContent()
		if r.Response != nil {
			ok.Content["application/json"] = g.mediaType("application/json", r.Response)
		}
		for _, mt := range r.Produces {
			ok.Content[mt] = g.mediaType(mt, nil)
			if mt == "text/csv" || mt == "application/pdf" {
				ok.Headers["Content-Disposition"] = headerRef("Content-Disposition")
			}
		}
	}
	op.AddResponse(status, ok)
	for st, v := range r.Other {
		resp := &openapi3.Response{Headers: responseHeaders(st), Content: openapi3.NewContent()}
		resp.WithDescription(http.StatusText(st))
		resp.Content["application/json"] = g.mediaType("application/json", v)
		op.AddResponse(st, resp)
	}

	// Problems.
	for _, st := range errorStatuses(r) {
		if op.Responses.Status(st) != nil {
			continue
		}
		op.Responses.Set(strconv.Itoa(st), &openapi3.ResponseRef{Ref: "#/components/responses/" + problemResponses[st].name})
	}
	return op, nil
}

// problemResponses are the problem answers, one shared response each in
// the document's components, by status.
var problemResponses = map[int]struct{ name, desc string }{
	http.StatusBadRequest:            {"Invalid", "invalid: the request is wrong; detail says how, errors may list every problem"},
	http.StatusUnauthorized:          {"Unauthorized", "unauthorized: no, unknown or revoked API key (the webhook: bad signature)"},
	http.StatusForbidden:             {"Forbidden", "forbidden: the key's role may not call this operation"},
	http.StatusNotFound:              {"NotFound", "not_found: no such resource, or one the key may not see"},
	http.StatusConflict:              {"Conflict", "conflict: the request contradicts the current state"},
	http.StatusRequestEntityTooLarge: {"TooLarge", "too_large: the body is over the server's limit"},
	http.StatusUnsupportedMediaType:  {"UnsupportedMediaType", "unsupported_media_type: wrong Content-Type"},
	http.StatusTooManyRequests:       {"Overloaded", "overloaded: the ingest pipeline is full; retry after Retry-After seconds"},
	http.StatusInternalServerError:   {"Internal", "internal: a bug; the request id finds it in the server's log"},
	http.StatusServiceUnavailable:    {"Unavailable", "unavailable: a database is unreachable or the request ended before its work was stored; retry after Retry-After seconds"},
}

// problemComponents are the shared problem responses.
func (g *schemaGen) problemComponents() openapi3.ResponseBodies {
	out := openapi3.ResponseBodies{}
	problem := g.ref(Problem{})
	for st, p := range problemResponses {
		resp := &openapi3.Response{Headers: responseHeaders(st), Content: openapi3.NewContent()}
		resp.WithDescription(p.desc)
		resp.Content["application/problem+json"] = &openapi3.MediaType{Schema: problem}
		out[p.name] = &openapi3.ResponseRef{Value: resp}
	}
	return out
}

// errorStatuses lists the problem statuses a route may answer: the ones
// every route of its kind may, and the route's own Errors.
func errorStatuses(r Route) []int {
	// Every request's strings are checked before its handler runs.
	set := map[int]bool{http.StatusBadRequest: true, http.StatusInternalServerError: true}
	if strings.HasPrefix(r.Path, "/api/") {
		set[http.StatusNotFound] = true
		set[http.StatusServiceUnavailable] = true
	}
	if r.Roles != nil {
		set[http.StatusUnauthorized] = true
		set[http.StatusForbidden] = true
		set[http.StatusServiceUnavailable] = true // the key is looked up in the database
	}
	if r.Method != http.MethodGet && r.Method != http.MethodDelete {
		// Any request may carry a body: the size limit and the media
		// type are checked before the handler runs.
		set[http.StatusRequestEntityTooLarge] = true
		set[http.StatusUnsupportedMediaType] = true
		set[http.StatusConflict] = true
	}
	if r.Method == http.MethodDelete {
		set[http.StatusConflict] = true
	}
	for _, st := range r.Errors {
		set[st] = true
	}
	return slices.Sorted(maps.Keys(set))
}

func header(desc string, required bool) *openapi3.HeaderRef {
	return &openapi3.HeaderRef{Value: &openapi3.Header{Parameter: openapi3.Parameter{
		Description: desc, Required: required, Schema: openapi3.NewStringSchema().NewRef(),
	}}}
}

// headerComponents are the response headers the document describes,
// shared in its components. Every answer also carries X-Request-ID (the
// caller's, if valid, else a new one), and a 401 WWW-Authenticate; they are
// left out so that generated clients do not grow a header type per status.
func headerComponents() openapi3.Headers {
	return openapi3.Headers{
		"Location":            header("the created resource (where it has its own URL)", false),
		"Content-Disposition": header(`attachment; filename="..." (downloads)`, false),
		"Retry-After": {Value: &openapi3.Header{Parameter: openapi3.Parameter{
			Description: "seconds to wait before retrying", Required: true, Schema: openapi3.NewIntegerSchema().NewRef(),
		}}},
	}
}

func headerRef(name string) *openapi3.HeaderRef {
	return &openapi3.HeaderRef{Ref: "#/components/headers/" + name}
}

// responseHeaders are the described headers an answer with status carries.
func responseHeaders(status int) openapi3.Headers {
	h := openapi3.Headers{}
	switch status {
	case http.StatusCreated:
		h["Location"] = headerRef("Location")
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		h["Retry-After"] = headerRef("Retry-After")
	}
	return h
}

// mediaType describes a body of media type mt whose Go type is v's.
func (g *schemaGen) mediaType(mt string, v any) *openapi3.MediaType {
	if v != nil {
		return &openapi3.MediaType{Schema: g.ref(v)}
	}
	s := openapi3.NewStringSchema()
	if mt == "application/pdf" {
		s.Format = "binary"
	}
	return &openapi3.MediaType{Schema: s.NewRef()}
}

// param describes a parameter in path, query or header.
func (g *schemaGen) param(in string, p Param) *openapi3.ParameterRef {
	schema := openapi3.NewStringSchema().NewRef()
	if p.Schema != nil {
		schema = g.ref(p.Schema)
	}
	return &openapi3.ParameterRef{Value: &openapi3.Parameter{
		Name: p.Name, In: in, Description: p.Description, Required: p.Required || in == "path", Schema: schema,
	}}
}

func operationID(r Route) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(r.Method))
	for _, part := range strings.Split(r.Path, "/") {
		part = strings.TrimLeft(part, ":*")
		if part == "" || part == "api" || part == "v1" {
			continue
		}
		b.WriteString("_")
		b.WriteString(strings.NewReplacer("-", "_", ".", "_").Replace(part))
	}
	return b.String()
}

// Schemas of the Go types.

// enums are the string types whose values are a closed set. A test checks
// each list against the constants its package declares.
var enums = map[reflect.Type][]string{
	reflect.TypeFor[auth.Role](): enumOf(auth.Roles...),
	// upcoming: the month-to-date bill (GET .../invoices/upcoming), never stored.
	reflect.TypeFor[billing.Status]():        enumOf(billing.StatusDraft, billing.StatusFinalized, billing.StatusVoid, "upcoming"),
	reflect.TypeFor[metering.Status]():       enumOf(metering.Accepted, metering.Duplicate, metering.Conflict, metering.Rejected, metering.Ignored),
	reflect.TypeFor[metering.Window]():       enumOf(metering.Hour, metering.Day, metering.Month),
	reflect.TypeFor[metering.Dimension]():    enumOf(metering.ByCustomer, metering.ByCountry, metering.ByCategory),
	reflect.TypeFor[reports.SeriesWindow]():  enumOf(reports.Day, reports.Month),
	reflect.TypeFor[pricing.Rounding]():      enumOf(pricing.RoundHalfEven, pricing.RoundHalfUp),
	reflect.TypeFor[pricing.Status]():        enumOf(pricing.StatusDraft, pricing.StatusActive),
	reflect.TypeFor[pricing.Mode]():          enumOf(pricing.ModeFlat, pricing.ModeGraduated, pricing.ModeVolume, pricing.ModeCostPlus),
	reflect.TypeFor[pricing.Kind]():          enumOf(pricing.KindSelling, pricing.KindCost),
	reflect.TypeFor[notify.EventType]():      enumOf(append(slices.Clone(notify.EventTypes), notify.AllEvents)...),
	reflect.TypeFor[notify.DeliveryStatus](): enumOf(notify.DeliveryPending, notify.DeliverySucceeded, notify.DeliveryFailed, notify.DeliveryPaused),
	reflect.TypeFor[notify.Metric]():         enumOf(notify.MetricMessages, notify.MetricAmount),
	reflect.TypeFor[reconcile.Cause]():       enumOf(reconcile.Causes...),
	reflect.TypeFor[reconcile.Status]():      enumOf(reconcile.StatusWithinTolerance, reconcile.StatusHeld, reconcile.StatusAccepted, reconcile.StatusExceedsTolerance),
	reflect.TypeFor[billing.TaxStatus]():     enumOf(billing.TaxTaxable, billing.TaxExempt, billing.TaxReverseCharge),
	reflect.TypeFor[billing.PaymentStatus](): enumOf(billing.PaymentOpen, billing.PaymentPartiallyPaid, billing.PaymentPaid,
		billing.PaymentOverdue, billing.PaymentUncollectible),
	reflect.TypeFor[billing.PaymentMethod](): enumOf(billing.MethodBankTransfer, billing.MethodCard, billing.MethodDirectDebit,
		billing.MethodCash, billing.MethodCheck, billing.MethodOther),
}

// fieldEnums are string fields whose values are a closed set, by type and
// JSON name.
var fieldEnums = map[reflect.Type]map[string][]string{
	reflect.TypeFor[billing.Line](): {"kind": {billing.KindUsage, billing.KindAdjustment}},
	reflect.TypeFor[billing.Run](): {
		"trigger": {billing.TriggerSchedule, billing.TriggerManual, billing.TriggerSweep, billing.TriggerAPI},
		"status":  {billing.RunRunning, billing.RunSucceeded, billing.RunFailed, billing.RunSkipped},
	},
	reflect.TypeFor[Problem](): {"code": errorCodes},
}

// decimalFields are string fields that hold decimal numbers (report
// amounts formatted for their currency, percentages), by type and JSON
// name; true: the field may also be "" (no value).
var decimalFields = map[reflect.Type]map[string]bool{
	reflect.TypeFor[reports.RevenueRow]():     {"amount": false},
	reflect.TypeFor[reports.CurrencyTotal]():  {"amount": false},
	reflect.TypeFor[reports.TopRow]():         {"amount": false, "share": true},
	reflect.TypeFor[reports.ForecastRow]():    {"amount_to_date": false, "projected_amount": false},
	reflect.TypeFor[reports.ForecastTotal]():  {"amount_to_date": false, "projected_amount": false},
	reflect.TypeFor[reports.ForecastReport](): {"elapsed_fraction": false},
	reflect.TypeFor[reports.SimLine]():        {"current": false, "proposed": false, "difference": false},
	reflect.TypeFor[reports.SimCustomer]():    {"current": true, "proposed": true, "difference": true}, // "" when skipped
	reflect.TypeFor[reports.SimTotal]():       {"current": false, "proposed": false, "difference": false},
	reflect.TypeFor[reports.MarginRow](): {"revenue": false, "cost": false, "margin": false,
		"projected_revenue": false, "projected_cost": false, "projected_margin": false},
	reflect.TypeFor[reports.MarginTotal](): {"revenue": false, "cost": false, "margin": false,
		"projected_revenue": false, "projected_cost": false, "projected_margin": false},
	reflect.TypeFor[reports.MarginReport]():   {"elapsed_fraction": false},
	reflect.TypeFor[reports.MarginExcluded](): {"revenue": true, "cost": true, "projected_cost": true}, // "" when not rated
	reflect.TypeFor[reports.MarginSimLine](): {"revenue": false, "proposed_revenue": false, "current_cost": false, "proposed_cost": false,
		"current_margin": false, "proposed_margin": false, "difference": false},
	reflect.TypeFor[reports.MarginSimCustomer](): {"revenue": true, "proposed_revenue": true, "current_cost": true, "proposed_cost": true, // "" when skipped
		"current_margin": true, "proposed_margin": true, "difference": true},
	reflect.TypeFor[reports.MarginSimTotal](): {"revenue": false, "proposed_revenue": false, "current_cost": false, "proposed_cost": false,
		"current_margin": false, "proposed_margin": false, "difference": false},
}

// errorCodes are the problem codes (postage's error codes).
var errorCodes = []string{postage.EINVALID, postage.ENOTFOUND, postage.ECONFLICT, postage.EUNAUTHORIZED, postage.EFORBIDDEN,
	postage.EUNAVAILABLE, postage.EOVERLOADED, postage.ETOOLARGE, postage.EUNSUPPORTED, postage.EINTERNAL,
	postage.EOVERPAYMENT, postage.ECURRENCYMISMATCH, postage.ENOTFINALIZED, postage.EOVERCREDIT, postage.ETAXOVERLAP, postage.EOVERREFUND, postage.ENOTOWNER, postage.ERENDERER}

// readOnly are the fields of request types that the server sets: a request
// may leave them out (the server ignores what it sends), an answer always
// has them.
var readOnly = map[reflect.Type][]string{
	reflect.TypeFor[billing.Customer](): {"created_at", "updated_at"},
	reflect.TypeFor[pricing.RateCard](): {"default"},
	reflect.TypeFor[pricing.Version]():  {"card_id", "number", "status", "effective_from"},
}

// requestOptional are fields that a request may leave out (the server
// fills in a default) although an answer always has them, and fields of
// request types that encoding/json would call required; the document
// requires them in neither.
var requestOptional = map[reflect.Type][]string{
	reflect.TypeFor[billing.Customer](): {"currency"},    // default USD
	reflect.TypeFor[auth.NewKey]():      {"customer_id"}, // customer keys only
	// a cost-plus version has no markets, categories or prices of its own;
	// currency and rounding default to the card's
	reflect.TypeFor[pricing.Version](): {"default_market", "countries", "categories", "prices", "currency", "rounding"},
	// Invoices frozen before taxes and terms existed keep their documents
	// without them; every other invoice has them.
	reflect.TypeFor[billing.Invoice](): {"tax_lines", "tax", "payment_terms_days"},
}

func enumOf[T ~string](vs ...T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

const decimalPattern = `^-?[0-9]+(\.[0-9]+)?$`

// mapped are the types whose JSON is not what reflection sees.
var mapped = map[reflect.Type]func() *jsonschema.Schema{
	reflect.TypeFor[decimal.Decimal](): func() *jsonschema.Schema {
		return &jsonschema.Schema{Type: "string", Format: "decimal", Pattern: decimalPattern, Description: "a decimal number as a string, e.g. \"0.0123\""}
	},
	reflect.TypeFor[billing.Money](): func() *jsonschema.Schema {
		return &jsonschema.Schema{Type: "string", Format: "decimal", Pattern: decimalPattern, Description: "an amount with exactly the currency's minor-unit decimals, e.g. \"12.30\""}
	},
	reflect.TypeFor[billing.Date](): func() *jsonschema.Schema {
		return &jsonschema.Schema{Type: "string", Format: "date", Description: "a calendar day (UTC), YYYY-MM-DD"}
	},
	reflect.TypeFor[pricing.Month](): func() *jsonschema.Schema {
		return &jsonschema.Schema{Type: "string", Pattern: `^[0-9]{4}-(0[1-9]|1[0-2])$`, Description: "a calendar month in UTC, YYYY-MM"}
	},
	reflect.TypeFor[pageLimit](): func() *jsonschema.Schema {
		return &jsonschema.Schema{Type: "integer", Minimum: "1", Maximum: "1000"}
	},
	reflect.TypeFor[dateOrTime](): func() *jsonschema.Schema {
		return &jsonschema.Schema{Type: "string", Pattern: `^[0-9]{4}-[0-9]{2}-[0-9]{2}(T.+)?$`, Description: "YYYY-MM-DD (midnight UTC) or an RFC 3339 time"}
	},
	reflect.TypeFor[revenueGroup](): func() *jsonschema.Schema {
		return &jsonschema.Schema{Type: "string", Enum: toAny([]string{reports.ByMonth, reports.ByCustomer, reports.ByMarket, reports.ByCountry, reports.ByCategory})}
	},
	reflect.TypeFor[usageTrendGroup](): func() *jsonschema.Schema {
		return &jsonschema.Schema{Type: "string", Enum: toAny([]string{reports.ByCategory, reports.ByCountry})}
	},
	reflect.TypeFor[marginGroup](): func() *jsonschema.Schema {
		return &jsonschema.Schema{Type: "string", Enum: toAny([]string{reports.ByCustomer, reports.ByMarket, reports.ByCategory, reports.ByLine})}
	},
	reflect.TypeFor[rankBy](): func() *jsonschema.Schema {
		return &jsonschema.Schema{Type: "string", Enum: []any{"amount", "quantity"}}
	},
	reflect.TypeFor[countryCode](): func() *jsonschema.Schema {
		return &jsonschema.Schema{Type: "string", Pattern: `^[A-Z]{2}$`, Description: "ISO 3166-1 alpha-2 country code"}
	},
	reflect.TypeFor[formatParam](): func() *jsonschema.Schema {
		return &jsonschema.Schema{Type: "string", Enum: []any{"csv", "json"}}
	},
	reflect.TypeFor[documentFormat](): func() *jsonschema.Schema {
		return &jsonschema.Schema{Type: "string", Enum: []any{"json", "csv", "pdf"}}
	},
	reflect.TypeFor[EventQuantity](): func() *jsonschema.Schema {
		return &jsonschema.Schema{Description: "an integer from 1 to 1,000,000, as a number or a string that holds one", OneOf: []*jsonschema.Schema{
			{Type: "integer", Minimum: "1", Maximum: "1000000"}, {Type: "string"}}}
	},
	reflect.TypeFor[StructuredOrBinary](): func() *jsonschema.Schema {
		return &jsonschema.Schema{OneOf: []*jsonschema.Schema{{Ref: "#/$defs/CloudEvent"}, {Ref: "#/$defs/CloudEventData"}}}
	},
	reflect.TypeFor[openAPIDocument](): func() *jsonschema.Schema {
		return &jsonschema.Schema{Type: "object", Description: "an OpenAPI 3.0 document"}
	},
}

// sameShape are types that marshal themselves into exactly the JSON
// reflection sees of their fields: a finalized billing.Invoice writes its
// frozen document, which is that JSON as it was at finalization.
var sameShape = map[reflect.Type]bool{
	reflect.TypeFor[billing.Invoice]():    true,
	reflect.TypeFor[billing.CreditNote](): true, // its frozen document, written when it was issued
}

// schemaGen reflects Go types into one set of named schemas.
type schemaGen struct {
	r     *jsonschema.Reflector
	defs  jsonschema.Definitions
	types map[string]reflect.Type // definition name → Go type
	err   error
}

func newSchemaGen() *schemaGen {
	g := &schemaGen{defs: jsonschema.Definitions{}, types: map[string]reflect.Type{}}
	g.r = &jsonschema.Reflector{
		Anonymous:                 true,
		AllowAdditionalProperties: true,
		Namer:                     g.name,
		Mapper:                    g.mapType,
	}
	return g
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	timeType      = reflect.TypeFor[time.Time]()
)

// name is the component name of a named Go type: the type's name for this
// package's types, else the package's name and the type's ("BillingInvoice"),
// so that names never collide and never change when another type is added.
func (g *schemaGen) name(t reflect.Type) string {
	if t.Name() == "" || t.PkgPath() == "" {
		return ""
	}
	var n string
	if base, _, ok := strings.Cut(t.Name(), "["); ok && base == "List" {
		n = g.name(t.Field(0).Type.Elem()) + "List"
	} else if t.PkgPath() == reflect.TypeFor[Server]().PkgPath() {
		n = t.Name()
	} else {
		pkg := t.PkgPath()[strings.LastIndex(t.PkgPath(), "/")+1:]
		n = strings.ToUpper(pkg[:1]) + pkg[1:] + t.Name()
	}
	if old, ok := g.types[n]; ok && old != t {
		g.fail(fmt.Errorf("types %v and %v have the same schema name %s", old, t, n))
	}
	g.types[n] = t
	return n
}

func (g *schemaGen) fail(err error) {
	if g.err == nil {
		g.err = err
	}
}

// mapType gives the schema of types reflection cannot see through.
func (g *schemaGen) mapType(t reflect.Type) *jsonschema.Schema {
	if f, ok := mapped[t]; ok {
		return f()
	}
	if vals, ok := enums[t]; ok {
		name := g.name(t)
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = &jsonschema.Schema{Type: "string", Enum: toAny(vals)}
		}
		return &jsonschema.Schema{Ref: "#/$defs/" + name}
	}
	if t == timeType {
		return nil
	}
	if t.PkgPath() == "" {
		switch t.Kind() {
		case reflect.Int64:
			return &jsonschema.Schema{Type: "integer", Format: "int64"}
		case reflect.Uint64:
			// Counts and quantities: far below 2^63.
			return &jsonschema.Schema{Type: "integer", Format: "int64", Minimum: "0"}
		}
	}
	if sameShape[t] {
		return nil
	}
	if t.Implements(jsonMarshaler) || t.Implements(textMarshaler) || reflect.PointerTo(t).Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(textMarshaler) {
		g.fail(fmt.Errorf("type %v writes its own JSON: describe it in mapped (internal/httpapi/openapi.go)", t))
		return &jsonschema.Schema{}
	}
	if t.Kind() == reflect.String && t.Name() != "" && strings.HasPrefix(t.PkgPath(), "postage") {
		g.fail(fmt.Errorf("string type %v: list its values in enums (internal/httpapi/openapi.go)", t))
	}
	return nil
}

func toAny(vs []string) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}

// ref returns the schema of v's type: a reference to a component for named
// struct types and enumerations, the schema itself for the others.
func (g *schemaGen) ref(v any) *openapi3.SchemaRef {
	s := g.r.ReflectFromType(reflect.TypeOf(v))
	for k, d := range s.Definitions {
		g.defs[k] = d
	}
	s.Definitions = nil
	s.Version = ""
	out, err := toOpenAPI(s)
	if err != nil {
		g.fail(fmt.Errorf("%T: %w", v, err))
		return openapi3.NewSchemaRef("", openapi3.NewSchema())
	}
	return out
}

// toOpenAPI turns a reflected JSON Schema into an OpenAPI 3.0 schema. The
// reflected schemas use only keywords the two share (type, format,
// pattern, enum, properties, required, items, additionalProperties, $ref,
// description); references move from $defs to components.
func toOpenAPI(s *jsonschema.Schema) (*openapi3.SchemaRef, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	b = bytes.ReplaceAll(b, []byte(`"#/$defs/`), []byte(`"#/components/schemas/`))
	var out openapi3.SchemaRef
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", b, err)
	}
	return &out, nil
}

// components returns every named schema, adjusted to what encoding/json
// writes: a pointer field without omitempty may be null and need not be
// sent; read-only fields and field enumerations are marked.
func (g *schemaGen) components() (openapi3.Schemas, error) {
	problemItems := openapi3.SchemaRefs{openapi3.NewStringSchema().NewRef(), g.ref(FieldProblem{}), g.ref(metering.Result{}), g.ref(pricing.RowError{})}
	if g.err != nil {
		return nil, g.err
	}
	out := openapi3.Schemas{}
	for name, d := range g.defs {
		ref, err := toOpenAPI(d)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		s := ref.Value
		t := g.types[name]
		if t != nil && t.Kind() == reflect.Struct && s != nil && s.Properties != nil {
			for _, f := range jsonFields(t) {
				p := s.Properties[f.name]
				if p == nil {
					return nil, fmt.Errorf("%s: no property %s", name, f.name)
				}
				ft := f.typ
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if m, ok := mapped[ft]; ok && p.Value != nil && p.Value.Description == "" {
					// The field has no comment: say what the type is.
					p.Value.Description = m().Description
				}
				if f.typ.Kind() == reflect.Pointer && !f.omit {
					s.Required = slices.DeleteFunc(s.Required, func(x string) bool { return x == f.name })
					s.Properties[f.name] = withFlags(p, func(x *openapi3.Schema) { x.Nullable = true })
				}
				if orEmpty, ok := decimalFields[t][f.name]; ok {
					p.Value.Format, p.Value.Pattern = "decimal", decimalPattern
					if orEmpty {
						p.Value.Pattern = "^(" + decimalPattern[1:len(decimalPattern)-1] + ")?$"
					}
				}
				if vals, ok := fieldEnums[t][f.name]; ok {
					s.Properties[f.name].Value.Enum = toAny(vals)
				}
			}
			for f := range decimalFields[t] {
				if s.Properties[f] == nil {
					return nil, fmt.Errorf("%s: decimal field %s is not a property", name, f)
				}
			}
			for f := range fieldEnums[t] {
				if s.Properties[f] == nil {
					return nil, fmt.Errorf("%s: enumerated field %s is not a property", name, f)
				}
			}
			for _, f := range requestOptional[t] {
				if s.Properties[f] == nil {
					return nil, fmt.Errorf("%s: optional field %s is not a property", name, f)
				}
				s.Required = slices.DeleteFunc(s.Required, func(x string) bool { return x == f })
			}
			for _, f := range readOnly[t] {
				p := s.Properties[f]
				if p == nil {
					return nil, fmt.Errorf("%s: read-only field %s is not a property", name, f)
				}
				s.Properties[f] = withFlags(p, func(x *openapi3.Schema) { x.ReadOnly = true })
			}
			sort.Strings(s.Required)
		}
		if name == "Problem" {
			items := &openapi3.Schema{AnyOf: problemItems}
			errs := openapi3.NewArraySchema().WithItems(items)
			errs.Description = "every problem of the request: messages (a validation), bad strings by where they are (path, query, header or body) and field, per-event results (a single ingested event), or rows and columns (a rate card CSV)"
			s.Properties["errors"] = errs.NewRef()
		}
		out[name] = ref
	}
	return out, nil
}

// withFlags returns p with set applied: to p's value, or, for a
// reference (whose siblings OpenAPI 3.0 ignores), to an allOf around it.
func withFlags(p *openapi3.SchemaRef, set func(*openapi3.Schema)) *openapi3.SchemaRef {
	if p.Ref == "" {
		set(p.Value)
		return p
	}
	s := &openapi3.Schema{AllOf: openapi3.SchemaRefs{p}}
	set(s)
	return s.NewRef()
}

type jsonField struct {
	name string
	typ  reflect.Type
	omit bool
}

// jsonFields lists the fields encoding/json writes for struct type t,
// embedded structs' fields included (an outer field hides an inner one of
// the same name).
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	seen := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		var embedded []reflect.Type
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				et := f.Type
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					embedded = append(embedded, et)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if seen[name] {
				continue
			}
			seen[name] = true
			omit := strings.Contains(","+opts+",", ",omitempty,") || strings.Contains(","+opts+",", ",omitzero,")
			out = append(out, jsonField{name: name, typ: f.Type, omit: omit})
		}
		for _, et := range embedded {
			if _, ok := mapped[et]; ok {
				continue
			}
			walk(et)
		}
	}
	walk(t)
	return out
}
