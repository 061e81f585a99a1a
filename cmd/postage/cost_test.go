package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"postage"
	"postage/internal/testenv"
	"postage/pricing"
	"postage/pricing/pgstore"
)

func TestCostCardsAndFXRatesCommands(t *testing.T) {
	env := testenv.New(t)
	if err := pgstore.New(env.PG).Seed(context.Background()); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, env, "costcards", "list")
	if err != nil || !strings.Contains(out, "2026-01") || !strings.Contains(out, "meta-2026-01") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, err = runCLI(t, env, "ratecards", "list")
	if err != nil || !strings.Contains(out, "cost") || !strings.Contains(out, "selling") {
		t.Fatalf("ratecards list shows kinds: %v\n%s", err, out)
	}
	if _, err := runCLI(t, env, "costcards", "set", "launch", "--from", "2099-01"); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Fatalf("a selling card: %v", err)
	}
	if out, err := runCLI(t, env, "costcards", "set", "meta-2026-01", "--from", "2099-01"); err != nil || !strings.Contains(out, "from 2099-01-01") {
		t.Fatalf("set: %v %s", err, out)
	}
	if out, err := runCLI(t, env, "fxrates", "set", "USD", "EUR", "2026-10", "0.9231", "--source", "ECB"); err != nil || !strings.Contains(out, "1 USD = 0.9231 EUR in 2026-10") {
		t.Fatalf("fx set: %v %s", err, out)
	}
	if _, err := runCLI(t, env, "fxrates", "set", "USD", "EUR", "2026-10", "0.95"); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Fatalf("another rate: %v", err)
	}
	if out, err := runCLI(t, env, "fxrates", "list", "--to", "EUR"); err != nil || !strings.Contains(out, "0.9231") || !strings.Contains(out, "ECB") {
		t.Fatalf("fx list: %v %s", err, out)
	}
	for _, args := range [][]string{
		{"fxrates", "set", "USD", "EUR", "October", "0.9"},
		{"fxrates", "set", "USD", "EUR", "2026-10", "ninety"},
		{"costcards", "set", "meta-2026-01", "--from", "soon"},
	} {
		var ue usageError
		if _, err := runCLI(t, env, args...); !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

func TestCustomersPortfolioCommand(t *testing.T) {
	env := testenv.New(t)
	for _, args := range [][]string{
		{"customers", "create", "acme-group", "--name", "Acme group"},
		{"customers", "create", "acme-shop-1", "--name", "Acme shop 1", "--parent", "acme-group"},
	} {
		if _, err := runCLI(t, env, args...); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	out, err := runCLI(t, env, "customers", "get", "acme-shop-1")
	if err != nil || !strings.Contains(out, "parent:    acme-group") {
		t.Fatalf("get: %v\n%s", err, out)
	}
	next := pricing.MonthOf(time.Now()).Next().String()
	out, err = runCLI(t, env, "customers", "portfolio", "acme-group", "--consolidated")
	if err != nil || !strings.Contains(out, "from "+next+": parent account, one consolidated invoice") {
		t.Fatalf("consolidated: %v %s", err, out)
	}
	if _, err := runCLI(t, env, "customers", "portfolio", "acme-group", "--parent", "acme-shop-1", "--from", "2099-01"); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Fatalf("two levels: %v", err)
	}
	if _, err := runCLI(t, env, "customers", "portfolio", "acme-shop-1", "--none", "--from", pricing.MonthOf(time.Now()).String()); postage.ErrorCode(err) != postage.EINVALID {
		t.Fatalf("this month: %v", err)
	}
	out, err = runCLI(t, env, "customers", "portfolio", "acme-shop-1")
	if err != nil || !strings.Contains(out, "member of acme-group") {
		t.Fatalf("history: %v %s", err, out)
	}
	var ue usageError
	if _, err := runCLI(t, env, "customers", "portfolio", "acme-shop-1", "--parent", "x", "--none"); !errors.As(err, &ue) {
		t.Fatalf("--parent and --none: %v", err)
	}
}
