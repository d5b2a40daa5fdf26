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
// write stores a new record, so a snapshot is a shallow copy of the maps and
// readers can hand out records without copying under the lock.
type state struct {
	clients  map[string]*Client
	ids      []string // client ids, sorted, for prefix listing with offsets
	roles    map[string]*Role
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
}

func newState() *state {
	return &state{
		clients:  map[string]*Client{},
		roles:    map[string]*Role{},
		resolver: mustResolver(nil),
		meta:     map[string]map[string]string{},

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

func (s *state) putClient(c *Client) {
	if _, ok := s.clients[c.ClientID]; !ok {
		i, _ := slices.BinarySearch(s.ids, c.ClientID)
		s.ids = slices.Insert(s.ids, i, c.ClientID)
	}
	s.clients[c.ClientID] = c
}

func (s *state) deleteClient(id string) bool {
	if _, ok := s.clients[id]; !ok {
		return false
	}
	delete(s.clients, id)
	if i, found := slices.BinarySearch(s.ids, id); found {
		s.ids = slices.Delete(s.ids, i, i+1)
	}
	return true
}

func (s *state) listClients(prefix string, offset, limit int) ([]Client, bool) {
	start, _ := slices.BinarySearch(s.ids, prefix)
	end := start
	if prefix == "" {
		end = len(s.ids)
	} else {
		end = start + sort.Search(len(s.ids)-start, func(i int) bool { return !strings.HasPrefix(s.ids[start+i], prefix) })
	}
	if offset < 0 {
		offset = 0
	}
	from := start + offset
	if from > end {
		from = end
	}
	to := end
	if limit >= 0 && from+limit < end {
		to = from + limit
	}
	out := make([]Client, 0, to-from)
	for _, id := range s.ids[from:to] {
		out = append(out, *s.clients[id])
	}
	return out, to < end
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
	s.audit = append(s.audit, AuditEntry{EntityType: kind, EntityID: id, ClientID: actor, ActionType: action, Created: at})
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
		nc := *c
		nc.Scopes = slices.Clone(c.Scopes)
		s.putClient(&nc)
		res.Client = &nc
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
			nc.Scopes = slices.Clone(cmd.Client.Scopes)
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
		next, err := s.resolver.Put(scopeengine.Role{RoleID: r.RoleID, Scopes: r.Scopes})
		if err != nil {
			return res, nil, fmt.Errorf("%w: %w", ErrInvalidRoles, err)
		}
		nr := *r
		nr.Scopes = slices.Clone(r.Scopes)
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
				s.clients[id] = &nc
				res.Count++
			}
		}
	case OpDeleteExpiredClients:
		var gone []string
		for _, id := range s.ids {
			if c := s.clients[id]; c.DeleteOnExpiration && c.Expires.Before(cmd.Time) {
				gone = append(gone, id)
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
	for _, id := range s.ids {
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
			ClientID: sc.ClientID, Description: sc.Description, Scopes: slices.Clone(sc.Scopes),
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
