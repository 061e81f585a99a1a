package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"postage/internal/config"
)

// TestDemoKeysOnEveryStart: the demo customers' keys, saved once when the
// demo data is loaded, are in the start banner's text every time after.
func TestDemoKeysOnEveryStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "demo-customer-keys")
	if got := demoKeysText(path); got != "" {
		t.Errorf("no keys saved yet, banner says %q", got)
	}
	for _, l := range []string{"Kestrel Insurance Ltd (wa-gb-1000): pst_a", "Alpen Mobilität GmbH (wa-de-1001): pst_b"} {
		if err := appendLine(path, l); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("keys file mode %v %v: only its owner may read keys", fi.Mode(), err)
	}
	got := demoKeysText(path)
	for _, want := range []string{"Customer API keys", "    Kestrel Insurance Ltd (wa-gb-1000): pst_a\n", "    Alpen Mobilität GmbH (wa-de-1001): pst_b\n", path} {
		if !strings.Contains(got, want) {
			t.Errorf("banner lacks %q:\n%s", want, got)
		}
	}
}

func TestRequestsNote(t *testing.T) {
	cfg := config.Default()
	cfg.Log.Requests = "debug"
	if !strings.Contains(requestsNote(cfg), "debug level") {
		t.Errorf("requests at debug under an info log: no note")
	}
	cfg.Log.Level = "debug"
	if requestsNote(cfg) != "" {
		t.Errorf("a debug log shows the requests: no note needed")
	}
}
