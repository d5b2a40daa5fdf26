package controlplane

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/raftstore"
)

// Cluster is the membership and backup side of the replicated store, used by
// the /tcauth/cluster endpoints (`tcauth cluster ...` and `controlplane
// --join`). *raftstore.Store satisfies it. Membership calls and restores are
// leader-only (ErrNotLeader elsewhere); the routes forward them.
type Cluster interface {
	Join(ctx context.Context, id, raftAddr string) error
	Remove(ctx context.Context, id string) error
	Peers() ([]raftstore.Peer, error)
	TransferLeadership() error
	SaveSnapshot(w io.Writer) error
	RestoreSnapshot(r io.Reader) error
}

// ErrNoCluster is returned by the cluster endpoints of a server configured
// without Config.Cluster.
var ErrNoCluster = errors.New("controlplane: cluster operations are not configured")

var (
	nodeIDPattern             = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	raftAddrPattern           = regexp.MustCompile(`^[A-Za-z0-9.\[\]:_-]{1,255}:[0-9]{1,5}$`)
	keyringFingerprintPattern = regexp.MustCompile(`^[0-9]{1,10}:[0-9a-f]{16}(,[0-9]{1,10}:[0-9a-f]{16})*$`) // the body limit bounds it
	joinSchema                = func() *schema {
		s := object([]string{"id", "raftAddr"},
			"id", &schema{typ: "string", pattern: nodeIDPattern},
			"raftAddr", &schema{typ: "string", pattern: raftAddrPattern},
			// raftstore.Keyring.Fingerprint of the joining node's keyring.
			"keyring", &schema{typ: "string", pattern: keyringFingerprintPattern},
			// The joining node's API base URL (clusterstatus.go).
			"apiUrl", &schema{typ: "string", pattern: apiURLPattern})
		schemaIDs[s] = "tcauth-cluster-join-request"
		return s
	}()
)

// clusterRoutes are the operator's cluster endpoints. Each needs its own
// scope under auth:tcauth:cluster: so that the right to join a node can be
// given without the right to download every (sealed) token in a backup.
func (s *Server) clusterRoutes() []*route {
	return []*route{
		{name: "clusterPeers", method: "GET", path: p("tcauth", "cluster", "peers"), tmpl: tmpl(`"auth:tcauth:cluster:list-peers"`), handler: s.clusterPeers},
		// This node's own Raft figures (clusterstatus.go); never forwarded.
		{name: "clusterStatus", method: "GET", path: p("tcauth", "cluster", "status"), tmpl: tmpl(`"auth:tcauth:cluster:status"`), handler: s.clusterStatus},
		{name: "clusterJoin", method: "POST", path: p("tcauth", "cluster", "members"), tmpl: tmpl(`"auth:tcauth:cluster:join"`), input: joinSchema, kind: kindWrite, handler: s.clusterJoin},
		{name: "clusterRemove", method: "DELETE", path: p("tcauth", "cluster", "members", ":nodeId"), tmpl: tmpl(`"auth:tcauth:cluster:remove:<nodeId>"`), kind: kindWrite, handler: s.clusterRemove},
		{name: "clusterTransferLeadership", method: "POST", path: p("tcauth", "cluster", "transfer-leadership"), tmpl: tmpl(`"auth:tcauth:cluster:transfer-leadership"`), kind: kindWrite, handler: s.clusterTransfer},
		// The backup is taken on the leader after a read-index check, so it
		// holds every write acknowledged before the request.
		{name: "clusterSnapshotSave", method: "GET", path: p("tcauth", "cluster", "snapshot"), tmpl: tmpl(`"auth:tcauth:cluster:snapshot-save"`), kind: kindRead, handler: s.clusterSnapshotSave},
		{name: "clusterSnapshotRestore", method: "PUT", path: p("tcauth", "cluster", "snapshot"), tmpl: tmpl(`"auth:tcauth:cluster:snapshot-restore"`), kind: kindWrite, rawBody: true, handler: s.clusterSnapshotRestore},
	}
}

func (s *Server) cluster() (Cluster, error) {
	if s.cfg.Cluster == nil {
		return nil, &protocol.APIError{Code: protocol.CodeResourceNotFound, Status: http.StatusNotFound, Message: ErrNoCluster.Error()}
	}
	return s.cfg.Cluster, nil
}

func (s *Server) clusterPeers(c *call) error {
	cl, err := s.cluster()
	if err != nil {
		return err
	}
	peers, err := cl.Peers()
	if err != nil {
		return err
	}
	if peers == nil {
		peers = []raftstore.Peer{}
	}
	return c.reply(struct {
		Peers []raftstore.Peer `json:"peers"`
	}{peers})
}

func (s *Server) clusterJoin(c *call) error {
	cl, err := s.cluster()
	if err != nil {
		return err
	}
	in := c.input.(map[string]any)
	id, addr := in["id"].(string), in["raftAddr"].(string)
	// A node with another deployment's keyring would replicate tokens it
	// cannot open and answer 500 for every client: refuse it before it
	// joins. (A joiner that sends no fingerprint is not checked.)
	if fp, ok := in["keyring"].(string); ok {
		if k, ok := s.cfg.PeerKeyring.(interface{ CheckFingerprint(string) error }); ok {
			if err := k.CheckFingerprint(fp); err != nil {
				return apiErr(protocol.CodeRequestConflict, "Node %s cannot join: its keyring is not this cluster's (%v). "+
					"Copy keyring.json from a member of the cluster to the node and start it again", id, err)
			}
		}
	}
	if err := cl.Join(c.r.Context(), id, addr); err != nil {
		return err
	}
	if u, ok := in["apiUrl"].(string); ok {
		s.recordMemberAPI(c.r.Context(), cl, id, u)
	}
	s.log.Info("node joined the cluster", "node", id, "raftAddr", addr, "by", c.clientID())
	return c.reply(struct {
		ID       string `json:"id"`
		RaftAddr string `json:"raftAddr"`
	}{id, addr})
}

func (s *Server) clusterRemove(c *call) error {
	cl, err := s.cluster()
	if err != nil {
		return err
	}
	id := c.params["nodeId"]
	peers, err := cl.Peers()
	if err != nil {
		return err
	}
	known := false
	for _, p := range peers {
		known = known || p.ID == id
	}
	if !known {
		return apiErr(protocol.CodeResourceNotFound, "Node %s is not a member of the cluster", id)
	}
	if err := cl.Remove(c.r.Context(), id); err != nil {
		if errors.Is(err, raftstore.ErrLastVoter) {
			return apiErr(protocol.CodeRequestConflict, "Node %s is the cluster's last voter: without it no leader can ever be "+
				"elected and no write accepted. Add another node first (controlplane --join), then remove this one", id)
		}
		return err
	}
	s.log.Info("node removed from the cluster", "node", id, "by", c.clientID())
	return c.noContent()
}

func (s *Server) clusterTransfer(c *call) error {
	cl, err := s.cluster()
	if err != nil {
		return err
	}
	if err := cl.TransferLeadership(); err != nil {
		return &protocol.APIError{Code: protocol.CodeInternalServerError, Status: http.StatusServiceUnavailable,
			Message: "Leadership transfer failed: " + err.Error()}
	}
	return c.noContent()
}

// clusterSnapshotSave streams a backup: JSON lines, access tokens sealed
// with the cluster keyring (a restore needs the same keyring).
func (s *Server) clusterSnapshotSave(c *call) error {
	cl, err := s.cluster()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := cl.SaveSnapshot(&buf); err != nil {
		return err
	}
	c.status = http.StatusOK
	h := c.w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set(appliedIndexHeader, strconv.FormatUint(s.store.AppliedIndex(), 10))
	c.w.WriteHeader(http.StatusOK)
	_, _ = buf.WriteTo(c.w)
	return nil
}

// clusterSnapshotRestore replaces the whole cluster's state with a backup.
// The backup is checked completely before anything changes; a bad one is a
// 400 and the state stays as it was.
func (s *Server) clusterSnapshotRestore(c *call) error {
	cl, err := s.cluster()
	if err != nil {
		return err
	}
	if len(c.body) == 0 {
		return apiErr(protocol.CodeInputError, "The request body must be a backup made by GET /tcauth/cluster/snapshot")
	}
	if err := cl.RestoreSnapshot(bytes.NewReader(c.body)); err != nil {
		if errors.Is(err, raftstore.ErrBadSnapshot) {
			return apiErr(protocol.CodeInputError, "Not a usable backup: %s", err.Error())
		}
		return err
	}
	s.log.Warn("cluster state replaced from a backup", "bytes", len(c.body), "by", c.clientID())
	// Static clients are configuration, not data: the backup carries the
	// old deployment's (its root token, say), so this cluster's own are
	// written back at once rather than at the next leadership change.
	s.staticMu.Lock()
	s.staticSynced = false
	s.staticMu.Unlock()
	if err := s.SyncStaticClients(c.r.Context()); err != nil {
		s.log.Warn("static client sync after restore failed; the background job retries", "error", err.Error())
	}
	return c.noContent()
}
