package raftstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestHCLogAdapter: raft's hclog calls come out of the slog handler with
// its keys (time, level, msg, component=raft), hclog's values rendered as
// hclog would, the handler's level obeyed, and the first election of a
// node that never had a leader at info rather than warn.
func TestHCLogAdapter(t *testing.T) {
	cases := []struct {
		name      string
		log       func(l hclog.Logger)
		level     slog.Level // the handler's
		wantLevel string     // "" = no line
		wantAttrs map[string]any
	}{
		{"info", func(l hclog.Logger) { l.Info("entering leader state", "term", 2) }, slog.LevelInfo, "INFO", map[string]any{"term": 2.0}},
		{"filtered", func(l hclog.Logger) { l.Info("entering leader state") }, slog.LevelWarn, "", nil},
		{"trace below debug", func(l hclog.Logger) { l.Trace("x") }, slog.LevelDebug, "", nil},
		{"error", func(l hclog.Logger) { l.Error("failed to appendEntries to", "error", errors.New("dial refused")) }, slog.LevelInfo, "ERROR",
			map[string]any{"error": "dial refused"}},
		{"fmt", func(l hclog.Logger) { l.Info("initial configuration", "servers", hclog.Fmt("%d servers", 3)) }, slog.LevelInfo, "INFO",
			map[string]any{"servers": "3 servers"}},
		{"first election", func(l hclog.Logger) {
			l.Warn("heartbeat timeout reached, starting election", "last-leader-addr", "", "last-leader-id", "")
		}, slog.LevelWarn, "", nil},
		{"leader lost", func(l hclog.Logger) {
			l.Warn("heartbeat timeout reached, starting election", "last-leader-addr", "10.0.0.1:8300", "last-leader-id", "n1")
		}, slog.LevelWarn, "WARN", map[string]any{"last-leader-id": "n1"}},
		{"with and named", func(l hclog.Logger) { l.With("peer", "n2").Named("replication").Info("x") }, slog.LevelInfo, "INFO",
			map[string]any{"peer": "n2", "logger": "raft.replication"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tc.log(newHCLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: tc.level})), "raft"))
			out := strings.TrimSpace(buf.String())
			if tc.wantLevel == "" {
				if out != "" {
					t.Fatalf("want no line, got %s", out)
				}
				return
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(out), &rec); err != nil {
				t.Fatalf("not one JSON line: %q", out)
			}
			if rec["level"] != tc.wantLevel || rec["component"] != "raft" || rec["time"] == nil || rec["msg"] == nil {
				t.Errorf("line %v, want level %s and component raft", rec, tc.wantLevel)
			}
			for k, v := range tc.wantAttrs {
				if rec[k] != v {
					t.Errorf("%s = %v, want %v (%s)", k, rec[k], v, out)
				}
			}
		})
	}
}
