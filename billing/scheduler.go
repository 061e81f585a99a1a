package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"postage/pricing"
)

// DefaultSchedule runs the monthly invoice run at 02:00 UTC on the 1st.
const DefaultSchedule = "0 2 1 * *"

// SweepSchedule is when the finalize sweep runs: hourly, off the hour so
// it does not race the monthly run for the lock.
const SweepSchedule = "17 * * * *"

// Scheduler runs invoice runs on a cron schedule (in UTC) on every replica;
// the runs' advisory lock makes one of them do the work.
type Scheduler struct {
	Runner *Runner
	// Accounts, when set, reports newly overdue invoices (invoice.overdue)
	// and sends payment reminders (invoice.payment_reminder) with the
	// hourly sweep.
	Accounts *Accounts
	// Schedule is a five-field cron expression for the monthly run of
	// the previous month (DefaultSchedule when empty).
	Schedule string
	cron     *cron.Cron
}

// ParseSchedule checks a five-field cron expression.
func ParseSchedule(spec string) (cron.Schedule, error) {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("billing schedule %q: %w (five fields: minute hour day-of-month month day-of-week, UTC)", spec, err)
	}
	return s, nil
}

// Start starts the schedule; jobs get ctx. Stop it with Stop.
func (s *Scheduler) Start(ctx context.Context) error {
	spec := s.Schedule
	if spec == "" {
		spec = DefaultSchedule
	}
	if _, err := ParseSchedule(spec); err != nil {
		return err
	}
	log := s.Runner.log()
	s.cron = cron.New(cron.WithLocation(time.UTC), cron.WithChain(cron.SkipIfStillRunning(cron.DiscardLogger)))
	if _, err := s.cron.AddFunc(spec, func() { _, _ = s.MonthlyRun(ctx) }); err != nil {
		return err
	}
	if _, err := s.cron.AddFunc(SweepSchedule, func() {
		if _, err := s.Runner.Sweep(ctx); err != nil {
			log.Error("finalize sweep failed", "err", err)
		}
		if s.Accounts != nil {
			if n, err := s.Accounts.MarkOverdue(ctx); err != nil {
				log.Error("overdue sweep failed", "err", err)
			} else if n > 0 {
				log.Info("invoices overdue", "reported", n)
			}
			if n, err := s.Accounts.SendReminders(ctx); err != nil {
				log.Error("payment reminders failed", "err", err)
			} else if n > 0 {
				log.Info("payment reminders", "sent", n)
			}
		}
	}); err != nil {
		return err
	}
	s.cron.Start()
	log.Info("invoice scheduler started", "schedule", spec, "sweep", SweepSchedule, "grace", s.Runner.Grace)
	return nil
}

// Stop stops the schedule and waits for a running job to end.
func (s *Scheduler) Stop() {
	if s.cron != nil {
		<-s.cron.Stop().Done()
	}
}

// MonthlyRun is the scheduled job: the run of the month before now. When
// another replica holds the lock the run is recorded as skipped.
func (s *Scheduler) MonthlyRun(ctx context.Context) (Run, error) {
	period := pricing.MonthOf(s.Runner.now()).Prev()
	return s.Runner.Run(ctx, RunRequest{Period: period, Trigger: TriggerSchedule})
}
