package sidecar

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// testRoutes is the route policy the unit tests run under.
const testRoutes = `
default: deny
routes:
  - method: GET
    path: /public
    public: true
  - method: GET
    path: /notes/<name>
    scopes: {AnyOf: ["notes:read:<name>", "notes:write:<name>"]}
  - method: [PUT, POST]
    path: /notes/<name>
    scopes: notes:write:<name>
  - method: DELETE
    path: /notes/<name>
    scopes: {AllOf: ["notes:write:<name>", "notes:delete"]}
  - method: POST
    path: /share/<name>
    query: [to]
    body: [team]
    scopes: notes:share:<name>:<to>:<team>
  - method: "*"
    path: /whoami
    authenticated: true
  - method: GET
    path: /slow
    public: true
  - method: GET
    path: /ws
    upgrade: websocket
    scopes: notes:ws
  - method: GET
    path: /files/<path*>
    scopes: files:read:<path>
`

// echoed is what the test upstream saw.
type echoed struct {
	Method string      `json:"method"`
	URI    string      `json:"uri"`
	Host   string      `json:"host"`
	Header http.Header `json:"header"`
	Body   string      `json:"body"`
}

// echoUpstream answers with what it received; /slow sleeps; /ws speaks a
// minimal upgraded protocol that echoes bytes.
func echoUpstream(t testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
				return
			}
		case "/ws":
			if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
				http.Error(w, "upgrade required", http.StatusUpgradeRequired)
				return
			}
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Seen-Client: " +
				r.Header.Get(HeaderClientID) + "\r\n\r\n")
			_ = buf.Flush()
			_, _ = io.Copy(conn, buf)
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echoed{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header, Body: string(body)})
	}))
	t.Cleanup(srv.Close)
	return srv
}

type harness struct {
	t     testing.TB
	cp    *fakeControlPlane
	up    *httptest.Server
	sc    *Sidecar
	front *httptest.Server
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newHarness starts the fake control plane (with the test clients and
// roles), an echo upstream, and a sidecar in front of it, and waits until
// the sidecar is synchronised.
func newHarness(t testing.TB, tweak ...func(*Config)) *harness {
	h := &harness{t: t, cp: newFakeControlPlane(t), up: echoUpstream(t)}
	h.cp.clients["alice"] = &fakeClient{token: "alice-secret", scopes: []string{"notes:read:*", "assume:project:x"}}
	h.cp.clients["bob"] = &fakeClient{token: "bob-secret", scopes: []string{"notes:delete", "notes:write:b", "notes:share:*"}}
	h.cp.clients["issuer"] = &fakeClient{token: "issuer-secret", scopes: []string{"notes:*", "auth:create-client:temp/*"}}
	h.cp.roles["project:x"] = []string{"notes:write:x-*"}
	h.cp.roles["anonymous"] = []string{"notes:read:open"}
	pol, err := ParsePolicy("test.yaml", []byte(testRoutes))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Upstream = h.up.URL
	cfg.ControlPlane = h.cp.srv.URL
	cfg.Credentials = &protocol.Credentials{ClientID: sidecarID, AccessToken: sidecarToken}
	cfg.Routes = pol
	cfg.Logger = quietLogger()
	cfg.FeedWait = 5 * time.Second
	for _, f := range tweak {
		f(&cfg)
	}
	h.sc, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.sc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	h.front = httptest.NewServer(h.sc)
	t.Cleanup(h.front.Close)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ok, _ := h.sc.Ready(); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sidecar did not become ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return h
}

func remoteMode(c *Config) { c.Verify = VerifyRemote; c.Credentials = nil }
func trustLoopback(c *Config) {
	c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
}

var (
	alice  = &protocol.Credentials{ClientID: "alice", AccessToken: "alice-secret"}
	bob    = &protocol.Credentials{ClientID: "bob", AccessToken: "bob-secret"}
	issuer = protocol.Credentials{ClientID: "issuer", AccessToken: "issuer-secret"}
)

// call is one request through the sidecar.
type call struct {
	method, path string
	creds        *protocol.Credentials
	body         string
	contentType  string
	hash         bool // sign a payload hash over body
	header       http.Header
}

type answer struct {
	status int
	header http.Header
	body   []byte
	echo   echoed // what the upstream saw (200 from the echo upstream)
	err    protocol.ErrorBody
}

func (h *harness) request(c call) *http.Request {
	h.t.Helper()
	url := h.front.URL + c.path
	var body io.Reader = http.NoBody
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, url, body)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	if c.creds != nil {
		auth, err := protocol.SignRequest(*c.creds, c.method, url, protocol.SignOptions{
			ContentType: c.contentType, Payload: []byte(c.body), HasPayload: c.hash})
		if err != nil {
			h.t.Fatal(err)
		}
		req.Header.Set("Authorization", auth)
	}
	return req
}

func (h *harness) do(c call) answer {
	h.t.Helper()
	return h.send(h.request(c))
}

func (h *harness) send(req *http.Request) answer {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, body: data}
	if resp.StatusCode == 200 {
		_ = json.Unmarshal(data, &a.echo)
	} else {
		_ = json.Unmarshal(data, &a.err)
	}
	return a
}

func scopesHeader(t testing.TB, h http.Header) []string {
	t.Helper()
	var s []string
	if v := h.Get(HeaderScopes); v != "" {
		if err := json.Unmarshal([]byte(v), &s); err != nil {
			t.Fatalf("X-Taskcluster-Scopes %q is not a JSON array: %v", v, err)
		}
	}
	return s
}

// rawUpgrade sends a signed upgrade request over a raw connection and
// returns the connection after the 101.
func (h *harness) rawUpgrade(path string, creds *protocol.Credentials) (net.Conn, *bufio.Reader, *http.Response) {
	h.t.Helper()
	req := h.request(call{method: "GET", path: path, creds: creds})
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.front.URL, "http://"))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { conn.Close() })
	var buf bytes.Buffer
	if err := req.Write(&buf); err != nil {
		h.t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		h.t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		h.t.Fatal(err)
	}
	return conn, br, resp
}
