package sidecar

import (
	"strings"
	"testing"
)

// The sidecar's refusals (the body, and in forward-auth mode the
// X-Taskcluster-Error header) keep <, > and & of the scopes they quote as
// written, as the control plane's answers do.
func TestRefusalsNotHTMLEscaped(t *testing.T) {
	const want = `notes:write:a<b>&c`
	for _, tc := range []struct {
		name  string
		tweak []func(*Config)
	}{
		{"proxy", nil},
		{"forward-auth", []func(*Config){forwardAuthMode, trustLoopback}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.tweak...)
			var a answer
			if tc.name == "proxy" {
				a = h.do(call{method: "PUT", path: "/notes/a%3Cb%3E&c"})
			} else {
				req := h.request(call{method: "GET", path: "/auth"})
				req.Header.Set("X-Original-Method", "PUT")
				req.Header.Set("X-Original-URI", "/notes/a%3Cb%3E&c")
				a = h.send(req)
				hv := a.header.Get(HeaderError)
				if strings.Contains(hv, `\u00`) || !strings.Contains(hv, want) {
					t.Errorf("%s header %q, want %s and no \\u00 escapes", HeaderError, hv, want)
				}
			}
			if a.status < 400 || strings.Contains(string(a.body), `\u00`) || !strings.Contains(string(a.body), want) {
				t.Errorf("%d %s\nwant %s and no \\u00 escapes", a.status, a.body, want)
			}
		})
	}
}
