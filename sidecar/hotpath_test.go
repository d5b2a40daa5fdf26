package sidecar

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/tcauth/tcauth/protocol"
)

// authorizeTarget is a signed GET for creds as authorize sees it (the
// replay check must be off: the same header is reused).
func authorizeTarget(t testing.TB, h *harness, creds *protocol.Credentials, path string) *target {
	t.Helper()
	req := h.request(call{method: "GET", path: path, creds: creds})
	req.RequestURI = req.URL.RequestURI()
	req.Host = req.URL.Host
	tg := &target{r: req, uri: req.RequestURI}
	if _, dn := h.sc.authorize(context.Background(), tg); dn != nil {
		t.Fatalf("not allowed: %s", dn.err.Message)
	}
	return tg
}

// bytesPerAuthorize is the heap allocated by one authorize call and the
// identity headers it leads to (what Rewrite sets), averaged.
func bytesPerAuthorize(t testing.TB, h *harness, tg *target, runs int) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < runs; i++ {
		d, dn := h.sc.authorize(context.Background(), tg)
		if dn != nil {
			t.Fatal(dn.err.Message)
		}
		d.id.set(http.Header{}, h.sc.cfg.MaxScopesHeader)
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// TestBroadAssumeRequestCost: a cached client whose scopes hold a broad
// assume:…* (thousands of expanded scopes) costs a request no more memory
// than any other client. Its set is shared, not copied per request: the
// Authenticator's expand(expandedScopes ∪ assume:anonymous) used to copy
// the whole set and compare it scope by scope with the cached input, and
// the scopes header was rendered in full before being found too long.
// A structural guard (bytes allocated), never a timing.
func TestBroadAssumeRequestCost(t *testing.T) {
	for _, tc := range []struct {
		name   string
		scopes []string
		roles  int
	}{
		// anonymous's notes:read:open is covered: the client's own set is
		// the answer.
		{"anonymous covered", []string{"assume:project:*", "notes:read:*"}, 3000},
		// not covered: the merged set is computed once, then shared.
		{"anonymous adds a scope", []string{"assume:project:*", "notes:read:a"}, 3000},
		// one scope under a broad prefix: the same path, a small set.
		{"small set", []string{"notes:read:a"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.DisableReplayCheck = true })
			h.cp.mu.Lock()
			for i := 0; i < tc.roles; i++ {
				h.cp.roles[fmt.Sprintf("project:p%04d", i)] = []string{fmt.Sprintf("queue:create-task:highest:proj-%04d/worker-type", i)}
			}
			h.cp.clients["broad"] = &fakeClient{token: "broad-secret", scopes: tc.scopes}
			h.cp.mu.Unlock()
			creds := &protocol.Credentials{ClientID: "broad", AccessToken: "broad-secret"}
			tg := authorizeTarget(t, h, creds, "/notes/a")
			d, _ := h.sc.authorize(context.Background(), tg)
			if len(d.id.scopes) < tc.roles {
				t.Fatalf("%d scopes, want the expansion (> %d)", len(d.id.scopes), tc.roles)
			}
			// The set alone is 16 bytes a scope; a request may allocate a
			// small fraction of one copy of it, whatever its size.
			if per := bytesPerAuthorize(t, h, tg, 50); per > 8<<10 {
				t.Errorf("a request of a client with %d scopes allocates %d bytes, want < 8 KiB (its set copied or rendered per request)", len(d.id.scopes), per)
			}
		})
	}
}

// TestAuthorizeAllocs bounds the allocations of one cached request's
// verification and authorisation (Hawk header, route, scopes): a
// structural guard against per-request copies creeping back in.
func TestAuthorizeAllocs(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.DisableReplayCheck = true })
	for _, tc := range []struct {
		name  string
		creds *protocol.Credentials
		max   float64
	}{
		{"permanent, anonymous covered", alice, 20},
		{"permanent, anonymous merged", bobReader(h), 20},
		{"authorizedScopes", &protocol.Credentials{ClientID: "alice", AccessToken: "alice-secret", AuthorizedScopes: []string{"notes:read:a"}}, 24},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := authorizeTarget(t, h, tc.creds, "/notes/a")
			n := testing.AllocsPerRun(200, func() {
				if _, dn := h.sc.authorize(context.Background(), tg); dn != nil {
					t.Fatal(dn.err.Message)
				}
			})
			if n > tc.max {
				t.Errorf("%.0f allocations per request, want at most %.0f", n, tc.max)
			}
		})
	}
}

// bobReader is a client whose scopes do not cover anonymous's, so its
// requests take the merged-set path.
func bobReader(h *harness) *protocol.Credentials {
	h.cp.mu.Lock()
	h.cp.clients["reader"] = &fakeClient{token: "reader-secret", scopes: []string{"notes:read:a"}}
	h.cp.mu.Unlock()
	return &protocol.Credentials{ClientID: "reader", AccessToken: "reader-secret"}
}

// TestScopesJSONLen: the length computed without rendering is the
// rendered length, for every kind of character the renderer escapes.
func TestScopesJSONLen(t *testing.T) {
	for _, s := range [][]string{
		nil, {}, {""}, {"a"}, {"a", "b"}, {`quote"d`, `back\slash`},
		{"ctl\x00\x1f", "del\x7f", "hi\xff\x80", "naïve"},
		{strings.Repeat("x", 5000), "y"},
	} {
		if got, want := scopesJSONLen(s), len(scopesJSON(s)); got != want {
			t.Errorf("scopesJSONLen(%q) = %d, want %d", s, got, want)
		}
	}
}

// FuzzScopesJSONLen: the same for any input.
func FuzzScopesJSONLen(f *testing.F) {
	f.Add("a\x00b\"c\\", "d")
	f.Fuzz(func(t *testing.T, a, b string) {
		s := []string{a, b}
		if got, want := scopesJSONLen(s), len(scopesJSON(s)); got != want {
			t.Errorf("scopesJSONLen(%q) = %d, want %d", s, got, want)
		}
	})
}

// TestScopeSetsShared: equal sets from separate decodes come back as one
// array (strings interned too); different sets stay apart; a set nobody
// holds any more is collected and its slot swept.
func TestScopeSetsShared(t *testing.T) {
	tbl := newScopeSets()
	mk := func(prefix string, n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = strings.Clone(fmt.Sprintf("%s:%02d", prefix, i)) // fresh strings, as a JSON decoder makes them
		}
		return s
	}
	a, b, c := tbl.intern(mk("x", 12)), tbl.intern(mk("x", 12)), tbl.intern(mk("y", 12))
	if !sameSlice(a, b) {
		t.Error("equal sets were not shared")
	}
	if sameSlice(a, c) || c[0] != "y:00" {
		t.Errorf("different sets shared: %v %v", a, c)
	}
	if cap(a) != len(a) {
		t.Errorf("cap %d > len %d: an append could write into the shared array", cap(a), len(a))
	}
	// nil ("the control plane sent no scopes") and empty stay apart.
	if got := tbl.intern(nil); got != nil {
		t.Errorf("intern(nil) = %#v, want nil", got)
	}
	if got := tbl.intern([]string{}); got == nil || len(got) != 0 {
		t.Errorf("intern([]) = %#v, want an empty non-nil list", got)
	}
	// Thousands of sets nobody keeps: the table does not keep them alive,
	// and sweeps their slots.
	for i := 0; i < 4*minSweep; i++ {
		_ = tbl.intern(mk(fmt.Sprintf("tmp%d", i), 2))
		if i%minSweep == 0 {
			runtime.GC()
		}
	}
	runtime.GC()
	_ = tbl.intern(mk("last", 1))
	if n := tbl.len(); n > 2*minSweep+3 {
		t.Errorf("%d slots after 4096 dropped sets, want them swept", n)
	}
	runtime.KeepAlive(a)
	runtime.KeepAlive(c)
}

// TestCachedClientMemory bounds the heap per cached client (the model of
// BenchmarkClientCacheMemory, at a size a test can afford): the entry,
// its LRU slot and token, with the scope lists shared. Before the lists
// were shared, and the first request left a copy of the expanded set in
// the expansion cache, a client took about 2.6 KB.
func TestCachedClientMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a cache of 20,000 clients")
	}
	per, _ := cachedClientBytes(t, 20_000)
	if per > 800 {
		t.Errorf("%.0f bytes per cached client, want at most 800", per)
	}
	t.Logf("%.0f bytes per cached client", per)
}
