// API Keys the Twilio way, through the npm helper library: `client.newKeys.create()` returns the
// secret once; list and fetch never show it; friendlyName can be updated; a client built with the
// key (`new Twilio(keySid, secret, {accountSid})`) can use the REST API until the key is removed,
// and gets a 401 after. Access Tokens for the worker SDK are signed with these keys, so an app's
// existing key-management code must work unchanged.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startServer, twilio } from '../harness.js';

describe('API keys', () => {
  let server;
  let client;
  before(async () => {
    server = await startServer();
    client = server.client();
  });
  after(() => server?.cleanup());

  /** The raw wire answer, to check what twilio-node would silently drop (e.g. a `secret`). */
  async function rawGet(path) {
    const auth = Buffer.from(`${server.accountSid}:${server.authToken}`).toString('base64');
    const res = await fetch(`${server.baseUrl}/2010-04-01/Accounts/${server.accountSid}${path}`, {
      headers: { Authorization: `Basic ${auth}`, Accept: 'application/json' },
    });
    return { status: res.status, json: await res.json() };
  }

  function keyClient(sid, secret) {
    const c = new twilio.Twilio(sid, secret, { accountSid: server.accountSid });
    c.taskrouter.baseUrl = server.baseUrl;
    c.api.baseUrl = server.baseUrl;
    return c;
  }

  test('create, list, fetch, update, remove; a key client works until its key is removed', { timeout: 30_000 }, async () => {
    const workspace = await client.taskrouter.v1.workspaces.create({ friendlyName: 'seen with a key' });

    const created = await client.newKeys.create({ friendlyName: 'ci key' });
    assert.match(created.sid, /^SK[0-9a-f]{32}$/);
    assert.equal(typeof created.secret, 'string');
    assert.ok(created.secret.length >= 32, `a secret of at least 32 characters, got ${created.secret.length}`);
    assert.equal(created.friendlyName, 'ci key');
    // twilio-node parses the 2010 API's RFC 2822 dates ("Mon, 07 Dec 2026 01:50:00 +0000") and
    // leaves any other format as a plain string.
    assert.ok(created.dateCreated instanceof Date, `dateCreated parsed as a Date, got ${JSON.stringify(created.dateCreated)}`);
    assert.ok(created.dateUpdated instanceof Date, `dateUpdated parsed as a Date, got ${JSON.stringify(created.dateUpdated)}`);
    assert.ok(Math.abs(created.dateCreated.getTime() - Date.now()) < 60_000);

    const listed = await client.keys.list();
    const inList = listed.find((k) => k.sid === created.sid);
    assert.ok(inList, `the new key is listed: ${listed.map((k) => k.sid)}`);
    assert.equal(inList.friendlyName, 'ci key');
    assert.ok(inList.dateCreated instanceof Date);

    const fetched = await client.keys(created.sid).fetch();
    assert.equal(fetched.sid, created.sid);
    assert.equal(fetched.friendlyName, 'ci key');
    assert.equal(fetched.dateCreated.getTime(), created.dateCreated.getTime());

    // The secret is shown once: never again on the wire.
    const rawFetch = await rawGet(`/Keys/${created.sid}.json`);
    assert.equal(rawFetch.status, 200);
    assert.ok(rawFetch.json.secret == null, `fetch must not return the secret: ${JSON.stringify(rawFetch.json)}`);
    const rawList = await rawGet('/Keys.json');
    assert.equal(rawList.status, 200);
    assert.ok(Array.isArray(rawList.json.keys), `the page lists its records under "keys": ${JSON.stringify(rawList.json)}`);
    assert.ok(rawList.json.keys.every((k) => k.secret == null), 'list must not return secrets');

    const updated = await client.keys(created.sid).update({ friendlyName: 'renamed' });
    assert.equal(updated.friendlyName, 'renamed');
    assert.equal((await client.keys(created.sid).fetch()).friendlyName, 'renamed');

    const withKey = keyClient(created.sid, created.secret);
    const seen = await withKey.taskrouter.v1.workspaces.list();
    assert.ok(seen.some((w) => w.sid === workspace.sid), 'the key client sees the account\'s workspaces');
    await assert.rejects(keyClient(created.sid, 'not the secret').taskrouter.v1.workspaces.list(),
      (err) => err.status === 401, 'a wrong key secret gets a 401');

    assert.equal(await client.keys(created.sid).remove(), true);
    await assert.rejects(withKey.taskrouter.v1.workspaces.list(),
      (err) => err.status === 401 && typeof err.code === 'number', 'a removed key gets a 401 with a Twilio error code');
    await assert.rejects(client.keys(created.sid).fetch(), (err) => err.status === 404);
    assert.equal((await client.keys.list()).some((k) => k.sid === created.sid), false);
  });
});
