// Package login tests the login service end to end, across real
// processes: tcauth control-plane nodes started with --login-config, the
// example OpenID provider of github.com/zitadel/oidc/v3 (a real OIDC
// provider with a login form and users from a file; `make deps-oidc`
// builds it), a fake GitHub written for tcauth's tests
// (controlplane/controlplanetest/fakegithub: no GitHub-compatible server
// runs here), and the official taskcluster-client
// (npm, through integration/node) using the credentials users get.
//
// A browser is an http.Client with a cookie jar that follows redirects and
// submits the provider's login form and the consent form, so every step a
// person's browser takes crosses the same HTTP interfaces.
package login
