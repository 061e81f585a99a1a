//go:build !linux

package testenv

import "os"

// baseDir returns where the servers' directory goes. (The managed servers
// run on Linux only; this keeps the package building elsewhere.)
func baseDir() string { return os.TempDir() }

// processGone reports whether no process has id pid; unknown here, so no.
func processGone(int) bool { return false }
