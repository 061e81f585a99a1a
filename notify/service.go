package notify

import (
	"context"
	"time"

	"postage"
)

// Service is what the API and the command line call: endpoints (their
// URLs checked against the TargetPolicy, their secrets generated and
// sealed here), deliveries and re-sends, and alerts. Scope arguments
// limit a caller to one customer (a customer key's; "" for staff).
type Service struct {
	Store  Store
	Policy *TargetPolicy
	// Keys seals endpoint secrets; nil (no notify.secret_key) refuses to
	// create endpoints or rotate their secrets.
	Keys  *Keyring
	Retry Retry
	Now   func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC().Truncate(time.Microsecond)
	}
	return time.Now().UTC().Truncate(time.Microsecond)
}

func (s *Service) keys() (*Keyring, error) {
	if s.Keys == nil {
		return nil, postage.Errorf(postage.EUNAVAILABLE, "webhooks are not configured on this server: set notify.secret_key (docs/NOTIFICATIONS.md)")
	}
	return s.Keys, nil
}

func (s *Service) policy() *TargetPolicy {
	if s.Policy == nil {
		return &TargetPolicy{}
	}
	return s.Policy
}

// CreateEndpoint registers an endpoint for n.CustomerID (scope: a
// customer key may register only for its own customer, which is the
// default for it) and returns it with its new secret, shown only now.
func (s *Service) CreateEndpoint(ctx context.Context, n NewEndpoint, scope string) (CreatedEndpoint, error) {
	if scope != "" {
		if n.CustomerID == "" {
			n.CustomerID = scope
		} else if n.CustomerID != scope {
			return CreatedEndpoint{}, postage.Errorf(postage.ENOTFOUND, "customer %q not found", n.CustomerID)
		}
	}
	if err := n.Validate(); err != nil {
		return CreatedEndpoint{}, err
	}
	keys, err := s.keys()
	if err != nil {
		return CreatedEndpoint{}, err
	}
	if err := s.policy().CheckURL(ctx, n.URL); err != nil {
		return CreatedEndpoint{}, err
	}
	now := s.now()
	e := Endpoint{ID: NewID("we_"), CustomerID: n.CustomerID, URL: n.URL, Description: n.Description,
		EventTypes: normTypes(n.EventTypes), Enabled: true, CreatedAt: now, UpdatedAt: now}
	secret := NewSecret()
	out, err := s.Store.InsertEndpoint(ctx, e, keys.Seal(e.ID, secret))
	if err != nil {
		return CreatedEndpoint{}, err
	}
	return CreatedEndpoint{Endpoint: out, Secret: secret}, nil
}

// Endpoint returns one endpoint in scope.
func (s *Service) Endpoint(ctx context.Context, id, scope string) (Endpoint, error) {
	return s.Store.Endpoint(ctx, id, scope)
}

// Endpoints lists endpoints in scope (of customer when it is not "").
func (s *Service) Endpoints(ctx context.Context, customer, scope string, p Page) ([]Endpoint, string, error) {
	if scope != "" && customer != "" && customer != scope {
		return nil, "", postage.Errorf(postage.ENOTFOUND, "customer %q not found", customer)
	}
	return s.Store.Endpoints(ctx, customer, scope, p)
}

// UpdateEndpoint changes an endpoint in scope; a new URL is checked as a
// new endpoint's is. Disabling pauses its pending deliveries, enabling
// sends them.
func (s *Service) UpdateEndpoint(ctx context.Context, id, scope string, u EndpointUpdate) (Endpoint, error) {
	if err := u.Validate(); err != nil {
		return Endpoint{}, err
	}
	if u.URL != nil {
		if err := s.policy().CheckURL(ctx, *u.URL); err != nil {
			return Endpoint{}, err
		}
	}
	if u.EventTypes != nil {
		u.EventTypes = normTypes(u.EventTypes)
	}
	return s.Store.UpdateEndpoint(ctx, id, scope, u, s.now())
}

// RotateSecret gives an endpoint a new secret, returned only now; the
// old one keeps signing (a second v1 signature) for r's duration.
func (s *Service) RotateSecret(ctx context.Context, id, scope string, r RotateRequest) (CreatedEndpoint, error) {
	keep, err := r.Duration()
	if err != nil {
		return CreatedEndpoint{}, err
	}
	if _, err := s.Store.Endpoint(ctx, id, scope); err != nil {
		return CreatedEndpoint{}, err
	}
	keys, err := s.keys()
	if err != nil {
		return CreatedEndpoint{}, err
	}
	now := s.now()
	var until *time.Time
	if keep > 0 {
		t := now.Add(keep)
		until = &t
	}
	secret := NewSecret()
	e, err := s.Store.RotateSecret(ctx, id, scope, keys.Seal(id, secret), until, now)
	if err != nil {
		return CreatedEndpoint{}, err
	}
	return CreatedEndpoint{Endpoint: e, Secret: secret}, nil
}

// DeleteEndpoint deletes an endpoint in scope and its deliveries.
func (s *Service) DeleteEndpoint(ctx context.Context, id, scope string) error {
	return s.Store.DeleteEndpoint(ctx, id, scope)
}

// Deliveries lists an endpoint's deliveries, newest first.
func (s *Service) Deliveries(ctx context.Context, endpointID, scope string, status DeliveryStatus, p Page) ([]Delivery, string, error) {
	if status != "" && !status.Valid() {
		return nil, "", postage.Errorf(postage.EINVALID, "status %q: want pending, succeeded, failed or paused", status)
	}
	list, next, err := s.Store.Deliveries(ctx, endpointID, scope, status, p)
	for i := range list {
		s.window(&list[i])
	}
	return list, next, err
}

// Delivery returns a delivery with its attempt log.
func (s *Service) Delivery(ctx context.Context, id int64, scope string) (DeliveryDetail, error) {
	d, err := s.Store.Delivery(ctx, id, scope)
	s.window(&d.Delivery)
	return d, err
}

// Resend sends a delivery again, whatever its status: it is due now,
// with a new retry window. Its endpoint must be enabled.
func (s *Service) Resend(ctx context.Context, id int64, scope string) (Delivery, error) {
	d, err := s.Store.Resend(ctx, id, scope, s.now())
	s.window(&d)
	return d, err
}

// window turns the stored start of a delivery's retry window into its end.
func (s *Service) window(d *Delivery) {
	if !d.RetryUntil.IsZero() {
		d.RetryUntil = d.RetryUntil.Add(s.Retry.norm().For)
	}
}

// CreateAlert sets an alert on a customer's month-to-date usage or bill.
func (s *Service) CreateAlert(ctx context.Context, customerID string, n NewAlert) (Alert, error) {
	if n.Metric != MetricMessages && n.Metric != MetricAmount {
		return Alert{}, n.Validate("")
	}
	return s.Store.CreateAlert(ctx, customerID, n, NewID("al_"), s.now())
}

// Alerts lists a customer's alerts.
func (s *Service) Alerts(ctx context.Context, customerID string) ([]Alert, error) {
	return s.Store.Alerts(ctx, customerID)
}

// DeleteAlert deletes one of a customer's alerts.
func (s *Service) DeleteAlert(ctx context.Context, customerID, id string) error {
	return s.Store.DeleteAlert(ctx, customerID, id)
}
