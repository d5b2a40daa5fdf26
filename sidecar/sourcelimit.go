package sidecar

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// ErrUnknownClientBudget is returned when a source has used up its budget
// of lookups of clientIds the sidecar does not know (Config.UnknownClientRate
// and UnknownClientBurst). That source gets 429 TooManyRequests with
// Retry-After; other sources and every cached client are unaffected.
//
// 429 rather than 401: the sidecar has not looked at these credentials,
// so it must not call them wrong. A legitimate new client behind the same
// address as a flood (a NAT, a shared CI host) would take a 401 as "bad
// credentials" and give up; a 429 (RFC 6585 §4) says "too fast, try again"
// and is retried. It is not 503 either: the sidecar is fine, and a load
// balancer must not take it out of rotation for one caller's behaviour.
var ErrUnknownClientBudget = errors.New("sidecar: too many lookups of unknown clientIds from this source; retry later")

// outcomeThrottled is the requests_total outcome of ErrUnknownClientBudget.
const outcomeThrottled = "throttled"

// errUnknownFetchesBusy: Config.MaxUnknownFetches lookups of unknown ids
// were in flight for longer than FetchTimeout. The request gets 503.
var errUnknownFetchesBusy = errors.New("sidecar: too many lookups of unknown clientIds in flight")

// sourceTableSize bounds the sources whose budgets are remembered. A
// source pushed out of the table comes back with a full bucket, so an
// attacker cycling through more addresses than this gains at most one
// burst per address, and the global in-flight cap still bounds the
// control plane's load.
const sourceTableSize = 10_000

// sourceLimiter is a token bucket per source (the caller's address, an
// IPv6 /64 as one source) for fetches of unknown clientIds, plus a global
// bound on such fetches in flight. Only the miss path reaches it: cached
// clients, remembered unknown ids and malformed ids never do.
type sourceLimiter struct {
	rate  float64 // tokens per second
	burst float64
	mu    sync.Mutex
	table *simplelru.LRU[string, *tokenBucket]
	slots chan struct{} // in-flight unknown-id fetches
}

type tokenBucket struct {
	tokens float64
	at     time.Time
}

func newSourceLimiter(rate float64, burst, inFlight int) *sourceLimiter {
	t, _ := simplelru.NewLRU[string, *tokenBucket](sourceTableSize, nil) // size > 0
	return &sourceLimiter{rate: rate, burst: float64(burst), table: t, slots: make(chan struct{}, inFlight)}
}

// admit takes one token from source's bucket, or returns
// ErrUnknownClientBudget.
func (l *sourceLimiter) admit(source string, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.table.Get(source)
	if !ok {
		b = &tokenBucket{tokens: l.burst, at: now}
		l.table.Add(source, b)
	}
	if dt := now.Sub(b.at).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.rate)
	}
	b.at = now
	if b.tokens < 1 {
		return ErrUnknownClientBudget
	}
	b.tokens--
	return nil
}

// acquire waits up to wait for an in-flight slot; release gives it back.
func (l *sourceLimiter) acquire(wait time.Duration) error {
	select {
	case l.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-t.C:
		return errUnknownFetchesBusy
	}
}

func (l *sourceLimiter) release() { <-l.slots }

// sourceKey names the caller a request comes from, for the budgets: the
// peer's address or, when the peer is a trusted proxy, the last
// X-Forwarded-For entry — the address that proxy itself saw (entries
// before it were written by the caller and cannot be believed). IPv6
// addresses count per /64, the block one host usually gets.
func sourceKey(r *http.Request, trusted bool) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if trusted {
		if vs := r.Header.Values("X-Forwarded-For"); len(vs) > 0 {
			last := vs[len(vs)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if last = strings.TrimSpace(last); last != "" {
				host = last
			}
		}
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
