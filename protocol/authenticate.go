package protocol

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Client is a permanent client as the verifier needs it. ExpandedScopes
// are the client's scopes with roles already expanded; a zero Expires
// never expires.
type Client struct {
	ClientID       string
	AccessToken    string
	ExpandedScopes []string
	Expires        time.Time
	Disabled       bool
}

// ErrClientNotFound is what a ClientSource returns for an unknown clientId.
var ErrClientNotFound = errors.New("protocol: client not found")

// ClientSource loads permanent clients. It returns ErrClientNotFound for an
// unknown id; any other error means the lookup itself failed (store
// unreachable, context cancelled) and is never reported as an
// authentication failure.
type ClientSource interface {
	Client(ctx context.Context, clientID string) (*Client, error)
}

// ScopeOps is the scope algebra the verifier needs. Expand returns the
// sorted, normalized role expansion of scopes; the verifier hands it a
// slice it may reorder or keep. Satisfies reports whether the set have
// satisfies the single scope need.
type ScopeOps interface {
	Expand(scopes []string) []string
	Satisfies(have []string, need string) bool
}

// ClosedExpander is an optional ScopeOps extension: ExpandWith(closed,
// extra) is Expand(closed ∪ extra) for a closed set that is already an
// expansion (a ClientSource's Client.ExpandedScopes), without expanding it
// again. A client holding assume:* has hundreds of thousands of expanded
// scopes at scale; re-expanding them on every request to add
// assume:anonymous dominated its requests' cost.
type ClosedExpander interface {
	ExpandWith(closed, extra []string) []string
}

// Status is the outcome of an authentication.
type Status string

const (
	StatusSuccess Status = "auth-success"
	StatusFailed  Status = "auth-failed"
	StatusNoAuth  Status = "no-auth"
)

// Result is the verifier's answer; MarshalJSON renders it as
// authenticateHawk's response (docs/protocol.md §11).
type Result struct {
	Status   Status
	Scheme   string // "hawk" (also for bewits, as the reference reports) or "none"
	ClientID string
	Scopes   []string
	Expires  time.Time
	Hash     string // the header's payload-hash attribute, unverified (§4)
	Message  string // for StatusFailed
	// Err is non-nil when the client lookup itself failed: callers answer
	// 5xx (fail closed), never 401.
	Err error
	// Reason is the failure as an error value (often one of the Err…
	// variables of this package, for errors.Is); nil on success.
	Reason error
	// Bewit is true when the request was authenticated by a bewit.
	Bewit bool
}

// Authenticator verifies Hawk headers and bewits with Taskcluster's
// extensions. The zero value with Clients set is usable.
type Authenticator struct {
	Clients ClientSource
	// Scopes expands roles and tests satisfaction. nil = no roles (the
	// identity expander, merging assume:anonymous in the reference's
	// sorted-merge way) and plain trailing-* satisfaction: what
	// testAuthenticate uses.
	Scopes ScopeOps
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	// Skew is the allowed |ts − now| of a Hawk header; 0 = 15 minutes
	// (inclusive). Bewits get no allowance, certificates a fixed 5 minutes.
	Skew time.Duration
	// AcceptJSEmptyScopesSignature also accepts certificates with no scopes
	// signed the way the official JS clients sign them (a trailing newline
	// after "scopes:"). Default false: the reference rejects them (§7).
	AcceptJSEmptyScopesSignature bool
	// Certificates, if set, remembers certificates that verified so that
	// repeated requests with the same temporary credentials skip two of
	// their three HMACs (see CertificateCache). nil = verify in full.
	Certificates *CertificateCache
}

// DefaultSkew is the reference's allowed clock skew for Hawk headers.
const DefaultSkew = 15 * time.Minute

// certSkewMs is the clock allowance for a certificate's start and expiry.
const certSkewMs = 5 * 60 * 1000

var anonymousOnly = []string{anonymousScope}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Authenticator) ops() ScopeOps {
	if a.Scopes != nil {
		return a.Scopes
	}
	return identityScopes{}
}

// withAnonymous is expand(scopes ∪ {assume:anonymous}).
// closed says scopes is the client's already expanded set.
func (a *Authenticator) withAnonymous(scopes []string, closed bool) []string {
	if a.Scopes == nil {
		return mergeScopeSets(scopes, anonymousOnly)
	}
	if ce, ok := a.Scopes.(ClosedExpander); ok && closed {
		return ce.ExpandWith(scopes, anonymousOnly)
	}
	s := make([]string, len(scopes), len(scopes)+1)
	copy(s, scopes)
	return a.Scopes.Expand(append(s, anonymousScope))
}

func failed(err error) Result {
	return Result{Status: StatusFailed, Message: err.Error(), Reason: err}
}

// lookupError marks a ClientSource failure inside the pipeline.
type lookupError struct{ err error }

func (e *lookupError) Error() string { return "client lookup failed: " + e.err.Error() }
func (e *lookupError) Unwrap() error { return e.err }

func (a *Authenticator) fail(err error) Result {
	var le *lookupError
	if errors.As(err, &le) {
		return Result{Status: StatusFailed, Message: "Internal error: client lookup failed", Err: le.err, Reason: err}
	}
	return failed(err)
}

// Authenticate verifies req: its Authorization header if it has one, else
// its bewit if the resource has one, else it is anonymous (no-auth).
//
// Header pipeline (docs/protocol.md §5): parse → required attributes →
// ext/certificate/authorizedScopes and the client lookup (§6–§9) → MAC →
// timestamp. So a bad certificate is reported even when the MAC is wrong
// too, as the reference does. Nonces are not checked (§5); replay
// protection, if wanted, belongs to the caller after a successful MAC.
// A request with both a header and a bewit is verified by its header; the
// caller rejects it first if it wants lib-api's behaviour (HasBewit,
// TwoSchemesMessage). The payload hash is returned, not checked
// (PayloadHashValid does that when the caller has the body).
func (a *Authenticator) Authenticate(ctx context.Context, req Request) Result {
	now := a.now()
	switch {
	case req.Authorization != "":
		return a.authenticateHeader(ctx, req, now)
	case HasBewit(req.Resource):
		return a.authenticateBewit(ctx, req, now)
	}
	return Result{
		Status:  StatusNoAuth,
		Scheme:  "none",
		Scopes:  a.withAnonymous(nil, false),
		Expires: now.Add(15 * time.Minute),
	}
}

func (a *Authenticator) authenticateHeader(ctx context.Context, req Request, now time.Time) Result {
	h, err := ParseHeader(req.Authorization)
	if err != nil {
		return failed(err)
	}
	var v verified
	if err := a.loadCredentials(ctx, h.ID, h.Ext, now, &v); err != nil {
		return a.fail(err)
	}
	art := Artifacts{
		Method: req.Method, Resource: req.Resource, Host: req.Host, Port: req.Port,
		TS: h.TS, Nonce: h.Nonce, Hash: h.Hash, Ext: h.Ext, App: h.App, Dlg: h.Dlg,
	}
	if !v.macMatches("header", &art, h.MAC) {
		return failed(ErrBadMAC)
	}
	if err := a.checkTimestamp(h.TS, now); err != nil {
		return failed(err)
	}
	return Result{
		Status: StatusSuccess, Scheme: "hawk", ClientID: h.ID,
		Scopes: a.withAnonymous(v.scopes, v.closed), Expires: v.expires, Hash: h.Hash,
	}
}

// checkTimestamp applies the skew window: fail iff |ts·1000 − now_ms| >
// skew. [quirk] rejected: the reference coerces ts with JavaScript's
// Number, so a non-numeric ts (NaN) is never stale and a correctly MACed
// header with ts="abc" is valid forever; fractional ts is accepted too. We
// require a decimal integer and fail anything else with
// ErrInvalidTimestamp (after the MAC, where the skew test sits).
func (a *Authenticator) checkTimestamp(tsText string, now time.Time) error {
	ts, ok, huge := parseDecimal(tsText)
	if !ok {
		return ErrInvalidTimestamp
	}
	if huge {
		return ErrStaleTimestamp
	}
	skew := a.Skew
	if skew <= 0 {
		skew = DefaultSkew
	}
	d := ts*1000 - now.UnixMilli()
	if d < 0 {
		d = -d
	}
	if d > skew.Milliseconds() {
		return ErrStaleTimestamp
	}
	return nil
}

// parseDecimal parses 1+ ASCII digits. huge reports a value too large to
// compute with in milliseconds (more than 15 digits), which is far outside
// any window anyway.
func parseDecimal(s string) (n int64, ok, huge bool) {
	if s == "" {
		return 0, false, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false, false
		}
		if i < 15 {
			n = n*10 + int64(c-'0')
		}
	}
	return n, true, len(s) > 15
}

func (a *Authenticator) authenticateBewit(ctx context.Context, req Request, now time.Time) Result {
	b, macURL, err := ParseBewit(req.Method, req.Resource)
	if err != nil {
		return failed(err)
	}
	var v verified
	if err := a.loadCredentials(ctx, b.ID, b.Ext, now, &v); err != nil {
		return a.fail(err)
	}
	art := Artifacts{Method: "GET", Resource: macURL, Host: req.Host, Port: req.Port, TS: b.Exp, Ext: b.Ext}
	if !v.macMatches("bewit", &art, b.MAC) {
		return failed(ErrBadMAC)
	}
	// [quirk] rejected: hawk 9 keeps exp as a string, so a non-numeric exp
	// is NaN and never expires. We require a decimal integer.
	exp, ok, huge := parseDecimal(b.Exp)
	if !ok {
		return failed(ErrInvalidBewitExpiry)
	}
	// No skew allowance for bewits (hawk's rule).
	if !huge && exp*1000 <= now.UnixMilli() {
		return failed(ErrAccessExpired)
	}
	return Result{
		Status: StatusSuccess, Scheme: "hawk", ClientID: b.ID, Bewit: true,
		Scopes: a.withAnonymous(v.scopes, v.closed), Expires: v.expires,
	}
}

// verified is what credential processing yields: the MAC key, the scopes
// before assume:anonymous is merged in, and the expiry.
type verified struct {
	key       string   // permanent: the issuer's accessToken
	tempKey   [43]byte // temporary: derived key
	temporary bool
	scopes    []string
	closed    bool // scopes is the client's ExpandedScopes (see ClosedExpander)
	expires   time.Time
}

// macMatches computes the MAC of kind over art with the verified key and
// compares it with mac in constant time.
func (v *verified) macMatches(kind string, art *Artifacts, mac string) bool {
	m := getMAC()
	defer putMAC(m)
	m.buf = appendNormalized(m.buf[:0], kind, art)
	var sum []byte
	if v.temporary {
		sum = hmacSum(m, v.tempKey[:], m.buf)
	} else {
		sum = hmacSum(m, v.key, m.buf)
	}
	base64.StdEncoding.Encode(m.enc[:], sum)
	return equalConstantTime(m.enc[:], mac)
}

func authErr(msg string) error { return &AuthError{msg} }

// loadCredentials is the reference's loadCredentials + limitClientWithExt
// (docs/protocol.md §6–§9), in its order: first failure wins.
func (a *Authenticator) loadCredentials(ctx context.Context, id, extAttr string, now time.Time, v *verified) error {
	var ext extData
	if extAttr != "" {
		var err error
		if ext, err = decodeExt(extAttr); err != nil {
			return err
		}
	}
	// A JS-falsy certificate or authorizedScopes (null, false, 0, "") is
	// ignored as if absent; [] and {} are not falsy.
	hasCert := ext.certificate.truthy()
	issuingID := id
	if hasCert && ext.certificate.kind == kindObject && ext.cert.issuer.truthy() {
		if ext.cert.issuer.kind != kindString {
			return authErr("ext.certificate.issuer must be a string")
		}
		if ext.cert.issuer.str == id {
			return authErr("ext.certificate.issuer must differ from the supplied clientId")
		}
		issuingID = ext.cert.issuer.str
	}

	if a.Clients == nil {
		return &lookupError{errors.New("protocol: Authenticator.Clients is nil")}
	}
	client, err := a.Clients.Client(ctx, issuingID)
	switch {
	case errors.Is(err, ErrClientNotFound) || err == nil && client == nil:
		return authErr("Client with clientId '" + issuingID + "' not found")
	case err != nil:
		return &lookupError{err}
	case client.Disabled:
		return authErr("Client with clientId '" + issuingID + "' is disabled")
	case !client.Expires.IsZero() && client.Expires.Before(now):
		return authErr("Client with clientId: '" + issuingID + "' has expired") // sic: the colon is the reference's
	case client.AccessToken == "":
		return ErrInvalidCredentials
	}
	v.key, v.scopes, v.expires = client.AccessToken, client.ExpandedScopes, client.Expires
	v.closed = true
	ops := a.ops()

	if hasCert {
		if err := a.applyCertificate(id, issuingID, client, &ext, now, ops, v); err != nil {
			return err
		}
	}

	if ext.authorizedScopes.truthy() {
		if ext.authorizedScopes.kind != kindArray {
			return authErr("ext.authorizedScopes must be an array")
		}
		authorized, ok := scopeArray(ext.authorizedScopes.raw)
		if !ok {
			return authErr("ext.authorizedScopes must be an array of valid scopes")
		}
		current := a.withAnonymous(v.scopes, v.closed)
		for _, s := range authorized {
			if !ops.Satisfies(current, s) {
				return authErr("Supplied credentials do not satisfy authorizedScopes; credentials have scopes:\n\n```\n" +
					strings.Join(current, "\n") + "\n```\n\nauthorizedScopes are:\n\n```\n" +
					strings.Join(authorized, "\n") + "\n```")
			}
		}
		v.scopes, v.closed = authorized, false
	}
	return nil
}

// applyCertificate validates a temporary-credential certificate (§7) and
// switches v to the temporary key, the certificate's scopes and the
// earlier expiry.
func (a *Authenticator) applyCertificate(id, issuingID string, client *Client, ext *extData, now time.Time, ops ScopeOps, v *verified) error {
	// JavaScript's `instanceof Object`: arrays pass (and then have no
	// version), strings/numbers/true do not.
	if k := ext.certificate.kind; k != kindObject && k != kindArray {
		return authErr("ext.certificate must be a JSON object")
	}
	c := &ext.cert
	switch {
	case c.version.kind != kindNumber || c.version.num != 1:
		return authErr("ext.certificate.version must be 1")
	case c.seed.kind != kindString:
		return authErr("ext.certificate.seed must be a string")
	case utf16Len(c.seed.str) != 44:
		return authErr("ext.certificate.seed must be 44 characters")
	case c.start.kind != kindNumber:
		return authErr("ext.certificate.start must be a number")
	case c.expiry.kind != kindNumber:
		return authErr("ext.certificate.expiry must be a number")
	case c.scopes.kind != kindArray:
		return authErr("ext.certificate.scopes must be an array")
	}
	scopes, ok := scopeArray(c.scopes.raw)
	if !ok {
		return authErr("ext.certificate.scopes must be an array of valid scopes")
	}
	nowMs := float64(now.UnixMilli())
	start, expiry := c.start.num, c.expiry.num
	switch {
	case start > nowMs+certSkewMs:
		return authErr("ext.certificate.start > now")
	case expiry < nowMs-certSkewMs:
		return authErr("ext.certificate.expiry < now")
	case expiry-start > float64(maxCertLifetimeMs):
		return authErr("ext.certificate cannot last longer than 31 days!")
	}
	named := issuingID != id
	if named {
		if need := "auth:create-client:" + id; !ops.Satisfies(client.ExpandedScopes, need) {
			return authErr("ext.certificate issuer `" + issuingID + "` doesn't have `" + need + "` for supplied clientId.")
		}
	} else if c.hasClientID {
		return authErr("ext.certificate.clientId must only be used with ext.certificate.issuer")
	}
	// The certificate's scopes are checked unexpanded against the issuer's
	// expanded scopes.
	for _, s := range scopes {
		if !ops.Satisfies(client.ExpandedScopes, s) {
			return authErr("ext.certificate issuer `" + issuingID + "` doesn't satisfy all certificate scopes " +
				strings.Join(scopes, ", ") + ".  The temporary credentials were not generated correctly.")
		}
	}

	issuer := ""
	if named {
		issuer = issuingID
	}
	m := getMAC()
	m.buf = appendSignedText(m.buf[:0], id, issuer, c.seed.str, start, expiry, scopes, false)
	if c.signature.kind == kindString {
		if key, ok := a.Certificates.lookup(issuingID, m.buf, client.AccessToken, c.signature.str); ok {
			v.tempKey = key
			putMAC(m)
			return a.certificateAccepted(v, scopes, expiry)
		}
	}
	valid := c.signature.kind == kindString && equalConstantTime(m.hmacBase64(client.AccessToken, m.buf), c.signature.str)
	cacheable := valid
	// [quirk] With no scopes the JS clients sign "scopes:\n" and the
	// reference rejects their certificates. We copy the reference by
	// default; AcceptJSEmptyScopesSignature opts into the JS variant too.
	if !valid && a.AcceptJSEmptyScopesSignature && len(scopes) == 0 && c.signature.kind == kindString {
		m.buf = appendSignedText(m.buf[:0], id, issuer, c.seed.str, start, expiry, scopes, true)
		valid = equalConstantTime(m.hmacBase64(client.AccessToken, m.buf), c.signature.str)
	}
	if valid {
		signed := m.buf
		m.buf = append(m.buf[len(m.buf):], c.seed.str...)
		base64.RawURLEncoding.Encode(v.tempKey[:], m.hmac(client.AccessToken, m.buf))
		if cacheable {
			a.Certificates.store(issuingID, signed, client.AccessToken, c.signature.str, v.tempKey)
		}
		m.buf = signed[:0]
	}
	putMAC(m)
	if !valid {
		if named {
			return authErr("ext.certificate.signature is not valid, or wrong clientId provided")
		}
		return authErr("ext.certificate.signature is not valid")
	}
	return a.certificateAccepted(v, scopes, expiry)
}

// certificateAccepted records a verified certificate's effect.
func (a *Authenticator) certificateAccepted(v *verified, scopes []string, expiry float64) error {
	v.temporary = true
	v.scopes, v.closed = scopes, false
	// new Date(expiry) truncates to whole milliseconds; the checks above
	// bound expiry to a finite time near now.
	if certExpires := time.UnixMilli(int64(expiry)).UTC(); v.expires.IsZero() || v.expires.After(certExpires) {
		v.expires = certExpires
	}
	return nil
}

// PayloadHashValid checks the payload hash a Hawk header carried (Hash)
// against the request body, in constant time, as lib-api does after a
// successful authentication (docs/protocol.md §4): only for scheme "hawk" with a
// hash; otherwise there is nothing to check and it reports true. On false,
// callers answer 401 AuthenticationFailed ("Invalid payload hash: …").
func (r Result) PayloadHashValid(contentType string, body []byte) bool {
	if r.Status != StatusSuccess || r.Scheme != "hawk" || r.Hash == "" {
		return true
	}
	return equalConstantTime([]byte(PayloadHash(contentType, body)), r.Hash)
}

// FormatTime renders t as JavaScript's Date.prototype.toJSON does:
// 2006-01-02T15:04:05.000Z in UTC.
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

type resultSuccessJSON struct {
	Status   Status   `json:"status"`
	Scheme   string   `json:"scheme"`
	Expires  string   `json:"expires,omitempty"`
	Scopes   []string `json:"scopes"`
	ClientID string   `json:"clientId"`
	Hash     string   `json:"hash,omitempty"`
}

type resultNoAuthJSON struct {
	Status  Status   `json:"status"`
	Scheme  string   `json:"scheme"`
	Expires string   `json:"expires"`
	Scopes  []string `json:"scopes"`
}

type resultFailedJSON struct {
	Status  Status `json:"status"`
	Message string `json:"message"`
}

// MarshalJSON renders r as one of authenticateHawk's three response shapes
// (docs/protocol.md §11). A success without expiry (e.g. testAuthenticate's
// tester) omits "expires".
func (r Result) MarshalJSON() ([]byte, error) {
	scopes := r.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	expires := ""
	if !r.Expires.IsZero() {
		expires = FormatTime(r.Expires)
	}
	switch r.Status {
	case StatusSuccess:
		return json.Marshal(resultSuccessJSON{r.Status, r.Scheme, expires, scopes, r.ClientID, r.Hash})
	case StatusNoAuth:
		return json.Marshal(resultNoAuthJSON{r.Status, "none", expires, scopes})
	case StatusFailed:
		return json.Marshal(resultFailedJSON{r.Status, r.Message})
	}
	return nil, errors.New("protocol: Result has no status")
}

// UnmarshalJSON reads an authenticateHawk response (e.g. in the sidecar).
func (r *Result) UnmarshalJSON(data []byte) error {
	var in struct {
		Status   Status   `json:"status"`
		Scheme   string   `json:"scheme"`
		Expires  string   `json:"expires"`
		Scopes   []string `json:"scopes"`
		ClientID string   `json:"clientId"`
		Hash     string   `json:"hash"`
		Message  string   `json:"message"`
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	switch in.Status {
	case StatusSuccess, StatusNoAuth, StatusFailed:
	default:
		return errors.New("protocol: unknown authenticateHawk status " + string(in.Status))
	}
	out := Result{Status: in.Status, Scheme: in.Scheme, Scopes: in.Scopes, ClientID: in.ClientID, Hash: in.Hash, Message: in.Message}
	if in.Expires != "" {
		t, err := time.Parse(time.RFC3339Nano, in.Expires)
		if err != nil {
			return errors.New("protocol: bad expires in authenticateHawk response: " + err.Error())
		}
		out.Expires = t
	}
	if out.Status == StatusFailed {
		out.Reason = &AuthError{out.Message}
	}
	*r = out
	return nil
}
