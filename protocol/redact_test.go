package protocol

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestRedactURI(t *testing.T) {
	long := strings.Repeat("a", 300)
	for _, tc := range []struct{ in, want string }{
		{"/p", "/p"},
		{"/p?", "/p"},
		{"/p?x=1", "/p?x=1"},
		{"/p?bewit=abc", "/p"},
		{"/p?x=1&bewit=abc&y=2", "/p?x=1&y=2"},
		{"/p?BEWIT=abc", "/p"},
		{"/p?b%65wit=abc", "/p"},     // an escaped name
		{"/p?bewit", "/p"},           // no value
		{"/p?bewit=a&bewit=b", "/p"}, // repeated
		{"/p?bewitx=1", "/p?bewitx=1"},
		{"/p?x=bewit", "/p?x=bewit"},
		{"/p?q=" + long, "/p?q=" + long[:254] + "…"},
	} {
		if got := RedactURI(tc.in); got != tc.want {
			t.Errorf("RedactURI(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzRedactURI: whatever the input, no query parameter that a server
// would read as "bewit" survives, and the path is kept.
func FuzzRedactURI(f *testing.F) {
	for _, s := range []string{"/p?bewit=x", "/p?a=1&b%65wit=2", "/p?%62ewit=1&%", "/p"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := RedactURI(in)
		path, _, _ := strings.Cut(in, "?")
		if !strings.HasPrefix(out, path) {
			t.Fatalf("path changed: %q -> %q", in, out)
		}
		_, q, ok := strings.Cut(out, "?")
		if !ok {
			return
		}
		q = strings.TrimSuffix(q, "…")
		for _, p := range strings.Split(q, "&") {
			name, _, _ := strings.Cut(p, "=")
			if n, err := url.QueryUnescape(name); err == nil && strings.EqualFold(n, "bewit") {
				t.Fatalf("bewit kept: %q -> %q", in, out)
			}
		}
	})
}

func TestFailureReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{ErrBadMAC, ReasonBadMAC},
		{ErrStaleTimestamp, ReasonStaleTimestamp},
		{ErrInvalidCredentials, ReasonUnknownClient},
		{&AuthError{"Client with clientId 'x' not found"}, ReasonUnknownClient},
		{&AuthError{"Client with clientId 'x' is disabled"}, ReasonDisabledClient},
		{&AuthError{"Client with clientId: 'x' has expired"}, ReasonExpiredClient},
		{&AuthError{"ext.certificate.expiry < now"}, ReasonCertificate},
		{&AuthError{"ext.authorizedScopes must be an array"}, ReasonAuthorizedScopes},
		{&AuthError{"Supplied credentials do not satisfy authorizedScopes; ..."}, ReasonAuthorizedScopes},
		{ErrAccessExpired, ReasonBewitExpired},
		{ErrInvalidBewitEncode, ReasonBewit},
		{ErrMissingAttributes, ReasonBadHeader},
		{ErrFailedToParseExt, ReasonBadExt},
		{&lookupError{errors.New("down")}, ReasonLookupFailed},
		{&AuthError{"Internal error: client lookup failed"}, ReasonLookupFailed}, // as a remote answer has it
		{errors.New("something new"), ReasonOther},
	} {
		if got := FailureReason(tc.err); got != tc.want {
			t.Errorf("FailureReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
