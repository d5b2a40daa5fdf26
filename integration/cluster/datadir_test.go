package cluster

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol/tcclient"
	"github.com/tcauth/tcauth/raftstore"
)

// TestDataDirFailsLoudly starts a real node, gives it state (a client, a
// restored backup so that a snapshot is on disk), stops it, then breaks a
// copy of its directory in each way operators have met and starts the
// binary on it: each must exit non-zero within seconds, before serving,
// with one line naming the file and the remedy, and leave the directory
// exactly as it was (no keyring generated, no node id rewritten).
func TestDataDirFailsLoudly(t *testing.T) {
	c := harness.StartCluster(t, harness.ClusterConfig{Size: 1})
	n := c.Nodes[0]
	if _, err := createClient(ctx(t), c.Client(0, nil), "datadir/kept", "queue:*"); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup.ndjson")
	if out, err := c.CLI(0, "cluster", "snapshot", "save", backup); err != nil {
		t.Fatalf("snapshot save: %v\n%s", err, out)
	}
	// A restore writes a snapshot into the data directory.
	if out, err := c.CLI(0, "cluster", "snapshot", "restore", "--force", backup); err != nil {
		t.Fatalf("snapshot restore: %v\n%s", err, out)
	}
	n.Stop()
	snapState := func(dir string) string {
		m, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
		if len(m) == 0 {
			t.Fatalf("no snapshot under %s", dir)
		}
		return m[len(m)-1]
	}
	other := filepath.Join(t.TempDir(), "other-keyring.json")
	if _, err := raftstore.GenerateKeyringFile(other); err != nil {
		t.Fatal(err)
	}
	otherKeyring, _ := os.ReadFile(other)
	cases := []struct {
		name   string
		nodeID string
		breakd func(dir, keyring string)
		want   []string
	}{
		{"keyring missing", "n1", func(dir, kr string) { os.Remove(kr) },
			[]string{"keyring.json", "is missing", "--keyring", "nothing was changed"}},
		{"another deployment's keyring", "n1", func(dir, kr string) { os.WriteFile(kr, otherKeyring, 0o600) },
			[]string{"cannot open the stored access token", "--keyring"}},
		{"keyring damaged", "n1", func(dir, kr string) { os.WriteFile(kr, []byte(`{"primary": 1, "ke`), 0o600) },
			[]string{"keyring.json", "damaged", "backup"}},
		{"wal-meta.db truncated", "n1", func(dir, kr string) {
			os.Truncate(filepath.Join(dir, "raft", "wal", "wal-meta.db"), int64(2*os.Getpagesize()+100))
		},
			[]string{"wal-meta.db", "truncated", "tcauth cluster snapshot restore FILE"}},
		{"wal-meta.db garbage", "n1", func(dir, kr string) {
			os.WriteFile(filepath.Join(dir, "raft", "wal", "wal-meta.db"), bytes.Repeat([]byte("garbage!"), 8192), 0o600)
		}, []string{"wal-meta.db", "not a bbolt file", "--join"}},
		{"log missing", "n1", func(dir, kr string) { os.RemoveAll(filepath.Join(dir, "raft", "wal")) },
			[]string{"the log is missing", "--join"}},
		{"snapshot truncated", "n1", func(dir, kr string) { halve(snapState(dir)) },
			[]string{"state.bin", "snapshot", "tcauth cluster snapshot restore FILE"}},
		{"snapshot garbage", "n1", func(dir, kr string) {
			os.WriteFile(snapState(dir), bytes.Repeat([]byte("garbage!"), 512), 0o600)
		}, []string{"state.bin"}},
		{"another node's directory", "n4", func(dir, kr string) {},
			[]string{`belongs to node "n1"`, "--node-id n1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, keyring := copyNode(t, n.Dir, c.KeyringPath())
			tc.breakd(dir, keyring)
			before := digest(dir, keyring)
			out, code, took := runNode(t, c, tc.nodeID, dir, keyring)
			if code == 0 {
				t.Fatalf("exit status 0 on a broken directory:\n%s", out)
			}
			if took > 5*time.Second {
				t.Errorf("refusal took %v", took)
			}
			line := refusalLine(out)
			if line == "" {
				t.Fatalf("no `tcauth: ` line on stderr:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("message lacks %q:\n%s", w, line)
				}
			}
			if strings.Contains(out, "panic") || strings.Contains(out, "control plane started") {
				t.Errorf("panicked or started:\n%s", out)
			}
			if !strings.Contains(out, `"msg":"control plane not started"`) {
				t.Errorf("the refusal is not in the log:\n%s", out)
			}
			if after := digest(dir, keyring); after != before {
				t.Errorf("the refused directory changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	// The intact directory still starts and serves the kept client.
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMembers(0, 1, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestDataDirSecondProcess: a second process on a running node's directory
// is refused at once, naming the holder's pid.
func TestDataDirSecondProcess(t *testing.T) {
	c := harness.StartCluster(t, harness.ClusterConfig{Size: 1})
	n := c.Nodes[0]
	out, code, took := runNode(t, c, "n1", n.Dir, c.KeyringPath())
	if code == 0 {
		t.Fatalf("second process started:\n%s", out)
	}
	if took > 3*time.Second {
		t.Errorf("refusal took %v (a lock timeout?)", took)
	}
	pid, _ := os.ReadFile(filepath.Join(n.Dir, raftstore.LockFileName))
	want := "locked by another tcauth process (pid " + strings.TrimSpace(string(pid)) + ")"
	if line := refusalLine(out); !strings.Contains(line, want) || !strings.Contains(line, n.Dir) {
		t.Errorf("message lacks %q:\n%s", want, out)
	}
	if err := c.WaitMembers(0, 1, 10*time.Second); err != nil {
		t.Errorf("the first process suffered: %v", err)
	}
}

// TestSnapshotRestoreConfirms: restore shows what it replaces, and without
// --force (stdin not a terminal) refuses and changes nothing.
func TestSnapshotRestoreConfirms(t *testing.T) {
	c := harness.StartCluster(t, harness.ClusterConfig{Size: 1})
	backup := filepath.Join(t.TempDir(), "backup.ndjson")
	if out, err := c.CLI(0, "cluster", "snapshot", "save", backup); err != nil {
		t.Fatalf("snapshot save: %v\n%s", err, out)
	}
	if _, err := createClient(ctx(t), c.Client(0, nil), "restore/added-later", "queue:*"); err != nil {
		t.Fatal(err)
	}
	out, err := c.CLI(0, "cluster", "snapshot", "restore", backup)
	if code := exitStatus(err); code != 2 || !strings.Contains(out, "--force") {
		t.Errorf("restore without --force: status %d, want 2 and a hint:\n%s", code, out)
	}
	for _, w := range []string{"backup:  1 clients, 0 roles, newest change", "cluster: 2 clients, 0 roles, newest change", "restore/added-later"} {
		if !strings.Contains(out, w) {
			t.Errorf("summary lacks %q:\n%s", w, out)
		}
	}
	if _, err := getClient(t, c, "restore/added-later"); err != nil {
		t.Errorf("a refused restore changed the state: %v", err)
	}
	if out, err := c.CLI(0, "cluster", "snapshot", "restore", "--force", backup); err != nil {
		t.Fatalf("restore --force: %v\n%s", err, out)
	}
	if _, err := getClient(t, c, "restore/added-later"); err == nil {
		t.Error("restore --force did not replace the state")
	}
}

func getClient(t *testing.T, c *harness.Cluster, id string) (clientOut, error) {
	var out clientOut
	err := c.Client(0, nil).Do(ctx(t), "GET", "/clients/"+tcclient.PathSegment(id), nil, nil, &out)
	return out, err
}

// runNode runs `tcauth controlplane` on dir and waits (at most 20 s) for it
// to exit; it returns stderr, the exit status and how long it ran.
func runNode(t *testing.T, c *harness.Cluster, id, dir, keyring string) (string, int, time.Duration) {
	t.Helper()
	pki := filepath.Join(c.Dir, "pki")
	cmd := exec.Command(c.Bin, "controlplane", "--node-id", id, "--data-dir", dir,
		"--http-addr", harness.FreeAddr(t), "--raft-addr", harness.FreeAddr(t),
		"--tls-ca", filepath.Join(pki, "ca.pem"), "--tls-cert", filepath.Join(pki, id+".pem"),
		"--tls-key", filepath.Join(pki, id+"-key.pem"), "--keyring", keyring)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return stderr.String(), exitStatus(err), time.Since(start)
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("still running after 20 s:\n%s", stderr.String())
		return "", 0, 0
	}
}

func exitStatus(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// refusalLine is the plain `tcauth: ...` line main prints.
func refusalLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "tcauth: ") {
			return l
		}
	}
	return ""
}

func copyNode(t *testing.T, dir, keyring string) (string, string) {
	t.Helper()
	to := t.TempDir()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, "node", rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, "node", rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(keyring)
	if err != nil {
		t.Fatal(err)
	}
	kr := filepath.Join(to, "keyring.json")
	if err := os.WriteFile(kr, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(to, "node"), kr
}

func halve(path string) {
	if st, err := os.Stat(path); err == nil {
		os.Truncate(path, st.Size()/2)
	}
}

// digest fingerprints a node directory and its keyring (lock files aside:
// they hold the pid of the last opener).
func digest(dir, keyring string) string {
	var b strings.Builder
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != raftstore.LockFileName {
			data, _ := os.ReadFile(p)
			fmt.Fprintf(&b, "%s=%x ", p, sha256.Sum256(data))
		}
		return nil
	})
	data, err := os.ReadFile(keyring)
	fmt.Fprintf(&b, "keyring=%x,%v", sha256.Sum256(data), err != nil)
	return b.String() + " " + strconv.Itoa(b.Len())
}
