// An idle agent stays connected. The SDK counts any text frame as a heartbeat and, after 30 s
// without one (checked every 30 s, so 30-60 s), declares the connection lost, drops it and
// reconnects. The server must therefore send something at least every 15 s even when nothing
// happens; otherwise every quiet agent would flap about once a minute, losing its reservation
// listeners each time. The test stays idle for 65 s, past the SDK's longest detection time.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { SdkEnv, buildRouting, sleep } from '../harness.js';

const IDLE_MS = 65_000;

describe('heartbeat', () => {
  const env = new SdkEnv();
  before(() => env.setUp());
  after(() => env.tearDown());

  test('an idle connection survives the SDK heartbeat check', { timeout: IDLE_MS + 30_000 }, async () => {
    const setup = await buildRouting(env.client, { workers: ['Alice'], available: false });
    const [worker] = setup.workers;
    const agent = env.connect(setup.workspaceSid, worker.sid, { label: 'Alice' });
    await agent.ready();

    await sleep(IDLE_MS);
    assert.deepEqual(agent.events.all((e) => e.name === 'disconnected' || e.name === 'error'), [],
      `no disconnect while idle\n${agent.events.describe()}`);
    assert.equal(agent.events.all('ready').length, 1, 'still the first connection');

    // And the connection is live, not just quiet.
    const mark = agent.events.mark;
    await setup.ws.workers(worker.sid).update({ attributes: '{"still":"here"}' });
    await agent.events.waitFor('attributesUpdated', { since: mark });
  });
});
