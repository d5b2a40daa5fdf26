package protocol

import (
	"errors"
	"strconv"
	"strings"
)

// Limits the verifier applies. The parsers and the signers both use these
// constants (and the helpers below), so a signer never emits a header or a
// URL that a verifier refuses: it refuses to sign it instead.
const (
	// MaxHeaderLength bounds the Authorization header, counted in UTF-16
	// units as hawk counts JavaScript string length (docs/protocol.md §2). It
	// also bounds how large a certificate can get, since the certificate
	// travels base64-encoded inside the header's ext.
	MaxHeaderLength = 4096
	// MaxBewitResourceLength bounds a bewit request's resource (path +
	// query including the bewit), counted like MaxHeaderLength. hawk's
	// uri.authenticate uses the same 4096 as its header parser (§10).
	MaxBewitResourceLength = 4096
	// MaxPort is the largest TCP port; RequestFromHTTP ignores larger
	// port numbers and SignRequest/SignedURL refuse them.
	MaxPort = 65535
)

// Signer refusals. SignRequest, SignedURL, Credentials.Ext and
// CreateTemporaryCredentials return these, wrapped with the detail (test
// with errors.Is), for inputs whose result no verifier would accept: it is
// better to fail at signing with a clear message than to hand out a
// header or URL that can only ever get a 401.
var (
	ErrSignURL             = errors.New("protocol: cannot sign: not an absolute http(s) URL with a host")
	ErrSignHost            = errors.New("protocol: cannot sign: the URL's host must be an ASCII hostname (IDNs in their xn-- form) or an IP address without a zone")
	ErrSignPort            = errors.New("protocol: cannot sign: the URL's port must be a number from 0 to 65535")
	ErrSignMethod          = errors.New("protocol: cannot sign: the method must be an HTTP token such as GET")
	ErrSignClientID        = errors.New(`protocol: cannot sign: the clientId must be non-empty printable ASCII without '"' or '\'`)
	ErrSignNonce           = errors.New(`protocol: cannot sign: the nonce must be printable ASCII without '"' or '\'`)
	ErrSignExt             = errors.New("protocol: cannot sign: the certificate or authorizedScopes would not parse at a verifier")
	ErrSignHeaderTooLong   = errors.New("protocol: cannot sign: the Hawk header would be longer than the 4096 characters a verifier accepts (clientId, certificate or authorizedScopes too large)")
	ErrSignResourceTooLong = errors.New("protocol: cannot sign: the URL's path and query with the bewit would be longer than the 4096 characters a verifier accepts")
	ErrSignResourceChars   = errors.New("protocol: cannot sign: percent-encode the URL's query: it holds a space (not allowed in an HTTP request line) or, for a bewit, a line terminator U+2028/U+2029 (the verifier's bewit pattern stops there)")
	ErrSignHasBewit        = errors.New("protocol: cannot sign: the URL already has a bewit")
	ErrSignExpiry          = errors.New("protocol: cannot sign: the bewit must stay valid for at least one second and expire after 1970")
	ErrSignCertificate     = errors.New("protocol: cannot issue temporary credentials")
	// ErrSignSelfCheck means the signer's own parse of what it produced
	// failed: a bug here, never the caller's input.
	ErrSignSelfCheck = errors.New("protocol: cannot sign: internal check failed, the result would not verify")
)

// signError is a signer refusal with its detail; it unwraps to the
// sentinel.
type signError struct {
	sentinel error
	detail   string
}

func (e *signError) Error() string { return e.sentinel.Error() + ": " + e.detail }
func (e *signError) Unwrap() error { return e.sentinel }

func refuse(sentinel error, detail string) error { return &signError{sentinel, detail} }

// headerTooLong is the parser's header length test (hawk counts UTF-16
// units; the byte length bounds that from above, so the common ASCII
// case never walks the string).
func headerTooLong(s string) bool {
	return len(s) > MaxHeaderLength && utf16Len(s) > MaxHeaderLength
}

// bewitResourceTooLong is ParseBewit's resource length test.
func bewitResourceTooLong(s string) bool {
	return len(s) > MaxBewitResourceLength && utf16Len(s) > MaxBewitResourceLength
}

// validSignHost accepts the hosts whose signed form is the form a verifier
// sees. Verifiers lower-case ASCII only, and Go's client (like browsers)
// sends an IDN as punycode in the Host header, so a non-ASCII host would be
// signed in one form and checked in another; an IPv6 zone arrives
// percent-encoded ("%25eth0") but url.Hostname decodes it. Letters,
// digits, '-', '.', '_' and ':' (IPv6 literals) are what remains.
func validSignHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !isWordByte(c) && c != '-' && c != '.' && c != ':' {
			return false
		}
	}
	return true
}

// validMethod reports whether m is an HTTP token (RFC 9110 §5.6.2). Go's
// client refuses other methods and sends "" as GET, so signing either
// would MAC a method the server never sees.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !isWordByte(c) && !isTokenPunct(c) {
			return false
		}
	}
	return true
}

func isTokenPunct(c byte) bool {
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '`', '|', '~':
		return true
	}
	return false
}

// checkClientID is the signers' clientId rule: a Hawk id attribute value
// (ParseHeader's alphabet), which also keeps the bewit's '\'-separated
// structure intact.
func checkClientID(id string) error {
	if !validAttrValue(id) {
		return refuse(ErrSignClientID, "got "+quoteForError(id))
	}
	return nil
}

// quoteForError quotes at most a short prefix of s for an error message
// (inputs may be huge; none of them is secret: clientIds, nonces, hosts).
func quoteForError(s string) string {
	const limit = 64
	if len(s) <= limit {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:limit]) + "…"
}

// checkResource refuses a request-target that would not reach the
// verifier as signed. url.Parse already refuses control characters and
// RequestURI escapes the path, but a raw query keeps its spaces, and Go's
// client then writes a request line no server can parse. For a bewit,
// matchBewit's `^(\/.*)` cannot pass a JavaScript line terminator, so a
// bewit after one is never found.
func checkResource(resource string, bewit bool) error {
	if i := strings.IndexByte(resource, ' '); i >= 0 {
		return refuse(ErrSignResourceChars, "space at offset "+strconv.Itoa(i))
	}
	if bewit {
		if i := firstLineTerminator(resource); i < len(resource) {
			return refuse(ErrSignResourceChars, "line terminator at offset "+strconv.Itoa(i))
		}
	}
	return nil
}
