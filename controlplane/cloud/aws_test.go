package cloud

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"gopkg.in/yaml.v3"
)

// fakeSTS is AWS STS's Query API (GetFederationToken, AssumeRole) as
// aws-sdk-go-v2 speaks it: it checks each request exactly (POST /, a
// form body, a SigV4 signature made with the configured key, recomputed
// here) and answers with the documented XML. Accepted forms are kept for
// the test to compare.
type fakeSTS struct {
	t      *testing.T
	srv    *httptest.Server
	region string

	mu       sync.Mutex
	forms    []url.Values
	problems []string
	// errStatus/errCode/errMessage: answer every request with this STS error.
	errStatus           int
	errCode, errMessage string
	// noCredentials: answer 200 without a Credentials element.
	noCredentials bool
}

const (
	fakeAWSKeyID  = "AKIAFAKETCAUTH0000001"
	fakeAWSSecret = "fakeSecretSECRET/0123456789abcdefghijklm"
	// What the fake hands out.
	fakeTempKeyID   = "ASIAFAKETEMP00000001"
	fakeTempSecret  = "tempSecret/abcdefghijklmnopqrstuvwxyz01"
	fakeTempToken   = "FwoGZXIvYXdzEFAKE//session+token=="
	fakeTempExpires = "2023-11-14T23:13:20Z"
)

func newFakeSTS(t *testing.T) *fakeSTS {
	t.Helper()
	f := &fakeSTS{t: t, region: DefaultAWSRegion}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() {
		for _, p := range f.problems {
			t.Errorf("fakeSTS: %s", p)
		}
	})
	return f
}

func (f *fakeSTS) config(mode string, buckets ...string) *AWSConfig {
	return &AWSConfig{Mode: mode, STSEndpoint: f.srv.URL, AllowedBuckets: []AWSBucketCredentials{
		{AccessKeyID: fakeAWSKeyID, SecretAccessKey: fakeAWSSecret, Buckets: buckets}}}
}

func (f *fakeSTS) problem(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.problems = append(f.problems, s)
}

func (f *fakeSTS) requests() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.forms...)
}

func (f *fakeSTS) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || r.URL.Path != "/" || r.URL.RawQuery != "" {
		f.problem("request " + r.Method + " " + r.URL.String())
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		f.problem("Content-Type " + ct)
	}
	if err := f.checkSignature(r, body); err != nil {
		f.problem("signature: " + err.Error())
		f.writeError(w, 403, "SignatureDoesNotMatch", "bad signature")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		f.problem("body is not a form: " + string(body))
	}
	f.mu.Lock()
	f.forms = append(f.forms, form)
	status, code, msg, empty := f.errStatus, f.errCode, f.errMessage, f.noCredentials
	f.mu.Unlock()
	if status != 0 {
		f.writeError(w, status, code, msg)
		return
	}
	action := form.Get("Action")
	if action != "GetFederationToken" && action != "AssumeRole" {
		f.writeError(w, 400, "InvalidAction", "Could not find operation "+action)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	if empty {
		io.WriteString(w, `<`+action+`Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><`+action+`Result></`+action+`Result></`+action+`Response>`)
		return
	}
	io.WriteString(w, `<`+action+`Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><`+action+`Result>
<Credentials><SessionToken>`+xmlText(fakeTempToken)+`</SessionToken><SecretAccessKey>`+xmlText(fakeTempSecret)+`</SecretAccessKey>
<Expiration>`+fakeTempExpires+`</Expiration><AccessKeyId>`+fakeTempKeyID+`</AccessKeyId></Credentials>
<PackedPolicySize>6</PackedPolicySize></`+action+`Result><ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata></`+action+`Response>`)
}

func xmlText(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (f *fakeSTS) writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	io.WriteString(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>`+code+
		`</Code><Message>`+xmlText(msg)+`</Message></Error><RequestId>0e9fd7d1-1111-4f8b-9e1c-000000000000</RequestId></ErrorResponse>`)
}

// checkSignature recomputes the SigV4 signature of r (AWS Signature
// Version 4, "sts" in the configured region) over the headers it names,
// with the configured secret.
func (f *fakeSTS) checkSignature(r *http.Request, body []byte) error {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return errors.New("Authorization " + auth)
	}
	parts := map[string]string{}
	for _, p := range strings.Split(rest, ", ") {
		k, v, _ := strings.Cut(p, "=")
		parts[k] = v
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return errors.New("X-Amz-Date " + r.Header.Get("X-Amz-Date"))
	}
	wantCred := fakeAWSKeyID + "/" + when.Format("20060102") + "/" + f.region + "/sts/aws4_request"
	if parts["Credential"] != wantCred {
		return errors.New("Credential " + parts["Credential"] + ", want " + wantCred)
	}
	again, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), strings.NewReader(string(body)))
	for _, h := range strings.Split(parts["SignedHeaders"], ";") {
		if h != "host" && h != "content-length" {
			again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	hash := r.Header.Get("X-Amz-Content-Sha256")
	if hash == "" {
		hash = sha256Hex(body)
	}
	again.Header.Del("X-Amz-Date")
	err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: fakeAWSKeyID, SecretAccessKey: fakeAWSSecret},
		again, hash, "sts", f.region, when)
	if err != nil {
		return err
	}
	if again.Header.Get("Authorization") != auth {
		return errors.New("does not verify with the configured key")
	}
	return nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// wantAWSPolicy is the session policy Taskcluster sends, written out.
func wantAWSPolicy(bucket, prefix string, readOnly bool) map[string]any {
	objectActions := []any{"s3:GetObject"}
	if !readOnly {
		objectActions = append(objectActions, "s3:PutObject", "s3:DeleteObject")
	}
	return map[string]any{"Version": "2012-10-17", "Statement": []any{
		map[string]any{"Sid": "ReadWriteObjectsUnderPrefix", "Effect": "Allow", "Action": objectActions,
			"Resource": []any{"arn:aws:s3:::" + bucket + "/" + prefix + "*"}},
		map[string]any{"Sid": "ListObjectsUnderPrefix", "Effect": "Allow", "Action": []any{"s3:ListBucket"},
			"Resource": []any{"arn:aws:s3:::" + bucket}, "Condition": map[string]any{"StringLike": map[string]any{"s3:prefix": []any{prefix + "*"}}}},
		map[string]any{"Sid": "GetBucketLocation", "Effect": "Allow", "Action": []any{"s3:GetBucketLocation"},
			"Resource": []any{"arn:aws:s3:::" + bucket}},
	}}
}

func newAWSService(t *testing.T, c *AWSConfig) *Service {
	t.Helper()
	s, err := New(Config{AWS: c})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAWSS3CredentialsRequest(t *testing.T) {
	f := newFakeSTS(t)
	fed := newAWSService(t, f.config("", "bkt", "other-bkt"))
	roleCfg := f.config(AWSModeAssumeRole, "bkt", "other-bkt")
	roleCfg.RoleArn = "arn:aws:iam::123456789012:role/s3-delegate"
	role := newAWSService(t, roleCfg)
	for _, mode := range []string{AWSModeFederationToken, AWSModeAssumeRole} {
		svc := map[string]*Service{AWSModeFederationToken: fed, AWSModeAssumeRole: role}[mode]
		for _, prefix := range []string{"a/b/", "", "a", "deep/er/path/", "with space/ü/", "x<&>y/", "a//b"} {
			for _, readOnly := range []bool{true, false} {
				before := len(f.requests())
				cr, err := svc.AWSS3Credentials(context.Background(), "other-bkt", prefix, readOnly)
				if err != nil {
					t.Fatalf("%s %q read-only=%v: %v", mode, prefix, readOnly, err)
				}
				want := AWSCredentials{fakeTempKeyID, fakeTempSecret, fakeTempToken, time.Date(2023, 11, 14, 23, 13, 20, 0, time.UTC)}
				if cr != want {
					t.Errorf("credentials %+v, want %+v", cr, want)
				}
				reqs := f.requests()
				if len(reqs) != before+1 {
					t.Fatalf("%d STS requests, want 1", len(reqs)-before)
				}
				checkSTSForm(t, mode, reqs[before], wantAWSPolicy("other-bkt", prefix, readOnly))
			}
		}
	}
}

func checkSTSForm(t *testing.T, mode string, form url.Values, policy map[string]any) {
	t.Helper()
	want := url.Values{"Action": {"GetFederationToken"}, "Version": {"2011-06-15"}, "Name": {"TemporaryS3ReadWriteCredentials"}, "DurationSeconds": {"3600"}}
	if mode == AWSModeAssumeRole {
		want = url.Values{"Action": {"AssumeRole"}, "Version": {"2011-06-15"}, "RoleSessionName": {"TemporaryS3ReadWriteCredentials"},
			"RoleArn": {"arn:aws:iam::123456789012:role/s3-delegate"}, "DurationSeconds": {"3600"}}
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(form.Get("Policy")), &got); err != nil || !reflect.DeepEqual(got, policy) {
		t.Errorf("%s Policy %s (%v), want %v", mode, form.Get("Policy"), err, policy)
	}
	form = cloneValues(form)
	form.Del("Policy")
	if !reflect.DeepEqual(form, want) {
		t.Errorf("%s form %v, want %v and Policy", mode, form, want)
	}
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// TestAWSPolicyBytes pins the policy's exact bytes: the reference's key
// order and Sids, no HTML escaping (JSON.stringify's output).
func TestAWSPolicyBytes(t *testing.T) {
	got := awsPolicy("bkt", "a/<b>&/", false)
	want := `{"Version":"2012-10-17","Statement":[` +
		`{"Sid":"ReadWriteObjectsUnderPrefix","Effect":"Allow","Action":["s3:GetObject","s3:PutObject","s3:DeleteObject"],"Resource":["arn:aws:s3:::bkt/a/<b>&/*"]},` +
		`{"Sid":"ListObjectsUnderPrefix","Effect":"Allow","Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::bkt"],"Condition":{"StringLike":{"s3:prefix":["a/<b>&/*"]}}},` +
		`{"Sid":"GetBucketLocation","Effect":"Allow","Action":["s3:GetBucketLocation"],"Resource":["arn:aws:s3:::bkt"]}]}`
	if got != want {
		t.Errorf("policy\n%s\nwant\n%s", got, want)
	}
	if ro := awsPolicy("bkt", "", true); !strings.Contains(ro, `"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::bkt/*"]`) {
		t.Errorf("read-only policy %s", ro)
	}
}

func TestAWSS3CredentialsRefused(t *testing.T) {
	f := newFakeSTS(t)
	svc := newAWSService(t, f.config("", "bkt"))
	unconfigured := newAWSService(t, nil)
	for _, c := range []struct {
		name   string
		svc    *Service
		bucket string
		prefix string
		kind   error
		msg    string
	}{
		{"unconfigured", unconfigured, "bkt", "a/", ErrNotConfigured, "No credentials available for bucket bkt (the cloud configuration has no aws section)"},
		{"unknown bucket", svc, "nope", "a/", ErrNotFound, "No credentials available for bucket nope"},
		{"leading slash", svc, "bkt", "/a", ErrInput, "The `prefix` may not start with a slash `/`; got `/a`"},
		{"only slash", svc, "bkt", "/", ErrInput, "The `prefix` may not start with a slash `/`; got `/`"},
		{"leading slash before 404", unconfigured, "bkt", "//a", ErrInput, "The `prefix` may not start with a slash `/`; got `//a`"},
		{"star", svc, "bkt", "a*", ErrInput, "The `prefix` may not contain `*`, `?` or `${`: IAM policies read them as wildcards or variables; got `a*`"},
		{"inner star", svc, "bkt", "a/*/b/", ErrInput, ""},
		{"question mark", svc, "bkt", "a?c/", ErrInput, ""},
		{"policy variable", svc, "bkt", "${aws:username}/", ErrInput, ""},
		{"invalid utf-8", svc, "bkt", "a\xff/", ErrInput, "The `prefix` is not valid UTF-8"},
	} {
		_, err := c.svc.AWSS3Credentials(context.Background(), c.bucket, c.prefix, false)
		if !errors.Is(err, c.kind) || (c.msg != "" && Message(err) != c.msg) {
			t.Errorf("%s: %v, want %v %q", c.name, err, c.kind, c.msg)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d STS requests for refused calls", n)
	}
	// A dollar not followed by "{" is an ordinary key character.
	if _, err := svc.AWSS3Credentials(context.Background(), "bkt", "cost$/", true); err != nil {
		t.Errorf("prefix with $: %v", err)
	}
}

func TestAWSUpstreamErrors(t *testing.T) {
	f := newFakeSTS(t)
	svc := newAWSService(t, f.config("", "bkt"))
	for _, c := range []struct {
		status int
		code   string
		want   string
	}{
		{403, "AccessDenied", "aws: STS GetFederationToken answered 403 AccessDenied"},
		// What MinIO answers to GetFederationToken (use mode assume-role).
		{400, "InvalidParameterValue", "aws: STS GetFederationToken answered 400 InvalidParameterValue"},
		{500, "InternalFailure", "aws: STS GetFederationToken answered 500 InternalFailure"},
	} {
		f.mu.Lock()
		f.errStatus, f.errCode, f.errMessage = c.status, c.code, "user "+fakeAWSKeyID+" secret "+fakeAWSSecret
		f.mu.Unlock()
		_, err := svc.AWSS3Credentials(context.Background(), "bkt", "a/", false)
		if !errors.Is(err, ErrUpstream) || Message(err) != c.want {
			t.Errorf("STS %d %s: %v, want %q", c.status, c.code, err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), fakeAWSKeyID)) {
			t.Errorf("error holds STS's message: %v", err)
		}
	}
	f.mu.Lock()
	f.errStatus, f.noCredentials = 0, true
	f.mu.Unlock()
	if _, err := svc.AWSS3Credentials(context.Background(), "bkt", "a/", false); !errors.Is(err, ErrUpstream) ||
		Message(err) != "aws: STS GetFederationToken answered without credentials" {
		t.Errorf("no credentials: %v", err)
	}
	f.srv.Close()
	_, err := svc.AWSS3Credentials(context.Background(), "bkt", "a/", false)
	if !errors.Is(err, ErrUpstream) || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("STS down: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := svc.AWSS3Credentials(ctx, "bkt", "a/", false); !errors.Is(err, ErrUpstream) || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("canceled: %v", err)
	}
}

// recordingTransport records the URLs asked for and fails every request.
type recordingTransport struct {
	mu   sync.Mutex
	urls []string
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.urls = append(rt.urls, r.URL.Scheme+"://"+r.URL.Host+r.URL.Path)
	return nil, errors.New("recordingTransport: no network here")
}

func TestAWSDefaultEndpoint(t *testing.T) {
	for region, want := range map[string]string{"": "https://sts.us-east-1.amazonaws.com/", "eu-west-1": "https://sts.eu-west-1.amazonaws.com/"} {
		rt := &recordingTransport{}
		s, err := New(Config{HTTPClient: &http.Client{Transport: rt}, AWS: &AWSConfig{Region: region,
			AllowedBuckets: []AWSBucketCredentials{{AccessKeyID: fakeAWSKeyID, SecretAccessKey: fakeAWSSecret, Buckets: []string{"bkt"}}}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AWSS3Credentials(context.Background(), "bkt", "", true); !errors.Is(err, ErrUpstream) {
			t.Errorf("%q: %v", region, err)
		}
		if len(rt.urls) == 0 || rt.urls[0] != want {
			t.Errorf("region %q: requests %v, want %s", region, rt.urls, want)
		}
	}
}

func TestAWSConfigRefused(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(fakeAWSSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := func(buckets ...string) AWSBucketCredentials {
		return AWSBucketCredentials{AccessKeyID: fakeAWSKeyID, SecretAccessKeyFile: secretFile, Buckets: buckets}
	}
	ok := func() *AWSConfig { return &AWSConfig{AllowedBuckets: []AWSBucketCredentials{key("bkt")}} }
	if _, err := New(Config{AWS: ok()}); err != nil {
		t.Fatalf("valid configuration refused: %v", err)
	}
	cases := map[string]func(c *AWSConfig){
		"unknown mode":            func(c *AWSConfig) { c.Mode = "federation" },
		"roleArn without role":    func(c *AWSConfig) { c.RoleArn = "arn:aws:iam::1:role/x" },
		"no buckets":              func(c *AWSConfig) { c.AllowedBuckets = nil },
		"entry without buckets":   func(c *AWSConfig) { c.AllowedBuckets = append(c.AllowedBuckets, key()) },
		"bucket with dot":         func(c *AWSConfig) { c.AllowedBuckets[0].Buckets = []string{"my.bucket"} },
		"bucket upper-case":       func(c *AWSConfig) { c.AllowedBuckets[0].Buckets = []string{"Bucket"} },
		"bucket too short":        func(c *AWSConfig) { c.AllowedBuckets[0].Buckets = []string{"ab"} },
		"bucket twice":            func(c *AWSConfig) { c.AllowedBuckets = append(c.AllowedBuckets, key("other", "bkt")) },
		"no access key id":        func(c *AWSConfig) { c.AllowedBuckets[0].AccessKeyID = "" },
		"no secret":               func(c *AWSConfig) { c.AllowedBuckets[0].SecretAccessKeyFile = "" },
		"secret twice":            func(c *AWSConfig) { c.AllowedBuckets[0].SecretAccessKey = fakeAWSSecret },
		"secret file unreadable":  func(c *AWSConfig) { c.AllowedBuckets[0].SecretAccessKeyFile = filepath.Join(dir, "absent") },
		"endpoint not http":       func(c *AWSConfig) { c.STSEndpoint = "ftp://127.0.0.1:9000" },
		"endpoint with userinfo":  func(c *AWSConfig) { c.STSEndpoint = "http://u:" + fakeAWSSecret + "@127.0.0.1:9000" },
		"region not a region":     func(c *AWSConfig) { c.Region = "us east" },
		"endpoint without a host": func(c *AWSConfig) { c.STSEndpoint = "http://" },
	}
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		c := ok()
		cases[name](c)
		_, err := New(Config{AWS: c})
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: error holds the secret: %v", name, err)
		}
	}
}

// TestAWSConfigYAML decodes the documented section (docs/cloud.md) as
// the control plane does (unknown keys refused).
func TestAWSConfigYAML(t *testing.T) {
	doc := `aws:
  mode: assume-role
  stsEndpoint: http://127.0.0.1:9000
  region: eu-west-1
  roleArn: arn:aws:iam::123456789012:role/s3-delegate
  allowedBuckets:
    - accessKeyId: AKIAEXAMPLE
      secretAccessKey: example-secret
      buckets: [my-artifacts, my-cache]
`
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	want := AWSConfig{Mode: AWSModeAssumeRole, STSEndpoint: "http://127.0.0.1:9000", Region: "eu-west-1",
		RoleArn: "arn:aws:iam::123456789012:role/s3-delegate", AllowedBuckets: []AWSBucketCredentials{
			{AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: "example-secret", Buckets: []string{"my-artifacts", "my-cache"}}}}
	if c.AWS == nil || !reflect.DeepEqual(*c.AWS, want) {
		t.Fatalf("decoded %+v", c.AWS)
	}
	if _, err := New(c); err != nil {
		t.Fatal(err)
	}
}

// FuzzAWSPolicy: for every prefix accepted, the policy is JSON granting
// exactly that prefix (the object resource and the list condition).
func FuzzAWSPolicy(f *testing.F) {
	for _, s := range []string{"", "a/b/", "/a", "a*", "${x}", "x<&>\"\\y/", "\u2028/", "a\xff"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, prefix string, readOnly bool) {
		if checkAWSPrefix(prefix) != nil {
			return
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(awsPolicy("bkt", prefix, readOnly)), &got); err != nil {
			t.Fatal(err)
		}
		if want := wantAWSPolicy("bkt", prefix, readOnly); !reflect.DeepEqual(got, want) {
			t.Fatalf("policy %v, want %v", got, want)
		}
	})
}
