package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A binary built as `make build` builds it (-ldflags -X) reports that
// version and commit in `tcauth version`, `--version` and the control
// plane's /__version__.
func TestVersionStamped(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "tcauth")
	const pkg = "github.com/tcauth/tcauth/protocol/buildinfo"
	build := exec.Command("go", "build", "-ldflags", "-X "+pkg+".version=v9.8.7-test -X "+pkg+".commit=0123abcd", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil || !strings.HasPrefix(string(out), "tcauth v9.8.7-test (commit 0123abcd") {
			t.Errorf("%s: %q %v", arg, out, err)
		}
	}
	dev := exec.Command(bin, "dev", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--sidecar-addr", "")
	stdout, _ := dev.StdoutPipe()
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dev.Process.Kill(); _ = dev.Wait() })
	root := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`TASKCLUSTER_ROOT_URL=(\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				root <- m[1]
			}
		}
	}()
	var base string
	select {
	case base = <-root:
	case <-time.After(60 * time.Second):
		t.Fatal("tcauth dev printed no root URL")
	}
	resp, err := http.Get(base + "/__version__")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc["version"] != "v9.8.7-test" || doc["commit"] != "0123abcd" {
		t.Errorf("/__version__: %v %v", doc, err)
	}
}
