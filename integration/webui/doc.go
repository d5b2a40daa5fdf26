// Package webui tests the web UI end to end in a real browser: Debian's
// headless Chromium (`make deps-browser`), driven with chromedp, against
// one tcauth control-plane node started with --login-config and the
// example OpenID provider of github.com/zitadel/oidc/v3 (`make deps-oidc`),
// whose real login form the browser fills in. The tools flow is checked
// with the real `tcauth signin` process and the official
// taskcluster-client (npm, through integration/node).
//
// One browser process serves the whole package; each user has a browser
// context of their own (cookies apart) and each check opens its own tab.
// Every page checked is saved as bin/screenshots/<page>.png for a person
// to look at.
package webui
