package main

// Default listen addresses. They are chosen so that `tcauth dev`, a
// standalone control plane, a standalone sidecar and the three nodes of
// examples/cluster can all run on one machine at once, and so that none is
// a port a well-known service uses by default (8300–8302 are Consul's
// server RPC and Serf ports, 9090/9091 Prometheus's and the Pushgateway's,
// 8500 Consul's HTTP API, 4001/4002 rqlite's, 2379/2380 etcd's).
// TestDefaultPortsDistinct checks both; README.md lists them.
//
// `tcauth dev` keeps 8080/8081, which the tour and the login examples'
// redirect URIs use; it picks any free port for Raft, as a single node
// needs no fixed one.
const (
	defaultControlPlaneHTTP = "127.0.0.1:7800"
	defaultControlPlaneRaft = "127.0.0.1:7801"
	// suggestedControlPlaneAdmin is what the docs and --help suggest for
	// `controlplane --admin-addr`, which is off by default (an admin
	// listener is only wanted by whoever scrapes or profiles it).
	suggestedControlPlaneAdmin = "127.0.0.1:7802"
	defaultSidecarListen       = "127.0.0.1:7810"
	defaultSidecarAdmin        = "127.0.0.1:7811"
	defaultDevHTTP             = "127.0.0.1:8080"
	defaultDevSidecar          = "127.0.0.1:8081"
	defaultDevRaft             = "127.0.0.1:0"
)
