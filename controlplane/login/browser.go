package login

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/tcauth/tcauth/protocol"
)

// maxReturnTo bounds the returnTo path of redirect mode.
const maxReturnTo = 2048

var errBadReturnTo = errors.New("login: returnTo must be a path on this deployment")

// validReturnTo accepts only an absolute path of this origin: it starts
// with exactly one "/" (no scheme-relative "//host"), has no backslash
// (browsers read "/\host" as "//host"), no control characters, no scheme
// and no host once parsed.
func validReturnTo(p string) bool {
	if p == "" || len(p) > maxReturnTo || p[0] != '/' || strings.HasPrefix(p, "//") {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x21 || c == 0x7f || c == '\\' {
			return false
		}
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil && strings.HasPrefix(u.Path, "/") && !strings.HasPrefix(u.Path, "//")
}

// origin is the public URL's origin (the postMessage target and the base
// of returnTo).
func (s *Service) origin() string { return s.publicURL.Scheme + "://" + s.publicURL.Host }

func (s *Service) redirectURL(strategy string) string {
	return s.cfg.PublicURL + "/login/" + strategy + "/callback"
}

// pathStrategy is the strategy the path names ({strategy}). Without one
// of that name it answers 404 and ok is false.
func (s *Service) pathStrategy(w http.ResponseWriter, r *http.Request) (name string, st Strategy, ok bool) {
	name = r.PathValue("strategy")
	if st, ok = s.strategies[name]; !ok {
		s.writeError(w, "login", protocol.CodeResourceNotFound, "No such sign-in strategy", map[string]string{"strategy": name})
	}
	return name, st, ok
}

// serveStart is GET /login/{strategy}: seal state, nonce and PKCE verifier
// into a flow cookie and send the browser to the provider.
func (s *Service) serveStart(w http.ResponseWriter, r *http.Request) {
	name, st, ok := s.pathStrategy(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := flow{Version: 1, Strategy: name, State: randomToken(32), Nonce: randomToken(32),
		Verifier: oauth2.GenerateVerifier(), Mode: modePopup, Issued: s.cfg.Now().Unix()}
	switch q.Get("mode") {
	case "", modePopup:
	case modeRedirect:
		f.Mode, f.ReturnTo = modeRedirect, q.Get("returnTo")
		if !validReturnTo(f.ReturnTo) {
			s.writeError(w, "login", protocol.CodeInputError, errBadReturnTo.Error()[len("login: "):], nil)
			return
		}
	default:
		s.writeError(w, "login", protocol.CodeInputError, "mode must be popup or redirect", nil)
		return
	}
	// An empty URL means the provider cannot be reached (its discovery
	// failed): say so now rather than send the browser nowhere.
	target := st.AuthCodeURL(f.State, f.Nonce, f.Verifier, s.redirectURL(name))
	if target == "" {
		s.writeServiceUnavailable(w, "login")
		return
	}
	value, err := s.sealFlow(f)
	if errors.Is(err, errFlowTooLarge) {
		s.writeError(w, "login", protocol.CodeInputError, errBadReturnTo.Error()[len("login: "):], nil)
		return
	}
	if err != nil {
		s.log.Error("sealing the sign-in flow cookie failed", "strategy", name, "error", err.Error())
		s.writeError(w, "login", protocol.CodeInternalServerError, "Could not start the sign-in", nil)
		return
	}
	s.evictFlows(w, r, name, s.cfg.Now())
	s.setFlowCookie(w, f, value)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusFound)
}

// serveCallback is GET /login/{strategy}/callback: check the flow cookie
// and state, exchange the code, store the grant and a new session.
func (s *Service) serveCallback(w http.ResponseWriter, r *http.Request) {
	name, st, ok := s.pathStrategy(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	if state != "" && len(state) <= 256 {
		// Whatever happens next, this flow is over: its cookie is single use.
		s.clearFlowCookie(w, name, state)
	}
	if e := q.Get("error"); e != "" {
		// The provider's error and description are not echoed to the page
		// (an attacker can put anything there); the code goes to the log.
		s.log.Info("provider refused the sign-in", "strategy", name, "error", truncate(e, 64))
		s.renderFailure(w, http.StatusBadRequest, "The provider did not sign you in.")
		return
	}
	f, err := s.flowOf(r, name, state)
	if err != nil {
		s.log.Info("sign-in callback refused", "strategy", name, "reason", err.Error())
		s.renderFailure(w, http.StatusBadRequest, "This sign-in link is invalid or expired. Please sign in again.")
		return
	}
	code := q.Get("code")
	if code == "" {
		s.log.Info("sign-in callback refused", "strategy", name, "reason", "no code")
		s.renderFailure(w, http.StatusBadRequest, "This sign-in link is invalid or expired. Please sign in again.")
		return
	}
	// The code exchange is a provider call for a caller who has proven
	// nothing yet (a flow cookie is free): bounded per source (limits.go).
	done, ok := s.costly(w, r, "login", true, true)
	if !ok {
		return
	}
	u, status, err := s.finishSignIn(r.Context(), st, f, code)
	done()
	if err != nil {
		s.log.Warn("sign-in failed", "strategy", name, "error", err.Error())
		s.renderFailure(w, status, "Sign-in failed. Please try again.")
		return
	}
	id, err := s.newSession(r.Context(), u, name)
	if err != nil {
		s.log.Warn("sign-in failed", "strategy", name, "identity", u.Identity(), "error", err.Error())
		s.renderFailure(w, http.StatusServiceUnavailable, "Sign-in failed. Please try again.")
		return
	}
	s.setSessionCookie(w, id)
	s.log.Info("signed in", "strategy", name, "identity", u.Identity())
	if f.Mode == modeRedirect {
		s.renderContinue(w, s.origin()+f.ReturnTo)
		return
	}
	s.renderLoginPage(w, u, name)
}

// flowOf is the request's flow for strategy and state.
func (s *Service) flowOf(r *http.Request, strategy, state string) (flow, error) {
	if state == "" || len(state) > 256 {
		return flow{}, errFlowState
	}
	c, err := r.Cookie(flowCookieName(state))
	if err != nil {
		return flow{}, errFlowMissing
	}
	return s.openFlow(c.Value, strategy, state, s.cfg.Now())
}

// finishSignIn exchanges the code and stores what the sign-in yields. The
// status is the HTTP status of a failure.
func (s *Service) finishSignIn(ctx context.Context, st Strategy, f flow, code string) (User, int, error) {
	u, g, err := st.Exchange(ctx, code, f.Nonce, f.Verifier, s.redirectURL(f.Strategy))
	if err != nil {
		if errors.Is(err, ErrUserGone) {
			return User{}, http.StatusForbidden, err
		}
		return User{}, http.StatusBadRequest, err
	}
	if u.ProviderID == "" {
		u.ProviderID = f.Strategy
	}
	if u.ProviderID != f.Strategy || u.IdentityID == "" {
		return User{}, http.StatusInternalServerError, errors.New("login: strategy returned a user of another provider or without an id")
	}
	if g.Strategy == "" {
		g.Strategy = f.Strategy
	}
	// Single use of the flow, recorded only now that the provider vouched
	// for the user (so nothing is written for an unauthenticated caller).
	now := s.cfg.Now()
	_, err = s.backend.Apply(ctx, Command{Op: OpPut, Time: now, Create: true, Record: Record{
		Kind: KindFlow, Key: KeyOf(f.State), Identity: u.Identity(), Created: now, Expires: now.Add(FlowLifetime + flowClockSkew),
	}})
	if errors.Is(err, ErrConflict) {
		return User{}, http.StatusBadRequest, errors.New("login: flow already used (replayed callback)")
	} else if err != nil {
		return User{}, http.StatusServiceUnavailable, err
	}
	if err := s.storeGrant(ctx, u.Identity(), g); err != nil {
		return User{}, http.StatusServiceUnavailable, err
	}
	return u, 0, nil
}

// pageTemplate is every HTML page of browser sign-in. html/template
// escapes by context: Message is marshalled as JSON inside the script,
// Origin becomes a JS string, Text is HTML-escaped.
var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">{{if .Refresh}}<meta http-equiv="refresh" content="0; url={{.Refresh}}">{{end}}<title>{{.Title}}</title></head>
<body>
<p id="status">{{.Text}}</p>
{{if .Home}}<p><a href="{{.Home}}">Continue</a></p>{{end}}
{{if .Message}}<script nonce="{{.Nonce}}">
(function () {
  var message = {{.Message}};
  var origin = {{.Origin}};
  if (window.opener && !window.opener.closed) {
    window.opener.postMessage(message, origin);
    window.close();
  }
})();
</script>{{end}}
</body>
</html>
`))

type pageData struct {
	Title, Text, Nonce, Origin, Home string
	Refresh                          string // navigate there at once (meta refresh)
	Message                          any
}

// loginMessage is what the popup posts to its opener (web-server's shape).
type loginMessage struct {
	Type               string `json:"type"`
	EncodedProfile     string `json:"encodedProfile"`
	IdentityProviderID string `json:"identityProviderId"`
	ProviderExpires    string `json:"providerExpires"`
}

// loginProfile is the profile inside encodedProfile (base64 of its JSON).
type loginProfile struct {
	Provider    string `json:"provider"`
	Identity    string `json:"identity"`
	DisplayName string `json:"displayName,omitempty"`
}

func (s *Service) renderLoginPage(w http.ResponseWriter, u User, strategy string) {
	prof, _ := json.Marshal(loginProfile{Provider: strategy, Identity: u.Identity(), DisplayName: u.DisplayName})
	pe := u.ProviderExpires
	if pe.IsZero() {
		pe = s.cfg.Now().Add(time.Duration(s.cfg.SessionLifetime))
	}
	s.renderPage(w, http.StatusOK, pageData{
		Title: "Signed in", Text: "You are signed in. You can close this window.", Home: s.cfg.PublicURL + "/",
		Origin: s.origin(),
		Message: loginMessage{Type: "login", EncodedProfile: base64.StdEncoding.EncodeToString(prof),
			IdentityProviderID: strategy, ProviderExpires: protocol.FormatTime(pe)},
	})
}

// renderContinue ends a redirect-mode sign-in with a page that navigates
// to target itself, rather than a 303. The callback is the end of a
// redirect chain that began at the provider, on another site, and
// browsers do not send a SameSite=Strict cookie on a navigation whose
// chain crossed sites: after a 303 the front end would find itself signed
// out. A navigation started by a page of this origin is same-site, so the
// new session cookie comes along. Meta refresh, not script: the page's CSP
// allows no script, and the link is there for a browser that refuses to
// refresh.
func (s *Service) renderContinue(w http.ResponseWriter, target string) {
	w.Header().Set("Referrer-Policy", "no-referrer")
	s.renderPage(w, http.StatusOK, pageData{Title: "Signed in", Text: "You are signed in.", Home: target, Refresh: target})
}

func (s *Service) renderFailure(w http.ResponseWriter, status int, text string) {
	s.renderPage(w, status, pageData{Title: "Sign-in failed", Text: text, Home: s.cfg.PublicURL + "/"})
}

// renderPage writes a page with a strict Content-Security-Policy: nothing
// loads, only the script carrying this response's nonce runs, no framing.
// no-store and no-referrer: the callback URL carries the provider's code.
func (s *Service) renderPage(w http.ResponseWriter, status int, d pageData) {
	d.Nonce = randomToken(18)
	setPageHeaders(w.Header(), "default-src 'none'; script-src 'nonce-"+d.Nonce+"'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	if err := pageTemplate.Execute(w, d); err != nil {
		s.log.Warn("rendering a sign-in page failed", "error", err.Error())
	}
}

// setPageHeaders sets the headers of every HTML page the login service
// writes: its Content-Security-Policy csp; never stored (a page may show
// what only this user may see); no Referer from it (its URL may carry a
// provider's code or an OAuth2 transaction); no MIME sniffing; no framing.
func setPageHeaders(h http.Header, csp string) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
}

// serveLogout is POST /login/logout: the session ends on every node (a
// replicated delete; other nodes Sync before every session lookup).
// Cross-site POSTs are refused (Sec-Fetch-Site / Origin, Go's
// CrossOriginProtection), so a foreign page cannot sign a user out.
func (s *Service) serveLogout(w http.ResponseWriter, r *http.Request) {
	if err := s.crossOrigin().Check(r); err != nil {
		s.log.Info("cross-origin logout refused", "origin", truncate(r.Header.Get("Origin"), 128))
		s.writeError(w, "logout", protocol.CodeInsufficientScopes, "Cross-origin logout requests are not allowed", nil)
		return
	}
	if id, ok := sessionID(r); ok {
		_, err := s.backend.Apply(r.Context(), Command{Op: OpDelete, Time: s.cfg.Now(), Kind: KindSession, Keys: []string{KeyOf(id)}})
		if err != nil {
			s.log.Warn("ending a session failed", "error", err.Error())
			w.Header().Set("Retry-After", "1")
			s.writeAPIError(w, "logout", &protocol.APIError{Code: protocol.CodeInternalServerError,
				Status: http.StatusServiceUnavailable, Message: "Could not end the session; retry later."}, nil)
			return
		}
	}
	s.clearSessionCookie(w)
	w.Header().Set("Cache-Control", "no-store")
	if isFormPost(r) {
		r.Body = http.MaxBytesReader(w, r.Body, 4096)
		to := "/"
		if rt := r.PostFormValue("returnTo"); validReturnTo(rt) {
			to = rt
		}
		http.Redirect(w, r, s.origin()+to, http.StatusSeeOther)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// crossOrigin trusts the public URL's origin (the Host header may differ
// behind a proxy) and the configured front-end origins.
func (s *Service) crossOrigin() *http.CrossOriginProtection {
	p := http.NewCrossOriginProtection()
	_ = p.AddTrustedOrigin(s.origin())
	for _, o := range s.cfg.AllowedOrigins {
		_ = p.AddTrustedOrigin(o)
	}
	return p
}

func isFormPost(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/form-data")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (s *Service) serveNotFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, "login", protocol.CodeResourceNotFound, "No such login endpoint: "+r.Method+" "+r.URL.Path, nil)
}
