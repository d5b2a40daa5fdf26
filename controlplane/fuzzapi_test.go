package controlplane

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

// fuzzEndpoints are the API's request bodies: every endpoint with an
// input schema, on an existing and a missing entity.
var fuzzEndpoints = []struct{ method, path string }{
	{"PUT", "/clients/fz%2Fnew"}, {"POST", "/clients/fz%2Fold"}, {"PUT", "/clients/fz%2Fold"},
	{"PUT", "/roles/fz-new"}, {"POST", "/roles/fz-old"}, {"POST", "/roles/fz-missing"},
	{"POST", "/scopes/expand"}, {"POST", "/authenticate-hawk"}, {"POST", "/test-authenticate"},
	{"POST", "/github/app/owner/repo-token"}, {"POST", "/tcauth/cluster/members"},
}

// FuzzAPIRequestBodies sends arbitrary bodies (as a limited caller and as
// root) through the whole pipeline: never a panic or a 500, only the
// documented statuses, and a 4xx changes nothing.
func FuzzAPIRequestBodies(f *testing.F) {
	for _, b := range []string{
		`{"description":"d","expires":"2099-01-01T00:00:00.000Z","scopes":["a"]}`,
		`{"description":"d","scopes":["assume:fz-old","b*"]}`,
		`{"scopes":["assume:fz-*"]}`, `{"method":"get","resource":"/","host":"h","port":80}`,
		`{"clientScopes":["a"],"requiredScopes":["a"]}`, `{"repoPerms":{"contents":"read"},"repositories":["r"]}`,
		`{"id":"n2","raftAddr":"127.0.0.1:1"}`, `{"scopes":[1]}`, `[`, `null`, `{"expires":"2024-13-01"}`,
	} {
		for i := range fuzzEndpoints {
			f.Add(uint8(i), b, true)
		}
	}
	st := newMemStore()
	cfg := DefaultConfig()
	cfg.Now = func() time.Time { return frozen }
	cfg.Logger = quietLogger()
	srv, err := New(cfg, st)
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	st.put(ClientRecord{ClientID: "root", Scopes: []string{"*"}, Expires: frozen.Add(time.Hour)}, rootToken)
	st.put(ClientRecord{ClientID: "limited", Scopes: []string{"auth:create-client:fz/*", "auth:update-client:fz/*", "auth:create-role:fz-*", "auth:update-role:fz-*", "b"},
		Expires: frozen.Add(time.Hour)}, "limited-token-0123456789ab")
	reset := func() {
		st.mu.Lock()
		for id := range st.clients {
			if strings.HasPrefix(id, "fz/") {
				delete(st.clients, id)
			}
		}
		for id := range st.roles {
			delete(st.roles, id)
			st.resolver = st.resolver.Delete(id)
		}
		st.mu.Unlock()
		st.put(ClientRecord{ClientID: "fz/old", Scopes: []string{"b"}, Description: "old", Expires: frozen.Add(time.Hour)}, "fz-old-token-0123456789abc")
		st.putRole("fz-old", "b")
	}
	snapshot := func() string {
		st.mu.Lock()
		defer st.mu.Unlock()
		b, _ := json.Marshal([]any{st.clients, st.roles})
		return string(b)
	}
	allowed := map[int]bool{200: true, 204: true, 400: true, 401: true, 403: true, 404: true, 409: true, 413: true}
	f.Fuzz(func(t *testing.T, which uint8, body string, asRoot bool) {
		ep := fuzzEndpoints[int(which)%len(fuzzEndpoints)]
		reset()
		before := snapshot()
		u := "http://tc.example.com" + apiPrefix + ep.path
		req := httptest.NewRequest(ep.method, u, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		creds := protocol.Credentials{ClientID: "limited", AccessToken: "limited-token-0123456789ab"}
		if asRoot {
			creds = protocol.Credentials{ClientID: "root", AccessToken: rootToken}
		}
		auth, err := protocol.SignRequest(creds, ep.method, u, protocol.SignOptions{Now: frozen})
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", auth)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if !allowed[w.Code] {
			t.Fatalf("%s %s with %q: status %d\n%s", ep.method, ep.path, body, w.Code, w.Body)
		}
		if w.Code >= 400 {
			var eb struct{ Code, Message string }
			if json.Unmarshal(w.Body.Bytes(), &eb) != nil || eb.Code == "" || eb.Message == "" {
				t.Fatalf("%d without Taskcluster's error body: %s", w.Code, w.Body)
			}
			if after := snapshot(); after != before {
				t.Fatalf("%s %s with %q answered %d but changed the state", ep.method, ep.path, body, w.Code)
			}
		}
	})
}
