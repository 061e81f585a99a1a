package billing_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"postage"
	"postage/billing"
	"postage/notify"
)

func TestParseReminderOffsets(t *testing.T) {
	for _, tt := range []struct {
		in   []string
		want []int
		ok   bool
	}{
		{nil, []int{}, true},
		{[]string{"+14d", "-3d", "7d", "0d"}, []int{-3, 0, 7, 14}, true},
		{[]string{"-365d", "+365d"}, []int{-365, 365}, true},
		{[]string{"7"}, nil, false},
		{[]string{"+7h"}, nil, false},
		{[]string{"7d", "+7d"}, nil, false},
		{[]string{"366d"}, nil, false},
		{[]string{"-1000d"}, nil, false},
		{[]string{"1d", "2d", "3d", "4d", "5d", "6d", "7d", "8d", "9d", "10d", "11d"}, nil, false},
	} {
		got, err := billing.ParseReminderOffsets(tt.in)
		if (err == nil) != tt.ok || (tt.ok && !slices.Equal(got, tt.want)) {
			t.Errorf("ParseReminderOffsets(%q) = %v, %v", tt.in, got, err)
		}
		if err != nil && postage.ErrorCode(err) != postage.EINVALID {
			t.Errorf("%q: %v is not invalid", tt.in, err)
		}
	}
	for days, want := range map[int]string{-3: "-3d", 0: "+0d", 14: "+14d"} {
		if got := billing.FormatReminderOffset(days); got != want {
			t.Errorf("FormatReminderOffset(%d) = %q, want %q", days, got, want)
		}
	}
}

// TestPaymentReminders: each configured reminder (days from the due date)
// is sent once per invoice that still owes, as of the injected clock; a
// paid or written-off invoice gets none; an invoice that passed several
// offsets since the last pass gets only the latest; passes at once send
// each once.
func TestPaymentReminders(t *testing.T) {
	f := newFinance(t,
		billing.Customer{ID: "a", Name: "A", Currency: "USD", Country: "US"},
		billing.Customer{ID: "b", Name: "B", Currency: "USD", Country: "US"},
		billing.Customer{ID: "c", Name: "C", Currency: "USD", Country: "US"},
		billing.Customer{ID: "d", Name: "D", Currency: "USD", Country: "US"})
	ctx := context.Background()
	ids := f.finalized(map[string]int64{"a": 1000, "b": 1000, "c": 1000, "d": 1000}) // due 2026-12-02
	if _, _, _, err := f.accounts.RecordPayment(ctx, ids["b"], pay("10.00", "2026-11-02")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.accounts.MarkUncollectible(ctx, ids["d"], "insolvent"); err != nil {
		t.Fatal(err)
	}
	// None configured: nothing sent, whatever the day.
	f.clock.Set(time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC))
	if n, err := f.accounts.SendReminders(ctx); err != nil || n != 0 {
		t.Fatalf("without reminders: %d %v", n, err)
	}
	offsets, err := billing.ParseReminderOffsets([]string{"-3d", "+7d", "+14d"})
	if err != nil {
		t.Fatal(err)
	}
	f.accounts.Reminders = offsets
	send := func(day string, want int) {
		t.Helper()
		d, _ := billing.ParseDate(day)
		f.clock.Set(d.Time().Add(9 * time.Hour))
		if n, err := f.accounts.SendReminders(ctx); err != nil || n != want {
			t.Fatalf("%s: %d reminders %v, want %d", day, n, err, want)
		}
	}
	send("2026-11-28", 0) // four days before: none yet
	send("2026-11-29", 2) // three days before: a and c
	send("2026-11-30", 0) // sent once
	// Seven days after, four passes at once in transactions of one: a and c once each.
	f.clock.Set(time.Date(2026, 12, 9, 1, 0, 0, 0, time.UTC))
	f.recv.OverdueBatch = 1
	var wg sync.WaitGroup
	counts, errs := make([]int, 4), make([]error, 4)
	start := make(chan struct{})
	for i := range 4 {
		wg.Go(func() {
			<-start
			counts[i], errs[i] = f.accounts.SendReminders(ctx)
		})
	}
	close(start)
	wg.Wait()
	total := 0
	for i := range 4 {
		if errs[i] != nil {
			t.Fatalf("pass %d: %v", i, errs[i])
		}
		total += counts[i]
	}
	if total != 2 {
		t.Fatalf("passes at once sent %v reminders, want 2 in all", counts)
	}
	f.recv.OverdueBatch = 0
	// c pays; a is silent until the last reminder, sent alone however late the pass.
	if _, _, _, err := f.accounts.RecordPayment(ctx, ids["c"], pay("10.00", "2026-12-09")); err != nil {
		t.Fatal(err)
	}
	send("2027-01-10", 1)
	send("2027-01-11", 0)

	got := map[string][]float64{}
	for _, p := range f.payloads(notify.InvoiceReminder) {
		o := object(t, p)
		id := o["invoice_id"].(string)
		got[id] = append(got[id], o["reminder_offset_days"].(float64))
		if o["balance"] != "10.00" || o["due_date"] != "2026-12-02" {
			t.Errorf("reminder object %v", o)
		}
	}
	want := map[string][]float64{ids["a"]: {-3, 7, 14}, ids["c"]: {-3, 7}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("reminders per invoice %v, want %v", got, want)
	}
	// The overdue report is its own event: untouched by reminders.
	if n := len(f.payloads(notify.InvoiceOverdue)); n != 0 {
		t.Fatalf("%d invoice.overdue events from reminders", n)
	}
}
