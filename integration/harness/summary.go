package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Summary records one line of figures a test measured (how many messages
// arrived twice, how many callers were refused during an upgrade): in the
// test's log, and — when TCAUTH_SUMMARY_DIR is set, as `make
// test-integration` sets it — in a file there that the make target prints
// after the run, since `go test` shows a passing test's log only with -v.
func Summary(t testing.TB, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	dir := os.Getenv("TCAUTH_SUMMARY_DIR")
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("summary: %v", err)
		return
	}
	f, err := os.OpenFile(filepath.Join(dir, "summary.txt"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("summary: %v", err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s: %s\n", t.Name(), line)
}
