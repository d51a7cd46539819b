// The agent page Taskyard serves at /agent, in a real headless Chromium: it loads Twilio's
// worker SDK (the browser build made by `npm run bundle-agent-sdk`, served through
// TASKYARD_AGENT_SDK) and an agent uses it as a person would — the token in the address,
// a click to go Available, a reservation appearing live, Accept, Complete; another one
// Rejected — while REST confirms each step. A reservation made before the page opened must
// be listed once it is ready.
//
// Chromium comes from the system (`CHROMIUM_BIN`, else /usr/bin/chromium); scripts/test.sh
// installs Debian's package when it is missing.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';


import { SdkEnv, buildRouting, waitTaskStatus, launchChromium } from '../harness.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const bundle = path.resolve(here, '..', 'agent-sdk.js');

describe('the agent page in a browser', () => {
  const env = new SdkEnv({ env: { TASKYARD_AGENT_SDK: bundle } });
  let browser;

  before(async () => {
    assert.ok(fs.existsSync(bundle), `${bundle} is missing: run \`npm run bundle-agent-sdk\``);
    await env.setUp();
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await env.tearDown();
  });

  test('an agent goes Available, accepts and completes one task and rejects another', { timeout: 90_000 }, async () => {
    const r = await buildRouting(env.client, { workers: ['Alice'], available: false });
    const alice = r.workers[0];
    const page = await browser.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    await page.goto(`${env.server.baseUrl}/agent#token=${env.token(r.workspaceSid, alice.sid)}`);
    await page.waitForSelector('#status[data-state="ready"]', { timeout: 15_000 });
    assert.equal(await page.$eval('#worker-name', (e) => e.textContent), 'Alice');
    assert.equal(await page.$eval('#activity', (e) => e.textContent), 'Offline');

    await page.click('button[data-activity="Available"]');
    await page.waitForFunction(() => document.getElementById('activity').textContent === 'Available', { timeout: 5000 });
    assert.equal((await r.ws.workers(alice.sid).fetch()).activityName, 'Available');

    const first = await r.ws.tasks.create({ workflowSid: r.workflow.sid, attributes: JSON.stringify({ customer: 'Ana' }) });
    const pending = 'tr[data-status="pending"]';
    await page.waitForSelector(`${pending} button[data-action="accept"]`, { timeout: 10_000 });
    const shown = await page.$eval(pending, (tr) => tr.textContent);
    assert.match(shown, new RegExp(first.sid));
    assert.match(shown, /"customer":"Ana"/);
    await page.click(`${pending} button[data-action="accept"]`);
    await page.waitForSelector('tr[data-status="accepted"] button[data-action="complete"]:not([disabled])', { timeout: 10_000 });
    await waitTaskStatus(r.ws, first.sid, 'assigned');
    await page.click('tr[data-status="accepted"] button[data-action="complete"]');
    await page.waitForSelector('tr[data-status="completed"]', { timeout: 10_000 });
    await waitTaskStatus(r.ws, first.sid, 'completed');

    const second = await r.ws.tasks.create({ workflowSid: r.workflow.sid, attributes: JSON.stringify({ customer: 'Ben' }) });
    await page.waitForSelector(`${pending} button[data-action="reject"]`, { timeout: 10_000 });
    await page.click(`${pending} button[data-action="reject"]`);
    await page.waitForSelector('tr[data-status="rejected"]', { timeout: 10_000 });
    const reservations = await r.ws.tasks(second.sid).reservations.list();
    assert.deepEqual(reservations.map((x) => x.reservationStatus), ['rejected']);

    const rows = await page.$$eval('#reservations tr', (trs) => trs.map((tr) => tr.dataset.reservation));
    assert.equal(new Set(rows).size, rows.length, 'each reservation listed once');
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('a reservation made before the page opened is listed after it connects', { timeout: 60_000 }, async () => {
    const r = await buildRouting(env.client, { workers: ['Carla'] });
    const carla = r.workers[0];
    const task = await r.ws.tasks.create({ workflowSid: r.workflow.sid, attributes: JSON.stringify({ customer: 'Dora' }) });
    await waitTaskStatus(r.ws, task.sid, 'reserved');
    const page = await browser.newPage();
    await page.goto(`${env.server.baseUrl}/agent#token=${env.token(r.workspaceSid, carla.sid)}`);
    await page.waitForSelector('#status[data-state="ready"]', { timeout: 15_000 });
    await page.waitForSelector('tr[data-status="pending"]', { timeout: 5000 });
    const rows = await page.$$eval('#reservations tr', (trs) => trs.map((tr) => tr.textContent));
    assert.equal(rows.length, 1, rows.join('\n'));
    assert.match(rows[0], new RegExp(task.sid));
    await page.close();
  });
});
