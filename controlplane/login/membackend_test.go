package login

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tcauth/tcauth/scopeengine"
)

// memBackend is an in-memory test double of Backend with the semantics
// the interface documents (put/take/delete/purge, clients with tokens, an
// audit list of disables). It is not a replicated store: tests that need
// one use the control plane's backend.
type memBackend struct {
	mu       sync.Mutex
	records  map[string]Record // kind + "\x00" + key
	clients  map[string]Client
	tokens   map[string]string
	disabled []memAudit // every DisableClient, in order
	resolver *scopeengine.Resolver
	follower bool
	syncErr  error // Sync fails with it when set
	applyErr error // Apply fails with it when set
	puts     int   // successful OpPut writes
}

type memAudit struct{ ClientID, Actor string }

func newMemBackend() *memBackend {
	return &memBackend{records: map[string]Record{}, clients: map[string]Client{}, tokens: map[string]string{}}
}

func recKey(kind, key string) string { return kind + "\x00" + key }

func (m *memBackend) Apply(ctx context.Context, cmd Command) (Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.applyErr != nil {
		return Result{}, m.applyErr
	}
	switch cmd.Op {
	case OpPut:
		return m.put(cmd)
	case OpTake:
		k := recKey(cmd.Kind, cmd.Key)
		r, ok := m.records[k]
		if !ok || !r.Expires.After(cmd.Time) {
			return Result{}, ErrNotFound
		}
		delete(m.records, k)
		return Result{Record: r}, nil
	case OpDelete:
		n := 0
		for k, r := range m.records {
			if r.Kind != cmd.Kind {
				continue
			}
			if len(cmd.Keys) == 0 && r.Identity == cmd.Identity || containsString(cmd.Keys, r.Key) {
				delete(m.records, k)
				n++
			}
		}
		return Result{Count: n}, nil
	case OpPurge:
		n := 0
		for k, r := range m.records {
			if r.Expires.Before(cmd.Time) {
				delete(m.records, k)
				n++
			}
		}
		return Result{Count: n}, nil
	}
	return Result{}, ErrNotFound
}

func (m *memBackend) put(cmd Command) (Result, error) {
	r := cmd.Record
	k := recKey(r.Kind, r.Key)
	if old, ok := m.records[k]; ok && cmd.Create {
		return Result{Record: old}, ErrConflict
	}
	r.Data = append([]byte(nil), r.Data...)
	m.records[k] = r
	m.puts++
	if cmd.MaxPerIdentity > 0 && r.Identity != "" {
		var same []Record
		for _, o := range m.records {
			if o.Kind == r.Kind && o.Identity == r.Identity {
				same = append(same, o)
			}
		}
		sort.Slice(same, func(i, j int) bool { return same[i].Created.Before(same[j].Created) })
		for len(same) > cmd.MaxPerIdentity {
			delete(m.records, recKey(same[0].Kind, same[0].Key))
			same = same[1:]
		}
	}
	return Result{Record: r}, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (m *memBackend) Record(kind, key string) (Record, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[recKey(kind, key)]
	r.Data = append([]byte(nil), r.Data...)
	return r, ok, nil
}

func (m *memBackend) Sync(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.syncErr
}

func (m *memBackend) CreateClient(ctx context.Context, spec ClientSpec) (Client, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.clients[spec.ClientID]; ok {
		return c, "", ErrConflict
	}
	c := Client{ClientID: spec.ClientID, Description: spec.Description, Scopes: append([]string(nil), spec.Scopes...),
		Expires: spec.Expires, Created: time.Now(), DeleteOnExpiration: spec.DeleteOnExpiration}
	m.clients[c.ClientID] = c
	tok := randomToken(32)
	m.tokens[c.ClientID] = tok
	return c, tok, nil
}

func (m *memBackend) DisableClient(ctx context.Context, clientID, actor string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.clients[clientID]
	if !ok {
		return ErrNotFound
	}
	c.Disabled = true
	m.clients[clientID] = c
	m.disabled = append(m.disabled, memAudit{clientID, actor})
	return nil
}

func (m *memBackend) Client(clientID string) (Client, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.clients[clientID]
	return c, ok
}

func (m *memBackend) ListClients(prefix string) []Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Client
	for id, c := range m.clients {
		if strings.HasPrefix(id, prefix) {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ClientID < out[j].ClientID })
	return out
}

func (m *memBackend) AccessToken(clientID string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tokens[clientID]
	return t, ok, nil
}

func (m *memBackend) Resolver() *scopeengine.Resolver {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.resolver
}

func (m *memBackend) IsLeader() bool { return !m.follower }

// addClient stores a client directly (test set-up).
func (m *memBackend) addClient(c Client) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clients[c.ClientID] = c
	m.tokens[c.ClientID] = randomToken(32)
}

// count is how many records of kind are stored.
func (m *memBackend) count(kind string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, r := range m.records {
		if r.Kind == kind {
			n++
		}
	}
	return n
}
