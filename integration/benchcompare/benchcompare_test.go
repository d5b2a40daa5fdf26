package benchcompare

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if runPeer() {
		return
	}
	os.Exit(m.Run())
}

// section is one part of the run; it returns its rows or fails t.
type section struct {
	name string
	run  func(t *testing.T, s Settings) []Row
}

// sections run in this order; each runs as a subtest, so the processes
// it started are stopped before the next one starts measuring.
var sections = []section{
	{"sidecar", benchSidecar},
	{"control plane", benchControlPlane},
	{"writes", benchWrites},
	{"scope engine", benchScopeEngine},
	{"memory", benchMemory},
	{"revocation", benchRevocation},
}

// TestBenchCompare is `make bench-compare` (BENCH_COMPARE=1) and its
// smoke run in `make test` (BENCH_SMOKE=1). It writes the table to
// bin/bench/bench-compare.md (BENCH_OUT=dir elsewhere) after every
// section, so a late failure keeps the earlier figures, and the latency
// chart to bench-compare.png at the end.
func TestBenchCompare(t *testing.T) {
	if os.Getenv("BENCH_COMPARE") != "1" && os.Getenv("BENCH_SMOKE") != "1" {
		t.Skip("set BENCH_COMPARE=1 (make bench-compare) or BENCH_SMOKE=1")
	}
	if raceEnabled {
		t.Fatal("run without -race: the peers this test binary runs would be slowed, tcauth's binary not")
	}
	s := SettingsFromEnv()
	// Hawk headers are signed before each round and must still be within
	// the verifiers' 15-minute clock allowance at its end.
	if s.Duration > 10*time.Minute {
		t.Fatalf("BENCH_DURATION %v: at most 10m per round", s.Duration)
	}
	dir := os.Getenv("BENCH_OUT")
	if dir == "" {
		dir = filepath.Join(repoRoot(), "bin", "bench")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	header := runHeader(s)
	t.Log("\n" + header)
	var rows []Row
	for _, sec := range sections {
		start := time.Now()
		ok := t.Run(sec.name, func(t *testing.T) { rows = append(rows, sec.run(t, s)...) })
		status := fmt.Sprintf("%s: %s", sec.name, time.Since(start).Round(time.Second))
		if !ok {
			status += " — FAILED; the table stops here"
		}
		t.Logf("after section %s:\n%s", status, Markdown(rows))
		writeReport(t, dir, header, rows, !ok)
		if !ok {
			writeChartOrLog(t, dir)
			t.FailNow()
		}
	}
	writeChartOrLog(t, dir)
	fmt.Printf("\n%s\n%s\n", header, Markdown(rows))
	fmt.Printf("written: %s, %s\n", filepath.Join(dir, "bench-compare.md"), filepath.Join(dir, "bench-compare.png"))
}

func writeReport(t *testing.T, dir, header string, rows []Row, incomplete bool) {
	text := header + "\n" + Markdown(rows)
	if incomplete {
		text += "\n**Incomplete: a section failed; the rows above are all that was measured.**\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "bench-compare.md"), []byte(text), 0o644); err != nil {
		t.Error(err)
	}
}

func writeChartOrLog(t *testing.T, dir string) {
	if err := WriteChart(filepath.Join(dir, "bench-compare.png")); err != nil {
		t.Logf("chart: %v", err)
	}
}

// runHeader says where and how the figures were taken.
func runHeader(s Settings) string {
	var b strings.Builder
	b.WriteString("# tcauth bench-compare\n\n")
	kind := "full run"
	if s.Smoke {
		kind = "SMOKE run (BENCH_SMOKE=1): the figures only show that the harness works"
	}
	fmt.Fprintf(&b, "- %s, %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), kind)
	fmt.Fprintf(&b, "- machine: %s, %d cores, Linux %s, %s RAM\n", cpuModel(), runtime.NumCPU(), kernel(), memTotal())
	fmt.Fprintf(&b, "- %s, commit %s\n", runtime.Version(), commit())
	cmd := os.Getenv("BENCH_COMMAND")
	if cmd == "" {
		cmd = strings.Join(os.Args, " ")
	}
	fmt.Fprintf(&b, "- command: `%s`\n", cmd)
	fmt.Fprintf(&b, "- settings: %s per contender per round, %d rounds (order reversed every other round; figures are medians over rounds), conns %v\n",
		s.Duration, s.Rounds, s.Conns)
	fmt.Fprintf(&b, "- peers: %s\n", peerVersions())
	b.WriteString("- ratios divide by a contender measured in the same run; CPU is user+system time of the named processes from /proc\n")
	return b.String()
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
			return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	return "unknown"
}

// commit is HEAD, "+dirty" when the working tree differs (read only).
func commit() string {
	out, err := exec.Command("git", "-C", repoRoot(), "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown (no git)"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", repoRoot(), "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += "+dirty"
	}
	return c
}

// peerVersions names the versions of the programs measured against.
func peerVersions() string {
	var v []string
	probe := func(name string, argv ...string) {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		v = append(v, name+" "+strings.TrimSpace(line))
	}
	if bin := os.Getenv("TCAUTH_BIN"); bin != "" {
		probe("tcauth", bin, "version")
	}
	probe("nginx", nginxBin, "-v")
	probe("caddy", caddyBin, "version")
	probe("etcd", "etcd", "--version")
	if len(v) == 0 {
		return "none found"
	}
	return strings.Join(v, "; ")
}
