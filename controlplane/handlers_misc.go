package controlplane

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tcauth/tcauth/controlplane/cloud"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

func (s *Server) ping(c *call) error {
	return c.reply(protocol.PingResponse{Alive: true, Uptime: s.cfg.Now().Sub(s.started).Seconds()})
}

func (s *Server) lbheartbeat(c *call) error { return c.reply(struct{}{}) }

func (s *Server) version(c *call) error { return c.reply(s.cfg.Version) }

// heartbeat reports the Raft state (tcauth choice, docs/api.md §3): leader 200;
// follower 429 (200 with ?standbyok=true), like Vault's health endpoint, so
// a check can select the leader; no leader known (no quorum) 503.
func (s *Server) heartbeat(c *call) error {
	state := s.store.RaftState()
	leader := s.store.LeaderAPIAddress()
	body := map[string]any{"raftState": state, "appliedIndex": s.store.AppliedIndex(), "leaderKnown": leader != "" || s.store.IsLeader()}
	status := http.StatusOK
	switch {
	case s.store.IsLeader():
	case leader == "":
		status = http.StatusServiceUnavailable
		body["raftState"] = "no-quorum"
	case c.query["standbyok"] != "true":
		status = http.StatusTooManyRequests
	}
	b, err := marshalPretty(body)
	if err != nil {
		return err
	}
	c.writeJSON(status, b)
	return nil
}

// readiness reports whether this node can authenticate from current
// state (DESIGN.md "Health endpoints"): its state is caught up with the
// leader's commit index, a leader is known (writes and hand-offs need one)
// and its applied state holds this node's configured static clients. 200
// or 503 with Retry-After, and a body naming what is not ready. Liveness
// is /__lbheartbeat__; leader selection /__heartbeat__.
func (s *Server) readiness(c *call) error {
	caughtUp := s.caughtUp()
	leaderKnown := s.store.IsLeader() || s.store.LeaderAPIAddress() != ""
	staticOK := !s.needsStaticSync()
	var notReady []string
	if !caughtUp {
		notReady = append(notReady, "state not yet caught up with the leader's commit index")
	}
	if !leaderKnown {
		notReady = append(notReady, "no leader known")
	}
	if !staticOK {
		notReady = append(notReady, "the static clients of this node's configuration are not applied yet")
	}
	status := http.StatusOK
	if len(notReady) > 0 {
		status = http.StatusServiceUnavailable
		c.w.Header().Set("Retry-After", retryAfterSeconds)
	} else {
		notReady = []string{}
	}
	b, err := marshalPretty(map[string]any{
		"ready": len(notReady) == 0, "notReady": notReady, "raftState": s.store.RaftState(),
		"caughtUp": caughtUp, "leaderKnown": leaderKnown, "staticClientsApplied": staticOK,
		"appliedIndex": s.store.AppliedIndex(),
	})
	if err != nil {
		return err
	}
	c.writeJSON(status, b)
	return nil
}

func (s *Server) authenticateHawk(c *call) error {
	m := c.input.(map[string]any)
	req := protocol.Request{
		Method:   m["method"].(string),
		Resource: m["resource"].(string),
		Host:     m["host"].(string),
		Port:     int(m["port"].(float64)),
	}
	if v, ok := m["authorization"].(string); ok {
		req.Authorization = v
	}
	if v, ok := m["sourceIp"].(string); ok {
		req.SourceIP = v
	}
	res := s.authn.Authenticate(c.r.Context(), req)
	if res.Err != nil {
		s.metrics.ops.observeAuth(res)
		return res.Err
	}
	// "auth-failed" is a 200 here, so fail's hand-off does not see it: a
	// node that is catching up lets the leader judge (or answers 503).
	if res.Status == protocol.StatusFailed && c.handOff() {
		return nil
	}
	s.metrics.ops.observeAuth(res) // after the hand-off: counted once, where it is decided
	if b, ok := appendSuccessPretty(make([]byte, 0, 256), res); ok {
		c.writeJSON(http.StatusOK, b)
		return nil
	}
	return c.reply(res)
}

// testerSource is the single fake client of testAuthenticate(Get):
// tester / no-secret with the given scopes and no expiry (docs/protocol.md §12).
type testerSource struct{ scopes []string }

func (t testerSource) Client(_ context.Context, id string) (*protocol.Client, error) {
	if id != "tester" {
		return nil, protocol.ErrClientNotFound
	}
	return &protocol.Client{ClientID: "tester", AccessToken: "no-secret", ExpandedScopes: t.scopes}, nil
}

// testAuthenticateCommon authenticates the request itself against the
// tester client (identity expander: the reference's sorted merge keeps the
// caller's order, e.g. [assume:anonymous, test:*, b:x, a:x]) and checks
// {AllOf: required}.
func (s *Server) testAuthenticateCommon(c *call, clientScopes, required []string, literalPlaceholders bool) error {
	authn := &protocol.Authenticator{Clients: testerSource{clientScopes}, Now: s.cfg.Now}
	res, err := s.authenticateWith(c, authn)
	if err != nil {
		return err
	}
	c.auth = res
	expr := scopeengine.AllOfScopes(required...)
	if err := checkScopes(res, expr); err != nil {
		if literalPlaceholders {
			// [quirk] copied: the reference's testAuthenticateGet reports
			// the 403 without filling in its placeholders (vector
			// testauth.get_bewit_authorizedScopes).
			return apiErr(protocol.CodeInsufficientScopes, "Client ID "+res.ClientID+" does not have sufficient scopes and is missing the following scopes:\n\n```\n{{unsatisfied}}\n```\n\nThis request requires the client to satisfy the following scope expression:\n\n```\n{{required}}\n```")
		}
		return err
	}
	return c.reply(protocol.TestAuthenticateResponse{ClientID: c.clientID(), Scopes: res.Scopes})
}

func (s *Server) testAuthenticate(c *call) error {
	m := c.input.(map[string]any)
	return s.testAuthenticateCommon(c, stringList(m["clientScopes"]), stringList(m["requiredScopes"]), false)
}

func (s *Server) testAuthenticateGet(c *call) error {
	return s.testAuthenticateCommon(c, []string{"test:*", "auth:create-client:test:*"}, []string{"test:authenticate-get"}, true)
}

// awsS3Credentials: temporary S3 credentials from STS, after the scope
// check (docs/api.md §4). The prefix checks (no leading "/") and the 404 for a
// bucket not configured come from package cloud, mapped by cloudErr.
func (s *Server) awsS3Credentials(c *call) error {
	bucket, prefix := c.params["bucket"], c.params["prefix"]
	readOnly := c.params["level"] == "read-only"
	if err := c.authorize(map[string]any{"levelIsReadOnly": readOnly, "bucket": bucket, "prefix": prefix}); err != nil {
		return err
	}
	cr, err := s.cloud.svc.AWSS3Credentials(c.r.Context(), bucket, prefix, readOnly)
	if err != nil {
		return cloudErr(err, protocol.CodeInputError)
	}
	if c.query["format"] == "iam-role-compat" {
		// The shape of the EC2 instance metadata service's credentials,
		// which SDKs know how to refresh from.
		return c.reply(struct {
			Code            string `json:"Code"`
			Type            string `json:"Type"`
			LastUpdated     string `json:"LastUpdated"`
			AccessKeyID     string `json:"AccessKeyId"`
			SecretAccessKey string `json:"SecretAccessKey"`
			Token           string `json:"Token"`
			Expiration      string `json:"Expiration"`
		}{"Success", "AWS-HMAC", protocol.FormatTime(s.cfg.Now()), cr.AccessKeyID, cr.SecretAccessKey, cr.SessionToken, protocol.FormatTime(cr.Expires)})
	}
	type credentials struct {
		AccessKeyID     string `json:"accessKeyId"`
		SecretAccessKey string `json:"secretAccessKey"`
		SessionToken    string `json:"sessionToken"`
	}
	return c.reply(struct {
		Credentials credentials `json:"credentials"`
		Expires     string      `json:"expires"`
	}{credentials{cr.AccessKeyID, cr.SecretAccessKey, cr.SessionToken}, protocol.FormatTime(cr.Expires)})
}

func (s *Server) azureAccounts(c *call) error {
	return c.reply(map[string]any{"accounts": s.cloud.svc.AzureAccounts()})
}

// azureTables and azureContainers list one page; continuationToken is
// Azure's own marker, checked by the cloud package (the reference's old
// route pattern would refuse real markers).
func (s *Server) azureTables(c *call) error {
	tables, next, err := s.cloud.svc.AzureTables(c.r.Context(), c.params["account"], c.query["continuationToken"])
	if err != nil {
		return cloudErr(err, protocol.CodeInputError)
	}
	return c.reply(azurePage("tables", tables, next))
}

func (s *Server) azureContainers(c *call) error {
	containers, next, err := s.cloud.svc.AzureContainers(c.r.Context(), c.params["account"], c.query["continuationToken"])
	if err != nil {
		return cloudErr(err, protocol.CodeInputError)
	}
	return c.reply(azurePage("containers", containers, next))
}

func azurePage(member string, names []string, next string) map[string]any {
	if names == nil {
		names = []string{}
	}
	out := map[string]any{member: names}
	if next != "" {
		out["continuationToken"] = next
	}
	return out
}

// azureSAS answers azureTableSAS and azureContainerSAS: {sas, expiry}; a
// read-write SAS creates the table or container first, as the reference.
func (s *Server) azureSAS(c *call) error {
	table, container := c.params["table"], c.params["container"]
	resource := table + container
	readOnly := c.params["level"] == "read-only"
	params := map[string]any{"levelIsReadOnly": readOnly, "account": c.params["account"], "table": resource, "container": resource}
	if err := c.authorize(params); err != nil {
		return err
	}
	var (
		sas    string
		expiry time.Time
		err    error
	)
	if table != "" {
		sas, expiry, err = s.cloud.svc.AzureTableSAS(c.r.Context(), c.params["account"], table, readOnly)
	} else {
		sas, expiry, err = s.cloud.svc.AzureContainerSAS(c.r.Context(), c.params["account"], container, readOnly)
	}
	if err != nil {
		return cloudErr(err, protocol.CodeInputError)
	}
	return c.reply(map[string]string{"sas": sas, "expiry": protocol.FormatTime(expiry)})
}

// githubRepoTokenSchema is the reference's github-repo-token-request:
// GitHub's repository permissions, each with the levels GitHub allows for
// it (cloud.GitHubPermissionLevels), no other member; 1–500 repositories
// (duplicates allowed, as there).
var githubRepoTokenSchema = func() *schema {
	perms := &schema{typ: "object", props: map[string]*schema{}, minProps: 1}
	for _, name := range slices.Sorted(maps.Keys(cloud.GitHubPermissionLevels)) {
		perms.props[name] = &schema{typ: "string", enum: cloud.GitHubPermissionLevels[name]}
		perms.order = append(perms.order, name)
	}
	s := object([]string{"permissions", "repositories"},
		"permissions", perms,
		"repositories", &schema{typ: "array", minItems: 1, maxItems: 500, items: &schema{typ: "string", pattern: repoNameRe}},
	)
	schemaIDs[s] = "github-repo-token-request"
	return s
}()

// githubRepoPerms is the template's repoPerms: "<repo>:<permission>:<level>",
// permission by permission, then repository, as the reference (whose
// permissions keep the body's order; here they are sorted by name). repos
// are lower-cased already. Shared with the explainer (explain.go).
func githubRepoPerms(perms map[string]string, repos []string) []any {
	var repoPerms []any
	for _, p := range slices.Sorted(maps.Keys(perms)) {
		for _, repo := range repos {
			repoPerms = append(repoPerms, repo+":"+p+":"+perms[p])
		}
	}
	return repoPerms
}

func (s *Server) githubRepoToken(c *call) error {
	m := c.input.(map[string]any)
	owner := strings.ToLower(c.params["owner"])
	perms := map[string]string{}
	for k, v := range m["permissions"].(map[string]any) {
		perms[k] = v.(string)
	}
	repos := stringList(m["repositories"])
	for i, r := range repos {
		repos[i] = strings.ToLower(r)
	}
	repoPerms := githubRepoPerms(perms, repos)
	if err := c.authorize(map[string]any{"appName": c.params["appName"], "owner": owner, "repoPerms": repoPerms}); err != nil {
		return err
	}
	tok, err := s.cloud.svc.GitHubRepoToken(c.r.Context(), c.params["appName"], owner, repos, perms)
	if err != nil {
		return cloudErr(err, protocol.CodeInputError)
	}
	return c.reply(struct {
		Token   string `json:"token"`
		Expires string `json:"expires"`
	}{tok.Token, protocol.FormatTime(tok.Expires)})
}

// watchChanges is the sidecars' change feed (DESIGN.md): a long poll keyed
// by Raft index, answered from this node's applied state.
func (s *Server) watchChanges(c *call) error {
	after, _ := strconv.ParseUint(c.query["after"], 10, 64)
	wait := s.cfg.ChangesMaxWait
	if v := c.query["wait"]; v != "" {
		n, _ := strconv.Atoi(v)
		wait = min(time.Duration(n)*time.Second, s.cfg.ChangesMaxWait)
	}
	ctx, cancel := context.WithTimeout(c.r.Context(), wait)
	defer cancel()
	changes, index, err := s.store.Changes(ctx, after)
	if errors.Is(err, context.DeadlineExceeded) {
		changes, index, err = nil, max(after, s.store.AppliedIndex()), nil
	}
	if errors.Is(err, ErrCompacted) {
		return &protocol.APIError{Code: protocol.CodeResourceExpired, Status: http.StatusGone,
			Message: "The change feed no longer reaches back to index " + strconv.FormatUint(after, 10) + "; reload all clients and roles and continue from the current index."}
	}
	if err != nil {
		return err
	}
	if changes == nil {
		changes = []Change{}
	}
	c.w.Header().Set(appliedIndexHeader, strconv.FormatUint(index, 10))
	return c.reply(struct {
		Index   uint64   `json:"index"`
		Changes []Change `json:"changes"`
	}{index, changes})
}

// clientCredentials gives a sidecar what it needs to verify a client's
// requests locally (DESIGN.md). Answered from local state; the applied
// index says how fresh it is.
func (s *Server) clientCredentials(c *call) error {
	id := c.params["clientId"]
	rec, ok := s.store.Client(id)
	if !ok {
		return errClientNotFound()
	}
	token, ok, err := s.store.AccessToken(id)
	if err != nil {
		return err
	}
	if !ok {
		return errClientNotFound()
	}
	c.w.Header().Set(appliedIndexHeader, strconv.FormatUint(s.store.AppliedIndex(), 10))
	expires := ""
	if !rec.Expires.IsZero() {
		expires = protocol.FormatTime(rec.Expires)
	}
	return c.reply(struct {
		ClientID       string   `json:"clientId"`
		AccessToken    string   `json:"accessToken"`
		Scopes         []string `json:"scopes"`
		ExpandedScopes []string `json:"expandedScopes"`
		Expires        string   `json:"expires"`
		Disabled       bool     `json:"disabled"`
		LastModified   string   `json:"lastModified"`
	}{id, token, nonNilStrings(rec.Scopes), nonNilStrings(s.clients.expand(rec)), expires, rec.Disabled, protocol.FormatTime(rec.LastModified)})
}

var lastUsedSchema = func() *schema {
	s := object([]string{"lastUsed"}, "lastUsed", &schema{typ: "object", props: map[string]*schema{}, addl: &schema{typ: "string", format: "date-time"}})
	schemaIDs[s] = "tcauth-last-used-request"
	return s
}()
