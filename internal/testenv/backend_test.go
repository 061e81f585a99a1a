package testenv_test

import (
	"fmt"
	"strings"
	"testing"

	"postage/internal/testenv"
)

// recorder is a testing.TB that records Skipf and Fatalf instead of
// ending the test (Fatalf panics with errFatal, so New stops there).
type recorder struct {
	testing.TB
	skipped, fatal string
}

type fatalPanic struct{}

func (r *recorder) Skipf(format string, args ...any) { r.skipped = fmt.Sprintf(format, args...) }
func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	panic(fatalPanic{})
}

// TestBackendSelection: in a cluster-mode run SingleServerOnly skips with
// its reason and New refuses (a test must choose NewBackend or say why it
// stays on one server); in a one-server run neither happens.
func TestBackendSelection(t *testing.T) {
	t.Setenv(testenv.BackendVar, "cluster")
	if !testenv.ClusterMode() {
		t.Fatal("cluster mode not seen")
	}
	r := &recorder{TB: t}
	testenv.SingleServerOnly(r, "a reason")
	if !strings.Contains(r.skipped, "a reason") {
		t.Errorf("SingleServerOnly in cluster mode: skipped %q, want the reason", r.skipped)
	}
	func() {
		defer func() {
			if p := recover(); p != nil && p != (fatalPanic{}) {
				panic(p)
			}
		}()
		testenv.New(r)
	}()
	if !strings.Contains(r.fatal, "NewBackend") {
		t.Errorf("New in cluster mode: %q, want a failure naming NewBackend", r.fatal)
	}

	t.Setenv(testenv.BackendVar, "")
	r = &recorder{TB: t}
	testenv.SingleServerOnly(r, "a reason")
	if testenv.ClusterMode() || r.skipped != "" {
		t.Errorf("one-server run: cluster mode %v, skipped %q", testenv.ClusterMode(), r.skipped)
	}
}
