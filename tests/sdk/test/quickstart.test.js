// The TaskRouter quickstart with two agents connected over the websocket, driven by Twilio's
// unmodified worker SDK: Alice takes a Spanish task with the SDK (available → reservation →
// accept → complete) and Bob, also connected, sees an English task that the application's
// assignment callback (signature checked) accepts for him. This is the flow every
// contact-centre front end built on twilio-taskrouter runs; every step is checked both in what
// the SDK shows and in what the REST API shows.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  ACCEPT, ALICE_ATTRS, BOB_ATTRS, NO_INSTRUCTION, SdkEnv, buildQuickstart, sdkActivity,
  waitReservationStatus, waitTaskStatus,
} from '../harness.js';

describe('quickstart over the websocket', () => {
  const env = new SdkEnv();
  before(() => env.setUp());
  after(() => env.tearDown());

  test('Alice accepts and completes a Spanish task with the SDK; a callback accepts an English task for Bob', { timeout: 60_000 }, async () => {
    const receiver = await env.receiver();
    const qs = await buildQuickstart(env.client, { assignmentCallbackUrl: receiver.url('/assign') });
    // The application accepts Bob's reservations from the callback and leaves Alice's to her SDK.
    receiver.respond = (req) => (req.params.WorkerSid === qs.bob.sid ? ACCEPT : NO_INSTRUCTION);

    const alice = env.connect(qs.workspaceSid, qs.alice.sid, { label: 'Alice' });
    const bob = env.connect(qs.workspaceSid, qs.bob.sid, { label: 'Bob' });
    await alice.ready();
    await bob.ready();

    // `init` told the SDK who it is; the worker GET filled in the rest.
    assert.equal(alice.worker.sid, qs.alice.sid);
    assert.equal(alice.worker.workspaceSid, qs.workspaceSid);
    assert.equal(alice.worker.accountSid, env.server.accountSid);
    assert.equal(alice.worker.friendlyName, 'Alice');
    assert.deepEqual(alice.worker.attributes, ALICE_ATTRS);
    assert.deepEqual(bob.worker.attributes, BOB_ATTRS);
    assert.equal(alice.worker.activity.name, 'Offline');
    assert.deepEqual([...alice.worker.activities.values()].map((a) => a.name).sort(),
      Object.keys(qs.acts).sort(), 'the SDK knows the workspace activities');
    assert.equal(alice.worker.reservations.size, 0);

    // Alice goes Available with the SDK.
    let mark = alice.events.mark;
    const activity = await sdkActivity(alice.worker, 'Available').setAsCurrent();
    assert.equal(activity.name, 'Available');
    assert.equal(alice.worker.activity.name, 'Available');
    await alice.events.waitFor('activityUpdated', { since: mark });
    assert.equal((await qs.ws.workers(qs.alice.sid).fetch()).activityName, 'Available');

    // A Spanish task is created over REST and reaches Alice's SDK.
    mark = alice.events.mark;
    const attributes = { selected_language: 'es', customer: 'Ana', topic: 'billing' };
    const task = await qs.ws.tasks.create({ workflowSid: qs.workflow.sid, attributes: JSON.stringify(attributes) });
    const created = await alice.events.waitFor('reservationCreated', { since: mark });
    const reservation = created.object;
    assert.match(reservation.sid, /^WR[0-9a-f]{32}$/);
    assert.equal(reservation.status, 'pending');
    assert.equal(reservation.workerSid, qs.alice.sid);
    assert.equal(reservation.task.sid, task.sid);
    assert.deepEqual(reservation.task.attributes, attributes);
    assert.equal(reservation.task.status, 'reserved');
    assert.equal(reservation.task.queueSid, qs.spanish.sid);
    assert.equal(reservation.task.workflowSid, qs.workflow.sid);
    assert.ok(reservation.dateCreated instanceof Date && !Number.isNaN(reservation.dateCreated.getTime()),
      `reservation.dateCreated is a valid Date (epoch seconds on the wire), got ${reservation.dateCreated}`);
    assert.equal(alice.worker.reservations.get(reservation.sid), reservation);
    const restReservation = await qs.ws.tasks(task.sid).reservations(reservation.sid).fetch();
    assert.equal(restReservation.reservationStatus, 'pending');

    // Alice accepts with the SDK.
    const accepted = await reservation.accept();
    assert.equal(accepted.status, 'accepted');
    await alice.events.waitFor({ name: 'reservation.accepted', sid: reservation.sid });
    await waitTaskStatus(qs.ws, task.sid, 'assigned');
    await waitReservationStatus(qs.ws, task.sid, reservation.sid, 'accepted');

    // Bob, also connected, goes Available; Alice is busy, so the English task is his, and the
    // application's assignment callback accepts it.
    mark = bob.events.mark;
    await sdkActivity(bob.worker, 'Available').setAsCurrent();
    await bob.events.waitFor('activityUpdated', { since: mark });
    const aliceMark = alice.events.mark;
    const english = await env.client.taskrouter.v1.workspaces(qs.workspaceSid).tasks.create({
      workflowSid: qs.workflow.sid, attributes: JSON.stringify({ selected_language: 'en', customer: 'Sam' }),
    });
    const callback = await receiver.waitFor((r) => r.params.TaskSid === english.sid, { what: "the English task's assignment callback" });
    assert.equal(callback.params.WorkerSid, qs.bob.sid);
    assert.equal(callback.signatureValid, true, 'X-Twilio-Signature validates with the auth token');
    const bobCreated = await bob.events.waitFor((e) => e.name === 'reservationCreated' && e.snapshot.taskSid === english.sid,
      { since: mark, what: "reservationCreated for the English task" });
    assert.equal(bobCreated.sid, callback.params.ReservationSid);
    const bobAccepted = await bob.events.waitFor({ name: 'reservation.accepted', sid: bobCreated.sid });
    assert.ok(bobCreated.index < bobAccepted.index, 'reservationCreated comes before accepted');
    assert.equal(bobAccepted.snapshot.status, 'accepted');
    await waitTaskStatus(qs.ws, english.sid, 'assigned');
    assert.equal(alice.events.all((e) => e.name === 'reservationCreated', aliceMark).length, 0,
      "Alice's SDK hears nothing of Bob's reservation");

    // Alice completes her task with the SDK.
    const completedTask = await reservation.task.complete('done');
    assert.equal(completedTask.status, 'completed');
    assert.equal(completedTask.reason, 'done');
    const restTask = await waitTaskStatus(qs.ws, task.sid, 'completed');
    assert.equal(restTask.reason, 'done');
    await waitReservationStatus(qs.ws, task.sid, reservation.sid, 'completed');
    // Twilio pushes reservation.completed when the task completes; the SDK emits it on the reservation.
    await alice.events.waitFor({ name: 'reservation.completed', sid: reservation.sid });
  });
});
