package controlplane

import (
	"context"
	"log/slog"
	"regexp"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/raftstore"
)

// apiURLPattern bounds the API base URL a joining node announces: http(s),
// a host and an optional port and path, no query or fragment.
var apiURLPattern = regexp.MustCompile(`^https?://[A-Za-z0-9.\[\]:_-]{1,255}(/[A-Za-z0-9._~/-]{0,200})?$`)

// StatusReporter is implemented by a Cluster that can report this node's
// own Raft figures and the API address every member published
// (*raftstore.Store does).
type StatusReporter interface {
	Status() raftstore.NodeStatus
	NodeMeta(id string) map[string]string
}

// memberMetaSetter publishes metadata for another member (leader only).
type memberMetaSetter interface {
	SetMemberMeta(ctx context.Context, id string, meta map[string]string) error
}

// ClusterStatus is GET /tcauth/cluster/status: the answering node's own
// figures and the members with the API address each published, so that
// `tcauth cluster status` can ask every member for its own.
type ClusterStatus struct {
	Node    raftstore.NodeStatus `json:"node"`
	APIURL  string               `json:"apiUrl,omitempty"`
	Members []ClusterMember      `json:"members"`
}

// ClusterMember is a member as the answering node's configuration has it.
type ClusterMember struct {
	ID          string `json:"id"`
	RaftAddress string `json:"raftAddress"`
	Voter       bool   `json:"voter"`
	Leader      bool   `json:"leader"`
	// APIURL is "" for a member that never published one (joined before
	// joins carried it, and never led).
	APIURL string `json:"apiUrl,omitempty"`
}

func (s *Server) clusterStatus(c *call) error {
	cl, err := s.cluster()
	if err != nil {
		return err
	}
	sr, ok := cl.(StatusReporter)
	if !ok {
		return apiErr(protocol.CodeResourceNotFound, "This node cannot report its Raft status")
	}
	peers, err := cl.Peers()
	if err != nil {
		return err
	}
	out := ClusterStatus{Node: sr.Status(), APIURL: s.cfg.AdvertiseURL, Members: []ClusterMember{}}
	for _, p := range peers {
		m := ClusterMember{ID: p.ID, RaftAddress: p.Address, Voter: p.Voter, Leader: p.Leader, APIURL: sr.NodeMeta(p.ID)[APIAddressMeta]}
		if p.ID == out.Node.ID {
			m.APIURL = s.cfg.AdvertiseURL
		}
		out.Members = append(out.Members, m)
	}
	return c.reply(out)
}

// recordMemberAPI publishes a joining node's API address, so that the
// operator's tools reach every member (a node publishes its own only while
// it leads). Best effort: the join itself has succeeded.
func (s *Server) recordMemberAPI(ctx context.Context, cl Cluster, id, url string) {
	ms, ok := cl.(memberMetaSetter)
	if !ok {
		return
	}
	if err := ms.SetMemberMeta(ctx, id, map[string]string{APIAddressMeta: url}); err != nil {
		s.log.Warn("could not record the joined node's API address", "node", id, "error", err.Error())
	}
}

// RequestIDHeader carries a request's id (see protocol.RequestID); echoed
// on the answer and in the request line.
const RequestIDHeader = protocol.RequestIDHeader

// logRequest writes the request line: method, path (the query without
// any bewit, which is a credential), status, clientId, source, request id,
// endpoint and duration. Never a header or a body.
func (s *Server) logRequest(c *call, endpoint, reqID string, start time.Time) {
	ctx := c.r.Context()
	if !s.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{slog.String("method", c.r.Method), slog.String("path", protocol.RedactURI(c.r.URL.RequestURI())),
		slog.Int("status", c.status), slog.String("source", s.clientAddr(c.r)), slog.String("requestId", reqID)}
	if c.auth != nil && c.auth.ClientID != "" {
		attrs = append(attrs, slog.String("clientId", c.auth.ClientID))
	}
	attrs = append(attrs, slog.String("endpoint", endpoint), slog.Int64("duration_ms", time.Since(start).Milliseconds()))
	s.log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
}
