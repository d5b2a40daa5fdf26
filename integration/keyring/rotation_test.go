// Package keyring rotates the token keyring of a running three-node
// cluster under load, by the procedure of docs/operations.md "Rotate the
// keyring": add a term on every node's file, rolling restart, promote it,
// rolling restart, `tcauth keyring reseal`, remove the old term, rolling
// restart.
package keyring

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/integration/harness"
	"github.com/tcauth/tcauth/protocol"
)

// between is how long the load runs against the cluster after each step.
const between = time.Second

type rotation struct {
	t      *testing.T
	c      *harness.Cluster
	l      *harness.Load
	files  []string // each node's keyring file
	master string   // the copy the operator edits
	start  time.Time
}

// TestKeyringRotation: no valid caller is refused and no acknowledged
// write lost while the keyring of a running cluster is rotated; after
// reseal and removal no stored token uses the old term on any node and
// every client still authenticates; and a node whose keyring lacks a
// term that stored tokens still use refuses to start, saying so.
func TestKeyringRotation(t *testing.T) {
	r := &rotation{t: t, c: harness.StartCluster(t, harness.ClusterConfig{}), start: time.Now()}
	c := r.c
	r.useNodeKeyrings()
	for _, n := range c.Nodes {
		n.WaitReady(r.t, 60*time.Second)
	}
	var readers []*protocol.Credentials
	for i := 0; i < 3; i++ {
		cr := c.CreateClient(t, 0, fmt.Sprintf("rot/reader-%d", i), "auth:current-scopes")
		readers = append(readers, &cr)
	}
	r.waitKnownEverywhere(readers)
	r.l = harness.NewLoad(c, "rot/", readers...)
	r.l.ResetEvery = 3
	ctx, stop := context.WithCancel(context.Background())
	wg := r.l.Run(ctx)
	defer func() { stop(); wg.Wait() }()
	time.Sleep(time.Second)

	out := r.keyring("add")
	if !strings.Contains(out, "added term 2") || !strings.Contains(out, "primary is still term 1") {
		t.Fatalf("keyring add: %s", out)
	}
	r.distribute()
	r.rollingRestart("term 2 added")
	// Nobody seals with term 2 before every node can open it.
	r.expectKeyrings(1, []int{1, 2}, 0)
	r.keyring("promote", "--term", "2")
	r.distribute()
	r.rollingRestart("term 2 primary")
	r.expectKeyrings(2, []int{1, 2}, 0)
	r.expectRefusedWithoutTerm1()

	out, err := c.CLI(int(time.Now().UnixNano()%3), "keyring", "reseal")
	if err != nil || !strings.Contains(out, "under term 2") || !strings.Contains(out, "older terms can be removed") {
		t.Fatalf("keyring reseal: %v\n%s", err, out)
	}
	t.Logf("reseal after %s:\n%s", time.Since(r.start).Round(time.Second), out)
	r.expectKeyrings(2, []int{1, 2}, 1)
	r.keyring("remove", "--term", "1")
	r.distribute()
	r.rollingRestart("term 1 removed")
	time.Sleep(between)
	stop()
	wg.Wait()
	r.l.Report(t, 20, 100)
	ack := r.l.Acknowledged()
	c.CheckAcknowledged(t, ack)
	r.expectKeyrings(2, []int{2}, 1)
	r.expectAllAuthenticate(ack, readers)
	t.Logf("done after %s", time.Since(r.start).Round(time.Second))
}

// useNodeKeyrings gives every node its own copy of the keyring, as on
// separate machines, effective from each node's next start.
func (r *rotation) useNodeKeyrings() {
	r.master = filepath.Join(r.t.TempDir(), "keyring.json")
	copyFile(r.t, r.c.KeyringPath(), r.master)
	for _, n := range r.c.Nodes {
		f := filepath.Join(r.c.Dir, n.ID+"-keyring.json")
		copyFile(r.t, r.c.KeyringPath(), f)
		r.files = append(r.files, f)
		setArg(n, "--keyring", f)
	}
}

// keyring runs an offline `tcauth keyring` command on the operator's copy.
func (r *rotation) keyring(args ...string) string {
	r.t.Helper()
	args = append([]string{"keyring", args[0], "--keyring", r.master}, args[1:]...)
	out, err := exec.Command(r.c.Bin, args...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("tcauth %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// distribute copies the operator's keyring to every node's file (a node
// reads it at its next start).
func (r *rotation) distribute() {
	for _, f := range r.files {
		copyFile(r.t, r.master, f)
	}
}

// rollingRestart restarts the followers, then the leader, each taken out
// of service first and put back once ready.
func (r *rotation) rollingRestart(step string) {
	r.t.Helper()
	leader, err := r.c.Leader(30 * time.Second)
	if err != nil {
		r.t.Fatal(err)
	}
	order := []int{}
	for i := range r.c.Nodes {
		if i != leader {
			order = append(order, i)
		}
	}
	for _, i := range append(order, leader) {
		n := r.c.Nodes[i]
		r.l.SetUp(i, false)
		n.Stop()
		if err := n.Start(); err != nil {
			r.t.Fatal(err)
		}
		n.WaitReady(r.t, 60*time.Second)
		r.l.SetUp(i, true)
		time.Sleep(between)
	}
	r.t.Logf("%s: every node restarted after %s", step, time.Since(r.start).Round(time.Second))
}

// expectRefusedWithoutTerm1: before reseal, a follower given a keyring
// without term 1 (removed too early) refuses to start, naming the term and
// the remedy; with its right keyring back it starts again.
func (r *rotation) expectRefusedWithoutTerm1() {
	t := r.t
	leader, err := r.c.Leader(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	i := (leader + 1) % len(r.c.Nodes)
	n := r.c.Nodes[i]
	early := filepath.Join(t.TempDir(), "early.json")
	copyFile(t, r.master, early)
	if out, err := exec.Command(r.c.Bin, "keyring", "remove", "--keyring", early, "--term", "1").CombinedOutput(); err != nil {
		t.Fatalf("remove on a copy: %v\n%s", err, out)
	}
	r.l.SetUp(i, false)
	n.Stop()
	setArg(n, "--keyring", early)
	before := len(n.Log())
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.Exited():
	case <-time.After(60 * time.Second):
		t.Fatalf("%s started with a keyring lacking term 1, which stored tokens still use", n.ID)
	}
	log := n.Log()[before:]
	for _, want := range []string{"no key of term 1", "tcauth keyring reseal", "nothing was changed"} {
		if !strings.Contains(log, want) {
			t.Fatalf("%s's refusal does not say %q:\n%s", n.ID, want, log)
		}
	}
	if n.ExitErr() == nil {
		t.Fatalf("%s exited 0", n.ID)
	}
	t.Logf("refused as it should: %s", harness.LastLineWith(log, "no key of term 1"))
	setArg(n, "--keyring", r.files[i])
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	n.WaitReady(r.t, 60*time.Second)
	r.l.SetUp(i, true)
}

// expectKeyrings: every node (GET /tcauth/keyring/status, its own keyring
// and state) runs a keyring with primary and exactly terms, and, with
// noTokensUnder > 0, no stored access token is sealed under that term.
func (r *rotation) expectKeyrings(primary int, terms []int, noTokensUnder int) {
	r.t.Helper()
	for i, n := range r.c.Nodes {
		err := harness.Eventually(30*time.Second, func() error {
			var st struct {
				Keyring struct {
					Primary int `json:"primary"`
					Terms   []struct {
						Term int `json:"term"`
					} `json:"terms"`
				} `json:"keyring"`
				TokensByTerm map[string]int `json:"tokensByTerm"`
			}
			if err := r.c.Client(i, nil).Do(context.Background(), http.MethodGet, "/tcauth/keyring/status", nil, nil, &st); err != nil {
				return err
			}
			var have []int
			for _, t := range st.Keyring.Terms {
				have = append(have, t.Term)
			}
			if st.Keyring.Primary != primary || fmt.Sprint(have) != fmt.Sprint(terms) {
				return fmt.Errorf("%s runs primary %d, terms %v; want %d, %v", n.ID, st.Keyring.Primary, have, primary, terms)
			}
			if noTokensUnder > 0 && st.TokensByTerm[fmt.Sprint(noTokensUnder)] != 0 {
				return fmt.Errorf("%s: tokens by term %v, want none under %d", n.ID, st.TokensByTerm, noTokensUnder)
			}
			return nil
		})
		if err != nil {
			r.t.Fatal(err)
		}
	}
}

// expectAllAuthenticate: every acknowledged client whose token is known,
// and every reader, authenticates, each on some node.
func (r *rotation) expectAllAuthenticate(ack map[string]string, readers []*protocol.Credentials) {
	r.t.Helper()
	k, checked := 0, 0
	try := func(creds protocol.Credentials) {
		k++
		if err := r.c.Client(k%len(r.c.Nodes), &creds).Do(context.Background(), http.MethodGet, "/scopes/current", nil, nil, nil); err != nil {
			r.t.Fatalf("%s no longer authenticates on %s: %v", creds.ClientID, r.c.Nodes[k%len(r.c.Nodes)].ID, err)
		}
		checked++
	}
	for id, tok := range ack {
		if tok != "" {
			try(protocol.Credentials{ClientID: id, AccessToken: tok})
		}
	}
	for _, cr := range readers {
		try(*cr)
	}
	try(*r.c.Root())
	r.t.Logf("%d clients authenticate after the rotation", checked)
}

func (r *rotation) waitKnownEverywhere(creds []*protocol.Credentials) {
	for i := range r.c.Nodes {
		for _, cr := range creds {
			if err := harness.Eventually(30*time.Second, func() error {
				return r.c.Client(i, nil).Do(context.Background(), http.MethodGet, "/clients/"+url.PathEscape(cr.ClientID), nil, nil, nil)
			}); err != nil {
				r.t.Fatal(err)
			}
		}
	}
}

// setArg replaces the value of flag in n's command line.
func setArg(n *harness.Node, flag, value string) {
	args := append([]string{}, n.Args...)
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			args[i+1] = value
		}
	}
	n.Args = args
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err == nil {
		err = os.WriteFile(to+".tmp", b, 0o600)
	}
	if err == nil {
		err = os.Rename(to+".tmp", to)
	}
	if err != nil {
		t.Fatal(err)
	}
}
