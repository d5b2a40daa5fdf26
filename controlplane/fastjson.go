package controlplane

import (
	"github.com/tcauth/tcauth/protocol"
)

// appendSuccessPretty writes a successful authenticateHawk result exactly
// as marshalPretty(res) would, without reflection: authenticateHawk is the
// hot path of every service (and of remote-mode sidecars), and generic
// indenting was a sixth of its cost. ok=false when a string needs escaping
// (then the caller falls back to marshalPretty); scopes and clientIds are
// printable ASCII by their patterns, so that is rare.
func appendSuccessPretty(b []byte, res protocol.Result) ([]byte, bool) {
	if res.Status != protocol.StatusSuccess {
		return b, false
	}
	str := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
				return false
			}
		}
		b = append(b, '"')
		b = append(b, s...)
		b = append(b, '"')
		return true
	}
	b = append(b, "{\n  \"status\": "...)
	if !str(string(res.Status)) {
		return b, false
	}
	b = append(b, ",\n  \"scheme\": "...)
	if !str(res.Scheme) {
		return b, false
	}
	if !res.Expires.IsZero() {
		b = append(b, ",\n  \"expires\": "...)
		str(protocol.FormatTime(res.Expires))
	}
	b = append(b, ",\n  \"scopes\": ["...)
	for i, s := range res.Scopes {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n    "...)
		if !str(s) {
			return b, false
		}
	}
	if len(res.Scopes) > 0 {
		b = append(b, "\n  "...)
	}
	b = append(b, "],\n  \"clientId\": "...)
	if !str(res.ClientID) {
		return b, false
	}
	if res.Hash != "" {
		b = append(b, ",\n  \"hash\": "...)
		if !str(res.Hash) {
			return b, false
		}
	}
	return append(b, "\n}"...), true
}
