//go:build !linux

package testenv

import "os"

// baseDir returns where the servers' directory goes. (The managed servers
// run on Linux only; this keeps the package building elsewhere.)
func baseDir() string { return os.TempDir() }

// processGone reports whether no process has id pid; unknown here, so no.
func processGone(int) bool { return false }

// kill, freeze and thaw signal a managed server's process; the managed
// servers run on Linux only, so here there is nothing to signal.
func kill(int, bool)   {}
func freeze(int, bool) {}
func thaw(int, bool)   {}
