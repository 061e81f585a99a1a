package httpapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"postage"
	"postage/billing"
	"postage/internal/auth"
	"postage/notify"
)

// NotifyDeps is what the webhook and alert routes call into.
type NotifyDeps struct {
	// Webhooks manages endpoints, deliveries and alerts (nil: the routes
	// answer 503).
	Webhooks *notify.Service
}

// ownerRoles may manage webhook endpoints and alerts: admin for any
// customer (and for every customer's events), a customer key for its own
// customer. Finance and sales keys read the ledger; they do not decide
// where its events go.
var ownerRoles = []auth.Role{auth.RoleAdmin, auth.RoleCustomer}

// scope is the customer a caller is limited to: a customer key's own, ""
// for the others.
func scope(c *gin.Context) string {
	if p := principal(c); p.Role == auth.RoleCustomer {
		return p.CustomerID
	}
	return ""
}

func (s *Server) notifyReady(c *gin.Context) bool {
	if s.Notify.Webhooks == nil {
		s.writeError(c, postage.Errorf(postage.EUNAVAILABLE, "webhooks are not configured on this server"))
		return false
	}
	return true
}

// deliveryParam reads :delivery_id; a malformed id is a delivery that
// does not exist.
func deliveryParam(c *gin.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("delivery_id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, postage.Errorf(postage.ENOTFOUND, "webhook delivery %q not found", c.Param("delivery_id"))
	}
	return id, nil
}

// notifyRoutes registers webhook endpoints, their deliveries and usage
// alerts (docs/NOTIFICATIONS.md).
func (s *Server) notifyRoutes() {
	const tag = "webhooks"
	endpointID := []Param{{Name: "endpoint_id", Description: "webhook endpoint id (we_...)"}}
	deliveryID := []Param{{Name: "delivery_id", Description: "webhook delivery id", Schema: int64(0)}}
	s.handle(Route{Method: "POST", Path: "/api/v1/webhook-endpoints", Tag: tag,
		Summary: "Register an endpoint for a customer's events (customer keys: their own) or, admin only, every customer's; the answer holds its signing secret, shown only this once.",
		Roles:   ownerRoles, Request: notify.NewEndpoint{}, Response: notify.CreatedEndpoint{}, Status: http.StatusCreated}, func(c *gin.Context) {
		if !s.notifyReady(c) {
			return
		}
		var in notify.NewEndpoint
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		out, err := s.Notify.Webhooks.CreateEndpoint(c.Request.Context(), in, scope(c))
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.Header("Location", "/api/v1/webhook-endpoints/"+out.ID)
		c.JSON(http.StatusCreated, out)
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/webhook-endpoints", Tag: tag, Summary: "List webhook endpoints by id (customer keys: their own).", Roles: ownerRoles,
		Query:    append([]Param{{Name: "customer", Description: "only this customer's endpoints"}}, pageQuery...),
		Response: List[notify.Endpoint]{}}, func(c *gin.Context) {
		if !s.notifyReady(c) {
			return
		}
		writePage(s, c, func(ctx context.Context, p billing.Page) ([]notify.Endpoint, string, error) {
			return s.Notify.Webhooks.Endpoints(ctx, c.Query("customer"), scope(c), notify.Page{Limit: p.Limit, Cursor: p.Cursor})
		})
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/webhook-endpoints/:endpoint_id", Tag: tag, Summary: "Get a webhook endpoint (never its secret).", Roles: ownerRoles,
		PathParams: endpointID, Response: notify.Endpoint{}}, func(c *gin.Context) {
		if !s.notifyReady(c) {
			return
		}
		out, err := s.Notify.Webhooks.Endpoint(c.Request.Context(), c.Param("endpoint_id"), scope(c))
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, out)
	})
	s.handle(Route{Method: "PATCH", Path: "/api/v1/webhook-endpoints/:endpoint_id", Tag: tag,
		Summary: "Change an endpoint's URL, description or event types, or disable it (its pending deliveries pause) and enable it (they are sent).",
		Roles:   ownerRoles, PathParams: endpointID, Request: notify.EndpointUpdate{}, Response: notify.Endpoint{}}, func(c *gin.Context) {
		if !s.notifyReady(c) {
			return
		}
		var in notify.EndpointUpdate
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		out, err := s.Notify.Webhooks.UpdateEndpoint(c.Request.Context(), c.Param("endpoint_id"), scope(c), in)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, out)
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/webhook-endpoints/:endpoint_id/rotate-secret", Tag: tag,
		Summary: "Give an endpoint a new signing secret, shown only in this answer; the old one keeps signing (a second v1 signature) for previous_secret_valid_for (default 24h).",
		Roles:   ownerRoles, PathParams: endpointID, Request: notify.RotateRequest{}, Response: notify.CreatedEndpoint{}}, func(c *gin.Context) {
		if !s.notifyReady(c) {
			return
		}
		var in notify.RotateRequest
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		out, err := s.Notify.Webhooks.RotateSecret(c.Request.Context(), c.Param("endpoint_id"), scope(c), in)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, out)
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/webhook-endpoints/:endpoint_id/deliveries", Tag: tag, Summary: "An endpoint's deliveries, newest first, with their status and last attempt.", Roles: ownerRoles,
		PathParams: endpointID,
		Query:      append([]Param{{Name: "status", Description: "pending, succeeded, failed or paused", Schema: notify.DeliveryStatus("")}}, pageQuery...),
		Response:   List[notify.Delivery]{}}, func(c *gin.Context) {
		if !s.notifyReady(c) {
			return
		}
		writePage(s, c, func(ctx context.Context, p billing.Page) ([]notify.Delivery, string, error) {
			return s.Notify.Webhooks.Deliveries(ctx, c.Param("endpoint_id"), scope(c), notify.DeliveryStatus(c.Query("status")), notify.Page{Limit: p.Limit, Cursor: p.Cursor})
		})
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/webhook-deliveries/:delivery_id", Tag: tag, Summary: "A delivery with its attempt log (status code, duration, error and the start of each answer).", Roles: ownerRoles,
		PathParams: deliveryID, Response: notify.DeliveryDetail{}}, func(c *gin.Context) {
		if !s.notifyReady(c) {
			return
		}
		id, err := deliveryParam(c)
		if err != nil {
			s.writeError(c, err)
			return
		}
		out, err := s.Notify.Webhooks.Delivery(c.Request.Context(), id, scope(c))
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, out)
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/webhook-deliveries/:delivery_id/resend", Tag: tag,
		Summary: "Send a delivery again, whatever its status: it is due now, with a new three-day retry window (409 while its endpoint is disabled).",
		Roles:   ownerRoles, PathParams: deliveryID, Response: notify.Delivery{}, Status: http.StatusAccepted}, func(c *gin.Context) {
		if !s.notifyReady(c) {
			return
		}
		id, err := deliveryParam(c)
		if err != nil {
			s.writeError(c, err)
			return
		}
		out, err := s.Notify.Webhooks.Resend(c.Request.Context(), id, scope(c))
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusAccepted, out)
	})
	// Last: the walks of the route table delete the fixture's endpoint.
	s.handle(Route{Method: "DELETE", Path: "/api/v1/webhook-endpoints/:endpoint_id", Tag: tag, Summary: "Delete a webhook endpoint and its deliveries.", Roles: ownerRoles,
		PathParams: endpointID, Status: http.StatusNoContent}, func(c *gin.Context) {
		if !s.notifyReady(c) {
			return
		}
		if err := s.Notify.Webhooks.DeleteEndpoint(c.Request.Context(), c.Param("endpoint_id"), scope(c)); err != nil {
			s.writeError(c, err)
			return
		}
		c.Status(http.StatusNoContent)
	})

	const alerts = "alerts"
	s.handle(Route{Method: "GET", Path: "/api/v1/customers/:id/alerts", Tag: alerts, Summary: "A customer's usage alerts, with the month each last fired.", Roles: ownerRoles,
		Response: List[notify.Alert]{}}, func(c *gin.Context) {
		id, ok := s.customerParam(c)
		if !ok || !s.notifyReady(c) {
			return
		}
		list, err := s.Notify.Webhooks.Alerts(c.Request.Context(), id)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, listOf(list, ""))
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/customers/:id/alerts", Tag: alerts,
		Summary: "Set an alert on the customer's month-to-date messages or bill: usage.threshold_reached fires once per month when it is reached.",
		Roles:   ownerRoles, Request: notify.NewAlert{}, Response: notify.Alert{}, Status: http.StatusCreated}, func(c *gin.Context) {
		id, ok := s.customerParam(c)
		if !ok || !s.notifyReady(c) {
			return
		}
		var in notify.NewAlert
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		out, err := s.Notify.Webhooks.CreateAlert(c.Request.Context(), id, in)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusCreated, out)
	})
	s.handle(Route{Method: "DELETE", Path: "/api/v1/customers/:id/alerts/:alert_id", Tag: alerts, Summary: "Delete a usage alert.", Roles: ownerRoles,
		PathParams: []Param{{Name: "alert_id", Description: "alert id (al_...)"}}, Status: http.StatusNoContent}, func(c *gin.Context) {
		id, ok := s.customerParam(c)
		if !ok || !s.notifyReady(c) {
			return
		}
		if err := s.Notify.Webhooks.DeleteAlert(c.Request.Context(), id, c.Param("alert_id")); err != nil {
			s.writeError(c, err)
			return
		}
		c.Status(http.StatusNoContent)
	})
}
