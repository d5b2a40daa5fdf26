'use strict';

// hawk.js — drive @hapi/hawk@8 (the reference Hawk implementation) over
// JSON on stdin/stdout. Input: an array of cases, each {op, ...}:
//
//   {op: "header", id, key, method, url, ts?, nonce?, ext?, payload?, contentType?, hash?, now?}
//     -> {header, artifacts}            Hawk.client.header
//   {op: "authenticate", clients: {id: key}, method, resource, host, port,
//    authorization, contentType?, payload?, now?, timestampSkewSec? (default 900,
//    Taskcluster's 15 minutes)}
//     -> {ok: true, id, artifacts} | {ok: false, status, message}   Hawk.server.authenticate
//   {op: "bewit", id, key, url, ttlSec, ext?, now?}
//     -> "<bewit token>"                Hawk.uri.getBewit
//   {op: "authenticateBewit", clients, method, resource, host, port, authorization?, now?}
//     -> {ok: true, id, ext} | {ok: false, status, message}    Hawk.uri.authenticate
//   {op: "parseHeader", header}
//     -> {ok: true, attributes} | {ok: false, message}
//        hawk@9's parser (the Hawk of Taskcluster's auth service), then its
//        server's required-attribute check; message formatted the way the
//        auth service's signature validator reports a Boom error.
//
// `now` (ms since the epoch) freezes the clock for that case;
// `localtimeOffsetMsec` is passed through to @hapi/hawk as well (it shifts the
// library's idea of now, as a server with a known clock offset would).

const clock = require('./lib/clock');
const {main} = require('./lib/run');
const Hawk = require('@hapi/hawk');
const Hawk9 = require('hawk');

const creds = (id, key) => ({id, key, algorithm: 'sha256'});

// A credentials function over a fixed id -> key map, as a server would look
// clients up in its store; unknown ids give null ("Unknown credentials").
const lookup = (clients) => async (id) =>
  Object.prototype.hasOwnProperty.call(clients || {}, id) ? creds(id, clients[id]) : null;

// A minimal stand-in for node's IncomingMessage: @hapi/hawk reads method,
// url and headers, and takes host/port from the options we pass.
const fakeRequest = (c) => {
  const headers = {host: `${c.host}:${c.port}`};
  if (c.authorization !== undefined) {
    headers.authorization = c.authorization;
  }
  if (c.contentType !== undefined) {
    headers['content-type'] = c.contentType;
  }
  return {method: c.method, url: c.resource, headers};
};

// withOffset copies localtimeOffsetMsec from a case into library options.
const withOffset = (c, opts) => {
  if (c.localtimeOffsetMsec !== undefined) {
    opts.localtimeOffsetMsec = c.localtimeOffsetMsec;
  }
  return opts;
};

// validatorMessage is how Taskcluster's signature validator turns a client
// (4xx) Boom error into its auth-failed message: "<error>: <message>".
const validatorMessage = (err) => {
  if (err.isBoom && !err.isServer) {
    const p = err.output.payload;
    return p.message ? `${p.error}: ${p.message}` : p.error;
  }
  return err.message;
};

const failure = (err) => ({
  ok: false,
  status: err.output ? err.output.statusCode : 0,
  message: err.message,
});

const handlers = {
  header: (c) => {
    clock.setNow(c.now);
    const opts = withOffset(c, {credentials: creds(c.id, c.key)});
    for (const k of ['ext', 'payload', 'contentType', 'hash', 'nonce']) {
      if (c[k] !== undefined) {
        opts[k] = c[k];
      }
    }
    if (c.ts !== undefined) {
      opts.timestamp = c.ts;
    }
    const {header, artifacts} = Hawk.client.header(c.url, c.method, opts);
    return {header, artifacts};
  },

  authenticate: async (c) => {
    clock.setNow(c.now);
    const options = withOffset(c, {host: c.host, port: c.port, timestampSkewSec: c.timestampSkewSec || 900});
    if (c.payload !== undefined) {
      options.payload = c.payload;
    }
    try {
      const {credentials, artifacts} = await Hawk.server.authenticate(fakeRequest(c), lookup(c.clients), options);
      return {ok: true, id: credentials.id, artifacts};
    } catch (err) {
      return failure(err);
    }
  },

  bewit: (c) => {
    clock.setNow(c.now);
    const opts = withOffset(c, {credentials: creds(c.id, c.key), ttlSec: c.ttlSec});
    if (c.ext !== undefined) {
      opts.ext = c.ext;
    }
    return Hawk.uri.getBewit(c.url, opts);
  },

  parseHeader: (c) => {
    try {
      const attributes = Hawk9.utils.parseAuthorizationHeader(c.header);
      if (!attributes.id || !attributes.ts || !attributes.nonce || !attributes.mac) {
        return {ok: false, message: 'Bad Request: Missing attributes'};
      }
      return {ok: true, attributes};
    } catch (err) {
      return {ok: false, message: validatorMessage(err)};
    }
  },

  authenticateBewit: async (c) => {
    clock.setNow(c.now);
    try {
      const {credentials, attributes} = await Hawk.uri.authenticate(fakeRequest(c), lookup(c.clients), withOffset(c, {host: c.host, port: c.port}));
      return {ok: true, id: credentials.id, ext: attributes.ext};
    } catch (err) {
      return failure(err);
    }
  },
};

main(handlers);
