package cloud

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// fakeIAMCredentials is Google's OAuth 2.0 token endpoint (JWT bearer
// grant, RFC 7523, as service account keys use) and IAM Credentials'
// generateAccessToken, checking each request exactly as Google's API
// expects it and answering the documented shapes. No emulator exists.
type fakeIAMCredentials struct {
	t      *testing.T
	srv    *httptest.Server
	pub    *rsa.PublicKey
	email  string
	status int    // generateAccessToken's answer status (0 = 200)
	answer string // its error body when status != 200

	mu       sync.Mutex
	grants   int
	problems []string
}

const fakeGCPBearer = "ya29.fake-tcauth-own-token"

func newFakeIAMCredentials(t *testing.T) (*fakeIAMCredentials, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	f := &fakeIAMCredentials{t: t, pub: &key.PublicKey, email: "tcauth@granting.iam.gserviceaccount.com"}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	keyJSON, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "granting", "private_key_id": "kid-1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": f.email, "token_uri": f.srv.URL + "/token",
	})
	return f, string(keyJSON)
}

func (f *fakeIAMCredentials) problem(format string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.problems = append(f.problems, format)
}

func (f *fakeIAMCredentials) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/token":
		f.token(w, r)
	case "/v1/projects/-/serviceAccounts/worker@proj.iam.gserviceaccount.com:generateAccessToken":
		f.generate(w, r)
	default:
		f.problem("unexpected path " + r.URL.Path)
		http.Error(w, `{"error":{"code":404,"message":"not found","status":"NOT_FOUND"}}`, 404)
	}
}

// token checks the JWT bearer grant: form-encoded, the assertion signed
// RS256 by the configured key, iss = the key's client_email, aud = the
// token URI, scope = cloud-platform.
func (f *fakeIAMCredentials) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost ||
		r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		f.problem("token: not a jwt-bearer grant")
		http.Error(w, `{"error":"invalid_grant"}`, 400)
		return
	}
	tok, err := jwt.Parse(r.PostForm.Get("assertion"), func(*jwt.Token) (any, error) { return f.pub, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(f.srv.URL+"/token"), jwt.WithIssuer(f.email))
	if err != nil || tok.Claims.(jwt.MapClaims)["scope"] != "https://www.googleapis.com/auth/cloud-platform" {
		f.problem("token: bad assertion")
		http.Error(w, `{"error":"invalid_grant"}`, 400)
		return
	}
	f.mu.Lock()
	f.grants++
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"access_token":"`+fakeGCPBearer+`","token_type":"Bearer","expires_in":3599}`)
}

// generate checks generateAccessToken: POST, tcauth's own bearer, a JSON
// body of exactly {lifetime, scope} (no delegates; encoding/json's
// Encoder, as Google's client library uses, ends it with a newline), and
// only the system parameters the client library sends (alt=json asks
// for a JSON answer; prettyPrint=false for a compact one).
func (f *fakeIAMCredentials) generate(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	q := r.URL.Query()
	switch {
	case r.Method != http.MethodPost:
		f.problem("generateAccessToken: method " + r.Method)
	case r.Header.Get("Authorization") != "Bearer "+fakeGCPBearer:
		f.problem("generateAccessToken: Authorization " + r.Header.Get("Authorization"))
	case !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"):
		f.problem("generateAccessToken: Content-Type " + r.Header.Get("Content-Type"))
	case q.Encode() != "alt=json&prettyPrint=false" && q.Encode() != "alt=json":
		f.problem("generateAccessToken: query " + r.URL.RawQuery)
	case strings.TrimSuffix(string(body), "\n") != `{"lifetime":"3600s","scope":["https://www.googleapis.com/auth/cloud-platform"]}`:
		f.problem("generateAccessToken: body " + string(body))
	}
	w.Header().Set("Content-Type", "application/json")
	if f.status != 0 {
		w.WriteHeader(f.status)
		io.WriteString(w, f.answer)
		return
	}
	io.WriteString(w, `{"accessToken":"ya29.minted-for-worker","expireTime":"2023-11-14T23:13:20Z"}`)
}

func (f *fakeIAMCredentials) check() {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.problems {
		f.t.Error("fakeIAMCredentials: " + p)
	}
	f.problems = nil
}

func TestGCPCredentials(t *testing.T) {
	// Application Default Credentials must never be looked up: this one
	// would fail every call that tried.
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "absent.json"))
	fake, key := newFakeIAMCredentials(t)
	s := newServiceAt(t, Config{GCP: &GCPConfig{Endpoint: fake.srv.URL, AllowedProjects: map[string]GCPProject{
		"proj": {Credentials: key, AllowedServiceAccounts: []string{"worker@proj.iam.gserviceaccount.com"}},
	}}})
	ctx := context.Background()
	for range 2 {
		got, err := s.GCPCredentials(ctx, "proj", "worker@proj.iam.gserviceaccount.com")
		if err != nil || got != (GCPToken{AccessToken: "ya29.minted-for-worker", ExpireTime: "2023-11-14T23:13:20Z"}) {
			t.Fatalf("got %+v, %v", got, err)
		}
	}
	fake.check()
	if fake.grants != 1 {
		t.Errorf("tcauth's own token fetched %d times, want 1 (cached)", fake.grants)
	}

	for _, c := range []struct {
		name, project, sa string
		status            int
		answer            string
		kind              error
		msg               string
	}{
		{"project not configured", "other", "worker@proj.iam.gserviceaccount.com", 0, "", ErrNotFound, "The projectId other is not configured"},
		{"account not allowed", "proj", "admin@proj.iam.gserviceaccount.com", 0, "", ErrInput, "The service account admin@proj.iam.gserviceaccount.com isn't allowed"},
		{"google refuses", "proj", "worker@proj.iam.gserviceaccount.com", 403,
			`{"error":{"code":403,"message":"Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).","status":"PERMISSION_DENIED"}}`,
			ErrNotFound, "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist)."},
		{"google fails", "proj", "worker@proj.iam.gserviceaccount.com", 503, `{"error":{"code":503,"message":"backend","status":"UNAVAILABLE"}}`, ErrUpstream, ""},
		{"google answers garbage", "proj", "worker@proj.iam.gserviceaccount.com", 500, `<html>`, ErrUpstream, ""},
		{"google answers no token", "proj", "worker@proj.iam.gserviceaccount.com", 200, `{"expireTime":"2023-11-14T23:13:20Z"}`, ErrUpstream, ""},
		{"google answers too much", "proj", "worker@proj.iam.gserviceaccount.com", 200,
			`{"accessToken":"ya29.` + strings.Repeat("a", 1<<20) + `","expireTime":"2023-11-14T23:13:20Z"}`, ErrUpstream, ""},
	} {
		fake.status, fake.answer = c.status, c.answer
		_, err := s.GCPCredentials(ctx, c.project, c.sa)
		if !errors.Is(err, c.kind) || c.msg != "" && Message(err) != c.msg {
			t.Errorf("%s: %v (want %v %q)", c.name, err, c.kind, c.msg)
		}
		if err != nil && (strings.Contains(err.Error(), fakeGCPBearer) || strings.Contains(err.Error(), "PRIVATE")) {
			t.Errorf("%s: error leaks a credential: %v", c.name, err)
		}
	}
	fake.check()

	if _, err := newServiceAt(t, Config{}).GCPCredentials(ctx, "proj", "x"); !errors.Is(err, ErrNotConfigured) ||
		Message(err) != "The projectId proj is not configured" {
		t.Errorf("unconfigured: %v", err)
	}
}

func TestGCPOwnTokenFailure(t *testing.T) {
	fake, key := newFakeIAMCredentials(t)
	// A key whose token endpoint refuses: the reply must not carry the
	// endpoint's body or the key.
	key = strings.Replace(key, fake.srv.URL+"/token", fake.srv.URL+"/nowhere", 1)
	s := newServiceAt(t, Config{GCP: &GCPConfig{Endpoint: fake.srv.URL, AllowedProjects: map[string]GCPProject{
		"proj": {Credentials: key, AllowedServiceAccounts: []string{"worker@proj.iam.gserviceaccount.com"}}}}})
	_, err := s.GCPCredentials(context.Background(), "proj", "worker@proj.iam.gserviceaccount.com")
	if !errors.Is(err, ErrUpstream) || Message(err) != "gcp: getting tcauth's own access token failed" {
		t.Fatalf("%v", err)
	}
	fake.mu.Lock()
	fake.problems = nil // the fake noted the unknown path on purpose
	fake.mu.Unlock()
}

func TestGCPConfigRefused(t *testing.T) {
	_, key := newFakeIAMCredentials(t)
	for name, c := range map[string]GCPConfig{
		"no projects":  {},
		"bad endpoint": {Endpoint: "ftp://x", AllowedProjects: map[string]GCPProject{"p": {Credentials: key}}},
		"no key":       {AllowedProjects: map[string]GCPProject{"p": {}}},
		"not json":     {AllowedProjects: map[string]GCPProject{"p": {Credentials: "-----BEGIN PRIVATE KEY----- secret"}}},
		"no email":     {AllowedProjects: map[string]GCPProject{"p": {Credentials: `{"private_key":"secret"}`}}},
	} {
		_, err := New(Config{GCP: &c})
		if err == nil || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "PRIVATE") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
