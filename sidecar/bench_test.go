package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/scopeengine"
)

// The proxy benchmarks run the same in-process upstream behind (a) the
// sidecar in local mode, (b) a plain httputil.ReverseProxy and (c) the
// sidecar in remote mode, with the same signed requests, so their ns/op,
// p50 and p99 compare side by side in one run:
//
//	go test -run XXX -bench 'Sidecar|PlainReverse' -benchtime 2s ./sidecar/
//
// Parallelism: -cpu sets GOMAXPROCS; each benchmark runs 64/GOMAXPROCS
// goroutines per P (b.SetParallelism) so about 64 connections are busy.

func benchUpstream(b *testing.B) *httptest.Server {
	body := []byte(`{"ok":true}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	b.Cleanup(srv.Close)
	return srv
}

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}}
}

// runProxyBench sends signed GETs through front from ~64 goroutines and
// reports latency percentiles.
func runProxyBench(b *testing.B, front string, creds *protocol.Credentials) {
	c := benchClient()
	url := front + "/notes/a"
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			req, _ := http.NewRequest("GET", url, nil)
			auth, err := protocol.SignRequest(*creds, "GET", url, protocol.SignOptions{})
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Authorization", auth)
			start := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			local = append(local, time.Since(start))
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	b.StopTimer()
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func benchHarness(b *testing.B, tweak ...func(*Config)) *harness {
	up := benchUpstream(b)
	all := append([]func(*Config){func(c *Config) { c.Upstream = up.URL }}, tweak...)
	return newHarness(b, all...)
}

func BenchmarkSidecarLocal(b *testing.B) {
	h := benchHarness(b)
	runProxyBench(b, h.front.URL, alice)
}

func BenchmarkSidecarRemote(b *testing.B) {
	h := benchHarness(b, remoteMode)
	runProxyBench(b, h.front.URL, alice)
}

func BenchmarkPlainReverseProxy(b *testing.B) {
	up := benchUpstream(b)
	target, _ := url.Parse(up.URL)
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second},
		// The same copy-buffer pool as the sidecar, so the comparison
		// measures verification, not buffer allocation.
		BufferPool: copyBuffers{},
	}
	front := httptest.NewServer(rp)
	b.Cleanup(front.Close)
	runProxyBench(b, front.URL, alice)
}

// BenchmarkVerifyCached is the verification cost per request with the
// client and its expansion cached: Hawk MAC, route match, scope check (no
// network, no nonce store).
func BenchmarkVerifyCached(b *testing.B) {
	for _, tc := range []struct {
		name  string
		creds protocol.Credentials
	}{
		{"permanent", *alice},
		{"authorizedScopes", protocol.Credentials{ClientID: "alice", AccessToken: "alice-secret", AuthorizedScopes: []string{"notes:read:a"}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := newHarness(b, func(c *Config) { c.DisableReplayCheck = true })
			req := h.request(call{method: "GET", path: "/notes/a", creds: &tc.creds})
			req.RequestURI = req.URL.RequestURI()
			req.Host = req.URL.Host
			t := &target{r: req, uri: req.RequestURI}
			if _, dn := h.sc.authorize(context.Background(), t); dn != nil {
				b.Fatalf("not allowed: %s", dn.err.Message)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, dn := h.sc.authorize(context.Background(), t); dn != nil {
					b.Fatal(dn.err.Message)
				}
			}
		})
	}
}

// BenchmarkClientCacheMemory reports the heap held per cached client with
// 100,000 clients, each built the way a fetch builds it: a credentials
// answer decoded from JSON (so every string is its own allocation, as in
// production), a 44-character token, 12 scopes, the clients spread over 97
// distinct scope sets (the workers of one pool share theirs), and each
// client's first request run through the Authenticator's expansion step.
//
//	go test -run '^$' -bench BenchmarkClientCacheMemory -benchtime 1x ./sidecar/
func BenchmarkClientCacheMemory(b *testing.B) {
	for i := 0; i < b.N; i++ {
		per, total := cachedClientBytes(b, 100_000)
		b.ReportMetric(per, "B/client")
		b.ReportMetric(total/(1<<20), "MiB/100k")
	}
}

// memClientAnswer is client i's credentials answer as the control plane
// sends it.
func memClientAnswer(i int) []byte {
	id := fmt.Sprintf("project/team-%d/worker-%06d", i%97, i)
	scopes := make([]string, 12)
	for j := range scopes {
		scopes[j] = fmt.Sprintf("queue:create-task:highest:proj-%d/worker-type-%02d", i%97, j)
	}
	data, _ := json.Marshal(map[string]any{"clientId": id, "accessToken": fmt.Sprintf("%044d", i),
		"scopes": scopes, "expandedScopes": scopes, "expires": "3000-01-01T00:00:00.000Z", "disabled": false})
	return data
}

// cachedClientBytes fills a fresh verifier's caches with n clients and
// returns the heap growth per client and in total.
func cachedClientBytes(tb testing.TB, n int) (per, total float64) {
	cfg := DefaultConfig()
	cfg.fillDefaults()
	cfg.ClientCacheSize, cfg.ExpandedCacheSize = n, n
	m := newMetrics(nil)
	res, err := scopeengine.NewResolver(nil)
	if err != nil {
		tb.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := newLocalVerifier(&cfg, nil, m)
	v.setRoles(res)
	snap := v.roles.Load()
	for i := 0; i < n; i++ {
		var resp credentialsResponse
		if err := json.Unmarshal(memClientAnswer(i), &resp); err != nil {
			tb.Fatal(err)
		}
		resp.Index = 1
		e := &clientEntry{fetched: time.Now().UnixNano(), epoch: v.epochs.Add(1), gen: snap.gen,
			client: protocol.Client{ClientID: strings.Clone(resp.ClientID)}}
		if err := v.fill(e, &resp); err != nil {
			tb.Fatal(err)
		}
		v.withAnonymous(e, snap)
		v.clients.Add(e.client.ClientID, e)
		// The first request's expansion (expandedScopes ∪ assume:anonymous),
		// which may leave something cached.
		rv := &requestVerifier{v: v, snap: snap, id: e.client.ClientID, entry: e}
		_ = rv.ExpandWith(e.client.ExpandedScopes, []string{"assume:anonymous"})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(v)
	total = float64(after.HeapAlloc) - float64(before.HeapAlloc)
	return total / float64(n), total
}
