package sidecar

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

// BenchmarkReplayCheck is the nonce store's hot path: one fresh nonce per
// request, as every verified Hawk header records one.
func BenchmarkReplayCheck(b *testing.B) {
	s := newNonceStore(15*time.Minute, 1_000_000)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	nonces := make([]string, 4096)
	for i := range nonces {
		nonces[i] = "nonce-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(nonces) == 0 {
			// New ts per round so every check is fresh.
			ts = strconv.FormatInt(time.Now().Unix()+int64(i/len(nonces))%600, 10)
		}
		s.check("client/bench", ts, nonces[i%len(nonces)])
	}
}

// TestNonceStoreOneClientCannotLockOutOthers: one client fills a small
// store with headers whose ts sits at the future edge of the skew window;
// every other client's fresh header must still be accepted, and the
// flooding client pays with its own refusals.
func TestNonceStoreOneClientCannotLockOutOthers(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	sec := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	for _, tc := range []struct {
		name  string
		max   int
		flood int           // headers the attacker sends
		ts    time.Duration // the attacker's ts, relative to now
	}{
		{"future edge, small store", 100, 1000, 15*time.Minute - time.Second},
		{"future edge, store exactly full", 100, 101, 15*time.Minute - time.Second},
		{"spread over the window", 100, 5000, 0},
		{"past edge", 64, 2000, -15*time.Minute + time.Second},
		{"tiny store", 40, 50, 15*time.Minute - time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newNonceStore(15*time.Minute, tc.max)
			// Honest clients already active before the flood.
			for i := 0; i < 3; i++ {
				if v := s.check("honest/early", sec(-time.Duration(i)*time.Minute), "n"+strconv.Itoa(i)); v != nonceFresh {
					t.Fatalf("early honest %d: %v", i, v)
				}
			}
			for i := 0; i < tc.flood; i++ {
				ts := tc.ts
				if tc.name == "spread over the window" {
					ts = time.Duration(i%1800-900) * time.Second
				}
				s.check("attacker", sec(ts), "flood-"+strconv.Itoa(i))
			}
			if s.len() > tc.max {
				t.Errorf("store holds %d nonces, max %d", s.len(), tc.max)
			}
			for _, id := range []string{"honest/early", "honest/new", "other"} {
				for j, d := range []time.Duration{0, -5 * time.Minute, 14 * time.Minute} {
					nonce := "fresh-" + strconv.Itoa(j)
					if v := s.check(id, sec(d), nonce); v != nonceFresh {
						t.Errorf("%s: fresh header (ts %+v) refused after another client's flood: verdict %d", id, d, v)
					}
				}
			}
		})
	}
}

// TestNonceStoreStillRejectsReplays: trimming forgets nonces only behind
// a raised floor, so a dropped header cannot be replayed.
func TestNonceStoreStillRejectsReplays(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := newNonceStore(15*time.Minute, 100)
	ts := strconv.FormatInt(now.Unix(), 10)
	if v := s.check("heavy", ts, "first"); v != nonceFresh {
		t.Fatal(v)
	}
	for i := 0; i < 150; i++ {
		s.check("heavy", strconv.FormatInt(now.Unix()+int64(i)*nonceBucketSeconds, 10), "n"+strconv.Itoa(i))
	}
	if v := s.check("heavy", ts, "first"); v == nonceFresh {
		t.Fatal("a header whose nonce was dropped to make room was accepted again")
	}
	if v := s.check("light", ts, "x"); v != nonceFresh {
		t.Fatalf("light client: %d", v)
	}
	if v := s.check("light", ts, "x"); v != nonceReplayed {
		t.Fatalf("light client replay: %d", v)
	}
	// Expiry forgets floors once they are outside the window.
	s.expire(now.Add(time.Hour))
	if s.len() != 0 {
		t.Errorf("%d nonces left after the window passed", s.len())
	}
}

func TestTrimLevel(t *testing.T) {
	for _, tc := range []struct {
		counts []int
		need   int64
		want   int
	}{
		{[]int{100, 1, 1}, 50, 50},
		{[]int{10, 10, 10}, 3, 9},
		{[]int{10, 5}, 6, 4},
		{[]int{3}, 10, 0},
		{[]int{7, 7, 1}, 2, 6},
	} {
		var shares []clientShare
		for _, c := range tc.counts {
			shares = append(shares, clientShare{count: c})
		}
		if got := trimLevel(shares, tc.need); got != tc.want {
			t.Errorf("trimLevel(%v, %d) = %d, want %d", tc.counts, tc.need, got, tc.want)
		}
	}
}

// BenchmarkNonceStoreMemory: heap of a full store at the default size
// (1,000,000), for the shapes that bound it — one busy client, a thousand
// clients with a thousand nonces each, and a million clients with one
// (named temporary credentials can mint ids; each record counts as 16).
func BenchmarkNonceStoreMemory(b *testing.B) {
	now := time.Now().Unix()
	for _, shape := range []struct {
		name            string
		clients, nonces int
	}{
		{"1x1000000", 1, 1_000_000},
		{"1000x1000", 1000, 1000},
		{"1000000x1", 1_000_000, 1},
	} {
		b.Run(shape.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				s := newNonceStore(15*time.Minute, 1_000_000)
				for c := 0; c < shape.clients; c++ {
					id := "project/worker-" + strconv.Itoa(c)
					for n := 0; n < shape.nonces; n++ {
						s.check(id, strconv.FormatInt(now-int64(n%900), 10), "n"+strconv.Itoa(n))
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB")
				b.ReportMetric(float64(s.len()), "entries")
				runtime.KeepAlive(s)
			}
		})
	}
}
