package sidecar

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tcauth/tcauth/protocol"
)

func TestWebSocketUpgradeThroughProxy(t *testing.T) {
	h := newHarness(t)
	h.cp.setClient("ws", "ws-secret", "notes:ws")
	ws := &protocol.Credentials{ClientID: "ws", AccessToken: "ws-secret"}
	conn, br, resp := h.rawUpgrade("/ws", ws)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := resp.Header.Get("X-Seen-Client"); got != "ws" {
		t.Errorf("upstream saw client %q on the upgrade", got)
	}
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("echo over the upgraded connection: %q %v", line, err)
	}
	// Without the scope the upgrade is refused before reaching upstream.
	_, _, resp = h.rawUpgrade("/ws", alice)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("upgrade without scope: %d", resp.StatusCode)
	}
}

func TestUpstreamFailures(t *testing.T) {
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr
	}()
	for _, tc := range []struct {
		name   string
		tweak  func(*Config)
		path   string
		status int
		code   string
	}{
		{"upstream down", func(c *Config) { c.Upstream = closed }, "/public", 502, CodeBadGateway},
		{"slow upstream", func(c *Config) { c.UpstreamTimeout = 100 * time.Millisecond }, "/slow", 504, CodeGatewayTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.tweak)
			start := time.Now()
			a := h.do(call{method: "GET", path: tc.path})
			if a.status != tc.status || a.err.Code != tc.code {
				t.Fatalf("%d %q, want %d %q: %s", a.status, a.err.Code, tc.status, tc.code, a.body)
			}
			if time.Since(start) > 1500*time.Millisecond {
				t.Errorf("took %v", time.Since(start))
			}
		})
	}
}

func TestForwardAuth(t *testing.T) {
	fwd := forwardAuthMode
	// The original request, as the proxy in front received it.
	const origURL = "https://notes.example.com/notes/a?x=1"
	signed := func(creds *protocol.Credentials, method, u string) string {
		auth, err := protocol.SignRequest(*creds, method, u, protocol.SignOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return auth
	}
	nginx := func(method, uri, auth string) http.Header {
		h := http.Header{"X-Original-Method": {method}, "X-Original-Uri": {uri},
			"X-Forwarded-Host": {"notes.example.com"}, "X-Forwarded-Proto": {"https"}}
		if auth != "" {
			h.Set("Authorization", auth)
		}
		return h
	}
	for _, tc := range []struct {
		name   string
		tweaks []func(*Config)
		header http.Header
		status int
		code   string
		client string
	}{
		{"allowed (nginx headers)", []func(*Config){fwd, trustLoopback}, nginx("GET", "/notes/a?x=1", signed(alice, "GET", origURL)), 200, "", "alice"},
		{"allowed (traefik headers)", []func(*Config){fwd, trustLoopback}, http.Header{
			"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/notes/a?x=1"}, "X-Forwarded-Host": {"notes.example.com"},
			"X-Forwarded-Proto": {"https"}, "X-Forwarded-Port": {"443"}, "Authorization": {signed(alice, "GET", origURL)}}, 200, "", "alice"},
		{"insufficient scopes", []func(*Config){fwd, trustLoopback}, nginx("DELETE", "/notes/a?x=1", signed(alice, "DELETE", origURL)), 403, "InsufficientScopes", ""},
		{"no credentials", []func(*Config){fwd, trustLoopback}, nginx("GET", "/notes/a", ""), 401, "AuthenticationFailed", ""},
		{"signed for another URI", []func(*Config){fwd, trustLoopback}, nginx("GET", "/notes/b?x=1", signed(alice, "GET", origURL)), 401, "AuthenticationFailed", ""},
		{"no route is 403 for nginx", []func(*Config){fwd, trustLoopback}, nginx("GET", "/elsewhere", signed(alice, "GET", "https://notes.example.com/elsewhere")), 403, "InsufficientScopes", ""},
		{"missing original URI", []func(*Config){fwd, trustLoopback}, http.Header{"X-Original-Method": {"GET"}}, 400, "InputError", ""},
		{"untrusted peer", []func(*Config){fwd, func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} }},
			nginx("GET", "/notes/a?x=1", signed(alice, "GET", origURL)), 403, CodeUntrustedProxy, ""},
		{"spoofed identity stripped", []func(*Config){fwd, trustLoopback}, func() http.Header {
			h := nginx("GET", "/public", "")
			h.Set("X-Taskcluster-Client-Id", "root")
			return h
		}(), 200, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.tweaks...)
			req, _ := http.NewRequest("GET", h.front.URL+"/auth", nil)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			a := h.send(req)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if tc.code != "" && a.err.Code != tc.code {
				t.Errorf("code %q, want %q", a.err.Code, tc.code)
			}
			if got := a.header.Get(HeaderClientID); got != tc.client {
				t.Errorf("client header %q, want %q", got, tc.client)
			}
			if tc.status == 200 && tc.client != "" && len(scopesHeader(t, a.header)) == 0 {
				t.Error("no scopes header")
			}
			// The error body also travels as one header line, for nginx
			// (auth_request cannot pass a sub-request's body on).
			eh := a.header.Get(HeaderError)
			if tc.status == 200 {
				if eh != "" {
					t.Errorf("%s on a 200: %q", HeaderError, eh)
				}
				return
			}
			var fromHeader protocol.ErrorBody
			if err := json.Unmarshal([]byte(eh), &fromHeader); err != nil || fromHeader.Code != a.err.Code || fromHeader.Message != a.err.Message {
				t.Errorf("%s = %q, want the body %+v as one line (%v)", HeaderError, eh, a.err, err)
			}
		})
	}
}

func TestErrorHeaderValueBounded(t *testing.T) {
	long := protocol.ErrorBody{Code: "InsufficientScopes", Message: strings.Repeat("é scope ", 2000),
		RequestInfo: protocol.RequestInfo{Method: "GET /x", Params: map[string]string{"a": strings.Repeat("p", 3000)}, Time: "t"}}
	v := errorHeaderValue(long)
	if len(v) > maxErrorHeader || strings.ContainsAny(v, "\r\n") {
		t.Fatalf("header value of %d bytes (max %d) or with a line break", len(v), maxErrorHeader)
	}
	var got protocol.ErrorBody
	if err := json.Unmarshal([]byte(v), &got); err != nil || got.Code != long.Code || !strings.HasSuffix(got.Message, "…") || !utf8.ValidString(got.Message) {
		t.Fatalf("shortened value %q: %v", v, err)
	}
	short := protocol.ErrorBody{Code: "AuthenticationFailed", Message: "line one\nline two"}
	if v := errorHeaderValue(short); strings.Contains(v, "\n\n") || !strings.Contains(v, `line one\nline two`) {
		t.Fatalf("short value %q", v)
	}
}

// forwardAuthMode switches a harness to forward-auth with the test routes
// minus the one reading the body (a sub-request has none).
func forwardAuthMode(c *Config) {
	c.Mode, c.Upstream = ModeForwardAuth, ""
	pol := *c.Routes
	pol.Routes = nil
	for _, r := range c.Routes.Routes {
		if len(r.Body) == 0 {
			pol.Routes = append(pol.Routes, r)
		}
	}
	c.Routes = &pol
}

func TestForwardAuthPayloadHashHandedOn(t *testing.T) {
	h := newHarness(t, forwardAuthMode, trustLoopback)
	const u = "http://notes.example.com/notes/x-1"
	auth, err := protocol.SignRequest(*alice, "PUT", u, protocol.SignOptions{ContentType: "text/plain", Payload: []byte("hi"), HasPayload: true})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", h.front.URL+"/auth", nil)
	req.Header.Set("X-Original-Method", "PUT")
	req.Header.Set("X-Original-URI", "/notes/x-1")
	req.Header.Set("X-Forwarded-Host", "notes.example.com")
	req.Header.Set("X-Forwarded-Port", "80")
	req.Header.Set("Authorization", auth)
	a := h.send(req)
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if got, want := a.header.Get(HeaderPayloadHash), protocol.PayloadHash("text/plain", []byte("hi")); got != want {
		t.Errorf("payload hash header %q, want %q", got, want)
	}
}

func TestForwardAuthRefusesBodyParams(t *testing.T) {
	pol, err := ParsePolicy("t.yaml", []byte(testRoutes))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Mode, cfg.ControlPlane, cfg.Routes = ModeForwardAuth, "http://127.0.0.1:1", pol
	cfg.Credentials = &protocol.Credentials{ClientID: "a", AccessToken: "b"}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "body parameters") {
		t.Fatalf("New: %v", err)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	pol, _ := ParsePolicy("t.yaml", []byte("routes: []\n"))
	base := func() Config {
		c := DefaultConfig()
		c.Upstream, c.ControlPlane, c.Routes = "http://127.0.0.1:9", "http://127.0.0.1:8", pol
		c.Credentials = &protocol.Credentials{ClientID: "a", AccessToken: "b"}
		return c
	}
	for _, tc := range []struct {
		name string
		f    func(*Config)
		want error
	}{
		{"no upstream", func(c *Config) { c.Upstream = "" }, ErrNoUpstream},
		{"no control plane", func(c *Config) { c.ControlPlane = "" }, ErrNoControlPlane},
		{"no credentials", func(c *Config) { c.Credentials = nil }, ErrNoCredentials},
		{"no routes", func(c *Config) { c.Routes = nil }, ErrNoRoutes},
		{"bad mode", func(c *Config) { c.Mode = "sideways" }, ErrBadMode},
		{"bad verify", func(c *Config) { c.Verify = "maybe" }, ErrBadVerifyMode},
		{"remote needs no credentials", func(c *Config) { c.Verify = VerifyRemote; c.Credentials = nil }, nil},
		{"tokens over clear text", func(c *Config) { c.ControlPlane = "http://cp.example.com" }, ErrInsecureControlPlane},
		{"https control plane", func(c *Config) { c.ControlPlane = "https://cp.example.com" }, nil},
		{"clear text allowed on request", func(c *Config) { c.ControlPlane = "http://cp.example.com"; c.AllowInsecureControlPlane = true }, nil},
		{"remote over http", func(c *Config) { c.ControlPlane = "http://cp.example.com"; c.Verify = VerifyRemote }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.f(&c)
			_, err := New(c)
			if tc.want == nil && err != nil || tc.want != nil && !errorsIs(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestReloadKeepsOldPolicyOnError(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "routes.yaml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("routes:\n  - method: GET\n    path: /public\n    public: true\n")
	h := newHarness(t, func(c *Config) { c.Routes = nil; c.RoutesFile = file })
	if s := h.do(call{method: "GET", path: "/public"}).status; s != 200 {
		t.Fatal(s)
	}
	write("routes:\n  - method: GET\n    path: /public\n    scopes: [unclosed\n")
	err := h.sc.Reload()
	var re *RouteError
	if err == nil || !errorsAs(err, &re) {
		t.Fatalf("Reload of a bad file: %v", err)
	}
	if s := h.do(call{method: "GET", path: "/public"}).status; s != 200 {
		t.Fatalf("old policy lost: %d", s)
	}
	os.Remove(file)
	if err := h.sc.Reload(); err == nil || !errorsAs(err, &re) {
		t.Fatalf("Reload of a missing file: %v", err)
	}
	write("routes:\n  - method: GET\n    path: /public\n    scopes: notes:public\n")
	if err := h.sc.Reload(); err != nil {
		t.Fatal(err)
	}
	if s := h.do(call{method: "GET", path: "/public"}).status; s != 401 {
		t.Fatalf("new policy not applied: %d", s)
	}
}

// TestReloadConcurrentWithRequests swaps policies while requests run (the
// race detector checks the atomic swap).
func TestReloadConcurrentWithRequests(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "routes.yaml")
	if err := os.WriteFile(file, []byte(testRoutes), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *Config) { c.Routes = nil; c.RoutesFile = file })
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				if err := h.sc.Reload(); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	for i := 0; i < 30; i++ {
		if a := h.do(call{method: "GET", path: "/notes/a", creds: alice}); a.status != 200 {
			t.Errorf("during reload: %d", a.status)
		}
	}
	close(stop)
	<-done
}

func TestStreamingResponse(t *testing.T) {
	// A response body of unknown length arrives in pieces, not at the end.
	up := make(chan string)
	stream := newStreamingUpstream(t, up)
	h := newHarness(t, func(c *Config) { c.Upstream = stream })
	resp, err := http.Get(h.front.URL + "/public")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 5)
	up <- "first"
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first" {
		t.Fatalf("first chunk %q %v", buf, err)
	}
	up <- "again"
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "again" {
		t.Fatalf("second chunk %q %v", buf, err)
	}
	close(up)
}
