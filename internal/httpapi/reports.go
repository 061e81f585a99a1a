package httpapi

// ReportsDeps is what the reports routes call into (filled in by that work).
type ReportsDeps struct{}

// reportsRoutes registers the reports routes.
func (s *Server) reportsRoutes() {}
