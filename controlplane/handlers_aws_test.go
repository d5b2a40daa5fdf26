package controlplane

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tcauth/tcauth/controlplane/cloud"
)

// fakeSTSAnswers answers STS's GetFederationToken in its documented XML,
// recording each request's form, for the handler mapping (package cloud's
// fakeSTS checks the exact request and its signature). fail answers an
// error whose message is full of secrets, which must not reach a reply or
// the log.
type fakeSTSAnswers struct {
	srv   *httptest.Server
	mu    sync.Mutex
	fail  bool
	forms []url.Values
}

const (
	fakeSTSKeySecret  = "SECRET-aws-secret-access-key-000000000"
	fakeSTSTempSecret = "temp-secret-0123456789"
	fakeSTSTempToken  = "temp-session-token=="
)

func newFakeSTSAnswers(t *testing.T) *fakeSTSAnswers {
	f := &fakeSTSAnswers{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		f.mu.Lock()
		defer f.mu.Unlock()
		f.forms = append(f.forms, form)
		w.Header().Set("Content-Type", "text/xml")
		if f.fail || form.Get("Action") != "GetFederationToken" {
			w.WriteHeader(403)
			io.WriteString(w, `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>key `+fakeSTSKeySecret+`</Message></Error></ErrorResponse>`)
			return
		}
		io.WriteString(w, `<GetFederationTokenResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetFederationTokenResult><Credentials>
<SessionToken>`+fakeSTSTempToken+`</SessionToken><SecretAccessKey>`+fakeSTSTempSecret+`</SecretAccessKey>
<Expiration>2023-11-14T23:13:20Z</Expiration><AccessKeyId>ASIATEMP</AccessKeyId></Credentials></GetFederationTokenResult></GetFederationTokenResponse>`)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSTSAnswers) policies() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, form := range f.forms {
		out = append(out, form.Get("Policy"))
	}
	return out
}

func (f *fakeSTSAnswers) config() *cloud.Config {
	return &cloud.Config{AWS: &cloud.AWSConfig{STSEndpoint: f.srv.URL, AllowedBuckets: []cloud.AWSBucketCredentials{
		{AccessKeyID: "AKIATCAUTHTEST", SecretAccessKey: fakeSTSKeySecret, Buckets: []string{"bkt"}}}}}
}

func TestAWSS3CredentialsEndpoint(t *testing.T) {
	f := newFakeSTSAnswers(t)
	e := newEnv(t, func(c *Config) { c.Cloud = f.config() })
	r := e.api("GET", "/aws/s3/read-write/bkt/a/b/", asRoot())
	expectStatus(t, r, 200)
	jsonEq(t, r.body, map[string]any{"expires": "2023-11-14T23:13:20.000Z",
		"credentials": map[string]any{"accessKeyId": "ASIATEMP", "secretAccessKey": fakeSTSTempSecret, "sessionToken": fakeSTSTempToken}})
	if p := f.policies(); len(p) != 1 || !strings.Contains(p[0], `"Resource":["arn:aws:s3:::bkt/a/b/*"]`) || !strings.Contains(p[0], `"s3:PutObject"`) {
		t.Errorf("STS policies %v", p)
	}

	r = e.api("GET", "/aws/s3/read-only/bkt/?format=iam-role-compat", asRoot())
	expectStatus(t, r, 200)
	jsonEq(t, r.body, map[string]any{"Code": "Success", "Type": "AWS-HMAC", "LastUpdated": "2023-11-14T22:13:20.000Z",
		"AccessKeyId": "ASIATEMP", "SecretAccessKey": fakeSTSTempSecret, "Token": fakeSTSTempToken, "Expiration": "2023-11-14T23:13:20.000Z"})
	if p := f.policies(); len(p) != 2 || !strings.Contains(p[1], `"Resource":["arn:aws:s3:::bkt/*"]`) || strings.Contains(p[1], "PutObject") {
		t.Errorf("read-only, empty prefix: STS policies %v", p)
	}

	// Scopes: read-write covers read-only (AnyOf), not the other way round.
	e.addClient("reader", "reader-token-0123456789", "auth:aws-s3:read-only:bkt/a/*")
	e.addClient("writer", "writer-token-0123456789", "auth:aws-s3:read-write:bkt/a/*")
	expectStatus(t, e.api("GET", "/aws/s3/read-only/bkt/a/x/", as("reader", "reader-token-0123456789")), 200)
	expectStatus(t, e.api("GET", "/aws/s3/read-only/bkt/a/x/", as("writer", "writer-token-0123456789")), 200)
	expectError(t, e.api("GET", "/aws/s3/read-write/bkt/a/x/", as("reader", "reader-token-0123456789")), 403, "InsufficientScopes")
	expectError(t, e.api("GET", "/aws/s3/read-only/bkt/b/", as("writer", "writer-token-0123456789")), 403, "InsufficientScopes")
	expectError(t, e.api("GET", "/aws/s3/read-only/bkt/a/x/"), 403, "InsufficientScopes")

	before := len(f.policies())
	expectMessage(t, expectError(t, e.api("GET", "/aws/s3/read-only/nope/a/", asRoot()), 404, "ResourceNotFound"),
		"No credentials available for bucket nope")
	expectMessage(t, expectError(t, e.api("GET", "/aws/s3/read-only/bkt//a/", asRoot()), 400, "InputError"),
		"The `prefix` may not start with a slash `/`; got `/a/`")
	expectMessage(t, expectError(t, e.api("GET", "/aws/s3/read-only/bkt/a%2A/", asRoot()), 400, "InputError"),
		"The `prefix` may not contain `*`, `?` or `${`: IAM policies read them as wildcards or variables; got `a*/`")
	// The scope check comes first, as in the reference.
	expectError(t, e.api("GET", "/aws/s3/read-only/bkt//a/", as("reader", "reader-token-0123456789")), 403, "InsufficientScopes")
	if n := len(f.policies()) - before; n != 0 {
		t.Errorf("%d STS calls for refused requests", n)
	}
}

func TestAWSS3CredentialsEndpointUnconfigured(t *testing.T) {
	e := newEnv(t)
	expectMessage(t, expectError(t, e.api("GET", "/aws/s3/read-write/bkt/a/", asRoot()), 404, "ResourceNotFound"),
		"No credentials available for bucket bkt (the cloud configuration has no aws section)")
}

func TestAWSS3CredentialsEndpointSTSFails(t *testing.T) {
	f := newFakeSTSAnswers(t)
	e := newEnv(t, func(c *Config) { c.Cloud = f.config() })
	f.fail = true
	r := e.api("GET", "/aws/s3/read-write/bkt/a/", asRoot())
	m := expectError(t, r, 500, "InternalServerError")
	if !strings.HasPrefix(m["message"].(string), "Internal Server Error, incidentId ") || strings.Contains(string(r.body), "SECRET") {
		t.Errorf("reply %s", r.body)
	}
	log := e.logBuf.String()
	if !strings.Contains(log, "AccessDenied") || strings.Contains(log, "SECRET") {
		t.Errorf("log (no STS code, or a secret):\n%s", log)
	}
}
