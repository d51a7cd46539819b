// Access Token lifetime on an open connection. The SDK is told the token's lifetime in `init`
// and fires `tokenExpired` 5 s before it ends; an app then calls `worker.updateToken(fresh)`.
// The SDK keeps its open socket, so the server must close it when the old token expires: the
// SDK then reconnects with the fresh token, is `ready` again, and keeps receiving work. An app
// that does not update its token is disconnected at expiry and stays disconnected. Without
// this, an agent's session would either die silently after an hour or never expire at all.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { SdkEnv, buildRouting, connectWorker, decodeJwt } from '../harness.js';

const TTL = 15; // seconds; tokenExpired comes about 10 s after connecting

describe('token expiry', () => {
  const env = new SdkEnv();
  before(() => env.setUp());
  after(() => env.tearDown());

  test('tokenExpired, updateToken, the server closes the old socket at expiry, the SDK is ready again with the new token', { timeout: 60_000 }, async () => {
    const setup = await buildRouting(env.client, { workers: ['Alice'], available: false });
    const [worker] = setup.workers;
    const shortToken = env.token(setup.workspaceSid, worker.sid, { ttl: TTL });
    const expiresAt = decodeJwt(shortToken).payload.exp * 1000;
    const agent = connectWorker(env.server, shortToken, { label: 'Alice' });
    const ready = await agent.ready();

    const expired = await agent.events.waitFor('tokenExpired', { timeout: (TTL + 5) * 1000 });
    // `token_lifetime` in init (ms) must be the token's remaining life: the SDK fires 5 s early.
    assert.ok(expired.at - ready.at > 3000, `tokenExpired ${expired.at - ready.at} ms after ready: token_lifetime missing or too small`);
    assert.ok(Math.abs(expired.at - (expiresAt - 5000)) <= 2500,
      `tokenExpired ${expiresAt - expired.at} ms before the token's exp, expected about 5000`);

    const mark = agent.events.mark;
    agent.worker.updateToken(env.token(setup.workspaceSid, worker.sid));
    await agent.events.waitFor('tokenUpdated', { since: mark });

    const closed = await agent.events.waitFor('disconnected', { since: mark, timeout: 12_000, what: 'the server closing the expired socket' });
    assert.ok(closed.at >= expiresAt - 1500, `the socket was closed ${expiresAt - closed.at} ms before the token expired`);
    assert.ok(closed.at <= expiresAt + 5000, `the socket was closed ${closed.at - expiresAt} ms after the token expired`);
    const readyAgain = await agent.events.waitFor('ready', { since: closed.index, timeout: 15_000, what: 'ready with the new token' });
    assert.equal(agent.events.all('error', mark).length, 0, `no error while switching tokens:\n${agent.events.describe()}`);

    // Work made after the switch reaches the agent, and the new token is accepted on HTTP too.
    await setup.ws.workers(worker.sid).update({ activitySid: setup.acts.Available.sid });
    const task = await setup.ws.tasks.create({ workflowSid: setup.workflow.sid, attributes: '{"after":"updateToken"}' });
    const created = await agent.events.waitFor('reservationCreated', { since: readyAgain.index });
    assert.equal(created.object.task.sid, task.sid);
    assert.equal((await created.object.accept()).status, 'accepted');
  });

  test('without updateToken the server closes the socket at expiry and the SDK stays disconnected', { timeout: 60_000 }, async () => {
    const setup = await buildRouting(env.client, { workers: ['Bob'], available: false });
    const [worker] = setup.workers;
    const shortToken = env.token(setup.workspaceSid, worker.sid, { ttl: TTL });
    const expiresAt = decodeJwt(shortToken).payload.exp * 1000;
    const agent = connectWorker(env.server, shortToken, { label: 'Bob' });
    await agent.ready();

    const expired = await agent.events.waitFor('tokenExpired', { timeout: (TTL + 5) * 1000 });
    const closed = await agent.events.waitFor('disconnected', { since: expired.index, timeout: 12_000, what: 'the server closing the expired socket' });
    assert.ok(closed.at >= expiresAt - 1500 && closed.at <= expiresAt + 5000,
      `closed ${closed.at - expiresAt} ms from the token's exp`);
    await agent.events.expectNone('ready', 4000, { since: closed.index, what: 'ready with an expired token' });
  });
});
