package harness

import (
	"net/http"
	"strings"
	"sync"
)

// HeaderRecorder is a protected service for the tests of what a proxy in
// front of it passes on: a real HTTP handler that answers 200 with Body
// (default `{"ok": true}`) and keeps the last request's headers.
type HeaderRecorder struct {
	Body []byte

	mu   sync.Mutex
	last http.Header
}

func (h *HeaderRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.last = r.Header.Clone()
	h.mu.Unlock()
	body := h.Body
	if body == nil {
		body = []byte(`{"ok": true}`)
	}
	_, _ = w.Write(body)
}

// Take returns the headers of the last request and forgets them (nil if
// none arrived since the last Take).
func (h *HeaderRecorder) Take() http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	last := h.last
	h.last = nil
	return last
}

// ForgedIdentityHeaders are header names a caller may try: every
// X-Taskcluster-* name the sidecar sets (sidecar/headers.go), unknown ones,
// and other spellings of the same names (case, '_' for '-', '.'), which
// CGI/WSGI-style stacks may fold into the same variable — each with a
// value naming itself.
func ForgedIdentityHeaders() map[string]string {
	names := []string{
		"X-Taskcluster-Client-Id", "X-Taskcluster-Scopes", "X-Taskcluster-Scopes-Truncated",
		"X-Taskcluster-Expires", "X-Taskcluster-Auth-Scheme", "X-Taskcluster-Auth-Stale",
		"X-Taskcluster-Route", "X-Taskcluster-Payload-Hash", "X-Taskcluster-Error",
		"X-Taskcluster-Foo", "X-Taskcluster-", "x-taskcluster-client-id", "X-TASKCLUSTER-SCOPES",
		"x-TaskCluster-Expires", "X_Taskcluster-Client-Id", "X-Taskcluster_Scopes", "x_taskcluster_auth_scheme",
		"X_TASKCLUSTER_PAYLOAD_HASH", "X.Taskcluster-Client-Id",
	}
	h := make(map[string]string, len(names))
	for _, n := range names {
		h[n] = "forged-" + strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace(n))
	}
	return h
}

// IdentityHeaders is what a service saw of anything named like
// "taskcluster": lower-cased names, values joined, empty values included.
func IdentityHeaders(h http.Header) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		if strings.Contains(strings.ToLower(k), "taskcluster") {
			out[strings.ToLower(k)] = strings.Join(v, ",")
		}
	}
	return out
}
