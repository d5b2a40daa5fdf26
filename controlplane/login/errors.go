package login

import (
	"net/http"

	"github.com/tcauth/tcauth/protocol"
)

// writeError answers in Taskcluster's error shape. method names the
// endpoint in requestInfo (e.g. "oidcCredentials"); the message is what
// the caller may know — the precise reason goes to the log, never here.
func (s *Service) writeError(w http.ResponseWriter, method, code, message string, params map[string]string) {
	e := protocol.NewAPIError(code, message)
	s.writeAPIError(w, method, e, params)
}

func (s *Service) writeAPIError(w http.ResponseWriter, method string, e *protocol.APIError, params map[string]string) {
	body := e.Body(method, params, nil, s.cfg.Now())
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, e.Status, body)
}

// writeJSON writes v as two-space-indented JSON (the API's shape).
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := protocol.MarshalIndent(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"code":"InternalServerError","message":"could not encode the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(b)
}
