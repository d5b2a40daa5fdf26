package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcauth/tcauth/controlplane/cloud"
)

// fakeCloudProviders answers the provider calls of gcpCredentials (Google's
// token endpoint and IAM Credentials) and sentryDSN (Sentry's /api/0/) in
// their documented shapes, for the handler mapping. The exact requests
// are checked by package cloud's own fakes; this one can also fail every
// call with a body full of secrets, which must not reach a reply or log.
type fakeCloudProviders struct {
	srv     *httptest.Server
	mu      sync.Mutex
	fail    bool
	deleted []string
}

const (
	fakeOwnBearer   = "ya29.own-bearer-SECRET"
	fakeSentryToken = "sntrys_SECRET_token_0123456789"
	fakeSentrySec   = "https://pub1:SECRETKEY1@o1.ingest.example/app"
)

func newFakeCloudProviders(t *testing.T) *fakeCloudProviders {
	f := &fakeCloudProviders{}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCloudProviders) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if f.fail && r.URL.Path != "/token" {
		w.WriteHeader(500)
		io.WriteString(w, `{"error":{"code":500,"message":"`+fakeOwnBearer+` `+fakeSentryToken+`","status":"INTERNAL"}}`)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/token":
		io.WriteString(w, `{"access_token":"`+fakeOwnBearer+`","token_type":"Bearer","expires_in":3600}`)
	case strings.HasSuffix(p, ":generateAccessToken") && r.Header.Get("Authorization") == "Bearer "+fakeOwnBearer:
		io.WriteString(w, `{"accessToken":"ya29.minted","expireTime":"2023-11-14T23:13:20Z"}`)
	case r.Header.Get("Authorization") != "Bearer "+fakeSentryToken:
		w.WriteHeader(401)
	case p == "/api/0/projects/org/app/keys/" && r.Method == http.MethodGet:
		// A managed key with 30 h left (reused) and an expired one (purged).
		io.WriteString(w, `[{"id":"k1","name":"tc managed (expires-at:2023-11-16T04:13:20.000Z)","label":"tc managed (expires-at:2023-11-16T04:13:20.000Z)",
			"dsn":{"secret":"`+fakeSentrySec+`","public":"https://pub1@o1.ingest.example/app"}},
			{"id":"k0","name":"tc managed (expires-at:2023-11-13T00:00:00.000Z)","label":"tc managed (expires-at:2023-11-13T00:00:00.000Z)",
			"dsn":{"secret":"https://pub0:old@o1.ingest.example/app","public":"https://pub0@o1.ingest.example/app"}}]`)
	case p == "/api/0/organizations/org/projects/":
		io.WriteString(w, `[{"slug":"app","name":"app"}]`)
	case r.Method == http.MethodDelete && strings.HasPrefix(p, "/api/0/projects/org/app/keys/"):
		f.deleted = append(f.deleted, p)
		w.WriteHeader(204)
	default:
		w.WriteHeader(404)
	}
}

func (f *fakeCloudProviders) cloudConfig(t *testing.T) *cloud.Config {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	saKey, _ := json.Marshal(map[string]string{"type": "service_account", "client_email": "tcauth@granting.iam.gserviceaccount.com",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "token_uri": f.srv.URL + "/token"})
	return &cloud.Config{
		Websocktunnel: &cloud.WebsocktunnelConfig{Secret: "test-secret"},
		GCP: &cloud.GCPConfig{Endpoint: f.srv.URL, AllowedProjects: map[string]cloud.GCPProject{
			"proj": {Credentials: string(saKey), AllowedServiceAccounts: []string{"worker@proj.iam.gserviceaccount.com"}}}},
		Sentry: &cloud.SentryConfig{Hostname: f.srv.URL, Organization: "org", InitialTeam: "team", AuthToken: fakeSentryToken, KeyPrefix: "tc"},
	}
}

func expectMessage(t *testing.T, m map[string]any, want string) {
	t.Helper()
	if msg, _ := m["message"].(string); !strings.HasPrefix(msg, want+"\n\n---") {
		t.Errorf("message %q, want %q", msg, want)
	}
}

func TestCloudEndpointsConfigured(t *testing.T) {
	f := newFakeCloudProviders(t)
	e := newEnv(t, func(c *Config) { c.Cloud = f.cloudConfig(t) })
	r := e.api("GET", "/gcp/credentials/proj/worker@proj.iam.gserviceaccount.com", asRoot())
	expectStatus(t, r, 200)
	jsonEq(t, r.body, map[string]any{"accessToken": "ya29.minted", "expireTime": "2023-11-14T23:13:20Z"})

	r = e.api("GET", "/sentry/app/dsn", asRoot())
	expectStatus(t, r, 200)
	jsonEq(t, r.body, map[string]any{"project": "app", "expires": "2023-11-16T04:13:20.000Z",
		"dsn": map[string]any{"secret": fakeSentrySec, "public": "https://pub1@o1.ingest.example/app"}})

	// The websocktunnel section signs exactly as the WebsocktunnelSecret shorthand.
	v := loadVectors(t)
	e.addClient("static/taskcluster/worker-manager", "wm-token-0123456789abcdef", "auth:websocktunnel-token:wst-audience/*")
	r = e.api("GET", "/websocktunnel/wst-audience/worker-1", as("static/taskcluster/worker-manager", "wm-token-0123456789abcdef"))
	expectStatus(t, r, 200)
	jsonEq(t, r.body, v.WST.Reply)

	m := expectError(t, e.api("GET", "/gcp/credentials/proj/admin@proj.iam.gserviceaccount.com", asRoot()), 400, "InvalidRequestArguments")
	expectMessage(t, m, "The service account admin@proj.iam.gserviceaccount.com isn't allowed")
	m = expectError(t, e.api("GET", "/gcp/credentials/other/worker@proj.iam.gserviceaccount.com", asRoot()), 404, "ResourceNotFound")
	expectMessage(t, m, "The projectId other is not configured")
	// Scopes are still checked first.
	expectError(t, e.api("GET", "/gcp/credentials/proj/worker@proj.iam.gserviceaccount.com"), 403, "InsufficientScopes")
	expectError(t, e.api("GET", "/sentry/app/dsn"), 403, "InsufficientScopes")
}

func TestCloudEndpointsUnconfigured(t *testing.T) {
	e := newEnv(t)
	for path, want := range map[string]string{
		"/gcp/credentials/proj/worker@proj.iam.gserviceaccount.com": "The projectId proj is not configured",
		"/sentry/app/dsn":                      "Sentry credentials not found",
		"/websocktunnel/wst-audience/worker-1": "websocktunnel is not configured in this deployment (no websocktunnel secret)",
	} {
		expectMessage(t, expectError(t, e.api("GET", path, asRoot()), 404, "ResourceNotFound"), want)
	}
}

func TestCloudProviderFailure(t *testing.T) {
	f := newFakeCloudProviders(t)
	e := newEnv(t, func(c *Config) { c.Cloud = f.cloudConfig(t) })
	f.fail = true
	for _, path := range []string{"/gcp/credentials/proj/worker@proj.iam.gserviceaccount.com", "/sentry/app/dsn"} {
		r := e.api("GET", path, asRoot())
		m := expectError(t, r, 500, "InternalServerError")
		if !strings.HasPrefix(m["message"].(string), "Internal Server Error, incidentId ") {
			t.Errorf("%s: message %q", path, m["message"])
		}
		for _, secret := range []string{"SECRET", "PRIVATE KEY"} {
			if strings.Contains(string(r.body), secret) {
				t.Errorf("%s: reply holds a secret:\n%s", path, r.body)
			}
		}
	}
	log := e.logBuf.String()
	if !strings.Contains(log, "incidentId") || strings.Contains(log, "SECRET") || strings.Contains(log, "PRIVATE KEY") {
		t.Errorf("log (no incident, or a secret):\n%s", log)
	}
}

func TestCloudConfigRefused(t *testing.T) {
	for name, mut := range map[string]func(*Config){
		"websocktunnel twice": func(c *Config) {
			c.WebsocktunnelSecret = "a"
			c.Cloud = &cloud.Config{Websocktunnel: &cloud.WebsocktunnelConfig{Secret: "b"}}
		},
		"bad section": func(c *Config) { c.Cloud = &cloud.Config{Sentry: &cloud.SentryConfig{Hostname: "sentry.io"}} },
	} {
		cfg := DefaultConfig()
		cfg.Logger = quietLogger()
		mut(&cfg)
		if _, err := New(cfg, newMemStore()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRunPurgesSentryKeysOnLeader(t *testing.T) {
	f := newFakeCloudProviders(t)
	e := newMemEnv(t, func(c *Config) { c.Cloud = f.cloudConfig(t) })
	e.mem.setLeader(false, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deleted := func() []string {
		f.mu.Lock()
		defer f.mu.Unlock()
		return append([]string(nil), f.deleted...)
	}
	time.Sleep(300 * time.Millisecond)
	if d := deleted(); len(d) != 0 {
		t.Fatalf("a follower purged Sentry keys: %v", d)
	}
	e.mem.setLeader(true, "")
	deadline := time.Now().Add(5 * time.Second)
	for len(deleted()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the leader did not purge expired Sentry keys")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := deleted(); len(d) != 1 || d[0] != "/api/0/projects/org/app/keys/k0/" {
		t.Errorf("deleted %v, want only the expired key k0", d)
	}
}
