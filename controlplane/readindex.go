package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/tcauth/tcauth/raftstore"
)

// readIndexPath is the leader's read-index endpoint under the API prefix.
const readIndexPath = "/tcauth/internal/read-index"

// ReadIndexSetter is implemented by stores whose followers can check, with
// the leader's read index, that they are caught up (raftstore's
// SetReadIndexSource through the adapter).
type ReadIndexSetter interface {
	SetReadIndexSource(func(ctx context.Context) (uint64, error))
}

// readIndex answers a follower's catch-up check: the leader's applied
// index once the leader itself is caught up (its barrier of the term
// applied), which covers every write it has acknowledged (a write is
// answered after it is applied). Anyone may ask: an index is no secret,
// and the answer grants nothing. Not the leader, or not caught up: 503.
func (s *Server) readIndex(c *call) error {
	if !s.store.IsLeader() || !s.caughtUp() {
		return errNoLeader
	}
	c.w.Header().Set("Cache-Control", "no-store")
	return c.reply(map[string]string{"readIndex": strconv.FormatUint(s.store.AppliedIndex(), 10)})
}

// errNoReadIndex: the leader's read index could not be had (no leader
// known, the leader unreachable or not ready); the follower tries again.
var errNoReadIndex = errors.New("controlplane: the leader's read index is not available")

// fetchReadIndex asks the leader named in the replicated node metadata for
// its read index.
func (s *Server) fetchReadIndex(ctx context.Context) (uint64, error) {
	leader := s.store.LeaderAPIAddress()
	if leader == "" || s.store.IsLeader() {
		// No address to ask: the store falls back to the commit index it
		// noted in AppendEntries.
		return 0, raftstore.ErrNoReadIndexSource
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(leader, "/")+apiPrefix+readIndexPath, nil)
	if err != nil {
		return 0, err
	}
	resp, err := s.readIndexClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errNoReadIndex, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%w: HTTP %d", errNoReadIndex, resp.StatusCode)
	}
	var out struct {
		ReadIndex string `json:"readIndex"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return 0, fmt.Errorf("%w: %v", errNoReadIndex, err)
	}
	idx, err := strconv.ParseUint(out.ReadIndex, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errNoReadIndex, err)
	}
	return idx, nil
}
