package notes

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestNotes(t *testing.T) {
	s := New()
	do := func(method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		return w
	}
	for _, tc := range []struct {
		method, path, body string
		hdr                map[string]string
		status             int
		contains           string
	}{
		{"GET", "/healthz", "", nil, 200, `"alive": true`},
		{"GET", "/notes/a", "", nil, 404, "ResourceNotFound"},
		{"PUT", "/notes/a", "hello", map[string]string{"X-Taskcluster-Client-Id": "me"}, 200, `"author": "me"`},
		{"GET", "/notes/a", "", nil, 200, `"text": "hello"`},
		{"GET", "/notes/", "", nil, 200, `"a"`},
		{"POST", "/notes/a", "", nil, 405, "MethodNotAllowed"},
		{"PUT", "/notes/big", strings.Repeat("x", MaxNoteBytes+1), nil, 413, "InputTooLarge"},
		{"GET", "/whoami", "", map[string]string{"X-Taskcluster-Client-Id": "me", "X-Taskcluster-Scopes": `["a","b"]`}, 200, `"b"`},
		{"DELETE", "/notes/a", "", nil, 204, ""},
		{"GET", "/notes/a", "", nil, 404, ""},
		{"GET", "/notes/a/b", "", nil, 404, ""},
	} {
		w := do(tc.method, tc.path, tc.body, tc.hdr)
		if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.contains) {
			t.Errorf("%s %s: %d %s, want %d containing %q", tc.method, tc.path, w.Code, w.Body, tc.status, tc.contains)
		}
	}
}
