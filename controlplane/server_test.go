package controlplane

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies([]string{"10.0.0.5", "10.1.0.0/16", " ::1 ", ""})
	if err != nil || len(got) != 3 || got[0] != netip.MustParsePrefix("10.0.0.5/32") || !got[1].Contains(netip.MustParseAddr("10.1.2.3")) {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := ParseTrustedProxies([]string{"nope"}); err == nil {
		t.Fatal("accepted a bad address")
	}
}

// BenchmarkAuthenticatedRequest measures one Hawk-authenticated GET through
// the whole pipeline in-process, with the expansion cache warm and with it
// defeated (a new resolver before every request), side by side.
func BenchmarkAuthenticatedRequest(b *testing.B) {
	st := newMemStore()
	roleID := func(i int) string { return "project-" + string(rune('a'+i%26)) + string(rune('a'+i/26)) }
	for i := 0; i < 200; i++ {
		st.putRole(roleID(i), "secrets:get:"+roleID(i), "queue:create-task:"+roleID(i))
	}
	scopes := []string{"auth:current-scopes"}
	for i := 0; i < 100; i++ {
		scopes = append(scopes, "assume:"+roleID(i))
	}
	st.put(ClientRecord{ClientID: "bench", Scopes: scopes, Expires: frozen.AddDate(1, 0, 0)}, "bench-token-0123456789ab")
	cfg := DefaultConfig()
	cfg.Now = func() time.Time { return frozen }
	cfg.Logger = quietLogger()
	srv, err := New(cfg, st)
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	auth, err := protocol.SignRequest(protocol.Credentials{ClientID: "bench", AccessToken: "bench-token-0123456789ab"}, "GET",
		"http://tc.example.com/api/auth/v1/scopes/current", protocol.SignOptions{Now: frozen})
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, bust bool) {
		for i := 0; i < b.N; i++ {
			if bust {
				b.StopTimer()
				st.mu.Lock()
				st.resolver, _ = st.resolver.Put(scopeengine.Role{RoleID: "zz", Scopes: []string{"z"}})
				st.mu.Unlock()
				b.StartTimer()
			}
			req := httptest.NewRequest("GET", "http://tc.example.com/api/auth/v1/scopes/current", nil)
			req.Header.Set("Authorization", auth)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	}
	b.Run("cached", func(b *testing.B) { run(b, false) })
	b.Run("uncached", func(b *testing.B) { run(b, true) })
}
