package keyindex

import "syscall"

// zeroMapped zeroes memory from mapAnon by giving its pages back to the
// system (they come back zeroed when touched); false if it could not.
func zeroMapped(b []byte) bool { return syscall.Madvise(b, syscall.MADV_DONTNEED) == nil }
