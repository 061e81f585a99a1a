package app

import (
	"context"
	"fmt"
)

// Seed fills a fresh installation with what it needs to bill: the default
// rate cards. It is idempotent.
func (a *App) Seed(ctx context.Context) error {
	if err := a.Pricing.Seed(ctx); err != nil {
		return fmt.Errorf("seed rate cards: %w", err)
	}
	return nil
}

// StartJobs starts the background work of a serving process, the invoice
// scheduler (the event pipeline runs from Open on), and returns a function
// that stops it and waits.
func (a *App) StartJobs(ctx context.Context) (stop func(), err error) {
	return a.startScheduler(ctx)
}
