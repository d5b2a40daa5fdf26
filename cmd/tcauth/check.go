package main

// `tcauth check`: a post-deployment verification that uses a live
// deployment the way a user does (the reference ships a script with the
// same purpose to check a staging deployment before promotion). It is
// safe to run against production: everything it creates is named under
// checkPrefix, the client expires within the hour with
// deleteOnExpiration, and both client and role are deleted at the end,
// also after a failed step or Ctrl-C.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// checkPrefix starts the name of everything `tcauth check` creates; the
// checking client's scopes (checkerScopes) are limited to it.
const checkPrefix = "tcauth-check/"

// checkMaxTTL bounds the lifetime of the throwaway client.
const checkMaxTTL = time.Hour

// checkerScopes are the scopes the checking client needs, at the least.
var checkerScopes = []string{
	"auth:create-client:" + checkPrefix + "*",
	"auth:delete-client:" + checkPrefix + "*",
	"auth:reset-access-token:" + checkPrefix + "*",
	"auth:create-role:" + checkPrefix + "*",
	"auth:delete-role:" + checkPrefix + "*",
	"auth:expand-scopes",
	// currentScopes, with which the throwaway client looks at itself.
	"auth:current-scopes",
	// The throwaway client gets assume:tcauth-check/<id>/abc and the role
	// tcauth-check/<id>/* grants tcauth-check/<id>/<..>/*: a caller may
	// only give what it holds.
	"assume:" + checkPrefix + "*",
	checkPrefix + "*",
}

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "verify a running deployment as a user would (health, a throwaway client and role, every way to authenticate, revocation), then clean up",
		Description: "Uses TASKCLUSTER_ROOT_URL (or --root-url), TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN.\n" +
			"Everything it creates is named " + checkPrefix + "<random>/…, the client expires within --ttl (at most 1h)\n" +
			"with deleteOnExpiration, and the client and role are deleted at the end, also after a failure.\n" +
			"Exit status: 0 all checks passed, 1 a check failed, 2 bad usage.\n\n" +
			"The checking client needs these scopes (plus any --scope):\n  " + strings.Join(checkerScopes, "\n  "),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root-url", Usage: "the deployment's root URL (default $TASKCLUSTER_ROOT_URL)"},
			&cli.StringFlag{Name: "sidecar", Usage: "base URL of a sidecar to call through with the throwaway client"},
			&cli.StringFlag{Name: "sidecar-path", Value: "/", Usage: "path called through --sidecar; its route must admit the throwaway client (authenticated: true, or scopes given with --scope)"},
			&cli.StringSliceFlag{Name: "scope", Usage: "extra scope for the throwaway client, e.g. what --sidecar-path needs (the checking client must hold it; repeatable)"},
			durationFlag("ttl", checkMaxTTL, "lifetime of the throwaway client (at most 1h)"),
			durationFlag("wait", 30*time.Second, "how long to wait for a change (new client, revoked token) to reach every cache"),
			&cli.BoolFlag{Name: "json", Usage: "print the results as JSON"},
		},
		Action: runCheckCommand,
	}
}

func runCheckCommand(c *cli.Context) error {
	r, err := newCheckRun(c)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	r.run(ctx)
	if c.Bool("json") {
		err = r.printJSON(c.App.Writer)
	} else {
		err = r.printTable(c.App.Writer)
	}
	if err != nil {
		return err
	}
	if !r.ok() {
		return errNo
	}
	return nil
}

// checkRun is one run of the checks and its results.
type checkRun struct {
	root              string
	admin             *tcclient.Client // the checking client's credentials
	sidecar, path     string
	extra             []string
	ttl, wait         time.Duration
	hc                *http.Client
	id                string // random part of the names
	clientID, roleID  string
	creds, staleCreds protocol.Credentials // throwaway client: current and revoked token
	rows              []checkRow
	failed            map[string]bool // checks that failed, for dependants to skip
}

// checkRow is one line of the result table.
type checkRow struct {
	Check  string `json:"check"`
	Result string `json:"result"` // ok, FAIL or skip
	Millis int64  `json:"ms"`
	Detail string `json:"detail,omitempty"`
}

func newCheckRun(c *cli.Context) (*checkRun, error) {
	if c.NArg() > 0 {
		return nil, badInput("check takes no arguments (got %q)", c.Args().First())
	}
	root := c.String("root-url")
	if root == "" {
		root = os.Getenv("TASKCLUSTER_ROOT_URL")
	}
	if err := checkHTTPURL("--root-url (or TASKCLUSTER_ROOT_URL)", root); err != nil {
		return nil, err
	}
	creds, err := envCredentials()
	if err != nil {
		return nil, err
	}
	r := &checkRun{root: strings.TrimRight(root, "/"), sidecar: strings.TrimRight(c.String("sidecar"), "/"),
		path: c.String("sidecar-path"), extra: c.StringSlice("scope"), ttl: flagDuration(c, "ttl"),
		wait: flagDuration(c, "wait"), hc: &http.Client{Timeout: 15 * time.Second}, failed: map[string]bool{}}
	if r.sidecar != "" {
		if err := checkHTTPURL("--sidecar", r.sidecar); err != nil {
			return nil, err
		}
	} else if c.IsSet("sidecar-path") {
		return nil, badInput("--sidecar-path needs --sidecar")
	}
	if !strings.HasPrefix(r.path, "/") {
		return nil, badInput("--sidecar-path %q must start with /", r.path)
	}
	if r.ttl <= 0 || r.ttl > checkMaxTTL {
		return nil, badInput("--ttl must be positive and at most %s (got %s)", checkMaxTTL, r.ttl)
	}
	if r.wait <= 0 {
		return nil, badInput("--wait must be positive")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	r.id = hex.EncodeToString(b)
	r.clientID = checkPrefix + r.id + "/client"
	r.roleID = checkPrefix + r.id + "/*"
	r.admin = &tcclient.Client{RootURL: r.root, Credentials: &creds, HTTPClient: r.hc}
	return r, nil
}

func checkHTTPURL(what, s string) error {
	u, err := url.Parse(s)
	if s == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return badInput("%s must be an http(s) URL (got %q)", what, s)
	}
	return nil
}

// step runs one check unless a check it depends on failed, and records it.
func (r *checkRun) step(name string, deps []string, f func() (string, error)) {
	for _, d := range deps {
		if r.failed[d] {
			r.rows = append(r.rows, checkRow{Check: name, Result: "skip", Detail: "needs " + d})
			r.failed[name] = true
			return
		}
	}
	start := time.Now()
	detail, err := f()
	row := checkRow{Check: name, Result: "ok", Millis: time.Since(start).Milliseconds(), Detail: detail}
	if err != nil {
		row.Result, row.Detail = "FAIL", describeError(err)
		r.failed[name] = true
	}
	r.rows = append(r.rows, row)
}

func (r *checkRun) ok() bool {
	for _, row := range r.rows {
		if row.Result == "FAIL" {
			return false
		}
	}
	return true
}

// run runs every check; what it created is deleted on the way out, with
// a context of its own so that Ctrl-C still cleans up.
func (r *checkRun) run(ctx context.Context) {
	r.healthChecks(ctx)
	created := r.createChecks(ctx)
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r.cleanup(cctx, created)
	}()
	r.authChecks(ctx)
	r.revocationChecks(ctx)
}

// scopes returns the throwaway client's own names for scopes: the role
// expands assume:<prefix><id>/abc to <prefix><id>/abc/*.
func (r *checkRun) assumeScope() string { return "assume:" + checkPrefix + r.id + "/abc" }
func (r *checkRun) roleScope() string   { return checkPrefix + r.id + "/<..>/*" }
func (r *checkRun) granted(s string) string {
	return checkPrefix + r.id + "/abc/" + s
}

// poll retries f until it succeeds or r.wait has passed: a new client or a
// reset token takes a moment to reach every node's and sidecar's cache.
func (r *checkRun) poll(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(r.wait)
	for {
		err := f()
		if err == nil || !retryable(err) || !time.Now().Before(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// retryable: what a change still on its way looks like (401 while a new
// client is unknown to a node, 5xx, no answer). A 400, 403 or 404 will
// not go away by waiting.
func retryable(err error) bool {
	var apiErr *tcclient.Error
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode == http.StatusUnauthorized || apiErr.StatusCode >= 500
	}
	return true
}

func containsAll(have []string, want ...string) error {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return fmt.Errorf("scopes %q lack %q", have, w)
		}
	}
	return nil
}
