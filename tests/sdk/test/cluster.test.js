// Agents on a cluster: three `taskyard serve` processes on one PostgreSQL schema, and Twilio's
// worker SDK pointed at a node that does NOT run the agent's workspace. Its websocket is relayed
// to the owner and its envelopes forwarded, so it sees exactly what it sees on one node. When
// the owner stops (SIGTERM: its leases are handed over, its sessions closed with the "moved"
// code) or dies (SIGKILL: its lease runs out), the SDK reconnects by itself through the same
// node and reaches the new owner; reservations made meanwhile are there at its new `ready`.
//
// Needs TASKYARD_SDK_DATABASE_URL (scripts/test.sh sets it to the PostgreSQL it tests on); the
// schema the file makes is dropped afterwards with psql.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';

import {
  TaskyardServer, buildRouting, connectWorker, disconnectAll, mintToken, randomSid,
  waitReservationStatus, waitReservations, waitTaskStatus,
} from '../harness.js';

const DATABASE_URL = process.env.TASKYARD_SDK_DATABASE_URL;
const LEASE_SECONDS = 2;
// What the owner's session says when it hands the workspace over (crates/bridge session.rs).
const MOVED_REASON = 'Another node runs this workspace now; reconnect';

describe('agents on a cluster of three nodes', { skip: !DATABASE_URL && 'TASKYARD_SDK_DATABASE_URL is not set' }, () => {
  const schema = `sdk_${crypto.randomBytes(6).toString('hex')}`;
  const accountSid = randomSid('AC');
  const authToken = crypto.randomBytes(16).toString('hex');
  const nodes = ['a', 'b', 'c'].map((id) => new TaskyardServer({
    accountSid,
    authToken,
    env: {
      TASKYARD_DATABASE_URL: DATABASE_URL,
      TASKYARD_DATABASE_SCHEMA: schema,
      TASKYARD_NODE_ID: `sdk-${id}`,
      TASKYARD_LEASE_SECONDS: String(LEASE_SECONDS),
    },
  }));
  const [a, b, c] = nodes;
  let key;

  before(async () => {
    // One at a time: the first makes the schema and the account, the others find them.
    for (const node of nodes) await node.start();
    key = await a.createApiKey();
  });

  after(async () => {
    try {
      await disconnectAll();
      for (const node of nodes) await node.cleanup();
    } finally {
      if (!process.env.TASKYARD_KEEP_DATA) {
        execFileSync('psql', [DATABASE_URL, '-q', '-c', `DROP SCHEMA IF EXISTS "${schema}" CASCADE`]);
      }
    }
  });

  const token = (workspaceSid, workerSid) => mintToken({ accountSid, key, workspaceSid, workerSid });
  const running = () => nodes.filter((n) => n.isRunning());

  test('an agent connected through another node gets its reservations and accepts them', { timeout: 60_000 }, async () => {
    // Made through a: a runs the workspace. The agent uses b; tasks come in through c.
    const setup = await buildRouting(a.client(), { workers: ['Alice'] });
    const [alice] = setup.workers;
    const agent = connectWorker(b, token(setup.workspaceSid, alice.sid), { label: 'Alice via b' });
    const ready = await agent.ready(15_000);
    assert.equal(ready.sid, alice.sid);
    assert.equal(ready.snapshot.activity, 'Available');

    const viaC = c.client().taskrouter.v1.workspaces(setup.workspaceSid);
    const task = await viaC.tasks.create({ workflowSid: setup.workflow.sid, attributes: '{"node":"c"}' });
    const created = await agent.events.waitFor('reservationCreated', { timeout: 10_000 });
    assert.equal(created.object.task.sid, task.sid);
    assert.deepEqual(created.object.task.attributes, { node: 'c' });

    // The accept is an envelope POSTed to b, answered by a.
    assert.equal((await created.object.accept()).status, 'accepted');
    await agent.events.waitFor({ name: 'reservation.accepted', sid: created.sid });
    await waitTaskStatus(viaC, task.sid, 'assigned');

    // A change made by REST through c reaches the agent's socket on b.
    await viaC.workers(alice.sid).update({ attributes: '{"tier":"gold"}' });
    const updated = await agent.events.waitFor('attributesUpdated', { timeout: 10_000 });
    assert.deepEqual(updated.snapshot.attributes, { tier: 'gold' });
  });

  test('a refusal by the owner reaches the SDK through the relay', { timeout: 30_000 }, async () => {
    const setup = await buildRouting(a.client(), { workers: ['Bob'] });
    // A worker SID that is not in the workspace: the owner refuses the upgrade, and b passes
    // its answer on as it is.
    const stranger = token(setup.workspaceSid, randomSid('WK'));
    const answer = await upgradeAnswer(`${b.ebServer}?token=${encodeURIComponent(stranger)}`);
    assert.equal(answer.status, 401);
    assert.equal(answer.body.code, 20106);
    assert.match(answer.body.message, /is not in the workspace/);

    const agent = connectWorker(b, stranger, { label: 'nobody via b' });
    await agent.events.waitFor('error', { timeout: 10_000, what: 'error (refused upgrade)' });
    await agent.events.expectNone('ready', 3000, { what: 'ready with a worker the owner does not have' });
    await agent.disconnect();
  });

  test('the owner stops, then another dies: the agent reconnects through its node each time and keeps its work', { timeout: 120_000 }, async () => {
    const setup = await buildRouting(a.client(), { workers: ['Carol'] });
    const [carol] = setup.workers;
    const agent = connectWorker(b, token(setup.workspaceSid, carol.sid),
      { label: 'Carol via b', setWorkerOfflineIfDisconnected: false });
    await agent.ready(15_000);
    const viaC = c.client().taskrouter.v1.workspaces(setup.workspaceSid);
    const first = await viaC.tasks.create({ workflowSid: setup.workflow.sid, attributes: '{"n":1}' });
    const pending = await agent.events.waitFor('reservationCreated', { timeout: 10_000 });
    assert.equal(pending.object.task.sid, first.sid);

    // Graceful stop of the owner: it hands the workspace over and closes the session with
    // its "moved" code, which b passes on; the SDK reconnects through b to the new owner.
    let mark = agent.events.mark;
    const stopped = Date.now();
    await a.stop();
    const gone = await agent.events.waitFor('disconnected', { since: mark, timeout: 10_000 });
    assert.equal(gone.snapshot.message, MOVED_REASON);
    let ready = await agent.events.waitFor('ready', { since: mark, timeout: 15_000, what: 'ready after the hand-over' });
    assert.ok(Date.now() - stopped < 10_000, `back within 10 s of the stop (${Date.now() - stopped} ms)`);
    assert.deepEqual(ready.snapshot.reservations, [pending.sid], 'the pending reservation is there at the new ready');
    const again = agent.worker.reservations.get(pending.sid);
    assert.equal((await again.accept()).status, 'accepted');
    await waitReservationStatus(viaC, first.sid, pending.sid, 'accepted');
    await again.task.complete('done');
    await waitTaskStatus(viaC, first.sid, 'completed', { timeout: 10_000 });

    // Now SIGKILL whichever node runs it (b or c); the agent's node, if it survives, relays
    // the reconnect to the node that takes the lease when it runs out.
    const owner = await waitForOwner(schema, setup.workspaceSid, running());
    const survivor = running().find((n) => n !== owner);
    if (owner === b) {
      // The agent's own node died: like any agent whose server went away, it reconnects to
      // the same URL, so start b again (empty of workspaces) for it to come back through.
      mark = agent.events.mark;
      await b.kill();
      await agent.events.waitFor('disconnected', { since: mark, timeout: 10_000 });
      await b.start();
    } else {
      mark = agent.events.mark;
      await owner.kill();
      await agent.events.waitFor('disconnected', { since: mark, timeout: 10_000 });
    }
    const viaSurvivor = survivor.client().taskrouter.v1.workspaces(setup.workspaceSid);
    const second = await viaSurvivor.tasks.create({ workflowSid: setup.workflow.sid, attributes: '{"n":2}' });
    ready = await agent.events.waitFor('ready', { since: mark, timeout: 30_000, what: 'ready after the owner died' });
    const [reserved] = await waitReservations(viaSurvivor, second.sid, { status: 'pending', timeout: 10_000 });
    await waitUntilHas(agent, reserved.sid);
    assert.equal((await agent.worker.reservations.get(reserved.sid).accept()).status, 'accepted');
    await waitTaskStatus(viaSurvivor, second.sid, 'assigned');
  });
});

/** The running node whose lease holds the workspace (read from the leases table). */
async function waitForOwner(schema, workspaceSid, candidates) {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const id = execFileSync('psql', [DATABASE_URL, '-Atq', '-c',
      `SELECT node_id FROM "${schema}".leases WHERE workspace_sid = '${workspaceSid}' AND expires_at > now()`],
    { encoding: 'utf8' }).trim();
    const node = candidates.find((n) => n.env.TASKYARD_NODE_ID === id);
    if (node) return node;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no running node holds the lease of ${workspaceSid}`);
}

/** The HTTP answer to a websocket upgrade that is refused: { status, body }. */
function upgradeAnswer(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, {
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'),
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      reject(new Error('the upgrade was accepted'));
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
    });
    req.on('error', reject);
  });
}

/** Waits until the SDK has the reservation (from `ready` or from a reservationCreated). */
async function waitUntilHas(agent, reservationSid) {
  const deadline = Date.now() + 15_000;
  while (!agent.worker.reservations.has(reservationSid)) {
    if (Date.now() > deadline) throw new Error(`the SDK never got reservation ${reservationSid}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
