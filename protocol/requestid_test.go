package protocol

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestRequestID(t *testing.T) {
	fresh := regexp.MustCompile(`^[0-9a-f]{16}$`)
	for _, tc := range []struct {
		sent string
		keep bool
	}{
		{"trace-1", true},
		{"a.b_c:d-E9", true},
		{strings.Repeat("x", 128), true},
		{"", false},
		{strings.Repeat("x", 129), false},
		{"two words", false},
		{"forged\nline", false},
		{"é", false},
	} {
		h := http.Header{}
		if tc.sent != "" {
			h.Set(RequestIDHeader, tc.sent)
		}
		got := RequestID(h)
		if tc.keep && got != tc.sent || !tc.keep && !fresh.MatchString(got) {
			t.Errorf("RequestID(%q) = %q (keep %v)", tc.sent, got, tc.keep)
		}
	}
	if a, b := RequestID(http.Header{}), RequestID(http.Header{}); a == b {
		t.Errorf("two new ids are the same: %s", a)
	}
}
