package cloud

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tcauth/tcauth/controlplane/controlplanetest/fakegithub"
	"gopkg.in/yaml.v3"
)

const ghAppID = 4242

// ghWorld is a fake GitHub with the app "testapp" (contents and actions up
// to write) installed on the organization TestOrg (repos bar, baz), the
// user testuser (bar) and the organization renamed (which GitHub now
// reports as renamed-org), and a Service configured for it.
type ghWorld struct {
	gh   *fakegithub.FakeGitHub
	svc  *Service
	now  *time.Time
	log  *bytes.Buffer
	org  int64 // installation id on TestOrg
	pem  string
	opts Config // of svc
}

func newGHWorld(t *testing.T) *ghWorld {
	t.Helper()
	gh := fakegithub.New("unused-oauth-client", "unused-oauth-secret")
	t.Cleanup(gh.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("requests the fake GitHub refused: %q", gh.Refused())
		}
	})
	now := time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)
	w := &ghWorld{gh: gh, now: &now, log: &bytes.Buffer{}}
	gh.SetClock(func() time.Time { return *w.now })
	w.pem = gh.AddApp(ghAppID, map[string]string{"contents": "write", "actions": "write", "metadata": "read"})
	w.org = gh.Install(ghAppID, "TestOrg", "Organization", "bar", "baz")
	gh.Install(ghAppID, "testuser", "User", "bar")
	renamed := gh.Install(ghAppID, "renamed", "Organization", "bar")
	gh.RenameAccount(renamed, "renamed-org")
	w.opts = Config{
		GitHub: &GitHubConfig{APIURL: gh.URL + "/", Apps: map[string]GitHubApp{"testapp": {AppID: ghAppID, PrivateKey: w.pem}}},
		Now:    func() time.Time { return *w.now },
		Logger: slog.New(slog.NewTextHandler(w.log, nil)),
	}
	w.restart(t)
	return w
}

// restart builds a new Service (an empty installation cache).
func (w *ghWorld) restart(t *testing.T) {
	t.Helper()
	svc, err := New(w.opts)
	if err != nil {
		t.Fatal(err)
	}
	w.svc = svc
}

func (w *ghWorld) token(owner string, repos []string, perms map[string]string) (GitHubToken, error) {
	return w.svc.GitHubRepoToken(context.Background(), "testapp", owner, repos, perms)
}

func TestGitHubRepoToken(t *testing.T) {
	w := newGHWorld(t)
	for _, tc := range []struct {
		owner      string
		repos      []string
		perms      map[string]string
		grantOwner string
		grantRepos string
	}{
		{"testorg", []string{"bar"}, map[string]string{"contents": "read"}, "TestOrg", "bar"},
		{"TeStOrG", []string{"Bar", "BAZ"}, map[string]string{"contents": "write", "actions": "read"}, "TestOrg", "bar,baz"},
		{"testuser", []string{"bar"}, map[string]string{"metadata": "read"}, "testuser", "bar"},
	} {
		tok, err := w.token(tc.owner, tc.repos, tc.perms)
		if err != nil {
			t.Fatalf("%s %v: %v", tc.owner, tc.repos, err)
		}
		g, ok := w.gh.Grant(tok.Token)
		if !ok {
			t.Fatalf("%s: token %q was not issued by GitHub", tc.owner, tok.Token)
		}
		if g.Owner != tc.grantOwner || strings.Join(g.Repositories, ",") != tc.grantRepos || len(g.Permissions) != len(tc.perms) || !tok.Expires.Equal(g.ExpiresAt) {
			t.Errorf("%s: grant %+v, expires %v", tc.owner, g, tok.Expires)
		}
		for p, l := range tc.perms {
			if g.Permissions[p] != l {
				t.Errorf("%s: permission %s = %q, want %q", tc.owner, p, g.Permissions[p], l)
			}
		}
	}
	// The installation lookup is cached per lower-cased owner; a user's
	// lookup falls back from the organization endpoint.
	for path, want := range map[string]int{"/orgs/testorg/installation": 1, "/orgs/testuser/installation": 1, "/users/testuser/installation": 1, "/users/testorg/installation": 0} {
		if got := w.gh.Hits(path); got != want {
			t.Errorf("%s: %d requests, want %d", path, got, want)
		}
	}
	if r := w.gh.Refused(); len(r) != 0 {
		t.Errorf("the fake refused requests: %q", r)
	}
	// After an hour the installation is looked up again.
	*w.now = w.now.Add(githubInstallationTTL)
	if _, err := w.token("testorg", []string{"bar"}, map[string]string{"contents": "read"}); err != nil {
		t.Fatal(err)
	}
	if got := w.gh.Hits("/orgs/testorg/installation"); got != 2 {
		t.Errorf("after an hour: %d lookups, want 2", got)
	}
}

func TestGitHubRepoTokenErrors(t *testing.T) {
	w := newGHWorld(t)
	contents := map[string]string{"contents": "read"}
	for _, tc := range []struct {
		name  string
		app   string
		owner string
		repos []string
		perms map[string]string
		limit fakegithub.RateLimit
		kind  error
		msg   string
	}{
		{name: "unknown app", app: "charlie", owner: "testorg", kind: ErrNotFound, msg: "Application with name `charlie` is not configured"},
		{name: "not installed", owner: "notinstalled", kind: ErrNotFound, msg: "Application with name `testapp` is not installed on `notinstalled`"},
		{name: "repository not in the installation", owner: "testuser", repos: []string{"baz"}, kind: ErrInput,
			msg: "Github rejected the request: There is at least one repository that does not exist or is not accessible to the parent installation."},
		{name: "permission the app lacks", owner: "testorg", perms: map[string]string{"issues": "read"}, kind: ErrInput,
			msg: "Github rejected the request: The permissions requested are not granted to this installation."},
		{name: "level above the app's", owner: "testorg", perms: map[string]string{"metadata": "write"}, kind: ErrInput},
		{name: "renamed owner", owner: "renamed", kind: ErrInput,
			msg: "The application reported a different owner (`renamed-org`) than the requested one. Maybe the owner got renamed?"},
		{name: "primary rate limit", owner: "testorg", limit: fakegithub.PrimaryLimit, kind: ErrRateLimited, msg: "The application `testapp` is currently hitting rate limits"},
		{name: "secondary rate limit", owner: "testorg", limit: fakegithub.SecondaryLimit, kind: ErrRateLimited},
		{name: "secondary rate limit without header", owner: "testorg", limit: fakegithub.SecondaryNoHeader, kind: ErrRateLimited},
		{name: "429", owner: "testorg", limit: fakegithub.TooManyRequests, kind: ErrRateLimited},
		{name: "plain 403 is no rate limit", owner: "testorg", limit: fakegithub.Forbidden, kind: ErrUpstream, msg: "GitHub answered 403 when asked to find the installation"},
		{name: "bad permission", owner: "testorg", perms: map[string]string{"contents": "admin"}, kind: ErrInput},
		{name: "unknown permission", owner: "testorg", perms: map[string]string{"invalid": "read"}, kind: ErrInput},
		{name: "no permission", owner: "testorg", perms: map[string]string{}, kind: ErrInput},
		{name: "bad repository", owner: "testorg", repos: []string{"a/b"}, kind: ErrInput},
		{name: "no repository", owner: "testorg", repos: []string{}, kind: ErrInput},
		{name: "bad owner", owner: "a/b", kind: ErrInput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.restart(t)
			w.log.Reset()
			w.gh.LimitRate(tc.limit)
			defer w.gh.LimitRate(fakegithub.NoLimit)
			app, repos, perms := tc.app, tc.repos, tc.perms
			if app == "" {
				app = "testapp"
			}
			if repos == nil {
				repos = []string{"bar"}
			}
			if perms == nil {
				perms = contents
			}
			_, err := w.svc.GitHubRepoToken(context.Background(), app, tc.owner, repos, perms)
			if !errors.Is(err, tc.kind) || (tc.msg != "" && Message(err) != tc.msg) {
				t.Fatalf("error %v, want %v %q", err, tc.kind, tc.msg)
			}
			if strings.Contains(w.log.String(), "PRIVATE KEY") || strings.Contains(w.log.String(), "Bearer") {
				t.Errorf("log holds a secret:\n%s", w.log)
			}
		})
	}
	_, err := (&Service{}).GitHubRepoToken(context.Background(), "testapp", "o", []string{"r"}, contents)
	if !errors.Is(err, ErrNotConfigured) || !strings.Contains(Message(err), "no github section") {
		t.Errorf("unconfigured: %v", err)
	}
}

// A cached installation that was removed answers 404 once, and is then
// looked up again (the reference's behaviour).
func TestGitHubUninstalledAfterCaching(t *testing.T) {
	w := newGHWorld(t)
	contents := map[string]string{"contents": "read"}
	if _, err := w.token("testorg", []string{"bar"}, contents); err != nil {
		t.Fatal(err)
	}
	w.gh.Uninstall(w.org)
	if _, err := w.token("testorg", []string{"bar"}, contents); !errors.Is(err, ErrNotFound) {
		t.Fatalf("uninstalled: %v", err)
	}
	w.gh.Install(ghAppID, "TestOrg", "Organization", "bar")
	if _, err := w.token("testorg", []string{"bar"}, contents); err != nil {
		t.Fatalf("reinstalled: %v", err)
	}
	if got := w.gh.Hits("/orgs/testorg/installation"); got != 2 {
		t.Errorf("%d lookups, want 2", got)
	}
}

// The app JWT is what GitHub asks for: RS256 by the app's key, iss = app
// id, issued 60 s ago, expiring in 9 minutes (at most 10).
func TestGitHubAppJWT(t *testing.T) {
	w := newGHWorld(t)
	app := w.svc.github.apps["testapp"]
	raw, err := app.jwt(*w.now)
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return &app.key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(func() time.Time { return *w.now }))
	if err != nil {
		t.Fatal(err)
	}
	iat, _ := claims.GetIssuedAt()
	exp, _ := claims.GetExpirationTime()
	if claims["iss"] != "4242" || !iat.Equal(w.now.Add(-time.Minute)) || !exp.Equal(w.now.Add(9*time.Minute)) || len(claims) != 3 {
		t.Errorf("claims %v", claims)
	}
}

func TestGitHubConfigRefused(t *testing.T) {
	gh := fakegithub.New("c", "s")
	defer gh.Close()
	good := gh.AddApp(1, nil)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.pem")
	os.WriteFile(keyFile, []byte(good), 0o600)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}))
	for _, tc := range []struct {
		name string
		cfg  GitHubConfig
		ok   bool
	}{
		{"inline key", GitHubConfig{Apps: map[string]GitHubApp{"a": {AppID: 1, PrivateKey: good}}}, true},
		{"key file", GitHubConfig{Apps: map[string]GitHubApp{"a": {AppID: 1, PrivateKeyFile: keyFile}}}, true},
		{"escaped newlines", GitHubConfig{Apps: map[string]GitHubApp{"a": {AppID: 1, PrivateKey: strings.ReplaceAll(good, "\n", `\n`)}}}, true},
		{"enterprise URL", GitHubConfig{APIURL: "https://ghe.example/api/v3", Apps: map[string]GitHubApp{}}, true},
		{"both key sources", GitHubConfig{Apps: map[string]GitHubApp{"a": {AppID: 1, PrivateKey: good, PrivateKeyFile: keyFile}}}, false},
		{"no key", GitHubConfig{Apps: map[string]GitHubApp{"a": {AppID: 1}}}, false},
		{"missing key file", GitHubConfig{Apps: map[string]GitHubApp{"a": {AppID: 1, PrivateKeyFile: dir + "/nope"}}}, false},
		{"not PEM", GitHubConfig{Apps: map[string]GitHubApp{"a": {AppID: 1, PrivateKey: "SECRET-not-pem"}}}, false},
		{"EC key", GitHubConfig{Apps: map[string]GitHubApp{"a": {AppID: 1, PrivateKey: ecPEM}}}, false},
		{"no app id", GitHubConfig{Apps: map[string]GitHubApp{"a": {PrivateKey: good}}}, false},
		{"bad app name", GitHubConfig{Apps: map[string]GitHubApp{"a/b": {AppID: 1, PrivateKey: good}}}, false},
		{"bad URL", GitHubConfig{APIURL: "ftp://x", Apps: map[string]GitHubApp{}}, false},
		{"URL with query", GitHubConfig{APIURL: "https://x/?a=b", Apps: map[string]GitHubApp{}}, false},
	} {
		cfg := tc.cfg
		_, err := New(Config{GitHub: &cfg})
		if (err == nil) != tc.ok {
			t.Errorf("%s: error %v", tc.name, err)
		}
		if err != nil && (strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "PRIVATE KEY-----\n")) {
			t.Errorf("%s: error quotes the key: %v", tc.name, err)
		}
	}
}

// FuzzParseGitHubKey: any configured text is refused or parsed, without
// a panic, and an error never quotes it.
func FuzzParseGitHubKey(f *testing.F) {
	gh := fakegithub.New("c", "s")
	defer gh.Close()
	good := gh.AddApp(1, nil)
	for _, s := range []string{good, strings.ReplaceAll(good, "\n", `\n`), "", "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
		"-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		k, err := parseGitHubKey(text)
		if (k == nil) == (err == nil) {
			t.Fatalf("key %v, error %v", k != nil, err)
		}
		if err != nil && len(text) > 8 && strings.Contains(err.Error(), text) {
			t.Fatalf("error quotes the input: %v", err)
		}
	})
}

// TestREADMECloudConfigKeys decodes the configuration example of README
// §6 as the control plane decodes --cloud-config (unknown keys refused),
// so the list of every backend's keys stays true; and checks that it
// names every section of Config.
func TestREADMECloudConfigKeys(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, _ := strings.Cut(string(b), "### 6. ")
	_, block, ok := strings.Cut(sec, "```yaml\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("README §6 has no yaml block")
	}
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(block))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("README §6: %v", err)
	}
	if c.Websocktunnel == nil || c.Azure == nil || c.GCP == nil || c.Sentry == nil || c.AWS == nil || c.GitHub == nil {
		t.Errorf("README §6 misses a backend: %+v", c)
	}
	app := c.GitHub.Apps["my-app"]
	if c.GitHub.APIURL != DefaultGitHubAPIURL || app.AppID != 12345 || app.PrivateKeyFile == "" {
		t.Errorf("github section decoded as %+v", c.GitHub)
	}
}
