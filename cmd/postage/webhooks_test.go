package main

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"postage/internal/testenv"
	"postage/notify"
)

func TestWebhooksAndAlertsCLI(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	if _, err := runCLI(t, env, "customers", "create", "acme-1", "--name", "Acme Ltd", "--currency", "EUR"); err != nil {
		t.Fatal(err)
	}
	_, err := runCLI(t, env, "webhooks", "create", "--url", "https://93.184.216.34/h", "--events", "*")
	if err == nil || !strings.Contains(oneLine(err), "notify.secret_key") {
		t.Fatalf("without a key: %v", err)
	}
	t.Setenv("POSTAGE_NOTIFY_SECRET_KEY", notify.NewKey())
	if _, err := runCLI(t, env, "webhooks", "create", "--url", "http://127.0.0.1:9/h", "--events", "*"); err == nil || !strings.Contains(oneLine(err), "not public") {
		t.Fatalf("loopback not allowed: %v", err)
	}
	t.Setenv("POSTAGE_NOTIFY_ALLOW_NETWORKS", "127.0.0.0/8")
	for _, args := range [][]string{
		{"webhooks", "create", "--url", "http://127.0.0.1:9/h", "--events", "invoice.exploded"},
		{"webhooks", "create", "--events", "*"},
		{"webhooks", "deliveries", "we_x", "--status", "lost"},
		{"webhooks", "resend", "abc"},
		{"webhooks", "rotate-secret", "we_x", "--keep-previous", "a year"},
		{"alerts", "create", "acme-1"},
		{"alerts", "create", "acme-1", "--messages", "5", "--amount", "5"},
		{"alerts", "create", "acme-1", "--amount", "lots"},
	} {
		_, err := runCLI(t, env, args...)
		var ue usageError
		if err == nil || !errors.As(err, &ue) || strings.Contains(oneLine(err), "\n") {
			t.Errorf("%v: %v, want a one-line usage error", args, err)
		}
	}
	out, err := runCLI(t, env, "webhooks", "create", "--url", "http://127.0.0.1:9/h", "--events", "invoice.finalized,invoice.paid", "--customer", "acme-1")
	if err != nil || !regexp.MustCompile(`^whsec_[A-Za-z0-9_-]{43}\n$`).MatchString(out) {
		t.Fatalf("create: %q %v", out, err)
	}
	out, err = runCLI(t, env, "webhooks", "list")
	id := regexp.MustCompile(`we_[0-9a-z]{26}`).FindString(out)
	if err != nil || id == "" || !strings.Contains(out, "acme-1") || !strings.Contains(out, "invoice.finalized,invoice.paid") || strings.Contains(out, "whsec_") {
		t.Fatalf("list: %s %v", out, err)
	}
	if err := notify.Emit(ctx, env.PG, notify.Event{Type: notify.InvoicePaid, CustomerID: "acme-1", Object: map[string]string{"id": "in_1"}}); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, env, "webhooks", "deliveries", id)
	if err != nil || !strings.Contains(out, "invoice.paid") || !strings.Contains(out, "pending") {
		t.Fatalf("deliveries: %s %v", out, err)
	}
	delivery := strings.Fields(strings.Split(out, "\n")[1])[0]
	out, err = runCLI(t, env, "webhooks", "attempts", delivery)
	if err != nil || !strings.Contains(out, "pending after 0 attempts") {
		t.Fatalf("attempts: %s %v", out, err)
	}
	if out, err = runCLI(t, env, "webhooks", "disable", id); err != nil || !strings.Contains(out, "disabled") {
		t.Fatalf("disable: %s %v", out, err)
	}
	if _, err := runCLI(t, env, "webhooks", "resend", delivery); err == nil || !strings.Contains(oneLine(err), "endpoint is disabled") {
		t.Fatalf("resend to a disabled endpoint: %v", err)
	}
	if out, err = runCLI(t, env, "webhooks", "deliveries", id, "--status", "paused"); err != nil || !strings.Contains(out, "paused") {
		t.Fatalf("paused: %s %v", out, err)
	}
	if _, err = runCLI(t, env, "webhooks", "enable", id); err != nil {
		t.Fatal(err)
	}
	if out, err = runCLI(t, env, "webhooks", "resend", delivery); err != nil || !strings.Contains(out, "queued") {
		t.Fatalf("resend: %s %v", out, err)
	}
	if out, err = runCLI(t, env, "webhooks", "rotate-secret", id, "--keep-previous", "1h"); err != nil || !strings.HasPrefix(out, "whsec_") {
		t.Fatalf("rotate: %s %v", out, err)
	}
	if _, err = runCLI(t, env, "webhooks", "delete", id); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, env, "webhooks", "deliveries", id); err == nil || oneLine(err) != `webhook endpoint "`+id+`" not found` {
		t.Fatalf("deleted endpoint: %v", err)
	}

	if out, err = runCLI(t, env, "alerts", "create", "acme-1", "--amount", "2500.00"); err != nil || !strings.Contains(out, "2500 EUR") {
		t.Fatalf("alerts create: %s %v", out, err)
	}
	if _, err := runCLI(t, env, "alerts", "create", "acme-1", "--amount", "1.001"); err == nil || !strings.Contains(oneLine(err), "at most 2 decimals for EUR") {
		t.Fatalf("three decimals: %v", err)
	}
	if _, err := runCLI(t, env, "alerts", "create", "nobody", "--messages", "5"); err == nil || oneLine(err) != `customer "nobody" not found` {
		t.Fatalf("unknown customer: %v", err)
	}
	out, err = runCLI(t, env, "alerts", "list", "acme-1")
	alert := regexp.MustCompile(`al_[0-9a-z]{26}`).FindString(out)
	if err != nil || alert == "" || !strings.Contains(out, "amount") {
		t.Fatalf("alerts list: %s %v", out, err)
	}
	if out, err = runCLI(t, env, "alerts", "check"); err != nil || !strings.Contains(out, "0 alerts fired") {
		t.Fatalf("check: %s %v", out, err)
	}
	if _, err = runCLI(t, env, "alerts", "delete", "acme-1", alert); err != nil {
		t.Fatal(err)
	}

	// Every command's help shows real examples.
	for _, args := range [][]string{{"webhooks"}, {"webhooks", "create"}, {"webhooks", "resend"}, {"webhooks", "deliveries"}, {"alerts"}, {"alerts", "create"}} {
		out, err := runCLI(t, nil, append(args, "--help")...)
		if err != nil || !strings.Contains(out, "Examples:") || !strings.Contains(out, "postage "+args[0]) {
			t.Errorf("%v --help: %v\n%s", args, err, out)
		}
	}
}
