package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcauth/tcauth/protocol"
	"github.com/tcauth/tcauth/protocol/tcclient"
	"github.com/tcauth/tcauth/raftstore"
)

// RootClientID is the static root client every node has.
const RootClientID = "static/taskcluster/root"

// Node is one control-plane process with a fixed identity and addresses,
// so that it can be killed and restarted from its data directory.
type Node struct {
	*Process
	ID       string
	Dir      string // data directory
	HTTPAddr string // host:port of the API
	RaftAddr string
}

// URL is the node's API root URL.
func (n *Node) URL() string { return "http://" + n.HTTPAddr }

// ClusterConfig describes a cluster to start. Zero fields get defaults.
type ClusterConfig struct {
	Size int // default 3
	// HTTPAddrs/RaftAddrs fix each node's addresses (default: free
	// loopback ports).
	HTTPAddrs, RaftAddrs []string
	// Prefix wraps node i's command (e.g. ip netns exec ns-i).
	Prefix func(i int) []string
	// PKIHosts are extra IPs/names the node certificates are valid for.
	PKIHosts []string
	// TrustedProxy is passed as --trusted-proxy (default 127.0.0.0/8).
	TrustedProxy string
	// ExtraArgs are appended to every node's command line.
	ExtraArgs []string
	// Keyring, if set, is copied in as the cluster's token keyring (to
	// restore another cluster's backup); otherwise bootstrap makes one.
	Keyring string
	// StaticClients are written to a --static-clients file that every
	// node gets (besides the root client each node makes itself).
	StaticClients []StaticClient
}

// StaticClient is one entry of the --static-clients file.
type StaticClient struct {
	ClientID    string   `json:"clientId"`
	AccessToken string   `json:"accessToken"`
	Description string   `json:"description,omitempty"`
	Scopes      []string `json:"scopes,omitempty"`
}

// Cluster is a set of control-plane nodes sharing a keyring, a CA and
// a root token.
type Cluster struct {
	t     testing.TB
	Bin   string
	Dir   string
	Nodes []*Node
	cfg   ClusterConfig
	// RootToken is static/taskcluster/root's access token.
	RootToken string
	others    []*Process
}

// StartCluster bootstraps node 0, joins the others through it and waits
// until every node lists all members and agrees on a leader. Everything is
// stopped at the end of the test.
func StartCluster(t testing.TB, cfg ClusterConfig) *Cluster {
	t.Helper()
	c := NewCluster(t, cfg)
	if err := c.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	return c
}

// NewCluster prepares a cluster (certificates, addresses) without
// starting it.
func NewCluster(t testing.TB, cfg ClusterConfig) *Cluster {
	t.Helper()
	if cfg.Size == 0 {
		cfg.Size = 3
	}
	if cfg.TrustedProxy == "" {
		cfg.TrustedProxy = "127.0.0.0/8"
	}
	c := &Cluster{t: t, Bin: Bin(t), Dir: t.TempDir(), cfg: cfg}
	ids := make([]string, cfg.Size)
	for i := range ids {
		ids[i] = fmt.Sprintf("n%d", i+1)
	}
	// Extra node ids so that a replacement node has a certificate too.
	pkiArgs := []string{"cluster", "pki", "--dir", filepath.Join(c.Dir, "pki")}
	for _, h := range cfg.PKIHosts {
		pkiArgs = append(pkiArgs, "--host", h)
	}
	pkiArgs = append(pkiArgs, ids...)
	pkiArgs = append(pkiArgs, "n4", "n5", "n6")
	if out, err := exec.Command(c.Bin, pkiArgs...).CombinedOutput(); err != nil {
		t.Fatalf("tcauth cluster pki: %v\n%s", err, out)
	}
	if cfg.Keyring != "" {
		b, err := os.ReadFile(cfg.Keyring)
		if err == nil {
			err = os.WriteFile(filepath.Join(c.Dir, "keyring.json"), b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(cfg.StaticClients) > 0 {
		b, err := json.Marshal(cfg.StaticClients)
		if err == nil {
			err = os.WriteFile(filepath.Join(c.Dir, "static-clients.json"), b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
		c.cfg.ExtraArgs = append(c.cfg.ExtraArgs[:len(c.cfg.ExtraArgs):len(c.cfg.ExtraArgs)],
			"--static-clients", filepath.Join(c.Dir, "static-clients.json"))
	}
	for i := 0; i < cfg.Size; i++ {
		c.Nodes = append(c.Nodes, c.newNode(i, ids[i]))
	}
	DumpLogsOnFailure(t, c.Processes)
	t.Cleanup(c.StopAll)
	return c
}

func (c *Cluster) newNode(i int, id string) *Node {
	n := &Node{ID: id, Dir: filepath.Join(c.Dir, id)}
	if i < len(c.cfg.HTTPAddrs) {
		n.HTTPAddr, n.RaftAddr = c.cfg.HTTPAddrs[i], c.cfg.RaftAddrs[i]
	} else {
		n.HTTPAddr, n.RaftAddr = FreeAddr(c.t), FreeAddr(c.t)
	}
	pki := filepath.Join(c.Dir, "pki")
	args := []string{"controlplane", "--node-id", id, "--data-dir", n.Dir,
		"--http-addr", n.HTTPAddr, "--raft-addr", n.RaftAddr,
		"--tls-ca", filepath.Join(pki, "ca.pem"), "--tls-cert", filepath.Join(pki, id+".pem"),
		"--tls-key", filepath.Join(pki, id+"-key.pem"),
		"--keyring", filepath.Join(c.Dir, "keyring.json"), "--trusted-proxy", c.cfg.TrustedProxy,
		"--log-level", "debug"}
	args = append(args, c.cfg.ExtraArgs...)
	n.Process = NewProcess(c.t, c.Bin, id, c.Dir, args...)
	if c.cfg.Prefix != nil {
		n.Prefix = c.cfg.Prefix(i)
	}
	return n
}

// Processes lists every process the cluster started (for log dumps).
func (c *Cluster) Processes() []*Process {
	var ps []*Process
	for _, n := range c.Nodes {
		ps = append(ps, n.Process)
	}
	return append(ps, c.others...)
}

// Track adds a process (a sidecar, a service) to the cluster's log dumps
// and cleanup.
func (c *Cluster) Track(p *Process) { c.others = append(c.others, p) }

// StopAll stops every process.
func (c *Cluster) StopAll() {
	for _, p := range c.others {
		p.Stop()
	}
	for _, n := range c.Nodes {
		n.Stop()
	}
}

// Bootstrap starts node 0 with --bootstrap, then joins the others.
func (c *Cluster) Bootstrap() error {
	first := c.Nodes[0]
	first.Args = append(first.Args[:len(first.Args):len(first.Args)], "--bootstrap")
	if err := first.Start(); err != nil {
		return err
	}
	tokFile := filepath.Join(first.Dir, "root-access-token")
	var exited error
	if err := Eventually(30*time.Second, func() error {
		if !first.Running() {
			// A node that exited (a bad flag, a bad config file) makes
			// no token: say so now rather than after the timeout.
			exited = fmt.Errorf("%s exited before writing its root token:\n%s", first.ID, first.Log())
			return nil
		}
		b, err := os.ReadFile(tokFile)
		if err != nil || len(strings.TrimSpace(string(b))) == 0 {
			return fmt.Errorf("no root token at %s yet", tokFile)
		}
		c.RootToken = strings.TrimSpace(string(b))
		return nil
	}); err != nil {
		return err
	}
	if exited != nil {
		return exited
	}
	if err := c.WaitMembers(0, 1, 30*time.Second); err != nil {
		return err
	}
	for _, n := range c.Nodes[1:] {
		if err := c.Join(n, first); err != nil {
			return err
		}
	}
	for i := range c.Nodes {
		if err := c.WaitMembers(i, len(c.Nodes), 30*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// Join starts n with --join via's API (n's data directory gets a copy of
// the root token first, as every node keeps one).
func (c *Cluster) Join(n, via *Node) error {
	if err := os.MkdirAll(n.Dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(n.Dir, "root-access-token"), []byte(c.RootToken+"\n"), 0o600); err != nil {
		return err
	}
	saved := n.Args
	n.Args = append(n.Args[:len(n.Args):len(n.Args)], "--join", via.URL())
	n.Env = []string{"TASKCLUSTER_CLIENT_ID=" + RootClientID, "TASKCLUSTER_ACCESS_TOKEN=" + c.RootToken}
	err := n.Start()
	// A restart comes back from its data directory, without --join.
	n.Args = saved
	return err
}

// AddNode prepares (does not start) a new node with the next id.
func (c *Cluster) AddNode() *Node {
	n := c.newNode(len(c.Nodes), fmt.Sprintf("n%d", len(c.Nodes)+1))
	c.Nodes = append(c.Nodes, n)
	return n
}

// KeyringPath is the cluster's token keyring file.
func (c *Cluster) KeyringPath() string { return filepath.Join(c.Dir, "keyring.json") }

// CLI runs a tcauth admin command against node i with root credentials.
func (c *Cluster) CLI(i int, args ...string) (string, error) {
	cmd := exec.Command(c.Bin, args...)
	cmd.Env = append(os.Environ(), "TASKCLUSTER_ROOT_URL="+c.Nodes[i].URL(),
		"TASKCLUSTER_CLIENT_ID="+RootClientID, "TASKCLUSTER_ACCESS_TOKEN="+c.RootToken)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Root returns the root credentials.
func (c *Cluster) Root() *protocol.Credentials {
	return &protocol.Credentials{ClientID: RootClientID, AccessToken: c.RootToken}
}

// Client returns an API client for node i with creds (nil: root).
func (c *Cluster) Client(i int, creds *protocol.Credentials) *tcclient.Client {
	if creds == nil {
		creds = c.Root()
	}
	return &tcclient.Client{RootURL: c.Nodes[i].URL(), Credentials: creds,
		HTTPClient: &http.Client{Timeout: 10 * time.Second}}
}

// Peers asks node i for the cluster membership.
func (c *Cluster) Peers(i int) ([]raftstore.Peer, error) {
	var out struct {
		Peers []raftstore.Peer `json:"peers"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.Client(i, nil).Do(ctx, http.MethodGet, "/tcauth/cluster/peers", nil, nil, &out)
	return out.Peers, err
}

// WaitMembers waits until node i lists want members, one of them leader.
func (c *Cluster) WaitMembers(i, want int, timeout time.Duration) error {
	err := Eventually(timeout, func() error {
		peers, err := c.Peers(i)
		if err != nil {
			return err
		}
		leaders := 0
		for _, p := range peers {
			if p.Leader {
				leaders++
			}
		}
		if len(peers) != want || leaders != 1 {
			return fmt.Errorf("node %s lists %d members (%d leaders), want %d and 1", c.Nodes[i].ID, len(peers), leaders, want)
		}
		return nil
	})
	return err
}

// Leader waits until every running node named in among (nil: all) agrees
// on one leader and returns its index.
func (c *Cluster) Leader(timeout time.Duration) (int, error) {
	leader := -1
	err := Eventually(timeout, func() error {
		leader = -1
		var id string
		for i, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			peers, err := c.Peers(i)
			if err != nil {
				return fmt.Errorf("%s: %w", n.ID, err)
			}
			var lid string
			for _, p := range peers {
				if p.Leader {
					lid = p.ID
				}
			}
			if lid == "" {
				return fmt.Errorf("%s knows no leader", n.ID)
			}
			if id != "" && lid != id {
				return fmt.Errorf("nodes disagree on the leader: %s and %s", id, lid)
			}
			id = lid
		}
		for i, n := range c.Nodes {
			if n.ID == id && n.Running() {
				leader = i
				return nil
			}
		}
		return fmt.Errorf("leader %q is not a running node", id)
	})
	return leader, err
}

// WaitReady waits until n answers readyz with 200 (caught up with the
// leader, a leader known, its static clients applied), failing t after
// timeout.
func (n *Node) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := WaitHTTP(ctx, n.URL()+"/api/auth/v1/readyz", http.StatusOK, timeout); err != nil {
		t.Fatalf("%s not ready: %v", n.ID, err)
	}
}

// Metric reads one unlabelled series from n's /metrics.
func (n *Node) Metric(name string) (float64, error) {
	v, err := ScrapeMetric(n.URL()+"/metrics", name)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", n.ID, err)
	}
	return v, nil
}

// ScrapeMetric reads one series (its name with labels as exposed, e.g.
// `x{a="b"}`) from a Prometheus text endpoint.
func ScrapeMetric(url, name string) (float64, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", url, name)
}

// LastLineWith is the last line of log containing s ("" if none).
func LastLineWith(log, s string) string {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return ""
}
