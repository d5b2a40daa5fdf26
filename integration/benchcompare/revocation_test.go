package benchcompare

import (
	"context"
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
)

const (
	revSidecars = 10
	// revPoll is the pause between two polls of one sidecar: a revocation
	// is seen at most this (plus one request) late.
	revPoll = time.Millisecond
	// revBackground is the number of workers loading sidecar 1 meanwhile.
	revBackground = 8
	revTimeout    = 30 * time.Second
)

// benchRevocation measures how long a revoked credential keeps working:
// ten sidecars (local verification) in front of a three-node cluster,
// spread over the nodes, the first of them under load. For each
// revocation — resetAccessToken and disableClient in turn — a client is
// warmed in every sidecar, revoked, and every sidecar is polled with the
// old credentials (a fresh signature each time) until it refuses; the
// latency counts from the moment the revoking call answered.
func benchRevocation(t *testing.T, s Settings) []Row {
	c := startBenchCluster(t, 3)
	defer c.StopAll()
	_, upstream := startPeer(t, c, "upstream", "/")
	scs := make([]*harness.Sidecar, revSidecars)
	for i := range scs {
		scs[i] = c.StartSidecarVia(t, fmt.Sprintf("rev-sidecar-%d", i+1), upstream, whoamiRoutes, i%len(c.Nodes),
			"--log-level", benchLogLevel)
	}
	bg := startBackground(t, c, scs[0])
	ops := []string{"resetAccessToken", "disableClient"}
	lat := map[string][]time.Duration{}
	loaded := map[string][]time.Duration{}
	var calls []time.Duration
	n := s.Size(20, 2)
	for k := 0; k < n; k++ {
		op := ops[k%2]
		all, call := revokeOnce(t, c, scs, k, op)
		lat[op] = append(lat[op], all...)
		loaded[op] = append(loaded[op], all[0])
		calls = append(calls, call)
	}
	bgRate := bg.stop(t)
	slices.Sort(calls)
	var rows []Row
	for _, op := range ops {
		l := lat[op]
		slices.Sort(l)
		slices.Sort(loaded[op])
		smp := Sample{Latencies: l}
		rows = append(rows, Row{Section: "revocation", Contender: "tcauth sidecar (local verification)",
			Load:  fmt.Sprintf("%s, %d sidecars × %d", op, revSidecars, len(l)/revSidecars),
			Value: ms(l[len(l)-1]), Unit: "ms (max)", P50: smp.Quantile(0.5), P99: smp.Quantile(0.99),
			Note: fmt.Sprintf("from the call's answer to a 401/403 at each sidecar; polled every %s with fresh signatures; "+
				"sidecar 1 under load (%.0f req/s, %d workers): its max %.1f ms; revoking call (through the nodes in turn) p50 %.1f ms",
				revPoll, bgRate, revBackground, ms(loaded[op][len(loaded[op])-1]), ms(calls[len(calls)/2]))})
		AddSeries("revocation", op, l)
	}
	return rows
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// revokeOnce makes client k, warms it in every sidecar, revokes it with op
// through node k%3 and returns each sidecar's latency (sidecar order) and
// how long the revoking call took.
func revokeOnce(t *testing.T, c *harness.Cluster, scs []*harness.Sidecar, k int, op string) ([]time.Duration, time.Duration) {
	t.Helper()
	id := "bench/rev/victim-" + strconv.Itoa(k)
	creds := c.CreateClient(t, 0, id, "auth:current-scopes")
	waitKnownEverywhere(t, c, creds)
	hc := benchHTTPClient(revSidecars)
	for _, sc := range scs {
		err := harness.Eventually(10*time.Second, func() error {
			code, err := pollOnce(hc, sc, creds)
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("HTTP %d", code)
			}
			return err
		})
		if err != nil {
			t.Fatalf("revocation: warming %s in %s: %v", id, sc.Name, err)
		}
	}
	path := map[string]string{"resetAccessToken": "/reset", "disableClient": "/disable"}[op]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := c.Client(k%len(c.Nodes), nil).Do(ctx, http.MethodPost, "/clients/"+pathSeg(id)+path, nil, nil, nil); err != nil {
		t.Fatalf("revocation: %s %s: %v", op, id, err)
	}
	answered := time.Now()
	out := make([]time.Duration, len(scs))
	errs := make([]error, len(scs))
	var wg sync.WaitGroup
	for i, sc := range scs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = untilRefused(hc, sc, creds, answered)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("revocation: %s of %s at %s: %v", op, id, scs[i].Name, err)
		}
	}
	return out, answered.Sub(t0)
}

// untilRefused polls sc with creds until it answers 401 or 403 and returns
// the time from `since` to that answer.
func untilRefused(hc *http.Client, sc *harness.Sidecar, creds protocol.Credentials, since time.Time) (time.Duration, error) {
	for time.Since(since) < revTimeout {
		code, err := pollOnce(hc, sc, creds)
		switch {
		case err != nil:
			return 0, err
		case code == http.StatusUnauthorized || code == http.StatusForbidden:
			return time.Since(since), nil
		case code != http.StatusOK:
			return 0, fmt.Errorf("HTTP %d", code)
		}
		time.Sleep(revPoll)
	}
	return 0, fmt.Errorf("still accepted after %s", revTimeout)
}

// pollOnce sends one freshly signed GET /whoami and returns the status.
func pollOnce(hc *http.Client, sc *harness.Sidecar, creds protocol.Credentials) (int, error) {
	url := sc.URL + "/whoami"
	auth, err := protocol.SignRequest(creds, http.MethodGet, url, protocol.SignOptions{})
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", auth)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// background is load on one sidecar by clients other than the revoked
// ones. It signs as it goes: it is load, not a measurement.
type background struct {
	stopFlag atomic.Bool
	wg       sync.WaitGroup
	reqs     atomic.Int64
	errs     atomic.Int64
	firstErr atomic.Value
	start    time.Time
}

func startBackground(t *testing.T, c *harness.Cluster, sc *harness.Sidecar) *background {
	t.Helper()
	b := &background{start: time.Now()}
	t.Cleanup(func() { b.stopFlag.Store(true); b.wg.Wait() }) // also when the section fails
	hc := benchHTTPClient(revBackground)
	for w := 0; w < revBackground; w++ {
		creds := c.CreateClient(t, 0, fmt.Sprintf("bench/rev/background-%d", w), "auth:current-scopes")
		waitKnownEverywhere(t, c, creds)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			for !b.stopFlag.Load() {
				code, err := pollOnce(hc, sc, creds)
				if err == nil && code != http.StatusOK {
					err = fmt.Errorf("HTTP %d", code)
				}
				if err != nil {
					b.errs.Add(1)
					b.firstErr.CompareAndSwap(nil, err)
					continue
				}
				b.reqs.Add(1)
			}
		}()
	}
	return b
}

// stop ends the load, fails t if any of it failed, and returns its rate.
func (b *background) stop(t *testing.T) float64 {
	t.Helper()
	b.stopFlag.Store(true)
	b.wg.Wait()
	if n := b.errs.Load(); n > 0 {
		t.Fatalf("revocation: %d background requests failed, first: %v", n, b.firstErr.Load())
	}
	return float64(b.reqs.Load()) / time.Since(b.start).Seconds()
}
