package login

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/tcauth/tcauth/protocol"
)

// The login service answers callers that have not proven anything yet:
// anyone can start a sign-in, present a junk code at the callback or a
// junk token at oidc-credentials, and every such request can make tcauth
// call the provider (token exchange, introspection, userinfo, the JWKS)
// or write to the replicated state. The rule is that one caller's bad
// input must never cost another caller anything, so everything such a
// caller can make tcauth do is bounded here: a token bucket per source
// for the requests that cost a provider call or a replicated write, a
// global ceiling on provider calls in flight (a botnet must not use up
// the provider's own rate limit for everybody), a short negative cache of
// refused bearer tokens (the same junk token costs one provider call),
// and cheap bounds on query strings, cookies and bodies checked before
// any handler runs. Every cache here has a fixed size: a cache an
// unauthenticated caller can fill is itself an attack surface.

// Defaults of the Config fields of the same names.
const (
	DefaultSourceRate        = 1.0 // requests per second
	DefaultSourceBurst       = 30
	DefaultSourceTableSize   = 10_000
	DefaultMaxProviderCalls  = 32
	DefaultProviderCallWait  = 2 * time.Second
	DefaultRefusedTokenTTL   = time.Minute
	DefaultRefusedTokenCache = 10_000
	DefaultJWKSMinRefresh    = 30 * time.Second
)

// Bounds of a request to a login endpoint, checked before routing.
const (
	// maxQueryBytes: the longest legitimate query is an authorization
	// request whose scope parameter (maxScopeParamLen) is percent-encoded.
	maxQueryBytes = 32 << 10
	// maxCookieBytes bounds the Cookie headers together: a deployment's
	// other cookies and a few flow cookies fit many times over.
	maxCookieBytes = 32 << 10
	// maxFlowCookiesSeen: more flow cookies in one request than any
	// browser of ours can hold (maxFlowCookies per strategy) is refused
	// without parsing a single one.
	maxFlowCookiesSeen = 16
	// maxFlowCookies is how many sign-ins of one strategy a browser keeps
	// at once: a new one beyond evicts the oldest (session.go).
	maxFlowCookies = 4
	// maxLogoutBody: a logout form carries at most a returnTo.
	maxLogoutBody = 4 << 10
	// maxOtherBody: the GET endpoints read no body at all.
	maxOtherBody = 4 << 10
)

// Sentinel errors of the limits (the log's words; the caller gets 429 or
// 503 with Retry-After).
var (
	// ErrSourceBudget: this source used up its budget of requests that
	// cost a provider call or a replicated write (Config.SourceRate,
	// SourceBurst). Other sources are unaffected.
	ErrSourceBudget = errors.New("login: too many costly requests from this source; retry later")
	// ErrProviderBusy: Config.MaxProviderCalls calls for unauthenticated
	// callers were in flight for longer than Config.ProviderCallWait.
	ErrProviderBusy = errors.New("login: too many provider calls in flight; retry later")
)

// limits is the per-service state of the bounds above.
type limits struct {
	rate, burst float64
	wait        time.Duration
	clientAddr  func(*http.Request) string

	mu    sync.Mutex // guards table; only costly requests take it
	table *simplelru.LRU[string, *tokenBucket]
	slots chan struct{} // provider calls in flight for unauthenticated callers

	refused *refusalCache
}

type tokenBucket struct {
	tokens float64
	at     time.Time
}

func newLimits(c Config) *limits {
	t, _ := simplelru.NewLRU[string, *tokenBucket](c.SourceTableSize, nil) // size > 0 (fill)
	return &limits{
		rate: c.SourceRate, burst: float64(c.SourceBurst), wait: time.Duration(c.ProviderCallWait), clientAddr: c.ClientAddr,
		table: t, slots: make(chan struct{}, c.MaxProviderCalls), refused: newRefusalCache(c.RefusedTokenCache, time.Duration(c.RefusedTokenTTL)),
	}
}

// admit takes one token from the source's bucket; when it is empty it
// says how long until the next token.
func (l *limits) admit(source string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.table.Get(source)
	if !ok {
		// A source pushed out of the table comes back with a full bucket:
		// cycling through more addresses than the table holds buys one
		// burst per address, and the global ceiling still holds.
		b = &tokenBucket{tokens: l.burst, at: now}
		l.table.Add(source, b)
	}
	if dt := now.Sub(b.at).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.rate)
	}
	b.at = now
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), false
	}
	b.tokens--
	return 0, true
}

// acquire waits up to l.wait (or ctx) for a provider-call slot; release
// gives it back.
func (l *limits) acquire(ctx context.Context) error {
	select {
	case l.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-t.C:
		return ErrProviderBusy
	case <-ctx.Done():
		return ErrProviderBusy
	}
}

func (l *limits) release() { <-l.slots }

// source names the caller for the budgets: Config.ClientAddr (the control
// plane believes X-Forwarded-For only from its trusted proxies), else the
// peer address. IPv6 counts per /64, the block one host usually gets.
func (l *limits) source(r *http.Request) string {
	var host string
	if l.clientAddr != nil {
		host = l.clientAddr(r)
	} else if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		host = h
	} else {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return host
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// costly is the gate of a request about to cost a provider call or a
// replicated write for a caller who has proven nothing: the source's
// budget, then (provider calls only) a global slot. ok false: the answer
// (429 or 503, Retry-After) is written. Call done when ok.
func (s *Service) costly(w http.ResponseWriter, r *http.Request, method string, provider bool, page bool) (done func(), ok bool) {
	src := s.lim.source(r)
	if wait, ok := s.lim.admit(src, s.cfg.Now()); !ok {
		s.log.Info("request refused: source over its budget", "method", method, "source", src)
		s.writeLimited(w, method, page, http.StatusTooManyRequests, wait, ErrSourceBudget)
		return nil, false
	}
	if !provider {
		return func() {}, true
	}
	if err := s.lim.acquire(r.Context()); err != nil {
		s.log.Warn("request refused: provider calls at their ceiling", "method", method, "ceiling", cap(s.lim.slots))
		s.writeLimited(w, method, page, http.StatusServiceUnavailable, time.Second, err)
		return nil, false
	}
	return s.lim.release, true
}

// writeLimited answers a refusal of the limits: the Taskcluster error
// shape (TooManyRequests, or 503 for the global ceiling), or the sign-in
// failure page for the browser callback; Retry-After in whole seconds.
func (s *Service) writeLimited(w http.ResponseWriter, method string, page bool, status int, wait time.Duration, err error) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
	if page {
		s.renderFailure(w, status, "Too many sign-in attempts right now. Please wait a moment and sign in again.")
		return
	}
	e := &protocol.APIError{Code: protocol.CodeTooManyRequests, Status: status, Message: "Too many requests from this address; retry later."}
	if errors.Is(err, ErrProviderBusy) {
		e.Code, e.Message = protocol.CodeInternalServerError, "The login service cannot answer right now; retry later."
	}
	s.writeAPIError(w, method, e, nil)
}

// refusalCache remembers, for a short time, the keys (KeyOf of provider
// and token) of bearer tokens a provider refused, so that presenting the
// same junk token again costs no provider call. Bounded: a flood of
// distinct tokens only pushes older entries out (and is bounded by the
// source budgets instead).
type refusalCache struct {
	ttl time.Duration
	mu  sync.Mutex
	lru *simplelru.LRU[string, time.Time] // key → until
}

func newRefusalCache(size int, ttl time.Duration) *refusalCache {
	c, _ := simplelru.NewLRU[string, time.Time](size, nil) // size > 0 (fill)
	return &refusalCache{ttl: ttl, lru: c}
}

func (c *refusalCache) has(key string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.lru.Get(key)
	if ok && !now.Before(until) {
		c.lru.Remove(key)
		return false
	}
	return ok
}

func (c *refusalCache) add(key string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Add(key, now.Add(c.ttl))
}

// refusalKey keys a refused token of provider (the token itself is never kept).
func refusalKey(provider, token string) string { return KeyOf(provider + "\x00" + token) }

// bodyLimit is the largest body a login endpoint reads.
func bodyLimit(r *http.Request) int64 {
	switch r.URL.Path {
	case "/graphql":
		return gqlMaxBody
	case "/login/oauth/token", "/login/oauth/authorize/decision":
		return maxOAuthForm
	case "/login/logout":
		return maxLogoutBody
	}
	return maxOtherBody
}

// guard refuses, before routing and before any cookie is parsed, what no
// legitimate caller sends: an oversized query string, Cookie headers or
// body (declared or read). It is cheap: lengths and a substring count.
func (s *Service) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.URL.RawQuery) > maxQueryBytes {
			s.tooLarge(w, http.StatusRequestURITooLong, "The query string is longer than "+strconv.Itoa(maxQueryBytes)+" bytes")
			return
		}
		size, flows := 0, 0
		for _, v := range r.Header["Cookie"] {
			size += len(v)
			flows += strings.Count(v, flowCookiePrefix)
		}
		if size > maxCookieBytes || flows > maxFlowCookiesSeen {
			s.log.Info("request refused: too many or too large cookies", "bytes", size, "flowCookies", flows)
			s.tooLarge(w, http.StatusRequestHeaderFieldsTooLarge, "Too many or too large cookies; clear this site's cookies and retry")
			return
		}
		limit := bodyLimit(r)
		// /graphql answers in GraphQL's error shape: its handler refuses
		// (413) what MaxBytesReader cuts off.
		if r.ContentLength > limit && r.URL.Path != "/graphql" {
			s.tooLarge(w, http.StatusRequestEntityTooLarge, "The request body is larger than "+strconv.FormatInt(limit, 10)+" bytes")
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Service) tooLarge(w http.ResponseWriter, status int, msg string) {
	s.writeAPIError(w, "login", &protocol.APIError{Code: protocol.CodeInputTooLarge, Status: status, Message: msg}, nil)
}

// fillLimits applies the documented defaults of the limit fields.
func (c *Config) fillLimits() error {
	if c.SourceRate < 0 || math.IsNaN(c.SourceRate) || math.IsInf(c.SourceRate, 0) || c.SourceBurst < 0 ||
		c.SourceTableSize < 0 || c.MaxProviderCalls < 0 || c.RefusedTokenCache < 0 {
		return errors.New("login: sourceRate, sourceBurst, sourceTableSize, maxProviderCalls and refusedTokenCache must not be negative")
	}
	setDefault(&c.SourceRate, DefaultSourceRate)
	setDefault(&c.SourceBurst, DefaultSourceBurst)
	setDefault(&c.SourceTableSize, DefaultSourceTableSize)
	setDefault(&c.MaxProviderCalls, DefaultMaxProviderCalls)
	setDefault(&c.ProviderCallWait, protocol.Duration(DefaultProviderCallWait))
	setDefault(&c.RefusedTokenTTL, protocol.Duration(DefaultRefusedTokenTTL))
	setDefault(&c.RefusedTokenCache, DefaultRefusedTokenCache)
	setDefault(&c.JWKSMinRefresh, protocol.Duration(DefaultJWKSMinRefresh))
	return nil
}
