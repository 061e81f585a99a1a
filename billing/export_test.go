package billing

// SetDescriber replaces the describer of invoice lines until restore is
// called: the stand-in for a release that words lines differently, to
// show that finalized invoices keep the text they were finalized with
// while drafts take the new one. Not for parallel tests.
func SetDescriber(f func(Line) string) (restore func()) {
	prev, prevDefault := describe, describeIsDefault
	describe, describeIsDefault = f, false
	return func() { describe, describeIsDefault = prev, prevDefault }
}
