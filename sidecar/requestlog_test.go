package sidecar

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/prototest"
)

// lockedBuf collects the JSON log lines of a handler under test.
type lockedBuf struct{ prototest.SyncBuffer }

// waitLines returns the request lines once there are at least n: a
// proxied answer is flushed before its request line is written, so the
// line may land just after the caller has read the answer.
func (l *lockedBuf) waitLines(t *testing.T, n int) []map[string]any {
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := l.lines(t)
		if len(out) >= n || time.Now().After(deadline) {
			return out
		}
		time.Sleep(time.Millisecond)
	}
}

func (l *lockedBuf) lines(t *testing.T) []map[string]any {
	var out []map[string]any
	text := strings.TrimSpace(l.String())
	if text == "" {
		return nil
	}
	for _, line := range strings.Split(text, "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["msg"] == "request" {
			out = append(out, m)
		}
	}
	return out
}

// TestRequestLogLine: one request line per request, in both modes of
// verification, with method, path, status, clientId, source and request id;
// the bewit (a credential) and the Authorization header never appear; a
// caller's X-Request-Id is kept and echoed, a bad one replaced.
func TestRequestLogLine(t *testing.T) {
	const bewitValue = "YWxpY2VcMTcwMDAwMDAwMFxzZWNyZXRtYWNcZXh0"
	cases := []struct {
		name       string
		c          call
		reqID      string
		wantStatus float64
		wantClient string
		wantPath   string
		wantReason string // tcauth_sidecar_authentications_total{result="failed"} reason
	}{
		{"signed", call{method: "GET", path: "/notes/a?x=1", creds: alice}, "trace-1", 200, "alice", "/notes/a?x=1", ""},
		{"bad token", call{method: "GET", path: "/notes/a", creds: &protocol.Credentials{ClientID: "alice", AccessToken: "wrong"}}, "", 401, "alice", "/notes/a", protocol.ReasonBadMAC},
		{"bewit in query", call{method: "GET", path: "/notes/a?bewit=" + bewitValue + "&y=2"}, "bad id with spaces", 401, "alice", "/notes/a?y=2", ""},
		{"public", call{method: "GET", path: "/public"}, "", 200, "", "/public", ""},
	}
	for _, mode := range []string{VerifyLocal, VerifyRemote} {
		for _, tc := range cases {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				buf := &lockedBuf{}
				h := newHarness(t, func(c *Config) {
					c.Logger = slog.New(slog.NewJSONHandler(buf, nil))
					if mode == VerifyRemote {
						remoteMode(c)
					}
				})
				req := h.request(tc.c)
				if tc.reqID != "" {
					req.Header.Set(RequestIDHeader, tc.reqID)
				}
				a := h.send(req)
				if float64(a.status) != tc.wantStatus {
					t.Fatalf("status %d, want %v: %s", a.status, tc.wantStatus, a.body)
				}
				lines := buf.waitLines(t, 1)
				time.Sleep(10 * time.Millisecond) // a second line would be a bug: give it a chance to show
				if lines = buf.lines(t); len(lines) != 1 {
					t.Fatalf("%d request lines, want 1", len(lines))
				}
				l := lines[0]
				if l["method"] != "GET" || l["path"] != tc.wantPath || l["status"] != tc.wantStatus || l["source"] != "127.0.0.1" {
					t.Errorf("request line %v", l)
				}
				if got, _ := l["clientId"].(string); got != tc.wantClient {
					t.Errorf("clientId %q, want %q", got, tc.wantClient)
				}
				id, _ := l["requestId"].(string)
				if id == "" || a.header.Get(RequestIDHeader) != id || (tc.reqID == "trace-1") != (id == "trace-1") {
					t.Errorf("request id %q, answer header %q, sent %q", id, a.header.Get(RequestIDHeader), tc.reqID)
				}
				if tc.wantStatus == 200 && tc.name == "signed" && a.echo.Header.Get(RequestIDHeader) != id {
					t.Errorf("upstream got request id %q, want %q", a.echo.Header.Get(RequestIDHeader), id)
				}
				raw := buf.String()
				if strings.Contains(raw, bewitValue) || strings.Contains(raw, "Hawk ") || strings.Contains(raw, "alice-secret") {
					t.Errorf("a credential reached the log:\n%s", raw)
				}
				if tc.wantReason != "" {
					if n := counterValue(h.sc.auth.WithLabelValues("failed", tc.wantReason)); n != 1 {
						t.Errorf("authentications_total{failed,%s} = %v", tc.wantReason, n)
					}
				}
			})
		}
	}
}

// TestAdminPprof: the profiles are served only with EnablePprof.
func TestAdminPprof(t *testing.T) {
	for _, on := range []bool{false, true} {
		h := newHarness(t, func(c *Config) { c.EnablePprof = on; c.Registry = prometheus.NewRegistry() })
		srv := httptest.NewServer(h.sc.AdminHandler())
		resp, err := http.Get(srv.URL + "/debug/pprof/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{false: 404, true: 200}[on]; resp.StatusCode != want {
			t.Errorf("EnablePprof=%v: /debug/pprof/cmdline %d, want %d", on, resp.StatusCode, want)
		}
		srv.Close()
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}
