package login

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

// Defaults of a registered app.
const (
	// DefaultAppMaxExpires bounds the lifetime of an app's clients.
	DefaultAppMaxExpires = "1 year"
	// DefaultAppResponseType is the authorization-code flow.
	DefaultAppResponseType = "code"
)

// ErrBadApp is wrapped by every start-up error about a registered app.
var ErrBadApp = errors.New("login: bad registered app")

// appClientID is the pattern of an app's OAuth2 client id: it becomes part
// of a Taskcluster clientId (<identity>/<app>-<suffix>), so nothing that
// would add a segment or need escaping.
var appClientID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// fillApps checks the registered apps and fills their defaults. Every
// error names the app (and the field), so a bad configuration stops the
// node at start instead of failing some user's sign-in later.
func (c *Config) fillApps() error {
	seen := map[string]bool{}
	for i := range c.Apps {
		a := &c.Apps[i]
		if !appClientID.MatchString(a.ClientID) {
			return fmt.Errorf("%w %d: clientId %q must match %s", ErrBadApp, i, a.ClientID, appClientID)
		}
		if seen[a.ClientID] {
			return fmt.Errorf("%w %s: registered twice", ErrBadApp, a.ClientID)
		}
		seen[a.ClientID] = true
		if err := a.fill(); err != nil {
			return fmt.Errorf("%w %s: %v", ErrBadApp, a.ClientID, err)
		}
	}
	return nil
}

func (a *App) fill() error {
	setDefault(&a.ResponseType, DefaultAppResponseType)
	if a.ResponseType != "code" && a.ResponseType != "token" {
		return fmt.Errorf("responseType %q: want code or token", a.ResponseType)
	}
	if len(a.Scopes) == 0 {
		return errors.New("scope: list at least one scope")
	}
	for _, sc := range a.Scopes {
		if sc == "" || !scopeengine.ValidScope(sc) || strings.Contains(sc, " ") {
			return fmt.Errorf("scope %q: a scope is printable ASCII without spaces", sc)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(a.Scopes)))) != len(a.Scopes) {
		return errors.New("scope: lists a scope twice")
	}
	if len(a.RedirectURIs) == 0 {
		return errors.New("redirectUri: list at least one")
	}
	for _, u := range a.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return fmt.Errorf("redirectUri %q: %v", u, err)
		}
	}
	setDefault(&a.MaxExpires, DefaultAppMaxExpires)
	now := time.Now()
	t, err := protocol.FromNow(a.MaxExpires, now)
	if err != nil {
		return fmt.Errorf("maxExpires: %v", err)
	}
	if !t.After(now) {
		return fmt.Errorf("maxExpires %q: must be in the future", a.MaxExpires)
	}
	return nil
}

// checkRedirectURI accepts an absolute https URI, or http on a loopback
// host (a native app listening locally, RFC 8252 §7.3), without fragment
// (RFC 6749 §3.1.2) and without user information.
func checkRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return err
	case u.Host == "" || u.Opaque != "":
		return errors.New("want an absolute URI")
	case u.Fragment != "" || u.RawFragment != "" || strings.Contains(raw, "#"):
		return errors.New("a redirect URI has no fragment (RFC 6749 §3.1.2)")
	case u.User != nil:
		return errors.New("no user information")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
		return nil
	}
	return errors.New("want https (http only on localhost, 127.0.0.1 or ::1)")
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// app is the registered app with this OAuth2 client id.
func (s *Service) app(clientID string) (*App, bool) {
	for i := range s.cfg.Apps {
		if s.cfg.Apps[i].ClientID == clientID {
			return &s.cfg.Apps[i], true
		}
	}
	return nil, false
}

// redirectOrigin reports whether origin is that of a registered redirect
// URI: only the apps' own pages may call the token and credentials
// endpoints from a browser.
func (s *Service) redirectOrigin(origin string) bool {
	if origin == "" {
		return false
	}
	for _, a := range s.cfg.Apps {
		for _, r := range a.RedirectURIs {
			if u, err := url.Parse(r); err == nil && u.Scheme+"://"+u.Host == origin {
				return true
			}
		}
	}
	return false
}
