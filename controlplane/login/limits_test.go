package login

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// countedStrategy wraps a strategy and counts what reaches the provider:
// code exchanges and bearer-token checks. bearerOK lists the tokens the
// provider accepts; block, when set, holds every bearer check until closed.
type countedStrategy struct {
	Strategy
	mu        sync.Mutex
	exchanges int
	bearers   int
	bearerOK  map[string]User
	block     chan struct{}
}

func (c *countedStrategy) Exchange(ctx context.Context, code, nonce, verifier, redirectURL string) (User, Grant, error) {
	c.mu.Lock()
	c.exchanges++
	c.mu.Unlock()
	return c.Strategy.Exchange(ctx, code, nonce, verifier, redirectURL)
}

func (c *countedStrategy) BearerUser(ctx context.Context, token string) (User, error) {
	c.mu.Lock()
	c.bearers++
	u, ok := c.bearerOK[token]
	block := c.block
	c.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
		}
	}
	if !ok {
		return User{}, errors.New("fake provider: token refused")
	}
	return u, nil
}

func (c *countedStrategy) counts() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exchanges, c.bearers
}

// counted replaces the strategy name of the harness by a counting wrapper,
// with a bearer configuration.
func (h *browserHarness) counted(name string) *countedStrategy {
	c := &countedStrategy{Strategy: h.svc.strategies[name], bearerOK: map[string]User{}}
	h.svc.strategies[name] = c
	h.svc.cfg.Strategies = append(h.svc.cfg.Strategies, StrategyConfig{Name: name, Type: "oidc", Bearer: &BearerConfig{}})
	return c
}

// withLimits rebuilds the service's limits with edited configuration.
func (h *browserHarness) withLimits(edit func(*Config)) {
	c := h.svc.cfg
	edit(&c)
	h.svc.lim = newLimits(c)
}

func (h *browserHarness) from(ip string, req *http.Request) *http.Response {
	req.RemoteAddr = net4or6(ip) + ":40000"
	return h.do(req)
}

func net4or6(ip string) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]"
	}
	return ip
}

func bearerReq(provider, token string) *http.Request {
	req := httptest.NewRequest("GET", testPublicURL+"/api/login/v1/oidc-credentials/"+provider, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

// errorCode is the "code" of a Taskcluster error body.
func errorCode(t *testing.T, res *http.Response) string {
	t.Helper()
	var e struct{ Code, Message string }
	b, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("not a JSON error body (%d): %.200s", res.StatusCode, b)
	}
	return e.Code
}

// TestBearerSourceBudget: one source sending junk tokens reaches the
// provider SourceBurst times, then gets 429 TooManyRequests with
// Retry-After and costs nothing more; another source still reaches it,
// and the flooding source's budget refills with time.
func TestBearerSourceBudget(t *testing.T) {
	h := newBrowserHarness(t)
	cs := h.counted("fake")
	const floods = 100
	throttled := 0
	for i := 0; i < floods; i++ {
		res := h.from("198.51.100.7", bearerReq("fake", "junk"+strconv.Itoa(i)))
		switch res.StatusCode {
		case http.StatusBadRequest:
		case http.StatusTooManyRequests:
			throttled++
			if code := errorCode(t, res); code != "TooManyRequests" || res.Header.Get("Retry-After") != "1" {
				t.Fatalf("429 with code %q, Retry-After %q", code, res.Header.Get("Retry-After"))
			}
		default:
			t.Fatalf("junk token: status %d", res.StatusCode)
		}
	}
	if _, n := cs.counts(); n != DefaultSourceBurst || throttled != floods-DefaultSourceBurst {
		t.Fatalf("%d provider calls, %d throttled; want %d and %d", n, throttled, DefaultSourceBurst, floods-DefaultSourceBurst)
	}
	if res := h.from("203.0.113.9", bearerReq("fake", "other-source")); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("another source: status %d, want 400 (the provider's refusal)", res.StatusCode)
	}
	// IPv6 counts per /64: another address of the flooding /64 shares its
	// budget, another /64 does not.
	for i := 0; i < DefaultSourceBurst; i++ {
		h.from("2001:db8:1:2::"+strconv.Itoa(i+1), bearerReq("fake", "v6-"+strconv.Itoa(i)))
	}
	if res := h.from("2001:db8:1:2::ffff", bearerReq("fake", "v6-more")); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("same /64 after its burst: status %d, want 429", res.StatusCode)
	}
	if res := h.from("2001:db8:1:3::1", bearerReq("fake", "v6-next")); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("another /64: status %d, want 400", res.StatusCode)
	}
	h.now = h.now.Add(2 * time.Second)
	if res := h.from("198.51.100.7", bearerReq("fake", "after-refill")); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("after the refill: status %d, want 400", res.StatusCode)
	}
}

// TestBearerRefusalCache: the same refused opaque token costs one
// provider call within RefusedTokenTTL, answered exactly as the first
// refusal, and is asked again after it; JWT-shaped tokens are not
// remembered (their refusals are local verdicts).
func TestBearerRefusalCache(t *testing.T) {
	h := newBrowserHarness(t)
	cs := h.counted("fake")
	first := h.from("198.51.100.1", bearerReq("fake", "same-junk"))
	firstBody, _ := io.ReadAll(first.Body)
	for i := 0; i < 50; i++ {
		res := h.from("198.51.100.1", bearerReq("fake", "same-junk"))
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != first.StatusCode || string(body) != string(firstBody) {
			t.Fatalf("cached refusal differs: %d %s, first %d %s", res.StatusCode, body, first.StatusCode, firstBody)
		}
	}
	if _, n := cs.counts(); n != 1 {
		t.Fatalf("%d provider calls for one junk token, want 1", n)
	}
	h.now = h.now.Add(DefaultRefusedTokenTTL + time.Second)
	h.from("198.51.100.1", bearerReq("fake", "same-junk"))
	if _, n := cs.counts(); n != 2 {
		t.Fatalf("%d provider calls after the TTL, want 2", n)
	}
	// A token accepted later is not refused from the cache of another token.
	cs.bearerOK["good"] = User{ProviderID: "fake", IdentityID: "alice"}
	if res := h.from("198.51.100.1", bearerReq("fake", "good")); res.StatusCode != http.StatusOK {
		t.Fatalf("a valid token: status %d", res.StatusCode)
	}
	jwt := "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"
	for i := 0; i < 3; i++ {
		h.from("198.51.100.1", bearerReq("fake", jwt))
	}
	if _, n := cs.counts(); n != 6 {
		t.Fatalf("%d provider calls, want 6 (JWT refusals are not remembered)", n)
	}
}

// TestProviderCallCeiling: with MaxProviderCalls calls in flight, a
// further caller from any source waits ProviderCallWait and gets 503
// with Retry-After; the provider never sees more than the ceiling.
func TestProviderCallCeiling(t *testing.T) {
	h := newBrowserHarness(t)
	h.withLimits(func(c *Config) { c.MaxProviderCalls, c.ProviderCallWait = 2, protocol.Duration(50*time.Millisecond) })
	cs := h.counted("fake")
	cs.block = make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			h.from(fmt.Sprintf("198.51.100.%d", i+1), bearerReq("fake", "slow"+strconv.Itoa(i)))
		}(i)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, n := cs.counts(); n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the two slow calls did not start")
		}
		time.Sleep(time.Millisecond)
	}
	third := make(chan *http.Response, 1)
	go func() { third <- h.from("203.0.113.50", bearerReq("fake", "third")) }()
	select {
	case res := <-third:
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
			t.Errorf("over the ceiling: status %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
		}
	case <-time.After(3 * time.Second):
		t.Error("a call over the ceiling went to the (stuck) provider instead of getting 503")
	}
	close(cs.block)
	wg.Wait()
	if t.Failed() {
		return
	}
	if _, n := cs.counts(); n != 2 {
		t.Fatalf("%d provider calls, want 2", n)
	}
	if res := h.from("203.0.113.50", bearerReq("fake", "fourth")); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("after the slow calls: status %d, want 400", res.StatusCode)
	}
}

// TestCallbackSourceBudget: flow cookies are free, so start + callback
// with a junk code is a provider call per pair: bounded per source, the
// refusal a 429 page with Retry-After; other sources still sign in.
func TestCallbackSourceBudget(t *testing.T) {
	h := newBrowserHarness(t)
	cs := h.counted("fake")
	throttled := 0
	for i := 0; i < DefaultSourceBurst+10; i++ {
		state, fc := h.start("fake", "")
		req := httptest.NewRequest("GET", testPublicURL+"/login/fake/callback?"+url.Values{"code": {"junk"}, "state": {state}}.Encode(), nil)
		req.AddCookie(fc)
		res := h.from("198.51.100.7", req)
		if res.StatusCode == http.StatusTooManyRequests {
			throttled++
			if res.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		}
	}
	if n, _ := cs.counts(); n != DefaultSourceBurst || throttled != 10 {
		t.Fatalf("%d exchanges, %d throttled; want %d and 10", n, throttled, DefaultSourceBurst)
	}
	state, fc := h.start("fake", "")
	req := httptest.NewRequest("GET", testPublicURL+"/login/fake/callback?"+url.Values{"code": {"code-alice"}, "state": {state}}.Encode(), nil)
	req.AddCookie(fc)
	if res := h.from("203.0.113.9", req); res.StatusCode != http.StatusOK {
		t.Fatalf("a real sign-in from another source: status %d", res.StatusCode)
	}
}

// countingBackend counts the writes that reach the replicated state.
type countingBackend struct {
	*memBackend
	applies atomic.Int64
}

func (c *countingBackend) Apply(ctx context.Context, cmd Command) (Result, error) {
	c.applies.Add(1)
	return c.memBackend.Apply(ctx, cmd)
}

// TestTokenEndpointJunkCodes: a junk code at /login/oauth/token costs a
// read, not a replicated write, and one source's junk codes are bounded
// by its budget.
func TestTokenEndpointJunkCodes(t *testing.T) {
	h := newBrowserHarness(t)
	h.svc.cfg.Apps = []App{{ClientID: "myapp", ResponseType: "code", Scopes: []string{"x"}, RedirectURIs: []string{"https://app.example/cb"}, MaxExpires: "1 day"}}
	cb := &countingBackend{memBackend: h.mb}
	h.svc.backend = cb
	throttled := 0
	for i := 0; i < DefaultSourceBurst+5; i++ {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {"junk" + strconv.Itoa(i)}, "redirect_uri": {"https://app.example/cb"}, "client_id": {"myapp"}}
		req := httptest.NewRequest("POST", testPublicURL+"/login/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res := h.from("198.51.100.7", req)
		switch res.StatusCode {
		case http.StatusBadRequest:
		case http.StatusTooManyRequests:
			throttled++
		default:
			t.Fatalf("junk code: status %d", res.StatusCode)
		}
	}
	if n := cb.applies.Load(); n != 0 {
		t.Fatalf("%d replicated writes for junk codes, want 0", n)
	}
	if throttled != 5 {
		t.Fatalf("%d throttled, want 5", throttled)
	}
}

// countingSealer counts Open calls.
type countingSealer struct {
	Sealer
	opens atomic.Int64
}

func (c *countingSealer) Open(id string, b []byte) ([]byte, error) {
	c.opens.Add(1)
	return c.Sealer.Open(id, b)
}

// TestGuardBounds: oversized queries, cookies and bodies are refused in
// the error shape before any handler runs (nothing is unsealed, nothing
// is parsed).
func TestGuardBounds(t *testing.T) {
	h := newBrowserHarness(t)
	cs := &countingSealer{Sealer: h.svc.cfg.Sealer}
	h.svc.cfg.Sealer = cs
	_, fc := h.start("fake", "")
	manyFlows := func() string {
		var b strings.Builder
		for i := 0; i < 500; i++ {
			fmt.Fprintf(&b, "%s%020d=%s; ", flowCookiePrefix, i, fc.Value)
		}
		return b.String()
	}()
	form := func(path string, n int) *http.Request {
		req := httptest.NewRequest("POST", testPublicURL+path, strings.NewReader("a="+strings.Repeat("x", n)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		return req
	}
	chunked := func(path string, n int) *http.Request {
		req := form(path, n)
		req.ContentLength = -1
		return req
	}
	withCookie := func(path, cookie string) *http.Request {
		req := httptest.NewRequest("GET", testPublicURL+path, nil)
		req.Header.Set("Cookie", cookie)
		return req
	}
	for _, tc := range []struct {
		name   string
		req    *http.Request
		status int
	}{
		{"64 KB state", httptest.NewRequest("GET", testPublicURL+"/login/fake/callback?code=x&state="+strings.Repeat("s", 64<<10), nil), 414},
		{"500 flow cookies", withCookie("/login/fake/callback?code=x&state=s", manyFlows), 431},
		{"40 KB of cookies", withCookie("/login/credentials", "a="+strings.Repeat("b", 40<<10)), 431},
		{"logout body 10 KB", form("/login/logout", 10<<10), 413},
		{"token body 100 KB", form("/login/oauth/token", 100<<10), 413},
		{"decision body 100 KB", form("/login/oauth/authorize/decision", 100<<10), 413},
		{"GET with a 10 KB body", httptest.NewRequest("GET", testPublicURL+"/login/credentials", strings.NewReader(strings.Repeat("x", 10<<10))), 413},
		{"chunked token body 100 KB", chunked("/login/oauth/token", 100<<10), 400},
		{"chunked decision body 100 KB", chunked("/login/oauth/authorize/decision", 100<<10), 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := cs.opens.Load()
			res := h.from("198.51.100.1", tc.req)
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %.300s", res.StatusCode, tc.status, body)
			}
			if tc.status != 400 && !strings.Contains(string(body), `"code": "InputTooLarge"`) {
				t.Fatalf("not the error shape: %.300s", body)
			}
			if n := cs.opens.Load() - before; n != 0 {
				t.Fatalf("%d flow cookies unsealed", n)
			}
		})
	}
	// Under the bounds a request is served as before.
	if res := h.from("198.51.100.1", withCookie("/login/credentials", "a=b")); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("ordinary request: status %d", res.StatusCode)
	}
}

// TestFlowCookiesBounded: a browser that starts sign-in after sign-in
// (each start sets a cookie of its own) holds at most maxFlowCookies of
// them per strategy; the oldest go first, and the newest still signs in.
func TestFlowCookiesBounded(t *testing.T) {
	h := newBrowserHarness(t)
	jar := map[string]*http.Cookie{} // the browser's flow cookies of /login/fake
	var lastState string
	for i := 0; i < 20; i++ {
		req := httptest.NewRequest("GET", testPublicURL+"/login/fake", nil)
		for _, c := range jar {
			req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
		res := h.do(req)
		for _, c := range res.Cookies() {
			if c.Path != "/login/fake" {
				t.Fatalf("flow cookie path %q", c.Path)
			}
			if c.MaxAge < 0 {
				delete(jar, c.Name)
			} else {
				jar[c.Name] = c
			}
		}
		loc, _ := url.Parse(res.Header.Get("Location"))
		lastState = loc.Query().Get("state")
		h.now = h.now.Add(time.Second)
	}
	if len(jar) > maxFlowCookies {
		t.Fatalf("the browser holds %d flow cookies, want at most %d", len(jar), maxFlowCookies)
	}
	fc := jar[flowCookieName(lastState)]
	if fc == nil {
		t.Fatal("the newest flow cookie was evicted")
	}
	req := httptest.NewRequest("GET", testPublicURL+"/login/fake/callback?"+url.Values{"code": {"code-alice"}, "state": {lastState}}.Encode(), nil)
	for _, c := range jar {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	if res := h.do(req); res.StatusCode != http.StatusOK {
		t.Fatalf("the newest sign-in: status %d", res.StatusCode)
	}
}

// TestLongReturnToFits: a redirect-mode sign-in with the longest returnTo
// validReturnTo accepts still fits in a flow cookie that openFlow accepts.
// One that JSON would inflate past a cookie is refused at the start (400)
// instead of being set as a cookie the callback cannot open.
func TestLongReturnToFits(t *testing.T) {
	for _, rt := range []string{
		"/" + strings.Repeat("a", maxReturnTo-1),
		"/login/oauth/authorize?" + strings.Repeat("a=b&", (maxReturnTo-24)/4),
		"/" + strings.Repeat("<>", (maxReturnTo-1)/2),
	} {
		h := newBrowserHarness(t)
		state, fc := h.start("fake", "?"+url.Values{"mode": {"redirect"}, "returnTo": {rt}}.Encode())
		res := h.get("/login/fake/callback?"+url.Values{"code": {"code-alice"}, "state": {state}}.Encode(), fc)
		if got := continueTarget(t, res); got != testPublicURL+rt {
			t.Fatalf("returnTo %.30q… (%d): status %d, continues to %.80q", rt, len(rt), res.StatusCode, got)
		}
	}
	h := newBrowserHarness(t)
	rt := "/" + strings.Repeat(`"`, maxReturnTo-1)
	if res := h.get("/login/fake?" + url.Values{"mode": {"redirect"}, "returnTo": {rt}}.Encode()); res.StatusCode != http.StatusBadRequest || len(res.Cookies()) != 0 {
		t.Fatalf("a returnTo too large once sealed: status %d, %d cookies", res.StatusCode, len(res.Cookies()))
	}
}

// TestLimitsSource: the source of a request is Config.ClientAddr when set
// (the control plane's trusted-proxy reading), else the peer; IPv6 per /64.
func TestLimitsSource(t *testing.T) {
	for _, tc := range []struct {
		remote, hook, want string
	}{
		{"192.0.2.1:5", "", "192.0.2.1"},
		{"[2001:db8::1]:5", "", "2001:db8::/64"},
		{"[::ffff:192.0.2.9]:5", "", "192.0.2.9"},
		{"192.0.2.1:5", "198.51.100.4", "198.51.100.4"},
		{"192.0.2.1:5", "2001:db8:a:b:c::1", "2001:db8:a:b::/64"},
		{"192.0.2.1:5", "not-an-ip", "not-an-ip"},
		{"garbage", "", "garbage"},
	} {
		l := &limits{}
		if tc.hook != "" {
			hook := tc.hook
			l.clientAddr = func(*http.Request) string { return hook }
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if got := l.source(r); got != tc.want {
			t.Errorf("remote %q hook %q: %q, want %q", tc.remote, tc.hook, got, tc.want)
		}
	}
}

// TestFillLimits: documented defaults; negative values are refused.
func TestFillLimits(t *testing.T) {
	var c Config
	if err := c.fillLimits(); err != nil {
		t.Fatal(err)
	}
	if c.SourceRate != DefaultSourceRate || c.SourceBurst != DefaultSourceBurst || c.MaxProviderCalls != DefaultMaxProviderCalls ||
		time.Duration(c.RefusedTokenTTL) != DefaultRefusedTokenTTL || time.Duration(c.JWKSMinRefresh) != DefaultJWKSMinRefresh || c.SourceTableSize != DefaultSourceTableSize {
		t.Fatalf("defaults not applied: %+v", c)
	}
	for _, bad := range []Config{{SourceRate: -1}, {SourceBurst: -1}, {MaxProviderCalls: -2}, {RefusedTokenCache: -1}} {
		if err := bad.fillLimits(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// FuzzLoginHandler sends arbitrary methods, paths, queries, headers,
// cookies and bodies through the whole handler (guard and routes): no
// panic, and no 5xx but 503.
func FuzzLoginHandler(f *testing.F) {
	for _, s := range [][6]string{
		{"GET", "/login/fake", "mode=redirect&returnTo=/x", "", "", ""},
		{"GET", "/login/fake/callback", "code=c&state=s", "tcauth_flow_abc=zz", "", ""},
		{"POST", "/login/logout", "", "tcauth_session=" + strings.Repeat("A", 43), "Origin", "https://evil.example"},
		{"POST", "/graphql", "", "", "Content-Type", `application/json`},
		{"POST", "/login/oauth/token", "", "", "Content-Type", "application/x-www-form-urlencoded"},
		{"GET", "/api/login/v1/oidc-credentials/fake", "", "", "Authorization", "Bearer a.b.c"},
		{"OPTIONS", "/graphql", "", "", "Access-Control-Request-Method", "POST"},
		{"BREW", "/login/%2e%2e/x", "%zz", "=;;=", "Authorization", "Bearer"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5], `{"query":"{getCredentials{expires}}"}`)
	}
	f.Fuzz(func(t *testing.T, method, path, query, cookie, hname, hvalue, body string) {
		h := newBrowserHarness(t)
		cs := h.counted("fake")
		cs.bearerOK["a.b.c"] = User{ProviderID: "fake", IdentityID: "alice"}
		req := httptest.NewRequest("GET", testPublicURL+"/", strings.NewReader(body))
		req.Method = method
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req.URL = &url.URL{Path: path, RawQuery: query}
		req.RequestURI = req.URL.RequestURI()
		req.ContentLength = int64(len(body))
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		if hname != "" {
			req.Header[hname] = []string{hvalue}
		}
		rec := httptest.NewRecorder()
		h.svc.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s?%s: status %d: %.300s", method, path, query, rec.Code, rec.Body.String())
		}
	})
}
