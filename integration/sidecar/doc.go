// Package sidecar_test runs the control plane, `tcauth sidecar` and the
// notes example service as real processes and calls the service through
// the sidecar the way a Taskcluster client would: Hawk headers, bewits,
// temporary credentials, authorizedScopes; then it checks what a service
// relies on — spoofed identity headers stripped, replays and tampered
// payloads refused, revocations effective within a second, cached
// clients served while the control plane is down, route files checked —
// and (nginx_test.go) the forward-auth mode behind a real nginx.
package sidecar_test
