package webui

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tcauth/tcauth/controlplane/login"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

//go:embed templates static
var assets embed.FS

// pages are the parsed templates: one set per file of templates/pages/,
// each with the layout and the partials (every page defines "content").
type pages struct{ sets map[string]*template.Template }

func loadPages() (*pages, error) {
	names, err := fs.Glob(assets, "templates/pages/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{sets: map[string]*template.Template{}}
	for _, n := range names {
		base := path.Base(n)
		t, err := template.New(base).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/partials/*.html", n)
		if err != nil {
			return nil, fmt.Errorf("webui: template %s: %w", base, err)
		}
		p.sets[base] = t
	}
	return p, nil
}

// funcs are the template helpers.
var funcs = template.FuncMap{
	// seg escapes one path segment as encodeURIComponent (clientIds and
	// roleIds contain "/").
	"seg":        tcclient.PathSegment,
	"clientPath": func(id string) string { return "/auth/clients/" + tcclient.PathSegment(id) },
	"rolePath":   func(id string) string { return "/auth/roles/" + tcclient.PathSegment(id) },
	"time":       formatTime,
	"lines":      func(ss []string) string { return strings.Join(ss, "\n") },
}

// formatTime shows an API timestamp (or time.Time) in UTC, "" as "—".
func formatTime(v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case string:
		p, err := time.Parse(time.RFC3339, x)
		if err != nil {
			return x
		}
		t = p
	}
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// view is what every page template gets: the layout's fields and the
// page's own Data.
type view struct {
	Title    string
	Identity string // "" signed out
	Expires  time.Time
	CSRF     string
	Path     string // the current path and query (sign-out returns to sign-in)
	Data     any
	Error    *errorView
}

// Render writes page (a file of templates/pages/) with data as the
// answer. The page is rendered into a buffer first, so a template error
// is a 500 page, never half a page.
func (q *Request) Render(status int, page, title string, data any) error {
	return q.render(status, page, view{Title: title, Data: data})
}

func (q *Request) render(status int, page string, v view) error {
	t, ok := q.s.pages.sets[page]
	if !ok {
		return fmt.Errorf("webui: no page template %q", page)
	}
	v.Identity, v.Expires, v.CSRF = q.User.Identity, q.User.Expires, q.CSRFToken()
	v.Path = q.R.URL.RequestURI()
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		return fmt.Errorf("webui: rendering %s: %w", page, err)
	}
	h := q.W.Header()
	setPageHeaders(h, q.formActions)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	q.W.WriteHeader(status)
	if q.R.Method != http.MethodHead {
		_, _ = q.W.Write(buf.Bytes())
	}
	return nil
}

// AllowFormAction adds an origin to the page's CSP form-action (the tools
// flow's confirmation form, whose answer redirects to a loopback callback:
// browsers apply form-action to that redirect).
func (q *Request) AllowFormAction(origin string) { q.formActions = append(q.formActions, origin) }

// setPageHeaders sets the security headers of every UI page: a CSP that
// allows only this origin's script and style files (no inline script or
// style, no framing, no <base>, forms only to this origin and the given
// extra origins), no referrer (URLs carry ids and, in the tools flow, the
// callback), and no-store (pages show a user's data and sometimes a new
// access token).
func setPageHeaders(h http.Header, formActions []string) {
	fa := "'self'"
	for _, o := range formActions {
		fa += " " + o
	}
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action "+fa+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// Problem is a page error with its status in Taskcluster's words (code
// and message), for errors that are not API answers.
type Problem struct {
	Status  int
	Code    string
	Message string
}

func (p *Problem) Error() string { return p.Code + ": " + p.Message }

// errorView is an error as the error partial shows it.
type errorView struct {
	Status   int
	Code     string
	Message  string
	Missing  string // InsufficientScopes: the unsatisfied part
	Required string // InsufficientScopes: the whole required expression
}

// Sections of the InsufficientScopes message (protocol.InsufficientScopesMessage).
var (
	reMissing  = regexp.MustCompile("(?s)is missing the following scopes:\\s*```\\s*\\n(.*?)\\n```")
	reRequired = regexp.MustCompile("(?s)satisfy the following scope expression:\\s*```\\s*\\n(.*?)\\n```")
)

// ErrorView turns err into what the error partial shows and its status.
func ErrorView(err error) *errorView {
	var te *tcclient.Error
	var p *Problem
	switch {
	case errors.As(err, &te):
		ev := &errorView{Status: te.StatusCode, Code: te.Code, Message: apiMessage(te.Message)}
		if ev.Status < 400 {
			ev.Status = http.StatusBadGateway
		}
		if ev.Code == "" {
			ev.Code = http.StatusText(ev.Status)
		}
		if te.Code == protocol.CodeInsufficientScopes {
			if m := reMissing.FindStringSubmatch(te.Message); m != nil {
				ev.Missing = m[1]
			}
			if m := reRequired.FindStringSubmatch(te.Message); m != nil {
				ev.Required = m[1]
			}
			if ev.Missing != "" || ev.Required != "" {
				// The expressions are shown on their own below the first
				// sentence ("Client ID … does not have sufficient scopes").
				first, _, _ := strings.Cut(ev.Message, "\n")
				ev.Message = strings.TrimSuffix(strings.TrimSuffix(first, ":"), " and is missing the following scopes") + "."
			}
		}
		return ev
	case errors.As(err, &p):
		return &errorView{Status: p.Status, Code: p.Code, Message: p.Message}
	case errors.Is(err, login.ErrCannotIssue):
		return &errorView{Status: http.StatusInternalServerError, Code: protocol.CodeInternalServerError,
			Message: "You are signed in, but the deployment cannot issue credentials for you (its credentials issuer lacks scopes for your roles, or you hold too many roles). Ask an administrator."}
	case errors.Is(err, login.ErrProviderUnavailable), errors.Is(err, login.ErrUnavailable):
		return &errorView{Status: http.StatusServiceUnavailable, Code: protocol.CodeInternalServerError,
			Message: "The sign-in provider or the cluster cannot answer right now; your session is kept. Retry in a moment."}
	}
	return nil
}

// apiMessage is the part of an API error message a person reads (the
// "---" block of method/code/status/time cut off).
func apiMessage(m string) string {
	if i := strings.Index(m, "\n\n---\n"); i >= 0 {
		m = m[:i]
	}
	return strings.TrimSpace(m)
}

// renderError answers err as an error page with its status.
func (q *Request) renderError(err error) {
	if errors.Is(err, login.ErrSignedOut) {
		q.Redirect(q.s.signInURL(q.R))
		return
	}
	ev := ErrorView(err)
	if ev == nil {
		id := protocol.Slugid()
		q.s.log.Error("web UI page failed", "path", q.R.URL.Path, "incidentId", id, "error", err.Error())
		ev = &errorView{Status: http.StatusInternalServerError, Code: protocol.CodeInternalServerError,
			Message: "Internal Server Error, incidentId " + id + "."}
	}
	if ev.Status == http.StatusServiceUnavailable {
		q.W.Header().Set("Retry-After", "1")
	}
	if rerr := q.render(ev.Status, "error.html", view{Title: ev.Code, Error: ev}); rerr != nil {
		q.s.log.Error("rendering the error page failed", "error", rerr.Error())
		http.Error(q.W, ev.Code+": "+ev.Message, ev.Status)
	}
}

// staticHandler serves the embedded static files (and nothing else: no
// directory listings).
func staticHandler() http.Handler {
	sub, _ := fs.Sub(assets, "static")
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, staticPrefix)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if st, err := fs.Stat(sub, name); name == "" || strings.Contains(name, "/") || err != nil || st.IsDir() {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "public, max-age=3600")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + name
		files.ServeHTTP(w, r2)
	})
}
