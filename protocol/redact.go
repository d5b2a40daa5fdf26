package protocol

import "strings"

// maxLoggedQuery bounds the query string a request line carries.
const maxLoggedQuery = 256

// RedactURI returns a request-target fit for a log line: every bewit
// parameter (a credential: anyone holding the URL may use it until it
// expires) removed from the query, and the query bounded. The path is kept.
func RedactURI(uri string) string {
	path, q, ok := strings.Cut(uri, "?")
	if !ok {
		return path
	}
	parts := strings.Split(q, "&")
	kept := parts[:0]
	for _, p := range parts {
		// Names are compared as sent and unescaped: "b%65wit" is a bewit
		// to a server that unescapes the query.
		name, _, _ := strings.Cut(p, "=")
		if strings.EqualFold(unescapeName(name), "bewit") {
			continue
		}
		kept = append(kept, p)
	}
	q = strings.Join(kept, "&")
	if q == "" {
		return path
	}
	if len(q) > maxLoggedQuery {
		q = q[:maxLoggedQuery] + "…"
	}
	return path + "?" + q
}

func unescapeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func ishex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
