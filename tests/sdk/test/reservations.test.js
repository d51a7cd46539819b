// A reservation's whole life as an agent's SDK sees it. What the agent does: reject (with and
// without a new activity), wrap then complete, task.wrapUp(), task.setAttributes(). What happens
// to the agent: a reservation times out, its task is canceled over REST, or another agent accepts
// a task offered to both (rescinded). Each SDK call must resolve with the new state, each push
// must arrive as the SDK event an agent UI listens for, and REST must agree.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  SdkEnv, buildRouting, waitReservationStatus, waitTaskStatus, waitUntil,
} from '../harness.js';

/** One Available agent connected with the SDK, a task routed to it, and its reservation. */
async function reservedAgent(env, routing = {}) {
  const setup = await buildRouting(env.client, { workers: ['Alice'], ...routing });
  const [worker] = setup.workers;
  const agent = env.connect(setup.workspaceSid, worker.sid, { label: 'Alice' });
  await agent.ready();
  const mark = agent.events.mark;
  const task = await setup.ws.tasks.create({
    workflowSid: setup.workflow.sid, attributes: JSON.stringify({ case: 'reservations', n: Math.random() }),
  });
  const created = await agent.events.waitFor('reservationCreated', { since: mark });
  assert.equal(created.object.task.sid, task.sid);
  return { setup, worker, agent, task, reservation: created.object };
}

describe('what the agent does with a reservation', () => {
  const env = new SdkEnv();
  before(() => env.setUp());
  after(() => env.tearDown());

  test('reject() without an activity: rejected, and the worker keeps its activity', { timeout: 30_000 }, async () => {
    const { setup, worker, agent, task, reservation } = await reservedAgent(env);
    const rejected = await reservation.reject();
    assert.equal(rejected.status, 'rejected');
    await agent.events.waitFor({ name: 'reservation.rejected', sid: reservation.sid });
    assert.equal(agent.worker.reservations.has(reservation.sid), false, 'a rejected reservation leaves worker.reservations');
    await waitReservationStatus(setup.ws, task.sid, reservation.sid, 'rejected');
    const rest = await setup.ws.workers(worker.sid).fetch();
    assert.equal(rest.activityName, 'Available');
  });

  test('reject({activitySid}) moves the worker to that activity', { timeout: 30_000 }, async () => {
    const { setup, worker, agent, task, reservation } = await reservedAgent(env);
    const mark = agent.events.mark;
    const rejected = await reservation.reject({ activitySid: setup.acts.Offline.sid });
    assert.equal(rejected.status, 'rejected');
    await waitReservationStatus(setup.ws, task.sid, reservation.sid, 'rejected');
    const rest = await setup.ws.workers(worker.sid).fetch();
    assert.equal(rest.activityName, 'Offline');
    const moved = await agent.events.waitFor('activityUpdated', { since: mark });
    assert.equal(moved.snapshot.activity, 'Offline');
    // The task went back to routing and nobody else can take it.
    await waitTaskStatus(setup.ws, task.sid, 'pending');
  });

  test('accept(), wrap(), complete(): the reservation and the task follow', { timeout: 30_000 }, async () => {
    const { setup, agent, task, reservation } = await reservedAgent(env);
    assert.equal((await reservation.accept()).status, 'accepted');
    await waitTaskStatus(setup.ws, task.sid, 'assigned');

    const wrapping = await reservation.wrap();
    assert.equal(wrapping.status, 'wrapping');
    await waitReservationStatus(setup.ws, task.sid, reservation.sid, 'wrapping');
    await waitTaskStatus(setup.ws, task.sid, 'wrapping');
    await agent.events.waitFor({ name: 'reservation.wrapup', sid: reservation.sid });

    const completed = await reservation.complete();
    assert.equal(completed.status, 'completed');
    await waitReservationStatus(setup.ws, task.sid, reservation.sid, 'completed');
    await waitTaskStatus(setup.ws, task.sid, 'completed');
  });

  test('task.wrapUp() then task.complete()', { timeout: 30_000 }, async () => {
    const { setup, task, reservation } = await reservedAgent(env);
    await reservation.accept();
    await waitTaskStatus(setup.ws, task.sid, 'assigned');

    const wrapping = await reservation.task.wrapUp({ reason: 'after-call work' });
    assert.equal(wrapping.status, 'wrapping');
    // (TaskRouter keeps a Reason only for canceled and completed tasks.)
    await waitTaskStatus(setup.ws, task.sid, 'wrapping');

    const done = await reservation.task.complete('resolved');
    assert.equal(done.status, 'completed');
    const restDone = await waitTaskStatus(setup.ws, task.sid, 'completed');
    assert.equal(restDone.reason, 'resolved');
    await waitReservationStatus(setup.ws, task.sid, reservation.sid, 'completed');
  });

  test('task.setAttributes() resolves with the task and REST shows the attributes', { timeout: 30_000 }, async () => {
    const { setup, task, reservation } = await reservedAgent(env);
    await reservation.accept();
    const attributes = { case: 'reservations', notes: 'called back', tags: ['vip', 'refund'], score: 9.5 };
    const updated = await reservation.task.setAttributes(attributes);
    assert.equal(updated.sid, task.sid);
    assert.deepEqual(updated.attributes, attributes);
    const rest = await setup.ws.tasks(task.sid).fetch();
    assert.deepEqual(JSON.parse(rest.attributes), attributes);
    assert.equal(rest.assignmentStatus, 'assigned');
  });
});

describe('what happens to a reservation', () => {
  const env = new SdkEnv();
  before(() => env.setUp());
  after(() => env.tearDown());

  test('the reservation times out (TaskReservationTimeout 2 s)', { timeout: 30_000 }, async () => {
    const { setup, agent, task, reservation } = await reservedAgent(env, { taskReservationTimeout: 2 });
    assert.equal(reservation.timeout, 2, 'reservation.timeout is the workflow reservation timeout in seconds');
    const timedOut = await agent.events.waitFor({ name: 'reservation.timeout', sid: reservation.sid }, { timeout: 8000 });
    const created = agent.events.find({ name: 'reservationCreated', sid: reservation.sid });
    const elapsed = timedOut.at - created.at;
    assert.ok(elapsed >= 1000 && elapsed <= 5000, `timed out ${elapsed} ms after it was created, expected about 2000`);
    assert.equal(timedOut.snapshot.status, 'timeout');
    assert.equal(agent.worker.reservations.has(reservation.sid), false);
    await waitReservationStatus(setup.ws, task.sid, reservation.sid, 'timeout');
  });

  test('the task is canceled over REST while reserved', { timeout: 30_000 }, async () => {
    const { setup, agent, task, reservation } = await reservedAgent(env);
    await setup.ws.tasks(task.sid).update({ assignmentStatus: 'canceled', reason: 'customer hung up' });
    const canceled = await agent.events.waitFor({ name: 'reservation.canceled', sid: reservation.sid });
    assert.equal(canceled.snapshot.status, 'canceled');
    assert.equal(agent.worker.reservations.has(reservation.sid), false);
    await waitReservationStatus(setup.ws, task.sid, reservation.sid, 'canceled');
    const rest = await setup.ws.tasks(task.sid).fetch();
    assert.equal(rest.assignmentStatus, 'canceled');
    assert.equal(rest.reason, 'customer hung up');
  });

  test('one of two agents accepts a task offered to both; the other reservation is rescinded', { timeout: 30_000 }, async () => {
    const setup = await buildRouting(env.client, { workers: ['Alice', 'Bob'], maxReservedWorkers: 2 });
    const [aliceWorker, bobWorker] = setup.workers;
    const alice = env.connect(setup.workspaceSid, aliceWorker.sid, { label: 'Alice' });
    const bob = env.connect(setup.workspaceSid, bobWorker.sid, { label: 'Bob' });
    await alice.ready();
    await bob.ready();

    const task = await setup.ws.tasks.create({ workflowSid: setup.workflow.sid, attributes: '{"offered":"to both"}' });
    const toAlice = (await alice.events.waitFor('reservationCreated')).object;
    const toBob = (await bob.events.waitFor('reservationCreated')).object;
    assert.equal(toAlice.task.sid, task.sid);
    assert.equal(toBob.task.sid, task.sid);
    assert.notEqual(toAlice.sid, toBob.sid);

    await toAlice.accept();
    const rescinded = await bob.events.waitFor({ name: 'reservation.rescinded', sid: toBob.sid });
    assert.equal(rescinded.snapshot.status, 'rescinded');
    assert.equal(bob.worker.reservations.has(toBob.sid), false);
    await waitReservationStatus(setup.ws, task.sid, toBob.sid, 'rescinded');
    await waitReservationStatus(setup.ws, task.sid, toAlice.sid, 'accepted');
    await waitUntil(() => setup.ws.tasks(task.sid).fetch(), (t) => t.assignmentStatus === 'assigned',
      { what: 'the task to be assigned to Alice' });
  });
});
