package main

import (
	"errors"
	"fmt"
)

// exitError carries the process exit status for an error. Exit codes:
// 1 = the command ran and the answer is "no" (unsatisfied scopes, sets
// differ); 2 = bad input (invalid scope, expression, file); anything else
// that fails (network, server) also exits 1 unless it says otherwise.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// badInput wraps an input problem: one line on stderr and exit status 2.
func badInput(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// errNo is returned when a command's answer is negative; the command has
// already printed what it found, so main prints nothing more.
var errNo = &exitError{code: 1, err: errors.New("")}

func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return 1
}
