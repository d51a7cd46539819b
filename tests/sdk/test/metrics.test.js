// GET /metrics: Prometheus (OpenMetrics) text behind a bearer token, with the counts and
// gauges moving exactly as the requests, events, callbacks, websockets and streams the test
// makes.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { ACCEPT, SdkEnv, buildRouting, waitUntil } from '../harness.js';

const TOKEN = 'scrape-token-for-the-test';

/** `name{labels} value` lines of a scrape → Map of "name{labels}" → number. */
function parse(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

describe('metrics', () => {
  const env = new SdkEnv({ env: { TASKYARD_METRICS_TOKEN: TOKEN, TASKYARD_EVENT_CALLBACK_MAX_BACKOFF: '1' } });
  before(() => env.setUp());
  after(() => env.tearDown());

  const scrape = async (token = TOKEN) => {
    const res = await fetch(`${env.server.baseUrl}/metrics`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
    return { res, text: await res.text() };
  };
  const get = async () => {
    const { res, text } = await scrape();
    assert.equal(res.status, 200, text);
    return parse(text);
  };

  test('need the bearer token; count requests, events, callbacks and connections', { timeout: 60_000 }, async () => {
    for (const t of [null, 'wrong']) {
      const { res, text } = await scrape(t);
      assert.equal(res.status, 401);
      assert.equal(JSON.parse(text).code, 20003);
    }
    const { res, text } = await scrape();
    assert.match(res.headers.get('content-type'), /^application\/openmetrics-text/);
    assert.ok(text.endsWith('# EOF\n'));
    assert.match(text, /# TYPE taskyard_store_commit_duration_seconds histogram/);

    const receiver = await env.receiver();
    receiver.respond = () => ACCEPT;
    const r = await buildRouting(env.client, { workers: ['Agent'], assignmentCallbackUrl: receiver.url() });
    const ws = r.workspaceSid;
    const before = await get();
    const created = (m) => m.get('taskyard_events_total{type="task.created"}') ?? 0;
    const posts = (m) => m.get('taskyard_http_requests_total{method="POST",route="/v1/Workspaces/{ws}/Tasks",status="201"}') ?? 0;
    const assignments = (m) => m.get('taskyard_callbacks_total{kind="assignment",outcome="ok"}') ?? 0;

    // A task reserved, its assignment callback answered "accept".
    const task = await r.ws.tasks.create({ workflowSid: r.workflow.sid, attributes: '{}' });
    await waitUntil(() => r.ws.tasks(task.sid).fetch(), (t) => t.assignmentStatus === 'assigned', { what: 'the task assigned by its callback' });
    let now = await get();
    assert.equal(created(now) - created(before), 1, 'one task.created');
    assert.equal(posts(now) - posts(before), 1, 'one POST …/Tasks, by its route template');
    assert.equal(assignments(now) - assignments(before), 1, 'one assignment callback');
    assert.ok(now.get('taskyard_callback_duration_seconds_count{kind="assignment"}') >= 1);
    assert.equal(now.get(`taskyard_workers{workspace_sid="${ws}"}`), 1);
    assert.equal(now.get(`taskyard_tasks_waiting{workspace_sid="${ws}"}`), 0);

    // A second task waits (the only agent is busy): the gauge shows it.
    await r.ws.tasks.create({ workflowSid: r.workflow.sid, attributes: '{}' });
    await waitUntil(get, (m) => m.get(`taskyard_tasks_waiting{workspace_sid="${ws}"}`) === 1, { what: 'one task waiting' });

    // An agent's websocket and a live event stream are counted while open.
    const base = now.get('taskyard_websockets');
    const agent = env.connect(ws, r.workers[0].sid);
    await agent.ready();
    await waitUntil(get, (m) => m.get('taskyard_websockets') === base + 1, { what: 'the websocket counted' });
    await agent.disconnect();
    await waitUntil(get, (m) => m.get('taskyard_websockets') === base, { what: 'and uncounted when closed' });
    const ctrl = new AbortController();
    const stream = await fetch(`${env.server.baseUrl}/v1/Workspaces/${ws}/Events/Stream`, {
      headers: { Authorization: `Basic ${Buffer.from(`${env.server.accountSid}:${env.server.authToken}`).toString('base64')}` },
      signal: ctrl.signal,
    });
    assert.equal(stream.status, 200);
    await waitUntil(get, (m) => m.get('taskyard_event_streams') === 1, { what: 'the stream counted' });
    ctrl.abort();
    await waitUntil(get, (m) => m.get('taskyard_event_streams') === 0, { what: 'and uncounted when closed' });

    // The event-callback backlog: a receiver that fails holds the workspace's oldest event,
    // whose age the lag gauges show; once it answers, the backlog drains to 0.
    const events = await env.receiver();
    let failing = true;
    events.respond = () => (failing ? { status: 500, body: 'down' } : { status: 200, body: '' });
    const lagOf = (m) => m.get(`taskyard_workspace_event_callback_lag_seconds{workspace_sid="${ws}"}`);
    assert.equal(lagOf(await get()), 0, 'no backlog without an event callback URL');
    await r.ws.update({ eventCallbackUrl: events.url('/events') });
    await r.ws.activities.create({ friendlyName: `Lag ${Date.now()}`, available: false });
    await waitUntil(get, (m) => lagOf(m) >= 1.5 && m.get('taskyard_event_callback_lag_seconds') >= lagOf(m),
      { what: 'the undelivered event ages', timeout: 15_000 });
    assert.ok(events.requests.length >= 1 && events.requests.every((q) => q.answer.status === 500));
    failing = false;
    await waitUntil(get, (m) => lagOf(m) === 0 && m.get('taskyard_event_callback_lag_seconds') === 0,
      { what: 'the backlog delivered', timeout: 15_000 });
    assert.ok(events.requests.some((q) => q.answer.status === 200));

    // Unknown paths are one label, not one per path.
    await fetch(`${env.server.baseUrl}/no/such/${Date.now()}`);
    now = await get();
    const unmatched = [...now.keys()].filter((k) => k.startsWith('taskyard_http_requests_total') && k.includes('route="unmatched"'));
    assert.ok(unmatched.length >= 1);
    assert.ok(![...now.keys()].some((k) => k.includes('/no/such')), 'no path in a label');
  });
});

describe('metrics turned off', () => {
  const env = new SdkEnv({ env: { TASKYARD_METRICS: 'false' } });
  before(() => env.setUp());
  after(() => env.tearDown());

  test('serve no /metrics (the API\'s own answer for an unknown path: 404 once authenticated)', async () => {
    const auth = `Basic ${Buffer.from(`${env.server.accountSid}:${env.server.authToken}`).toString('base64')}`;
    const res = await fetch(`${env.server.baseUrl}/metrics`, { headers: { Authorization: auth } });
    assert.equal(res.status, 404);
    assert.equal((await res.json()).code, 20404);
  });
});
