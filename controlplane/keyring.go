package controlplane

import (
	"context"
	"errors"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/raftstore"
)

// Keyring rotation (docs/operations.md "Rotate the keyring"): the keyring
// files are edited offline on every node (`tcauth keyring add|promote|
// remove`); what needs the running cluster is re-sealing what old terms
// sealed, and seeing, node by node, which keyring each one runs.

// Resealer is implemented by a Cluster that can re-seal stored tokens
// under its primary key term (*raftstore.Store does).
type Resealer interface {
	ResealTokens(ctx context.Context) (raftstore.ResealReport, error)
	SealedTermCounts() (tokens, loginData map[uint32]int)
}

// KeyringStatus is GET /tcauth/keyring/status: the answering node's
// keyring (terms and fingerprints, never keys) and how many stored tokens
// and login records' data each term seals in its state.
type KeyringStatus struct {
	Node            string                `json:"node,omitempty"`
	Keyring         raftstore.KeyringInfo `json:"keyring"`
	TokensByTerm    map[uint32]int        `json:"tokensByTerm"`
	LoginDataByTerm map[uint32]int        `json:"loginDataByTerm"`
}

// keyringRoutes are the keyring endpoints, each with its own scope under
// auth:tcauth:keyring:.
func (s *Server) keyringRoutes() []*route {
	return []*route{
		// Local: each node's own keyring, so that an operator can check
		// every member before the next step; never forwarded.
		{name: "keyringStatus", method: "GET", path: p("tcauth", "keyring", "status"), tmpl: tmpl(`"auth:tcauth:keyring:status"`), handler: s.keyringStatus},
		// On the leader (forwarded): it proposes the re-sealed tokens.
		{name: "keyringReseal", method: "POST", path: p("tcauth", "keyring", "reseal"), tmpl: tmpl(`"auth:tcauth:keyring:reseal"`), kind: kindWrite, handler: s.keyringReseal},
	}
}

func (s *Server) resealer() (Resealer, error) {
	cl, err := s.cluster()
	if err != nil {
		return nil, err
	}
	r, ok := cl.(Resealer)
	if !ok {
		return nil, apiErr(protocol.CodeResourceNotFound, "This node cannot re-seal tokens")
	}
	return r, nil
}

func (s *Server) keyringStatus(c *call) error {
	r, err := s.resealer()
	if err != nil {
		return err
	}
	k, ok := s.cfg.PeerKeyring.(interface{ Info() raftstore.KeyringInfo })
	if !ok {
		return apiErr(protocol.CodeResourceNotFound, "This node has no cluster keyring")
	}
	out := KeyringStatus{Keyring: k.Info()}
	if n, ok := s.cfg.Cluster.(interface{ NodeID() string }); ok {
		out.Node = n.NodeID()
	}
	out.TokensByTerm, out.LoginDataByTerm = r.SealedTermCounts()
	return c.reply(out)
}

func (s *Server) keyringReseal(c *call) error {
	r, err := s.resealer()
	if err != nil {
		return err
	}
	rep, err := r.ResealTokens(c.r.Context())
	if errors.Is(err, raftstore.ErrFormatNotEnabled) {
		return apiErr(protocol.CodeRequestConflict, "Re-sealing needs every member to run a release that reads it: %v", err)
	}
	if err != nil {
		return err
	}
	s.log.Info("re-sealed stored tokens under the primary key term", "primary", rep.Primary,
		"tokens", rep.ResealedTokens, "loginData", rep.ResealedLoginData, "entries", rep.Entries, "unopenable", rep.Unopenable, "by", c.clientID())
	return c.reply(rep)
}
