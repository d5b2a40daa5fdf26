package cloud

import (
	"errors"
	"fmt"
	"strings"
)

// Error is a backend error whose Message may be shown to the caller: it
// names what is missing or refused and never holds a secret. Kind is one
// of the sentinel errors (errors.Is works on it).
type Error struct {
	Kind    error
	Message string
}

func (e *Error) Error() string { return e.Kind.Error() + ": " + e.Message }
func (e *Error) Unwrap() error { return e.Kind }

func newErr(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Message is the caller-facing text of err: an *Error's Message, else the
// text after a sentinel's prefix ("cloud: not found: X" → "X").
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	s := err.Error()
	for _, k := range []error{ErrNotConfigured, ErrNotFound, ErrInput, ErrUpstream, ErrRateLimited} {
		if rest, ok := strings.CutPrefix(s, k.Error()+": "); ok {
			return rest
		}
	}
	return s
}
