// Package reliability runs a real three-node tcauth control plane, each
// node in its own network namespace, under a concurrent client workload
// while it injects faults: the leader killed or cut off in the minority, a
// follower partitioned, rolling restarts, a node replaced, the whole
// cluster restarted from disk, a backup restored into a new cluster.
//
// Every register operation's invocation and response is recorded and the
// history is checked for linearizability with porcupine; every
// acknowledged create must be present on every node at the end.
//
// Meanwhile probe goroutines authenticate acknowledged clients on every
// node (authenticateHawk, and an API call signed by the client) and
// through a sidecar in front of each node; any answer a valid caller must
// never get (401, 403, 404, 500, 503 without Retry-After) is counted as
// "valid callers refused" and fails the scenario (see probes_test.go for
// what is allowed and why). The test prints a summary table (and writes
// it to $TCAUTH_RELIABILITY_SUMMARY).
//
// It needs root and iproute2 (`ip netns`); elsewhere it skips, except with
// CI=true, where not being able to run is a failure.
//
//	go build -o /tmp/tcauth ./cmd/tcauth
//	TCAUTH_BIN=/tmp/tcauth go test -count=1 -v -timeout 10m ./integration/reliability/
package reliability
