// Package protocol holds Taskcluster's auth wire formats: Hawk headers and
// bewits, the Taskcluster `ext` attribute, temporary-credential
// certificates, the one request verifier (Authenticator) shared by the
// control plane and the sidecar, and the auth API's JSON types and error
// body. It imports nothing else of tcauth; scope algebra comes in through
// the ScopeOps interface. See DESIGN.md.
package protocol

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"hash"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Header holds the attributes of a Hawk Authorization header. Absent
// attributes are "" (hawk rejects empty values, so "" always means absent).
type Header struct{ ID, TS, Nonce, Hash, Ext, MAC, App, Dlg string }

// Bits of the required attributes in a seen-mask (see attrNames).
const (
	attrID    = 1 << 0
	attrTS    = 1 << 1
	attrNonce = 1 << 2
	attrMAC   = 1 << 5
)

// plainPrefix returns the length of the longest prefix of s made of
// printable ASCII (0x20–0x7E) other than '"' and '\\'. That set is exactly
// hawk's attribute value alphabet [ \w!#$%&'()*+,\-./:;<=>?@[\]^`{|}~],
// and also the bytes a JSON string scan can pass over. Eight bytes at a
// time (SWAR): long ext values are the bulk of a header.
func plainPrefix(s string) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	hasZero := func(v uint64) uint64 { return (v - ones) & ^v & highs }
	i := 0
	for ; i+8 <= len(s); i += 8 {
		b := s[i : i+8]
		x := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
		below := (x - 0x20*ones) & ^x & highs // a byte < 0x20
		above := ((x + 1*ones) | x) & highs   // a byte > 0x7e
		if below|above|hasZero(x^('"'*ones))|hasZero(x^('\\'*ones)) != 0 {
			break
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return i
		}
	}
	return i
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// isJSSpace is JavaScript's \s, which hawk's header regexps use.
func isJSSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

// skipJSSpace returns the index of the first non-\s character at or after i.
func skipJSSpace(s string, i int) int {
	for i < len(s) {
		if c := s[i]; c < utf8.RuneSelf {
			if !isJSSpace(rune(c)) {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if !isJSSpace(r) {
			return i
		}
		i += n
	}
	return i
}

// lineTerminatorAt reports whether a JavaScript line terminator (\n, \r,
// U+2028, U+2029) starts at s[i].
func lineTerminatorAt(s string, i int) bool {
	switch s[i] {
	case '\n', '\r':
		return true
	case 0xe2:
		return i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xa8 || s[i+2] == 0xa9)
	}
	return false
}

func hasLineTerminator(s string) bool {
	if strings.IndexByte(s, '\n') >= 0 || strings.IndexByte(s, '\r') >= 0 {
		return true
	}
	for i := strings.IndexByte(s, 0xe2); i >= 0; {
		if lineTerminatorAt(s, i) {
			return true
		}
		j := strings.IndexByte(s[i+1:], 0xe2)
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// ParseHeader parses a Hawk Authorization header exactly as hawk 9 does
// (docs/protocol.md §2): scheme `^(\w+)(?:\s+(.*))?$`, then a global scan for
// `(\w+)="([^"\\]*)"\s*(?:,\s*|$)`, where anything left unmatched is "Bad
// header format" and the last attribute error wins. It also checks that
// id, ts, nonce and mac are present. It is hand-written (no regexp) and
// allocates only for error messages that name an attribute.
func ParseHeader(authorization string) (Header, error) {
	var h Header
	if authorization == "" {
		return h, ErrUnauthorized
	}
	// hawk counts JavaScript string length (UTF-16 units), and a header with
	// JS-only whitespace (U+00A0, U+2003, U+FEFF) after the scheme parses
	// there, so count the same way (headerTooLong).
	if headerTooLong(authorization) {
		return h, ErrHeaderTooLong
	}
	i := 0
	for i < len(authorization) && isWordByte(authorization[i]) {
		i++
	}
	if i == 0 {
		return h, ErrInvalidSyntax
	}
	scheme, rest := authorization[:i], authorization[i:]
	var attrs string
	if rest != "" {
		j := skipJSSpace(rest, 0)
		if j == 0 {
			return h, ErrInvalidSyntax
		}
		attrs = rest[j:]
		if hasLineTerminator(attrs) {
			return h, ErrInvalidSyntax
		}
	}
	if !strings.EqualFold(scheme, "hawk") {
		return h, ErrUnauthorized
	}
	if attrs == "" {
		return h, ErrInvalidSyntax
	}

	var seen int
	var lastErr error
	leftover := false
	for pos := 0; pos < len(attrs); {
		end, name, value, ok := matchAttribute(attrs, pos)
		if !ok {
			leftover = true
			pos = end
			continue
		}
		pos = end
		bit, field := h.attribute(name)
		switch {
		case bit == 0:
			lastErr = &AuthError{"Bad Request: Unknown attribute: " + name}
		case !validAttrValue(value):
			lastErr = &AuthError{"Bad Request: Bad attribute value: " + name}
		case seen&bit != 0:
			lastErr = &AuthError{"Bad Request: Duplicate attribute: " + name}
		default:
			seen |= bit
			*field = value
			continue
		}
		leftover = true // hawk's replacer returns undefined here
	}
	if leftover {
		if lastErr != nil {
			return Header{}, lastErr
		}
		return Header{}, ErrBadHeaderFormat
	}
	if seen&(attrID|attrTS|attrNonce|attrMAC) != attrID|attrTS|attrNonce|attrMAC {
		return Header{}, ErrMissingAttributes
	}
	return h, nil
}

// matchAttribute tries hawk's attribute regexp at pos. On failure it
// returns the next position worth trying: every suffix of a word run fails
// the same way its start did, so the scan stays linear.
func matchAttribute(s string, pos int) (end int, name, value string, ok bool) {
	j := pos
	for j < len(s) && isWordByte(s[j]) {
		j++
	}
	if j == pos {
		return pos + 1, "", "", false
	}
	if j+1 >= len(s) || s[j] != '=' || s[j+1] != '"' {
		return j, "", "", false
	}
	q := strings.IndexByte(s[j+2:], '"')
	if q < 0 {
		return j, "", "", false
	}
	k := j + 2 + q
	name, value = s[pos:j], s[j+2:k]
	if strings.IndexByte(value, '\\') >= 0 {
		return j, "", "", false
	}
	k = skipJSSpace(s, k+1)
	switch {
	case k == len(s):
	case s[k] == ',':
		k = skipJSSpace(s, k+1)
	default:
		return j, "", "", false
	}
	return k, name, value, true
}

func validAttrValue(v string) bool { return v != "" && plainPrefix(v) == len(v) }

// attrNames are hawk's attribute names; bit i of a seen-mask is attrNames[i].
var attrNames = [...]string{"id", "ts", "nonce", "hash", "ext", "mac", "app", "dlg"}

func (h *Header) attribute(name string) (int, *string) {
	for i, n := range attrNames {
		if n == name {
			return 1 << i, [...]*string{&h.ID, &h.TS, &h.Nonce, &h.Hash, &h.Ext, &h.MAC, &h.App, &h.Dlg}[i]
		}
	}
	return 0, nil
}

// Artifacts are the inputs of a Hawk MAC (docs/protocol.md §3).
type Artifacts struct {
	Method, Resource, Host string
	Port                   int
	TS, Nonce, Hash, Ext   string
	App, Dlg               string
}

// appendNormalized appends hawk's normalized string of kind ("header",
// "bewit" or "response") without allocating.
func appendNormalized(b []byte, kind string, a *Artifacts) []byte {
	b = append(b, "hawk.1."...)
	b = append(b, kind...)
	b = append(b, '\n')
	b = append(b, a.TS...)
	b = append(b, '\n')
	b = append(b, a.Nonce...)
	b = append(b, '\n')
	for i := 0; i < len(a.Method); i++ {
		c := a.Method[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		b = append(b, c)
	}
	b = append(b, '\n')
	resource := a.Resource
	if resource != "" && resource[0] != '/' {
		resource = resourceOfURL(resource)
	}
	b = append(b, resource...)
	b = append(b, '\n')
	// Hostnames are ASCII (IDNs travel as punycode), so ASCII lower-casing
	// is JavaScript's toLowerCase for every host that can match.
	for i := 0; i < len(a.Host); i++ {
		c := a.Host[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	b = append(b, '\n')
	b = strconv.AppendInt(b, int64(a.Port), 10)
	b = append(b, '\n')
	b = append(b, a.Hash...)
	b = append(b, '\n')
	if strings.IndexByte(a.Ext, '\\') < 0 && strings.IndexByte(a.Ext, '\n') < 0 {
		b = append(b, a.Ext...) // the usual case: base64 text
	} else {
		b = appendEscapedExt(b, a.Ext)
	}
	b = append(b, '\n')
	if a.App != "" {
		b = append(b, a.App...)
		b = append(b, '\n')
		b = append(b, a.Dlg...)
		b = append(b, '\n')
	}
	return b
}

// appendEscapedExt escapes "\\" and newline as hawk does for the ext line.
func appendEscapedExt(b []byte, ext string) []byte {
	for i := 0; i < len(ext); i++ {
		switch c := ext[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return b
}

// resourceOfURL is hawk's fallback for a resource that is not a path: use
// the path and query of the URL it names.
func resourceOfURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	return u.RequestURI()
}

// macState is a reusable HMAC-SHA256 (RFC 2104) with its scratch space;
// pooling it keeps MACs off the allocator on the hot path (crypto/hmac
// allocates two digests per key).
type macState struct {
	inner, outer hash.Hash
	pad          [64]byte
	sum          [32]byte
	enc          [44]byte
	buf          []byte
}

var macPool = sync.Pool{New: func() any {
	return &macState{inner: sha256.New(), outer: sha256.New(), buf: make([]byte, 0, 1024)}
}}

func getMAC() *macState { return macPool.Get().(*macState) }

func putMAC(m *macState) {
	if cap(m.buf) > 64<<10 {
		m.buf = make([]byte, 0, 1024)
	}
	m.buf = m.buf[:0]
	macPool.Put(m)
}

// hmac computes HMAC-SHA256(key, msg) into m.sum.
func (m *macState) hmac(key string, msg []byte) []byte { return hmacSum(m, key, msg) }

// hmacSum is HMAC-SHA256 for a key given as string or bytes, so neither
// kind of key has to be converted (and copied to the heap) first.
func hmacSum[K ~string | ~[]byte](m *macState, key K, msg []byte) []byte {
	var k [64]byte
	if len(key) > 64 {
		// sha256.Sum256 (not the pooled hash.Hash) so the key does not
		// escape through an interface call.
		sum := sha256.Sum256([]byte(key))
		copy(k[:], sum[:])
	} else {
		copy(k[:], key)
	}
	for i := range k {
		m.pad[i] = k[i] ^ 0x36
	}
	m.inner.Reset()
	m.inner.Write(m.pad[:])
	m.inner.Write(msg)
	m.inner.Sum(m.sum[:0])
	for i := range k {
		m.pad[i] = k[i] ^ 0x5c
	}
	m.outer.Reset()
	m.outer.Write(m.pad[:])
	m.outer.Write(m.sum[:])
	return m.outer.Sum(m.sum[:0])
}

// hmacBase64 computes base64std(HMAC-SHA256(key, msg)) into m.enc.
func (m *macState) hmacBase64(key string, msg []byte) []byte {
	base64.StdEncoding.Encode(m.enc[:], m.hmac(key, msg))
	return m.enc[:]
}

// equalConstantTime compares a computed MAC with the one presented, in
// constant time. The presented string is copied to the stack so no
// []byte conversion reaches the heap; a length mismatch is not secret.
func equalConstantTime(want []byte, got string) bool {
	if len(got) != len(want) || len(want) > 64 {
		return false
	}
	var tmp [64]byte
	n := copy(tmp[:], got)
	return subtle.ConstantTimeCompare(tmp[:n], want) == 1
}

// MAC returns base64std(HMAC-SHA256(key, normalized string of kind)).
// kind is "header", "bewit" or "response".
func MAC(kind string, key []byte, a Artifacts) string {
	m := getMAC()
	defer putMAC(m)
	m.buf = appendNormalized(m.buf[:0], kind, &a)
	return string(m.hmacBase64(string(key), m.buf))
}

// NormalizedString returns the exact text a MAC of kind covers; it is for
// tests and debugging of interop problems.
func NormalizedString(kind string, a Artifacts) string {
	return string(appendNormalized(nil, kind, &a))
}

// PayloadHash is hawk's payload hash (docs/protocol.md §4): content type is the
// part before ';', trimmed and lower-cased.
func PayloadHash(contentType string, body []byte) string {
	if i := strings.IndexByte(contentType, ';'); i >= 0 {
		contentType = contentType[:i]
	}
	contentType = strings.ToLower(strings.TrimFunc(contentType, isJSSpace))
	h := sha256.New()
	h.Write([]byte("hawk.1.payload\n"))
	h.Write([]byte(contentType))
	h.Write([]byte{'\n'})
	h.Write(body)
	h.Write([]byte{'\n'})
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// Credentials are what a caller signs with. Certificate is the JSON text
// of a temporary-credential certificate ("" for permanent credentials);
// AuthorizedScopes nil means "not sent", an empty non-nil slice sends [].
type Credentials struct {
	ClientID, AccessToken string
	Certificate           string
	AuthorizedScopes      []string
}

// SignOptions tune SignRequest. The zero value signs now with a random
// nonce and no payload hash.
type SignOptions struct {
	Now         time.Time // zero = time.Now()
	Nonce       string    // "" = random 6 characters, like the JS client
	ContentType string
	Payload     []byte
	HasPayload  bool // sign a payload hash over ContentType and Payload
}

// SignRequest returns the Authorization header value for method and
// rawURL, laid out exactly as the official clients emit it:
// `Hawk id="…", ts="…", nonce="…"[, hash="…"][, ext="…"], mac="…"`.
// It refuses (an ErrSign… error) what a verifier would refuse: a header
// over MaxHeaderLength, attribute values outside hawk's alphabet, an ext
// the verifier cannot parse, a host or port the server would see
// differently, a method Go's client would not send as given.
func SignRequest(c Credentials, method, rawURL string, o SignOptions) (string, error) {
	host, port, resource, err := splitURL(rawURL)
	if err != nil {
		return "", err
	}
	if err := checkResource(resource, false); err != nil {
		return "", err
	}
	if !validMethod(method) {
		return "", refuse(ErrSignMethod, "got "+quoteForError(method))
	}
	if err := checkClientID(c.ClientID); err != nil {
		return "", err
	}
	ext, err := c.Ext()
	if err != nil {
		return "", err
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	nonce := o.Nonce
	if nonce == "" {
		nonce = randomNonce()
	} else if !validAttrValue(nonce) {
		return "", refuse(ErrSignNonce, "got "+quoteForError(nonce))
	}
	a := Artifacts{
		Method: method, Resource: resource, Host: host, Port: port,
		TS: strconv.FormatInt(floorUnix(now), 10), Nonce: nonce, Ext: ext,
	}
	if o.HasPayload {
		a.Hash = PayloadHash(o.ContentType, o.Payload)
	}
	header := formatHeader(c.ClientID, &a, MAC("header", []byte(c.AccessToken), a))
	if headerTooLong(header) {
		return "", refuse(ErrSignHeaderTooLong, strconv.Itoa(len(header))+" characters")
	}
	// Backstop: the verifier's own parser must read back what was signed.
	// (The payload hash is no secret, but it goes through the constant-time
	// compare like every hash, so the source check needs no exception.)
	if h, err := ParseHeader(header); err != nil || h.ID != c.ClientID || h.TS != a.TS || h.Nonce != nonce || h.Ext != ext ||
		subtle.ConstantTimeCompare([]byte(h.Hash), []byte(a.Hash)) != 1 {
		return "", refuse(ErrSignSelfCheck, "header does not parse back")
	}
	return header, nil
}

// formatHeader lays out a signed header as the official clients do.
func formatHeader(id string, a *Artifacts, mac string) string {
	var b strings.Builder
	b.Grow(64 + len(id) + len(a.Nonce) + len(a.Hash) + len(a.Ext))
	b.WriteString(`Hawk id="`)
	b.WriteString(id)
	b.WriteString(`", ts="`)
	b.WriteString(a.TS)
	b.WriteString(`", nonce="`)
	b.WriteString(a.Nonce)
	if a.Hash != "" {
		b.WriteString(`", hash="`)
		b.WriteString(a.Hash)
	}
	if a.Ext != "" {
		b.WriteString(`", ext="`)
		b.WriteString(a.Ext)
	}
	b.WriteString(`", mac="`)
	b.WriteString(mac)
	b.WriteString(`"`)
	return b.String()
}

// floorUnix is Math.floor(Date.now()/1000), also for times before 1970.
func floorUnix(t time.Time) int64 {
	ms := t.UnixMilli()
	s := ms / 1000
	if ms%1000 < 0 {
		s--
	}
	return s
}

// splitURL gives what a client signs for a URL: hostname, port (the URL's,
// else 80 for http and 443 for https, as hawk's client does) and the
// request-target Go's HTTP client will send. It refuses hosts and ports a
// server would see differently (validSignHost, MaxPort).
func splitURL(rawURL string) (host string, port int, resource string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", 0, "", refuse(ErrSignURL, err.Error())
	}
	if u.Host == "" {
		return "", 0, "", refuse(ErrSignURL, "no host in "+quoteForError(rawURL))
	}
	// The port a server checks follows the scheme it is reached by; for
	// any other scheme ("//host/…", "ftp:") there is no port to sign.
	if !strings.EqualFold(u.Scheme, "http") && !strings.EqualFold(u.Scheme, "https") {
		return "", 0, "", refuse(ErrSignURL, "scheme "+quoteForError(u.Scheme)+" is not http or https")
	}
	host = u.Hostname()
	if !validSignHost(host) {
		return "", 0, "", refuse(ErrSignHost, "got "+quoteForError(host))
	}
	switch p := u.Port(); {
	case p != "":
		if port, err = strconv.Atoi(p); err != nil || port > MaxPort {
			return "", 0, "", refuse(ErrSignPort, "got "+quoteForError(p))
		}
	case strings.EqualFold(u.Scheme, "http"):
		port = 80
	default:
		port = 443
	}
	return host, port, u.RequestURI(), nil
}

const nonceAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// nonceLength is the length of SignRequest's random nonces, as the JS
// client's.
const nonceLength = 6

func randomNonce() string {
	var b [nonceLength]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("protocol: crypto/rand failed: " + err.Error())
	}
	for i := range b {
		b[i] = nonceAlphabet[int(b[i])%len(nonceAlphabet)]
	}
	return string(b[:])
}

// ServerAuthorization returns a Server-Authorization header value for the
// response to the request whose artifacts are req (standard Hawk: the
// request's ts/nonce/method/resource/host/port/app/dlg with the response's
// payload hash and ext). hash may be "" (use PayloadHash over the response
// body to set it). The reference never sends this header; official clients
// ignore it; @hapi/hawk's client.authenticate can check it.
func ServerAuthorization(key []byte, req Artifacts, hash, ext string) string {
	resp := req
	resp.Hash, resp.Ext = hash, ext
	var b strings.Builder
	b.WriteString(`Hawk mac="`)
	b.WriteString(MAC("response", key, resp))
	b.WriteString(`"`)
	if hash != "" {
		b.WriteString(`, hash="`)
		b.WriteString(hash)
		b.WriteString(`"`)
	}
	if ext != "" {
		b.WriteString(`, ext="`)
		for i := 0; i < len(ext); i++ {
			if ext[i] == '\\' || ext[i] == '"' {
				b.WriteByte('\\')
			}
			b.WriteByte(ext[i])
		}
		b.WriteString(`"`)
	}
	return b.String()
}

// Request is what the verifier needs to know about an HTTP request; it is
// also the body of authenticateHawk (docs/protocol.md §11).
type Request struct {
	Method        string
	Resource      string // raw request-target: path + "?" + query as sent
	Host          string // hostname, no port
	Port          int
	Authorization string // "" = no Authorization header
	SourceIP      string // logging only
}

// RequestFromHTTP derives the signed-over values of r (docs/protocol.md §3):
// resource = r.RequestURI as received; host = hostname of the Host header;
// port = first X-Forwarded-Port, else 443 if X-Forwarded-Proto is exactly
// "https", else the Host header's port, else 443 for TLS, else 80. The
// X-Forwarded-* headers (and X-Forwarded-For for SourceIP) are read only
// when trustForwarded is true, i.e. when the peer is a configured trusted
// proxy: otherwise any caller could pick the port the MAC is checked for.
func RequestFromHTTP(r *http.Request, trustForwarded bool) Request {
	req := Request{
		Method:        r.Method,
		Resource:      r.RequestURI,
		Authorization: r.Header.Get("Authorization"),
	}
	if req.Resource == "" && r.URL != nil { // client-side or synthetic request
		req.Resource = r.URL.RequestURI()
	}
	hostHeader := r.Host
	if hostHeader == "" && r.URL != nil {
		hostHeader = r.URL.Host
	}
	host, hostPort := splitHostPort(hostHeader)
	req.Host = host
	req.Port = -1
	if trustForwarded {
		if v := r.Header.Get("X-Forwarded-Port"); v != "" {
			first, _, _ := strings.Cut(v, ",")
			if p, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && p >= 0 && p <= MaxPort {
				req.Port = p
			}
		}
		if req.Port < 0 && r.Header.Get("X-Forwarded-Proto") == "https" {
			req.Port = 443
		}
	}
	if req.Port < 0 {
		switch {
		case hostPort >= 0:
			req.Port = hostPort
		case r.TLS != nil:
			req.Port = 443
		default:
			req.Port = 80
		}
	}
	req.SourceIP, _ = splitHostPort(r.RemoteAddr)
	if trustForwarded {
		if v := r.Header.Get("X-Forwarded-For"); v != "" {
			first, _, _ := strings.Cut(v, ",")
			req.SourceIP = strings.TrimSpace(first)
		}
	}
	return req
}

// splitHostPort splits "host[:port]" (IPv6 in brackets); port is -1 when
// absent or not a number.
func splitHostPort(hp string) (string, int) {
	if h, p, err := net.SplitHostPort(hp); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > MaxPort {
			n = -1
		}
		return h, n
	}
	return strings.TrimSuffix(strings.TrimPrefix(hp, "["), "]"), -1
}
