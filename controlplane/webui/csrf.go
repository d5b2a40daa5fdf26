package webui

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
)

// CSRF defence, two layers on every state-changing request:
//   - Go's http.CrossOriginProtection (Sec-Fetch-Site, else Origin vs
//     Host, with the public origin trusted for deployments behind a proxy
//     that rewrites Host) refuses cross-origin posts from browsers;
//   - a per-session form token: every form carries CSRFField =
//     HMAC-SHA256(the session's FormKey, csrfPurpose), checked in constant
//     time. FormKey is derived from the HttpOnly session cookie, so the
//     token is the same on every node and for every form of the session,
//     and no other site can compute it (an older browser without fetch
//     metadata or Origin still needs it).

// CSRFField is the name of the hidden form field carrying the token.
const CSRFField = "csrf"

// csrfPurpose separates the form token from other HMACs of the form key.
const csrfPurpose = "tcauth/webui/form-token/v1"

// maxFormBytes bounds a form post (a scopes textarea of some thousand
// scopes fits).
const maxFormBytes = 1 << 20

// CSRFToken is the form token of the request's session ("" signed out).
func (q *Request) CSRFToken() string {
	if len(q.User.FormKey) == 0 {
		return ""
	}
	m := hmac.New(sha256.New, q.User.FormKey)
	m.Write([]byte(csrfPurpose))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkForm parses the posted form (bounded) and checks its token; on
// failure it answers 403 and returns false.
func (s *Server) checkForm(q *Request) bool {
	q.R.Body = http.MaxBytesReader(q.W, q.R.Body, maxFormBytes)
	if err := q.R.ParseForm(); err != nil {
		q.renderError(&Problem{Status: http.StatusBadRequest, Code: "InputError", Message: "The form could not be read (too large or malformed)."})
		return false
	}
	want := q.CSRFToken()
	got := q.R.PostForm.Get(CSRFField)
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		s.log.Info("web UI form refused: missing or wrong CSRF token", "path", q.R.URL.Path, "identity", q.User.Identity)
		q.renderError(&Problem{Status: http.StatusForbidden, Code: "InsufficientScopes",
			Message: "This form is not valid for your session (it is stale, or was sent by another site). Reload the page and try again."})
		return false
	}
	return true
}

// serveCrossOrigin answers a post refused by CrossOriginProtection.
func (s *Server) serveCrossOrigin(w http.ResponseWriter, r *http.Request) {
	s.log.Info("web UI cross-origin post refused", "path", r.URL.Path, "origin", truncate(r.Header.Get("Origin"), 128))
	q := &Request{W: w, R: r, s: s}
	setPageHeaders(w.Header(), nil)
	q.renderError(&Problem{Status: http.StatusForbidden, Code: "InputError", Message: "Cross-origin requests are not allowed: this form was sent by another site."})
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
