// The console Taskyard serves at /console/, in a real headless Chromium, used as a person
// would: log in, see a queue made through the REST API appear, watch a task appear and get
// reserved without reloading, change a worker's activity from the page and see it through
// REST, and see a bad workflow configuration's error where it is. Credentials that are wrong
// get nothing; another account's credentials do not see this account's workspace.
//
// Screenshots of each step are written to target/console-screenshots/ (kept by CI as
// artifacts). Chromium comes from the system (`CHROMIUM_BIN`, else /usr/bin/chromium).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';


import { SdkEnv, activitiesByName, buildRouting, makeClient, waitUntil, launchChromium } from '../harness.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const shots = path.resolve(here, '..', '..', '..', 'target', 'console-screenshots');

describe('the console in a browser', () => {
  const env = new SdkEnv();
  let browser;

  before(async () => {
    fs.mkdirSync(shots, { recursive: true });
    await env.setUp();
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await env.tearDown();
  });

  /** A new page that fails the test on any script error or refused resource. */
  async function open(hash = '') {
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 1000 });
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      // The browser logs every 4xx answer; the 400s and 401s here are the ones the test
      // provokes (bad filter, bad workflow, wrong credentials) and checks on the page.
      if (m.type() === 'error' && !/status of 40[01] /.test(m.text())) problems.push(`console: ${m.text()}`);
    });
    await page.goto(`${env.server.baseUrl}/console/${hash}`);
    return { page, problems };
  }

  async function logIn(page, user, password) {
    await page.waitForSelector('#login-form input[name=user]', { visible: true });
    await page.type('#login-form input[name=user]', user);
    await page.type('#login-form input[name=password]', password);
    await click(page, '#login-form button[type=submit]');
  }

  /**
   * Clicks the element `selector` names, found and clicked in one turn of the page's own
   * event loop: the live tables re-render rows as events arrive, and puppeteer's own click
   * (find, scroll, then click) can find a row that has been replaced by the time it clicks
   * (it failed once that way: "Node is detached from document").
   */
  async function click(page, selector) {
    // Visible, as a person would need it to be.
    await page.waitForSelector(selector, { visible: true, timeout: 10_000 });
    await page.$eval(selector, (el) => el.click());
  }

  const shoot = (page, name) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

  test('log in, watch queues, tasks and workers live, change an activity, see a bad workflow\'s error', { timeout: 120_000 }, async () => {
    const r = await buildRouting(env.client, { workers: ['Alice', 'Bob'], available: false });
    const [alice, bob] = r.workers;
    const { page, problems } = await open(`#${r.workspaceSid}`);
    await shoot(page, '01-login');
    await logIn(page, env.server.accountSid, env.server.authToken);
    await page.waitForSelector(`#queues tr[data-queue="${r.queue.sid}"]`, { timeout: 10_000 });
    await page.waitForSelector('#live[data-state="on"]', { timeout: 10_000 });
    assert.equal(await page.$eval('#workspace', (s) => s.value), r.workspaceSid);

    // A queue made through REST appears without a reload.
    const made = await r.ws.taskQueues.create({ friendlyName: 'Spanish', targetWorkers: 'languages HAS "es"' });
    await page.waitForSelector(`#queues tr[data-queue="${made.sid}"]`, { timeout: 10_000 });
    assert.match(await page.$eval(`#queues tr[data-queue="${made.sid}"]`, (tr) => tr.textContent), /Spanish/);

    // Edit it from the page: a bad expression is the server's error in the dialog and
    // changes nothing; a good one is saved and REST sees it.
    await click(page, `#queues tr[data-queue="${made.sid}"] button[data-action="edit"]`);
    await page.waitForSelector('#edit-queue[open]');
    const target = '#edit-queue-form input[name=TargetWorkers]';
    await page.$eval(target, (i) => { i.value = 'languages HAS'; });
    await click(page, '#edit-queue-form button[type=submit]');
    await page.waitForFunction(() => /code 20001/.test(document.querySelector('#edit-queue-form .error').textContent), { timeout: 5000 });
    assert.equal((await r.ws.taskQueues(made.sid).fetch()).targetWorkers, 'languages HAS "es"');
    await page.$eval(target, (i) => { i.value = 'languages HAS "es" OR languages HAS "pt"'; });
    await click(page, '#edit-queue-form button[type=submit]');
    await page.waitForSelector('#edit-queue:not([open])', { timeout: 5000 });
    assert.equal((await r.ws.taskQueues(made.sid).fetch()).targetWorkers, 'languages HAS "es" OR languages HAS "pt"');

    // A task appears waiting, and the queue's figures follow.
    await click(page, '#tabs button[data-tab="tasks"]');
    const task = await r.ws.tasks.create({ workflowSid: r.workflow.sid, attributes: JSON.stringify({ customer: 'Ana' }) });
    await page.waitForSelector(`#tasks tr[data-task="${task.sid}"][data-status="pending"]`, { timeout: 10_000 });
    assert.match(await page.$eval(`#tasks tr[data-task="${task.sid}"]`, (tr) => tr.textContent), /"customer":"Ana"/);
    await click(page, '#tabs button[data-tab="overview"]');
    await page.waitForFunction((q) => document.querySelector(`#queues tr[data-queue="${q}"] [data-field=waiting]`)?.textContent === '1',
      { timeout: 10_000 }, r.queue.sid);
    await shoot(page, '02-queues-one-waiting');

    // Alice goes Available from the page: REST sees it, and the router reserves the task for
    // her, which the page shows without a reload.
    const acts = await activitiesByName(r.ws);
    await click(page, '#tabs button[data-tab="workers"]');
    const select = `#workers select[data-worker="${alice.sid}"]`;
    await page.waitForSelector(select, { timeout: 10_000 });
    await page.select(select, acts.Available.sid);
    await waitUntil(() => r.ws.workers(alice.sid).fetch(), (w) => w.activityName === 'Available', { what: 'Alice Available through REST' });
    await page.waitForFunction((w) => /reserved|pending/.test(document.querySelector(`#workers tr[data-worker="${w}"]`)?.textContent || ''),
      { timeout: 10_000 }, alice.sid);
    await shoot(page, '03-workers-alice-reserved');
    await click(page, '#tabs button[data-tab="tasks"]');
    await page.waitForSelector(`#tasks tr[data-task="${task.sid}"][data-status="reserved"]`, { timeout: 10_000 });
    await shoot(page, '04-tasks-reserved');

    // An activity changed through REST shows on the page.
    await r.ws.workers(bob.sid).update({ activitySid: acts.Available.sid });
    await click(page, '#tabs button[data-tab="workers"]');
    await page.waitForFunction((w, a) => document.querySelector(`#workers select[data-worker="${w}"]`)?.value === a,
      { timeout: 10_000 }, bob.sid, acts.Available.sid);

    // Cancel from the page.
    await click(page, '#tabs button[data-tab="tasks"]');
    await click(page, `#tasks tr[data-task="${task.sid}"] button[data-action="cancel"]`);
    await page.waitForSelector(`#tasks tr[data-task="${task.sid}"][data-status="canceled"]`, { timeout: 10_000 });
    assert.equal((await r.ws.tasks(task.sid).fetch()).assignmentStatus, 'canceled');

    // A filter with a bad expression shows the server's error; a good one filters.
    await page.type('#task-filter input[name=EvaluateTaskAttributes]', 'customer ==');
    await click(page, '#task-filter button[type=submit]');
    await page.waitForFunction(() => document.getElementById('task-filter-error').textContent.length > 0, { timeout: 5000 });
    assert.match(await page.$eval('#task-filter-error', (e) => e.textContent), /code 20001/);

    // A bad workflow configuration: its JSON error, with where it is, and the text selected
    // there; then a configuration the server refuses, with the server's message.
    await click(page, '#tabs button[data-tab="workflows"]');
    await click(page, `#workflows tr[data-workflow="${r.workflow.sid}"] button[data-action="edit"]`);
    await page.waitForSelector('#workflow-editor:not([hidden])');
    await page.$eval('#workflow-editor textarea', (t) => { t.value = '{\n  "task_routing": {\n    "filters": [,]\n  }\n}'; });
    await click(page, '#workflow-editor button[type=submit]');
    await page.waitForFunction(() => /line 3/.test(document.getElementById('workflow-error').textContent), { timeout: 5000 });
    const caret = await page.$eval('#workflow-editor textarea', (t) => t.selectionStart);
    assert.equal(caret, '{\n  "task_routing": {\n    "filters": ['.length, 'the caret is on the bad character');
    await shoot(page, '05-workflow-json-error');
    await page.$eval('#workflow-editor textarea', (t) => { t.value = '{"task_routing": {"filters": [], "default_filter": {"queue": "WQ00000000000000000000000000000000"}}}'; });
    await click(page, '#workflow-editor button[type=submit]');
    await page.waitForFunction(() => /code \d+/.test(document.getElementById('workflow-error').textContent), { timeout: 5000 });
    assert.doesNotMatch(await page.$eval('#workflow-error', (e) => e.textContent), /line \d/);
    const stored = await r.ws.workflows(r.workflow.sid).fetch();
    assert.equal(stored.configuration, r.workflow.configuration, 'a refused configuration changed nothing');

    // What would route where: the saved workflow sends any task to the one queue, where
    // Alice and Bob, both Available now, would be offered it.
    await page.$eval('#route-preview textarea', (t) => { t.value = '{"customer": "Zoe"}'; });
    await click(page, '#route-preview button[type=submit]');
    await page.waitForSelector('#route-preview-outcome[data-outcome="reserve"]', { timeout: 5000 });
    assert.match(await page.$eval('#route-preview-result tr.chosen', (tr) => tr.textContent), /Everything/);
    assert.equal(await page.$$eval(`#route-preview-result [data-worker="${alice.sid}"]`, (x) => x.length), 1);
    await shoot(page, '06-route-preview');
    // Bad attributes are placed like the editor's errors, and the server is not asked.
    await page.$eval('#route-preview textarea', (t) => { t.value = '{"customer": }'; });
    await click(page, '#route-preview button[type=submit]');
    await page.waitForFunction(() => /line 1, column 14/.test(document.getElementById('route-preview-error').textContent), { timeout: 5000 });
    assert.equal((await r.ws.tasks.list()).length, 1, 'previews create no task');

    // The event log has what happened.
    await click(page, '#tabs button[data-tab="events"]');
    await page.waitForSelector('#events tr[data-event="task.canceled"]', { timeout: 5000 });
    await page.type('#event-filter input[name=type]', 'reservation.');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#events tbody tr')];
      return rows.length > 0 && rows.every((r) => r.dataset.event.startsWith('reservation.'));
    }, { timeout: 5000 });
    const kinds = await page.$$eval('#events tbody tr', (rows) => rows.map((r) => r.dataset.event));
    assert.ok(kinds.includes('reservation.created') && kinds.includes('reservation.canceled'), kinds.join());
    await shoot(page, '07-events');
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('wrong credentials see nothing; another account does not see this one\'s workspaces; an API key logs in', { timeout: 60_000 }, async () => {
    const r = await buildRouting(env.client, { workers: ['Carla'], available: true });
    const early = await r.ws.tasks.create({ workflowSid: r.workflow.sid, attributes: '{}' });
    await waitUntil(() => r.ws.tasks(early.sid).fetch(), (t) => t.assignmentStatus === 'reserved', { what: 'the task reserved before the page opens' });
    let { page, problems } = await open();
    await logIn(page, env.server.accountSid, 'not-the-token');
    await page.waitForFunction(() => /not valid/.test(document.getElementById('login-error').textContent), { timeout: 5000 });
    assert.equal(await page.$eval('#app', (m) => m.hidden), true);
    assert.equal(await page.$$eval('#workspace option', (o) => o.length), 0);
    await page.close();

    // A subaccount is another account: it sees no workspace of its parent.
    const sub = await env.client.api.v2010.accounts.create({ friendlyName: 'Other team' });
    ({ page, problems } = await open());
    await logIn(page, sub.sid, sub.authToken);
    await page.waitForFunction(() => /no workspace/.test(document.getElementById('app-error').textContent), { timeout: 5000 });
    assert.equal(await page.$$eval('#workspace option', (o) => o.length), 0);
    await assert.rejects(makeClient(env.server.baseUrl, sub.sid, sub.authToken).taskrouter.v1.workspaces(r.workspaceSid).fetch(),
      (e) => e.status === 404, 'and REST agrees');
    await page.close();

    // An API key of the account sees its workspaces.
    ({ page, problems } = await open(`#${r.workspaceSid}`));
    await logIn(page, env.key.sid, env.key.secret);
    await page.waitForSelector('#live[data-state="on"]', { timeout: 10_000 });
    const options = await page.$$eval('#workspace option', (o) => o.map((x) => x.value));
    assert.ok(options.includes(r.workspaceSid));
    // The reservation made before the page opened is on Carla's row.
    await click(page, '#tabs button[data-tab="workers"]');
    await page.waitForFunction((w, t) => document.querySelector(`#workers tr[data-worker="${w}"]`)?.textContent.includes(`pending: ${t}`),
      { timeout: 10_000 }, r.workers[0].sid, early.sid);
    // Logging out forgets the credentials: a reload shows the login form.
    await click(page, '#logout');
    await page.reload();
    await page.waitForSelector('#login:not([hidden])', { timeout: 5000 });
    assert.deepEqual(problems, []);
    await page.close();
  });
});
