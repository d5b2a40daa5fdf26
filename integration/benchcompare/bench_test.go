package benchcompare

import (
	"bytes"
	"errors"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{7}, 7},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{5, 5, 1}, 5},
		{[]float64{-1, 10}, 4.5},
	} {
		in := slices.Clone(tc.in)
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("Median reordered its input: %v", tc.in)
		}
	}
}

func millis(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func TestQuantile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		lat  []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{millis(5), 0, 5 * time.Millisecond},
		{millis(5), 1, 5 * time.Millisecond},
		{millis(1, 2, 3, 4), 0.5, 3 * time.Millisecond},
		{hundred, 0.50, 51 * time.Millisecond},
		{hundred, 0.99, 100 * time.Millisecond},
		{hundred, 0.999, 100 * time.Millisecond},
		{hundred, 0, time.Millisecond},
	} {
		if got := (Sample{Latencies: tc.lat}).Quantile(tc.q); got != tc.want {
			t.Errorf("Quantile(%v) of %d latencies = %v, want %v", tc.q, len(tc.lat), got, tc.want)
		}
	}
}

func TestSampleErrAndRPS(t *testing.T) {
	for _, tc := range []struct {
		s       Sample
		wantErr string
		rps     float64
	}{
		{Sample{Requests: 10, Elapsed: 2 * time.Second}, "", 5},
		{Sample{}, "no request completed", 0},
		{Sample{Requests: 3, Errors: 1, FirstErr: errors.New("boom"), Elapsed: time.Second}, "1 of 4 requests failed, first: boom", 3},
	} {
		err := tc.s.Err()
		if (err == nil) != (tc.wantErr == "") || (err != nil && err.Error() != tc.wantErr) {
			t.Errorf("Err() = %v, want %q", err, tc.wantErr)
		}
		if got := tc.s.RPS(); got != tc.rps {
			t.Errorf("RPS() = %v, want %v", got, tc.rps)
		}
	}
}

func TestClosedLoop(t *testing.T) {
	s := ClosedLoop(3, 50*time.Millisecond, func(w, seq int) error {
		if w == 1 && seq == 0 {
			return errors.New("first of worker 1")
		}
		time.Sleep(time.Millisecond)
		return nil
	})
	if s.Errors != 1 || s.FirstErr == nil || s.Requests == 0 || int64(len(s.Latencies)) != s.Requests {
		t.Fatalf("sample: %d requests, %d errors (%v), %d latencies", s.Requests, s.Errors, s.FirstErr, len(s.Latencies))
	}
	if !slices.IsSorted(s.Latencies) || s.Latencies[0] < time.Millisecond {
		t.Errorf("latencies not sorted or not measured around do: %v…", s.Latencies[:3])
	}
}

func TestRounds(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rounds    int
		failAt    int // call number (1-based) whose run fails; 0 none
		badSample int // call number returning a sample that does not count
		wantOrder string
		wantErr   string
	}{
		{name: "alternates", rounds: 3, wantOrder: "abc cba abc"},
		{name: "one round", rounds: 1, wantOrder: "abc"},
		{name: "run error stops", rounds: 3, failAt: 4, wantOrder: "abc c", wantErr: "c, round 2: broken"},
		{name: "failed sample stops", rounds: 2, badSample: 2, wantOrder: "ab", wantErr: "b, round 1: 1 of 2 requests failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var order []string
			calls := 0
			out, err := Rounds(tc.rounds, []string{"a", "b", "c"}, func(name string) (Sample, error) {
				calls++
				order = append(order, name)
				switch calls {
				case tc.failAt:
					return Sample{}, errors.New("broken")
				case tc.badSample:
					return Sample{Requests: 1, Errors: 1, FirstErr: errors.New("x")}, nil
				}
				return Sample{Requests: int64(calls), Elapsed: time.Second}, nil
			})
			got := strings.Join(order, "")
			want := strings.ReplaceAll(tc.wantOrder, " ", "")
			if got != want {
				t.Errorf("order %q, want %q", got, want)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) || out != nil {
					t.Fatalf("err %v (out %v), want %q", err, out, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"a", "b", "c"} {
				if len(out[n]) != tc.rounds {
					t.Errorf("%s: %d samples, want %d", n, len(out[n]), tc.rounds)
				}
			}
		})
	}
}

func TestRowFromSamplesAndRatio(t *testing.T) {
	samples := []Sample{
		{Requests: 1000, Elapsed: time.Second, Latencies: millis(1, 2, 3), CPU: 500 * time.Millisecond},
		{Requests: 3000, Elapsed: time.Second, Latencies: millis(3, 4, 5), CPU: 900 * time.Millisecond},
		{Requests: 2000, Elapsed: time.Second, Latencies: millis(2, 3, 4), CPU: 600 * time.Millisecond},
	}
	r := RowFromSamples("s", "c", "1 conn", "req/s", "base", samples)
	if r.Value != 2000 || r.P50 != 3*time.Millisecond || r.CPUPer1000 != 0.3 || !r.HigherIsBetter {
		t.Errorf("row: %+v", r)
	}
	rows := []Row{
		{Section: "s", Contender: "base", Load: "1 conn", Value: 1000},
		{Section: "s", Contender: "base", Load: "16 conns", Value: 4000},
		{Section: "other", Contender: "base", Load: "1 conn", Value: 10},
		{Section: "s", Contender: "zero", Load: "1 conn", Value: 0},
		r,
	}
	for _, tc := range []struct {
		row  Row
		want float64
		ok   bool
	}{
		{r, 2, true},
		{Row{Section: "s", Load: "16 conns", Baseline: "base", Value: 1000}, 0.25, true},
		{Row{Section: "s", Load: "64 conns", Baseline: "base", Value: 1}, 0, false},
		{Row{Section: "s", Load: "1 conn", Baseline: "zero", Value: 1}, 0, false},
		{Row{Section: "s", Load: "1 conn", Value: 1}, 0, false},
	} {
		got, ok := Ratio(rows, tc.row)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Ratio(%+v) = %v, %v; want %v, %v", tc.row, got, ok, tc.want, tc.ok)
		}
	}
}

func TestMarkdown(t *testing.T) {
	rows := []Row{
		{Section: "sidecar", Contender: "plain", Load: "1 conn", Value: 12345.4, Unit: "req/s",
			P50: 80 * time.Microsecond, P99: 1500 * time.Microsecond, P999: 12 * time.Millisecond, CPUPer1000: 0.0424},
		{Section: "sidecar", Contender: "tcauth", Load: "1 conn", Value: 6172.7, Unit: "req/s", Baseline: "plain", Note: "info"},
		{Section: "memory", Contender: "m", Load: "x", Value: 12.5, Unit: "MiB"},
		{Section: "memory", Contender: "n", Load: "x", Value: 1.234, Unit: "×"},
	}
	got := Markdown(rows)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 2+len(rows) {
		t.Fatalf("%d lines:\n%s", len(lines), got)
	}
	for _, want := range []string{
		"| sidecar | plain | 1 conn | 12,345 req/s |  | 80 µs | 1.50 ms | 12.00 ms | 0.042 |  |",
		"| sidecar | tcauth | 1 conn | 6,173 req/s | 0.50× plain |",
		"| memory | m | x | 12.5 MiB |",
		"| memory | n | x | 1.23 × |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	cols := strings.Count(lines[0], "|")
	for _, l := range lines {
		if strings.Count(l, "|") != cols {
			t.Errorf("ragged row %q", l)
		}
	}
}

func TestTreeCPU(t *testing.T) {
	before, err := TreeCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// A child that burns CPU counts while it runs.
	child := exec.Command("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 5")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		self, err := TreeCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		kid, err := TreeCPU(child.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if kid >= 20*time.Millisecond && self >= before+kid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child's CPU (%v) is not in the tree's (%v, before %v)", kid, self, before)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := TreeCPU(1 << 30); err == nil {
		t.Error("TreeCPU of a pid that does not exist: no error")
	}
}

func TestRSS(t *testing.T) {
	before, err := RSS(os.Getpid())
	if err != nil || before < 1<<20 {
		t.Fatalf("RSS = %d, %v", before, err)
	}
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	after, err := RSS(os.Getpid())
	if err != nil || after < before+32<<20 {
		t.Errorf("RSS after touching 64 MiB: %d (before %d), %v", after, before, err)
	}
	_ = buf[len(buf)-1]
	if _, err := RSS(1 << 30); err == nil {
		t.Error("RSS of a pid that does not exist: no error")
	}
}

func TestSettingsFromEnv(t *testing.T) {
	for _, tc := range []struct {
		smoke, dur, rounds string
		want               Settings
	}{
		{"", "", "", Settings{Duration: 5 * time.Second, Rounds: 3}},
		{"1", "", "", Settings{Smoke: true, Duration: time.Second, Rounds: 1}},
		{"1", "300ms", "2", Settings{Smoke: true, Duration: 300 * time.Millisecond, Rounds: 2}},
		{"", "nonsense", "-1", Settings{Duration: 5 * time.Second, Rounds: 3}},
	} {
		t.Setenv("BENCH_SMOKE", tc.smoke)
		t.Setenv("BENCH_DURATION", tc.dur)
		t.Setenv("BENCH_ROUNDS", tc.rounds)
		got := SettingsFromEnv()
		if got.Smoke != tc.want.Smoke || got.Duration != tc.want.Duration || got.Rounds != tc.want.Rounds || len(got.Conns) != 3 {
			t.Errorf("%+v: got %+v, want %+v", tc, got, tc.want)
		}
		if got.Size(100, 2) != map[bool]int{true: 2, false: 100}[tc.want.Smoke] {
			t.Errorf("Size with smoke=%v: %d", tc.want.Smoke, got.Size(100, 2))
		}
	}
}

// TestRenderChart: a decodable PNG of the expected size, every series
// drawn in its colour (the same colour in every panel).
func TestRenderChart(t *testing.T) {
	var ss []Series
	for p, panel := range []string{"x, 1 conn", "x, 16 conns", "y, 1 conn", "y, 64 conns"} {
		for i, name := range []string{"fast", "slow", "tail"} {
			lat := make([]time.Duration, 2000)
			for k := range lat {
				lat[k] = time.Duration((i+1)*(p+1)*50+k/10) * time.Microsecond
			}
			if name == "tail" {
				lat[len(lat)-1] = 80 * time.Millisecond
			}
			ss = append(ss, Series{Panel: panel, Name: name, Latencies: lat})
		}
	}
	ss = append(ss, Series{Panel: "empty", Name: "none"})
	img, err := RenderChart(ss)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	dec, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	// Four panels: three columns, two rows; the empty one is not drawn.
	if b := dec.Bounds(); b.Dx() != 3*panelW || b.Dy() != 2*panelH {
		t.Fatalf("size %v", b)
	}
	for i, name := range []string{"fast", "slow", "tail"} {
		want := palette[i]
		for p := 0; p < 4; p++ {
			x0, y0 := (p%3)*panelW, (p/3)*panelH
			if n := countColour(dec, x0, y0, want); n < 50 {
				t.Errorf("series %s in panel %d: %d pixels of its colour", name, p, n)
			}
		}
	}
	if _, err := RenderChart(nil); !errors.Is(err, ErrNoSeries) {
		t.Errorf("no series: %v", err)
	}
}

func countColour(img interface {
	At(x, y int) color.Color
}, x0, y0 int, want color.RGBA) int {
	n := 0
	for y := y0; y < y0+panelH; y++ {
		for x := x0; x < x0+panelW; x++ {
			if r, g, b, _ := img.At(x, y).RGBA(); uint8(r>>8) == want.R && uint8(g>>8) == want.G && uint8(b>>8) == want.B {
				n++
			}
		}
	}
	return n
}

func TestFormatAxisDur(t *testing.T) {
	for d, want := range map[time.Duration]string{
		100: "100ns", 10 * time.Microsecond: "10us", time.Millisecond: "1ms", 10 * time.Second: "10s",
	} {
		if got := formatAxisDur(d); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
}

// TestTimedLoopPoolRunsOut: a loop whose pre-signed headers run out
// says so (exhausted, with the rate until then) without counting the
// misses as failed requests, and measure re-runs such a round with a
// bigger pool instead of reporting it.
func TestTimedLoopPoolRunsOut(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(serveUpstream))
	defer up.Close()
	ct := contender{name: "test upstream", base: up.URL}
	creds := protocol.Credentials{ClientID: "bench/unit", AccessToken: "secret"}
	client := &http.Client{}
	start := time.Now()
	smp, rate, exhausted, err := timedLoop(client, ct, creds, up.URL+benchPath, 2, time.Second, 3, nil)
	if err != nil || !exhausted || smp.Errors != 0 || smp.Requests != 3 || rate <= 0 {
		t.Fatalf("exhausted=%v requests=%d errors=%d (%v) rate=%v err=%v", exhausted, smp.Requests, smp.Errors, smp.FirstErr, rate, err)
	}
	// Workers that found no header left waited for the end, not longer.
	if time.Since(start) > 5*time.Second {
		t.Errorf("the loop took %v for 1s", time.Since(start))
	}
	smp, _, exhausted, err = timedLoop(client, ct, creds, up.URL+benchPath, 2, 100*time.Millisecond, 100000, nil)
	if err != nil || exhausted || smp.Err() != nil {
		t.Fatalf("a big pool: exhausted=%v, %v, %v", exhausted, smp.Err(), err)
	}
	// A first pool far too small: it runs out, the round is run again,
	// and the sample returned is a complete one.
	defer func(f float64, m int) { poolFactor, minPool = f, m }(poolFactor, minPool)
	poolFactor, minPool = 0.001, 5
	reruns := poolReruns.Load()
	smp, err = measure(ct, creds, 2, 300*time.Millisecond, 0)
	if err != nil || smp.Err() != nil || smp.Requests <= 5 {
		t.Fatalf("measure: %d requests, %v, %v", smp.Requests, smp.Err(), err)
	}
	if poolReruns.Load() == reruns {
		t.Error("the pool did not run out: the re-run was not exercised")
	}
}

// TestCallChecksTheAnswer: a status other than 200, another body, or
// behind a sidecar a missing identity, is a failed request.
func TestCallChecksTheAnswer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		authed  bool
		wantErr string
	}{
		{"ok", serveUpstream, false, ""},
		{"no identity behind a sidecar", serveUpstream, true, "saw clientId"},
		{"status", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, false, "status 500"},
		{"body", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{}")) }, false, "body of 2 bytes"},
		{"identity", func(w http.ResponseWriter, r *http.Request) {
			r.Header.Set("X-Taskcluster-Client-Id", benchCaller)
			serveUpstream(w, r)
		}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			pool := &headerPool{h: []string{"Hawk x"}}
			err := call(srv.Client(), contender{authed: tc.authed}, srv.URL+benchPath, pool)
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
			if err := call(srv.Client(), contender{}, srv.URL, pool); !errors.Is(err, errPoolEmpty) {
				t.Errorf("second call with a pool of one: %v", err)
			}
		})
	}
}

// TestCallCountsUnverified: for a contender that tolerates them (Caddy),
// a 200 without identity is counted, not failed; another clientId still
// fails.
func TestCallCountsUnverified(t *testing.T) {
	for _, tc := range []struct {
		seen      string
		wantErr   bool
		wantCount int64
	}{{"", false, 1}, {"someone/else", true, 0}, {benchCaller, false, 0}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Header.Set("X-Taskcluster-Client-Id", tc.seen)
			serveUpstream(w, r)
		}))
		ct := contender{authed: true, unverified: new(atomic.Int64)}
		err := call(srv.Client(), ct, srv.URL+benchPath, &headerPool{h: []string{"Hawk x"}})
		srv.Close()
		if (err != nil) != tc.wantErr || ct.unverified.Load() != tc.wantCount {
			t.Errorf("seen %q: err %v, counted %d; want error %v, %d", tc.seen, err, ct.unverified.Load(), tc.wantErr, tc.wantCount)
		}
	}
}
