package controlplane

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/prototest"
)

// frozen is the vectors' clock: 1700000000000 ms = 2023-11-14T22:13:20.000Z.
var frozen = time.UnixMilli(1700000000000).UTC()

const rootToken = "root-token-0123456789abcdef"

type testEnv struct {
	t      *testing.T
	store  Store
	mem    *memStore // the same store when it is the in-memory one, else nil
	srv    *Server
	http   *httptest.Server
	base   string
	logBuf *prototest.SyncBuffer
}

// newTestStore is the store the handler tests run against: a real
// single-node raftstore (bolt files in a temp dir, through NewRaftStore).
// Tests seed it only through Apply (e.put, e.putRole); the few that need to
// flip leadership by hand or inject failures use newMemEnv (see memStore).
func newTestStore(t *testing.T) Store { return newRaftTestStore(t) }

func newEnv(t *testing.T, mut ...func(*Config)) *testEnv {
	t.Helper()
	return newEnvWithStore(t, newTestStore(t), mut...)
}

// newMemEnv is newEnv on the in-memory store (for leadership flips and
// failure injection).
func newMemEnv(t *testing.T, mut ...func(*Config)) *testEnv {
	t.Helper()
	return newEnvWithStore(t, newMemStore(), mut...)
}

func newEnvWithStore(t *testing.T, st Store, mut ...func(*Config)) *testEnv {
	t.Helper()
	buf := &prototest.SyncBuffer{}
	cfg := DefaultConfig()
	cfg.Now = func() time.Time { return frozen }
	cfg.Logger = slog.New(slog.NewJSONHandler(buf, nil))
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	for _, m := range mut {
		m(&cfg)
	}
	srv, err := New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	srv.clients.now = cfg.Now
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	e := &testEnv{t: t, store: st, srv: srv, http: hs, base: hs.URL, logBuf: buf}
	e.mem, _ = st.(*memStore)
	e.addClient("root", rootToken, "*")
	return e
}

// put stores rec with token through the store's own write path (replacing
// an existing client of that id).
func (e *testEnv) put(rec ClientRecord, token string) {
	e.t.Helper()
	ctx := context.Background()
	if _, ok := e.store.Client(rec.ClientID); ok {
		if err := e.store.Apply(ctx, Command{Op: OpDeleteClient, Time: frozen, Actor: "test-setup", ID: rec.ClientID}); err != nil {
			e.t.Fatal(err)
		}
	}
	if rec.Scopes == nil {
		rec.Scopes = []string{}
	}
	if err := e.store.Apply(ctx, Command{Op: OpCreateClient, Time: frozen, Actor: "test-setup", ID: rec.ClientID, Client: rec, AccessToken: token}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) putRole(id string, scopes ...string) {
	e.t.Helper()
	rec := RoleRecord{RoleID: id, Scopes: scopes, Description: "role " + id, Created: frozen, LastModified: frozen}
	if err := e.store.Apply(context.Background(), Command{Op: OpCreateRole, Time: frozen, Actor: "test-setup", ID: id, Role: rec}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) addClient(id, token string, scopes ...string) {
	e.put(ClientRecord{ClientID: id, Scopes: scopes, Description: "test client " + id,
		Expires: frozen.Add(24 * time.Hour), Created: frozen.Add(-time.Hour), LastModified: frozen.Add(-time.Hour),
		LastDateUsed: frozen.Add(-time.Hour), LastRotated: frozen.Add(-time.Hour)}, token)
}

// quietLogger drops logs (multi-node tests and benchmarks).
func quietLogger() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

type reqOpts struct {
	creds       *protocol.Credentials
	body        string
	hasBody     bool
	contentType string
	headers     map[string]string
	host        string // Host header and signed host (with https/443)
	payloadHash bool
}

type opt func(*reqOpts)

func as(id, token string) opt {
	return func(o *reqOpts) { o.creds = &protocol.Credentials{ClientID: id, AccessToken: token} }
}
func asCreds(c protocol.Credentials) opt { return func(o *reqOpts) { o.creds = &c } }
func asRoot() opt                        { return as("root", rootToken) }
func withBody(b string) opt {
	return func(o *reqOpts) { o.body, o.hasBody, o.contentType = b, true, "application/json" }
}
func withContentType(ct string) opt { return func(o *reqOpts) { o.contentType = ct } }
func withHeader(k, v string) opt {
	return func(o *reqOpts) {
		if o.headers == nil {
			o.headers = map[string]string{}
		}
		o.headers[k] = v
	}
}
func viaHost(h string) opt { return func(o *reqOpts) { o.host = h } }
func withPayloadHash() opt { return func(o *reqOpts) { o.payloadHash = true } }

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

// do sends method path (path below the host, e.g. /api/auth/v1/ping).
func (e *testEnv) do(method, path string, opts ...opt) response {
	e.t.Helper()
	var o reqOpts
	for _, f := range opts {
		f(&o)
	}
	var body io.Reader
	if o.hasBody {
		body = strings.NewReader(o.body)
	}
	req, err := http.NewRequest(method, e.base+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	signURL := e.base + path
	if o.host != "" {
		req.Host = o.host
		req.Header.Set("X-Forwarded-Proto", "https")
		signURL = "https://" + o.host + path
	}
	if o.contentType != "" {
		req.Header.Set("Content-Type", o.contentType)
	}
	if o.creds != nil {
		so := protocol.SignOptions{Now: frozen}
		if o.payloadHash {
			so.HasPayload, so.ContentType, so.Payload = true, o.contentType, []byte(o.body)
		}
		h, err := protocol.SignRequest(*o.creds, method, signURL, so)
		if err != nil {
			e.t.Fatal(err)
		}
		req.Header.Set("Authorization", h)
	}
	for k, v := range o.headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// api is do with the /api/auth/v1 prefix.
func (e *testEnv) api(method, path string, opts ...opt) response {
	e.t.Helper()
	return e.do(method, apiPrefix+path, opts...)
}

func expectStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body:\n%s", r.status, status, r.body)
	}
}

// expectError checks status and code of a Taskcluster error body.
func expectError(t *testing.T, r response, status int, code string) map[string]any {
	t.Helper()
	expectStatus(t, r, status)
	m := r.json(t)
	if m["code"] != code {
		t.Fatalf("code %v, want %s; body:\n%s", m["code"], code, r.body)
	}
	return m
}

func jsonEq(t *testing.T, got []byte, want any) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got invalid JSON: %v\n%s", err, got)
	}
	wb, _ := json.Marshal(want)
	_ = json.Unmarshal(wb, &w)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("JSON mismatch\n got: %s\nwant: %s", got, wb)
	}
}

// vectors are the parts of reference-vectors.json these tests use.
type vectors struct {
	API struct {
		InsufficientCreateClient errVec            `json:"insufficient_createClient"`
		AuthFailedCreateClient   errVec            `json:"authfailed_createClient"`
		NoAuthGetClient          errVec            `json:"noauth_getClient"`
		InsufficientAWS          errVec            `json:"insufficient_aws_readonly"`
		TwoSchemes               errVec            `json:"two_schemes"`
		InvalidParam             errVec            `json:"invalid_param"`
		InvalidQuery             errVec            `json:"invalid_query"`
		PaginationTokens         []pageVec         `json:"pagination_offset_tokens"`
		PaginateTokens           map[string]string `json:"paginateResults_token_for_offsets"`
		RolesTokens              map[string]string `json:"roles_token_for_offsets"`
		RolesDecode              []int             `json:"roles_token_decode_example"`
		BadToken                 struct {
			Code, Message string
		} `json:"pagination_bad_token"`
	} `json:"api"`
	WST struct {
		Reply   map[string]any `json:"reply"`
		Payload map[string]any `json:"payload"`
	} `json:"wst"`
	TestAuth map[string]json.RawMessage `json:"testauth"`
}

type errVec struct {
	Status          int             `json:"status"`
	Body            json.RawMessage `json:"body"`
	WWWAuthenticate string          `json:"wwwAuthenticate"`
}

type pageVec struct {
	SentToken         *string `json:"sentToken"`
	Got               int     `json:"got"`
	First             string  `json:"first"`
	ContinuationToken *string `json:"continuationToken"`
}

const vectorsPath = "../testdata/spec/reference-vectors.json"

func loadVectors(t testing.TB) *vectors {
	t.Helper()
	b, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}
