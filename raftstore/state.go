package raftstore

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tcauth/tcauth/scopeengine"
)

// state is the FSM's data. Records are immutable values behind pointers: a
// write stores a new record, so readers can hand out records without
// copying under the lock, and a snapshot holds a frozen view of the client
// index (copy-on-write, clientindex.go) rather than a copy.
type state struct {
	clients map[string]*Client // by id, for lookups
	// ids holds the same clients sorted by id, for prefix listing with
	// offsets and snapshots. Every write of a client goes through
	// putClient/deleteClient, which keep the two equal.
	ids   clientIndex
	roles map[string]*Role
	// strs holds the canonical copy of every scope and audit actor the
	// records use (intern.go).
	strs     *interner
	resolver *scopeengine.Resolver
	audit    []AuditEntry // in apply order
	meta     map[string]map[string]string
	// logins are the login service's records by loginIndexKey(kind, key);
	// loginsByIdentity indexes their keys by loginIndexKey(kind, identity)
	// for per-identity limits and deletes (login.go).
	logins           map[string]*LoginRecord
	loginsByIdentity map[string]map[string]struct{}
	// outbox holds client and role changes for the broker (outbox.go);
	// applying is the Raft index of the entry being applied, which names
	// its events.
	outbox   outbox
	applying uint64
	// committedFormat is the newest format this state is known to hold
	// committed: its snapshot's version, raised by every entry applied
	// since. Not written to snapshots (a snapshot's version says it); a
	// hint for the leader's format gate, never for what is applied.
	committedFormat int
}

func newState() *state {
	return &state{
		clients:  map[string]*Client{},
		roles:    map[string]*Role{},
		resolver: mustResolver(nil),
		meta:     map[string]map[string]string{},
		strs:     newInterner(),

		logins:           map[string]*LoginRecord{},
		loginsByIdentity: map[string]map[string]struct{}{},
	}
}

func mustResolver(roles []scopeengine.Role) *scopeengine.Resolver {
	r, err := scopeengine.NewResolver(roles)
	if err != nil {
		// Only reachable with an invalid stored role set, which applying
		// never produces; fall back to no roles rather than panic.
		r, _ = scopeengine.NewResolver(nil)
	}
	return r
}

// putClient stores c (a new record, never changed afterwards), replacing
// any client with its id.
func (s *state) putClient(c *Client) {
	s.clients[c.ClientID] = c
	s.ids.put(c)
}

func (s *state) deleteClient(id string) bool {
	if _, ok := s.clients[id]; !ok {
		return false
	}
	delete(s.clients, id)
	s.ids.delete(id)
	return true
}

// internClient returns a copy of c whose scopes are the canonical copies.
func (s *state) internClient(c *Client) *Client {
	nc := *c
	nc.Scopes = s.strs.all(c.Scopes)
	return &nc
}

func (s *state) listClients(prefix string, offset, limit int) ([]Client, bool) {
	v := s.ids.view()
	ci, j := v.seek(prefix)
	ci, j = v.skip(ci, j, max(offset, 0))
	var out []Client
	for c := range v.from(ci, j) {
		if !strings.HasPrefix(c.ClientID, prefix) {
			break
		}
		if limit >= 0 && len(out) == limit {
			return out, true
		}
		out = append(out, *c)
	}
	if out == nil {
		out = []Client{}
	}
	return out, false
}

// sweepInterned drops the strings no record uses any more from the
// interning set, once it has doubled (intern.go).
func (s *state) sweepInterned() {
	if !s.strs.due() {
		return
	}
	nin := s.strs.rebuilt()
	for c := range s.ids.view().all() {
		for _, sc := range c.Scopes {
			nin.intern(sc)
		}
	}
	for _, r := range s.roles {
		for _, sc := range r.Scopes {
			nin.intern(sc)
		}
	}
	for i := range s.audit {
		nin.intern(s.audit[i].ClientID)
	}
	nin.done()
	s.strs = nin
}

func (s *state) sortedRoles() []scopeengine.Role {
	out := make([]scopeengine.Role, 0, len(s.roles))
	for _, r := range s.roles {
		out = append(out, scopeengine.Role{RoleID: r.RoleID, Scopes: r.Scopes})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RoleID < out[j].RoleID })
	return out
}

func (s *state) auditAdd(kind, id, actor, action string, at time.Time) {
	s.audit = append(s.audit, AuditEntry{EntityType: kind, EntityID: id, ClientID: s.strs.intern(actor), ActionType: action, Created: at})
}

// apply executes one decoded command against the state. It is
// deterministic (no clock, no randomness) and never panics on bad input:
// the FSM recovers around it anyway, as a last line of defence.
func (s *state) apply(cmd *Command) (ApplyResult, []Change, error) {
	var res ApplyResult
	var changes []Change
	change := func(kind, id, op string) { changes = append(changes, Change{Kind: kind, ID: id, Op: op}) }
	if isLoginOp(cmd.Op) {
		// Not clients or roles: no audit, no change feed.
		res, err := s.applyLogin(cmd)
		return res, nil, err
	}
	if cmd.Op == OpResealTokens {
		// Same plaintext under another key: no audit, no change feed.
		n, err := s.applyReseal(cmd)
		res.Count = n
		return res, nil, err
	}
	if isOutboxOp(cmd.Op) {
		// Publishing bookkeeping, not a change: no audit, no change feed.
		return res, nil, s.applyOutbox(cmd, s.applying)
	}
	switch cmd.Op {
	case OpCreateClient:
		c := cmd.Client
		if c == nil || c.ClientID == "" {
			return res, nil, fmt.Errorf("%w: create-client needs a client", ErrBadCommand)
		}
		if old, ok := s.clients[c.ClientID]; ok {
			res.Client = old
			return res, nil, ErrConflict
		}
		nc := s.internClient(c)
		s.putClient(nc)
		res.Client = nc
		s.auditAdd("client", nc.ClientID, cmd.Actor, "created", cmd.Time)
		change("client", nc.ClientID, "created")
	case OpUpdateClient, OpResetAccessToken, OpSetClientDisabled:
		old, ok := s.clients[cmd.ID]
		if !ok {
			return res, nil, ErrNotFound
		}
		nc := *old
		nc.LastModified = cmd.Time
		var action, op string
		switch cmd.Op {
		case OpUpdateClient:
			if cmd.Client == nil {
				return res, nil, fmt.Errorf("%w: update-client needs a client", ErrBadCommand)
			}
			nc.Description = cmd.Client.Description
			nc.Scopes = s.strs.all(cmd.Client.Scopes)
			nc.Expires = cmd.Client.Expires
			nc.DeleteOnExpiration = cmd.Client.DeleteOnExpiration
			action, op = "updated", "updated"
		case OpResetAccessToken:
			if len(cmd.SealedToken) == 0 {
				return res, nil, fmt.Errorf("%w: reset-access-token needs a sealed token", ErrBadCommand)
			}
			nc.SealedToken = cmd.SealedToken
			nc.LastRotated = cmd.Time
			action, op = "access token reset", "token-reset"
		default:
			nc.Disabled = cmd.Disabled
			action, op = "client enabled", "enabled"
			if cmd.Disabled {
				action, op = "client disabled", "disabled"
			}
		}
		s.putClient(&nc)
		res.Client = &nc
		s.auditAdd("client", nc.ClientID, cmd.Actor, action, cmd.Time)
		change("client", nc.ClientID, op)
	case OpDeleteClient:
		if s.deleteClient(cmd.ID) {
			change("client", cmd.ID, "deleted")
		}
		s.auditAdd("client", cmd.ID, cmd.Actor, "deleted", cmd.Time)
	case OpCreateRole, OpUpdateRole:
		r := cmd.Role
		if r == nil || r.RoleID == "" {
			return res, nil, fmt.Errorf("%w: %s needs a role", ErrBadCommand, cmd.Op)
		}
		old, exists := s.roles[r.RoleID]
		if cmd.Op == OpCreateRole && exists {
			res.Role = old
			return res, nil, ErrConflict
		}
		if cmd.Op == OpUpdateRole && !exists {
			return res, nil, ErrNotFound
		}
		// Re-validated here, deterministically, even though the leader
		// validated before proposing: two concurrent valid writes can
		// together form a cycle, and the second must fail on every node.
		scopes := s.strs.all(r.Scopes)
		next, err := s.resolver.Put(scopeengine.Role{RoleID: r.RoleID, Scopes: scopes})
		if err != nil {
			return res, nil, fmt.Errorf("%w: %w", ErrInvalidRoles, err)
		}
		nr := *r
		nr.Scopes = scopes
		nr.LastModified = cmd.Time
		action := "updated"
		if cmd.Op == OpCreateRole {
			nr.Created, action = cmd.Time, "created"
		} else {
			nr.Created = old.Created
		}
		s.roles[nr.RoleID] = &nr
		s.resolver = next
		res.Role = &nr
		s.auditAdd("role", nr.RoleID, cmd.Actor, action, cmd.Time)
		change("role", nr.RoleID, action)
	case OpDeleteRole:
		if _, ok := s.roles[cmd.ID]; ok {
			delete(s.roles, cmd.ID)
			s.resolver = s.resolver.Delete(cmd.ID)
			change("role", cmd.ID, "deleted")
		}
		s.auditAdd("role", cmd.ID, cmd.Actor, "deleted", cmd.Time)
	case OpTouchClients:
		// lastDateUsed is bookkeeping, not a change a sidecar must see.
		for _, id := range sortedKeys(cmd.LastUsed) {
			if old, ok := s.clients[id]; ok && cmd.LastUsed[id].After(old.LastDateUsed) {
				nc := *old
				nc.LastDateUsed = cmd.LastUsed[id]
				s.putClient(&nc)
				res.Count++
			}
		}
	case OpDeleteExpiredClients:
		var gone []string
		for c := range s.ids.view().all() {
			if c.DeleteOnExpiration && c.Expires.Before(cmd.Time) {
				gone = append(gone, c.ClientID)
			}
		}
		for _, id := range gone {
			s.deleteClient(id)
			s.auditAdd("client", id, cmd.Actor, "expired", cmd.Time)
			change("client", id, "expired")
		}
		res.Count = len(gone)
	case OpPurgeAudit:
		kept := s.audit[:0:0]
		for _, e := range s.audit {
			if !e.Created.Before(cmd.Before) {
				kept = append(kept, e)
			}
		}
		res.Count = len(s.audit) - len(kept)
		s.audit = kept
	case OpSyncStaticClients:
		res.Count = s.syncStatic(cmd, change)
	case OpSetNodeMeta:
		if cmd.NodeID == "" {
			return res, nil, fmt.Errorf("%w: set-node-meta needs a node id", ErrBadCommand)
		}
		s.meta[cmd.NodeID] = cmd.Meta
	default:
		return res, nil, fmt.Errorf("%w: unknown op %q", ErrBadCommand, cmd.Op)
	}
	s.sweepInterned()
	return res, changes, nil
}

// syncStatic makes the stored static/ clients equal cmd.Static (docs/api.md §5):
// absent ones deleted, changed ones updated, missing ones created.
func (s *state) syncStatic(cmd *Command, change func(kind, id, op string)) int {
	want := map[string]StaticClient{}
	for _, sc := range cmd.Static {
		want[sc.ClientID] = sc
	}
	n := 0
	var gone []string
	for id := range s.ids.keys() {
		if _, keep := want[id]; strings.HasPrefix(id, "static/") && !keep {
			gone = append(gone, id)
		}
	}
	for _, id := range gone {
		s.deleteClient(id)
		change("client", id, "deleted")
		n++
	}
	for _, sc := range cmd.Static {
		old, ok := s.clients[sc.ClientID]
		if ok && slices.Equal(old.Scopes, sc.Scopes) && old.Description == sc.Description && string(old.SealedToken) == string(sc.SealedToken) {
			continue
		}
		nc := Client{
			ClientID: sc.ClientID, Description: sc.Description, Scopes: s.strs.all(sc.Scopes),
			Expires: cmd.Time.AddDate(1000, 0, 0), Created: cmd.Time, LastModified: cmd.Time,
			LastDateUsed: cmd.Time, LastRotated: cmd.Time, SealedToken: sc.SealedToken,
		}
		op := "created"
		if ok {
			nc.Created, nc.LastDateUsed, nc.Expires = old.Created, old.LastDateUsed, old.Expires
			if string(old.SealedToken) == string(sc.SealedToken) {
				nc.LastRotated = old.LastRotated
			}
			op = "updated"
		}
		s.putClient(&nc)
		change("client", nc.ClientID, op)
		n++
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// errIsReject reports whether err is an expected rejection of a command
// (as opposed to a malformed one).
func errIsReject(err error) bool {
	return errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidRoles)
}
