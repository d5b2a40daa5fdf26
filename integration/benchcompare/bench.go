// Package benchcompare is `make bench-compare`: tcauth measured side by
// side with what its users would run instead, in one run on one machine.
//
// Every contender is a real process started by the test; the load comes
// from the test process itself (a separate process from every proxy and
// server measured). Each workload runs in rounds; within a round the
// contenders take turns, in reverse order on every other round, so that a
// slow minute of the machine (another process, a thermal step) lands on
// all of them alike. A row's figure is the median over its rounds, and a
// ratio is always to a baseline measured in the same run.
//
// Rules the harness keeps: a contender that did not start, or answered
// any request with an error, fails the run (Sample.Errors must be 0); a
// figure that was not measured is never printed; every process started is
// stopped, also when the run fails (harness.Process cleanup).
package benchcompare

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Settings are the sizes of one run. Smoke (BENCH_SMOKE=1) runs every
// workload with a second per contender and small data, so that `make
// test` proves the harness still works; its figures mean nothing.
type Settings struct {
	Smoke    bool
	Duration time.Duration // per contender per round; default 5 s, smoke 1 s
	Rounds   int           // default 3, smoke 1
	Conns    []int         // connection / writer counts; default 1, 16, 64
}

// SettingsFromEnv reads BENCH_SMOKE, BENCH_DURATION (a Go duration) and
// BENCH_ROUNDS.
func SettingsFromEnv() Settings {
	s := Settings{Duration: 5 * time.Second, Rounds: 3, Conns: []int{1, 16, 64}}
	if os.Getenv("BENCH_SMOKE") == "1" {
		s.Smoke, s.Duration, s.Rounds = true, time.Second, 1
	}
	if d, err := time.ParseDuration(os.Getenv("BENCH_DURATION")); err == nil && d > 0 {
		s.Duration = d
	}
	if n, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && n > 0 {
		s.Rounds = n
	}
	return s
}

// Size is n, or small when the run is a smoke run.
func (s Settings) Size(n, small int) int {
	if s.Smoke {
		return small
	}
	return n
}

// Sample is what one contender did in one round.
type Sample struct {
	Requests  int64
	Errors    int64
	FirstErr  error
	Elapsed   time.Duration
	Latencies []time.Duration // one per successful request, sorted
	CPU       time.Duration   // CPU time of the contender's processes; 0 when not measured
}

// RPS is requests per second.
func (s Sample) RPS() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Requests) / s.Elapsed.Seconds()
}

// Quantile is the q-quantile (0..1) of the latencies, 0 with none.
func (s Sample) Quantile(q float64) time.Duration {
	if len(s.Latencies) == 0 {
		return 0
	}
	i := int(q * float64(len(s.Latencies)))
	return s.Latencies[min(i, len(s.Latencies)-1)]
}

// Err is nil when the round counts: requests were made and none failed.
func (s Sample) Err() error {
	switch {
	case s.Errors > 0:
		return fmt.Errorf("%d of %d requests failed, first: %v", s.Errors, s.Requests+s.Errors, s.FirstErr)
	case s.Requests == 0:
		return fmt.Errorf("no request completed")
	}
	return nil
}

// ClosedLoop runs conns workers for d, each sending requests back to back
// with do(worker, seq) (seq counts that worker's requests from 0). do
// returns an error for a failed request (a transport error or a status it
// did not expect). Latency is measured around do.
func ClosedLoop(conns int, d time.Duration, do func(worker, seq int) error) Sample {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		all      []time.Duration
		errs     atomic.Int64
		firstErr atomic.Value
		stop     atomic.Bool
	)
	start := time.Now()
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			for seq := 0; !stop.Load(); seq++ {
				t0 := time.Now()
				if err := do(w, seq); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		}(w)
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(all)
	s := Sample{Requests: int64(len(all)), Errors: errs.Load(), Elapsed: elapsed, Latencies: all}
	if e, ok := firstErr.Load().(error); ok {
		s.FirstErr = e
	}
	return s
}

// Rounds runs each contender once per round for `rounds` rounds,
// alternating the order (forward, then reverse), and returns each
// contender's samples. The first error (from run or a Sample that does
// not count) ends the run.
func Rounds(rounds int, contenders []string, run func(name string) (Sample, error)) (map[string][]Sample, error) {
	out := map[string][]Sample{}
	for r := 0; r < rounds; r++ {
		order := slices.Clone(contenders)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, name := range order {
			s, err := run(name)
			if err == nil {
				err = s.Err()
			}
			if err != nil {
				return nil, fmt.Errorf("%s, round %d: %w", name, r+1, err)
			}
			out[name] = append(out[name], s)
		}
	}
	return out, nil
}

// Row is one line of the table.
type Row struct {
	Section   string // "sidecar", "control plane", "scope engine", "memory", "revocation"
	Contender string
	Load      string // "1 conn", "64 writers", "100,000 roles"
	Value     float64
	Unit      string // "req/s", "writes/s", "µs", "ms", "MiB", "B/client"
	// HigherIsBetter says which way the ratio reads (req/s: true;
	// latency, memory: false). Ratios are always Value / baseline's Value.
	HigherIsBetter bool
	// Baseline names the contender, in the same Section and Load, that
	// the ratio column divides by; "" for none.
	Baseline string
	// Latency percentiles, 0 when not measured.
	P50, P99, P999 time.Duration
	// CPUPer1000 is CPU seconds of the contender's processes per 1,000
	// requests; 0 when not measured.
	CPUPer1000 float64
	Note       string
}

// RowFromSamples is a row whose figures are medians over the samples'
// rounds: requests/s, p50, p99, p99.9 and CPU per 1,000 requests.
func RowFromSamples(section, contender, load, unit, baseline string, samples []Sample) Row {
	med := func(f func(Sample) float64) float64 {
		v := make([]float64, len(samples))
		for i, s := range samples {
			v[i] = f(s)
		}
		return Median(v)
	}
	dur := func(q float64) time.Duration {
		return time.Duration(med(func(s Sample) float64 { return float64(s.Quantile(q)) }))
	}
	r := Row{Section: section, Contender: contender, Load: load, Unit: unit, Baseline: baseline, HigherIsBetter: true,
		Value: med(Sample.RPS), P50: dur(0.50), P99: dur(0.99), P999: dur(0.999)}
	if samples[0].CPU > 0 {
		r.CPUPer1000 = med(func(s Sample) float64 { return s.CPU.Seconds() * 1000 / float64(s.Requests) })
	}
	return r
}

// Median of v (the mean of the middle two for an even count); 0 for none.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Ratio is row's Value over its baseline's, and whether a baseline was
// found in rows.
func Ratio(rows []Row, row Row) (float64, bool) {
	if row.Baseline == "" {
		return 0, false
	}
	for _, b := range rows {
		if b.Section == row.Section && b.Load == row.Load && b.Contender == row.Baseline && b.Value > 0 {
			return row.Value / b.Value, true
		}
	}
	return 0, false
}

// Markdown renders rows as one table, in their order.
func Markdown(rows []Row) string {
	var b strings.Builder
	b.WriteString("| section | contender | load | figure | ratio | p50 | p99 | p99.9 | CPU s / 1k req | note |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		ratio := ""
		if x, ok := Ratio(rows, r); ok {
			ratio = fmt.Sprintf("%.2f× %s", x, r.Baseline)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s %s | %s | %s | %s | %s | %s | %s |\n",
			r.Section, r.Contender, r.Load, formatValue(r.Value), r.Unit, ratio,
			formatDur(r.P50), formatDur(r.P99), formatDur(r.P999), formatCPU(r.CPUPer1000), r.Note)
	}
	return b.String()
}

func formatValue(v float64) string {
	switch {
	case v >= 100:
		return groupThousands(int64(v + 0.5))
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func formatDur(d time.Duration) string {
	switch {
	case d == 0:
		return ""
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	default:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
}

func formatCPU(s float64) string {
	if s == 0 {
		return ""
	}
	return strconv.FormatFloat(s, 'f', 3, 64)
}
