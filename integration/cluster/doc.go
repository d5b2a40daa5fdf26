// Package cluster runs a real three-node tcauth control plane (separate
// processes on loopback, Raft over mutual TLS, bolt files on disk) and
// checks what the cluster promises: writes through any node, reads from
// every node, a killed leader replaced without losing an acknowledged
// write, a restarted node catching up, a backup restored into a fresh
// cluster, and no plaintext access token anywhere on disk or in the logs.
package cluster
