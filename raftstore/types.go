// Package raftstore is the replicated state of the tcauth control plane:
// clients, roles, audit history and node metadata, kept by a hashicorp/raft
// node whose log and stable store are a bbolt file (raft-boltdb v2). It
// knows nothing of HTTP; the control plane drives it through Store.
package raftstore

import (
	"errors"
	"time"
)

// Client is a stored client. Records are immutable once stored: a write
// replaces the record, so readers may keep pointers without locks.
type Client struct {
	ClientID           string    `json:"clientId"`
	Description        string    `json:"description"`
	Scopes             []string  `json:"scopes"`
	Expires            time.Time `json:"expires"`
	Created            time.Time `json:"created"`
	LastModified       time.Time `json:"lastModified"`
	LastDateUsed       time.Time `json:"lastDateUsed"`
	LastRotated        time.Time `json:"lastRotated"`
	DeleteOnExpiration bool      `json:"deleteOnExpiration"`
	Disabled           bool      `json:"disabled"`
	// SealedToken is the accessToken sealed by the Keyring (AES-256-GCM,
	// clientId as additional data). The plaintext never enters the log,
	// snapshots or bolt files.
	SealedToken []byte `json:"sealedToken"`
}

// Role is a stored role.
type Role struct {
	RoleID       string    `json:"roleId"`
	Description  string    `json:"description"`
	Scopes       []string  `json:"scopes"`
	Created      time.Time `json:"created"`
	LastModified time.Time `json:"lastModified"`
}

// AuditEntry records who changed which client or role, and when.
type AuditEntry struct {
	EntityType string    `json:"entityType"`
	EntityID   string    `json:"entityId"`
	ClientID   string    `json:"clientId"` // the actor
	ActionType string    `json:"actionType"`
	Created    time.Time `json:"created"`
}

// AuditQuery selects audit entries: by entity (EntityType and EntityID) or
// by actor.
type AuditQuery struct {
	EntityType, EntityID string
	Actor                string
}

// Change is one entry of the change feed: a client or role that changed at
// a Raft index.
type Change struct {
	Index uint64 `json:"index"`
	Kind  string `json:"kind"` // "client" or "role"
	ID    string `json:"id"`
	Op    string `json:"op"` // created, updated, deleted, token-reset, enabled, disabled, expired
}

// Deleted reports whether the change removed the entity.
func (c Change) Deleted() bool { return c.Op == "deleted" || c.Op == "expired" }

// StaticClient is one statically configured client, with its token sealed.
type StaticClient struct {
	ClientID    string   `json:"clientId"`
	Description string   `json:"description"`
	Scopes      []string `json:"scopes"`
	SealedToken []byte   `json:"sealedToken"`
}

// Op names a command.
type Op string

// The commands. Every timestamp and generated secret is chosen by the
// leader before proposing and carried in the command, so applying it is
// deterministic on every node.
const (
	OpCreateClient         Op = "create-client"          // Client; ErrConflict if it exists
	OpUpdateClient         Op = "update-client"          // ID, Client's description/scopes/expires/deleteOnExpiration; ErrNotFound
	OpResetAccessToken     Op = "reset-access-token"     // ID, SealedToken; ErrNotFound
	OpSetClientDisabled    Op = "set-client-disabled"    // ID, Disabled; ErrNotFound
	OpDeleteClient         Op = "delete-client"          // ID; no error if absent
	OpCreateRole           Op = "create-role"            // Role; ErrConflict, ErrInvalidRoles
	OpUpdateRole           Op = "update-role"            // Role; ErrNotFound, ErrInvalidRoles
	OpDeleteRole           Op = "delete-role"            // ID; no error if absent
	OpTouchClients         Op = "touch-clients"          // LastUsed: many clients, one entry
	OpDeleteExpiredClients Op = "delete-expired-clients" // Time: deleteOnExpiration && expires < Time
	OpPurgeAudit           Op = "purge-audit"            // Before
	OpSyncStaticClients    Op = "sync-static-clients"    // Static
	OpSetNodeMeta          Op = "set-node-meta"          // NodeID, Meta
)

// Command is one write. Which fields matter depends on Op.
type Command struct {
	Op Op `json:"op"`
	// Format is the entry's format (format.go); absent means 1, as in
	// entries written before versioning. Encoding sets it from Op.
	Format      int                  `json:"v,omitempty"`
	Time        time.Time            `json:"time"`
	Actor       string               `json:"actor,omitempty"`
	ID          string               `json:"id,omitempty"`
	Client      *Client              `json:"client,omitempty"`
	Role        *Role                `json:"role,omitempty"`
	SealedToken []byte               `json:"sealedToken,omitempty"`
	Disabled    bool                 `json:"disabled,omitempty"`
	LastUsed    map[string]time.Time `json:"lastUsed,omitempty"`
	Before      time.Time            `json:"before,omitempty"`
	Static      []StaticClient       `json:"static,omitempty"`
	NodeID      string               `json:"nodeId,omitempty"`
	Meta        map[string]string    `json:"meta,omitempty"`

	// Login-state writes (login.go).
	Login          *LoginRecord `json:"login,omitempty"`          // login-put
	Create         bool         `json:"create,omitempty"`         // login-put
	MaxPerIdentity int          `json:"maxPerIdentity,omitempty"` // login-put
	Kind           string       `json:"kind,omitempty"`           // login-take, login-delete
	Key            string       `json:"key,omitempty"`            // login-take
	Keys           []string     `json:"keys,omitempty"`           // login-delete
	Identity       string       `json:"identity,omitempty"`       // login-delete

	// Re-sealing after a keyring rotation (reseal.go).
	Reseal []ResealItem `json:"reseal,omitempty"` // reseal-tokens

	// Outbox writes (outbox.go).
	Limit   int        `json:"limit,omitempty"`   // outbox-enable
	Through *OutboxPos `json:"through,omitempty"` // outbox-ack
}

// ApplyResult is what a command did.
type ApplyResult struct {
	Index  uint64
	Client *Client // the client after the write (create/update/reset/enable/disable), or the existing one on ErrConflict
	Role   *Role   // likewise for roles
	Count  int     // how many records a batch command touched
	// Login is the login record a login-put stored (the existing one on
	// ErrConflict) or a login-take took.
	Login *LoginRecord
}

// Errors, as package-level sentinels (wrapped with detail where useful).
var (
	ErrNotLeader = errors.New("raftstore: not the leader")
	// ErrOutcomeUnknown: the command was proposed but leadership was lost
	// (or the node shut down) before it was known to commit. It may still
	// commit under the next leader; a caller must read before retrying a
	// non-idempotent write. ErrNotLeader, by contrast, means nothing was
	// proposed.
	ErrOutcomeUnknown = errors.New("raftstore: leadership lost before the command was known to commit")
	ErrNotFound       = errors.New("raftstore: not found")
	ErrConflict       = errors.New("raftstore: already exists")
	ErrInvalidRoles   = errors.New("raftstore: invalid role set")
	ErrBadCommand     = errors.New("raftstore: malformed command")
	ErrFeedTruncated  = errors.New("raftstore: change feed no longer holds that index")
	ErrClosed         = errors.New("raftstore: closed")
	ErrNoKeyring      = errors.New("raftstore: no keyring configured")
	// ErrBadSnapshot: a backup given to RestoreSnapshot is unreadable,
	// truncated, has a role set that cannot be expanded, or holds tokens
	// this node's keyring cannot open.
	ErrBadSnapshot = errors.New("raftstore: unusable backup")
)
