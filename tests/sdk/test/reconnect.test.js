// Reservations an agent must not lose when it (re)connects. (1) Reservations made while the agent
// was not connected arrive with `ready` in `worker.reservations`, without a `reservationCreated`
// for them, exactly as Twilio delivers them (the SDK fetches the active reservations during
// init). (2) The server is SIGKILLed and restarted on the same port and data dir while a
// reservation is pending: the SDK reconnects by itself, and after its new `ready` the reservation
// is there and can be accepted. An agent who reloads the page or rides out a server crash must
// still be able to answer the customer who was waiting.
//
// Counting events: the event log records what the SDK emitted, one entry per emit. The 2.1.1
// Worker unsubscribes its handlers on `disconnected` and subscribes them again on `ready`, so one
// push gives one event even after a reconnect; a second `init` on one socket, however, would make
// the SDK handle every later push twice (see the protocol notes). Where a test counts reservations
// it counts distinct reservation SIDs, so that only a server that invents reservations, not the
// SDK's own doubling, can make it fail; the `ready` count is checked separately.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  SdkEnv, buildRouting, waitReservationStatus, waitReservations, waitTaskStatus,
} from '../harness.js';

const distinctSids = (entries) => new Set(entries.map((e) => e.sid));

describe('reservations across (re)connects', () => {
  const env = new SdkEnv();
  before(() => env.setUp());
  after(() => env.tearDown());

  test('reservations made before the agent connected are in worker.reservations at ready, with no reservationCreated', { timeout: 30_000 }, async () => {
    const setup = await buildRouting(env.client, { workers: ['Alice'], maxReservedWorkers: 1 });
    const [worker] = setup.workers;
    // Multitasking off: one default channel of capacity 1, so one pending reservation.
    const task = await setup.ws.tasks.create({ workflowSid: setup.workflow.sid, attributes: '{"waiting":"since before login"}' });
    const [pending] = await waitReservations(setup.ws, task.sid, { status: 'pending' });
    assert.equal(pending.workerSid, worker.sid);

    const agent = env.connect(setup.workspaceSid, worker.sid, { label: 'Alice' });
    const ready = await agent.ready();
    assert.deepEqual(ready.snapshot.reservations, [pending.sid], 'the pending reservation is there at ready');
    const reservation = agent.worker.reservations.get(pending.sid);
    assert.equal(reservation.status, 'pending');
    assert.equal(reservation.task.sid, task.sid);
    assert.deepEqual(reservation.task.attributes, { waiting: 'since before login' });
    assert.equal(reservation.task.status, 'reserved');

    await agent.events.expectNone('reservationCreated', 1500, { what: 'reservationCreated (the reservation already existed)' });
    assert.equal(agent.events.all('ready').length, 1, 'one ready per connection (one init)');

    // It is a live reservation: accepting it works and its push reaches the object from `ready`.
    assert.equal((await reservation.accept()).status, 'accepted');
    await agent.events.waitFor({ name: 'reservation.accepted', sid: pending.sid });
    await waitTaskStatus(setup.ws, task.sid, 'assigned');
  });

  test('after a SIGKILL and a restart on the same port the SDK reconnects and the pending reservation can be accepted', { timeout: 90_000 }, async () => {
    const setup = await buildRouting(env.client, { workers: ['Alice'] });
    const [worker] = setup.workers;
    // The worker must stay Available across the outage whatever the server's default for
    // a lost connection is; this test is about the reservation, not about presence.
    const agent = env.connect(setup.workspaceSid, worker.sid, { label: 'Alice', setWorkerOfflineIfDisconnected: false });
    await agent.ready();

    const task = await setup.ws.tasks.create({ workflowSid: setup.workflow.sid, attributes: '{"survives":"a crash"}' });
    const created = await agent.events.waitFor('reservationCreated');
    assert.equal(created.object.task.sid, task.sid);

    const mark = agent.events.mark;
    const port = env.server.port;
    await env.server.kill();
    await agent.events.waitFor('disconnected', { since: mark, timeout: 10_000, what: 'disconnected after the SIGKILL' });
    await env.server.start();
    assert.equal(env.server.port, port, 'restarted on the same port, so the SDK URLs still point at it');

    const ready = await agent.events.waitFor('ready', { since: mark, timeout: 30_000, what: 'ready after the restart' });
    assert.deepEqual(ready.snapshot.reservations, [created.sid]);
    // The SDK rebuilt its reservations map from the server: a new object for the same reservation.
    const again = agent.worker.reservations.get(created.sid);
    assert.equal(again.status, 'pending');
    assert.equal(again.task.sid, task.sid);
    assert.deepEqual(again.task.attributes, { survives: 'a crash' });
    assert.equal(distinctSids(agent.events.all('reservationCreated', mark)).size, 0,
      'no reservationCreated for a reservation that already existed');

    assert.equal((await again.accept()).status, 'accepted');
    await agent.events.waitFor({ name: 'reservation.accepted', sid: created.sid }, { since: ready.index });
    await waitReservationStatus(setup.ws, task.sid, created.sid, 'accepted');
    await waitTaskStatus(setup.ws, task.sid, 'assigned');

    // And the reconnected socket keeps delivering new work.
    const next = await setup.ws.tasks.create({ workflowSid: setup.workflow.sid, attributes: '{"after":"the restart"}' });
    await again.task.complete('done');
    const later = await agent.events.waitFor((e) => e.name === 'reservationCreated' && e.snapshot.taskSid === next.sid,
      { since: ready.index, what: 'reservationCreated for a task made after the restart' });
    assert.equal(distinctSids(agent.events.all('reservationCreated', ready.index)).size, 1);
    assert.equal(later.object.status, 'pending');
  });
});
