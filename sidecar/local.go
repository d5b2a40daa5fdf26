package sidecar

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

// ErrNotReady is returned while the sidecar has not loaded the role set:
// without roles it cannot expand scopes, so it answers 503 (fail closed).
var ErrNotReady = errors.New("sidecar: not synchronised with the control plane yet")

// ErrTooStale is returned for a cached client when the sidecar has lost
// the change feed for longer than Config.MaxStale and the control plane
// cannot be reached to refresh the client.
var ErrTooStale = errors.New("sidecar: cached credentials are older than max-stale and the control plane is unreachable")

// errControlPlaneDown makes requests fail fast for a moment after a failed
// fetch instead of each waiting for its own timeout.
var errControlPlaneDown = errors.New("sidecar: control plane unreachable (recent fetch failed)")

// errOutdatedAnswer: the control plane node that answered had not yet
// applied a change the sidecar already saw on the feed (a lagging
// follower behind a load balancer). Serving it could resurrect revoked
// credentials, so the request gets 503 and the client retries.
var errOutdatedAnswer = errors.New("sidecar: the control plane answered from a state older than a change already seen")

// roleSnapshot is the local role set. gen changes whenever the roles do,
// so expansions computed under an older set are recognised as outdated.
type roleSnapshot struct {
	gen       uint64
	resolver  *scopeengine.Resolver
	anonymous []string // Expand([assume:anonymous]), the no-auth scopes
}

// clientEntry is one cached client (or, only as a fetch result, a 404:
// those are remembered in the separate negatives LRU). It holds the
// access token in memory only: it is never logged, formatted or written.
//
// It is kept small, since a sidecar may cache 100,000 of them: no copy of
// anything derivable (client.ClientID is the cache key's own string), the
// scope lists shared with every client that has equal ones (scopeSets),
// the fetch time as unix nanos.
type clientEntry struct {
	notFound bool
	fetched  int64  // unix nanos
	epoch    uint64 // unique per fetch: keys the expanded-scope cache
	index    uint64 // control plane's applied index of the answer
	client   protocol.Client
	// scopes are the client's own scopes (nil from a control plane that
	// does not send them); gen is the role generation client.ExpandedScopes
	// belongs to. After a role change the entry is re-expanded locally on
	// its next use, so a role edit neither refetches every client nor
	// leaves them unusable while the control plane is unreachable.
	scopes []string
	gen    uint64
	// withAnon is expand(expandedScopes ∪ {assume:anonymous}) under role
	// generation gen, what every request of the client needs; nil when
	// that is expandedScopes itself (anonymous adds nothing). Set once,
	// before the entry is shared (withAnonymous), and shared itself.
	withAnon []string
}

// expandKey keys the expanded-scope cache: the issuing client's fetch
// epoch (a refetched or evicted client gets a new epoch, so its old
// entries can never be hit again), the role generation, the credentials'
// Hawk id and ext (certificate and authorizedScopes), and the input size.
// The entry also stores the input itself, compared on every hit, so the
// cache can never answer for different scopes.
type expandKey struct {
	epoch, gen uint64
	id, ext    string
	n          int
}

type expandValue struct {
	in, out []string
}

// localVerifier verifies requests itself with clients fetched from the
// control plane and roles followed through the change feed.
type localVerifier struct {
	cfg   *Config
	cp    *controlPlane
	m     *metrics
	now   func() time.Time
	roles atomic.Pointer[roleSnapshot]

	clients *shardedLRU[string, *clientEntry]
	// negatives remembers unknown clientIds (fetch time, unix nanos) apart
	// from clients, so that random ids cannot push real clients out.
	negatives *shardedLRU[string, int64]
	limits    *sourceLimiter
	certs     *protocol.CertificateCache // verified certificates (two HMACs saved per request)
	sets      *scopeSets                 // scope lists shared between cached clients
	expanded  *shardedLRU[expandKey, []expandValue]
	flights   flightGroup[*clientEntry]
	epochs    atomic.Uint64

	// Eviction bookkeeping: a fetch that started before an eviction of the
	// same client (or a purge) must not re-insert what it read, and an
	// answer read at an index older than a change already applied here is
	// refused outright.
	evictSeq   atomic.Uint64
	purgeSeq   atomic.Uint64
	minIndex   atomic.Uint64 // answers below this index are outdated for every client
	tombMu     sync.Mutex
	tombstones map[string]tombstone
	tombPeak   int // the most tombstones held since the map was last made

	// Feed health, for staleness: the last time the sidecar knew it had
	// every change (unix nanos), and whether the feed is failing now.
	lastSync    atomic.Int64
	feedFailing atomic.Bool
	pollStarted atomic.Int64
	feedIndex   atomic.Uint64

	cpDownUntil atomic.Int64
	// credsLogged rate-limits the loud log line for rejected sidecar
	// credentials (unix nanos of the last one).
	credsLogged atomic.Int64
}

type tombstone struct {
	seq   uint64
	index uint64
	at    time.Time
}

func newLocalVerifier(cfg *Config, cp *controlPlane, m *metrics) *localVerifier {
	return &localVerifier{
		cfg:        cfg,
		cp:         cp,
		m:          m,
		now:        cfg.now,
		clients:    newShardedLRU[string, *clientEntry](cfg.ClientCacheSize, cfg.CacheShards),
		negatives:  newShardedLRU[string, int64](cfg.NegativeCacheSize, cfg.CacheShards),
		limits:     newSourceLimiter(cfg.UnknownClientRate, cfg.UnknownClientBurst, cfg.MaxUnknownFetches),
		expanded:   newShardedLRU[expandKey, []expandValue](cfg.ExpandedCacheSize, cfg.CacheShards),
		tombstones: map[string]tombstone{},
		certs:      protocol.NewCertificateCache(protocol.DefaultCertificateCacheSize),
		sets:       newScopeSets(),
	}
}

// setRoles publishes a new role set and makes every expansion made under
// the old one unreachable.
func (v *localVerifier) setRoles(r *scopeengine.Resolver) {
	old := v.roles.Load()
	gen := uint64(1)
	if old != nil {
		gen = old.gen + 1
	}
	v.roles.Store(&roleSnapshot{gen: gen, resolver: r, anonymous: r.Expand([]string{"assume:anonymous"})})
	// Entries under the old generation can no longer be hit; drop them
	// now rather than waiting for the LRU to push them out.
	v.expanded.Purge()
	v.m.roleGeneration.Set(float64(gen))
}

// staleness is how long the sidecar may have been missing changes: 0 while
// the feed is healthy, else the time since it last knew it was current.
func (v *localVerifier) staleness(now time.Time) time.Duration {
	last := v.lastSync.Load()
	if last == 0 {
		return time.Duration(1<<62 - 1)
	}
	failing := v.feedFailing.Load()
	if ps := v.pollStarted.Load(); ps != 0 && now.Sub(time.Unix(0, ps)) > v.cfg.FeedWait+feedGrace {
		// A long poll that hangs past its wait is as good as failed, and
		// nothing is known since it started.
		failing, last = true, ps
	}
	if !failing {
		return 0
	}
	return now.Sub(time.Unix(0, last))
}

// feedGrace is how much longer than its wait a long poll may take before
// the feed is treated as lost.
const feedGrace = 3 * time.Second

// ready reports whether local verification can work: roles loaded and
// the data no staler than MaxStale.
func (v *localVerifier) ready() (bool, string) {
	if v.roles.Load() == nil {
		return false, "roles not loaded yet"
	}
	if st := v.staleness(v.now()); st > v.cfg.MaxStale {
		return false, fmt.Sprintf("change feed lost for %s (max-stale %s)", st.Round(time.Second), v.cfg.MaxStale)
	}
	return true, ""
}

// lookup returns the client to verify with, and how stale it may be.
// source names the caller (sourceKey), whose budget pays for fetches of
// ids the sidecar does not know.
func (v *localVerifier) lookup(ctx context.Context, id string, source func() string) (*clientEntry, time.Duration, error) {
	if !protocol.ValidClientID(id) {
		// The control plane would refuse it (400); nobody can hold it.
		v.m.malformedID.Inc()
		return nil, 0, protocol.ErrClientNotFound
	}
	now := v.now()
	stale := v.staleness(now)
	e, present := v.clients.Get(id)
	ok := present
	if present {
		e, ok = v.current(id, e)
	}
	if ok && now.Sub(time.Unix(0, e.fetched)) < v.cfg.ClientTTL {
		if stale == 0 {
			v.m.clientHit.Inc()
			return e, 0, nil
		}
		if stale <= v.cfg.MaxStale {
			v.m.clientStale.Inc()
			return e, stale, nil
		}
	}
	// A client in the cache (even too old to use) is not "unknown": its
	// refetch is not charged to the caller's budget.
	known := present
	if !known {
		if at, neg := v.negatives.Get(id); neg && now.Sub(time.Unix(0, at)) < v.cfg.NegativeTTL {
			v.m.negativeHit.Inc()
			return nil, 0, protocol.ErrClientNotFound
		}
	}
	v.m.clientMiss.Inc()
	fetched, err := v.fetch(ctx, id, source, known)
	switch {
	case err == nil:
		return fetched, 0, nil
	case errors.Is(err, protocol.ErrClientNotFound), errors.Is(err, errOutdatedAnswer), errors.Is(err, ErrUnknownClientBudget):
		return nil, 0, err
	}
	// The control plane did not answer usefully. A cached client is still
	// good while the feed is healthy (nothing changed), or within max-stale.
	if ok {
		if stale == 0 {
			return e, 0, nil
		}
		if stale <= v.cfg.MaxStale {
			return e, stale, nil
		}
		return nil, stale, fmt.Errorf("%w (%v)", ErrTooStale, err)
	}
	return nil, 0, err
}

// current returns e with its expansion under the current role set:
// e itself, or a re-expanded copy that replaces it in the cache. ok is
// false when e cannot be re-expanded (no own scopes): treat as a miss.
func (v *localVerifier) current(id string, e *clientEntry) (*clientEntry, bool) {
	snap := v.roles.Load()
	if snap == nil || e.gen == snap.gen {
		return e, true
	}
	if e.scopes == nil {
		return nil, false
	}
	ne := &clientEntry{fetched: e.fetched, epoch: v.epochs.Add(1), index: e.index, client: e.client,
		scopes: e.scopes, gen: snap.gen}
	ne.client.ExpandedScopes = v.sets.intern(scopeengine.NewScopeSet(snap.resolver.Expand(e.scopes)))
	v.withAnonymous(ne, snap)
	v.m.reexpanded.Inc()
	// Only over the very entry read: an eviction or refetch meanwhile wins.
	v.clients.Swap(id, ne, func(cur *clientEntry, ok bool) bool { return ok && cur == e })
	return ne, true
}

// fetch loads a client from the control plane, once for all concurrent
// requests, and caches it (404s in negatives for NegativeTTL). A fetch of
// an id not cached (known false) is paid for by source's budget and takes
// one of the global in-flight slots; joining a fetch in flight is free.
func (v *localVerifier) fetch(ctx context.Context, id string, source func() string, known bool) (*clientEntry, error) {
	if until := v.cpDownUntil.Load(); until != 0 && v.now().UnixNano() < until {
		return nil, errControlPlaneDown
	}
	gate := func() error {
		if known {
			return nil
		}
		return v.limits.admit(source(), v.now())
	}
	e, err, shared := v.flights.DoGated(ctx, id, gate, func() (*clientEntry, error) {
		if !known {
			if err := v.limits.acquire(v.cfg.FetchTimeout); err != nil {
				return nil, err
			}
			defer v.limits.release()
		}
		return v.fetchAndCache(id)
	})
	if shared {
		v.m.singleflight.Inc()
	}
	if err != nil && ctx.Err() == nil {
		v.noteFetchError(err)
	}
	return e, err
}

// fetchAndCache runs fetchOnce and caches its answer unless it raced with
// an eviction or is older than a change already seen.
func (v *localVerifier) fetchAndCache(id string) (*clientEntry, error) {
	// Two attempts: if the client was evicted by the feed while the first
	// was in flight, its answer may predate the change.
	for attempt := 0; ; attempt++ {
		start := v.evictSeq.Load()
		e, err := v.fetchOnce(id)
		if err != nil {
			return nil, err
		}
		outdated, raced := v.checkAnswer(id, e.index, start)
		keep := func() bool { _, r := v.checkAnswer(id, e.index, start); return !r }
		if !outdated && !raced {
			if e.notFound && v.negatives.AddIf(e.client.ClientID, e.fetched, keep) {
				return nil, protocol.ErrClientNotFound
			}
			if !e.notFound && v.clients.AddIf(e.client.ClientID, e, keep) {
				return e, nil
			}
		}
		if attempt == 1 {
			if outdated {
				return nil, errOutdatedAnswer
			}
			// Raced with an eviction twice but not provably old: answer
			// this request, cache nothing.
			if e.notFound {
				return nil, protocol.ErrClientNotFound
			}
			return e, nil
		}
	}
}

// noteFetchError decides what a failed fetch means beyond its request.
// Only an unreachable control plane pauses fetching for everybody; an
// answer about one id (400/404 are not errors here), a catching-up node,
// a 429 or a refused sidecar credential concern only this request.
func (v *localVerifier) noteFetchError(err error) {
	switch {
	case errors.Is(err, protocol.ErrClientNotFound), errors.Is(err, errOutdatedAnswer):
		return
	case errors.Is(err, ErrUnknownClientBudget):
		v.m.overBudget.Inc()
		return
	case errors.Is(err, errUnknownFetchesBusy):
		v.m.fetchesBusy.Inc()
		return
	case errors.Is(err, errCPUnreachable):
		v.cpDownUntil.Store(v.now().Add(time.Second).UnixNano())
	case errors.Is(err, ErrSidecarCredentialsRejected):
		// Every uncached caller gets 503 until an operator fixes this:
		// say so loudly, but at most every 10 s.
		now := v.now().UnixNano()
		if last := v.credsLogged.Load(); now-last >= int64(10*time.Second) && v.credsLogged.CompareAndSwap(last, now) {
			v.cfg.Logger.Error("the control plane rejects the sidecar's own credentials: uncached callers get 503",
				"clientId", v.cfg.Credentials.ClientID, "err", err.Error())
		}
	}
	v.m.cpErrors.WithLabelValues("credentials").Inc()
}

func (v *localVerifier) fetchOnce(id string) (*clientEntry, error) {
	ctx, cancel := context.WithTimeout(context.Background(), v.cfg.FetchTimeout)
	defer cancel()
	start := time.Now()
	// The generation before the fetch: a role change during it bumps the
	// purge sequence, so the answer is not cached under a newer one.
	var gen uint64
	snap := v.roles.Load()
	if snap != nil {
		gen = snap.gen
	}
	resp, err := v.cp.client(ctx, id)
	v.m.cpLatency.WithLabelValues("credentials").Observe(time.Since(start).Seconds())
	// The id came out of a request's Authorization header: cached as it
	// is, the key would keep that whole header alive. One copy, shared by
	// the key and the entry.
	e := &clientEntry{fetched: v.now().UnixNano(), epoch: v.epochs.Add(1), gen: gen, client: protocol.Client{ClientID: strings.Clone(id)}}
	if errors.Is(err, errCPCatchingUp) {
		// A catching-up node behind a load balancer: the next connection
		// probably reaches another node. One immediate retry, then 503.
		resp, err = v.cp.client(ctx, id)
	}
	if errors.Is(err, protocol.ErrClientNotFound) {
		e.notFound = true
		return e, nil
	}
	if err != nil {
		return nil, err
	}
	if err := v.fill(e, resp); err != nil {
		return nil, err
	}
	v.withAnonymous(e, snap)
	return e, nil
}

// withAnonymous sets e.withAnon for e's expanded scopes under snap (the
// snapshot of e.gen; nil before roles are loaded: then requests take the
// general path, since no snapshot has generation 0).
func (v *localVerifier) withAnonymous(e *clientEntry, snap *roleSnapshot) {
	if snap == nil || scopeengine.ScopeSet(e.client.ExpandedScopes).SatisfiesAll(snap.anonymous) {
		return
	}
	// Interned like the lists themselves: clients with equal sets share
	// the merged one too.
	e.withAnon = v.sets.intern(scopeengine.Merge(e.client.ExpandedScopes, snap.anonymous))
}

// fill sets e from a credentials answer. Both lists are normalised once
// here (ScopeSet.Satisfies needs sorted input) and shared through v.sets;
// a client without role scopes has expandedScopes equal to its scopes, and
// then the entry holds one list.
func (v *localVerifier) fill(e *clientEntry, resp *credentialsResponse) error {
	e.index = resp.Index
	e.client.AccessToken, e.client.Disabled = resp.AccessToken, resp.Disabled
	e.client.ExpandedScopes = v.sets.intern(scopeengine.NewScopeSet(resp.ExpandedScopes))
	if resp.Scopes != nil {
		e.scopes = v.sets.intern(scopeengine.NewScopeSet(resp.Scopes))
	}
	if resp.Expires != "" {
		t, err := time.Parse(time.RFC3339Nano, resp.Expires)
		if err != nil {
			return fmt.Errorf("%w: bad expires %q in client credentials: %w", errCPBadAnswer, resp.Expires, err)
		}
		e.client.Expires = t
	}
	return nil
}

// checkAnswer reports whether an answer read at index is provably older
// than a change applied here (outdated), and whether an eviction of id or
// a purge happened after the eviction sequence number start (raced).
func (v *localVerifier) checkAnswer(id string, index, start uint64) (outdated, raced bool) {
	if index != 0 && index < v.minIndex.Load() {
		outdated = true
	}
	if v.purgeSeq.Load() > start {
		raced = true
	}
	v.tombMu.Lock()
	t, ok := v.tombstones[id]
	v.tombMu.Unlock()
	if ok {
		if index != 0 && index < t.index {
			outdated = true
		}
		if t.seq > start {
			raced = true
		}
	}
	return outdated, raced
}

// evictClient drops a client after a feed event at index.
func (v *localVerifier) evictClient(id string, index uint64) {
	seq := v.evictSeq.Add(1)
	v.tombMu.Lock()
	v.tombstones[id] = tombstone{seq: seq, index: index, at: v.now()}
	v.tombPeak = max(v.tombPeak, len(v.tombstones))
	v.tombMu.Unlock()
	v.clients.Remove(id)
	v.negatives.Remove(id) // e.g. created after being looked up
	// The client's expanded-scope entries carry its fetch epoch in their
	// key; with the client gone they can never be hit again and age out.
}

// rolesChanged makes answers read before index outdated and stops fetches
// in flight from caching what they read, but keeps the cached clients:
// current re-expands each on its next use.
func (v *localVerifier) rolesChanged(index uint64) {
	for {
		cur := v.minIndex.Load()
		if index <= cur || v.minIndex.CompareAndSwap(cur, index) {
			break
		}
	}
	v.purgeSeq.Store(v.evictSeq.Add(1))
	v.expanded.Purge()
}

// purgeAll drops every cached client and expansion; answers read before
// index are refused from now on.
func (v *localVerifier) purgeAll(index uint64) {
	for {
		cur := v.minIndex.Load()
		if index <= cur || v.minIndex.CompareAndSwap(cur, index) {
			break
		}
	}
	v.purgeSeq.Store(v.evictSeq.Add(1))
	v.clients.Purge()
	v.negatives.Purge()
	v.expanded.Purge()
}

// pruneTombstones forgets evictions no fetch in flight can predate. A Go
// map never gives back the room it grew to, so once a burst of changes
// (100,000 clients created: 11 MB of tombstones, measured with the memory
// benchmark's heap profile) has aged out to a quarter of its peak, the few
// left move to a new map and the old one is freed.
func (v *localVerifier) pruneTombstones() {
	limit := v.now().Add(-2*v.cfg.FetchTimeout - time.Second)
	v.tombMu.Lock()
	defer v.tombMu.Unlock()
	for id, t := range v.tombstones {
		if t.at.Before(limit) {
			delete(v.tombstones, id)
		}
	}
	if n := len(v.tombstones); v.tombPeak >= minTombstonesToShrink && n <= v.tombPeak/4 {
		// Copied entry by entry: maps.Clone may keep the old table's size.
		kept := make(map[string]tombstone, n)
		maps.Copy(kept, v.tombstones)
		v.tombstones, v.tombPeak = kept, n
	}
}

// minTombstonesToShrink: below it the map is small enough to keep.
const minTombstonesToShrink = 1024

// verify runs the protocol pipeline for one request. h is the parsed
// Hawk header or bewit (id and ext), used only as the cache key.
func (v *localVerifier) verify(ctx context.Context, req protocol.Request, id, ext string, source func() string) verifyResult {
	snap := v.roles.Load()
	if snap == nil {
		return verifyResult{Result: protocol.Result{Status: protocol.StatusFailed, Err: ErrNotReady, Message: ErrNotReady.Error()}}
	}
	rv := &requestVerifier{v: v, snap: snap, id: id, ext: ext, source: source}
	a := protocol.Authenticator{Clients: rv, Scopes: rv, Now: v.now, Skew: v.cfg.Skew, Certificates: v.certs}
	res := a.Authenticate(ctx, req)
	return verifyResult{Result: res, Stale: rv.stale}
}

// requestVerifier is the ClientSource and ScopeOps of one request: it
// knows the request's credentials, so expansions can be cached per
// (client, certificate, authorizedScopes).
type requestVerifier struct {
	v       *localVerifier
	snap    *roleSnapshot
	id, ext string
	source  func() string // sourceKey of the caller, worked out only for a fetch
	entry   *clientEntry
	stale   time.Duration
}

func (r *requestVerifier) Client(ctx context.Context, id string) (*protocol.Client, error) {
	e, stale, err := r.v.lookup(ctx, id, r.source)
	if err != nil {
		return nil, err
	}
	r.entry, r.stale = e, stale
	return &e.client, nil
}

func (r *requestVerifier) Satisfies(have []string, need string) bool {
	// Every set the Authenticator passes is an Expand result or a
	// client's normalised expandedScopes.
	return scopeengine.ScopeSet(have).Satisfies(need)
}

func (r *requestVerifier) Expand(scopes []string) []string {
	if r.entry == nil {
		if len(scopes) == 1 && scopes[0] == "assume:anonymous" {
			return r.snap.anonymous
		}
		return r.snap.resolver.Expand(scopes)
	}
	key := expandKey{epoch: r.entry.epoch, gen: r.snap.gen, id: r.id, ext: r.ext, n: len(scopes)}
	vals, ok := r.v.expanded.Get(key)
	if ok {
		for _, val := range vals {
			if slices.Equal(val.in, scopes) {
				r.v.m.expandedHit.Inc()
				return val.out
			}
		}
	}
	r.v.m.expandedMiss.Inc()
	out := r.snap.resolver.Expand(scopes)
	in := append([]string(nil), scopes...)
	// id and ext are parts of the Authorization header: copies, so the key
	// does not keep the whole header alive.
	key.id, key.ext = strings.Clone(key.id), strings.Clone(key.ext)
	// At most two inputs share a key (the authorizedScopes check and the
	// final result); more would only come from a collision of sizes.
	if len(vals) >= 2 {
		vals = vals[1:]
	}
	r.v.expanded.Add(key, append(append([]expandValue(nil), vals...), expandValue{in: in, out: out}))
	return out
}

// ExpandWith is protocol.ClosedExpander, the Authenticator's
// expand(client's expandedScopes ∪ {assume:anonymous}) on every request.
// Without it that went through Expand: a copy of the client's whole set
// per request, then a comparison of every scope with the cached input —
// for a client holding a broad assume:…* (thousands of scopes) most of the
// request's cost. The resolver's ExpandWith adds only extra's expansion to
// the closed set and returns the set itself (shared, no allocation) when
// that adds nothing.
func (r *requestVerifier) ExpandWith(closed, extra []string) []string {
	e := r.entry
	if e == nil || e.gen != r.snap.gen || !sameSlice(closed, e.client.ExpandedScopes) {
		// Not provably closed under this role set (a re-expansion raced
		// this request): the full expansion is always right.
		return r.Expand(append(append(make([]string, 0, len(closed)+len(extra)), closed...), extra...))
	}
	if len(extra) != 1 || extra[0] != "assume:anonymous" {
		return r.snap.resolver.ExpandWith(closed, extra)
	}
	// The Authenticator's case, on every request: worked out when the
	// entry was made (withAnonymous), under this very role set.
	if e.withAnon != nil {
		return e.withAnon
	}
	return closed
}

// sameSlice reports whether a and b are the same slice (array and length).
func sameSlice(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// verifyResult is a verification outcome plus how stale the data was.
type verifyResult struct {
	protocol.Result
	Stale time.Duration
}

// staleSeconds renders a staleness for the X-Taskcluster-Auth-Stale header.
func staleSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 1, 64)
}
