package controlplane

import (
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/controlplane/cloud"
	"github.com/tcauth/tcauth/controlplane/controlplanetest/fakegithub"
)

// githubEnv is a control plane whose cloud configuration has the GitHub
// App "testapp" of a fake GitHub, installed on the organization testorg
// (repositories bar, baz) and the user testuser (bar).
func githubEnv(t *testing.T) (*testEnv, *fakegithub.FakeGitHub) {
	t.Helper()
	gh := fakegithub.New("unused", "unused")
	t.Cleanup(gh.Close)
	gh.SetClock(func() time.Time { return frozen })
	key := gh.AddApp(77, map[string]string{"contents": "write", "actions": "read"})
	gh.Install(77, "testorg", "Organization", "bar", "baz")
	gh.Install(77, "testuser", "User", "bar")
	e := newEnv(t, func(c *Config) {
		c.Cloud = &cloud.Config{GitHub: &cloud.GitHubConfig{APIURL: gh.URL,
			Apps: map[string]cloud.GitHubApp{"testapp": {AppID: 77, PrivateKey: key}}}}
	})
	return e, gh
}

func repoTokenBody(perms, repos string) opt {
	return withBody(`{"permissions":` + perms + `,"repositories":` + repos + `}`)
}

func TestGitHubRepoTokenEndpoint(t *testing.T) {
	e, gh := githubEnv(t)
	e.addClient("gh", "gh-token-0123456789abcdef", "auth:github-repo-token:testapp/testorg/bar:contents:read",
		"auth:github-repo-token:testapp/testuser/*")
	caller := as("gh", "gh-token-0123456789abcdef")
	// Owner and repositories are lower-cased for the scopes and for GitHub.
	for _, owner := range []string{"testorg", "TeStOrG", "testuser"} {
		r := e.api("POST", "/github/testapp/"+owner+"/repo-token", caller, repoTokenBody(`{"contents":"read"}`, `["Bar"]`))
		expectStatus(t, r, 200)
		m := r.json(t)
		g, ok := gh.Grant(m["token"].(string))
		if !ok || strings.Join(g.Repositories, ",") != "bar" || g.Permissions["contents"] != "read" || len(m) != 2 ||
			m["expires"] != "2023-11-14T23:13:20.000Z" || !strings.EqualFold(g.Owner, owner) {
			t.Errorf("%s: reply %s, grant %+v", owner, r.body, g)
		}
	}
	// Every (permission, repository) needs its scope, at exactly its level.
	for name, body := range map[string]opt{
		"a repository without scope": repoTokenBody(`{"contents":"read"}`, `["bar","baz"]`),
		"a permission without scope": repoTokenBody(`{"contents":"read","actions":"read"}`, `["bar"]`),
		"a level above the scope's":  repoTokenBody(`{"contents":"write"}`, `["bar"]`),
	} {
		m := expectError(t, e.api("POST", "/github/testapp/testorg/repo-token", caller, body), 403, "InsufficientScopes")
		if !strings.Contains(m["message"].(string), "auth:github-repo-token:testapp/testorg/") {
			t.Errorf("%s: %s", name, m["message"])
		}
	}
	// A write scope does not give a read token (scopes are exact).
	e.addClient("gw", "gw-token-0123456789abcdef", "auth:github-repo-token:testapp/testorg/bar:contents:write")
	expectError(t, e.api("POST", "/github/testapp/testorg/repo-token", as("gw", "gw-token-0123456789abcdef"),
		repoTokenBody(`{"contents":"read"}`, `["bar"]`)), 403, "InsufficientScopes")
	// The scopes are checked before the app is looked up: no leak of which apps exist.
	expectError(t, e.api("POST", "/github/charlie/testorg/repo-token", caller, repoTokenBody(`{"contents":"read"}`, `["bar"]`)), 403, "InsufficientScopes")
	expectError(t, e.api("POST", "/github/testapp/testorg/repo-token", repoTokenBody(`{"contents":"read"}`, `["bar"]`)), 403, "InsufficientScopes")
	if r := gh.Refused(); len(r) != 0 {
		t.Errorf("the fake GitHub refused: %q", r)
	}
}

func TestGitHubRepoTokenEndpointErrors(t *testing.T) {
	e, gh := githubEnv(t)
	read := `{"contents":"read"}`
	for _, tc := range []struct {
		name, path, perms, repos string
		limit                    fakegithub.RateLimit
		status                   int
		code, msg                string
	}{
		{"unknown permission", "testapp/testorg", `{"invalid":"read"}`, `["bar"]`, 0, 400, "InputValidationError", ""},
		{"level the permission lacks", "testapp/testorg", `{"contents":"admin"}`, `["bar"]`, 0, 400, "InputValidationError", ""},
		{"workflows read", "testapp/testorg", `{"workflows":"read"}`, `["bar"]`, 0, 400, "InputValidationError", ""},
		{"no permission", "testapp/testorg", `{}`, `["bar"]`, 0, 400, "InputValidationError", ""},
		{"bad repository name", "testapp/testorg", read, `["a/b"]`, 0, 400, "InputValidationError", ""},
		{"no repository", "testapp/testorg", read, `[]`, 0, 400, "InputValidationError", ""},
		{"unknown app", "charlie/testorg", read, `["bar"]`, 0, 404, "ResourceNotFound", "Application with name `charlie` is not configured"},
		{"not installed", "testapp/nobody", read, `["bar"]`, 0, 404, "ResourceNotFound", "Application with name `testapp` is not installed on `nobody`"},
		{"repository outside the installation", "testapp/testuser", read, `["baz"]`, 0, 400, "InputError",
			"Github rejected the request: There is at least one repository that does not exist or is not accessible to the parent installation."},
		{"admin of repository_projects, not granted", "testapp/testorg", `{"repository_projects":"admin"}`, `["bar"]`, 0, 400, "InputError",
			"Github rejected the request: The permissions requested are not granted to this installation."},
		{"rate limit", "testapp/testorg", read, `["bar"]`, fakegithub.SecondaryLimit, 429, "TooManyRequests", "The application `testapp` is currently hitting rate limits"},
		{"429", "testapp/testorg", read, `["bar"]`, fakegithub.TooManyRequests, 429, "TooManyRequests", ""},
		{"plain 403", "testapp/testorg", read, `["bar"]`, fakegithub.Forbidden, 500, "InternalServerError", ""},
	} {
		gh.LimitRate(tc.limit)
		r := e.api("POST", "/github/"+tc.path+"/repo-token", asRoot(), repoTokenBody(tc.perms, tc.repos))
		m := expectError(t, r, tc.status, tc.code)
		if tc.msg != "" {
			expectMessage(t, m, tc.msg)
		}
		if strings.Contains(string(r.body), "PRIVATE KEY") || strings.Contains(string(r.body), "Bearer") {
			t.Errorf("%s: reply holds a secret:\n%s", tc.name, r.body)
		}
	}
	gh.LimitRate(fakegithub.NoLimit)
	r := e.api("POST", "/github/testapp/testorg/repo-token", asRoot(), repoTokenBody(read, `["bar"]`))
	expectStatus(t, r, 200)
	tok := r.json(t)["token"].(string)
	log := e.logBuf.String()
	for _, secret := range []string{tok, "PRIVATE KEY", "Bearer", "eyJ"} {
		if strings.Contains(log, secret) {
			t.Errorf("the log holds %q:\n%s", secret, log)
		}
	}
}
