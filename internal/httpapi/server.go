// Package httpapi is postage's HTTP API: a gin router under /api/v1 with API
// key auth, RFC 9457 problem errors, request ids, structured logs, metrics
// and an OpenAPI document generated from the same route table that serves.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"postage"
	"postage/billing"
	"postage/internal/auth"
	"postage/internal/config"
)

// Authenticator checks a bearer token.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (auth.Principal, error)
}

// ReadyCheck is one dependency that /readyz checks.
type ReadyCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// Deps is everything the API calls into. Each domain has its own group of
// fields, declared in that domain's file of this package.
type Deps struct {
	Config    config.Config
	Log       *slog.Logger
	Registry  *prometheus.Registry
	Auth      Authenticator
	Keys      *auth.Store
	Customers billing.CustomerStore
	Ready     []ReadyCheck
	Now       func() time.Time
	Version   string

	Metering MeteringDeps
	Pricing  PricingDeps
	Billing  BillingDeps
	Reports  ReportsDeps
	Notify   NotifyDeps
	// Reconcile: reconciliation with the upstream's reports (reconcile.go).
	Reconcile ReconcileDeps
	// Dashboard serves the web UI at / (nil: no dashboard).
	Dashboard http.Handler
}

// Server is the HTTP API.
type Server struct {
	Deps
	log    *slog.Logger
	engine *gin.Engine
	routes []Route

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec

	// bodies recycles the buffers event batches are read into (see
	// postEvents).
	bodies sync.Pool
	// forwards sends events to the writers of other shards (forward.go).
	forwards *http.Client

	// openAPIBytes is the served OpenAPI document, built once.
	openAPIOnce  sync.Once
	openAPIBytes []byte
}

// Route is one operation: how it is served and how the OpenAPI document
// describes it (openapi.go). Roles nil means no API key is needed.
type Route struct {
	Method  string
	Path    string // gin syntax: /api/v1/customers/:id
	Tag     string
	Summary string
	Roles   []auth.Role
	Query   []Param
	// PathParams describes path parameters that the common names
	// (pathParams in openapi.go) do not, or describe differently.
	PathParams []Param
	// Header lists the request headers the handler reads.
	Header []Param
	// Request is the request body: a value of the Go type the handler
	// decodes from application/json, or a Media for other media types.
	Request any
	// Response is the success answer's JSON body: a value of the Go type
	// the handler encodes (nil: no JSON body).
	Response any
	// Status is the success status (0: 200 OK).
	Status int
	// Produces lists the success answer's other media types (CSV, PDF,
	// plain text), described as strings.
	Produces []string
	// Errors lists the problem statuses the route answers beyond those
	// every route of its kind may (errorStatuses in openapi.go).
	Errors []int
	// Other describes answers that are neither the success nor a problem:
	// status → a value of the JSON body's Go type.
	Other map[int]any
	// Long marks an operation that may work longer than
	// http.request_timeout (an invoice run, a simulation, an import): it
	// is bounded by http.write_timeout instead.
	Long bool
}

// Param documents a path, query or header parameter.
type Param struct {
	Name, Description string
	Required          bool
	// Schema is a value of the parameter's Go type (nil: a string): 0 for
	// an integer, pricing.Month{} for YYYY-MM, an enumeration's type for
	// its values.
	Schema any
}

const (
	ctxRequestID = "request_id"
	ctxPrincipal = "principal"
)

// New builds the server and registers every route.
func New(d Deps) *Server {
	gin.SetMode(gin.ReleaseMode)
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Registry == nil {
		d.Registry = prometheus.NewRegistry()
	}
	s := &Server{Deps: d, log: d.Log, engine: gin.New()}
	s.forwards = newForwardClient(d.Config.HTTP.RequestTimeout.Duration)
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postage_http_requests_total", Help: "HTTP requests by route and status.",
	}, []string{"method", "route", "status"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "postage_http_request_duration_seconds", Help: "HTTP request latency by route.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
	}, []string{"method", "route"})
	_ = d.Registry.Register(s.requests)
	_ = d.Registry.Register(s.latency)

	s.engine.Use(s.recoverer, s.requestID, s.accessLog, s.limitBody, s.checkRequest)
	s.engine.NoRoute(func(c *gin.Context) {
		if d.Dashboard != nil && c.Request.Method == http.MethodGet && !strings.HasPrefix(c.Request.URL.Path, "/api/") {
			d.Dashboard.ServeHTTP(c.Writer, c.Request)
			return
		}
		s.writeError(c, postage.Errorf(postage.ENOTFOUND, "no route %s %s", c.Request.Method, c.Request.URL.Path))
	})
	s.engine.NoMethod(func(c *gin.Context) {
		s.writeError(c, postage.Errorf(postage.ENOTFOUND, "no route %s %s", c.Request.Method, c.Request.URL.Path))
	})
	s.engine.HandleMethodNotAllowed = false

	s.foundationRoutes()
	s.meteringRoutes()
	s.pricingRoutes()
	s.costRoutes()
	s.billingRoutes()
	s.reportsRoutes()
	s.notifyRoutes()
	s.marginRoutes()
	s.reconcileRoutes()
	return s
}

// Handler returns the http.Handler serving everything.
func (s *Server) Handler() http.Handler { return s.engine }

// Routes returns the route table (the OpenAPI document is built from it).
func (s *Server) Routes() []Route { return s.routes }

// handle registers a route with auth for its roles and records it for the
// OpenAPI document. Every route is registered through here.
func (s *Server) handle(r Route, h gin.HandlerFunc) {
	s.routes = append(s.routes, r)
	limit := s.Config.HTTP.RequestTimeout.Duration
	if r.Long {
		limit = s.Config.HTTP.WriteTimeout.Duration
	}
	handlers := []gin.HandlerFunc{s.deadline(limit)}
	if r.Roles != nil {
		handlers = append(handlers, s.authorize(r.Roles))
	}
	handlers = append(handlers, h)
	s.engine.Handle(r.Method, r.Path, handlers...)
}

// deadline bounds the request's work: its context, which every store call
// takes, ends after limit, so a stalled database makes the call fail with
// the context's deadline, which the one error mapping answers 503
// unavailable (db.IsOutage) instead of the request hanging.
func (s *Server) deadline(limit time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		if limit <= 0 {
			c.Next()
			return
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), limit)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}

// authorize checks the bearer key and that its role is one of roles. Admin
// is always allowed.
func (s *Server) authorize(roles []auth.Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.GetHeader("Authorization")
		token, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || token == "" {
			s.writeError(c, postage.Errorf(postage.EUNAUTHORIZED, "missing API key: send Authorization: Bearer <key>"))
			return
		}
		p, err := s.Auth.Authenticate(c.Request.Context(), strings.TrimSpace(token))
		if err != nil {
			s.writeError(c, err)
			return
		}
		if !hasRole(p.Role, roles) {
			s.writeError(c, postage.Errorf(postage.EFORBIDDEN, "role %s may not %s %s", p.Role, c.Request.Method, c.FullPath()))
			return
		}
		c.Set(ctxPrincipal, p)
		c.Next()
	}
}

func hasRole(r auth.Role, roles []auth.Role) bool {
	if r == auth.RoleAdmin {
		return true
	}
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
}

// principal returns the caller of an authenticated route.
func principal(c *gin.Context) auth.Principal {
	p, _ := c.Get(ctxPrincipal)
	pr, _ := p.(auth.Principal)
	return pr
}

// customerParam returns the :id customer path parameter after checking the
// caller may see that customer: a customer key asking for another customer
// gets not found, exactly as if the customer did not exist.
func (s *Server) customerParam(c *gin.Context) (string, bool) {
	id := c.Param("id")
	if !principal(c).CanSeeCustomer(id) {
		s.writeError(c, postage.Errorf(postage.ENOTFOUND, "customer %q not found", id))
		return "", false
	}
	return id, true
}

// Role sets of the route table. Admin may call every route (hasRole); a
// set lists the other roles, each given the least it needs (README.md,
// "Roles", shows the table generated from the routes). Customer keys are
// always narrowed to their own customer (customerParam, visibleInvoice,
// price).
var (
	everyone    = []auth.Role{auth.RoleAdmin, auth.RoleFinance, auth.RoleSales, auth.RoleIngest, auth.RoleCustomer}
	staff       = []auth.Role{auth.RoleAdmin, auth.RoleFinance, auth.RoleSales}
	adminOnly   = []auth.Role{auth.RoleAdmin}
	financeOnly = []auth.Role{auth.RoleAdmin, auth.RoleFinance}
	salesOnly   = []auth.Role{auth.RoleAdmin, auth.RoleSales}
	ingestOnly  = []auth.Role{auth.RoleAdmin, auth.RoleIngest}
	// staffAndOwner reads a customer's profile, usage and prices: staff,
	// and a customer key its own.
	staffAndOwner = []auth.Role{auth.RoleAdmin, auth.RoleFinance, auth.RoleSales, auth.RoleCustomer}
	// financeAndOwner reads what a customer owes and how it is attributed
	// (invoices, the month-to-date bill, phone-number ids): finance, and a
	// customer key its own. Sales model prices on usage; they do not read
	// the ledger's invoices.
	financeAndOwner = []auth.Role{auth.RoleAdmin, auth.RoleFinance, auth.RoleCustomer}
)

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if !requestIDPattern.MatchString(id) {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	}
	c.Set(ctxRequestID, id)
	c.Header("X-Request-ID", id)
	c.Next()
}

func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	d := time.Since(start)
	s.requests.WithLabelValues(c.Request.Method, route, strconv.Itoa(status)).Inc()
	s.latency.WithLabelValues(c.Request.Method, route).Observe(d.Seconds())
	if route == "/healthz" || route == "/readyz" || route == "/metrics" {
		return
	}
	attrs := []any{"request_id", c.GetString(ctxRequestID), "method", c.Request.Method, "path", c.Request.URL.Path, "status", status, "duration_ms", d.Milliseconds()}
	if p, ok := c.Get(ctxPrincipal); ok {
		attrs = append(attrs, "key", p.(auth.Principal).KeyID)
	}
	lvl := logLevelFor(status)
	if lvl == slog.LevelInfo && s.Config.Log.Requests == "debug" {
		lvl = slog.LevelDebug
	}
	s.log.Log(c.Request.Context(), lvl, "http", attrs...)
}

func (s *Server) limitBody(c *gin.Context) {
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.Config.HTTP.MaxBodyBytes)
	}
	c.Next()
}

func (s *Server) recoverer(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.writeError(c, fmt.Errorf("panic: %v", r))
		}
	}()
	c.Next()
}

// foundationRoutes registers health, metrics, the OpenAPI document,
// customers and API keys.
func (s *Server) foundationRoutes() {
	s.handle(Route{Method: "GET", Path: "/healthz", Tag: "health", Summary: "Liveness: the process serves HTTP.", Response: Health{}}, func(c *gin.Context) {
		c.JSON(http.StatusOK, Health{Status: "ok"})
	})
	s.handle(Route{Method: "GET", Path: "/readyz", Tag: "health", Summary: "Readiness: both databases answer (503 with the same body when one does not).",
		Response: Readiness{}, Other: map[int]any{http.StatusServiceUnavailable: Readiness{}}}, s.readyz)
	s.handle(Route{Method: "GET", Path: "/metrics", Tag: "health", Summary: "Prometheus metrics.", Roles: adminOnly, Produces: []string{"text/plain"}},
		gin.WrapH(promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{})))
	s.handle(Route{Method: "GET", Path: "/api/v1/openapi.json", Tag: "meta", Summary: "This API's OpenAPI 3.0 document.", Roles: everyone, Response: openAPIDocument{}}, func(c *gin.Context) {
		c.Data(http.StatusOK, "application/json; charset=utf-8", s.openAPIJSON())
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/me", Tag: "meta", Summary: "The calling key's role and customer.", Roles: everyone, Response: Me{}}, func(c *gin.Context) {
		p := principal(c)
		c.JSON(http.StatusOK, Me{CustomerID: p.CustomerID, KeyID: p.KeyID, Name: p.Name, Role: p.Role, Routes: s.routesOf(p.Role)})
	})
	s.customerRoutes()
	s.portfolioRoutes()
	s.apiKeyRoutes()
}

func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := true
	for _, r := range s.Ready {
		if err := r.Check(ctx); err != nil {
			ok = false
			checks[r.Name] = "unavailable"
			s.log.Warn("readiness check failed", "check", r.Name, "err", err)
		} else {
			checks[r.Name] = "ok"
		}
	}
	if !ok {
		c.Header("Retry-After", "1")
		c.JSON(http.StatusServiceUnavailable, Readiness{Status: "unavailable", Checks: checks})
		return
	}
	c.JSON(http.StatusOK, Readiness{Status: "ok", Checks: checks})
}

// Health is the answer of /healthz.
type Health struct {
	Status string `json:"status" jsonschema:"enum=ok"`
}

// Readiness is the answer of /readyz: ok, or unavailable with the check
// that failed.
type Readiness struct {
	// Checks holds each dependency's state: ok or unavailable.
	Checks map[string]string `json:"checks"`
	Status string            `json:"status" jsonschema:"enum=ok,enum=unavailable"`
}

// Me is the answer of /api/v1/me: the calling key.
type Me struct {
	// CustomerID is the customer a customer key is bound to ("" for others).
	CustomerID string    `json:"customer_id"`
	KeyID      string    `json:"key_id"`
	Name       string    `json:"name"`
	Role       auth.Role `json:"role"`
	// Routes are the operations the key's role may call, as "METHOD
	// /path" with the OpenAPI document's paths ("GET
	// /api/v1/customers/{id}/usage"), from the route table that serves:
	// the dashboard shows what these allow, so it matches the API.
	Routes []string `json:"routes"`
}

// routesOf returns the keyed operations role may call (Me.Routes).
func (s *Server) routesOf(role auth.Role) []string {
	out := []string{}
	for _, r := range s.routes {
		if r.Roles != nil && hasRole(role, r.Roles) {
			out = append(out, r.Method+" "+openAPIPath(r.Path))
		}
	}
	return out
}

// pageQuery describes the query parameters page reads.
var pageQuery = []Param{
	{Name: "limit", Description: "page size, 1-1000 (default 100)", Schema: pageLimit(0)},
	{Name: "cursor", Description: "next_cursor of the previous page"},
}

// page reads ?limit= and ?cursor= for cursor pagination.
func page(c *gin.Context) (billing.Page, error) {
	p := billing.Page{Cursor: c.Query("cursor")}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return p, postage.Errorf(postage.EINVALID, "limit: an integer from 1 to 1000")
		}
		p.Limit = n
	}
	return p.Norm(), nil
}

// List is the envelope of every list answer: one page of items and the
// cursor for the next page ("" on the last page).
type List[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"next_cursor"`
}

// writePage answers one page of a list: the page the query asks for
// (limit, cursor), read by fetch, as {"data", "next_cursor"}.
func writePage[T any](s *Server, c *gin.Context, fetch func(context.Context, billing.Page) ([]T, string, error)) {
	p, err := page(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	list, next, err := fetch(c.Request.Context(), p)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, listOf(list, next))
}

func listOf[T any](items []T, next string) List[T] {
	if items == nil {
		items = []T{}
	}
	return List[T]{Data: items, NextCursor: next}
}

// ListenAndServe serves on addr until ctx is cancelled, then shuts down
// gracefully within the configured timeout. A port in use is a clear error.
func (s *Server) ListenAndServe(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.engine,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.Config.HTTP.ReadTimeout.Duration,
		WriteTimeout:      s.Config.HTTP.WriteTimeout.Duration,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.Config.HTTP.ShutdownTimeout.Duration)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// Listen opens the TCP listener, turning "address in use" into a clear error.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if strings.Contains(err.Error(), "address already in use") {
			return nil, fmt.Errorf("cannot listen on %s: the port is in use by another program (stop it, or set [http] addr / POSTAGE_HTTP_ADDR to another port)", addr)
		}
		return nil, fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	return ln, nil
}
