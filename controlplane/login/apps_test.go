package login

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

func goodApp() App {
	return App{ClientID: "my-app_1", Scopes: []string{"queue:*"}, RedirectURIs: []string{"https://app.example/cb"}}
}

func TestFillAppsDefaults(t *testing.T) {
	c := Config{Apps: []App{goodApp()}}
	if err := c.fillApps(); err != nil {
		t.Fatal(err)
	}
	if a := c.Apps[0]; a.ResponseType != "code" || a.MaxExpires != "1 year" {
		t.Fatalf("defaults: %+v", a)
	}
}

func TestFillAppsRefusals(t *testing.T) {
	tests := []struct {
		name string
		edit func(a *App)
		want string // in the error, besides the app's name
	}{
		{"empty clientId", func(a *App) { a.ClientID = "" }, "clientId"},
		{"clientId with a slash", func(a *App) { a.ClientID = "a/b" }, "clientId"},
		{"clientId with a space", func(a *App) { a.ClientID = "a b" }, "clientId"},
		{"unknown responseType", func(a *App) { a.ResponseType = "id_token" }, "responseType"},
		{"no scopes", func(a *App) { a.Scopes = nil }, "scope"},
		{"empty scope", func(a *App) { a.Scopes = []string{""} }, "scope"},
		{"scope with a space", func(a *App) { a.Scopes = []string{"a b"} }, "scope"},
		{"non-printable scope", func(a *App) { a.Scopes = []string{"a\nb"} }, "scope"},
		{"scope twice", func(a *App) { a.Scopes = []string{"a", "a"} }, "twice"},
		{"no redirect", func(a *App) { a.RedirectURIs = nil }, "redirectUri"},
		{"relative redirect", func(a *App) { a.RedirectURIs = []string{"/cb"} }, "absolute"},
		{"http redirect", func(a *App) { a.RedirectURIs = []string{"http://app.example/cb"} }, "https"},
		{"http on a look-alike", func(a *App) { a.RedirectURIs = []string{"http://localhost.evil.example/cb"} }, "https"},
		{"fragment", func(a *App) { a.RedirectURIs = []string{"https://app.example/cb#x"} }, "fragment"},
		{"empty fragment", func(a *App) { a.RedirectURIs = []string{"https://app.example/cb#"} }, "fragment"},
		{"user info", func(a *App) { a.RedirectURIs = []string{"https://u:p@app.example/cb"} }, "user"},
		{"javascript", func(a *App) { a.RedirectURIs = []string{"javascript:alert(1)"} }, "absolute"},
		{"bad maxExpires", func(a *App) { a.MaxExpires = "forever" }, "isn't a time expression"},
		{"past maxExpires", func(a *App) { a.MaxExpires = "- 1 day" }, "future"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := goodApp()
			tc.edit(&a)
			c := Config{Apps: []App{a}}
			err := c.fillApps()
			if !errors.Is(err, ErrBadApp) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrBadApp mentioning %q", err, tc.want)
			}
			if a.ClientID != "" && !strings.Contains(err.Error(), a.ClientID) && !strings.Contains(err.Error(), "0") {
				t.Fatalf("err %v does not name the app", err)
			}
		})
	}
	c := Config{Apps: []App{goodApp(), goodApp()}}
	if err := c.fillApps(); !errors.Is(err, ErrBadApp) || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate app: %v", err)
	}
}

func TestFillAppsAccepts(t *testing.T) {
	for _, uri := range []string{"https://app.example/cb", "https://app.example:8443/cb?x=1", "http://localhost:5000/cb",
		"http://127.0.0.1/cb", "http://[::1]:8080/"} {
		a := goodApp()
		a.RedirectURIs = []string{uri}
		c := Config{Apps: []App{a}}
		if err := c.fillApps(); err != nil {
			t.Errorf("%s: %v", uri, err)
		}
	}
}

// FuzzCheckRedirectURI: whatever is accepted is an absolute https URI (or
// http on loopback) without fragment or user information.
func FuzzCheckRedirectURI(f *testing.F) {
	for _, s := range []string{"https://a.example/cb", "http://localhost:1/", "http://127.0.0.1.evil/", "https://a#b", "//a", "https:a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkRedirectURI(s) != nil {
			return
		}
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || u.User != nil || strings.Contains(s, "#") ||
			!(u.Scheme == "https" || u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
			t.Fatalf("accepted %q", s)
		}
	})
}

// FuzzParseAuthorize: parseAuthorize never panics, and a request it
// accepts names a registered app, one of its redirect URIs exactly,
// exactly its scopes, and an expiry in (now, now+maxExpires].
func FuzzParseAuthorize(f *testing.F) {
	good := authorizeQuery("myapp", appRedirect, strings.Join(appScopes, " "), "s")
	good.Set("expires", "1 day")
	for _, s := range []string{good.Encode(), "client_id=myapp&redirect_uri=https://app.example/cb&response_type=code&scope=secrets:get:x+queue:create-task:proj/*",
		"client_id=myapp&client_id=spa", "scope=%00", "expires=-1d", ""} {
		f.Add(s)
	}
	s := &Service{cfg: Config{Apps: []App{
		{ClientID: "myapp", Scopes: appScopes, RedirectURIs: []string{appRedirect, appLoopback}, MaxExpires: "30 days"},
		{ClientID: "spa", ResponseType: "token", Scopes: appScopes, RedirectURIs: []string{implicitRedir}},
	}}}
	if err := s.cfg.fillApps(); err != nil {
		f.Fatal(err)
	}
	now := time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw)
		req, err := s.parseAuthorize(q, now)
		if err != nil {
			if req != nil && !req.App.hasRedirect(req.RedirectURI) {
				t.Fatalf("an error to redirect to an unregistered URI %q", req.RedirectURI)
			}
			return
		}
		max, _ := protocol.FromNow(req.App.MaxExpires, now)
		if q.Get("client_id") != req.App.ClientID || !req.App.hasRedirect(q.Get("redirect_uri")) ||
			!sameScopeSet(strings.Split(q.Get("scope"), " "), req.App.Scopes) || q.Get("response_type") != req.App.ResponseType ||
			!req.Expires.After(now) || req.Expires.After(max) {
			t.Fatalf("accepted %q as %+v", raw, req)
		}
	})
}

// FuzzOAuthBearer: only "Bearer <token>" (any case) gives a token, and
// the token has no spaces around it.
func FuzzOAuthBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer abc", "BEARER  abc ", "Basic abc", "Bearer", "Bearer "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		r := httptestRequestWithAuth(h)
		tok, ok := oauthBearer(r)
		if !ok {
			return
		}
		if !strings.EqualFold(h[:7], "bearer ") || tok == "" || tok != strings.TrimSpace(tok) || !strings.Contains(h, tok) {
			t.Fatalf("%q gave %q", h, tok)
		}
	})
}

func httptestRequestWithAuth(h string) *http.Request {
	r := &http.Request{Header: http.Header{}}
	r.Header.Set("Authorization", h)
	return r
}
