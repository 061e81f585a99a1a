package httpapi

// MeteringDeps is what the metering routes call into (filled in by that work).
type MeteringDeps struct{}

// meteringRoutes registers the metering routes.
func (s *Server) meteringRoutes() {}
