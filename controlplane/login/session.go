package login

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// Cookies and lifetimes of browser sign-in.
const (
	// SessionCookie carries a signed-in browser's session id (32 random
	// bytes, base64url). Only KeyOf(id) is stored.
	SessionCookie = "tcauth_session"
	// flowCookiePrefix + a short hash of the state names the flow cookie of
	// one sign-in: one cookie per attempt, so two tabs signing in at once
	// (same or different strategies) do not overwrite each other's state.
	flowCookiePrefix = "tcauth_flow_"
	// flowSealID is the Sealer id of flow cookies (domain separation from
	// every other sealed value of the keyring).
	flowSealID = "\x00tcauth/login-flow/v1"
	// FlowLifetime bounds a sign-in round trip through the provider.
	FlowLifetime = 10 * time.Minute
	// flowClockSkew tolerates a flow cookie issued by a node whose clock is
	// slightly ahead of this one's.
	flowClockSkew = time.Minute
	// grantLifetime is how long a provider grant is kept after the sign-in
	// (or refresh) that stored it. It outlives every session (default one
	// week) so that sessions never lose their grant, and it bounds how long
	// the tokens of someone who stopped using the deployment stay stored.
	grantLifetime = 90 * 24 * time.Hour
	// KindFlow marks a finished sign-in flow (key = KeyOf(state)), written
	// only after the provider vouched for the user, so a captured callback
	// URL with its flow cookie cannot be replayed within the flow lifetime.
	KindFlow = "login-flow"
	// maxFlowCookie bounds the flow cookie value we set and are willing to
	// open: a browser keeps a cookie of up to 4096 bytes with its name and
	// attributes (RFC 6265 §6.1), and a sealed flow with the longest
	// returnTo (maxReturnTo) must fit.
	maxFlowCookie = 3600
)

// Sentinel errors of the flow cookie (all answered 400, precise in the log).
var (
	errFlowMissing  = errors.New("login: no flow cookie for this state")
	errFlowForged   = errors.New("login: flow cookie does not open (forged, tampered or another keyring)")
	errFlowExpired  = errors.New("login: flow cookie expired")
	errFlowStrategy = errors.New("login: flow cookie belongs to another strategy")
	errFlowState    = errors.New("login: state does not match the flow cookie")
	errFlowTooLarge = errors.New("login: the sign-in flow does not fit in a cookie (returnTo too long)")
)

// Sign-in modes: a popup posts a message to its opener; redirect sends a
// same-window front end back to returnTo.
const (
	modePopup    = "popup"
	modeRedirect = "redirect"
)

// flow is what a sign-in carries through the provider round trip, sealed
// in the flow cookie (nothing is stored for an unauthenticated caller).
type flow struct {
	Version  int    `json:"v"`
	Strategy string `json:"st"`
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"pv"`
	Mode     string `json:"m"`
	ReturnTo string `json:"r,omitempty"`
	Issued   int64  `json:"t"` // unix seconds
}

// randomToken is n random bytes, base64url without padding.
func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("login: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// flowCookieName is the cookie of the flow with this state.
func flowCookieName(state string) string { return flowCookiePrefix + KeyOf(state)[:20] }

// sealFlow makes the flow cookie value.
// Without HTML escaping: a returnTo's "&" would take six bytes each.
// errFlowTooLarge when the value would exceed maxFlowCookie (a returnTo
// full of characters JSON escapes): refused at the start rather than set
// as a cookie that openFlow would refuse at the callback.
func (s *Service) sealFlow(f flow) (string, error) {
	b, err := protocol.Marshal(f)
	if err != nil {
		return "", err
	}
	sealed, err := s.cfg.Sealer.Seal(flowSealID, b)
	if err != nil {
		return "", err
	}
	v := base64.RawURLEncoding.EncodeToString(sealed)
	if len(v) > maxFlowCookie {
		return "", errFlowTooLarge
	}
	return v, nil
}

// openFlow checks a flow cookie value against the callback's strategy and
// state; any failure is one of the errFlow sentinels.
func (s *Service) openFlow(value, strategy, state string, now time.Time) (flow, error) {
	f, err := s.unsealFlow(value, now)
	if err != nil {
		return flow{}, err
	}
	if f.Strategy != strategy {
		return flow{}, errFlowStrategy
	}
	if state == "" || subtle.ConstantTimeCompare([]byte(f.State), []byte(state)) != 1 {
		return flow{}, errFlowState
	}
	return f, nil
}

// unsealFlow opens a flow cookie value and checks its version and age.
func (s *Service) unsealFlow(value string, now time.Time) (flow, error) {
	if len(value) > maxFlowCookie {
		return flow{}, errFlowForged
	}
	sealed, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return flow{}, errFlowForged
	}
	plain, err := s.cfg.Sealer.Open(flowSealID, sealed)
	if err != nil {
		return flow{}, errFlowForged
	}
	var f flow
	if err := json.Unmarshal(plain, &f); err != nil || f.Version != 1 {
		return flow{}, errFlowForged
	}
	issued := time.Unix(f.Issued, 0)
	if now.Sub(issued) > FlowLifetime || issued.Sub(now) > flowClockSkew {
		return flow{}, errFlowExpired
	}
	return f, nil
}

// secureCookies is false only when the public URL is on loopback (a
// development setup without TLS), as web-server does for localhost.
func (s *Service) secureCookies() bool {
	h := s.publicURL.Hostname()
	if h == "localhost" {
		return false
	}
	ip := net.ParseIP(h)
	return ip == nil || !ip.IsLoopback()
}

func (s *Service) setFlowCookie(w http.ResponseWriter, f flow, value string) {
	http.SetCookie(w, &http.Cookie{
		Name: flowCookieName(f.State), Value: value, Path: s.flowCookiePath(f.Strategy),
		MaxAge: int(FlowLifetime / time.Second), HttpOnly: true, Secure: s.secureCookies(),
		// Lax, not Strict: the cookie must come back on the provider's
		// cross-site top-level redirect to the callback.
		SameSite: http.SameSiteLaxMode,
	})
}

func (s *Service) clearFlowCookie(w http.ResponseWriter, strategy, state string) {
	s.clearFlowCookieNamed(w, strategy, flowCookieName(state))
}

func (s *Service) clearFlowCookieNamed(w http.ResponseWriter, strategy, name string) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: s.flowCookiePath(strategy), MaxAge: -1,
		HttpOnly: true, Secure: s.secureCookies(), SameSite: http.SameSiteLaxMode,
	})
}

// flowCookiePath scopes flow cookies to /login/<strategy>: sent back on
// the callback, and also on the start of the next sign-in, which can
// therefore see how many a browser holds and evict (evictFlows).
func (s *Service) flowCookiePath(strategy string) string {
	return s.publicURL.EscapedPath() + "/login/" + strategy
}

// evictFlows keeps the browser's flow cookies of strategy below
// maxFlowCookies before a new one is set: each sign-in start sets a
// cookie of its own (two tabs must not overwrite each other), so without
// this a page that starts sign-ins in a loop, or a user who clicks "sign
// in" many times, piles up cookies until the callback's Cookie header is
// refused by a proxy. Stale and unopenable ones go first, then the oldest.
// The count is bounded by guard (maxFlowCookiesSeen).
func (s *Service) evictFlows(w http.ResponseWriter, r *http.Request, strategy string, now time.Time) {
	type live struct {
		name   string
		issued int64
	}
	var flows []live
	for _, c := range r.Cookies() {
		if !strings.HasPrefix(c.Name, flowCookiePrefix) {
			continue
		}
		f, err := s.unsealFlow(c.Value, now)
		if err != nil || f.Strategy != strategy || c.Name != flowCookieName(f.State) {
			s.clearFlowCookieNamed(w, strategy, c.Name)
			continue
		}
		flows = append(flows, live{c.Name, f.Issued})
	}
	sort.SliceStable(flows, func(i, j int) bool { return flows[i].issued < flows[j].issued })
	for len(flows) >= maxFlowCookies {
		s.clearFlowCookieNamed(w, strategy, flows[0].name)
		flows = flows[1:]
	}
}

// session is a signed-in browser as stored (KindSession).
type session struct {
	Key             string    `json:"-"`
	Identity        string    `json:"identity"`
	Strategy        string    `json:"strategy"`
	ProviderExpires time.Time `json:"providerExpires"`
	Expires         time.Time `json:"-"`
}

// newSession stores a fresh session for u and returns its cookie value. A
// new id at every sign-in: nothing from before the sign-in (a planted
// cookie) becomes a session. Beyond MaxSessionsPerIdentity the oldest end.
func (s *Service) newSession(ctx context.Context, u User, strategy string) (string, error) {
	id := randomToken(32)
	now := s.cfg.Now()
	data, err := json.Marshal(session{Identity: u.Identity(), Strategy: strategy, ProviderExpires: u.ProviderExpires})
	if err != nil {
		return "", err
	}
	_, err = s.backend.Apply(ctx, Command{
		Op: OpPut, Time: now, Create: true, MaxPerIdentity: s.cfg.MaxSessionsPerIdentity,
		Record: Record{Kind: KindSession, Key: KeyOf(id), Identity: u.Identity(), Created: now,
			Expires: now.Add(time.Duration(s.cfg.SessionLifetime)), Data: data},
	})
	if err != nil {
		return "", fmt.Errorf("login: storing the session: %w", err)
	}
	return id, nil
}

func (s *Service) setSessionCookie(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: id, Path: "/", MaxAge: int(time.Duration(s.cfg.SessionLifetime) / time.Second),
		HttpOnly: true, Secure: s.secureCookies(), SameSite: http.SameSiteStrictMode,
	})
}

func (s *Service) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.secureCookies(), SameSite: http.SameSiteStrictMode,
	})
}

// sessionID is the request's session cookie value if it has the shape of
// one (43 base64url characters); anything else is no session at all.
func sessionID(r *http.Request) (string, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || len(c.Value) != 43 {
		return "", false
	}
	if b, err := base64.RawURLEncoding.DecodeString(c.Value); err != nil || len(b) != 32 {
		return "", false
	}
	return c.Value, true
}

// sessionFrom is the request's live session. It Syncs first, so a node
// that is behind never answers "logged out" for a session created (or
// "signed in" for one ended) elsewhere; a failed Sync is an error (503),
// not "logged out".
func (s *Service) sessionFrom(r *http.Request) (session, bool, error) {
	id, ok := sessionID(r)
	if !ok {
		return session{}, false, nil
	}
	if err := s.backend.Sync(r.Context()); err != nil {
		return session{}, false, fmt.Errorf("login: sync before the session lookup: %w", err)
	}
	rec, found, err := s.backend.Record(KindSession, KeyOf(id))
	if err != nil {
		return session{}, false, fmt.Errorf("login: reading the session: %w", err)
	}
	if !found || !rec.Expires.After(s.cfg.Now()) {
		return session{}, false, nil
	}
	var sess session
	if err := json.Unmarshal(rec.Data, &sess); err != nil || sess.Identity != rec.Identity {
		s.log.Error("stored session record is malformed; treating as signed out", "identity", rec.Identity)
		return session{}, false, nil
	}
	sess.Key, sess.Expires = rec.Key, rec.Expires
	return sess, true, nil
}

// storeGrant keeps (or replaces) the grant of identity.
func (s *Service) storeGrant(ctx context.Context, identity string, g Grant) error {
	data, err := json.Marshal(g)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	_, err = s.backend.Apply(ctx, Command{Op: OpPut, Time: now, Record: Record{
		Kind: KindGrant, Key: KeyOf(identity), Identity: identity, Created: now,
		Expires: now.Add(grantLifetime), Data: data,
	}})
	if err != nil {
		return fmt.Errorf("login: storing the grant: %w", err)
	}
	return nil
}

// endUser ends every session of identity and deletes its grant (the
// provider said the user is gone).
func (s *Service) endUser(ctx context.Context, identity string) error {
	now := s.cfg.Now()
	if _, err := s.backend.Apply(ctx, Command{Op: OpDelete, Time: now, Kind: KindSession, Identity: identity}); err != nil {
		return fmt.Errorf("login: ending the sessions: %w", err)
	}
	if _, err := s.backend.Apply(ctx, Command{Op: OpDelete, Time: now, Kind: KindGrant, Keys: []string{KeyOf(identity)}}); err != nil {
		return fmt.Errorf("login: deleting the grant: %w", err)
	}
	return nil
}
