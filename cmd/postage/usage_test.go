package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"postage/internal/testenv"
	"postage/metering"
)

func TestUsageCommand(t *testing.T) {
	env := testenv.New(t)
	store := metering.NewCHStore(env.CH)
	at := time.Date(2026, 10, 30, 10, 0, 0, 0, time.UTC)
	var evs []metering.Event
	for i, c := range []string{"DE", "DE", "FR"} {
		evs = append(evs, metering.Event{CustomerID: "acme", ID: "e" + string(rune('0'+i)), Time: at, Country: c,
			Category: "marketing", Quantity: 2, IngestedAt: at, PayloadHash: uint64(i)})
	}
	if err := store.Insert(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	// An id that is no customer is an error, not an empty table.
	if _, err := runCLI(t, env, "usage", "customer", "acme", "--from", "2026-10-01"); err == nil || !strings.Contains(oneLine(err), `no customer "acme"`) {
		t.Fatalf("unknown customer: %v", err)
	}
	if _, err := runCLI(t, env, "customers", "create", "acme", "--name", "Acme"); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, env, "usage", "customer", "acme", "--from", "2026-10-01", "--window", "month", "--group-by", "country", "--format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	if want := "start,country,quantity,events\n2026-10-01T00:00:00Z,DE,4,2\n2026-10-01T00:00:00Z,FR,2,1\n"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
	out, err = runCLI(t, env, "usage", "summary", "--period", "2026-10")
	if err != nil {
		t.Fatal(err)
	}
	// Text: the month once per row, messages and events, and a total row.
	if want := "MONTH    CUSTOMER  MESSAGES  EVENTS\n2026-10  acme      6         3\nTOTAL              6         3\n"; out != want {
		t.Errorf("summary table:\n%s\nwant:\n%s", out, want)
	}
	out, err = runCLI(t, env, "usage", "customer", "acme", "--from", "2026-10-01", "--group-by", "country")
	if want := "DAY         COUNTRY  MESSAGES  EVENTS\n2026-10-30  DE       4         2\n2026-10-30  FR       2         1\nTOTAL                6         3\n"; err != nil || out != want {
		t.Errorf("customer table: %v\n%s\nwant:\n%s", err, out, want)
	}
	out, err = runCLI(t, env, "usage", "conflicts", "--period", "2026-10")
	if err != nil || out != "CUSTOMER  ID\n" {
		t.Errorf("conflicts: %q %v", out, err)
	}
	for _, args := range [][]string{
		{"usage", "customer", "acme", "--window", "week"},
		{"usage", "customer", "acme", "--from", "yesterday"},
		{"usage", "summary", "--period", "2026-13"},
		{"usage", "summary", "--group-by", "planet"},
	} {
		_, err := runCLI(t, env, args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
