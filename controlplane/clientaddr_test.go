package controlplane

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

// TestClientAddr: the login service's source is the peer, or the last
// X-Forwarded-For entry when (and only when) the peer is a trusted proxy.
func TestClientAddr(t *testing.T) {
	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	for _, tc := range []struct {
		remote string
		xff    []string
		want   string
	}{
		{"192.0.2.1:5", nil, "192.0.2.1"},
		{"192.0.2.1:5", []string{"198.51.100.1"}, "192.0.2.1"}, // untrusted peer: XFF ignored
		{"10.1.2.3:5", []string{"198.51.100.1"}, "198.51.100.1"},
		{"10.1.2.3:5", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1"}, // the caller wrote 6.6.6.6
		{"10.1.2.3:5", []string{"6.6.6.6", "198.51.100.2"}, "198.51.100.2"},
		{"10.1.2.3:5", []string{" "}, "10.1.2.3"},
		{"10.1.2.3:5", nil, "10.1.2.3"},
	} {
		r := httptest.NewRequest("GET", "/login/credentials", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := s.clientAddr(r); got != tc.want {
			t.Errorf("%s %q: %q, want %q", tc.remote, tc.xff, got, tc.want)
		}
	}
}
