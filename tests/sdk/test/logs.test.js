// The server's logs: one JSON object a line with TASKYARD_LOG_FORMAT=json, a line per request
// carrying the id answered in Twilio-Request-Id, and no secret ever written — not at the most
// verbose level, after every kind of credential has been used, refused and pushed through the
// event bridge.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

import { SdkEnv, buildRouting, sleep, waitUntil } from '../harness.js';

describe('logs', () => {
  const env = new SdkEnv({ env: { TASKYARD_LOG_FORMAT: 'json', TASKYARD_LOG: 'trace' } });
  before(() => env.setUp());
  after(() => env.tearDown());

  test('are JSON lines, one per request with its id, and never hold a secret', { timeout: 60_000 }, async () => {
    const base = env.server.baseUrl;
    const r = await buildRouting(env.client, { workers: ['Agent'] });
    const worker = r.workers[0];

    // Every credential at work: the auth token and the API key secret (Basic auth), a
    // refused password, an Access Token on the websocket's URL and in envelopes, and an
    // expired one.
    const token = env.token(r.workspaceSid, worker.sid);
    const handle = env.connect(r.workspaceSid, worker.sid);
    await handle.ready();
    const task = await r.ws.tasks.create({ workflowSid: r.workflow.sid, attributes: '{"secret_word":"not-a-secret"}' });
    await waitUntil(() => r.ws.tasks(task.sid).fetch(), (t) => t.assignmentStatus === 'reserved', { what: 'the task reserved for the connected agent' });
    const viaKey = env.server.client(env.key.sid, env.key.secret);
    await viaKey.taskrouter.v1.workspaces(r.workspaceSid).tasks(task.sid).fetch();
    const wrong = await fetch(`${base}/v1/Workspaces`, {
      headers: { Authorization: `Basic ${Buffer.from(`${env.server.accountSid}:wrong-${env.server.authToken}`).toString('base64')}` },
    });
    assert.equal(wrong.status, 401);
    const expired = env.token(r.workspaceSid, worker.sid, { ttl: -10 });
    const refusedWs = await fetch(`${base}/v1/wschannels?token=${encodeURIComponent(expired)}`);
    assert.ok(refusedWs.status >= 400);
    const newKey = await env.server.createApiKey('made while logging');

    // The id: one of the server's own, or the one a proxy sent.
    const mine = await fetch(`${base}/v1/Workspaces/${r.workspaceSid}`, { headers: { Authorization: basic(env.server.accountSid, env.server.authToken) } });
    const id = mine.headers.get('twilio-request-id');
    assert.match(id, /^RQ[0-9a-f]{32}$/);
    const proxied = await fetch(`${base}/healthz`, { headers: { 'X-Request-Id': 'lb-7f3a' } });
    assert.equal(proxied.headers.get('twilio-request-id'), 'lb-7f3a');

    await sleep(300); // the last lines reach the file
    const text = fs.readFileSync(env.server.logPath, 'utf8');
    const lines = text.split('\n').filter((l) => l.trim() && !l.startsWith('====='));
    assert.ok(lines.length > 20, `a verbose log (${lines.length} lines)`);
    const records = lines.map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        assert.fail(`not a JSON line: ${l}`);
      }
      return null;
    });
    const requests = records.filter((x) => x.target === 'taskyard::request');
    const line = requests.find((x) => x.span?.id === id);
    assert.ok(line, `the request ${id} has its line`);
    assert.deepEqual([line.fields.method, line.fields.path, line.fields.status], ['GET', `/v1/Workspaces/${r.workspaceSid}`, 200]);
    assert.ok(requests.some((x) => x.span?.id === 'lb-7f3a' && x.fields.path === '/healthz'));
    assert.ok(requests.some((x) => x.fields.path === '/v1/wschannels' && x.fields.status === 101), 'the websocket upgrade is a request too');
    assert.ok(requests.some((x) => x.fields.status === 401));

    const secrets = {
      'auth token': env.server.authToken,
      'API key secret': env.key.secret,
      'new API key secret': newKey.secret,
      'access token': token,
      'access token signature': token.split('.')[2],
      'expired token signature': expired.split('.')[2],
      'Basic credentials': basic(env.server.accountSid, env.server.authToken).slice('Basic '.length),
      'API key Basic credentials': basic(env.key.sid, env.key.secret).slice('Basic '.length),
    };
    for (const [what, secret] of Object.entries(secrets)) {
      assert.ok(secret.length >= 16, `${what} is a real secret`);
      assert.equal(text.includes(secret), false, `the log holds the ${what}`);
    }
  });
});

function basic(user, password) {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}
