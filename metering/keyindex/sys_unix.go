//go:build unix

package keyindex

import (
	"errors"
	"os"
	"syscall"
)

// mapAnon maps n bytes of zeroed anonymous memory outside the Go heap (the
// collector never scans it).
func mapAnon(n int) ([]byte, error) {
	return syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
}

// unmap gives back memory from mapAnon.
func unmap(b []byte) { _ = syscall.Munmap(b) }

// lockFile takes an exclusive lock on f without waiting: ErrLocked when
// another process (or another Open in this one) holds it.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrLocked
	}
	return err
}
