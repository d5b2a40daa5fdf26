package sidecar

import (
	"net/http"
	"strings"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

// The identity headers the sidecar sets. Every inbound header in the
// X-Taskcluster- namespace is removed first (see stripIdentity), so the
// upstream can believe any X-Taskcluster-* header it sees.
const (
	HeaderPrefix          = "X-Taskcluster-"
	HeaderClientID        = "X-Taskcluster-Client-Id"        // verified clientId; absent for anonymous callers
	HeaderScopes          = "X-Taskcluster-Scopes"           // JSON array of the caller's expanded scopes
	HeaderScopesTruncated = "X-Taskcluster-Scopes-Truncated" // "true": Scopes holds only the route's relevant scopes
	HeaderExpires         = "X-Taskcluster-Expires"          // credentials' expiry, ISO 8601 (absent: never)
	HeaderAuthScheme      = "X-Taskcluster-Auth-Scheme"      // "hawk", "bewit" or "none"
	HeaderAuthStale       = "X-Taskcluster-Auth-Stale"       // seconds the verification data may be behind (control plane unreachable)
	HeaderPayloadHash     = "X-Taskcluster-Payload-Hash"     // forward-auth: the Hawk hash attribute the upstream may check
	HeaderRoute           = "X-Taskcluster-Route"            // name of the route policy entry that matched
	HeaderError           = "X-Taskcluster-Error"            // forward-auth 4xx/5xx: the error body as one line of JSON, for nginx's auth_request_set
)

const normalizedPrefix = "x-taskcluster-"

// normalizeHeaderName lower-cases a header name and maps '_' to '-', the
// way many servers and frameworks (CGI, WSGI, Rails, nginx with
// underscores_in_headers) fold names: X_Taskcluster-Client-Id must not
// slip past as a different header (oauth2-proxy CVE-2025-64484).
func normalizeHeaderName(name string) string {
	b := make([]byte, len(name))
	for i := 0; i < len(name); i++ {
		b[i] = foldHeaderByte(name[i])
	}
	return string(b)
}

func foldHeaderByte(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	case c == '_':
		return '-'
	}
	return c
}

func isIdentityHeader(name string) bool {
	if len(name) < len(normalizedPrefix) {
		return false
	}
	for i := 0; i < len(normalizedPrefix); i++ {
		if foldHeaderByte(name[i]) != normalizedPrefix[i] {
			return false
		}
	}
	return true
}

// stripIdentity removes every header that normalises into the
// X-Taskcluster- namespace, and such names from Connection (so nothing
// downstream can be asked to drop a header the sidecar set).
func stripIdentity(h http.Header) {
	for name := range h {
		if isIdentityHeader(name) {
			delete(h, name)
		}
	}
	if conn, ok := h["Connection"]; ok {
		var keep []string
		for _, v := range conn {
			for _, tok := range strings.Split(v, ",") {
				if t := strings.TrimSpace(tok); t != "" && !isIdentityHeader(t) {
					keep = append(keep, t)
				}
			}
		}
		if len(keep) == 0 {
			delete(h, "Connection")
		} else {
			h["Connection"] = []string{strings.Join(keep, ", ")}
		}
	}
}

// identity is what the sidecar tells the upstream about a request.
type identity struct {
	scheme   string // hawk, bewit, none
	clientID string
	scopes   []string
	expires  string
	stale    string
	route    string
	// required is the route's rendered expression, for truncation.
	required *scopeengine.Expr
	hash     string
}

func identityOf(res *verifyResult, route string) identity {
	id := identity{scheme: "none", route: route}
	if res == nil {
		return id
	}
	switch res.Status {
	case protocol.StatusSuccess:
		id.scheme = "hawk"
		if res.Bewit {
			id.scheme = "bewit"
		}
		id.clientID = res.ClientID
		id.hash = res.Hash
		if !res.Expires.IsZero() {
			id.expires = protocol.FormatTime(res.Expires)
		}
	}
	id.scopes = res.Scopes
	if res.Stale > 0 {
		id.stale = staleSeconds(res.Stale)
	}
	return id
}

// set writes the identity headers. Scopes are a JSON array (scopes are
// printable ASCII, so the value is a valid header value); when the array
// is longer than max bytes, only the scopes of the caller that the route's
// expression used are sent, flagged with X-Taskcluster-Scopes-Truncated.
// The names are canonical already, so the map is written directly.
func (id *identity) set(h http.Header, max int) {
	h[HeaderAuthScheme] = []string{id.scheme}
	if id.route != "" {
		h[HeaderRoute] = []string{id.route}
	}
	if id.clientID != "" {
		h[HeaderClientID] = []string{id.clientID}
	}
	if id.expires != "" {
		h[HeaderExpires] = []string{id.expires}
	}
	if id.stale != "" {
		h[HeaderAuthStale] = []string{id.stale}
	}
	if id.hash != "" {
		h[HeaderPayloadHash] = []string{id.hash}
	}
	if id.scopes != nil {
		var v string
		// Measured before it is built: a client holding a broad assume:…*
		// has thousands of scopes, and rendering them all on every request
		// only to find they do not fit was most of such a request's cost.
		if scopesJSONLen(id.scopes) <= max {
			v = scopesJSON(id.scopes)
		} else {
			var relevant []string
			if id.required != nil {
				relevant, _ = id.required.ScopesSatisfying(scopeengine.ScopeSet(id.scopes))
			}
			if v = scopesJSON(relevant); len(v) > max {
				v = "[]"
			}
			h[HeaderScopesTruncated] = []string{"true"}
		}
		h[HeaderScopes] = []string{v}
	}
}

// scopesJSONLen is len(scopesJSON(s)), without building it.
func scopesJSONLen(s []string) int {
	n := 2 + max(0, len(s)-1) // brackets and commas
	for _, x := range s {
		n += 2 + len(x)
		for j := 0; j < len(x); j++ {
			switch c := x[j]; {
			case c == '"' || c == '\\':
				n++
			case c < 0x20 || c >= 0x7f:
				n += 5
			}
		}
	}
	return n
}

// scopesJSON renders scopes as a compact JSON array. Valid scopes are
// printable ASCII, so only '"' and '\' need escaping; anything else is
// escaped as \u00XX to stay valid JSON whatever the input.
func scopesJSON(s []string) string {
	n := 2
	for _, x := range s {
		n += len(x) + 3
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteByte('[')
	for i, x := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for j := 0; j < len(x); j++ {
			switch c := x[j]; {
			case c == '"' || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c < 0x20 || c >= 0x7f:
				const hex = "0123456789abcdef"
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&15])
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('"')
	}
	b.WriteByte(']')
	return b.String()
}
