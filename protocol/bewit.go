package protocol

import (
	"encoding/base64"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Bewit is a decoded bewit token: id\exp\mac\ext.
type Bewit struct{ ID, Exp, MAC, Ext string }

// HasBewit reports whether resource would be authenticated as a bewit
// request, i.e. matches the reference's `^/.*[?&]bewit=`. A request with
// both this and an Authorization header is the caller's to reject ("Cannot
// use two authentication schemes at once…", docs/protocol.md §10); Authenticate
// itself only looks at bewits when there is no Authorization header.
func HasBewit(resource string) bool {
	if resource == "" || resource[0] != '/' {
		return false
	}
	limit := firstLineTerminator(resource)
	for from := 1; ; {
		i := strings.Index(resource[from:], "bewit=")
		if i < 0 {
			return false
		}
		k := from + i - 1 // position of the separator
		if k > limit {
			return false
		}
		if k >= 1 && (resource[k] == '?' || resource[k] == '&') {
			return true
		}
		from += i + 1
	}
}

// firstLineTerminator is the index of the first JavaScript line
// terminator in s, or len(s).
func firstLineTerminator(s string) int {
	first := len(s)
	for _, c := range [...]byte{'\n', '\r'} {
		if i := strings.IndexByte(s[:first], c); i >= 0 {
			first = i
		}
	}
	for i := 0; i < first; {
		j := strings.IndexByte(s[i:first], 0xe2)
		if j < 0 {
			break
		}
		if lineTerminatorAt(s, i+j) {
			return i + j
		}
		i += j + 1
	}
	return first
}

// lastLineTerminator is the index of the last line terminator, or -1.
func lastLineTerminator(s string) int {
	last := -1
	for _, c := range [...]byte{'\n', '\r'} {
		last = max(last, strings.LastIndexByte(s, c))
	}
	for end := len(s); end > last+1; {
		j := strings.LastIndexByte(s[last+1:end], 0xe2)
		if j < 0 {
			break
		}
		if lineTerminatorAt(s, last+1+j) {
			return last + 1 + j
		}
		end = last + 1 + j
	}
	return last
}

// matchBewit implements hawk's `^(\/.*)([\?&])bewit\=([^&$]*)(?:&(.+))?$`
// by hand. Greedy `.*` means the last workable `[?&]bewit=` wins; k is the
// separator's index and e the end of the value.
func matchBewit(s string) (k, e int, ok bool) {
	if s == "" || s[0] != '/' {
		return 0, 0, false
	}
	firstTerm, lastTerm := len(s), -1
	if hasLineTerminator(s) { // rare: only then find where they are
		firstTerm, lastTerm = firstLineTerminator(s), lastLineTerminator(s)
	}
	// Forward scan (strings.Index is vectorised), keeping the last
	// candidate that matches.
	for from := 0; ; {
		j := strings.Index(s[from:], "bewit=")
		if j < 0 {
			return k, e, ok
		}
		i := from + j
		from = i + 1
		sep := i - 1
		if sep < 1 || s[sep] != '?' && s[sep] != '&' || sep > firstTerm {
			continue
		}
		v := i + len("bewit=")
		end := len(s)
		if j := strings.IndexByte(s[v:], '&'); j >= 0 {
			end = v + j
		}
		if j := strings.IndexByte(s[v:end], '$'); j >= 0 {
			end = v + j
		}
		if end == len(s) || s[end] == '&' && end+1 < len(s) && lastTerm < end+1 {
			k, e, ok = sep, end, true
		}
	}
}

// ParseBewit extracts and decodes the bewit of a request (hawk 9's
// uri.authenticate up to the credentials lookup) and returns the resource
// the MAC covers: the URL with `[?&]bewit=…` removed, keeping the
// separator when more parameters follow (`/x?bewit=B&a=1` → `/x?a=1`).
func ParseBewit(method, resource string) (Bewit, string, error) {
	var b Bewit
	if bewitResourceTooLong(resource) { // JS string length, as in hawk
		return b, "", ErrResourceTooLong
	}
	k, e, ok := matchBewit(resource)
	if !ok {
		return b, "", ErrUnauthorized
	}
	value := resource[k+len("?bewit=") : e]
	if value == "" {
		return b, "", ErrEmptyBewit
	}
	// HEAD is accepted with a bewit signed for GET [run]; the MAC always
	// says GET.
	if !strings.EqualFold(method, "GET") && !strings.EqualFold(method, "HEAD") {
		return b, "", ErrInvalidMethod
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; !isWordByte(c) && c != '-' {
			return b, "", ErrInvalidBewitEncode
		}
	}
	var stack [3072]byte
	decoded := string(decodeBase64Lenient(stack[:0], value))
	// The reference decodes to a latin1 string; we keep the bytes, which is
	// the same for the ASCII ids, numbers, MACs and ext it can accept.
	parts := [4]string{}
	n := 0
	for rest := decoded; ; n++ {
		i := strings.IndexByte(rest, '\\')
		if n == 3 || i < 0 {
			if i >= 0 || n != 3 {
				return b, "", ErrInvalidBewitStruct
			}
			parts[n] = rest
			break
		}
		parts[n], rest = rest[:i], rest[i+1:]
	}
	b = Bewit{ID: parts[0], Exp: parts[1], MAC: parts[2], Ext: parts[3]}
	if b.ID == "" || b.Exp == "" || b.MAC == "" {
		return Bewit{}, "", ErrMissingBewitAttrs
	}
	macURL := resource[:k]
	if e < len(resource) { // "&" + more parameters
		macURL += resource[k:k+1] + resource[e+1:]
	}
	return b, macURL, nil
}

// decodeBase64Lenient decodes like Node's Buffer.from(s, "base64"): both
// alphabets, padding optional, other characters skipped, stops at '='.
func decodeBase64Lenient(dst []byte, s string) []byte {
	// Fast path: canonical standard or URL-safe base64 (what every client
	// sends) decodes identically with the strict decoders.
	for _, enc := range [...]*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if (enc == base64.StdEncoding) != (len(s)%4 == 0) {
			continue
		}
		n := enc.DecodedLen(len(s))
		dst = slices.Grow(dst, n)
		if m, err := enc.Decode(dst[len(dst):len(dst)+n], []byte(s)); err == nil {
			return dst[:len(dst)+m]
		}
	}
	dst = slices.Grow(dst, len(s)*3/4)
	var acc uint32
	bits := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		var v byte
		switch {
		case c >= 'A' && c <= 'Z':
			v = c - 'A'
		case c >= 'a' && c <= 'z':
			v = c - 'a' + 26
		case c >= '0' && c <= '9':
			v = c - '0' + 52
		case c == '+' || c == '-':
			v = 62
		case c == '/' || c == '_':
			v = 63
		case c == '=':
			return dst
		default:
			continue
		}
		acc = acc<<6 | uint32(v)
		bits += 6
		if bits >= 8 {
			bits -= 8
			dst = append(dst, byte(acc>>bits))
		}
	}
	return dst
}

// SignedURL returns rawURL with a bewit valid for ttl from now (zero now =
// time.Now()), built as the official clients do: exp = floor(now) + ttl
// seconds; the MAC covers GET of the URL without the bewit; the ext carries
// the certificate and authorizedScopes. The bewit is appended as the last
// query parameter. It refuses (an ErrSign… error) what a verifier would
// refuse — above all a path and query that, with the bewit, exceed
// MaxBewitResourceLength — and checks its result with ParseBewit.
func SignedURL(c Credentials, rawURL string, ttl time.Duration, now time.Time) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", refuse(ErrSignURL, err.Error())
	}
	u.ForceQuery = false // "/p?" would sign "/p?" but verify as "/p"
	if HasBewit(u.RequestURI()) {
		return "", ErrSignHasBewit
	}
	host, port, resource, err := splitURL(u.String())
	if err != nil {
		return "", err
	}
	if err := checkResource(resource, true); err != nil {
		return "", err
	}
	if err := checkClientID(c.ClientID); err != nil {
		return "", err
	}
	ext, err := c.Ext()
	if err != nil {
		return "", err
	}
	if now.IsZero() {
		now = time.Now()
	}
	// exp must be decimal digits (a '-' fails parseDecimal) and later than
	// now: the verifier has no skew allowance for bewits.
	expSec := floorUnix(now) + int64(ttl/time.Second)
	if ttl < time.Second || expSec < 0 {
		return "", refuse(ErrSignExpiry, "ttl "+ttl.String())
	}
	exp := strconv.FormatInt(expSec, 10)
	mac := MAC("bewit", []byte(c.AccessToken), Artifacts{
		Method: "GET", Resource: resource, Host: host, Port: port, TS: exp, Ext: ext,
	})
	token := base64.RawURLEncoding.EncodeToString([]byte(c.ClientID + `\` + exp + `\` + mac + `\` + ext))
	if u.RawQuery == "" {
		u.RawQuery = "bewit=" + token
	} else {
		u.RawQuery += "&bewit=" + token
	}
	signed := u.String()
	if err := checkSignedURL(signed, resource, c.ClientID, exp, mac, ext); err != nil {
		return "", err
	}
	return signed, nil
}

// checkSignedURL parses a signed URL the way a verifier will see it and
// confirms that the bewit is found and covers exactly what was signed.
func checkSignedURL(signed, resource, id, exp, mac, ext string) error {
	u, err := url.Parse(signed)
	if err != nil {
		return refuse(ErrSignSelfCheck, err.Error())
	}
	got := u.RequestURI()
	if bewitResourceTooLong(got) {
		return refuse(ErrSignResourceTooLong, strconv.Itoa(utf16Len(got))+" characters, of which the bewit is "+
			strconv.Itoa(utf16Len(got)-utf16Len(resource)))
	}
	b, macURL, err := ParseBewit("GET", got)
	if err != nil || macURL != resource || b != (Bewit{ID: id, Exp: exp, MAC: mac, Ext: ext}) {
		return refuse(ErrSignSelfCheck, "the bewit does not parse back")
	}
	return nil
}
