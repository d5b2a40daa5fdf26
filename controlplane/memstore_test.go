package controlplane

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tcauth/tcauth/scopeengine"
)

// memStore is a hand-written in-memory Store (a fake, and says so): it
// applies Commands with the semantics documented on the Op constants and
// passes the same contract test as the raftstore adapter. The handler
// tests run on a real raftstore; this fake serves only the tests that flip
// leadership by hand, inject apply failures or plant old audit rows, which
// a real Raft node cannot be made to do on demand.
type memStore struct {
	mu        sync.Mutex
	clients   map[string]ClientRecord
	tokens    map[string]string
	roles     map[string]RoleRecord
	resolver  *scopeengine.Resolver
	audit     []AuditRecord
	index     uint64
	changes   []Change
	notify    chan struct{}
	leader    bool
	leaderURL string
	published string
	applied   []Command
	applyErr  error // injected failure
}

func newMemStore() *memStore {
	return &memStore{clients: map[string]ClientRecord{}, tokens: map[string]string{}, roles: map[string]RoleRecord{},
		notify: make(chan struct{}), leader: true}
}

func (m *memStore) Client(id string) (ClientRecord, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.clients[id]
	c.Scopes = slices.Clone(c.Scopes)
	return c, ok
}

func (m *memStore) AccessToken(id string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tokens[id]
	return t, ok, nil
}

func (m *memStore) ListClients(prefix string, offset, limit int) ([]ClientRecord, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []string
	for id := range m.clients {
		if strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	var out []ClientRecord
	for i := offset; i < len(ids) && i < offset+limit; i++ {
		out = append(out, m.clients[ids[i]])
	}
	return out, offset+limit < len(ids)
}

func (m *memStore) Role(id string) (RoleRecord, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.roles[id]
	return r, ok
}

func (m *memStore) Roles() []RoleRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]RoleRecord, 0, len(m.roles))
	for _, r := range m.roles {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RoleID < out[j].RoleID })
	return out
}

func (m *memStore) Resolver() *scopeengine.Resolver {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.resolver
}

func (m *memStore) Audit(q AuditQuery, offset, limit int) ([]AuditRecord, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var rows []AuditRecord
	for _, a := range m.audit {
		if (q.Actor != "" && a.ClientID == q.Actor) || (q.Actor == "" && a.EntityType == q.EntityType && a.EntityID == q.EntityID) {
			rows = append(rows, a)
		}
	}
	if offset >= len(rows) {
		return nil, false
	}
	end := min(offset+limit, len(rows))
	return rows[offset:end], end < len(rows)
}

func (m *memStore) AppliedIndex() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.index
}

func (m *memStore) Changes(ctx context.Context, after uint64) ([]Change, uint64, error) {
	for {
		m.mu.Lock()
		var out []Change
		for _, c := range m.changes {
			if c.Index > after {
				out = append(out, c)
			}
		}
		idx, ch := m.index, m.notify
		m.mu.Unlock()
		if len(out) > 0 {
			return out, idx, nil
		}
		select {
		case <-ctx.Done():
			return nil, idx, ctx.Err()
		case <-ch:
		}
	}
}

func (m *memStore) LinearizableRead(context.Context) error {
	if !m.IsLeader() {
		return ErrNotLeader
	}
	return nil
}

func (m *memStore) IsLeader() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leader
}

func (m *memStore) RaftState() string {
	if m.IsLeader() {
		return "leader"
	}
	return "follower"
}

func (m *memStore) LeaderAPIAddress() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader {
		return m.published
	}
	return m.leaderURL
}

func (m *memStore) PublishAPIAddress(_ context.Context, url string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.published = url
	return nil
}

// put stores a client directly (test setup, like a static client).
func (m *memStore) put(rec ClientRecord, token string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clients[rec.ClientID] = rec
	m.tokens[rec.ClientID] = token
}

func (m *memStore) putRole(id string, scopes ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	res, err := m.resolver.Put(scopeengine.Role{RoleID: id, Scopes: scopes})
	if err != nil {
		panic(err)
	}
	m.resolver = res
	m.roles[id] = RoleRecord{RoleID: id, Scopes: scopes}
}

func (m *memStore) commands() []Command {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.applied)
}

func (m *memStore) Apply(_ context.Context, cmd Command) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.leader {
		return ErrNotLeader
	}
	if m.applyErr != nil {
		return m.applyErr
	}
	m.applied = append(m.applied, cmd)
	m.index++
	changed := func(kind, id string, deleted bool) {
		m.changes = append(m.changes, Change{Index: m.index, Kind: kind, ID: id, Deleted: deleted})
	}
	audit := func(typ, id, action string) {
		m.audit = append(m.audit, AuditRecord{EntityType: typ, EntityID: id, ClientID: cmd.Actor, ActionType: action, Created: cmd.Time})
	}
	defer func() {
		close(m.notify)
		m.notify = make(chan struct{})
	}()
	switch cmd.Op {
	case OpCreateClient:
		if _, ok := m.clients[cmd.Client.ClientID]; ok {
			return ErrConflict
		}
		m.clients[cmd.Client.ClientID] = cmd.Client
		m.tokens[cmd.Client.ClientID] = cmd.AccessToken
		audit("client", cmd.Client.ClientID, "created")
		changed("client", cmd.Client.ClientID, false)
	case OpUpdateClient:
		old, ok := m.clients[cmd.ID]
		if !ok {
			return ErrNotFound
		}
		c := cmd.Client
		c.Created, c.LastDateUsed, c.LastRotated, c.Disabled, c.LastModified = old.Created, old.LastDateUsed, old.LastRotated, old.Disabled, cmd.Time
		m.clients[cmd.ID] = c
		audit("client", cmd.ID, "updated")
		changed("client", cmd.ID, false)
	case OpResetAccessToken, OpSetClientDisabled:
		c, ok := m.clients[cmd.ID]
		if !ok {
			return ErrNotFound
		}
		action := "access token reset"
		if cmd.Op == OpResetAccessToken {
			c.LastRotated = cmd.Time
			m.tokens[cmd.ID] = cmd.AccessToken
		} else {
			c.Disabled = cmd.Disabled
			action = map[bool]string{true: "client disabled", false: "client enabled"}[cmd.Disabled]
		}
		c.LastModified = cmd.Time
		m.clients[cmd.ID] = c
		audit("client", cmd.ID, action)
		changed("client", cmd.ID, false)
	case OpDeleteClient:
		delete(m.clients, cmd.ID)
		delete(m.tokens, cmd.ID)
		audit("client", cmd.ID, "deleted")
		changed("client", cmd.ID, true)
	case OpCreateRole, OpUpdateRole:
		old, exists := m.roles[cmd.Role.RoleID]
		if cmd.Op == OpCreateRole && exists {
			return ErrConflict
		}
		if cmd.Op == OpUpdateRole && !exists {
			return ErrNotFound
		}
		res, err := m.resolver.Put(scopeengine.Role{RoleID: cmd.Role.RoleID, Scopes: cmd.Role.Scopes})
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidRoles, err)
		}
		m.resolver = res
		r := cmd.Role
		if exists {
			r.Created = old.Created
		}
		m.roles[r.RoleID] = r
		audit("role", r.RoleID, map[bool]string{true: "created", false: "updated"}[cmd.Op == OpCreateRole])
		changed("role", r.RoleID, false)
	case OpDeleteRole:
		m.resolver = m.resolver.Delete(cmd.ID)
		delete(m.roles, cmd.ID)
		audit("role", cmd.ID, "deleted")
		changed("role", cmd.ID, true)
	case OpTouchClients:
		for id, t := range cmd.LastUsed {
			if c, ok := m.clients[id]; ok && t.After(c.LastDateUsed) {
				c.LastDateUsed = t
				m.clients[id] = c
			}
		}
	case OpDeleteExpiredClients:
		for id, c := range m.clients {
			if c.DeleteOnExpiration && c.Expires.Before(cmd.Time) {
				delete(m.clients, id)
				delete(m.tokens, id)
				audit("client", id, "expired")
				changed("client", id, true)
			}
		}
	case OpPurgeAudit:
		kept := m.audit[:0]
		for _, a := range m.audit {
			if !a.Created.Before(cmd.Before) {
				kept = append(kept, a)
			}
		}
		m.audit = kept
	case OpSyncStaticClients:
		want := map[string]StaticClient{}
		for _, sc := range cmd.Static {
			want[sc.ClientID] = sc
		}
		for id := range m.clients {
			if _, ok := want[id]; strings.HasPrefix(id, "static/") && !ok {
				delete(m.clients, id)
				delete(m.tokens, id)
				changed("client", id, true)
			}
		}
		for id, sc := range want {
			c, ok := m.clients[id]
			if !ok {
				c = ClientRecord{ClientID: id, Created: cmd.Time, LastDateUsed: cmd.Time, LastRotated: cmd.Time,
					Expires: cmd.Time.AddDate(1000, 0, 0)}
			}
			c.Description, c.Scopes, c.LastModified = sc.Description, slices.Clone(sc.Scopes), cmd.Time
			m.clients[id] = c
			m.tokens[id] = sc.AccessToken
			changed("client", id, false)
		}
	default:
		return fmt.Errorf("memStore: unknown op %q", cmd.Op)
	}
	return nil
}

var _ Store = (*memStore)(nil)

// setLeader flips leadership (multi-node tests).
func (m *memStore) setLeader(leader bool, leaderURL string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.leader, m.leaderURL = leader, leaderURL
}

var _ = time.Now
