//go:build !unix

package main

import "errors"

var errNoStop = errors.New("stopping a process needs a Unix system (the flood measurement: --flood-stall 0 skips it)")

// stopProcess fails: there is no SIGSTOP here.
func stopProcess(int) error { return errNoStop }

// continueProcess fails: there is no SIGCONT here.
func continueProcess(int) error { return errNoStop }
