package controlplane

import (
	"context"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

// clientSource is the protocol.ClientSource of the API's own requests and
// of authenticateHawk: the decrypted token plus the resolver's expansion of
// the client's scopes. Expansions are cached per client keyed by the
// client's lastModified and the resolver's identity (a new *Resolver after
// every role change), so a request costs a map lookup, not an expansion.
type clientSource struct {
	store Store
	cache *lru.Cache[string, cachedExpansion]
	// used is told about every successful lookup (lastDateUsed batching).
	used func(rec ClientRecord, now time.Time)
	now  func() time.Time
}

type cachedExpansion struct {
	lastModified time.Time
	scopesKey    string // guards against an update that kept lastModified
	resolver     *scopeengine.Resolver
	expanded     scopeengine.ScopeSet
}

func newClientSource(store Store, size int, used func(ClientRecord, time.Time)) *clientSource {
	cache, err := lru.New[string, cachedExpansion](size)
	if err != nil {
		panic(err) // size > 0 is guaranteed by fillDefaults
	}
	return &clientSource{store: store, cache: cache, used: used, now: time.Now}
}

// expand returns expand(rec.Scopes) through the cache.
func (cs *clientSource) expand(rec ClientRecord) scopeengine.ScopeSet {
	res := cs.store.Resolver()
	key := scopesKey(rec.Scopes)
	if e, ok := cs.cache.Get(rec.ClientID); ok && e.resolver == res && e.lastModified.Equal(rec.LastModified) && e.scopesKey == key {
		return e.expanded
	}
	expanded := res.Expand(rec.Scopes)
	cs.cache.Add(rec.ClientID, cachedExpansion{rec.LastModified, key, res, expanded})
	return expanded
}

func scopesKey(scopes []string) string {
	n := 0
	for _, s := range scopes {
		n += len(s) + 1
	}
	b := make([]byte, 0, n)
	for _, s := range scopes {
		b = append(b, s...)
		b = append(b, '\n')
	}
	return string(b)
}

func (cs *clientSource) Client(ctx context.Context, clientID string) (*protocol.Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rec, ok := cs.store.Client(clientID)
	if !ok {
		return nil, protocol.ErrClientNotFound
	}
	token, ok, err := cs.store.AccessToken(clientID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, protocol.ErrClientNotFound
	}
	if cs.used != nil && !rec.Disabled {
		cs.used(rec, cs.now())
	}
	return &protocol.Client{
		ClientID:       clientID,
		AccessToken:    token,
		ExpandedScopes: cs.expand(rec), // shared and read-only: no copy per request
		Expires:        rec.Expires,
		Disabled:       rec.Disabled,
	}, nil
}

// lastUsedBatcher collects lastDateUsed bumps in memory; the leader commits
// them as one batched command per interval, followers forward them to the
// leader. At most one entry per client is kept.
type lastUsedBatcher struct {
	mu      sync.Mutex
	pending map[string]time.Time
}

func newLastUsedBatcher() *lastUsedBatcher {
	return &lastUsedBatcher{pending: map[string]time.Time{}}
}

func (b *lastUsedBatcher) add(id string, t time.Time) {
	b.mu.Lock()
	if old, ok := b.pending[id]; !ok || t.After(old) {
		b.pending[id] = t
	}
	b.mu.Unlock()
}

// take empties the batch.
func (b *lastUsedBatcher) take() map[string]time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pending) == 0 {
		return nil
	}
	out := b.pending
	b.pending = map[string]time.Time{}
	return out
}

// putBack re-queues a batch that could not be delivered (newer entries win).
func (b *lastUsedBatcher) putBack(m map[string]time.Time) {
	for id, t := range m {
		b.add(id, t)
	}
}

// noteUsed records a use of rec when its stored lastDateUsed is older than
// the resolution (6 h by default, as the reference).
func (s *Server) noteUsed(rec ClientRecord, _ time.Time) {
	now := s.cfg.Now()
	if now.Sub(rec.LastDateUsed) < s.cfg.LastUsedResolution {
		return
	}
	s.lastUsed.add(rec.ClientID, now)
}
