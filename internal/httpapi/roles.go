package httpapi

import (
	"cmp"
	"slices"
	"strings"

	"postage/internal/auth"
)

// RoleTable renders the route table as a Markdown table of which role may
// call which route: README.md carries it between RoleTableBegin and
// RoleTableEnd, and a test fails when the two differ (go test
// ./internal/httpapi -run TestREADMERoleTable -update rewrites it). Admin
// may call every route; customer keys ("own") see only their own
// customer's data; routes without roles need no key.
func RoleTable(routes []Route) string {
	rs := slices.Clone(routes)
	methodOrder := map[string]int{"GET": 0, "POST": 1, "PUT": 2, "PATCH": 3, "DELETE": 4}
	slices.SortStableFunc(rs, func(a, b Route) int {
		return cmp.Or(cmp.Compare(openAPIPath(a.Path), openAPIPath(b.Path)), cmp.Compare(methodOrder[a.Method], methodOrder[b.Method]))
	})
	var b strings.Builder
	b.WriteString("| route |")
	for _, r := range auth.Roles {
		b.WriteString(" " + string(r) + " |")
	}
	b.WriteString("\n|---|")
	for range auth.Roles {
		b.WriteString(":-:|")
	}
	b.WriteString("\n")
	for _, r := range rs {
		b.WriteString("| `" + r.Method + " " + openAPIPath(r.Path) + "` |")
		for _, role := range auth.Roles {
			cell := ""
			switch {
			case r.Roles == nil:
				cell = "no key"
			case role == auth.RoleCustomer && hasRole(role, r.Roles):
				cell = "own"
			case hasRole(role, r.Roles):
				cell = "✓"
			}
			b.WriteString(" " + cell + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// The markers around the generated table in README.md.
const (
	RoleTableBegin = "<!-- role table: generated from the route table by go test ./internal/httpapi -run TestREADMERoleTable -update; do not edit -->"
	RoleTableEnd   = "<!-- end of role table -->"
)
