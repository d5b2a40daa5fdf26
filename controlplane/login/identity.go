package login

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf16"
)

// Identity is <identityProviderId>/<identityId>: the user's temporary
// credentials are named after it and their clients live under it.
func (u User) Identity() string { return u.ProviderID + "/" + u.IdentityID }

// Scopes are the user's scopes: assume:<role> for each role (deduplicated,
// in discovery order), then assume:login-identity:<identity> — the order
// web-server's User.scopes() gives, kept so certificates match byte for byte.
func (u User) Scopes() []string {
	seen := make(map[string]bool, len(u.Roles))
	out := make([]string, 0, len(u.Roles)+1)
	for _, r := range u.Roles {
		if !seen[r] {
			seen[r] = true
			out = append(out, "assume:"+r)
		}
	}
	return append(out, "assume:login-identity:"+u.Identity())
}

// Encode makes a provider's user id safe for a clientId: "!" becomes
// "!21", and every UTF-16 code unit outside [A-Za-z0-9@:.+|_-] becomes "!"
// and its upper-case hex (web-server's codec: one hex digit is padded to
// two, a unit above 0xFF gives more digits, so only ASCII round-trips).
func Encode(s string) string {
	var b strings.Builder
	for _, u := range utf16.Encode([]rune(s)) {
		switch {
		case u == '!':
			b.WriteString("!21")
		case u < 0x80 && identityByte(byte(u)):
			b.WriteByte(byte(u))
		default:
			fmt.Fprintf(&b, "!%02X", u)
		}
	}
	return b.String()
}

func identityByte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("@:.+|_-", c) >= 0
}

// Decode reverses Encode for ASCII ("!" → "%", then percent-decoding); an
// encoding of a non-ASCII unit fails as it does in web-server.
func Decode(s string) (string, error) {
	out, err := url.PathUnescape(strings.ReplaceAll(s, "!", "%"))
	if err != nil {
		return "", err
	}
	for i := 0; i < len(out); i++ {
		if out[i] >= 0x80 {
			return "", fmt.Errorf("login: %q does not decode to ASCII", s)
		}
	}
	return out, nil
}

// IdentityFromClientID is the identity a clientId belongs to: its first
// two "/"-separated segments; ok is false without a second segment.
func IdentityFromClientID(clientID string) (string, bool) {
	provider, rest, ok := strings.Cut(clientID, "/")
	if !ok {
		return "", false
	}
	id, _, _ := strings.Cut(rest, "/")
	return provider + "/" + id, true
}

// KeyOf is the store key of a secret (session cookie, code, token): its
// SHA-256 in hex. The secret itself is never stored.
func KeyOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
