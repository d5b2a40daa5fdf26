'use strict';

// tour.js — a walk through the auth API with the official Taskcluster JS
// client, unpatched, against a running tcauth control plane:
//
//   TASKCLUSTER_ROOT_URL=... TASKCLUSTER_CLIENT_ID=... TASKCLUSTER_ACCESS_TOKEN=... node tour.js
//
// The credentials must hold `*` (root). Each step prints one line; the
// first failed expectation ends the run with exit status 1. The Go test
// integration/cluster TestOfficialClientTour runs it against a follower of
// a three-node cluster of real processes.

const assert = require('node:assert/strict');
// taskcluster-client is an ES module: main imports it.
let taskcluster;

const rootUrl = process.env.TASKCLUSTER_ROOT_URL;
const root = {
  clientId: process.env.TASKCLUSTER_CLIENT_ID,
  accessToken: process.env.TASKCLUSTER_ACCESS_TOKEN,
};
const auth = (credentials, extra = {}) =>
  new taskcluster.Auth({rootUrl, credentials, retries: 0, ...extra});

let step = 0;
const say = (what) => console.log(`ok ${++step} - ${what}`);

// expectError runs f and checks that it fails with the given HTTP status
// (and Taskcluster error code, when given).
const expectError = async (f, statusCode, code) => {
  let err;
  try {
    await f();
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected HTTP ${statusCode}, the call succeeded`);
  assert.equal(err.statusCode, statusCode, `status: ${err.message}`);
  if (code) {
    assert.equal(err.code, code, `code: ${err.message}`);
  }
  return err;
};

const main = async () => {
  taskcluster = (await import('taskcluster-client')).default;
  const admin = auth(root);
  const suffix = taskcluster.slugid().slice(0, 8);
  const appId = `tour/app-${suffix}`;
  const roleId = `project:tour-${suffix}*`;

  assert.equal((await admin.ping()).alive, true);
  say('ping');

  // A client whose scopes come partly from a parameterised role.
  await admin.createRole(roleId, {
    description: 'tour: project roles',
    scopes: [`secrets:get:project/tour-${suffix}<..>/*`],
  });
  const role = await admin.role(roleId);
  assert.equal(role.roleId, roleId);
  say(`createRole ${roleId} (parameterised)`);

  const created = await admin.createClient(appId, {
    description: 'tour: an application',
    expires: taskcluster.fromNow('1 day'),
    scopes: ['auth:current-scopes', `assume:project:tour-${suffix}-red`, 'notes:read:*', 'notes:write:shared',
      `auth:create-client:${appId}/*`],
  });
  assert.equal(created.clientId, appId);
  assert.match(created.accessToken, /^[A-Za-z0-9_-]{44}$/);
  assert.ok(created.expandedScopes.includes(`secrets:get:project/tour-${suffix}-red/*`),
    `expandedScopes ${created.expandedScopes}`);
  say(`createClient ${appId}`);

  // Use it: the server sees the role expansion. (currentScopes also lists
  // assume:anonymous, which every request holds: docs/protocol.md §9.)
  const app = {clientId: appId, accessToken: created.accessToken};
  const mine = await auth(app).currentScopes();
  assert.ok(mine.scopes.includes(`secrets:get:project/tour-${suffix}-red/*`), `currentScopes ${mine.scopes}`);
  say('the new client authenticates; currentScopes includes the role expansion');

  const expanded = await admin.expandScopes({scopes: [`assume:project:tour-${suffix}-blue`]});
  assert.deepEqual(expanded.scopes, [`assume:project:tour-${suffix}-blue`, `secrets:get:project/tour-${suffix}-blue/*`]);
  say('expandScopes with the parameterised role');

  // Unnamed temporary credentials: the certificate limits the scopes.
  const temp = taskcluster.createTemporaryCredentials({
    credentials: app,
    start: taskcluster.fromNow('-1 minute'),
    expiry: taskcluster.fromNow('1 hour'),
    scopes: ['auth:current-scopes', 'notes:read:a'],
  });
  assert.ok(temp.certificate);
  assert.deepEqual((await auth(temp).currentScopes()).scopes, ['assume:anonymous', 'auth:current-scopes', 'notes:read:a']);
  say('unnamed temporary credentials');

  // Named temporary credentials (the issuer holds auth:create-client:<name>).
  const named = taskcluster.createTemporaryCredentials({
    clientId: `${appId}/temp`,
    credentials: app,
    start: taskcluster.fromNow('-1 minute'),
    expiry: taskcluster.fromNow('1 hour'),
    scopes: ['auth:current-scopes', 'notes:write:shared'],
  });
  assert.equal(named.clientId, `${appId}/temp`);
  assert.deepEqual((await auth(named).currentScopes()).scopes, ['assume:anonymous', 'auth:current-scopes', 'notes:write:shared']);
  say('named temporary credentials');

  // Temporary credentials may not exceed the issuer's scopes.
  const greedy = taskcluster.createTemporaryCredentials({
    credentials: app,
    start: taskcluster.fromNow('-1 minute'),
    expiry: taskcluster.fromNow('1 hour'),
    scopes: ['auth:current-scopes', 'notes:delete'],
  });
  await expectError(() => auth(greedy).currentScopes(), 401, 'AuthenticationFailed');
  say('temporary credentials beyond the issuer are refused (401)');

  // authorizedScopes restrict a request.
  const restricted = await auth(app, {authorizedScopes: ['auth:current-scopes', 'notes:read:x']}).currentScopes();
  assert.deepEqual(restricted.scopes, ['assume:anonymous', 'auth:current-scopes', 'notes:read:x']);
  await expectError(
    () => auth(app, {authorizedScopes: ['notes:read:x']}).currentScopes(), 403, 'InsufficientScopes');
  say('authorizedScopes');

  // A signed URL (bewit) for testAuthenticateGet, fetched without any header.
  const tester = auth({clientId: 'tester', accessToken: 'no-secret'});
  const url = tester.buildSignedUrl(tester.testAuthenticateGet, {expiration: 600});
  assert.match(url, /[?&]bewit=/);
  const res = await fetch(url);
  assert.equal(res.status, 200, await res.clone().text());
  const body = await res.json();
  assert.equal(body.clientId, 'tester');
  assert.ok(body.scopes.includes('test:*'), `scopes ${body.scopes}`);
  say('signed URL for testAuthenticateGet');
  const tampered = url.replace('/test-authenticate-get/', '/test-authenticate-get//');
  assert.notEqual((await fetch(tampered)).status, 200);
  say('a signed URL for another path is refused');

  // Reset: the old token stops working, the new one works.
  const reset = await admin.resetAccessToken(appId);
  assert.notEqual(reset.accessToken, created.accessToken);
  await expectError(() => auth(app).currentScopes(), 401, 'AuthenticationFailed');
  const fresh = {clientId: appId, accessToken: reset.accessToken};
  await auth(fresh).currentScopes();
  say('resetAccessToken');

  // Temporary credentials survive a reset? No: they are signed with the
  // old token, so they stop verifying too.
  await expectError(() => auth(temp).currentScopes(), 401, 'AuthenticationFailed');
  say('temporary credentials issued with the old token stop working');

  // Disable, enable, delete.
  await admin.disableClient(appId);
  await expectError(() => auth(fresh).currentScopes(), 401);
  await admin.enableClient(appId);
  await auth(fresh).currentScopes();
  say('disableClient / enableClient');

  await admin.deleteClient(appId);
  await expectError(() => admin.client(appId), 404, 'ResourceNotFound');
  await expectError(() => auth(fresh).currentScopes(), 401, 'AuthenticationFailed');
  say('deleteClient');

  await admin.deleteRole(roleId);
  await expectError(() => admin.role(roleId), 404, 'ResourceNotFound');
  say('deleteRole');

  // Escalation: a client cannot create a client more powerful than itself.
  const small = await admin.createClient(`tour/small-${suffix}`, {
    description: 'tour: small', expires: taskcluster.fromNow('1 hour'),
    scopes: [`auth:create-client:tour/*`],
  });
  const smallAuth = auth({clientId: small.clientId, accessToken: small.accessToken});
  await expectError(() => smallAuth.createClient(`tour/big-${suffix}`, {
    description: 'escalation', expires: taskcluster.fromNow('1 hour'), scopes: ['*'],
  }), 403, 'InsufficientScopes');
  await admin.deleteClient(small.clientId);
  say('a client cannot create a more powerful client (403)');

  console.log(`tour passed: ${step} steps`);
};

main().catch((err) => {
  console.error(`not ok ${step + 1} - ${err.stack || err}`);
  if (err.body) {
    console.error(JSON.stringify(err.body, null, 2));
  }
  process.exit(1);
});
