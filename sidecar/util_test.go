package sidecar

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }
func errorsAs(err error, target any) bool {
	return errors.As(err, target)
}

// newStreamingUpstream serves chunks from ch as they come, flushing each.
func newStreamingUpstream(t testing.TB, ch chan string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		for s := range ch {
			_, _ = w.Write([]byte(s))
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
