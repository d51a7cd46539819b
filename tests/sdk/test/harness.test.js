// The harness itself, against the server as it is: spawning and restarting `taskyard serve`, the
// npm `twilio` client pointed at it, the quickstart set-up and its routing, the assignment-callback
// receiver (signatures checked with twilio-node's validateRequest, an `accept` answer acting on
// the reservation), Access Tokens as twilio-node mints them, and the event log's bounded waits.
// If these fail, every SDK test after them would fail for the harness's sake, not the server's.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';

import {
  ACCEPT, CallbackReceiver, EventLog, NO_INSTRUCTION, buildQuickstart, decodeJwt, mintToken, randomSid,
  startServer, waitReservations, waitTaskStatus,
} from '../harness.js';

describe('harness', () => {
  let server;
  let client;
  let receiver;

  before(async () => {
    server = await startServer();
    client = server.client();
    receiver = await new CallbackReceiver(server.authToken).start();
  });

  after(async () => {
    await receiver?.stop();
    await server?.cleanup();
  });

  test('the server answers /healthz and the helper library works against it', { timeout: 30_000 }, async () => {
    const health = await fetch(`${server.baseUrl}/healthz`);
    assert.equal(health.status, 200);
    const ws = await client.taskrouter.v1.workspaces.create({ friendlyName: 'harness' });
    assert.match(ws.sid, /^WS[0-9a-f]{32}$/);
    assert.equal(ws.accountSid, server.accountSid);
    assert.ok(ws.dateCreated instanceof Date, `dateCreated parsed as a Date, got ${ws.dateCreated}`);
    const listed = await client.taskrouter.v1.workspaces.list();
    assert.ok(listed.some((w) => w.sid === ws.sid));
  });

  test('the quickstart routes a Spanish task to Alice; an accepting callback, correctly signed, accepts it', { timeout: 30_000 }, async () => {
    const qs = await buildQuickstart(client, { assignmentCallbackUrl: receiver.url('/assign') });
    assert.equal(qs.workflow.assignmentCallbackUrl, receiver.url('/assign'));
    receiver.respond = (req) => (req.params.WorkerSid === qs.alice.sid ? ACCEPT : NO_INSTRUCTION);

    await qs.ws.workers(qs.alice.sid).update({ activitySid: qs.acts.Available.sid });
    const task = await qs.ws.tasks.create({
      workflowSid: qs.workflow.sid, attributes: JSON.stringify({ selected_language: 'es' }),
    });
    const callback = await receiver.waitFor((r) => r.params.TaskSid === task.sid, { what: 'the assignment callback' });
    assert.equal(callback.method, 'POST');
    assert.equal(callback.params.WorkerSid, qs.alice.sid);
    assert.equal(callback.params.WorkspaceSid, qs.workspaceSid);
    assert.match(callback.params.ReservationSid, /^WR[0-9a-f]{32}$/);
    assert.ok(callback.signature, 'X-Twilio-Signature is sent');
    assert.equal(callback.signatureValid, true, 'X-Twilio-Signature validates with the auth token');

    await waitTaskStatus(qs.ws, task.sid, 'assigned');
    const [reservation] = await waitReservations(qs.ws, task.sid, { status: 'accepted' });
    assert.equal(reservation.sid, callback.params.ReservationSid);
    assert.equal(reservation.workerSid, qs.alice.sid);
  });

  test('validateRequest rejects a signature made with another auth token', { timeout: 30_000 }, async () => {
    const other = new CallbackReceiver(crypto.randomBytes(16).toString('hex'));
    await other.start();
    try {
      const qs = await buildQuickstart(client, { assignmentCallbackUrl: other.url('/assign') });
      await qs.ws.workers(qs.bob.sid).update({ activitySid: qs.acts.Available.sid });
      const task = await qs.ws.tasks.create({
        workflowSid: qs.workflow.sid, attributes: JSON.stringify({ selected_language: 'en' }),
      });
      const callback = await other.waitFor((r) => r.params.TaskSid === task.sid, { what: 'the assignment callback' });
      assert.ok(callback.signature);
      assert.equal(callback.signatureValid, false);
    } finally {
      await other.stop();
    }
  });

  test('kill -9 and restart keeps the port, the data dir and the account', { timeout: 60_000 }, async () => {
    const ws = await client.taskrouter.v1.workspaces.create({ friendlyName: 'survives a SIGKILL' });
    const port = server.port;
    const pid = server.proc.pid;
    await server.kill();
    assert.equal(server.isRunning(), false);
    await assert.rejects(fetch(`${server.baseUrl}/healthz`), 'nothing listens after the kill');
    await server.start();
    assert.equal(server.port, port);
    assert.notEqual(server.proc.pid, pid);
    const fetched = await client.taskrouter.v1.workspaces(ws.sid).fetch();
    assert.equal(fetched.friendlyName, 'survives a SIGKILL');
  });

  test('Access Tokens are minted as twilio-node mints them', () => {
    const key = { sid: randomSid('SK'), secret: crypto.randomBytes(16).toString('hex') };
    const workspaceSid = randomSid('WS');
    const workerSid = randomSid('WK');
    const jwt = mintToken({ accountSid: server.accountSid, key, workspaceSid, workerSid, ttl: 15 });
    const { header, payload } = decodeJwt(jwt);
    assert.deepEqual(header, { alg: 'HS256', typ: 'JWT', cty: 'twilio-fpa;v=1' });
    assert.equal(payload.iss, key.sid);
    assert.equal(payload.sub, server.accountSid);
    assert.equal(payload.exp - payload.iat, 15);
    assert.match(payload.jti, new RegExp(`^${key.sid}-\\d+$`));
    assert.deepEqual(payload.grants.task_router, { workspace_sid: workspaceSid, worker_sid: workerSid, role: 'worker' });
    assert.equal(payload.grants.identity, workerSid);
    const [h, p, signature] = jwt.split('.');
    const expected = crypto.createHmac('sha256', key.secret).update(`${h}.${p}`).digest('base64url');
    assert.equal(signature, expected, 'HS256 over header.payload with the key secret');
  });

  test('EventLog waits are bounded and say what did arrive', async () => {
    const emitter = new EventEmitter();
    const log = new EventLog('fake worker');
    emitter.on('x', (sid) => log.push('x', sid));
    setTimeout(() => emitter.emit('x', 'WR1'), 10);
    const got = await log.waitFor({ name: 'x', sid: 'WR1' }, { timeout: 1000 });
    assert.equal(got.index, 0);
    await assert.rejects(log.waitFor('never', { timeout: 100 }),
      (err) => /timed out after 100 ms waiting for "never"/.test(err.message) && /x WR1/.test(err.message));
    await assert.rejects(log.waitFor('x', { timeout: 100, since: log.mark }), /timed out/);
    emitter.emit('x', 'WR2');
    await assert.rejects(log.expectNone('x', 50), /expected no "x" within 50 ms, got 2/);
  });
});
