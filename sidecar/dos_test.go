package sidecar

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/prototest"
)

// These tests are about one caller's bad input costing other callers
// nothing: malformed ids, control-plane answers about one id, floods of
// unknown ids from one source.

// rawHawk builds a syntactically valid Hawk header for any id, including
// ones protocol.SignRequest would not sign for.
func rawHawk(id string) string {
	return fmt.Sprintf(`Hawk id="%s", ts="%d", nonce="n%d", mac="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="`,
		id, time.Now().Unix(), time.Now().UnixNano())
}

// TestMalformedIDsRefusedLocally: a Hawk id that cannot be a clientId is
// refused with 401 without a control-plane call, and a burst of them does
// not stop an uncached legitimate client from getting in.
func TestMalformedIDsRefusedLocally(t *testing.T) {
	for _, tc := range []struct{ name, id string }{
		{"empty", ""},
		{"space", "bad id"},
		{"comma", "a,b"},
		{"percent", "a%2Fb"},
		{"star", "ab*"},
		{"semicolon", "a;b"},
		{"unicode", "ünïcode"},
		{"emoji", "emoji😀"},
		{"tab", "tab\tid"},
		{"too long for a header", strings.Repeat("a", 5000)},
		{"too long, bad characters", strings.Repeat("é", 1500)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			for i := 0; i < 10; i++ {
				req := h.request(call{method: "GET", path: "/notes/a"})
				req.Header.Set("Authorization", rawHawk(tc.id))
				a := h.send(req)
				if a.status != 401 || a.err.Code != protocol.CodeAuthenticationFailed {
					t.Fatalf("request %d: %d %s, want 401 AuthenticationFailed", i, a.status, a.body)
				}
			}
			if n := h.cp.fetches(tc.id); n != 0 {
				t.Errorf("%d control-plane fetches for a malformed id", n)
			}
			if a := h.do(call{method: "GET", path: "/notes/zz", creds: bob}); a.status != 403 {
				// bob may not read notes/b: 403 proves he was verified.
				t.Errorf("uncached legitimate client after the burst: %d %s", a.status, a.body)
			}
			if a := h.do(call{method: "GET", path: "/notes/a", creds: alice}); a.status != 200 {
				t.Errorf("alice after the burst: %d %s", a.status, a.body)
			}
		})
	}
}

// TestControlPlaneAnswerAboutOneID: what each control-plane answer to one
// id's credentials call does to that request, to the same id again, and
// to another, uncached id right after.
func TestControlPlaneAnswerAboutOneID(t *testing.T) {
	const id = "victim/x"
	for _, tc := range []struct {
		name      string
		fault     credFault
		want      int   // for the request with id
		cached    bool  // a second request is answered without a fetch
		perCall   int64 // most fetches per request (a catching-up node gets one retry)
		otherWant int   // an uncached legitimate client right after
		loud      bool  // the sidecar logs that its own credentials are refused
	}{
		{"400", credFault{status: 400}, 401, true, 1, 200, false},
		{"404", credFault{status: 404}, 401, true, 1, 200, false},
		{"401", credFault{status: 401}, 503, false, 1, 200, true},
		{"403", credFault{status: 403}, 503, false, 1, 200, true},
		{"429", credFault{status: 429}, 503, false, 1, 200, false},
		{"409", credFault{status: 409}, 503, false, 1, 200, false},
		{"503 catching up", credFault{status: 503, retryAfter: true}, 503, false, 2, 200, false},
		// No answer from the control plane: fail fast for a second for
		// every uncached id instead of each waiting for its own timeout.
		{"500", credFault{status: 500}, 503, false, 1, 503, false},
		{"502", credFault{status: 502}, 503, false, 1, 503, false},
		{"503 without Retry-After", credFault{status: 503}, 503, false, 1, 503, false},
		{"timeout", credFault{hang: true}, 503, false, 1, 503, false},
		// net/http's Transport replays an idempotent request once when a
		// reused keep-alive connection dies before the answer (it may
		// just have gone stale), so a drop costs one or two fetches.
		{"connection dropped", credFault{drop: true}, 503, false, 2, 503, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs prototest.SyncBuffer
			h := newHarness(t, func(c *Config) {
				c.FetchTimeout = 300 * time.Millisecond
				c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			h.cp.setClientSilently(id, "victim-secret", "notes:read:*")
			h.cp.credFaults.Store(id, tc.fault)
			victim := &protocol.Credentials{ClientID: id, AccessToken: "victim-secret"}
			if a := h.do(call{method: "GET", path: "/notes/a", creds: victim}); a.status != tc.want {
				t.Fatalf("request for %s: %d %s, want %d", id, a.status, a.body, tc.want)
			}
			if a := h.do(call{method: "GET", path: "/notes/a", creds: alice}); a.status != tc.otherWant {
				t.Errorf("another uncached client right after: %d %s, want %d", a.status, a.body, tc.otherWant)
			}
			if tc.otherWant == 503 {
				time.Sleep(1100 * time.Millisecond) // past the fail-fast pause
			}
			before := h.cp.fetches(id)
			if min := minFetches(tc.fault, tc.perCall); before < min || before > tc.perCall {
				t.Errorf("%d fetches for one request, want %d to %d", before, min, tc.perCall)
			}
			h.do(call{method: "GET", path: "/notes/a", creds: victim})
			if again := h.cp.fetches(id) - before; tc.cached && again != 0 || !tc.cached && again == 0 {
				t.Errorf("second request fetched %d times; cached negatively: want %v", again, tc.cached)
			}
			// Once the control plane answers properly, the id works.
			h.cp.credFaults.Delete(id)
			if tc.otherWant == 503 {
				time.Sleep(1100 * time.Millisecond)
			}
			if !tc.cached {
				if a := h.do(call{method: "GET", path: "/notes/a", creds: victim}); a.status != 200 {
					t.Errorf("after the fault: %d %s", a.status, a.body)
				}
			}
			loud := strings.Contains(logs.String(), "rejects the sidecar's own credentials")
			if loud != tc.loud {
				t.Errorf("loud log %v, want %v: %s", loud, tc.loud, logs.String())
			}
		})
	}
}

// minFetches is the fewest credentials calls one request makes under a
// fault: a dropped connection is replayed only when it was a reused one.
func minFetches(f credFault, most int64) int64 {
	if f.drop {
		return 1
	}
	return most
}

// fromAddr returns an HTTP client whose connections come from the given
// loopback address (Linux routes all of 127.0.0.0/8 to lo).
func fromAddr(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

func (h *harness) sendWith(c *http.Client, req *http.Request) int {
	h.t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestRandomIDsFromOneSource: many random well-formed ids from one
// source neither evict a cached client, nor flood the control plane,
// nor block a real client from another source.
func TestRandomIDsFromOneSource(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.ClientCacheSize, c.CacheShards = 4, 1 // one shard of 4: any insert would evict
		c.UnknownClientBurst, c.UnknownClientRate = 20, 1
	})
	if a := h.do(call{method: "GET", path: "/notes/a", creds: alice}); a.status != 200 {
		t.Fatal(a.status)
	}
	attacker := fromAddr("127.0.0.2")
	statuses := map[int]int{}
	for i := 0; i < 300; i++ {
		creds := &protocol.Credentials{ClientID: fmt.Sprintf("random/%d", i), AccessToken: "whatever"}
		statuses[h.sendWith(attacker, h.request(call{method: "GET", path: "/notes/a", creds: creds}))]++
	}
	if statuses[401] < 20 || statuses[429] < 250 || statuses[401]+statuses[429] != 300 {
		t.Errorf("statuses for 300 random ids: %v, want about 20×401 then 429s", statuses)
	}
	var fetched int64
	for i := 0; i < 300; i++ {
		fetched += h.cp.fetches(fmt.Sprintf("random/%d", i))
	}
	if fetched > 25 {
		t.Errorf("300 random ids cost %d control-plane fetches, want at most the burst (+refill)", fetched)
	}
	// The cached client was not pushed out (it is not fetched again)...
	if a := h.do(call{method: "GET", path: "/notes/a", creds: alice}); a.status != 200 || h.cp.fetches("alice") != 1 {
		t.Errorf("cached client after the flood: %d, fetched %d times (evicted)", a.status, h.cp.fetches("alice"))
	}
	// ...and an uncached client from another source gets in.
	if a := h.do(call{method: "GET", path: "/notes/zz", creds: bob}); a.status != 403 {
		t.Errorf("uncached client from another source: %d %s", a.status, a.body)
	}
	// Over its budget, the flooding source gets 429 in Taskcluster's shape.
	req := h.request(call{method: "GET", path: "/notes/a", creds: &protocol.Credentials{ClientID: "random/x", AccessToken: "x"}})
	resp, err := attacker.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("over budget: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestUnknownFetchesInFlightBounded: lookups of unknown ids from many
// sources at once are bounded by MaxUnknownFetches at the control plane.
func TestUnknownFetchesInFlightBounded(t *testing.T) {
	h := newHarness(t, trustLoopback, func(c *Config) { c.MaxUnknownFetches = 2 })
	h.cp.credDelay.Store(int64(100 * time.Millisecond))
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		req := h.request(call{method: "GET", path: "/notes/a", creds: &protocol.Credentials{ClientID: fmt.Sprintf("u/%d", i), AccessToken: "x"}})
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.0.0.%d", i)) // twelve sources
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if m := h.cp.credMaxFlight.Load(); m > 2 {
		t.Errorf("%d unknown-id fetches in flight at once, want at most 2", m)
	}
}

func TestSourceKey(t *testing.T) {
	for _, tc := range []struct {
		remote, xff string
		trusted     bool
		want        string
	}{
		{"192.0.2.1:1234", "", false, "192.0.2.1"},
		{"192.0.2.1:1234", "198.51.100.7", false, "192.0.2.1"},
		{"192.0.2.1:1234", "198.51.100.7", true, "198.51.100.7"},
		{"192.0.2.1:1234", "6.6.6.6, 198.51.100.7", true, "198.51.100.7"}, // the first entry is the caller's to write
		{"[2001:db8:1:2:3:4:5:6]:443", "", false, "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "", false, "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.9]:80", "", false, "192.0.2.9"},
		{"[fe80::1%eth0]:80", "", false, "fe80::/64"},
		{"not-an-address", "", false, "not-an-address"},
	} {
		r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := sourceKey(r, tc.trusted); got != tc.want {
			t.Errorf("sourceKey(%q, xff %q, trusted %v) = %q, want %q", tc.remote, tc.xff, tc.trusted, got, tc.want)
		}
	}
}

func TestSourceLimiterRefills(t *testing.T) {
	l := newSourceLimiter(2, 3, 1)
	now := time.Unix(1000, 0)
	for i := 0; i < 3; i++ {
		if err := l.admit("a", now); err != nil {
			t.Fatalf("burst %d: %v", i, err)
		}
	}
	if err := l.admit("a", now); err != ErrUnknownClientBudget {
		t.Fatalf("over burst: %v", err)
	}
	if err := l.admit("b", now); err != nil {
		t.Fatalf("another source: %v", err)
	}
	if err := l.admit("a", now.Add(600*time.Millisecond)); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	if err := l.acquire(time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := l.acquire(10 * time.Millisecond); err != errUnknownFetchesBusy {
		t.Fatalf("second slot of one: %v", err)
	}
	l.release()
}
