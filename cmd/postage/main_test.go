package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"postage/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// runCLI runs the command line in-process with env pointing at fresh
// databases and returns stdout and the error main would print.
func runCLI(t *testing.T, env *testenv.Env, args ...string) (string, error) {
	t.Helper()
	if env != nil {
		t.Setenv("POSTAGE_POSTGRES_DSN", env.PGDSN)
		t.Setenv("POSTAGE_CLICKHOUSE_ADDR", env.CHAddr)
		t.Setenv("POSTAGE_CLICKHOUSE_DATABASE", env.CHDatabase)
	}
	t.Setenv("POSTAGE_DEV_DATA_DIR", t.TempDir()) // never find a running `make run`
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestUsageErrorsAreOneLineWithStatus2(t *testing.T) {
	tests := [][]string{
		{"frob"},
		{"customers", "lst"},
		{"customers", "create"},
		{"apikeys", "revoke"},
		{"serve", "--bogus"},
	}
	for _, args := range tests {
		_, err := runCLI(t, nil, args...)
		var ue usageError
		if err == nil || !errors.As(err, &ue) {
			t.Errorf("%v: got %v, want a usage error", args, err)
			continue
		}
		if msg := oneLine(err); strings.Contains(msg, "\n") || !strings.Contains(msg, "--help") {
			t.Errorf("%v: message %q should be one line pointing at --help", args, msg)
		}
	}
}

func TestNoDatabaseConfiguredIsAClearError(t *testing.T) {
	t.Setenv("POSTAGE_POSTGRES_DSN", "")
	_, err := runCLI(t, nil, "customers", "list")
	if err == nil || !strings.Contains(oneLine(err), "no PostgreSQL configured") {
		t.Fatalf("got %v", err)
	}
}

func TestCustomersAndKeysFromTheCommandLine(t *testing.T) {
	env := testenv.New(t)
	if _, err := runCLI(t, env, "customers", "create", "acme-1", "--name", "Acme Ltd", "--country", "GB", "--phone-number-id", "106540352242922"); err != nil {
		t.Fatal(err)
	}
	_, err := runCLI(t, env, "customers", "create", "acme-1", "--name", "Again")
	if err == nil || oneLine(err) != `customer "acme-1" already exists` {
		t.Fatalf("duplicate: got %v", err)
	}
	out, err := runCLI(t, env, "customers", "list")
	if err != nil || !strings.Contains(out, "acme-1") || !strings.Contains(out, "Acme Ltd") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if _, err := runCLI(t, env, "customers", "update", "acme-1", "--name", "Acme Group"); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, env, "customers", "get", "acme-1")
	if err != nil || !strings.Contains(out, "Acme Group") || !strings.Contains(out, "106540352242922") {
		t.Fatalf("get: %v\n%s", err, out)
	}
	out, err = runCLI(t, env, "apikeys", "create", "--name", "acme dash", "--role", "customer", "--customer", "acme-1")
	if err != nil || !strings.HasPrefix(out, "pst_") {
		t.Fatalf("create key: %v %q", err, out)
	}
	_, err = runCLI(t, env, "apikeys", "create", "--name", "x", "--role", "wizard")
	if err == nil || !strings.Contains(oneLine(err), `unknown role "wizard"`) {
		t.Fatalf("bad role: %v", err)
	}
	out, err = runCLI(t, env, "apikeys", "list")
	if err != nil || !strings.Contains(out, "acme dash") || strings.Contains(out, "pst_") {
		t.Fatalf("list keys: %v\n%s", err, out)
	}
}
