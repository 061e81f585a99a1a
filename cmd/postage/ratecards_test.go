package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"postage"
	"postage/internal/testenv"
	"postage/pricing"
	"postage/pricing/pgstore"
)

func TestRateCardsCommands(t *testing.T) {
	env := testenv.New(t)
	if err := pgstore.New(env.PG).Seed(context.Background()); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, env, "ratecards", "list")
	if err != nil || !strings.Contains(out, "launch") || !strings.Contains(out, "default") || !strings.Contains(out, "meta-2026-01") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "launch.csv")
	if _, err := runCLI(t, env, "ratecards", "export", "launch", "--version", "1", "-o", file); err != nil {
		t.Fatal(err)
	}
	stdout, err := runCLI(t, env, "ratecards", "export", "launch", "--month", "2026-06")
	b, _ := os.ReadFile(file)
	if err != nil || stdout != string(b) || !strings.Contains(stdout, "price,DE,notification,graduated,250000,0.0887") {
		t.Fatalf("export: %v\n%s", err, stdout)
	}
	// Import as a draft of launch and of a new card; activate.
	out, err = runCLI(t, env, "ratecards", "import", "launch", file)
	if err != nil || !strings.Contains(out, "draft version 2 of launch") {
		t.Fatalf("import: %v %s", err, out)
	}
	if _, err := runCLI(t, env, "ratecards", "import", "acme", file, "--create", "--name", "Acme"); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, env, "ratecards", "activate", "launch", "2", "--from", "2099-01")
	if err != nil || !strings.Contains(out, "active from 2099-01-01") {
		t.Fatalf("activate: %v %s", err, out)
	}
	out, err = runCLI(t, env, "ratecards", "list", "launch")
	if err != nil || !strings.Contains(out, "2099-01") {
		t.Fatalf("versions: %v\n%s", err, out)
	}
	_, err = runCLI(t, env, "ratecards", "activate", "launch", "2", "--from", "2099-02")
	if postage.ErrorCode(err) != postage.ECONFLICT {
		t.Fatalf("activate twice: %v", err)
	}
	// A bad file: rejected with every problem.
	bad := filepath.Join(dir, "bad.csv")
	_ = os.WriteFile(bad, []byte(string(b)+"country,XX,DE\nprice,DE,bogus,flat,,1\n"), 0o644)
	_, err = runCLI(t, env, "ratecards", "import", "launch", bad)
	var pe *postage.Error
	if !errors.As(err, &pe) || len(pe.Detail.([]pricing.RowError)) != 2 || strings.Contains(oneLine(err), "\n") {
		t.Fatalf("bad import: %v", err)
	}
	// A card that does not exist is said so, not "no version in effect".
	for _, args := range [][]string{{"ratecards", "export", "nope"}, {"ratecards", "list", "nope"}} {
		if _, err := runCLI(t, env, args...); err == nil || oneLine(err) != `rate card "nope" not found` {
			t.Errorf("%v: %v", args, err)
		}
	}
	for _, args := range [][]string{
		{"ratecards", "activate", "launch", "two", "--from", "2099-03"},
		{"ratecards", "activate", "launch", "3", "--from", "March"},
		{"ratecards", "export", "launch", "--month", "2026-13"},
	} {
		_, err := runCLI(t, env, args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
