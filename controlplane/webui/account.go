package webui

import (
	"net/http"
	"net/url"
	"time"
)

// serveHome is "/": the clients list (the framework sends a signed-out
// browser to sign in first).
func (s *Server) serveHome(q *Request) error {
	q.Redirect("/auth/clients")
	return nil
}

type signInStrategy struct{ Name, Href string }

type signInData struct {
	Identity   string
	ReturnTo   string
	Strategies []signInStrategy
}

// serveSignIn is /auth/sign-in?returnTo=/path: one button per strategy,
// each the login service's redirect mode back to returnTo (checked there
// and by SignInPath: a path of this origin only).
func (s *Server) serveSignIn(q *Request) error {
	back := q.R.URL.Query().Get("returnTo")
	if !localPath(back) {
		back = "/"
	}
	d := signInData{ReturnTo: back}
	for _, name := range s.cfg.Login.Strategies() {
		d.Strategies = append(d.Strategies, signInStrategy{Name: name, Href: s.cfg.Login.SignInPath(name, back)})
	}
	// Say who is signed in, if anybody (a cheap check: no credentials are
	// derived here unless the cache has none).
	if u, err := s.cfg.Login.SessionCredentials(q.R); err == nil {
		d.Identity = u.Identity
	}
	return q.Render(http.StatusOK, "signin.html", "Sign in", d)
}

// localPath reports whether p is a path of this origin (not "//host",
// not "/\host", no scheme).
func localPath(p string) bool {
	if len(p) == 0 || p[0] != '/' || len(p) > 1 && (p[1] == '/' || p[1] == '\\') {
		return false
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == ""
}

type profileData struct {
	Identity, Strategy      string
	Expires, SessionExpires time.Time
	Scopes                  []string
}

// serveProfile is /profile: identity, the credentials' expiry, and the
// current scopes as the API sees them (auth.currentScopes).
func (s *Server) serveProfile(q *Request) error {
	var cur struct {
		Scopes []string `json:"scopes"`
	}
	if err := q.API.Do(q.R.Context(), "GET", "/scopes/current", nil, nil, &cur); err != nil {
		return err
	}
	u := q.User
	return q.Render(http.StatusOK, "profile.html", "Profile", profileData{Identity: u.Identity, Strategy: u.Strategy,
		Expires: u.Expires, SessionExpires: u.SessionExpires, Scopes: cur.Scopes})
}
