// Worker updates through the SDK and through REST: `worker.setAttributes()` and
// `activity.setAsCurrent()` resolve with the new state, fire `attributesUpdated` /
// `activityUpdated`, and REST shows the change; a change made over REST by another program is
// pushed to the connected SDK. Routing depends on these attributes and activities, so an agent
// UI that edits them must see exactly what TaskRouter sees.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { SdkEnv, buildQuickstart, sdkActivity } from '../harness.js';

describe('worker updates', () => {
  const env = new SdkEnv();
  before(() => env.setUp());
  after(() => env.tearDown());

  test('setAttributes resolves, fires attributesUpdated, and REST shows the attributes', { timeout: 30_000 }, async () => {
    const qs = await buildQuickstart(env.client);
    const alice = env.connect(qs.workspaceSid, qs.alice.sid, { label: 'Alice' });
    await alice.ready();

    const attributes = { languages: ['en', 'es', 'fr'], level: 3, team: { name: 'Blue', lead: false } };
    const mark = alice.events.mark;
    const updated = await alice.worker.setAttributes(attributes);
    assert.equal(updated, alice.worker, 'setAttributes resolves with the Worker');
    assert.deepEqual(alice.worker.attributes, attributes);
    const event = await alice.events.waitFor('attributesUpdated', { since: mark });
    assert.deepEqual(event.snapshot.attributes, attributes);

    const rest = await qs.ws.workers(qs.alice.sid).fetch();
    assert.deepEqual(JSON.parse(rest.attributes), attributes);
  });

  test('an attribute change made over REST is pushed to the connected SDK', { timeout: 30_000 }, async () => {
    const qs = await buildQuickstart(env.client);
    const bob = env.connect(qs.workspaceSid, qs.bob.sid, { label: 'Bob' });
    await bob.ready();

    const attributes = { languages: ['en', 'de'], skills: ['refunds'] };
    const mark = bob.events.mark;
    await qs.ws.workers(qs.bob.sid).update({ attributes: JSON.stringify(attributes) });
    const event = await bob.events.waitFor('attributesUpdated', { since: mark });
    assert.deepEqual(event.snapshot.attributes, attributes);
    assert.deepEqual(bob.worker.attributes, attributes);
  });

  test('setAsCurrent moves the worker, fires activityUpdated, and REST shows the activity', { timeout: 30_000 }, async () => {
    const qs = await buildQuickstart(env.client);
    const alice = env.connect(qs.workspaceSid, qs.alice.sid, { label: 'Alice' });
    await alice.ready();
    assert.equal(alice.worker.activity.name, 'Offline');

    for (const name of ['Available', 'Unavailable', 'Offline']) {
      const mark = alice.events.mark;
      const activity = await sdkActivity(alice.worker, name).setAsCurrent();
      assert.equal(activity.name, name);
      assert.equal(activity.isCurrent, true);
      const event = await alice.events.waitFor('activityUpdated', { since: mark, what: `activityUpdated to ${name}` });
      assert.equal(event.snapshot.activity, name);
      const rest = await qs.ws.workers(qs.alice.sid).fetch();
      assert.equal(rest.activityName, name);
      assert.equal(rest.activitySid, qs.acts[name].sid);
      assert.equal(rest.available, qs.acts[name].available);
    }
  });

  test('an activity change made over REST is pushed to the connected SDK', { timeout: 30_000 }, async () => {
    const qs = await buildQuickstart(env.client);
    const bob = env.connect(qs.workspaceSid, qs.bob.sid, { label: 'Bob' });
    await bob.ready();

    const mark = bob.events.mark;
    await qs.ws.workers(qs.bob.sid).update({ activitySid: qs.acts.Available.sid });
    const event = await bob.events.waitFor('activityUpdated', { since: mark });
    assert.equal(event.snapshot.activity, 'Available');
    assert.equal(bob.worker.activity.sid, qs.acts.Available.sid);
  });
});
