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
		return 0, fmt.Errorf("sidecar: decoding the answer of %s: %w", route, err)
	}
	return index, nil
}

// client fetches one client's credentials. protocol.ErrClientNotFound for
// a 404; any other error means the control plane could not answer.
func (c *controlPlane) client(ctx context.Context, id string) (*credentialsResponse, error) {
	var out credentialsResponse
	index, err := getJSON(ctx, c.fetch, routeCredentials+tcclient.PathSegment(id)+"/credentials", nil, &out)
	if statusOf(err) == http.StatusNotFound {
		return nil, protocol.ErrClientNotFound
	}
	if err != nil {
		return nil, err
	}
	if out.ClientID != id {
		return nil, errors.New("sidecar: the control plane answered for another client")
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
