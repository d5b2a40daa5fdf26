// Package dev checks the README's run command: `tcauth dev` as a real
// process, its banner, and the example calls it prints.
package dev

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
)

func TestDev(t *testing.T) {
	bin := harness.Bin(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "dev", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--sidecar-addr", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("tcauth dev did not exit cleanly on SIGINT: %v\n%s", err, stderr.String())
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("tcauth dev did not stop within 20 s of SIGINT")
		}
	})

	text := harness.DevBanner(t, stdout, stderr.String)
	find := func(re string) string { t.Helper(); return harness.BannerField(t, text, re) }
	root := find(`TASKCLUSTER_ROOT_URL=(\S+)`)
	rootTok := find(`TASKCLUSTER_ACCESS_TOKEN=(\S+)`)
	sidecar := find(`notes example\s+(http://\S+)`)
	readerTok := find(`dev-notes-reader TASKCLUSTER_ACCESS_TOKEN=(\S+)`)
	if strings.Contains(stderr.String(), rootTok) || strings.Contains(stderr.String(), readerTok) {
		t.Error("an access token appears in the log")
	}

	// The printed calls work: root through the sidecar, and the reader's
	// DELETE is the denied call.
	env := append(os.Environ(), "TASKCLUSTER_ROOT_URL="+root, "TASKCLUSTER_CLIENT_ID=static/taskcluster/root", "TASKCLUSTER_ACCESS_TOKEN="+rootTok)
	run := func(env []string, args ...string) (string, error) {
		c := exec.Command(bin, args...)
		c.Env = env
		out, err := c.CombinedOutput()
		return string(out), err
	}
	if out, err := run(env, "http", "PUT", sidecar+"/notes/hello", "-d", "hello, world"); err != nil || !strings.Contains(out, `"author": "static/taskcluster/root"`) {
		t.Fatalf("PUT through the sidecar: %v\n%s", err, out)
	}
	out, err := run(env, "http", "GET", sidecar+"/whoami")
	var who struct{ ClientID string }
	if err != nil || json.Unmarshal([]byte(out), &who) != nil || who.ClientID != "static/taskcluster/root" {
		t.Fatalf("whoami: %v\n%s", err, out)
	}
	resp, err := http.Get(sidecar + "/notes/hello")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("anonymous read: %d, want 401", resp.StatusCode)
	}
	readerEnv := append(os.Environ(), "TASKCLUSTER_ROOT_URL="+root, "TASKCLUSTER_CLIENT_ID=static/tcauth/dev-notes-reader", "TASKCLUSTER_ACCESS_TOKEN="+readerTok)
	out, err = run(readerEnv, "http", "DELETE", sidecar+"/notes/hello")
	if err == nil || !strings.Contains(out, "InsufficientScopes") || !strings.Contains(out, "notes:delete") {
		t.Errorf("the denied call: %v\n%s", err, out)
	}
	if out, err := run(readerEnv, "http", "GET", sidecar+"/notes/hello"); err != nil || !strings.Contains(out, "hello, world") {
		t.Errorf("reader GET: %v\n%s", err, out)
	}
	// The admin examples.
	if out, err := run(env, "client", "create", "my/first-client", "--description", "first client", "--scope", "notes:read:*", "--expires", "30 days"); err != nil {
		t.Fatalf("client create: %v\n%s", err, out)
	}
	if out, err := run(env, "role", "create", "project-admin:*", "--description", "project admins", "--scope", "notes:write:<..>/*"); err != nil {
		t.Fatalf("role create: %v\n%s", err, out)
	}
	if out, err := run(env, "scopes", "expand", "--remote", "assume:project-admin:ops"); err != nil || !strings.Contains(out, "notes:write:ops/*") {
		t.Fatalf("scopes expand: %v\n%s", err, out)
	}
	// A signed URL works without a header.
	signed, err := run(env, "signed-url", sidecar+"/notes/hello", "--ttl", "5m")
	if err != nil {
		t.Fatal(err, signed)
	}
	resp, err = http.Get(strings.TrimSpace(signed))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("signed URL: %d", resp.StatusCode)
	}
}

// TestDevBannerMeansReady: the banner prints root credentials, so a call
// signed with them right after it must succeed — also without a sidecar,
// whose own start used to hide that the static clients were not synced
// yet. A few fresh starts, because the race is one of start-up order.
func TestDevBannerMeansReady(t *testing.T) {
	bin := harness.Bin(t)
	for round := 0; round < 3; round++ {
		cmd := exec.Command(bin, "dev", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--sidecar-addr", "")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		root, tok := readBannerCredentials(t, stdout)
		// No retry: the first call after the banner is the one users make.
		url := root + "/api/auth/v1/scopes/current"
		req, _ := http.NewRequest("GET", url, nil)
		auth, err := protocol.SignRequest(protocol.Credentials{ClientID: "static/taskcluster/root", AccessToken: tok}, "GET", url, protocol.SignOptions{})
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("round %d: the first call after the banner: %d %s", round, resp.StatusCode, body)
		}
		if r, err := http.Get(root + "/readyz"); err != nil || r.StatusCode != 200 {
			t.Errorf("round %d: /readyz after the banner: %v %v", round, r, err)
		} else {
			r.Body.Close()
		}
		_ = cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Errorf("round %d: tcauth dev exit: %v\n%s", round, err, stderr.String())
		}
	}
}

// readBannerCredentials reads the banner up to its export lines.
func readBannerCredentials(t *testing.T, stdout io.Reader) (root, token string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "export TASKCLUSTER_ROOT_URL="); ok {
				root = v
			}
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "export TASKCLUSTER_ACCESS_TOKEN="); ok {
				token = v
				break
			}
		}
		go func() { _, _ = io.Copy(io.Discard, stdout) }()
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("no banner within 60 s")
	}
	if root == "" || token == "" {
		t.Fatal("the banner lacks the root URL or token")
	}
	return root, token
}
