// What the server must refuse, as a user of the SDK would see it. A token for a workspace the
// account does not own, one signed with the wrong secret, one made with an unknown key and an
// expired one never reach `ready` (the websocket upgrade is refused and the SDK emits `error`).
// An HTTP envelope carrying a worker's token may only act on that worker (403 with Twilio's error
// JSON otherwise; 401 for a bad token). Voice-only calls, which need a telephony backend Taskyard
// does not have, reject with a reason instead of pretending to work. `disconnect()` ends the
// session at the server too. These are the checks that keep one agent (or a stranger) from
// acting as another.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import {
  SdkEnv, buildQuickstart, buildRouting, connectWorker, mintToken, randomSid, sleep, uniqueName,
  waitReservationStatus, waitTaskStatus,
} from '../harness.js';

/** Connect with `token` and expect at least one `error` and no `ready` within `ms`. */
async function expectRefused(env, token, label, ms = 4000) {
  const agent = connectWorker(env.server, token, { label });
  await agent.events.waitFor('error', { timeout: ms, what: 'error (refused upgrade)' });
  await agent.events.expectNone('ready', ms, { what: 'ready with a token the server must refuse' });
  await agent.disconnect();
}

/** POST one envelope to ebServer exactly as the SDK does (a JSON body, axios' default content type). */
async function postEnvelope(env, envelope) {
  const res = await fetch(env.server.ebServer, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', apiVersion: 'v1', clientVersion: '2.1.1' },
    body: JSON.stringify(envelope),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

function assertTwilioError(res, status) {
  assert.equal(res.status, status, `HTTP ${res.status}: ${res.text}`);
  assert.ok(res.json, `a JSON body, got ${res.text}`);
  assert.equal(typeof res.json.code, 'number', `code: ${res.text}`);
  assert.equal(typeof res.json.message, 'string', `message: ${res.text}`);
  assert.ok(res.json.message.length > 0);
  assert.equal(typeof res.json.more_info, 'string', `more_info: ${res.text}`);
  assert.equal(res.json.status, status, `status: ${res.text}`);
}

/** What the SDK rejects with for a 4xx answer: "Request failed with status code 4xx. <server message>". */
function refusedWithReason(err) {
  return /Request failed with status code 4\d\d\. \S/.test(err.message) && !/\. undefined$/.test(err.message);
}

describe('refusals', () => {
  const env = new SdkEnv();
  before(() => env.setUp());
  after(() => env.tearDown());

  test('tokens the server must refuse never reach ready', { timeout: 60_000 }, async () => {
    const qs = await buildQuickstart(env.client);
    const accountSid = env.server.accountSid;

    // A workspace (and worker) that belongs to another account: a subaccount of this one.
    const sub = await env.client.api.v2010.accounts.create({ friendlyName: uniqueName('other team') });
    const subClient = env.server.client(sub.sid, sub.authToken);
    const subWs = await subClient.taskrouter.v1.workspaces.create({ friendlyName: 'not yours' });
    const subWorker = await subClient.taskrouter.v1.workspaces(subWs.sid).workers.create({ friendlyName: 'Eve' });

    const alice = { workspaceSid: qs.workspaceSid, workerSid: qs.alice.sid };
    const cases = {
      'a workspace of another account': mintToken({ accountSid, key: env.key, workspaceSid: subWs.sid, workerSid: subWorker.sid }),
      'a workspace that does not exist': mintToken({ accountSid, key: env.key, workspaceSid: randomSid('WS'), workerSid: qs.alice.sid }),
      'a worker of another workspace': mintToken({ accountSid, key: env.key, workspaceSid: qs.workspaceSid, workerSid: subWorker.sid }),
      'the wrong secret': mintToken({ accountSid, key: { sid: env.key.sid, secret: crypto.randomBytes(16).toString('hex') }, ...alice }),
      'an unknown API key': mintToken({ accountSid, key: { sid: randomSid('SK'), secret: env.key.secret }, ...alice }),
      'an expired token': mintToken({ accountSid, key: env.key, ...alice, ttl: -120 }),
      'not a JWT': 'not-a-token',
    };
    const results = await Promise.allSettled(Object.entries(cases).map(([label, token]) => expectRefused(env, token, label)));
    const failures = results.map((r, i) => (r.status === 'rejected' ? `${Object.keys(cases)[i]}: ${r.reason.message}` : null)).filter(Boolean);
    assert.deepEqual(failures, []);

    // The same worker with a good token does connect (so the refusals above are about the token).
    const good = env.connect(qs.workspaceSid, qs.alice.sid, { label: 'Alice' });
    await good.ready();
  });

  test('an envelope with a worker token may act only on that worker', { timeout: 30_000 }, async () => {
    const qs = await buildQuickstart(env.client);
    const token = env.token(qs.workspaceSid, qs.alice.sid);
    const aliceUrl = `Workspaces/${qs.workspaceSid}/Workers/${qs.alice.sid}`;
    const bobUrl = `Workspaces/${qs.workspaceSid}/Workers/${qs.bob.sid}`;

    // Control: Alice's token on Alice works and answers in the gateway format.
    const own = await postEnvelope(env, { url: aliceUrl, method: 'GET', params: {}, token });
    assert.equal(own.status, 200, own.text);
    assert.equal(own.json.payload.sid, qs.alice.sid);

    const other = await postEnvelope(env, { url: bobUrl, method: 'POST', params: { Attributes: { hacked: true } }, token });
    assertTwilioError(other, 403);
    const otherRead = await postEnvelope(env, { url: bobUrl, method: 'GET', params: {}, token });
    assertTwilioError(otherRead, 403);
    const bob = await qs.ws.workers(qs.bob.sid).fetch();
    assert.deepEqual(JSON.parse(bob.attributes), { languages: ['en'] }, "Bob's attributes are unchanged");

    const forged = mintToken({
      accountSid: env.server.accountSid, key: { sid: env.key.sid, secret: 'wrong' }, workspaceSid: qs.workspaceSid, workerSid: qs.alice.sid,
    });
    assertTwilioError(await postEnvelope(env, { url: aliceUrl, method: 'GET', params: {}, token: forged }), 401);
    const expired = mintToken({
      accountSid: env.server.accountSid, key: env.key, workspaceSid: qs.workspaceSid, workerSid: qs.alice.sid, ttl: -120,
    });
    assertTwilioError(await postEnvelope(env, { url: aliceUrl, method: 'GET', params: {}, token: expired }), 401);
    const foreign = mintToken({
      accountSid: env.server.accountSid, key: env.key, workspaceSid: randomSid('WS'), workerSid: qs.alice.sid,
    });
    assertTwilioError(await postEnvelope(env, { url: aliceUrl, method: 'GET', params: {}, token: foreign }), 401);
  });

  test('voice-only calls reject with a reason and change nothing', { timeout: 30_000 }, async () => {
    // Bob is only a target for transfer/hold/kick; he stays Offline so the task is Alice's.
    const setup = await buildRouting(env.client, { workers: ['Alice', 'Bob'], available: false });
    const [aliceWorker, bobWorker] = setup.workers;
    const alice = env.connect(setup.workspaceSid, aliceWorker.sid, { label: 'Alice' });
    await alice.ready();
    await setup.ws.workers(aliceWorker.sid).update({ activitySid: setup.acts.Available.sid });
    const task = await setup.ws.tasks.create({ workflowSid: setup.workflow.sid, attributes: '{"channel":"voice?"}' });
    const reservation = (await alice.events.waitFor('reservationCreated')).object;

    const pendingCalls = {
      'reservation.conference()': () => reservation.conference(),
      'reservation.dequeue()': () => reservation.dequeue(),
      'reservation.call()': () => reservation.call('+15550000001', 'http://127.0.0.1:9/twiml'),
      'reservation.redirect()': () => reservation.redirect(`CA${crypto.randomBytes(16).toString('hex')}`, 'http://127.0.0.1:9/twiml'),
    };
    for (const [name, call] of Object.entries(pendingCalls)) {
      await assert.rejects(call(), refusedWithReason, `${name} must reject with the server's reason`);
    }
    await waitReservationStatus(setup.ws, task.sid, reservation.sid, 'pending');

    await reservation.accept();
    await waitTaskStatus(setup.ws, task.sid, 'assigned');
    const acceptedCalls = {
      'task.transfer()': () => reservation.task.transfer(bobWorker.sid, {}),
      'task.hold()': () => reservation.task.hold(bobWorker.sid, true, {}),
      'task.kick()': () => reservation.task.kick(bobWorker.sid),
    };
    for (const [name, call] of Object.entries(acceptedCalls)) {
      await assert.rejects(call(), refusedWithReason, `${name} must reject with the server's reason`);
    }
    await waitTaskStatus(setup.ws, task.sid, 'assigned');
    await waitReservationStatus(setup.ws, task.sid, reservation.sid, 'accepted');
  });

  test('disconnect() emits disconnected and the server ends the session', { timeout: 30_000 }, async () => {
    const setup = await buildRouting(env.client, { workers: ['Alice'], available: false });
    const [worker] = setup.workers;
    const agent = env.connect(setup.workspaceSid, worker.sid, { label: 'Alice', setWorkerOfflineIfDisconnected: false });
    await agent.ready();

    // Control: while connected, a change made over REST is pushed.
    let mark = agent.events.mark;
    await setup.ws.workers(worker.sid).update({ attributes: '{"step":1}' });
    await agent.events.waitFor('attributesUpdated', { since: mark });

    mark = agent.events.mark;
    const socket = agent.worker._signaling.webSocket; // the SDK's `ws` socket, to see the close handshake
    await agent.disconnect();
    const gone = await agent.events.waitFor('disconnected', { since: mark });
    assert.equal(gone.snapshot.message, 'SDK Disconnect');
    // The SDK closes its socket and stops listening; the close only completes (CLOSED = 3) once the
    // server has answered the close frame, i.e. the server has ended the session and cannot push.
    const deadline = Date.now() + 5000;
    while (socket.readyState !== 3 && Date.now() < deadline) await sleep(50);
    assert.equal(socket.readyState, 3, 'the server completed the websocket close handshake');

    await setup.ws.workers(worker.sid).update({ attributes: '{"step":2}', activitySid: setup.acts.Available.sid });
    await setup.ws.tasks.create({ workflowSid: setup.workflow.sid, attributes: '{}' });
    await agent.events.expectNone((e) => e.name !== 'disconnected', 2000, { since: mark, what: 'events after disconnect()' });
  });
});
