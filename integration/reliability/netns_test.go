package reliability

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The test network. Every control-plane node lives in its own network
// namespace with two interfaces:
//
//	API net  10.77.1.0/24 (bridge tcr-api, the test process is 10.77.1.1):
//	         clients, sidecars and follower→leader forwarding
//	Raft net 10.77.2.0/24 (bridge tcr-raft, no address in the root
//	         namespace): Raft traffic only
//
// Cutting a node's Raft link (its bridge port down) isolates it from its
// peers while the test can still send it requests — how "leader isolated
// in the minority" is observed. The sidecars (one per node for the
// probes, plus the sidecar-partition scenario's own) live in a namespace
// of their own on the API net, with a direct link to the test
// (10.77.3.0/24), so they can be cut off from the control plane while the
// test still calls them.
const (
	apiBridge  = "tcr-api"
	raftBridge = "tcr-raft"
	nsPrefix   = "tcr-n"
	sidecarNS  = "tcr-side"
	maxNodes   = 4 // three plus a replacement
)

func apiIP(i int) string  { return fmt.Sprintf("10.77.1.%d", 11+i) }
func raftIP(i int) string { return fmt.Sprintf("10.77.2.%d", 11+i) }
func nsName(i int) string { return fmt.Sprintf("%s%d", nsPrefix, i+1) }

const (
	sidecarAPIIP    = "10.77.1.30"
	sidecarClientIP = "10.77.3.2"
	testClientIP    = "10.77.3.1"
)

// network sets up and tears down the namespaces.
type network struct {
	t testing.TB
}

// canRun says why the suite cannot run here ("" if it can).
func canRun() string {
	if os.Geteuid() != 0 {
		return "needs root (network namespaces)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "needs iproute2 (`ip`); make test-reliability installs it"
	}
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
		return fmt.Sprintf("`ip netns` does not work here: %v %s", err, out)
	}
	return ""
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func newNetwork(t testing.TB) *network {
	n := &network{t: t}
	n.teardown() // leftovers of an interrupted run
	steps := [][]string{
		{"ip", "link", "add", apiBridge, "type", "bridge"},
		{"ip", "addr", "add", "10.77.1.1/24", "dev", apiBridge},
		{"ip", "link", "set", apiBridge, "up"},
		{"ip", "link", "add", raftBridge, "type", "bridge"},
		{"ip", "link", "set", raftBridge, "up"},
	}
	for i := 0; i < maxNodes; i++ {
		ns := nsName(i)
		a, r := fmt.Sprintf("tcra%d", i+1), fmt.Sprintf("tcrr%d", i+1)
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
			[]string{"ip", "link", "add", a, "type", "veth", "peer", "name", "eth-api", "netns", ns},
			[]string{"ip", "link", "set", a, "master", apiBridge, "up"},
			[]string{"ip", "-n", ns, "addr", "add", apiIP(i) + "/24", "dev", "eth-api"},
			[]string{"ip", "-n", ns, "link", "set", "eth-api", "up"},
			[]string{"ip", "link", "add", r, "type", "veth", "peer", "name", "eth-raft", "netns", ns},
			[]string{"ip", "link", "set", r, "master", raftBridge, "up"},
			[]string{"ip", "-n", ns, "addr", "add", raftIP(i) + "/24", "dev", "eth-raft"},
			[]string{"ip", "-n", ns, "link", "set", "eth-raft", "up"},
		)
	}
	steps = append(steps,
		[]string{"ip", "netns", "add", sidecarNS},
		[]string{"ip", "-n", sidecarNS, "link", "set", "lo", "up"},
		[]string{"ip", "link", "add", "tcrsa", "type", "veth", "peer", "name", "eth-api", "netns", sidecarNS},
		[]string{"ip", "link", "set", "tcrsa", "master", apiBridge, "up"},
		[]string{"ip", "-n", sidecarNS, "addr", "add", sidecarAPIIP + "/24", "dev", "eth-api"},
		[]string{"ip", "-n", sidecarNS, "link", "set", "eth-api", "up"},
		[]string{"ip", "link", "add", "tcrsc", "type", "veth", "peer", "name", "eth-client", "netns", sidecarNS},
		[]string{"ip", "addr", "add", testClientIP + "/24", "dev", "tcrsc"},
		[]string{"ip", "link", "set", "tcrsc", "up"},
		[]string{"ip", "-n", sidecarNS, "addr", "add", sidecarClientIP + "/24", "dev", "eth-client"},
		[]string{"ip", "-n", sidecarNS, "link", "set", "eth-client", "up"},
	)
	for _, s := range steps {
		if err := run(s...); err != nil {
			n.teardown()
			t.Fatalf("network setup: %v", err)
		}
	}
	t.Cleanup(n.teardown)
	return n
}

func (n *network) teardown() {
	for i := 0; i < maxNodes; i++ {
		_ = run("ip", "netns", "del", nsName(i))
	}
	_ = run("ip", "netns", "del", sidecarNS)
	// Namespace deletion frees its interfaces asynchronously: delete the
	// root-side ends of the veth pairs explicitly.
	links := []string{apiBridge, raftBridge, "tcrsc", "tcrsa"}
	for i := 0; i < maxNodes; i++ {
		links = append(links, fmt.Sprintf("tcra%d", i+1), fmt.Sprintf("tcrr%d", i+1))
	}
	for _, l := range links {
		_ = run("ip", "link", "del", l)
	}
}

// cutRaft isolates node i from its peers (its API stays reachable).
func (n *network) cutRaft(i int) error {
	return run("ip", "link", "set", fmt.Sprintf("tcrr%d", i+1), "down")
}

// healRaft reconnects node i.
func (n *network) healRaft(i int) error {
	return run("ip", "link", "set", fmt.Sprintf("tcrr%d", i+1), "up")
}

// cutSidecar takes the sidecar off the API net: no control plane for it;
// the test still reaches it over its client link.
func (n *network) cutSidecar() error { return run("ip", "link", "set", "tcrsa", "down") }

func (n *network) healSidecar() error { return run("ip", "link", "set", "tcrsa", "up") }
