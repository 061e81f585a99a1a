package billing

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// written is what the rate and write steps of a run did.
type written struct {
	created, refreshed int
	unbilled           []UnbilledUsage
	rating, writing    time.Duration // summed over workers and writers
}

// rateAndWrite rates the planned customers on r.Workers goroutines, in the
// plan's customer order, and writes the drafts that changed in batches of
// r.BatchSize on two writers while rating goes on. The first error stops
// every stage.
func (r *Runner) rateAndWrite(ctx context.Context, p *runPlan, now time.Time) (written, error) {
	workers, batchSize := r.Workers, r.BatchSize
	if workers <= 0 {
		workers = 4
	}
	if batchSize <= 0 {
		batchSize = 1000
	}
	var (
		mu   sync.Mutex // guards w and done
		w    written
		done int
	)
	g, gctx := errgroup.WithContext(ctx)
	next := make(chan int32)
	drafts := make(chan *Draft, batchSize)
	batches := make(chan []*Draft, 2)

	g.Go(func() error { // feed the customers in order
		defer close(next)
		for _, i := range p.order {
			select {
			case next <- i:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	var rating sync.WaitGroup
	for range workers {
		rating.Add(1)
		g.Go(func() error {
			defer rating.Done()
			for i := range next {
				t0 := time.Now()
				d, unbilled, err := r.draft(gctx, p, &p.todo[i])
				if err != nil {
					return err
				}
				mu.Lock()
				w.rating += time.Since(t0)
				w.unbilled = append(w.unbilled, unbilled...)
				done++
				if r.Progress != nil {
					r.Progress(done, len(p.todo))
				}
				mu.Unlock()
				if d == nil {
					continue
				}
				select {
				case drafts <- d:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			return nil
		})
	}
	g.Go(func() error { // the drafts end when the last worker does
		rating.Wait()
		close(drafts)
		return nil
	})
	g.Go(func() error { // batch them
		defer close(batches)
		var b []*Draft
		for d := range drafts {
			if b = append(b, d); len(b) < batchSize {
				continue
			}
			select {
			case batches <- b:
			case <-gctx.Done():
				return gctx.Err()
			}
			b = nil
		}
		if len(b) > 0 {
			select {
			case batches <- b:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for range 2 {
		g.Go(func() error { // and write them
			for b := range batches {
				t0 := time.Now()
				created, refreshed, err := r.Invoices.WriteDrafts(gctx, b, now)
				if err != nil {
					return err
				}
				mu.Lock()
				w.writing += time.Since(t0)
				w.created += created
				w.refreshed += refreshed
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return w, err
	}
	return w, ctx.Err()
}
