package controlplane

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/tcauth/tcauth/protocol"
)

// scrapeFamilies returns the page's metric families with their type, and
// the sample lines.
func scrapeFamilies(t *testing.T, e *testEnv) (map[string]string, []string) {
	t.Helper()
	r := e.do("GET", "/metrics")
	expectStatus(t, r, 200)
	types := map[string]string{}
	var samples []string
	sc := bufio.NewScanner(strings.NewReader(string(r.body)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
		} else if !strings.HasPrefix(line, "#") {
			samples = append(samples, line)
		}
	}
	return types, samples
}

func hasSample(samples []string, prefix string) bool {
	for _, s := range samples {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func sampleValue(samples []string, name string) float64 {
	for _, s := range samples {
		if v, ok := strings.CutPrefix(s, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// TestOpsMetrics: after real traffic on a Raft-backed server, /metrics has
// Raft's own series and the node's figures, the Go and process collectors,
// authenticateHawk outcomes by reason, and the change feed's long poll in a
// histogram of its own, not in the request latency.
func TestOpsMetrics(t *testing.T) {
	e := newEnv(t)
	e.addClient("sidecar", "sidecar-token-0123456789", "auth:tcauth:watch-changes", "auth:tcauth:verify-clients")
	sidecar := as("sidecar", "sidecar-token-0123456789")
	good := protocol.Credentials{ClientID: "sidecar", AccessToken: "sidecar-token-0123456789"}
	bad := protocol.Credentials{ClientID: "sidecar", AccessToken: "wrong-token-0123456789ab"}
	unknown := protocol.Credentials{ClientID: "nobody/here", AccessToken: "whatever-0123456789abcdef"}
	for _, c := range []protocol.Credentials{good, bad, bad, unknown} {
		expectStatus(t, e.api("POST", "/authenticate-hawk", withBody(authenticateHawkBody(t, c)), withContentType("application/json")), 200)
	}
	expectStatus(t, e.api("GET", "/tcauth/changes?wait=0&after=0", sidecar), 200)
	// The API's own callers are counted apart from authenticateHawk.
	expectStatus(t, e.api("GET", "/clients/", as("sidecar", "wrong-token-0123456789ab")), 401)
	expectStatus(t, e.api("GET", "/clients/", as("nobody/here", "whatever-0123456789abcdef")), 401)

	types, samples := scrapeFamilies(t, e)
	for name, typ := range map[string]string{
		"tcauth_raft_commit_duration_seconds":    "histogram",
		"tcauth_raft_fsm_apply_duration_seconds": "histogram",
		"tcauth_raft_state_transitions_total":    "counter",
		"tcauth_raft_term":                       "gauge",
		"tcauth_raft_last_log_index":             "gauge",
		"tcauth_raft_commit_index":               "gauge",
		"tcauth_raft_last_contact_seconds":       "gauge",
		"tcauth_raft_leader_changes_total":       "counter",
		"tcauth_raft_peers":                      "gauge",
		"tcauth_authenticate_hawk_total":         "counter",
		"tcauth_api_authentications_total":       "counter",
		"tcauth_api_long_poll_duration_seconds":  "histogram",
		"tcauth_api_request_duration_seconds":    "histogram",
		"go_goroutines":                          "gauge",
		"process_cpu_seconds_total":              "counter",
	} {
		if types[name] != typ {
			t.Errorf("%s: type %q, want %q", name, types[name], typ)
		}
	}
	for _, want := range []string{
		`tcauth_authenticate_hawk_total{reason="",result="success"} 1`,
		`tcauth_authenticate_hawk_total{reason="bad_mac",result="failed"} 2`,
		`tcauth_authenticate_hawk_total{reason="unknown_client",result="failed"} 1`,
		`tcauth_api_authentications_total{reason="",result="success"} 1`,
		`tcauth_api_authentications_total{reason="bad_mac",result="failed"} 1`,
		`tcauth_api_authentications_total{reason="unknown_client",result="failed"} 1`,
		`tcauth_api_long_poll_duration_seconds_count{endpoint="watchChanges"} 1`,
		`tcauth_raft_peers 1`,
		`tcauth_raft_state_transitions_total{state="leader"}`,
	} {
		if !hasSample(samples, want) {
			t.Errorf("no sample %s", want)
		}
	}
	// Raft really reports through the sink (these are zero without it).
	for _, name := range []string{"tcauth_raft_fsm_apply_batch_duration_seconds_count", "tcauth_raft_fsm_apply_batch_entries_count", `tcauth_raft_state_transitions_total{state="leader"}`,
		"tcauth_raft_commit_duration_seconds_count", "tcauth_raft_apply_total"} {
		if v := sampleValue(samples, name); v <= 0 {
			t.Errorf("%s = %v, want > 0", name, v)
		}
	}
	if hasSample(samples, `tcauth_api_request_duration_seconds_count{endpoint="watchChanges"}`) {
		t.Error("the long poll is in the request latency histogram")
	}
	if !hasSample(samples, `tcauth_api_requests_total{endpoint="watchChanges",status="200"} 1`) {
		t.Error("the long poll is not counted as a request")
	}
}

// TestPprofOptIn: Go's profiles are on the admin handler only, and there
// only with EnablePprof; the public API handler never serves them (anyone
// reaching it could take CPU profiles and read the command line). /metrics
// is on both.
func TestPprofOptIn(t *testing.T) {
	type probe struct {
		listener string // "api" (Handler) or "admin" (AdminHandler)
		path     string
		want     int
	}
	profiles := []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/symbol", "/debug/pprof/heap"}
	for _, on := range []bool{false, true} {
		e := newMemEnv(t, func(c *Config) { c.EnablePprof = on })
		handlers := map[string]http.Handler{"api": e.srv.Handler(), "admin": e.srv.AdminHandler()}
		probes := []probe{
			{"admin", "/metrics", 200},
			{"api", "/metrics", 200},
			{"admin", "/api/auth/v1/ping", 404}, // the admin listener is not the API
		}
		onAdmin := map[bool]int{false: 404, true: 200}[on]
		for _, p := range profiles {
			probes = append(probes, probe{"api", p, 404}, probe{"admin", p, onAdmin})
		}
		for _, tc := range probes {
			rec := httptest.NewRecorder()
			handlers[tc.listener].ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
			if rec.Code != tc.want {
				t.Errorf("EnablePprof=%v, %s listener, GET %s: %d, want %d", on, tc.listener, tc.path, rec.Code, tc.want)
			}
		}
	}
}

// TestRequestLine: the request line has method, path (a bewit removed),
// status, clientId, source and request id, and never the Authorization
// header; the id is the caller's X-Request-Id when well formed.
func TestRequestLine(t *testing.T) {
	const bewit = "c2VjcmV0LWJld2l0LXZhbHVlLWluLXRoZS1xdWVyeQ"
	cases := []struct {
		name, path, reqID string
		opts              []opt
		wantPath          string
		wantClient        string
		wantStatus        float64
		keepID            bool
	}{
		{"signed", "/scopes/current", "trace-42", []opt{asRoot()}, apiPrefix + "/scopes/current", "root", 200, true},
		{"bewit", "/clients/?bewit=" + bewit + "&prefix=a", "", nil, apiPrefix + "/clients/?prefix=a", "", 0, false},
		{"bad id", "/ping", "has spaces", nil, apiPrefix + "/ping", "", 200, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newMemEnv(t)
			opts := tc.opts
			if tc.reqID != "" {
				opts = append(opts, withHeader(RequestIDHeader, tc.reqID))
			}
			r := e.api("GET", tc.path, opts...)
			var line map[string]any
			for _, l := range strings.Split(strings.TrimSpace(e.logBuf.String()), "\n") {
				var m map[string]any
				if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" {
					line = m
				}
			}
			if line == nil {
				t.Fatalf("no request line:\n%s", e.logBuf.String())
			}
			if line["method"] != http.MethodGet || line["path"] != tc.wantPath || line["source"] != "127.0.0.1" ||
				line["status"] != float64(r.status) || (tc.wantStatus != 0 && line["status"] != tc.wantStatus) {
				t.Errorf("line %v (answer %d)", line, r.status)
			}
			if got, _ := line["clientId"].(string); got != tc.wantClient {
				t.Errorf("clientId %q, want %q", got, tc.wantClient)
			}
			id, _ := line["requestId"].(string)
			if id == "" || r.header.Get(RequestIDHeader) != id || (id == tc.reqID) != tc.keepID {
				t.Errorf("request id %q (header %q, sent %q)", id, r.header.Get(RequestIDHeader), tc.reqID)
			}
			if log := e.logBuf.String(); strings.Contains(log, bewit) || strings.Contains(log, "Hawk id=") {
				t.Errorf("a credential reached the log:\n%s", log)
			}
		})
	}
}
