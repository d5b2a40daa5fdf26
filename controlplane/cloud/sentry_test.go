package cloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSentryAPI is the part of Sentry's web API (/api/0/) sentryDSN uses:
// project keys (list, create, delete), team projects (create) and the
// organization's projects (list), with Sentry's cursor pagination (Link
// header, two items a page). It checks the bearer token, methods, paths
// and JSON bodies, and answers the documented shapes. No Sentry runs here.
type fakeSentryAPI struct {
	t       *testing.T
	srv     *httptest.Server
	fail    int // answer every request with this status (0 = work)
	mu      sync.Mutex
	nextID  int
	keys    map[string][]fakeSentryKey // project slug → keys
	log     []string
	problem []string
}

type fakeSentryKey struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Label string `json:"label"`
	DSN   struct {
		Secret string `json:"secret"`
		Public string `json:"public"`
		CSP    string `json:"csp"`
	} `json:"dsn"`
	IsActive bool `json:"isActive"`
}

const fakeSentryToken = "sntrys_fake-token-0123456789"

func newFakeSentryAPI(t *testing.T) *fakeSentryAPI {
	f := &fakeSentryAPI{t: t, keys: map[string][]fakeSentryKey{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSentryAPI) addKey(project, name string) fakeSentryKey {
	f.nextID++
	id := strconv.Itoa(f.nextID)
	k := fakeSentryKey{ID: "k" + id, Name: name, Label: name, IsActive: true}
	k.DSN.Public = "https://pub" + id + "@o1.ingest.example/" + project
	k.DSN.Secret = "https://pub" + id + ":sec" + id + "@o1.ingest.example/" + project
	k.DSN.CSP = "https://o1.ingest.example/api/csp"
	f.keys[project] = append(f.keys[project], k)
	return k
}

func (f *fakeSentryAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, r.Method+" "+r.URL.Path)
	if r.Header.Get("Authorization") != "Bearer "+fakeSentryToken {
		f.problem = append(f.problem, "Authorization "+r.Header.Get("Authorization"))
		w.WriteHeader(401)
		return
	}
	if f.fail != 0 {
		w.WriteHeader(f.fail)
		io.WriteString(w, `{"detail":"`+fakeSentryToken+` leaked in an error body"}`)
		return
	}
	var body map[string]string
	if r.Method == http.MethodPost {
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&body) != nil {
			f.problem = append(f.problem, "POST without a JSON body")
		}
	}
	w.Header().Set("Content-Type", "application/json")
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/api/0/"), "/"), "/")
	switch {
	case len(parts) == 4 && parts[0] == "projects" && parts[1] == "tc-org" && parts[3] == "keys":
		f.projectKeys(w, r, parts[2], body)
	case len(parts) == 5 && parts[0] == "projects" && parts[1] == "tc-org" && parts[3] == "keys" && r.Method == http.MethodDelete:
		ks := f.keys[parts[2]]
		i := slices.IndexFunc(ks, func(k fakeSentryKey) bool { return k.ID == parts[4] })
		if i < 0 {
			w.WriteHeader(404)
			return
		}
		f.keys[parts[2]] = slices.Delete(ks, i, i+1)
		w.WriteHeader(204)
	case len(parts) == 4 && parts[0] == "teams" && parts[1] == "tc-org" && parts[2] == "tc-team" && parts[3] == "projects" && r.Method == http.MethodPost:
		if len(body) != 2 || body["name"] == "" || body["slug"] != body["name"] {
			f.problem = append(f.problem, fmt.Sprintf("create project body %v", body))
		}
		f.keys[body["slug"]] = []fakeSentryKey{}
		w.WriteHeader(201)
		json.NewEncoder(w).Encode(map[string]string{"slug": body["slug"], "name": body["name"], "id": "42"})
	case len(parts) == 3 && parts[0] == "organizations" && parts[1] == "tc-org" && parts[2] == "projects" && r.Method == http.MethodGet:
		var ps []map[string]string
		for _, p := range slices.Sorted(mapsKeys(f.keys)) {
			ps = append(ps, map[string]string{"slug": p, "name": p})
		}
		f.page(w, r, ps)
	default:
		f.problem = append(f.problem, "unexpected "+r.Method+" "+r.URL.Path)
		w.WriteHeader(404)
		io.WriteString(w, `{"detail":"The requested resource does not exist"}`)
	}
}

func (f *fakeSentryAPI) projectKeys(w http.ResponseWriter, r *http.Request, project string, body map[string]string) {
	ks, ok := f.keys[project]
	if !ok {
		w.WriteHeader(404)
		io.WriteString(w, `{"detail":"The requested resource does not exist"}`)
		return
	}
	switch r.Method {
	case http.MethodGet:
		f.page(w, r, ks)
	case http.MethodPost:
		if len(body) != 1 || body["name"] == "" {
			f.problem = append(f.problem, fmt.Sprintf("create key body %v", body))
		}
		w.WriteHeader(201)
		json.NewEncoder(w).Encode(f.addKey(project, body["name"]))
	default:
		f.problem = append(f.problem, "keys: method "+r.Method)
		w.WriteHeader(405)
	}
}

// page answers two items of list from ?cursor=0:<offset>:0 with Sentry's
// Link header.
func page[T any](w http.ResponseWriter, r *http.Request, list []T) {
	off := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		off, _ = strconv.Atoi(strings.Split(c, ":")[1])
	}
	end := min(off+2, len(list))
	more := end < len(list)
	self := "http://" + r.Host + r.URL.Path
	w.Header().Set("Link", fmt.Sprintf(`<%s?&cursor=0:%d:1>; rel="previous"; results="%t"; cursor="0:%d:1", <%s?&cursor=0:%d:0>; rel="next"; results="%t"; cursor="0:%d:0"`,
		self, max(off-2, 0), off > 0, max(off-2, 0), self, end, more, end))
	out := list[min(off, len(list)):end]
	if out == nil {
		out = []T{}
	}
	json.NewEncoder(w).Encode(out)
}

func (f *fakeSentryAPI) page(w http.ResponseWriter, r *http.Request, list any) {
	switch l := list.(type) {
	case []fakeSentryKey:
		page(w, r, l)
	case []map[string]string:
		page(w, r, l)
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// takeLog returns and clears the request log, failing on any problem.
func (f *fakeSentryAPI) takeLog() []string {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.problem {
		f.t.Error("fakeSentryAPI: " + p)
	}
	l := f.log
	f.log, f.problem = nil, nil
	return l
}

func sentryService(t *testing.T, f *fakeSentryAPI, now *time.Time) *Service {
	return newServiceAt(t, Config{Now: func() time.Time { return *now }, Sentry: &SentryConfig{
		Hostname: f.srv.URL, Organization: "tc-org", InitialTeam: "tc-team", AuthToken: fakeSentryToken, KeyPrefix: "tc-auth"}})
}

func TestSentryDSNRotation(t *testing.T) {
	f := newFakeSentryAPI(t)
	f.keys["app"] = nil
	f.addKey("app", "Default")                                               // not managed: ignored
	f.addKey("app", "other managed (expires-at:2030-01-01T00:00:00.000Z)")   // other prefix: ignored
	f.addKey("app", "tc-auth managed (expires-at:2023-11-15T00:00:00.000Z)") // 1.8 h left: too short
	now := frozenNow
	s := sentryService(t, f, &now)
	ctx := context.Background()

	got, err := s.SentryDSN(ctx, "app")
	want := SentryDSN{Project: "app", Public: "https://pub4@o1.ingest.example/app", Secret: "https://pub4:sec4@o1.ingest.example/app", Expires: frozenNow.Add(48 * time.Hour)}
	if err != nil || got != want {
		t.Fatalf("first: %+v %v\nwant %+v", got, err, want)
	}
	if l := f.takeLog(); !slices.Equal(l, []string{"GET /api/0/projects/tc-org/app/keys/", "GET /api/0/projects/tc-org/app/keys/", "POST /api/0/projects/tc-org/app/keys/"}) {
		t.Errorf("requests %q (two pages, then a new key)", l)
	}
	if name := f.keys["app"][3].Name; name != "tc-auth managed (expires-at:2023-11-16T22:13:20.000Z)" {
		t.Errorf("key name %q", name)
	}
	// Within the 25 h margin: served from the cache, no request.
	now = frozenNow.Add(22 * time.Hour)
	if got, err := s.SentryDSN(ctx, "app"); err != nil || got != want || len(f.takeLog()) != 0 {
		t.Errorf("cached: %+v %v", got, err)
	}
	// 24 h left: a new key valid 48 h.
	now = frozenNow.Add(24 * time.Hour)
	got, err = s.SentryDSN(ctx, "app")
	if err != nil || got.Public == want.Public || !got.Expires.Equal(now.Add(48*time.Hour)) {
		t.Errorf("rotated: %+v %v", got, err)
	}
	f.takeLog()
	// Another node (a fresh cache) reuses the newest key while it lasts.
	s2 := sentryService(t, f, &now)
	if again, err := s2.SentryDSN(ctx, "app"); err != nil || again != got {
		t.Errorf("other node: %+v %v, want %+v", again, err, got)
	}
	for _, r := range f.takeLog() {
		if strings.HasPrefix(r, "POST") {
			t.Errorf("other node created a key: %s", r)
		}
	}
}

func TestSentryDSNCreatesProject(t *testing.T) {
	f := newFakeSentryAPI(t)
	now := frozenNow
	s := sentryService(t, f, &now)
	got, err := s.SentryDSN(context.Background(), "new-svc")
	if err != nil || got.Project != "new-svc" || got.Secret == "" {
		t.Fatalf("%+v %v", got, err)
	}
	want := []string{"GET /api/0/projects/tc-org/new-svc/keys/", "POST /api/0/teams/tc-org/tc-team/projects/",
		"GET /api/0/projects/tc-org/new-svc/keys/", "POST /api/0/projects/tc-org/new-svc/keys/"}
	if l := f.takeLog(); !slices.Equal(l, want) {
		t.Errorf("requests %q\nwant %q", l, want)
	}
}

func TestSentryPurge(t *testing.T) {
	f := newFakeSentryAPI(t)
	for _, p := range []string{"a", "b", "c"} {
		f.keys[p] = nil
		f.addKey(p, "Default")
		f.addKey(p, "tc-auth managed (expires-at:2023-11-14T22:13:19.999Z)")      // expired
		f.addKey(p, "tc-auth managed (expires-at:2023-11-14T22:13:20.001Z)")      // not yet
		f.addKey(p, "other-prefix managed (expires-at:2020-01-01T00:00:00.000Z)") // not ours
		f.addKey(p, "tc-auth managed (expires-at:not-a-time)")
	}
	now := frozenNow
	s := sentryService(t, f, &now)
	n, err := s.PurgeSentryKeys(context.Background())
	if err != nil || n != 3 {
		t.Fatalf("deleted %d, %v", n, err)
	}
	for p, ks := range f.keys {
		if len(ks) != 4 || slices.ContainsFunc(ks, func(k fakeSentryKey) bool { return strings.Contains(k.Name, "19.999Z") }) {
			t.Errorf("project %s keeps %+v", p, ks)
		}
	}
	log := f.takeLog()
	if log[0] != "GET /api/0/organizations/tc-org/projects/" || log[1] != log[0] || !slices.Contains(log, "DELETE /api/0/projects/tc-org/c/keys/k12/") {
		t.Errorf("requests %q", log)
	}
	if n, err := newServiceAt(t, Config{}).PurgeSentryKeys(context.Background()); n != 0 || err != nil {
		t.Errorf("unconfigured purge: %d %v", n, err)
	}
}

func TestSentryErrors(t *testing.T) {
	f := newFakeSentryAPI(t)
	f.keys["app"] = nil
	now := frozenNow
	s := sentryService(t, f, &now)
	for _, status := range []int{500, 502, 401, 403} {
		f.fail = status
		_, err := s.SentryDSN(context.Background(), "app")
		if !errors.Is(err, ErrUpstream) || strings.Contains(err.Error(), fakeSentryToken) || strings.Contains(err.Error(), "leaked") {
			t.Errorf("status %d: %v", status, err)
		}
		if _, err := s.PurgeSentryKeys(context.Background()); !errors.Is(err, ErrUpstream) {
			t.Errorf("purge, status %d: %v", status, err)
		}
	}
	f.fail = 0
	f.takeLog()
	if _, err := newServiceAt(t, Config{}).SentryDSN(context.Background(), "app"); !errors.Is(err, ErrNotConfigured) || Message(err) != "Sentry credentials not found" {
		t.Errorf("unconfigured: %v", err)
	}
	for name, c := range map[string]SentryConfig{
		"no host":  {Organization: "o", InitialTeam: "t", AuthToken: "x"},
		"no org":   {Hostname: "sentry.io", InitialTeam: "t", AuthToken: "x"},
		"no team":  {Hostname: "sentry.io", Organization: "o", AuthToken: "x"},
		"no token": {Hostname: "sentry.io", Organization: "o", InitialTeam: "t"},
		"bad url":  {Hostname: "ftp://sentry.io", Organization: "o", InitialTeam: "t", AuthToken: "x"},
	} {
		if _, err := New(Config{Sentry: &c}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	s = newServiceAt(t, Config{Sentry: &SentryConfig{Hostname: "sentry.io", Organization: "o", InitialTeam: "t", AuthToken: "x"}})
	if s.sentry.base != "https://sentry.io/api/0/" || s.SentryPurgeInterval() != DefaultSentryPurgeInterval || s.sentry.cfg.KeyPrefix != DefaultSentryKeyPrefix {
		t.Errorf("defaults: %s %s %s", s.sentry.base, s.SentryPurgeInterval(), s.sentry.cfg.KeyPrefix)
	}
}

func TestNextLink(t *testing.T) {
	for in, want := range map[string]string{
		`<https://s/api/0/x/?&cursor=0:0:1>; rel="previous"; results="false"; cursor="0:0:1", <https://s/api/0/x/?&cursor=0:100:0>; rel="next"; results="true"; cursor="0:100:0"`: "https://s/api/0/x/?&cursor=0:100:0",
		`<https://s/a>; rel="next"; results="false"; cursor="0:100:0"`: "",
		``:         "",
		`garbage<`: "",
	} {
		if got := nextLink([]string{in}); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func FuzzNextLink(f *testing.F) {
	f.Add(`<https://s/a>; rel="next"; results="true"`)
	f.Add(`>;<rel="next"results="true"`)
	f.Fuzz(func(t *testing.T, s string) { nextLink([]string{s}) })
}

// FuzzSentryKeyName: any key name parses without panicking, and a name
// tcauth writes always parses back to its time.
func FuzzSentryKeyName(f *testing.F) {
	s, err := New(Config{Sentry: &SentryConfig{Hostname: "sentry.io", Organization: "o", InitialTeam: "t", AuthToken: "x", KeyPrefix: "p"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("p managed (expires-at:2023-11-16T22:13:20.000Z)", int64(1700000000000))
	f.Add("p managed (expires-at:)", int64(0))
	f.Fuzz(func(t *testing.T, name string, ms int64) {
		s.sentry.expiry(sentryKey{Name: name})
		at := time.UnixMilli(ms % 253402300799000).UTC()
		if at.Year() < 1 {
			return
		}
		own := "p managed (expires-at:" + at.Format("2006-01-02T15:04:05.000Z") + ")"
		if got, ok := s.sentry.expiry(sentryKey{Label: own}); !ok || !got.Equal(at) {
			t.Fatalf("%q parsed as %v %v", own, got, ok)
		}
	})
}
