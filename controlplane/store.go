package controlplane

import (
	"context"
	"time"

	"github.com/tcauth/tcauth/controlplane/login"
	"github.com/tcauth/tcauth/raftstore"
	"github.com/tcauth/tcauth/scopeengine"
)

// Store is everything the HTTP layer needs from the replicated state
// (hraftd style: the store knows nothing of HTTP, the service takes an
// interface). Reads are of this node's applied FSM state; writes go through
// Apply, which only the Raft leader accepts (ErrNotLeader elsewhere).
// raftstore.Store is adapted to it by NewRaftStore.
type Store interface {
	// Client returns the stored client (without its secret).
	Client(clientID string) (ClientRecord, bool)
	// AccessToken returns the client's decrypted access token.
	AccessToken(clientID string) (token string, ok bool, err error)
	// ListClients lists clients whose id starts with prefix, ordered by
	// clientId, skipping offset and returning at most limit; more reports
	// whether further clients exist.
	ListClients(prefix string, offset, limit int) (clients []ClientRecord, more bool)
	Role(roleID string) (RoleRecord, bool)
	// Roles returns every role ordered by roleId.
	Roles() []RoleRecord
	// Resolver is the role resolver of the current role set; a new value
	// (pointer) after every role change.
	Resolver() *scopeengine.Resolver
	// Audit lists audit entries matching q ordered by created ascending.
	Audit(q AuditQuery, offset, limit int) (entries []AuditRecord, more bool)

	// AppliedIndex is the Raft index of the last applied entry.
	AppliedIndex() uint64
	// Changes blocks until entries after index `after` changed a client or
	// role (or ctx ends) and returns them with the index they reach.
	Changes(ctx context.Context, after uint64) ([]Change, uint64, error)
	// LinearizableRead returns once this node's state reflects every write
	// acknowledged before the call (read-index on the leader); ErrNotLeader
	// on a follower.
	LinearizableRead(ctx context.Context) error

	// Apply replicates cmd through the Raft log and returns once applied
	// on this (leader) node.
	Apply(ctx context.Context, cmd Command) error
	IsLeader() bool
	// RaftState is "leader", "follower", "candidate" or "shutdown".
	RaftState() string
	// LeaderAPIAddress is the HTTP base URL (e.g. "http://10.0.0.1:8080")
	// the current leader published, "" if there is no known leader.
	LeaderAPIAddress() string
	// PublishAPIAddress publishes this node's HTTP base URL to its peers so
	// that they can forward requests to it while it leads (called by the
	// leader; may return ErrNotLeader elsewhere).
	PublishAPIAddress(ctx context.Context, url string) error
}

// CatchUpReporter is implemented by a Store that knows whether its applied
// state is current: CaughtUp is false after a restart, a rejoin or a
// leadership change until the node has applied the commit index the
// current leader had (raftstore.Store.CaughtUp). While it is false the
// server does not trust a refusal computed from local state ("unknown
// client", bad MAC, missing scopes, not found): the leader decides, or the
// caller gets 503 with Retry-After. A Store without it counts as always
// caught up (a single in-memory store is). CaughtUp is called on refusals
// only, so it must be cheap but need not be free; WaitCaughtUp returns
// once it is true, or an error when ctx ends first.
type CatchUpReporter interface {
	CaughtUp() bool
	WaitCaughtUp(ctx context.Context) error
}

// LoginStore is implemented by a Store that keeps the login service's
// replicated records (the raftstore adapter); a Server configured with
// Config.Login needs one. ApplyLogin runs on the leader only (ErrNotLeader
// elsewhere): it seals each record's Data with the cluster keyring before
// proposing, and answers the Raft index the command was applied at, which
// a follower that handed the write over waits for (read-your-writes).
// It returns login.ErrNotFound and login.ErrConflict for the rejections of
// login.Command; LoginRecord opens the stored Data.
type LoginStore interface {
	ApplyLogin(ctx context.Context, cmd login.Command) (login.Result, uint64, error)
	LoginRecord(kind, key string) (login.Record, bool, error)
	// WaitForIndex returns once this node has applied idx (or ctx ends).
	WaitForIndex(ctx context.Context, idx uint64) error
}

// Errors a Store returns (wrapped or not): raftstore's sentinels, so that
// the adapter passes them through unchanged. ErrCompacted is Changes'
// answer when `after` is older than the oldest change it still knows: the
// caller must reload everything.
var (
	ErrNotLeader, ErrNotFound, ErrConflict = raftstore.ErrNotLeader, raftstore.ErrNotFound, raftstore.ErrConflict
	ErrInvalidRoles, ErrCompacted          = raftstore.ErrInvalidRoles, raftstore.ErrFeedTruncated
	ErrOutcomeUnknown                      = raftstore.ErrOutcomeUnknown
)

// ClientRecord is a stored client. Scopes are as given by the caller (not
// sorted); AccessToken is never part of it.
type ClientRecord struct {
	ClientID           string
	Description        string
	Scopes             []string
	Expires            time.Time
	Created            time.Time
	LastModified       time.Time
	LastDateUsed       time.Time
	LastRotated        time.Time
	DeleteOnExpiration bool
	Disabled           bool
}

// RoleRecord is a stored role.
type RoleRecord struct {
	RoleID       string
	Description  string
	Scopes       []string
	Created      time.Time
	LastModified time.Time
}

// AuditRecord is one audit-history row (ClientID is the actor) and
// AuditQuery selects rows by entity (EntityType + EntityID) or by actor:
// the store's own types, which carry nothing HTTP-specific.
type (
	AuditRecord = raftstore.AuditEntry
	AuditQuery  = raftstore.AuditQuery
)

// Change is one client or role change in the change feed.
type Change struct {
	Index   uint64 `json:"index"`
	Kind    string `json:"kind"` // "client" or "role"
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
	// Op is what happened: created, updated, deleted, token-reset,
	// enabled, disabled, expired.
	Op string `json:"op"`
}

// Op names a write.
type Op string

// The writes. Every timestamp and generated secret is chosen by the leader's
// HTTP layer and carried in the Command, so applying it is deterministic.
//
//	create-client          insert Client with AccessToken; ErrConflict if it exists
//	update-client          replace description, scopes, expires, deleteOnExpiration of ID;
//	                       lastModified = Time; ErrNotFound if absent
//	reset-access-token     set AccessToken; lastModified = lastRotated = Time
//	set-client-disabled    set disabled = Disabled; lastModified = Time
//	delete-client          delete ID (no error if absent)
//	create-role            insert Role (created = lastModified = Time); ErrConflict if it
//	                       exists, ErrInvalidRoles if the new role set is invalid (docs/scopes.md §8)
//	update-role            replace the role's scopes and description; ErrNotFound, ErrInvalidRoles
//	delete-role            delete ID (no error if absent)
//	touch-clients          set lastDateUsed of each client in LastUsed (one batched command,
//	                       never one per authentication)
//	delete-expired-clients delete clients with deleteOnExpiration and expires < Time,
//	                       auditing "expired" by Actor
//	purge-audit            delete audit rows created before Before
//	sync-static-clients    make the stored static/ clients equal Static (docs/api.md §5): absent
//	                       ones deleted, changed ones updated, missing ones created with
//	                       expires = Time + 1000 years
//
// Every client/role change is audited (actor = Actor) and appears in the
// change feed.
const (
	// client writes of the API
	OpCreateClient      Op = "create-client"
	OpUpdateClient      Op = "update-client"
	OpResetAccessToken  Op = "reset-access-token"
	OpSetClientDisabled Op = "set-client-disabled"
	OpDeleteClient      Op = "delete-client"
)

// Role writes of the API.
const (
	OpCreateRole Op = "create-role"
	OpUpdateRole Op = "update-role"
	OpDeleteRole Op = "delete-role"
)

// Command is one write. Which fields matter depends on Op.
type Command struct {
	Op     Op
	Time   time.Time
	Actor  string // audit actor (the caller's clientId)
	ID     string // clientId/roleId for updates and deletes
	Client ClientRecord
	// AccessToken is the plaintext secret for create/reset; the store seals
	// it before it enters the log.
	AccessToken string
	Role        RoleRecord
	Disabled    bool
	LastUsed    map[string]time.Time
	Before      time.Time
	Static      []StaticClient
}
