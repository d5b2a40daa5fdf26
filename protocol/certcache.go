package protocol

import (
	"crypto/subtle"
	"hash/maphash"

	lru "github.com/hashicorp/golang-lru/v2"
)

// CertificateCache remembers certificates that verified, so that the
// requests of one set of temporary credentials — a task typically makes
// many — cost one HMAC (the request's) instead of three (the request's,
// the certificate signature's and the temporary key's derivation).
//
// An entry is keyed by the issuing clientId and the exact text the
// certificate signature covers; it holds the issuer's access token and the
// signature it verified with, both compared in constant time on a hit, and
// the derived temporary key. A reset access token or a different signature
// therefore misses and is verified in full. Only successes are cached (a
// flood of bad certificates cannot evict good ones faster than it could
// anyway), and only the reference's signing variant. Time checks (start,
// expiry) and scope checks run on every request; they are not cached.
//
// The zero value is not usable: use NewCertificateCache. A nil
// *CertificateCache caches nothing.
type CertificateCache struct {
	seed maphash.Seed
	lru  *lru.Cache[uint64, certVerdict]
}

// certVerdict is keyed by a seeded 64-bit hash of (issuer, signed text),
// so a lookup allocates nothing; the text itself is kept and compared, so
// a collision is a miss, never a wrong answer.
type certVerdict struct {
	issuer, text     string
	token, signature string
	tempKey          [43]byte
}

// DefaultCertificateCacheSize is the size the control plane and the
// sidecar use: 10 000 certificates, about 5 MB.
const DefaultCertificateCacheSize = 10_000

// NewCertificateCache returns a cache of at most size certificates.
func NewCertificateCache(size int) *CertificateCache {
	if size <= 0 {
		size = DefaultCertificateCacheSize
	}
	c, _ := lru.New[uint64, certVerdict](size) // err only for size <= 0
	return &CertificateCache{seed: maphash.MakeSeed(), lru: c}
}

func (c *CertificateCache) key(issuingID string, signedText []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(issuingID)
	h.WriteByte(0)
	h.Write(signedText)
	return h.Sum64()
}

// lookup returns the temporary key if (issuingID, signedText) verified
// before with this token and signature.
func (c *CertificateCache) lookup(issuingID string, signedText []byte, token, signature string) ([43]byte, bool) {
	if c == nil {
		return [43]byte{}, false
	}
	e, ok := c.lru.Get(c.key(issuingID, signedText))
	if !ok || e.issuer != issuingID || e.text != string(signedText) {
		return [43]byte{}, false
	}
	// Both compared in constant time, and both always compared.
	tokenOK := subtle.ConstantTimeCompare([]byte(e.token), []byte(token))
	sigOK := subtle.ConstantTimeCompare([]byte(e.signature), []byte(signature))
	if tokenOK&sigOK == 1 {
		return e.tempKey, true
	}
	return [43]byte{}, false
}

func (c *CertificateCache) store(issuingID string, signedText []byte, token, signature string, tempKey [43]byte) {
	if c == nil {
		return
	}
	c.lru.Add(c.key(issuingID, signedText), certVerdict{issuer: issuingID, text: string(signedText),
		token: token, signature: signature, tempKey: tempKey})
}

// Len is the number of cached certificates.
func (c *CertificateCache) Len() int {
	if c == nil {
		return 0
	}
	return c.lru.Len()
}
