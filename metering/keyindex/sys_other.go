//go:build !unix

package keyindex

import (
	"errors"
	"os"
)

// mapAnon allocates n zeroed bytes on the Go heap (no anonymous mappings
// here); Go's large allocations are 8-byte aligned, as the filter needs.
func mapAnon(n int) ([]byte, error) { return make([]byte, n), nil }

// unmap leaves the memory to the collector.
func unmap([]byte) {}

// lockFile fails: the key index's one-owner lock is implemented for Unix
// systems only (postage's managed servers are Linux-only too).
func lockFile(*os.File) error {
	return errors.New("the key index's directory lock needs a Unix system")
}
