package webui

import (
	"regexp"

	"github.com/tcauth/tcauth/protocol"
)

// creds are a client's credentials as a tool gets them.
func creds(clientID, accessToken string) protocol.Credentials {
	return protocol.Credentials{ClientID: clientID, AccessToken: accessToken}
}

// tokenRe finds an access token (two slugids, 44 characters of the
// URL-safe base64 alphabet) in a page's text.
var tokenRe = regexp.MustCompile(`(?:^|[^A-Za-z0-9_-])([A-Za-z0-9_-]{44})(?:$|[^A-Za-z0-9_-])`)

// tokensIn returns the access-token-shaped strings of s.
func tokensIn(s string) []string {
	var out []string
	for _, m := range tokenRe.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

func contains(list []string, want string) bool {
	for _, s := range list {
		if s == want {
			return true
		}
	}
	return false
}
