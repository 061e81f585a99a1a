package httpapi

// BillingDeps is what the billing routes call into (filled in by that work).
type BillingDeps struct{}

// billingRoutes registers the billing routes.
func (s *Server) billingRoutes() {}
