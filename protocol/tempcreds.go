package protocol

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxCertificateLifetime is the longest a certificate may last
// (expiry − start), as the server enforces it (docs/protocol.md §7); the
// verifier and CreateTemporaryCredentials both compare in milliseconds.
const MaxCertificateLifetime = 31 * 24 * time.Hour

const maxCertLifetimeMs = int64(MaxCertificateLifetime / time.Millisecond)

// Certificate is a temporary-credential certificate with the JSON member
// names (and the member order the official clients emit) of the wire.
type Certificate struct {
	Version   int      `json:"version"`
	Scopes    []string `json:"scopes"`
	Start     int64    `json:"start"`  // ms since epoch
	Expiry    int64    `json:"expiry"` // ms since epoch
	Seed      string   `json:"seed"`
	Signature string   `json:"signature"`
	Issuer    string   `json:"issuer,omitempty"` // set ⇒ named temporary credentials
}

// SignedText is the text the certificate signature covers for the given
// credential name (the Hawk id the credentials are used with).
func (c Certificate) SignedText(credentialName string) string {
	return string(appendSignedText(nil, credentialName, c.Issuer, c.Seed,
		float64(c.Start), float64(c.Expiry), c.Scopes, false))
}

// appendSignedText builds the server's signed string (docs/protocol.md §7):
// lines joined by "\n" with no trailing newline, so with no scopes it ends
// in "scopes:". jsEmptyScopesVariant appends the "\n" the official JS
// clients add in that case ([quirk], see Authenticator).
func appendSignedText(b []byte, credentialName, issuer, seed string, start, expiry float64, scopes []string, jsEmptyScopesVariant bool) []byte {
	b = append(b, "version:1\n"...)
	if issuer != "" {
		b = append(b, "clientId:"...)
		b = append(b, credentialName...)
		b = append(b, "\nissuer:"...)
		b = append(b, issuer...)
		b = append(b, '\n')
	}
	b = append(b, "seed:"...)
	b = append(b, seed...)
	b = append(b, "\nstart:"...)
	b = appendJSNumber(b, start)
	b = append(b, "\nexpiry:"...)
	b = appendJSNumber(b, expiry)
	b = append(b, "\nscopes:"...)
	for _, s := range scopes {
		b = append(b, '\n')
		b = append(b, s...)
	}
	if jsEmptyScopesVariant && len(scopes) == 0 {
		b = append(b, '\n')
	}
	return b
}

// TemporaryAccessToken derives the access token of temporary credentials:
// base64url_nopad(HMAC-SHA256(issuer accessToken, seed)), 43 characters.
func TemporaryAccessToken(issuerAccessToken, seed string) string {
	m := getMAC()
	defer putMAC(m)
	m.buf = append(m.buf[:0], seed...)
	return base64.RawURLEncoding.EncodeToString(m.hmac(issuerAccessToken, m.buf))
}

// TemporaryOptions describe temporary credentials to issue.
type TemporaryOptions struct {
	Issuer   Credentials // permanent credentials of the issuing client
	ClientID string      // "" = unnamed (the Hawk id is the issuer's clientId)
	Scopes   []string
	Start    time.Time // zero = now
	Expiry   time.Time
	Seed     string // "" = random, two slugids (44 characters)
}

// CreateTemporaryCredentials issues temporary credentials signed by the
// issuer, as the official clients do, but signs the empty-scopes case the
// way the server checks it (the JS clients get that wrong, docs/protocol.md §7).
// It refuses (ErrSignCertificate, or ErrSignHeaderTooLong when the
// certificate cannot fit in any Hawk header) what the server would refuse
// anyway: a temporary issuer, a lifetime over 31 days, invalid scopes, a
// name equal to the issuer's, a seed that does not survive JSON.
func CreateTemporaryCredentials(o TemporaryOptions) (Credentials, error) {
	if err := checkTemporaryOptions(&o); err != nil {
		return Credentials{}, err
	}
	start := o.Start
	if start.IsZero() {
		start = time.Now()
	}
	switch d := o.Expiry.Sub(start); {
	case d < 0:
		return Credentials{}, refuse(ErrSignCertificate, "expiry is before start")
	case o.Expiry.UnixMilli()-start.UnixMilli() > maxCertLifetimeMs:
		return Credentials{}, refuse(ErrSignCertificate, "temporary credentials cannot last longer than 31 days")
	}
	scopes := make([]string, len(o.Scopes))
	for i, s := range o.Scopes {
		if !ValidScope(s) {
			return Credentials{}, refuse(ErrSignCertificate, "invalid scope in certificate: "+quoteForError(s))
		}
		scopes[i] = s
	}
	seed := o.Seed
	if seed == "" {
		seed = Slugid() + Slugid()
	}
	cert := Certificate{
		Version: 1, Scopes: scopes, Start: start.UnixMilli(), Expiry: o.Expiry.UnixMilli(), Seed: seed,
	}
	name := o.Issuer.ClientID
	if o.ClientID != "" {
		cert.Issuer, name = o.Issuer.ClientID, o.ClientID
	}
	m := getMAC()
	m.buf = appendSignedText(m.buf[:0], name, cert.Issuer, seed, float64(cert.Start), float64(cert.Expiry), scopes, false)
	cert.Signature = string(m.hmacBase64(o.Issuer.AccessToken, m.buf))
	putMAC(m)

	var text bytes.Buffer
	enc := json.NewEncoder(&text)
	enc.SetEscapeHTML(false) // as JSON.stringify
	if err := enc.Encode(cert); err != nil {
		return Credentials{}, refuse(ErrSignCertificate, err.Error())
	}
	creds := Credentials{
		ClientID:    name,
		AccessToken: TemporaryAccessToken(o.Issuer.AccessToken, seed),
		Certificate: strings.TrimSuffix(text.String(), "\n"),
	}
	if err := checkCertificateFits(creds); err != nil {
		return Credentials{}, err
	}
	return creds, nil
}

// checkTemporaryOptions refuses options whose credentials could never
// verify (the verifier's checks, docs/protocol.md §7, made at issue time).
func checkTemporaryOptions(o *TemporaryOptions) error {
	var detail string
	switch {
	case o.Issuer.ClientID == "" || o.Issuer.AccessToken == "":
		detail = "issuer clientId and accessToken are required"
	case o.Issuer.Certificate != "":
		detail = "temporary credentials cannot issue temporary credentials"
	case o.ClientID == o.Issuer.ClientID:
		detail = "a named temporary clientId must differ from the issuer's clientId"
	case !validAttrValue(o.Issuer.ClientID):
		detail = "the issuer's clientId has characters a Hawk header cannot carry"
	case o.ClientID != "" && !validAttrValue(o.ClientID):
		detail = "clientId has characters a Hawk header cannot carry"
	case o.Expiry.IsZero():
		detail = "expiry is required"
	case o.Seed != "" && utf16Len(o.Seed) != 44:
		detail = "seed must be 44 characters"
	case !utf8.ValidString(o.Seed):
		// JSON would carry U+FFFD instead, so the certificate's seed would
		// no longer be the one signed.
		detail = "seed must be valid UTF-8"
	default:
		return nil
	}
	return refuse(ErrSignCertificate, detail)
}

// checkCertificateFits refuses a certificate too large for a header as
// SignRequest makes it by default (random nonce, 10-digit ts, no payload
// hash): every such request would be ErrSignHeaderTooLong. A payload hash
// adds 52 characters; such requests may still be refused at signing.
func checkCertificateFits(c Credentials) error {
	ext, err := c.Ext()
	if err != nil {
		return refuse(ErrSignCertificate, err.Error())
	}
	a := Artifacts{TS: "1000000000", Nonce: strings.Repeat("n", nonceLength), Ext: ext}
	if n := len(formatHeader(c.ClientID, &a, MAC("header", nil, a))); n > MaxHeaderLength {
		return refuse(ErrSignHeaderTooLong, "the certificate makes every header at least "+strconv.Itoa(n)+" characters")
	}
	return nil
}

// ParseCertificate decodes the JSON text of a certificate (e.g.
// TASKCLUSTER_CERTIFICATE).
func ParseCertificate(text string) (Certificate, error) {
	var c Certificate
	if err := json.Unmarshal([]byte(text), &c); err != nil {
		return Certificate{}, errors.New("protocol: bad certificate: " + err.Error())
	}
	return c, nil
}

// Slugid returns a random "nice" v4 slugid: 22 URL-safe characters of a
// v4 UUID whose first bit is clear (so it never starts with '-').
func Slugid() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("protocol: crypto/rand failed: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	b[0] &= 0x7f
	return base64.RawURLEncoding.EncodeToString(b[:])
}
