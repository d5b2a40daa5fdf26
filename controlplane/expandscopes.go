package controlplane

import (
	"bufio"
	"context"
	"net/http"
	"runtime"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

// Large expansions (expandScopes).
//
// At 100,000 roles expand(["assume:*"]) is ~550,000 scopes, 15 MB of JSON.
// Built as a []string plus a marshalled and indented buffer per request,
// ten concurrent calls took a node from ~100 MB to ~900 MB. Now:
//
//   - the resolver computes a large answer once per snapshot and shares it
//     (scopeengine expandcache.go), so concurrent calls hold one list;
//   - the answer is encoded straight to the connection through a 32 KiB
//     buffer, so a call holds no copy of the JSON;
//   - calls with a broad input (an assume target ending in '*') or a large
//     answer take a slot of a semaphore (Config.MaxLargeExpansions, default
//     half the CPUs): encoding 15 MB is CPU-bound, and leaving the other
//     CPUs free keeps every other caller's latency (authenticateHawk,
//     ping) unchanged while such calls run. A call that finds no slot
//     within Config.LargeExpansionWait gets 503 with Retry-After: 1 in
//     Taskcluster's error shape. 503 rather than 429: the limit is the
//     node's, not this caller's rate, and the official clients retry 5xx
//     with backoff but not 429.
//   - a large answer's write has a deadline (largeExpansionWriteTimeout), so
//     a caller that stops reading cannot hold a slot forever.

// DefaultMaxLargeExpansions is Config.MaxLargeExpansions' default: half of
// GOMAXPROCS, at least 1.
func DefaultMaxLargeExpansions() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// largeExpansionWriteTimeout bounds writing one large answer (15 MB takes
// well under a second on any link a control plane's callers use).
const largeExpansionWriteTimeout = 60 * time.Second

// errExpansionsBusy answers a large expansion that found no slot.
var errExpansionsBusy = &protocol.APIError{Code: protocol.CodeInternalServerError, Status: http.StatusServiceUnavailable,
	Message: "Too many large scope expansions are running on this node; retry later."}

func (s *Server) serveExpansion(c *call, scopes []string) error {
	held := false
	if scopeengine.HasBroadAssume(scopes) {
		// Taken before expanding: the first expansion of a broad input in
		// a snapshot is the expensive part.
		if err := s.acquireExpansion(c.r.Context()); err != nil {
			c.w.Header().Set("Retry-After", retryAfterSeconds)
			return err
		}
		held = true
		defer s.releaseExpansion()
	}
	set := s.store.Resolver().Expand(scopes)
	if len(set) < scopeengine.DefaultSharedExpansionMin {
		return c.reply(protocol.ScopesetJSON{Scopes: set})
	}
	if !held {
		if err := s.acquireExpansion(c.r.Context()); err != nil {
			c.w.Header().Set("Retry-After", retryAfterSeconds)
			return err
		}
		defer s.releaseExpansion()
	}
	c.streamScopeset(set)
	return nil
}

// acquireExpansion takes a large-expansion slot, waiting at most
// Config.LargeExpansionWait.
func (s *Server) acquireExpansion(ctx context.Context) error {
	select {
	case s.largeExpansions <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(s.cfg.LargeExpansionWait)
	defer t.Stop()
	select {
	case s.largeExpansions <- struct{}{}:
		return nil
	case <-t.C:
		return errExpansionsBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) releaseExpansion() { <-s.largeExpansions }

// streamScopeset writes {"scopes": set} byte for byte as reply would
// (JSON.stringify(v, null, 2)), straight to the connection. Once the
// status is sent an error cannot be reported; a failed write means the
// caller went away.
func (c *call) streamScopeset(set []string) {
	c.status = http.StatusOK
	_ = http.NewResponseController(c.w).SetWriteDeadline(time.Now().Add(largeExpansionWriteTimeout))
	c.w.Header().Set("Content-Type", "application/json; charset=utf-8")
	c.w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(c.w, 32<<10)
	_, _ = bw.WriteString("{\n  \"scopes\": [")
	for i, s := range set {
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		_, _ = bw.WriteString("\n    ")
		writeJSONString(bw, s)
	}
	if len(set) > 0 {
		_, _ = bw.WriteString("\n  ")
	}
	_, _ = bw.WriteString("]\n}")
	_ = bw.Flush()
}

// writeJSONString writes s as protocol.Marshal would: printable ASCII
// without '"' and '\' (every scope the schemas accept, nearly always) as
// is, anything else through the encoder.
func writeJSONString(bw *bufio.Writer, s string) {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b > 0x7e || b == '"' || b == '\\' {
			enc, err := protocol.Marshal(s)
			if err != nil {
				enc = []byte(`""`) // a Go string always marshals
			}
			_, _ = bw.Write(enc)
			return
		}
	}
	_ = bw.WriteByte('"')
	_, _ = bw.WriteString(s)
	_ = bw.WriteByte('"')
}
