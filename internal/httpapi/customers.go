package httpapi

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"postage"
	"postage/billing"
	"postage/internal/auth"
)

func (s *Server) customerRoutes() {
	s.handle(Route{Method: "POST", Path: "/api/v1/customers", Tag: "customers", Summary: "Create a customer.", Roles: financeOnly,
		Request: billing.Customer{}, Response: billing.Customer{}, Status: http.StatusCreated}, func(c *gin.Context) {
		var in billing.Customer
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		out, err := s.Customers.Create(c.Request.Context(), in)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.Header("Location", "/api/v1/customers/"+out.ID)
		c.JSON(http.StatusCreated, out)
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/customers", Tag: "customers", Summary: "List customers by id, a page at a time; with q, those whose id or name contains q (by name, one page).", Roles: staff,
		Query:    append([]Param{{Name: "q", Description: "find customers whose id or name contains this (case-insensitive), up to limit"}}, pageQuery...),
		Response: List[billing.Customer]{}}, func(c *gin.Context) {
		p, err := page(c)
		if err != nil {
			s.writeError(c, err)
			return
		}
		if q := strings.TrimSpace(c.Query("q")); q != "" {
			if len(q) > 200 {
				s.writeError(c, postage.Errorf(postage.EINVALID, "q: at most 200 characters"))
				return
			}
			list, err := s.Customers.Search(c.Request.Context(), q, p.Limit)
			if err != nil {
				s.writeError(c, err)
				return
			}
			c.JSON(http.StatusOK, listOf(list, ""))
			return
		}
		list, next, err := s.Customers.List(c.Request.Context(), p)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, listOf(list, next))
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/customers/:id", Tag: "customers", Summary: "Get a customer (customer keys: only their own).", Roles: staffAndOwner, Response: billing.Customer{}}, func(c *gin.Context) {
		id, ok := s.customerParam(c)
		if !ok {
			return
		}
		out, err := s.Customers.Get(c.Request.Context(), id)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, out)
	})
	s.handle(Route{Method: "PATCH", Path: "/api/v1/customers/:id", Tag: "customers", Summary: "Change a customer's name, currency, country or email.", Roles: financeOnly,
		Request: billing.CustomerUpdate{}, Response: billing.Customer{}}, func(c *gin.Context) {
		var in billing.CustomerUpdate
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		out, err := s.Customers.Update(c.Request.Context(), c.Param("id"), in)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, out)
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/customers/:id/phone_numbers", Tag: "customers", Summary: "List the WhatsApp phone-number ids mapped to a customer (customer keys: their own).", Roles: financeAndOwner,
		Response: List[billing.PhoneNumber]{}}, func(c *gin.Context) {
		id, ok := s.customerParam(c)
		if !ok {
			return
		}
		if _, err := s.Customers.Get(c.Request.Context(), id); err != nil {
			s.writeError(c, err)
			return
		}
		list, err := s.Customers.PhoneNumbers(c.Request.Context(), id)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, listOf(list, ""))
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/customers/:id/phone_numbers", Tag: "customers", Summary: "Map a WhatsApp phone-number id to the customer (webhook attribution).", Roles: financeOnly,
		Request: PhoneNumberRequest{}, Response: billing.PhoneNumber{}, Status: http.StatusCreated}, func(c *gin.Context) {
		var in PhoneNumberRequest
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		out, err := s.Customers.AddPhoneNumber(c.Request.Context(), c.Param("id"), in.PhoneNumberID)
		if err != nil {
			s.writeError(c, err)
			return
		}
		forget(s.Metering.Phones, in.PhoneNumberID)
		c.JSON(http.StatusCreated, out)
	})
	s.handle(Route{Method: "DELETE", Path: "/api/v1/customers/:id/phone_numbers/:phone_number_id", Tag: "customers", Summary: "Remove a phone-number id mapping.", Roles: financeOnly, Status: http.StatusNoContent}, func(c *gin.Context) {
		if err := s.Customers.RemovePhoneNumber(c.Request.Context(), c.Param("id"), c.Param("phone_number_id")); err != nil {
			s.writeError(c, err)
			return
		}
		forget(s.Metering.Phones, c.Param("phone_number_id"))
		c.Status(http.StatusNoContent)
	})
}

func (s *Server) apiKeyRoutes() {
	s.handle(Route{Method: "POST", Path: "/api/v1/apikeys", Tag: "apikeys", Summary: "Create an API key; the secret is in this answer only.", Roles: adminOnly,
		Request: auth.NewKey{}, Response: CreatedKey{}, Status: http.StatusCreated}, func(c *gin.Context) {
		var in auth.NewKey
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		k, token, err := s.Keys.Create(c.Request.Context(), in)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusCreated, CreatedKey{Key: k, Token: token})
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/apikeys", Tag: "apikeys", Summary: "List API keys (never their secrets).", Roles: adminOnly, Response: List[auth.Key]{}}, func(c *gin.Context) {
		keys, err := s.Keys.List(c.Request.Context())
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, listOf(keys, ""))
	})
	s.handle(Route{Method: "DELETE", Path: "/api/v1/apikeys/:key_id", Tag: "apikeys", Summary: "Revoke an API key at once.", Roles: adminOnly, Status: http.StatusNoContent}, func(c *gin.Context) {
		if err := s.Keys.Revoke(c.Request.Context(), c.Param("key_id")); err != nil {
			s.writeError(c, err)
			return
		}
		forget(s.Auth, c.Param("key_id"))
		c.Status(http.StatusNoContent)
	})
}

// PhoneNumberRequest is the body of POST /api/v1/customers/{id}/phone_numbers.
type PhoneNumberRequest struct {
	PhoneNumberID string `json:"phone_number_id"`
}

// CreatedKey is a new API key and its token, which no later answer shows.
type CreatedKey struct {
	Key   auth.Key `json:"key"`
	Token string   `json:"token"`
}

// forget tells a cache (auth.Cached, cache.Phones) that this process just
// changed the answer for key, so the change takes effect here at once;
// other processes see it within the cache's refresh interval.
func forget(c any, key string) {
	if f, ok := c.(interface{ Forget(string) }); ok {
		f.Forget(key)
	}
}
