package benchcompare

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
)

// benchLogLevel is the log level of every tcauth process these sections
// start: info, the flag's default, as a deployment runs it (the harness
// starts its processes at debug, which logs more per request).
const benchLogLevel = "info"

// benchControlPlane measures authenticateHawk — what a service without a
// sidecar calls for every request — on one node and on three (requests
// round-robin over the nodes), next to ping, a handler that does nothing,
// on the same node(s) and HTTP stack: the ratio is the cost of
// verification itself.
func benchControlPlane(t *testing.T, s Settings) []Row {
	var rows []Row
	for _, size := range []int{1, 3} {
		rows = append(rows, benchControlPlaneSize(t, s, size)...)
	}
	return rows
}

func benchControlPlaneSize(t *testing.T, s Settings, size int) []Row {
	c := startBenchCluster(t, size)
	defer c.StopAll()
	caller := c.CreateClient(t, 0, "bench/hawk-caller", "auth:current-scopes", "bench:read:*", "bench:write:static")
	waitKnownEverywhere(t, c, caller)
	urls, pids := nodeURLs(c), nodePids(c)
	nodes := fmt.Sprintf("%d node", size)
	if size > 1 {
		nodes += "s, round-robin"
	}
	const hawk, ping = "authenticateHawk", "ping (empty handler)"
	var rows []Row
	for _, conns := range s.Conns {
		hc := benchHTTPClient(conns)
		pools := &poolSizer{perSecond: 20000}
		samples, err := Rounds(s.Rounds, []string{hawk, ping}, func(name string) (Sample, error) {
			if name == ping {
				return withCPU(pids, func() Sample {
					return ClosedLoop(conns, s.Duration, func(w, seq int) error {
						return expectOK(hc, http.MethodGet, urls[(w+seq)%len(urls)]+"/api/auth/v1/ping", nil, "", nil)
					})
				})
			}
			return pools.run(hawk, s.Duration, func(n int) (Sample, error) {
				pool, err := signAuthenticateHawk(caller, urls, n)
				if err != nil {
					return Sample{}, err
				}
				return withCPU(pids, func() Sample {
					return ClosedLoop(conns, s.Duration, func(w, seq int) error { return pool.send(hc, authSuccess) })
				})
			})
		})
		if err != nil {
			t.Fatalf("control plane, %s, %d conns: %v", nodes, conns, err)
		}
		load := nodes + ", " + plural(conns, "conn")
		note := "log level " + benchLogLevel + "; each body a pre-signed Hawk header (fresh nonce) of a real client"
		r := RowFromSamples("control plane", "tcauth "+hawk, load, "req/s", "tcauth "+ping, samples[hawk])
		r.Note = note
		rows = append(rows, r, RowFromSamples("control plane", "tcauth "+ping, load, "req/s", "", samples[ping]))
		AddSeries("control plane, "+load, hawk, mergeLatencies(samples[hawk]))
		AddSeries("control plane, "+load, ping, mergeLatencies(samples[ping]))
	}
	return rows
}

// authSuccess accepts an authenticateHawk answer only when the verdict
// is a success: the endpoint answers 200 also for a refused signature.
func authSuccess(body []byte) error {
	if !bytes.Contains(body, []byte(`"auth-success"`)) {
		return fmt.Errorf("authenticateHawk did not succeed: %.300s", body)
	}
	return nil
}

// signAuthenticateHawk prepares n authenticateHawk calls, round-robin over
// urls, each carrying a header signed now with a fresh nonce for a GET of a
// service, as a service behind no sidecar forwards its callers' headers.
func signAuthenticateHawk(creds protocol.Credentials, urls []string, n int) (*requestPool, error) {
	p := &requestPool{reqs: make([]preparedRequest, n)}
	for i := range p.reqs {
		resource := "/api/bench/v1/items/" + strconv.Itoa(i)
		auth, err := protocol.SignRequest(creds, http.MethodGet, "https://bench.example.com"+resource, protocol.SignOptions{})
		if err != nil {
			return nil, err
		}
		body, err := json.Marshal(protocol.AuthenticateHawkRequest{Method: "get", Resource: resource,
			Host: "bench.example.com", Port: 443, Authorization: auth, SourceIP: "192.0.2.7"})
		if err != nil {
			return nil, err
		}
		p.reqs[i] = preparedRequest{method: http.MethodPost, url: urls[i%len(urls)] + "/api/auth/v1/authenticate-hawk",
			contentType: "application/json", body: body}
	}
	return p, nil
}

// preparedRequest is one request ready to send: signed (if at all) before
// the timed loop, used once.
type preparedRequest struct {
	method, url, contentType, auth string
	body                           []byte
}

// requestPool hands out each prepared request once, across workers.
type requestPool struct {
	reqs []preparedRequest
	next atomic.Int64
}

// errPoolExhausted says a round outran the requests signed for it: the
// round fails rather than reuse a nonce or sign inside the timed loop.
var errPoolExhausted = fmt.Errorf("pre-signed requests exhausted: raise the pool size")

func (p *requestPool) take() (*preparedRequest, error) {
	i := p.next.Add(1) - 1
	if i >= int64(len(p.reqs)) {
		return nil, errPoolExhausted
	}
	return &p.reqs[i], nil
}

func (p *requestPool) send(hc *http.Client, check func([]byte) error) error {
	r, err := p.take()
	if err != nil {
		return err
	}
	return expectOK(hc, r.method, r.url, r.body, r.contentType, check, "Authorization", r.auth)
}

// poolSizer sizes each round's pool of pre-signed requests: 2.5 times the
// best rate seen so far for that contender (perSecond before any round),
// so that a faster round never runs dry.
type poolSizer struct {
	mu        sync.Mutex
	perSecond float64
	best      map[string]float64
}

func (p *poolSizer) size(key string, d time.Duration) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	rate := p.perSecond
	if b := p.best[key]; b > 0 {
		rate = 2.5 * b
	}
	return int(rate*d.Seconds()) + 1000
}

// run measures one round with a pool of size(key, d) requests that round
// signs itself (round(n)). A round whose pool ran dry is not a
// measurement: it is re-run with a pool four times larger, at most
// poolAttempts times in all, as the sidecar section does (a first guess
// of the rate is low on a fast machine). The rate of a kept round feeds
// the next round's size.
func (p *poolSizer) run(key string, d time.Duration, round func(n int) (Sample, error)) (Sample, error) {
	n := p.size(key, d)
	for attempt := 1; ; attempt++ {
		smp, err := round(n)
		if err != nil || !errors.Is(smp.FirstErr, errPoolExhausted) {
			if err == nil {
				p.observe(key, smp)
			}
			return smp, err
		}
		if attempt == poolAttempts {
			return Sample{}, fmt.Errorf("%w in %d attempts (last pool: %d requests)", errPoolExhausted, attempt, n)
		}
		poolReruns.Add(1)
		n *= 4
	}
}

func (p *poolSizer) observe(key string, s Sample) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.best == nil {
		p.best = map[string]float64{}
	}
	p.best[key] = max(p.best[key], s.RPS())
}

// expectOK sends one request and wants a 2xx answer (and check's
// approval of its body, when check is set); headers are name, value pairs.
func expectOK(hc *http.Client, method, url string, body []byte, contentType string, check func([]byte) error, headers ...string) error {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] != "" {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %.300s", method, url, resp.StatusCode, b)
	}
	if check != nil {
		return check(b)
	}
	return nil
}

// benchHTTPClient keeps one idle connection per worker per host, so that
// a closed loop of conns workers reuses conns connections.
func benchHTTPClient(conns int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 4 * conns, MaxIdleConnsPerHost: conns + 4, IdleConnTimeout: time.Minute,
		DisableCompression: true}}
}

// startBenchCluster starts a cluster of size nodes at benchLogLevel
// (a later --log-level wins over the harness's debug) and waits until
// every node is ready.
func startBenchCluster(t *testing.T, size int, extra ...string) *harness.Cluster {
	t.Helper()
	c := harness.StartCluster(t, harness.ClusterConfig{Size: size,
		ExtraArgs: append([]string{"--log-level", benchLogLevel}, extra...)})
	for _, n := range c.Nodes {
		n.WaitReady(t, 30*time.Second)
	}
	return c
}

func nodeURLs(c *harness.Cluster) []string {
	var u []string
	for _, n := range c.Nodes {
		u = append(u, n.URL())
	}
	return u
}

func nodePids(c *harness.Cluster) []int {
	var p []int
	for _, n := range c.Nodes {
		p = append(p, n.Pid())
	}
	return p
}

// withCPU runs f and sets the sample's CPU: that of the processes pids
// (and their children) meanwhile.
func withCPU(pids []int, f func() Sample) (Sample, error) {
	before, err := TreeCPU(pids...)
	if err != nil {
		return Sample{}, err
	}
	smp := f()
	after, err := TreeCPU(pids...)
	if err != nil {
		return Sample{}, err
	}
	smp.CPU = after - before
	return smp, nil
}

// waitKnownEverywhere waits until every node authenticates creds: a
// follower that is caught up is still replication lag behind.
func waitKnownEverywhere(t *testing.T, c *harness.Cluster, creds protocol.Credentials) {
	t.Helper()
	for i := range c.Nodes {
		cl := c.Client(i, &creds)
		err := harness.Eventually(20*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return cl.Do(ctx, http.MethodGet, "/scopes/current", nil, nil, nil)
		})
		if err != nil {
			t.Fatalf("%s not known on %s: %v", creds.ClientID, c.Nodes[i].ID, err)
		}
	}
}

// mergeLatencies is all rounds' latencies, sorted, for the chart
// (shared by the sections of this package).
func mergeLatencies(samples []Sample) []time.Duration {
	var all []time.Duration
	for _, s := range samples {
		all = append(all, s.Latencies...)
	}
	slices.Sort(all)
	return all
}

// plural is "1 conn", "16 conns".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// pathSeg escapes an id for a URL path as the official clients do.
func pathSeg(s string) string { return tcclient.PathSegment(s) }

// TestRequestPool checks that every prepared request goes out once, to
// one worker, and that running dry is an error rather than a reuse.
func TestRequestPool(t *testing.T) {
	p := &requestPool{reqs: make([]preparedRequest, 100)}
	for i := range p.reqs {
		p.reqs[i].url = strconv.Itoa(i)
	}
	seen := make([]atomic.Int32, len(p.reqs))
	var wg sync.WaitGroup
	var dry atomic.Int32
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 20; k++ {
				r, err := p.take()
				if err != nil {
					if err != errPoolExhausted {
						t.Error(err)
					}
					dry.Add(1)
					continue
				}
				i, _ := strconv.Atoi(r.url)
				seen[i].Add(1)
			}
		}()
	}
	wg.Wait()
	for i := range seen {
		if n := seen[i].Load(); n != 1 {
			t.Errorf("request %d taken %d times", i, n)
		}
	}
	if dry.Load() != 8*20-100 {
		t.Errorf("%d takes ran dry, want %d", dry.Load(), 8*20-100)
	}
}

// TestAuthSuccess checks that only a success verdict counts: the
// endpoint answers 200 for a refused signature too.
func TestAuthSuccess(t *testing.T) {
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`{"status": "auth-success", "clientId": "x"}`, true},
		{`{"status": "auth-failed", "message": "bad mac"}`, false},
		{`{"status": "no-auth"}`, false},
		{``, false},
	} {
		if err := authSuccess([]byte(tc.body)); (err == nil) != tc.ok {
			t.Errorf("%q: %v", tc.body, err)
		}
	}
}

// TestPoolSizerRerun: a round that ran out of pre-signed requests is run
// again with a larger pool, and only a kept round sizes the next; a round
// that failed otherwise is not re-run.
func TestPoolSizerRerun(t *testing.T) {
	p := &poolSizer{perSecond: 100}
	var sizes []int
	dryOnce := func(n int) (Sample, error) {
		sizes = append(sizes, n)
		if len(sizes) == 1 {
			return Sample{Requests: int64(n), Errors: 9, FirstErr: errPoolExhausted, Elapsed: time.Second}, nil
		}
		return Sample{Requests: 5000, Elapsed: time.Second}, nil
	}
	reruns := poolReruns.Load()
	smp, err := p.run("k", time.Second, dryOnce)
	if err != nil || smp.Requests != 5000 || len(sizes) != 2 || sizes[1] != 4*sizes[0] || poolReruns.Load() != reruns+1 {
		t.Fatalf("sizes %v, sample %+v, err %v", sizes, smp, err)
	}
	if got := p.size("k", time.Second); got != int(2.5*5000)+1000 {
		t.Errorf("next size %d, want one from the kept round's rate", got)
	}
	real := errors.New("a 500")
	calls := 0
	smp, _ = p.run("k2", time.Second, func(int) (Sample, error) {
		calls++
		return Sample{Requests: 1, Errors: 1, FirstErr: real}, nil
	})
	if calls != 1 || smp.FirstErr != real {
		t.Errorf("a real failure: %d calls, %+v", calls, smp)
	}
	calls = 0
	_, err = p.run("k3", time.Second, func(int) (Sample, error) {
		calls++
		return Sample{Errors: 1, FirstErr: errPoolExhausted}, nil
	})
	if !errors.Is(err, errPoolExhausted) || calls != poolAttempts {
		t.Errorf("always dry: %d calls, %v", calls, err)
	}
}
