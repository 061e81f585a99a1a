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

// StartJobs starts the background work of a serving process: the sealer
// of the usage rollups, the invoice scheduler, the webhook dispatcher and
// the usage alert evaluator (the event pipeline runs from Open on). It
// returns a function that stops them and waits.
func (a *App) StartJobs(ctx context.Context) (stop func(), err error) {
	stopScheduler, err := a.startScheduler(ctx)
	if err != nil {
		return nil, err
	}
	stopNotify := a.startNotify(ctx)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if a.shards != nil {
			a.shards.sealAll(sctx, a.sealerConfig())
			return
		}
		a.Sealer.Run(sctx)
	}()
	return func() {
		cancel()
		<-done
		stopNotify()
		stopScheduler()
	}, nil
}
