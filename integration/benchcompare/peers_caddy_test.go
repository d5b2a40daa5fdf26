package benchcompare

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
)

// TestCaddyForwardAuthExample runs examples/caddy/Caddyfile.template with
// Debian's Caddy and the forward-auth sidecar: the service sees only the
// identity headers the sidecar attached, whatever a caller forges, and a
// caller cannot choose what is authorised (X-Original-*) or the port the
// Hawk MAC is checked for (X-Forwarded-Port).
func TestCaddyForwardAuthExample(t *testing.T) {
	needPeerBinary(t, caddyBin, "make deps-bench installs Debian's caddy", true)
	c := harness.StartCluster(t, harness.ClusterConfig{Size: 1})
	rec := &harness.HeaderRecorder{Body: []byte(upstreamBody)}
	svc := httptest.NewServer(rec)
	t.Cleanup(svc.Close)
	routes := benchRoutes + "  - {method: GET, path: /echo, authenticated: true}\n"
	fwd := c.StartSidecar(t, "caddy-forward-auth", "", routes, "--mode", "forward-auth", "--trusted-proxy", "127.0.0.1/32")
	_, base := startCaddy(t, c, fwd.URL, svc.URL, "/healthz", true)
	user := c.CreateClient(t, 0, "it/caddy-caller", "bench:read")

	cases := []struct {
		name       string
		creds      *protocol.Credentials
		path       string
		signedFor  string            // the URL signed; "" = base+path
		hdr        map[string]string // sent as written
		wantStatus int
		want       map[string]string // the service's taskcluster-ish headers
	}{
		{name: "anonymous, public route", path: "/healthz", hdr: harness.ForgedIdentityHeaders(), wantStatus: 200,
			want: map[string]string{"x-taskcluster-auth-scheme": "none", "x-taskcluster-route": "GET /healthz"}},
		{name: "signed", creds: &user, path: "/echo", hdr: harness.ForgedIdentityHeaders(), wantStatus: 200,
			want: map[string]string{"x-taskcluster-auth-scheme": "hawk", "x-taskcluster-client-id": user.ClientID,
				"x-taskcluster-route": "GET /echo", "x-taskcluster-expires": ""}},
		{name: "X-Original-URI naming a public route", path: "/echo", wantStatus: 401,
			hdr: map[string]string{"X-Original-URI": "/healthz", "X-Original-Method": "GET"}},
		{name: "X-Forwarded-Uri naming a public route", path: "/echo", wantStatus: 401,
			hdr: map[string]string{"X-Forwarded-Uri": "/healthz"}},
		{name: "X-Forwarded-Port picking the signed port", creds: &user, path: "/echo", wantStatus: 401,
			signedFor: "http://" + strings.Split(hostPort(base), ":")[0] + ":9" + "/echo", hdr: map[string]string{"X-Forwarded-Port": "9"}},
		{name: "X-Forwarded-Host picking the signed host", creds: &user, path: "/echo", wantStatus: 401,
			signedFor: "http://elsewhere.example:" + strings.Split(hostPort(base), ":")[1] + "/echo",
			hdr:       map[string]string{"X-Forwarded-Host": "elsewhere.example:" + strings.Split(hostPort(base), ":")[1]}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", base+tc.path, nil)
			if tc.creds != nil {
				signed := tc.signedFor
				if signed == "" {
					signed = base + tc.path
				}
				auth, err := protocol.SignRequest(*tc.creds, "GET", signed, protocol.SignOptions{})
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", auth)
			}
			for k, v := range tc.hdr {
				req.Header[k] = append(req.Header[k], v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			seen := rec.Take()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.wantStatus != 200 {
				if seen != nil {
					t.Fatal("a refused request reached the service")
				}
				return
			}
			got := harness.IdentityHeaders(seen)
			for k, v := range got {
				if strings.Contains(v, "forged") {
					t.Errorf("a forged header reached the service as %s: %q", k, v)
				}
			}
			for k, v := range tc.want {
				if v == "" && got[k] != "" { // present, value not checked
					v = got[k]
				}
				if got[k] != v {
					t.Errorf("%s: %q, want %q", k, got[k], v)
				}
				delete(got, k)
			}
			delete(got, "x-taskcluster-scopes") // the caller's real scopes
			if len(got) > 0 {
				var names []string
				for k, v := range got {
					names = append(names, k+": "+v)
				}
				sort.Strings(names)
				t.Errorf("the service saw headers the sidecar did not attach: %s", strings.Join(names, "; "))
			}
		})
	}
}
