'use strict';

// tc.js — drive the official Taskcluster JS client (taskcluster-client) over
// JSON on stdin/stdout, so Go tests exercise the client's real code paths
// (its certificate signing, its ext building, its Hawk header and bewit).
// Input: an array of cases, each {op, ...}:
//
//   {op: "createTemporaryCredentials", credentials: {clientId, accessToken},
//    clientId?, scopes?, start, expiry}            (start/expiry in ms)
//     -> {clientId, accessToken, certificate}
//   {op: "buildSignedUrl", rootUrl, credentials, authorizedScopes?, method,
//    args?, expiration?, now?}
//     -> "<signed url>"          auth.buildSignedUrl(auth[method], ...args, {expiration})
//   {op: "call", rootUrl, credentials?, authorizedScopes?, method, args?, now?}
//     -> {ok: true, body} | {ok: false, statusCode, body, message}
//        calls auth[method](...args) against rootUrl (e.g. a Go test server,
//        which sees the Authorization header exactly as the client sends it)
//
// `now` (ms since the epoch) freezes the clock the client's Hawk code reads.

// clock must load before taskcluster-client: hawk@9 captures Date.now once.
const clock = require('./lib/clock');
const {main} = require('./lib/run');

const authClient = (tc, c) => {
  const opts = {rootUrl: c.rootUrl, retries: 0};
  if (c.credentials) {
    opts.credentials = c.credentials;
  }
  if (c.authorizedScopes !== undefined) {
    opts.authorizedScopes = c.authorizedScopes;
  }
  return new tc.Auth(opts);
};

const handlers = (tc) => ({
  createTemporaryCredentials: (c) => {
    const opts = {
      credentials: c.credentials,
      start: new Date(c.start),
      expiry: new Date(c.expiry),
    };
    if (c.scopes !== undefined) {
      opts.scopes = c.scopes;
    }
    if (c.clientId !== undefined) {
      opts.clientId = c.clientId;
    }
    return tc.createTemporaryCredentials(opts);
  },

  buildSignedUrl: (c) => {
    clock.setNow(c.now);
    const auth = authClient(tc, c);
    const entry = auth[c.method];
    if (typeof entry !== 'function') {
      throw new Error(`no such Auth method ${c.method}`);
    }
    const args = [entry, ...(c.args || [])];
    if (c.expiration !== undefined) {
      args.push({expiration: c.expiration});
    }
    return auth.buildSignedUrl(...args);
  },

  call: async (c) => {
    clock.setNow(c.now);
    const auth = authClient(tc, c);
    if (typeof auth[c.method] !== 'function') {
      throw new Error(`no such Auth method ${c.method}`);
    }
    try {
      const body = await auth[c.method](...(c.args || []));
      return {ok: true, body};
    } catch (err) {
      return {ok: false, statusCode: err.statusCode || 0, body: err.body, message: err.message};
    } finally {
      clock.setNow(null);
    }
  },
});

// taskcluster-client is an ES module: import it once the clock is in place.
main(async () => handlers((await import('taskcluster-client')).default));
