package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// The control-plane endpoints the sidecar calls (all under /api/auth/v1;
// see controlplane/DESIGN.md "tcauth extensions").
const (
	routeCredentials  = "/tcauth/clients/" // + clientId + "/credentials"; scope auth:tcauth:verify-clients
	routeChanges      = "/tcauth/changes"  // scope auth:tcauth:watch-changes
	routeRoles        = "/roles/"          // scope auth:list-roles
	routeRole         = "/roles/"          // + roleId; scope auth:get-role:<roleId>
	routeAuthenticate = "/authenticate-hawk"
	// headerAppliedIndex is the Raft index at which the control plane read
	// its answer; it lets the sidecar refuse an answer older than a change
	// it already saw on the feed.
	headerAppliedIndex = "X-Tcauth-Applied-Index"
)

// errFeedExpired is the feed's 410: the sidecar fell behind its history.
var errFeedExpired = errors.New("sidecar: change feed history expired")

// controlPlane is the sidecar's view of the control plane's HTTP API.
type controlPlane struct {
	fetch *tcclient.Client // short timeout: credentials, roles, authenticate-hawk
	poll  *tcclient.Client // long timeout: the change feed's long poll
	anon  *tcclient.Client // authenticateHawk is called without credentials
}

func newControlPlane(root string, creds *protocol.Credentials, rt http.RoundTripper, fetchTimeout, feedWait time.Duration) *controlPlane {
	if rt == nil {
		rt = &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		}
	}
	fetch := &http.Client{Transport: rt, Timeout: fetchTimeout}
	poll := &http.Client{Transport: rt, Timeout: feedWait + 15*time.Second}
	return &controlPlane{
		fetch: &tcclient.Client{RootURL: root, Credentials: creds, HTTPClient: fetch},
		poll:  &tcclient.Client{RootURL: root, Credentials: creds, HTTPClient: poll},
		anon:  &tcclient.Client{RootURL: root, HTTPClient: fetch},
	}
}

// credentialsResponse is GET /tcauth/clients/<clientId>/credentials. The
// accessToken is a secret: this struct is never logged nor formatted.
type credentialsResponse struct {
	ClientID    string `json:"clientId"`
	AccessToken string `json:"accessToken"`
	// Scopes are the client's own; with them the sidecar re-expands a
	// cached client itself after a role change instead of refetching it
	// (absent from older control planes: then it refetches).
	Scopes         []string `json:"scopes"`
	ExpandedScopes []string `json:"expandedScopes"`
	Expires        string   `json:"expires"`
	Disabled       bool     `json:"disabled"`
	// Index is the X-Tcauth-Applied-Index header (0 if absent).
	Index uint64 `json:"-"`
}

func statusOf(err error) int {
	var e *tcclient.Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// decodeError is a 2xx answer that is not the JSON expected: the control
// plane answered, so it is not "unreachable".
type decodeError struct {
	route string
	err   error
}

func (e *decodeError) Error() string {
	return fmt.Sprintf("sidecar: decoding the answer of %s: %v", e.route, e.err)
}
func (e *decodeError) Unwrap() error { return e.err }

// getJSON is DoRaw + decode, keeping the applied-index header.
func getJSON(ctx context.Context, c *tcclient.Client, route string, q url.Values, out any) (uint64, error) {
	resp, err := c.DoRaw(ctx, "GET", route, q, "", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	index, _ := strconv.ParseUint(resp.Header.Get(headerAppliedIndex), 10, 64)
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return 0, &decodeError{route: route, err: err}
	}
	return index, nil
}

// Errors of a credentials fetch, by what they say about whom. Only
// errCPUnreachable is about the control plane as a whole (and starts the
// fail-fast pause); every other answer concerns the one clientId asked
// about, or the one request, so that an id chosen by a caller can never
// make the sidecar stop fetching for everybody else.
var (
	// ErrSidecarCredentialsRejected: the control plane answered 401 or 403
	// to the sidecar's own request, i.e. the sidecar's client is wrong,
	// disabled or lacks auth:tcauth:verify-clients. Logged loudly; the
	// request gets 503; nothing is cached.
	ErrSidecarCredentialsRejected = errors.New("sidecar: the control plane rejected the sidecar's own credentials (check its clientId, access token and auth:tcauth:verify-clients)")
	// errCPUnreachable: no answer (connection refused or reset, timeout)
	// or a 5xx that is not a catching-up node's.
	errCPUnreachable = errors.New("sidecar: control plane unreachable")
	// errCPCatchingUp: a node that has not caught up with the cluster
	// answered 503 with Retry-After. It says nothing about the client, so
	// nothing is cached, and the control plane is reachable.
	errCPCatchingUp = errors.New("sidecar: the control-plane node is catching up")
	// errCPRefused: another 4xx (e.g. 429) about this one lookup.
	errCPRefused = errors.New("sidecar: the control plane refused this lookup")
	// errCPBadAnswer: a 2xx that cannot be used for this id (undecodable,
	// for another clientId, bad expires).
	errCPBadAnswer = errors.New("sidecar: unusable control-plane answer")
)

// classifyFetchError maps a failed credentials call to the errors above
// (or protocol.ErrClientNotFound for 400/404: "no such client" and "not
// a valid clientId" both say the id cannot be verified).
func classifyFetchError(err error) error {
	var e *tcclient.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("%w: %w", errCPUnreachable, err)
	}
	switch st := e.StatusCode; {
	case st == http.StatusNotFound || st == http.StatusBadRequest:
		return protocol.ErrClientNotFound
	case st == http.StatusUnauthorized || st == http.StatusForbidden:
		return fmt.Errorf("%w: %w", ErrSidecarCredentialsRejected, err)
	case st == http.StatusServiceUnavailable && e.Header.Get("Retry-After") != "":
		return fmt.Errorf("%w: %w", errCPCatchingUp, err)
	case st >= 500:
		return fmt.Errorf("%w: %w", errCPUnreachable, err)
	default:
		return fmt.Errorf("%w: %w", errCPRefused, err)
	}
}

// client fetches one client's credentials. protocol.ErrClientNotFound for
// a 404 or 400; other errors are classified by classifyFetchError.
func (c *controlPlane) client(ctx context.Context, id string) (*credentialsResponse, error) {
	var out credentialsResponse
	index, err := getJSON(ctx, c.fetch, routeCredentials+tcclient.PathSegment(id)+"/credentials", nil, &out)
	var decode *decodeError
	switch {
	case errors.As(err, &decode):
		return nil, fmt.Errorf("%w: %w", errCPBadAnswer, err)
	case err != nil:
		return nil, classifyFetchError(err)
	case out.ClientID != id:
		return nil, fmt.Errorf("%w: the control plane answered for another client", errCPBadAnswer)
	}
	out.Index = index
	return &out, nil
}

// changeEvent is one entry of the change feed.
type changeEvent struct {
	Index   uint64 `json:"index"`
	Kind    string `json:"kind"` // "client" or "role"
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
	Op      string `json:"op"` // created, updated, deleted, token-reset, enabled, disabled, expired
}

type changesResponse struct {
	Changes []changeEvent `json:"changes"`
	Index   uint64        `json:"index"`
}

// changes long-polls the feed for changes after index.
func (c *controlPlane) changes(ctx context.Context, after uint64, wait time.Duration) (*changesResponse, error) {
	q := url.Values{}
	q.Set("after", strconv.FormatUint(after, 10))
	q.Set("wait", strconv.Itoa(int(wait/time.Second)))
	var out changesResponse
	_, err := getJSON(ctx, c.poll, routeChanges, q, &out)
	if statusOf(err) == http.StatusGone {
		return nil, errFeedExpired
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// currentIndex asks for the control plane's applied index without any
// history: "changes after the largest index, wait 0" holds no changes and
// can never be 410, so it answers at once with the current index. (after=0
// would list the whole retained history, or be 410 once the feed wrapped.)
func (c *controlPlane) currentIndex(ctx context.Context) (uint64, error) {
	resp, err := c.changes(ctx, math.MaxUint64, 0)
	if err != nil {
		return 0, err
	}
	if resp.Index == math.MaxUint64 {
		return 0, errors.New("sidecar: the control plane did not report its applied index")
	}
	return resp.Index, nil
}

func (c *controlPlane) roles(ctx context.Context) ([]protocol.RoleJSON, error) {
	var out []protocol.RoleJSON
	_, err := getJSON(ctx, c.fetch, routeRoles, nil, &out)
	return out, err
}

// role fetches one role; ok=false when it no longer exists.
func (c *controlPlane) role(ctx context.Context, id string) (protocol.RoleJSON, bool, error) {
	var out protocol.RoleJSON
	_, err := getJSON(ctx, c.fetch, routeRole+tcclient.PathSegment(id), nil, &out)
	if statusOf(err) == http.StatusNotFound {
		return out, false, nil
	}
	return out, err == nil, err
}

// authenticate is remote verification: authenticateHawk, called without
// credentials like every Taskcluster service does.
func (c *controlPlane) authenticate(ctx context.Context, req protocol.Request) (protocol.Result, error) {
	body := protocol.AuthenticateHawkRequest{
		Method: strings.ToLower(req.Method), Resource: req.Resource, Host: req.Host, Port: req.Port,
		Authorization: req.Authorization, SourceIP: req.SourceIP,
	}
	var out protocol.Result
	if err := c.anon.Do(ctx, "POST", routeAuthenticate, nil, body, &out); err != nil {
		return protocol.Result{}, err
	}
	return out, nil
}
