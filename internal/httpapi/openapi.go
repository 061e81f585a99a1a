package httpapi

import (
	"regexp"
	"strings"
)

var ginParam = regexp.MustCompile(`[:*]([A-Za-z_]+)`)

// openAPIPath turns gin's /customers/:id into OpenAPI's /customers/{id}.
func openAPIPath(p string) string { return ginParam.ReplaceAllString(p, "{$1}") }

// OpenAPI returns the OpenAPI 3.1 document of every registered route. It is
// generated from the route table that serves requests, so it cannot drift.
func (s *Server) OpenAPI() map[string]any {
	paths := map[string]any{}
	for _, r := range s.routes {
		p := openAPIPath(r.Path)
		item, _ := paths[p].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[p] = item
		}
		var params []any
		for _, m := range ginParam.FindAllStringSubmatch(r.Path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range r.Query {
			params = append(params, map[string]any{"name": q.Name, "in": "query", "required": q.Required, "description": q.Description, "schema": map[string]any{"type": "string"}})
		}
		content := map[string]any{"application/json": map[string]any{}}
		for _, mt := range r.Produces {
			content[mt] = map[string]any{}
		}
		op := map[string]any{
			"summary":     r.Summary,
			"tags":        []string{r.Tag},
			"operationId": operationID(r),
			"responses": map[string]any{
				"2XX":     map[string]any{"description": "success", "content": content},
				"default": map[string]any{"description": "error", "content": map[string]any{"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}},
			},
		}
		if params != nil {
			op["parameters"] = params
		}
		if r.Body != "" {
			op["requestBody"] = map[string]any{"required": true, "description": r.Body, "content": map[string]any{"application/json": map[string]any{}}}
		}
		if r.Roles != nil {
			roles := make([]string, len(r.Roles))
			for i, x := range r.Roles {
				roles[i] = string(x)
			}
			op["security"] = []any{map[string]any{"apiKey": []string{}}}
			op["x-roles"] = roles
		} else {
			op["security"] = []any{}
		}
		item[strings.ToLower(r.Method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "postage API",
			"version":     s.Version,
			"description": "Usage metering and billing for per-message pricing. Money is a decimal string with a currency code; times are RFC 3339 UTC; errors are RFC 9457 problem+json with a stable code.",
		},
		"servers": []any{map[string]any{"url": "/"}},
		"paths":   paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{"apiKey": map[string]any{"type": "http", "scheme": "bearer", "description": "Authorization: Bearer pst_<id>_<secret>"}},
			"schemas": map[string]any{
				"Problem": map[string]any{
					"type":     "object",
					"required": []string{"type", "title", "status", "code"},
					"properties": map[string]any{
						"type": map[string]any{"type": "string"}, "title": map[string]any{"type": "string"},
						"status": map[string]any{"type": "integer"}, "detail": map[string]any{"type": "string"},
						"code":     map[string]any{"type": "string", "enum": []string{"invalid", "not_found", "conflict", "unauthorized", "forbidden", "unavailable", "overloaded", "too_large", "unsupported_media_type", "internal"}},
						"instance": map[string]any{"type": "string"}, "request_id": map[string]any{"type": "string"},
						"errors": map[string]any{},
					},
				},
			},
		},
	}
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
		b.WriteString(part)
	}
	return b.String()
}
