package login

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

// renavParam marks the one re-navigation of an authorization request
// that arrived without the session cookie (see serveSignInFirst).
const renavParam = "tcauth_renav"

// consentData is a pending consent (KindConsent, key KeyOf(transaction
// id)): bound to the identity (Record.Identity), to the browser session
// that saw the page and to the page's CSRF token (both only as hashes).
type consentData struct {
	Details clientDetails `json:"details"`
	State   string        `json:"state,omitempty"`
	Session string        `json:"session"` // KeyOf(session cookie)
	CSRF    string        `json:"csrf"`    // KeyOf(CSRF token)
}

// serveSignInFirst answers an authorization request without a session.
// The session cookie is SameSite=Strict, so a top-level navigation from
// the app's site (or the end of a sign-in redirect chain that began at the
// provider) arrives without it even when the user is signed in. A page of
// ours that navigates once to the same request is a same-site navigation
// and carries the cookie; if there is still no session, the user is
// offered the configured sign-ins, which come back here.
func (s *Service) serveSignInFirst(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	marked := q.Get(renavParam) != ""
	q.Del(renavParam)
	here := s.publicURL.EscapedPath() + "/login/oauth/authorize?" + q.Encode()
	if !marked && r.Header.Get("Sec-Fetch-Site") != "same-origin" {
		q.Set(renavParam, "1")
		again := s.publicURL.EscapedPath() + "/login/oauth/authorize?" + q.Encode()
		s.renderOAuthPage(w, http.StatusOK, oauthPage{Title: "Continue", Refresh: again,
			Text: "Continuing to the sign-in…", Links: []pageLink{{URL: again, Text: "Continue"}}})
		return
	}
	p := oauthPage{Title: "Sign in", Text: "Sign in to continue to the application."}
	for _, name := range s.order {
		u := s.publicURL.EscapedPath() + "/login/" + url.PathEscape(name) + "?" +
			url.Values{"mode": {modeRedirect}, "returnTo": {here}}.Encode()
		p.Links = append(p.Links, pageLink{URL: u, Text: "Sign in with " + name})
	}
	s.renderOAuthPage(w, http.StatusUnauthorized, p)
}

// askConsent stores the pending consent and shows the consent page.
func (s *Service) askConsent(w http.ResponseWriter, r *http.Request, sess session, req *oauthRequest) {
	tx, csrf := randomToken(32), randomToken(32)
	d := s.defaultDetails(req, sess.Identity)
	data, err := json.Marshal(consentData{Details: d, State: req.State, Session: sess.Key, CSRF: KeyOf(csrf)})
	if err == nil {
		now := s.cfg.Now()
		_, err = s.backend.Apply(r.Context(), Command{Op: OpPut, Time: now, Create: true, Record: Record{
			Kind: KindConsent, Key: KeyOf(tx), Identity: sess.Identity, Created: now, Expires: now.Add(ConsentLifetime), Data: data,
		}})
	}
	if err != nil {
		s.log.Warn("storing a consent failed", "app", req.App.ClientID, "identity", sess.Identity, "error", err.Error())
		s.renderOAuthMessage(w, http.StatusServiceUnavailable, "The sign-in service cannot answer right now; reload this page in a moment.")
		return
	}
	host := req.RedirectURI
	if u, err := url.Parse(req.RedirectURI); err == nil {
		host = u.Host
	}
	s.renderOAuthPage(w, http.StatusOK, oauthPage{Title: "Allow access?", Consent: &consentView{
		App: req.App.ClientID, RedirectHost: host, Identity: sess.Identity, ClientID: d.ClientID,
		Scopes: d.Scopes, Expires: protocol.FormatTime(d.Expires), Description: d.Description,
		Action: s.publicURL.EscapedPath() + "/login/oauth/authorize/decision", Transaction: tx, CSRF: csrf,
	}, FormTarget: origin(req.RedirectURI)})
}

// origin is scheme://host of an absolute URL ("" if it is not one).
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// serveDecision is POST /login/oauth/authorize/decision: the consent
// page's answer. Cross-site posts are refused (Sec-Fetch-Site / Origin);
// the transaction must be this session's and the CSRF token its page's.
// The transaction is checked before it is taken, so a forged post does
// not even use up the user's pending consent.
func (s *Service) serveDecision(w http.ResponseWriter, r *http.Request) {
	if err := s.crossOrigin().Check(r); err != nil {
		s.log.Info("cross-origin consent decision refused", "origin", truncate(r.Header.Get("Origin"), 128))
		s.renderOAuthMessage(w, http.StatusForbidden, "This request did not come from the consent page.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxOAuthForm)
	if err := r.ParseForm(); err != nil {
		s.renderOAuthMessage(w, http.StatusBadRequest, "The consent answer could not be read.")
		return
	}
	sess, ok, err := s.sessionFrom(r)
	if err != nil {
		s.log.Warn("session lookup failed", "error", err.Error())
		s.renderOAuthMessage(w, http.StatusServiceUnavailable, "The sign-in service cannot answer right now; retry in a moment.")
		return
	}
	if !ok {
		s.renderOAuthMessage(w, http.StatusUnauthorized, "You are not signed in. Start again from the application.")
		return
	}
	c, status, err := s.takeConsent(r, sess)
	if err != nil {
		s.log.Info("consent decision refused", "identity", sess.Identity, "reason", err.Error())
		s.renderOAuthMessage(w, status, "This consent request is unknown, expired or not yours. Start again from the application.")
		return
	}
	app, ok := s.app(c.Details.App)
	if !ok || !app.hasRedirect(c.Details.RedirectURI) {
		s.log.Info("consent decision refused: app no longer registered as it was", "app", c.Details.App)
		s.renderOAuthMessage(w, http.StatusBadRequest, "This application is not registered here any more.")
		return
	}
	req := &oauthRequest{App: app, RedirectURI: c.Details.RedirectURI, State: c.State}
	if r.PostForm.Get("decision") != "allow" {
		s.log.Info("third-party grant denied by the user", "app", app.ClientID, "identity", sess.Identity)
		s.redirectError(w, r, req, "access_denied")
		return
	}
	d, err := s.decided(r.PostForm, c.Details, app)
	if err != nil {
		s.log.Info("consent decision refused", "app", app.ClientID, "identity", sess.Identity, "reason", err.Error())
		s.redirectError(w, r, req, "invalid_request")
		return
	}
	s.approve(w, r, sess.Identity, app, d, c.State)
}

func (a *App) hasRedirect(uri string) bool {
	for _, u := range a.RedirectURIs {
		if u == uri {
			return true
		}
	}
	return false
}

// takeConsent reads the transaction, checks that it belongs to this
// session and that the CSRF token is its page's, then takes it (single
// use). The status is what to answer on error.
func (s *Service) takeConsent(r *http.Request, sess session) (consentData, int, error) {
	tx, csrf := r.PostForm.Get("transaction_id"), r.PostForm.Get("csrf_token")
	if tx == "" || csrf == "" || len(tx) > 64 || len(csrf) > 64 {
		return consentData{}, http.StatusBadRequest, errBadParam
	}
	rec, found, err := s.backend.Record(KindConsent, KeyOf(tx)) // sessionFrom has Synced
	if err != nil || !found || !rec.Expires.After(s.cfg.Now()) {
		return consentData{}, http.StatusBadRequest, errors.Join(ErrNotFound, err)
	}
	var c consentData
	if err := json.Unmarshal(rec.Data, &c); err != nil {
		return consentData{}, http.StatusBadRequest, err
	}
	if rec.Identity != sess.Identity ||
		subtle.ConstantTimeCompare([]byte(c.Session), []byte(sess.Key)) != 1 ||
		subtle.ConstantTimeCompare([]byte(c.CSRF), []byte(KeyOf(csrf))) != 1 {
		return consentData{}, http.StatusForbidden, errNotYours
	}
	if _, err := s.backend.Apply(r.Context(), Command{Op: OpTake, Time: s.cfg.Now(), Kind: KindConsent, Key: KeyOf(tx)}); err != nil {
		if errors.Is(err, ErrNotFound) {
			return consentData{}, http.StatusBadRequest, err // taken by a concurrent post
		}
		return consentData{}, http.StatusServiceUnavailable, err
	}
	return c, 0, nil
}

// decided applies the user's choices: scopes (a subset of the app's
// registered ones), description and expiry (at most the app's maxExpires).
func (s *Service) decided(form url.Values, d clientDetails, app *App) (clientDetails, error) {
	now := s.cfg.Now()
	var scopes []string
	for _, v := range form["scope"] {
		for sc := range strings.FieldsSeq(v) {
			scopes = append(scopes, sc)
		}
	}
	if len(scopes) == 0 {
		return d, errors.New("no scope chosen")
	}
	if !sameScopeSet(scopeengine.Intersection(scopes, app.Scopes), scopes) {
		return d, errors.New("a chosen scope is not among the app's")
	}
	d.Scopes = scopes
	if desc := strings.TrimSpace(form.Get("description")); desc != "" {
		if len(desc) > maxDescriptionLen {
			return d, errors.New("description too long")
		}
		d.Description = desc
	}
	if e := strings.TrimSpace(form.Get("expires")); e != "" {
		t, err := time.Parse(time.RFC3339Nano, e)
		if err != nil {
			t, err = protocol.FromNow(e, now)
		}
		if err != nil || len(e) > maxExpiresLen {
			return d, errors.New("expires is not a time")
		}
		d.Expires = t
	}
	if max, _ := protocol.FromNow(app.MaxExpires, now); d.Expires.After(max) {
		d.Expires = max
	}
	if !d.Expires.After(now) {
		return d, errGrantExpired
	}
	return d, nil
}

// The pages of the third-party flow: plain server-rendered HTML, no
// script at all.
type oauthPage struct {
	Title      string
	Text       string
	Refresh    string // navigate there at once (same-site re-navigation)
	Links      []pageLink
	Consent    *consentView
	FormTarget string // origin the decision may redirect to (CSP form-action)
	Nonce      string
}

type pageLink struct{ URL, Text string }

type consentView struct {
	App, RedirectHost, Identity, ClientID, Expires, Description string
	Scopes                                                      []string
	Action, Transaction, CSRF                                   string
}

var oauthTemplate = template.Must(template.New("oauth").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
{{if .Refresh}}<meta http-equiv="refresh" content="0;url={{.Refresh}}">{{end}}
<title>{{.Title}}</title>
<style nonce="{{.Nonce}}">body{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}code{word-break:break-all}</style>
</head><body><h1>{{.Title}}</h1>
{{with .Text}}<p>{{.}}</p>{{end}}
{{range .Links}}<p><a href="{{.URL}}">{{.Text}}</a></p>{{end}}
{{with .Consent}}
<p>The application <strong>{{.App}}</strong> (returning to <strong>{{.RedirectHost}}</strong>) asks for
Taskcluster credentials acting as you, <code>{{.Identity}}</code>.</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="transaction_id" value="{{.Transaction}}">
<input type="hidden" name="csrf_token" value="{{.CSRF}}">
<p>Client: <code>{{.ClientID}}</code></p>
<fieldset><legend>Scopes (limited to those you hold)</legend>
{{range .Scopes}}<label><input type="checkbox" name="scope" value="{{.}}" checked> <code>{{.}}</code></label><br>{{end}}
</fieldset>
<p><label>Expires <input name="expires" value="{{.Expires}}" size="30"></label></p>
<p><label>Description <input name="description" value="{{.Description}}" size="60"></label></p>
<p><button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button></p>
</form>
{{end}}
</body></html>
`))

func (s *Service) renderOAuthMessage(w http.ResponseWriter, status int, text string) {
	s.renderOAuthPage(w, status, oauthPage{Title: "Third-party sign-in", Text: text})
}

// renderOAuthPage writes a page under a strict Content-Security-Policy:
// no script, only the page's own style, forms may post here and (the
// decision's redirect) to the app's origin only, no framing (clickjacking
// of the Allow button).
func (s *Service) renderOAuthPage(w http.ResponseWriter, status int, p oauthPage) {
	p.Nonce = randomToken(18)
	formAction := "'self'"
	if p.FormTarget != "" {
		formAction += " " + p.FormTarget
	}
	setPageHeaders(w.Header(), "default-src 'none'; style-src 'nonce-"+p.Nonce+"'; base-uri 'none'; form-action "+formAction+"; frame-ancestors 'none'")
	w.WriteHeader(status)
	if err := oauthTemplate.Execute(w, p); err != nil {
		s.log.Warn("rendering a third-party sign-in page failed", "error", err.Error())
	}
}
