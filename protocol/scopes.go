package protocol

import "strings"

// The protocol package imports nothing of ours, so the few scope rules the
// verifier itself needs live here in their smallest form. The real algebra
// (roles, expressions, normalisation) is scopeengine's, reached through
// ScopeOps.

// anonymousScope is merged into every authenticated and anonymous caller's
// scopes (docs/protocol.md §9).
const anonymousScope = "assume:anonymous"

// ValidScope reports whether s is a valid scope: printable ASCII 0x20–0x7E,
// the empty string included (docs/scopes.md §1).
func ValidScope(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// scopeSatisfies is plain trailing-star satisfaction (docs/scopes.md §2).
func scopeSatisfies(have, need string) bool {
	if have == need {
		return true
	}
	n := len(have)
	return n > 0 && have[n-1] == '*' && strings.HasPrefix(need, have[:n-1])
}

// scopeCompare is the reference's scopeCompare (docs/scopes.md §3): a trailing
// star sorts before the same prefix without it.
func scopeCompare(a, b string) int {
	aStar := len(a) > 0 && a[len(a)-1] == '*'
	bStar := len(b) > 0 && b[len(b)-1] == '*'
	if aStar {
		a = a[:len(a)-1]
	}
	if bStar {
		b = b[:len(b)-1]
	}
	if a == b {
		switch {
		case aStar == bStar:
			return 0
		case aStar:
			return -1
		default:
			return 1
		}
	}
	return strings.Compare(a, b)
}

// mergeScopeSets is the reference's sorted two-pointer merge. It is used
// as-is by the identity expander (testAuthenticate): applied to an unsorted
// caller list it keeps the caller's order, e.g. ["assume:anonymous",
// "test:*", "b:x", "a:x"] (docs/protocol.md §12) — [quirk] copied, because the
// testAuthenticate vectors depend on it.
func mergeScopeSets(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		var s string
		switch c := scopeCompare(a[i], b[j]); {
		case a[i] == b[j]:
			s = a[i]
			i++
			j++
		case c < 0:
			s = a[i]
			i++
		default:
			s = b[j]
			j++
		}
		out = append(out, s)
		if n := len(s); n > 0 && s[n-1] == '*' {
			prefix := s[:n-1]
			for i < len(a) && strings.HasPrefix(a[i], prefix) {
				i++
			}
			for j < len(b) && strings.HasPrefix(b[j], prefix) {
				j++
			}
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// identityScopes is the ScopeOps used when Authenticator.Scopes is nil: no
// roles, plain satisfaction. Expand only merges (which is where
// assume:anonymous enters), matching the reference validator created
// without an expander.
type identityScopes struct{}

func (identityScopes) Expand(scopes []string) []string { return scopes }

func (identityScopes) Satisfies(have []string, need string) bool {
	for _, h := range have {
		if scopeSatisfies(h, need) {
			return true
		}
	}
	return false
}
