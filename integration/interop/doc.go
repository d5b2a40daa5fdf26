// Package interop holds differential and interoperability tests that run
// tcauth's protocol and scopeengine packages against the real npm peers:
// @hapi/hawk (reference Hawk), taskcluster-client (the official JS client)
// and taskcluster-lib-scopes (the reference scope algebra). The peers are
// driven through the JSON-over-stdin scripts in ../node; the tests skip when
// node or ../node/node_modules is missing (run `npm ci --prefix
// integration/node` or `make deps` first).
package interop
