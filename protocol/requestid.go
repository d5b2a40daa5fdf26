package protocol

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"regexp"
)

// RequestIDHeader carries a request's id: the caller's (or the proxy's in
// front) when well formed, else a new one. The control plane and the
// sidecar echo it on the answer and write it in the request line (the
// sidecar also sends it upstream), so that one request can be followed
// across logs.
const RequestIDHeader = "X-Request-Id"

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// RequestID returns the request's id from RequestIDHeader when it is well
// formed (1 to 128 of A-Z a-z 0-9 . _ : -, so nothing a log line could
// be forged with), else 16 new random hex digits.
func RequestID(h http.Header) string {
	if v := h.Get(RequestIDHeader); requestIDPattern.MatchString(v) {
		return v
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
