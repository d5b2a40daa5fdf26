// Package sidecar is tcauth's verifying reverse proxy: placed in front of
// a service, it verifies Taskcluster Hawk headers and bewits, enforces a
// scope expression per route (a YAML route policy, see Policy), and tells
// the service who the caller is in request headers, so the service needs
// no auth code. In forward-auth mode it answers nginx auth_request /
// Traefik ForwardAuth sub-requests instead of proxying.
//
// # Pipeline (every request, in this order)
//
//  1. Every inbound header whose name, lower-cased with '_' read as '-',
//     starts with "x-taskcluster-" is deleted, and such names are removed
//     from Connection. The upstream can therefore believe every
//     X-Taskcluster-* header it receives.
//  2. The route is matched (method + path with <param> captures; query and
//     JSON body parameters if the route declares them). No match: the
//     policy's default (deny → 404 ResourceNotFound; 403 in forward-auth
//     mode, since nginx maps other codes to 500). Public routes skip 3–4.
//  3. Credentials are verified with protocol.Authenticator (locally with
//     cached clients, or by the control plane's authenticateHawk in
//     remote mode). A Hawk payload hash is checked against the body
//     (buffered up to Config.MaxHashedBody, else 413) and a header seen
//     before (same clientId, ts and nonce within the skew) is a replay
//     (401). Bewits are GET/HEAD only.
//  4. The route's scope-expression template is rendered with the captured
//     parameters and evaluated against the caller's expanded scopes: 403
//     InsufficientScopes naming the unsatisfied part; no or invalid
//     credentials where they are needed: 401 AuthenticationFailed with
//     WWW-Authenticate: hawk. Cannot verify now (control plane unreachable
//     for an uncached client, past max-stale, not yet synchronised): 503
//     ServiceUnavailable with Retry-After — never 401, never allow.
//  5. The identity headers below are set; the bewit query parameter and
//     the Authorization header are removed (Config.ForwardAuthorization
//     keeps both).
//
// Errors use Taskcluster's error body ({code, message, requestInfo}).
// Upstream failures: 502 BadGateway (connection failed), 504
// GatewayTimeout (no response headers within Config.UpstreamTimeout).
//
// # Identity headers (to the upstream; in forward-auth mode on the 200)
//
//	X-Taskcluster-Client-Id         the verified clientId (for temporary
//	                                credentials the credential's name); absent
//	                                for anonymous callers
//	X-Taskcluster-Scopes            the caller's expanded scopes (certificate and
//	                                authorizedScopes applied, assume:anonymous
//	                                included) as a compact JSON array of strings,
//	                                sorted and normalised: ["a:*","b"]
//	X-Taskcluster-Scopes-Truncated  "true" when the array would exceed
//	                                Config.MaxScopesHeader bytes; Scopes then holds
//	                                only the scopes of the route's expression that
//	                                the caller satisfied (ScopesSatisfying), or []
//	                                if even that is too long
//	X-Taskcluster-Expires           when the credentials expire, ISO 8601 UTC with
//	                                milliseconds (2024-11-13T22:13:20.000Z); absent
//	                                when they never expire
//	X-Taskcluster-Auth-Scheme       "hawk", "bewit" or "none"
//	X-Taskcluster-Route             the name of the route policy entry that matched
//	X-Taskcluster-Auth-Stale        seconds (one decimal) the verification data may
//	                                be behind because the control plane is
//	                                unreachable; absent when current. Also set on the
//	                                response to the caller.
//	X-Taskcluster-Payload-Hash      forward-auth only: the Hawk hash attribute (the
//	                                sidecar never sees the body; the upstream may
//	                                check it with protocol.PayloadHash)
//
// In forward-auth mode a refusal (401/403/...) also carries the error body
// as one line of JSON in X-Taskcluster-Error (at most 2 KiB, the message
// shortened if needed): nginx's auth_request cannot pass a sub-request's
// body on, but auth_request_set can pick up a header (examples/nginx).
//
// X-Forwarded-For/-Host/-Proto are set for the upstream; those of the
// caller are kept only when the direct peer is in Config.TrustedProxies,
// which is also the only case in which X-Forwarded-Port/-Proto count for
// the Hawk MAC's port.
//
// See DESIGN.md for why the caches, the change feed and stale mode are
// shaped the way they are.
package sidecar
