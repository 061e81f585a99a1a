package httpapi

// PricingDeps is what the pricing routes call into (filled in by that work).
type PricingDeps struct{}

// pricingRoutes registers the pricing routes.
func (s *Server) pricingRoutes() {}
