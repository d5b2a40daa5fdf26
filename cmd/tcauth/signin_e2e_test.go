package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/controlplane"
	"github.com/tcauth/tcauth/controlplane/controlplanetest"
	"github.com/tcauth/tcauth/controlplane/login"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/prototest"
	"github.com/tcauth/tcauth/protocol/tcclient"
	"github.com/tcauth/tcauth/raftstore"
)

// TestSigninEndToEnd runs the command's core against a real single-node
// control plane with the login service and the web UI (a fake identity
// provider signs the user in): the "browser" is an HTTP client with the
// user's session cookie that follows the printed URL, submits the
// confirmation form and follows the redirect to the listener; the
// printed credentials must then work (the test calls auth.currentScopes
// with them, and --check with them in the environment exits 0).
func TestSigninEndToEnd(t *testing.T) {
	cp := newSigninControlPlane(t)
	browser := cp.signedInBrowser(t, "alice", "fake-group:devs")
	var stdout bytes.Buffer
	stderr := &prototest.SyncBuffer{}
	o := signinOptions{RootURL: cp.URL, Scopes: []string{"auth:current-scopes", "queue:create-task:*", "hooks:*"},
		Expires: "1h", Name: "cli", Timeout: 30 * time.Second, Stdout: &stdout, Stderr: stderr}
	browserDone := make(chan error, 1)
	o.OpenBrowser = func(u string) error {
		go func() { browserDone <- browser.complete(u) }()
		return nil
	}
	if err := runSignin(context.Background(), o); err != nil {
		t.Fatalf("signin: %v\nstderr: %s", err, stderr.String())
	}
	if err := <-browserDone; err != nil {
		t.Fatal(err)
	}
	printed, _ := waitPrintedURL(t, stderr)
	if !strings.HasPrefix(printed, cp.URL+"/auth/clients/create?scope=auth%3Acurrent-scopes&scope=queue%3Acreate-task%3A%2A&scope=hooks%3A%2A&name=cli-") {
		t.Errorf("printed URL %s", printed)
	}
	env := parseExports(t, stdout.String())
	if !regexp.MustCompile(`^fake/alice/cli-[A-Za-z0-9_-]{6}$`).MatchString(env["TASKCLUSTER_CLIENT_ID"]) || env["TASKCLUSTER_ROOT_URL"] != cp.URL {
		t.Fatalf("printed %q", stdout.String())
	}
	c := &tcclient.Client{RootURL: env["TASKCLUSTER_ROOT_URL"], Credentials: &protocol.Credentials{
		ClientID: env["TASKCLUSTER_CLIENT_ID"], AccessToken: env["TASKCLUSTER_ACCESS_TOKEN"]}}
	var cur struct{ Scopes []string }
	if err := c.Do(context.Background(), "GET", "/scopes/current", nil, nil, &cur); err != nil {
		t.Fatal(err)
	}
	// hooks:* was asked for but alice does not hold it: not granted.
	if strings.Join(cur.Scopes, " ") != "assume:anonymous auth:current-scopes queue:create-task:*" {
		t.Errorf("currentScopes of the new client: %q", cur.Scopes)
	}
	var out bytes.Buffer
	check := signinOptions{RootURL: cp.URL, Check: true, Stdout: &out, Stderr: &prototest.SyncBuffer{},
		Getenv: func(k string) string { return env[k] }}
	if err := runSignin(context.Background(), check); err != nil || out.Len() != 0 {
		t.Errorf("--check with the new credentials in the environment: %v, printed %q", err, out.String())
	}
}

// TestSigninEndToEndCheckFails: --check (the official semantics: "are
// you already signed in?") signs nothing in and exits 1 without
// credentials in the environment, with a wrong token, and with a client
// that has no scopes (alice asked only for scopes she does not hold).
func TestSigninEndToEndCheckFails(t *testing.T) {
	cp := newSigninControlPlane(t)
	browser := cp.signedInBrowser(t, "alice", "fake-group:devs")
	var stdout bytes.Buffer
	o := signinOptions{RootURL: cp.URL, Scopes: []string{"hooks:*"}, Expires: "1h", Name: "cli",
		Timeout: 30 * time.Second, Stdout: &stdout, Stderr: &prototest.SyncBuffer{}}
	o.OpenBrowser = func(u string) error { go browser.complete(u); return nil }
	if err := runSignin(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	scopeless := parseExports(t, stdout.String())
	wrongToken := map[string]string{"TASKCLUSTER_CLIENT_ID": scopeless["TASKCLUSTER_CLIENT_ID"], "TASKCLUSTER_ACCESS_TOKEN": "not-the-token"}
	for name, env := range map[string]map[string]string{"no credentials": {}, "wrong token": wrongToken, "no scopes": scopeless} {
		var out bytes.Buffer
		opened := false
		check := signinOptions{RootURL: cp.URL, Check: true, Stdout: &out, Stderr: &prototest.SyncBuffer{},
			Getenv: func(k string) string { return env[k] }, OpenBrowser: func(string) error { opened = true; return nil }}
		err := runSignin(context.Background(), check)
		if !errors.Is(err, ErrNoScopes) || exitCode(err) != 1 || out.Len() != 0 || opened {
			t.Errorf("%s: --check gave %v (exit %d), printed %q, browser opened %v", name, err, exitCode(err), out.String(), opened)
		}
	}
}

// parseExports reads the printed export lines back (what eval does).
func parseExports(t *testing.T, out string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^export (TASKCLUSTER_[A-Z_]+)='([^']*)'$`).FindAllStringSubmatch(out, -1) {
		env[m[1]] = m[2]
	}
	if len(env) != 3 {
		t.Fatalf("want 3 export lines, got %q", out)
	}
	return env
}

// signinControlPlane is a single-node control plane with the login
// service (issuer static/login-issuer) and web UI, behind httptest.
type signinControlPlane struct {
	URL  string
	fake *controlplanetest.FakeStrategy
}

func newSigninControlPlane(t *testing.T) *signinControlPlane {
	t.Helper()
	fake := controlplanetest.NewFakeStrategy()
	n := controlplanetest.Start(t, raftstore.NewTestCluster(t, 1), func(cfg *controlplane.Config) {
		cfg.StaticClients = append(cfg.StaticClients, controlplanetest.RootClient())
	}, fake)[0]
	cp := &signinControlPlane{URL: n.URL, fake: fake}
	root := &tcclient.Client{RootURL: n.URL, Credentials: &protocol.Credentials{ClientID: controlplanetest.RootID, AccessToken: controlplanetest.RootToken}}
	ctx := t.Context()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		// The roles a deployment gives its users; a write also proves a leader.
		err := root.Do(ctx, "PUT", "/roles/"+tcclient.PathSegment("login-identity:*"), nil, map[string]any{"description": "every user",
			"scopes": []string{"auth:create-client:<..>/*", "auth:update-client:<..>/*", "auth:reset-access-token:<..>/*", "auth:get-client:<..>/*", "auth:current-scopes"}}, nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("control plane not ready: %v", err)
		}
	}
	if err := root.Do(ctx, "PUT", "/roles/"+tcclient.PathSegment("fake-group:devs"), nil, map[string]any{"description": "devs",
		"scopes": []string{"queue:*"}}, nil); err != nil {
		t.Fatal(err)
	}
	return cp
}

// signinBrowser is a browser: a cookie jar, redirects not followed (each
// step is checked).
type signinBrowser struct {
	cp *signinControlPlane
	hc *http.Client
}

// signedInBrowser signs subject in through the login service's real
// redirect flow with the fake provider.
func (cp *signinControlPlane) signedInBrowser(t *testing.T, subject string, roles ...string) *signinBrowser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &signinBrowser{cp: cp, hc: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	cp.fake.AddUser(subject, login.User{IdentityID: subject, Roles: roles})
	res, _, err := b.do("GET", cp.URL+"/login/fake?mode=redirect&returnTo=%2Fprofile", nil)
	if err != nil || res.StatusCode != http.StatusFound {
		t.Fatalf("sign-in start: %v %v", res, err)
	}
	loc, _ := url.Parse(res.Header.Get("Location"))
	res, _, err = b.do("GET", cp.URL+"/login/fake/callback?"+url.Values{"code": {subject}, "state": {loc.Query().Get("state")}}.Encode(), nil)
	// The login service ends a redirect-mode sign-in with a page that
	// navigates on (so the SameSite=Strict session cookie comes along);
	// the session cookie is set by then.
	if err != nil || res.StatusCode/100 != 2 && res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in callback: %v %v", res, err)
	}
	return b
}

func (b *signinBrowser) do(method, target string, form url.Values) (*http.Response, string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		return nil, "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", b.cp.URL)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	res, err := b.hc.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	return res, string(data), err
}

var hiddenInputRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// complete does what the user does: open the URL, confirm, and let the
// browser follow the redirect to the callback (localhost, as printed).
func (b *signinBrowser) complete(signinURL string) error {
	res, body, err := b.do("GET", signinURL, nil)
	if err != nil || res.StatusCode != 200 {
		return errors.Join(err, errors.New("confirmation page: "+res.Status+"\n"+body))
	}
	form := url.Values{}
	for _, m := range hiddenInputRe.FindAllStringSubmatch(body, -1) {
		form.Add(m[1], strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(m[2]))
	}
	res, _, err = b.do("POST", b.cp.URL+"/auth/clients/create", form)
	if err != nil || res.StatusCode != http.StatusSeeOther {
		return errors.Join(err, errors.New("confirm: "+res.Status))
	}
	res, body, err = b.do("GET", res.Header.Get("Location"), nil)
	if err != nil || res.StatusCode != 200 || !strings.Contains(body, "successfully signed in") {
		return errors.Join(err, errors.New("callback: "+res.Status+" "+body))
	}
	return nil
}
