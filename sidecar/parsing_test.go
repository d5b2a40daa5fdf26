package sidecar

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// These tests cover the ways the sidecar and the upstream could read one
// request differently: path encoding, JSON body members, trailers,
// upgrades, slow bodies and the host a Hawk header was signed for.

func TestSplitPathRefuses(t *testing.T) {
	for _, tc := range []struct {
		path string
		want error // nil: accepted
	}{
		{"/notes/a", nil},
		{"/notes/", nil},
		{"/notes/a%2Fb", nil}, // route-dependent: checkPath decides
		{"/notes/100%25", nil},
		{"/notes/..", errDotSegment},
		{"/notes/.", errDotSegment},
		{"/notes/%2e%2E", errDotSegment},
		{"/notes/..;/x", errDotSegment},
		{"/notes/.;jsessionid=1", errDotSegment},
		{"/notes//a", errEmptySegment},
		{"//notes/a", errEmptySegment},
		{"/notes/a\\b", errBackslash},
		{"/notes/a%5Cb", errBackslash},
		{"/notes/a%5cb", errBackslash},
		{"/notes/a%00b", errControlChar},
		{"/notes/a%0Ab", errControlChar},
		{"/notes/a%7Fb", errControlChar},
		{"/notes/a%252Fb", errDoubleEncoded},
		{"/notes/a%252fb", errDoubleEncoded},
		{"/notes/%252e%252e", errDoubleEncoded},
		{"/notes/a%255Cb", errDoubleEncoded},
		{"/notes/a%2500", errDoubleEncoded},
	} {
		t.Run(tc.path, func(t *testing.T) {
			_, err := splitPath(tc.path)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("splitPath(%q) = %v, want %v", tc.path, err, tc.want)
			}
		})
	}
}

const encodedSlashRoutes = `
routes:
  - method: GET
    path: /fs/<path*>
    scopes: files:read:<path>
  - method: GET
    path: /clients/<clientId>
    allowEncodedSlash: true
    scopes: clients:get:<clientId>
  - method: GET
    path: /blobs/<path*>
    allowEncodedSlash: true
    scopes: blobs:read:<path>
`

func TestRouteCheckPath(t *testing.T) {
	pol, err := ParsePolicy("t.yaml", []byte(encodedSlashRoutes))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want error
	}{
		{"/fs/public/ok.txt", nil},
		{"/fs/public/..%2Fsecret.txt", errEncodedSlash},
		{"/fs/public%2F..%2Fsecret.txt", errEncodedSlash},
		{"/fs/a%2fb", errEncodedSlash},
		{"/clients/static%2Ftaskcluster%2Froot", nil},
		{"/clients/a%2F..%2Fb", errDotSegment},
		{"/clients/..%2Fb", errDotSegment},
		{"/clients/a%2F.", errDotSegment},
		{"/clients/a%2F%2Fb", errEmptySegment},
		{"/clients/%2Fb", errEmptySegment},
		{"/blobs/x/a%2F..%2F..%2Fsecret", errDotSegment},
		{"/blobs/x/a%2Fb", nil},
	} {
		t.Run(tc.path, func(t *testing.T) {
			segs, err := splitPath(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			r, params, ok := pol.Match("GET", segs)
			if !ok {
				t.Fatal("no route")
			}
			err = r.checkPath(segs, params)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("checkPath = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParsePolicyParsingOptions(t *testing.T) {
	pol, err := ParsePolicy("t.yaml", []byte("routes:\n  - method: GET\n    path: /ws\n    upgrade: WebSocket\n    allowEncodedSlash: true\n    public: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := pol.Routes[0]; r.Upgrade != "websocket" || !r.AllowEncodedSlash {
		t.Fatalf("upgrade %q allowEncodedSlash %v", r.Upgrade, r.AllowEncodedSlash)
	}
	for _, bad := range []string{"upgrade: h2c", "upgrade: [websocket]", "allowEncodedSlash: maybe"} {
		_, err := ParsePolicy("t.yaml", []byte("routes:\n  - method: GET\n    path: /ws\n    public: true\n    "+bad+"\n"))
		if !errors.Is(err, ErrInvalidRoutes) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// fileServerHarness puts a stock http.FileServer (a directory with
// public/ok.txt and secret.txt, under /fs) behind the sidecar.
func fileServerHarness(t *testing.T, routes string) *harness {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "public"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"public/ok.txt": "public file\n", "secret.txt": "SECRET\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	up := httptest.NewServer(http.StripPrefix("/fs", http.FileServer(http.Dir(dir))))
	t.Cleanup(up.Close)
	h := newHarness(t, func(c *Config) {
		c.Upstream = up.URL
		pol, err := ParsePolicy("fs.yaml", []byte(routes))
		if err != nil {
			t.Fatal(err)
		}
		c.Routes = pol
	})
	h.cp.setClient("reader", "reader-secret", "files:read:public/*")
	return h
}

// rawRequest writes a request line byte for byte (Go's client would
// re-encode some of these paths) and returns the answer.
func rawRequest(t *testing.T, addr, method, target string, header http.Header, body string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, addr)
	_ = header.Write(&b)
	if body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n" + body)
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, data
}

func TestTraversalThroughFileServer(t *testing.T) {
	h := fileServerHarness(t, encodedSlashRoutes)
	reader := &protocol.Credentials{ClientID: "reader", AccessToken: "reader-secret"}
	if a := h.do(call{method: "GET", path: "/fs/public/ok.txt", creds: reader}); a.status != 200 || string(a.body) != "public file\n" {
		t.Fatalf("the public file: %d %s", a.status, a.body)
	}
	for _, p := range []string{
		"/fs/public/..%2Fsecret.txt",
		"/fs/public/..%2fsecret.txt",
		"/fs/public/%2e%2e%2Fsecret.txt",
		"/fs/public/%2e%2e/secret.txt",
		"/fs/public/../secret.txt",
		"/fs/public/..%5Csecret.txt",
		"/fs/public/%252e%252e%252fsecret.txt",
		"/fs/public/..%252Fsecret.txt",
		"/fs/public//../secret.txt",
		"/fs/public/..;/secret.txt",
		"/fs/public/ok.txt%00",
	} {
		t.Run(p, func(t *testing.T) {
			a := h.do(call{method: "GET", path: p, creds: reader})
			if strings.Contains(string(a.body), "SECRET") {
				t.Fatalf("secret.txt was served for %s", p)
			}
			if a.status != 400 || a.err.Code != protocol.CodeInputError {
				t.Fatalf("%d %q, want 400 InputError: %s", a.status, a.err.Code, a.body)
			}
		})
	}
	// Sent byte for byte: a raw backslash, and a path Go would forward
	// re-encoded.
	addr := strings.TrimPrefix(h.front.URL, "http://")
	for _, target := range []string{`/fs/public/..\secret.txt`, `/clients/a%2Fb"c`} {
		resp, body := rawRequest(t, addr, "GET", target, http.Header{}, "")
		if resp.StatusCode != 400 || strings.Contains(string(body), "SECRET") {
			t.Errorf("%s: %d %s", target, resp.StatusCode, body)
		}
	}
}

func TestBodyParamsRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       error // nil: accepted
		team       any   // accepted: the value of "team"
	}{
		{"plain", `{"team":"red"}`, nil, "red"},
		{"other members", `{"team":"red","note":{"a":[1,{"b":2}]}}`, nil, "red"},
		{"empty", ``, nil, nil},
		{"exact duplicate", `{"team":"red","team":"blue"}`, errBodyDuplicate, nil},
		{"case duplicate", `{"team":"red","Team":"blue"}`, errBodyDuplicate, nil},
		{"upper duplicate", `{"team":"red","TEAM":"blue"}`, errBodyDuplicate, nil},
		{"escaped duplicate", `{"team":"red","\u0054eam":"blue"}`, errBodyDuplicate, nil},
		{"kelvin sign", `{"k":"red","\u212a":"blue"}`, errBodyDuplicate, nil},
		{"long s", `{"tags":"red","tagſ":"blue"}`, errBodyDuplicate, nil},
		{"nested duplicate", `{"team":"red","x":{"a":1,"A":2}}`, errBodyDuplicate, nil},
		{"duplicate in array", `{"team":"red","x":[{"a":1,"a":2}]}`, errBodyDuplicate, nil},
		{"other spelling only", `{"Team":"blue"}`, errBodyNameCase, nil},
		{"kelvin spelling of a parameter", `{"\u212aind":"x"}`, errBodyNameCase, nil},
		{"invalid utf-8 value", "{\"team\":\"r\xffd\"}", errBodyNotUTF8, nil},
		{"invalid utf-8 name", "{\"te\xc3am\":\"red\"}", errBodyNotUTF8, nil},
		{"lone surrogates", `{"\ud800":1,"\udc00":2}`, errBodyDuplicate, nil},
		{"array", `[{"team":"red"}]`, errBodyNotObject, nil},
		{"string", `"team"`, errBodyNotObject, nil},
		{"null", `null`, errBodyNotObject, nil},
		{"number", `1`, errBodyNotObject, nil},
		{"two objects", `{"team":"red"} {"team":"blue"}`, errBodyTrailing, nil},
		{"trailing garbage", `{"team":"red"}x`, errBodyTrailing, nil},
		{"truncated", `{"team":"red"`, errBodyNotObject, nil},
		{"deep", `{"x":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`, errBodyTooDeep, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			into := map[string]any{}
			err := bodyParams([]byte(tc.body), []string{"team", "kind"}, into)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("bodyParams = %v, want %v", err, tc.want)
			}
			if tc.want == nil && into["team"] != tc.team {
				t.Fatalf("team = %v, want %v", into["team"], tc.team)
			}
		})
	}
}

// FuzzBodyParams checks that whatever body bodyParams accepts, Go's
// encoding/json (case-insensitive struct fields, last duplicate wins) and
// an exact-name map decoder read the same "team" the sidecar authorised.
func FuzzBodyParams(f *testing.F) {
	for _, s := range []string{`{"team":"red"}`, `{"team":"red","Team":"blue"}`, `{"TEAM":1}`, `{"\u212a":1,"k":2}`,
		`{"team":["a","b"],"x":{"y":null}}`, `[]`, `null`, "{\"team\":\"\xff\"}", `{"team":"a"} 1`} {
		f.Add([]byte(s))
	}
	type teamStruct struct {
		Team any `json:"team"`
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		into := map[string]any{}
		if err := bodyParams(body, []string{"team"}, into); err != nil {
			return
		}
		if len(bytes.TrimSpace(body)) == 0 {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var st teamStruct
		if err := dec.Decode(&st); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", body, err)
		}
		var m map[string]any
		dec = json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("accepted %q, which is no object: %v", body, err)
		}
		if !reflect.DeepEqual(st.Team, into["team"]) || !reflect.DeepEqual(m["team"], into["team"]) {
			t.Fatalf("%q: sidecar read %#v, struct decoder %#v, map decoder %#v", body, into["team"], st.Team, m["team"])
		}
	})
}

func TestBodyAndQueryParamsEndToEnd(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name, path, body, ct string
		status               int
	}{
		{"ok", "/share/b?to=carol", `{"team":"red"}`, "application/json", 200},
		{"vendor json", "/share/b?to=carol", `{"team":"red"}`, "application/vnd.x+json; charset=utf-8", 200},
		{"duplicate key", "/share/b?to=carol", `{"team":"red","Team":"blue"}`, "application/json", 400},
		{"duplicate query", "/share/b?to=carol&to=mallory", `{"team":"red"}`, "application/json", 400},
		{"form content type", "/share/b?to=carol", `{"team":"red"}`, "application/x-www-form-urlencoded", 400},
		{"text content type", "/share/b?to=carol", `{"team":"red"}`, "text/plain", 400},
		{"top-level array", "/share/b?to=carol", `[{"team":"red"}]`, "application/json", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := h.do(call{method: "POST", path: tc.path, creds: bob, body: tc.body, contentType: tc.ct})
			if a.status != tc.status {
				t.Fatalf("%d, want %d: %s", a.status, tc.status, a.body)
			}
			if tc.status == 400 && a.err.Code != protocol.CodeInputError {
				t.Fatalf("code %q", a.err.Code)
			}
		})
	}
}

// trailerUpstream answers with the trailers it received after the body.
func trailerUpstream(t *testing.T) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_ = json.NewEncoder(w).Encode(map[string]any{"body": string(body), "trailer": r.Trailer, "clientId": r.Header.Get(HeaderClientID)})
	}))
	t.Cleanup(up.Close)
	return up
}

func TestTrailersNeverForwarded(t *testing.T) {
	up := trailerUpstream(t)
	h := newHarness(t, func(c *Config) { c.Upstream = up.URL })
	for _, tc := range []struct {
		name string
		c    call
	}{
		{"streamed, public route", call{method: "GET", path: "/public", body: "x"}},
		{"streamed, signed without hash", call{method: "PUT", path: "/notes/b", creds: bob, body: "note"}},
		{"buffered for the payload hash", call{method: "PUT", path: "/notes/b", creds: bob, body: "note", hash: true}},
		{"buffered for body parameters", call{method: "POST", path: "/share/b?to=carol", creds: bob, body: `{"team":"red"}`, contentType: "application/json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := h.request(tc.c)
			// Chunked, with trailers after the body.
			req.Body = io.NopCloser(io.MultiReader(strings.NewReader(tc.c.body)))
			req.ContentLength = -1
			req.Trailer = http.Header{HeaderClientID: {"static/taskcluster/root"}, "X-Taskcluster-Scopes": {`["*"]`}, "X-Other": {"1"}}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got struct {
				Body     string      `json:"body"`
				Trailer  http.Header `json:"trailer"`
				ClientID string      `json:"clientId"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
				t.Fatalf("%d %v", resp.StatusCode, err)
			}
			if got.Body != tc.c.body {
				t.Errorf("upstream got body %q", got.Body)
			}
			if len(got.Trailer) > 0 {
				t.Errorf("trailers reached the upstream: %v", got.Trailer)
			}
			if got.ClientID == "static/taskcluster/root" {
				t.Error("a trailer became the identity")
			}
		})
	}
}

// upgradeUpstream switches protocols whenever it is asked to (any
// Upgrade), as an h2c-capable server would, and then echoes raw bytes.
func upgradeUpstream(t *testing.T) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto := r.Header.Get("Upgrade")
		if proto == "" {
			w.Header().Set("X-Saw-Http2-Settings", r.Header.Get("HTTP2-Settings"))
			_, _ = io.WriteString(w, "no upgrade")
			return
		}
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + proto + "\r\n\r\n")
		_ = buf.Flush()
		_, _ = io.Copy(conn, buf)
	}))
	t.Cleanup(up.Close)
	return up
}

func TestUpgradesOnlyWhereDeclared(t *testing.T) {
	up := upgradeUpstream(t)
	h := newHarness(t, func(c *Config) { c.Upstream = up.URL })
	h.cp.setClient("ws", "ws-secret", "notes:ws", "notes:read:*")
	ws := &protocol.Credentials{ClientID: "ws", AccessToken: "ws-secret"}
	for _, tc := range []struct {
		name, path, proto string
		creds             *protocol.Credentials
		want              int
	}{
		{"h2c on a public route", "/public", "h2c", nil, 200},
		{"websocket on a public route", "/public", "websocket", nil, 200},
		{"websocket on an undeclared route", "/notes/x", "websocket", ws, 200},
		{"h2c on the websocket route", "/ws", "h2c", ws, 200},
		{"websocket on the websocket route", "/ws", "websocket", ws, 101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := h.request(call{method: "GET", path: tc.path, creds: tc.creds})
			hdr := http.Header{"Connection": {"Upgrade, HTTP2-Settings"}, "Upgrade": {tc.proto}, "Http2-Settings": {"AAMAAABkAAQCAAAAAAIAAAAA"}}
			if a := req.Header.Get("Authorization"); a != "" {
				hdr.Set("Authorization", a)
			}
			resp, body := rawRequest(t, strings.TrimPrefix(h.front.URL, "http://"), "GET", tc.path, hdr, "")
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			if tc.want == 200 && resp.Header.Get("X-Saw-Http2-Settings") != "" {
				t.Error("HTTP2-Settings reached the upstream")
			}
		})
	}
}

// TestSlowBodyTimesOut trickles a body one byte at a time: the sidecar
// must answer 408 once BodyReadTimeout has passed, not wait for it.
func TestSlowBodyTimesOut(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.BodyReadTimeout = 300 * time.Millisecond })
	addr := strings.TrimPrefix(h.front.URL, "http://")
	signed := h.request(call{method: "PUT", path: "/notes/b", creds: bob, body: strings.Repeat("x", 40), hash: true})
	for _, tc := range []struct {
		name, method, path string
		header             http.Header
	}{
		{"unauthenticated body-parameter route", "POST", "/share/b?to=carol", http.Header{"Content-Type": {"application/json"}}},
		{"payload hash", "PUT", "/notes/b", http.Header{"Authorization": {signed.Header.Get("Authorization")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var b bytes.Buffer
			fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 40\r\n", tc.method, tc.path, addr)
			_ = tc.header.Write(&b)
			b.WriteString("\r\n")
			start := time.Now()
			if _, err := conn.Write(b.Bytes()); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for i := 0; i < 40; i++ {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
					if _, err := conn.Write([]byte("x")); err != nil {
						return
					}
				}
			}()
			_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer after %v: %v", time.Since(start), err)
			}
			var e protocol.ErrorBody
			_ = json.NewDecoder(resp.Body).Decode(&e)
			if resp.StatusCode != http.StatusRequestTimeout || e.Code != CodeRequestTimeout {
				t.Fatalf("%d %q, want 408 %s", resp.StatusCode, e.Code, CodeRequestTimeout)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("answered after %v", d)
			}
		})
	}
}

func TestPublicHostPinning(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PublicHosts = []string{"notes.example.com:443", "alt.example.com"} })
	send := func(signedFor, hostHeader string) answer {
		t.Helper()
		req := h.request(call{method: "GET", path: "/notes/x"})
		auth, err := protocol.SignRequest(*alice, "GET", "http://"+signedFor+"/notes/x", protocol.SignOptions{})
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", auth)
		req.Host = hostHeader
		return h.send(req)
	}
	front := strings.TrimPrefix(h.front.URL, "http://")
	for _, tc := range []struct {
		name, signedFor, host string
		status                int
	}{
		{"signed for the public host", "notes.example.com:443", "notes.example.com", 200},
		{"public host with its port", "notes.example.com:443", "notes.example.com:443", 200},
		{"upper case Host", "notes.example.com:443", "NOTES.example.com", 200},
		{"entry without port keeps the request's", "alt.example.com:80", "alt.example.com", 200},
		{"signed for another service", "other.example.com:443", "other.example.com", 421},
		{"signed for the sidecar's address", front, front, 421},
		{"replayed with our Host", "other.example.com:443", "notes.example.com", 401},
		{"wrong port", "notes.example.com:8443", "notes.example.com:8443", 421},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if a := send(tc.signedFor, tc.host); a.status != tc.status {
				t.Fatalf("%d, want %d: %s", a.status, tc.status, a.body)
			}
		})
	}
	// Public routes too.
	req := h.request(call{method: "GET", path: "/public"})
	req.Host = "other.example.com"
	if a := h.send(req); a.status != 421 || a.err.Code != CodeMisdirectedRequest {
		t.Errorf("public route on another host: %d %q", a.status, a.err.Code)
	}
}

func TestPublicHostPinningForwardAuth(t *testing.T) {
	h := newHarness(t, forwardAuthMode, trustLoopback, func(c *Config) { c.PublicHosts = []string{"notes.example.com:443"} })
	for _, tc := range []struct {
		name, signedFor, fwdHost string
		status                   int
	}{
		{"pinned", "notes.example.com:443", "notes.example.com", 200},
		{"other service", "other.example.com:443", "other.example.com", 403},
		{"replayed with our host", "other.example.com:443", "notes.example.com", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", h.front.URL+"/auth", nil)
			auth, _ := protocol.SignRequest(*alice, "GET", "http://"+tc.signedFor+"/notes/x", protocol.SignOptions{})
			req.Header.Set("Authorization", auth)
			req.Header.Set("X-Original-Method", "GET")
			req.Header.Set("X-Original-URI", "/notes/x")
			req.Header.Set("X-Forwarded-Host", tc.fwdHost)
			if a := h.send(req); a.status != tc.status {
				t.Fatalf("%d, want %d: %s", a.status, tc.status, a.body)
			}
		})
	}
}

func TestParsePublicHosts(t *testing.T) {
	got, err := parsePublicHosts([]string{"A.example.com:443, b.example.com", "[::1]:8080", "c.example.com."})
	want := []publicHost{{"a.example.com", 443}, {"b.example.com", 0}, {"::1", 8080}, {"c.example.com", 0}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"a.example.com:0", "a.example.com:x", "http://a.example.com", "a/b", "user@a"} {
		if _, err := parsePublicHosts([]string{bad}); !errors.Is(err, ErrBadPublicHost) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
