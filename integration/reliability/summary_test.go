package reliability

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
)

// summaryRow is one line of the table printed at the end of the run.
type summaryRow struct {
	name       string
	ops        int
	faults     int
	violations int
	lost       int
	hostile    int
	probes     int // authentications of valid callers attempted during the scenario
	refused    int // of those, answers a valid caller must never get
	duration   time.Duration
	failed     bool
	unproven   bool // the linearizability check ran out of time
}

var (
	summaryMu sync.Mutex
	rows      []summaryRow
	crashes   int
)

func record(r summaryRow) {
	summaryMu.Lock()
	rows = append(rows, r)
	summaryMu.Unlock()
}

// countCrashes counts processes whose logs show a Go panic or a fatal
// runtime error: a crash is a crash even if the test around it passed.
func countCrashes(c *harness.Cluster) {
	n := 0
	for _, p := range c.Processes() {
		log := p.Log()
		if strings.Contains(log, "panic: ") || strings.Contains(log, "fatal error: ") {
			n++
		}
	}
	summaryMu.Lock()
	crashes += n
	summaryMu.Unlock()
}

func TestMain(m *testing.M) {
	code := m.Run()
	summaryMu.Lock()
	defer summaryMu.Unlock()
	if len(rows) > 0 {
		var b strings.Builder
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "scenario\toperations\tfaults injected\tlinearizability violations\tlost writes\tprobe answers\tvalid callers refused\thostile inputs\ttime\tresult\t")
		var tot summaryRow
		for _, r := range rows {
			res := "ok"
			if r.unproven {
				res = "FAIL (check timed out)"
			} else if r.failed || r.refused > 0 {
				res = "FAIL"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n", r.name, r.ops, r.faults, r.violations, r.lost, r.probes, r.refused, r.hostile, r.duration.Round(100*time.Millisecond), res)
			tot.ops += r.ops
			tot.faults += r.faults
			tot.violations += r.violations
			tot.lost += r.lost
			tot.hostile += r.hostile
			tot.probes += r.probes
			tot.refused += r.refused
			tot.duration += r.duration
		}
		fmt.Fprintf(tw, "total: %d scenarios\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\tcrashes: %d\t\n", len(rows), tot.ops, tot.faults, tot.violations, tot.lost, tot.probes, tot.refused, tot.hostile, tot.duration.Round(time.Second), crashes)
		tw.Flush()
		fmt.Print("\nreliability summary\n\n" + b.String())
		if path := os.Getenv("TCAUTH_RELIABILITY_SUMMARY"); path != "" {
			_ = os.WriteFile(path, []byte(b.String()), 0o644)
		}
		if tot.refused > 0 && code == 0 {
			fmt.Println("FAIL: valid callers were refused")
			code = 1
		}
		if crashes > 0 && code == 0 {
			fmt.Println("FAIL: a process crashed")
			code = 1
		}
	}
	os.Exit(code)
}

func buildNotes(out string) error {
	_, here, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "build", "-o", out, "./examples/notes/cmd/notes-server")
	cmd.Dir = filepath.Join(filepath.Dir(here), "..", "..")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build notes-server: %v\n%s", err, b)
	}
	return nil
}
