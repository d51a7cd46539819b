// Benchmark (not a test): the console at scale, in headless Chromium.
//
//   cargo build --release --bin taskyard
//   cd tests/sdk && npm ci && node bench/console.js [--workers 10000] [--tasks 100000]
//        [--queues 20] [--rate 250] [--seconds 30] [--paints 3]
//        [--tabs overview,workers,tasks,events] [--worker-rate 0]
//
// Builds one workspace through the REST API — `--workers` workers (Offline, so nothing is
// reserved), `--queues` skill queues, a workflow by skill and `--tasks` tasks, all left
// waiting — then opens /console/ logged in and reports, from the page's own figures
// (window.taskyardConsole):
//
// * first paint: navigation to the first full view (queues with their statistics, and the
//   first page of workers), and until every worker is listed; `--paints` fresh pages;
// * live updates, on each of `--tabs` in turn: tasks created at `--rate` per second for
//   `--seconds` (each waiting task
//   makes 4 events: task.created, workflow.entered, workflow.target-matched,
//   task-queue.entered) and, with `--worker-rate`, that many activity changes per second
//   (Offline <-> Unavailable, one event each) of the first 100 workers, the rows on the
//   screen: the events the page applied per second, how far behind the newest
//   applied event was at the end and at worst (now minus its event_date_ms), redraw times,
//   and how long the page took to answer a script call while it was all going on (its main
//   thread's responsiveness).
//
// The server, the load and the browser share this machine; figures are for it.

import { launchChromium, sleep, startServer } from '../harness.js';

const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, a, i, all) => {
  if (a.startsWith('--')) pairs.push([a.slice(2), all[i + 1]]);
  return pairs;
}, []));
const WORKERS = Number(args.workers ?? 10_000);
const TASKS = Number(args.tasks ?? 100_000);
const QUEUES = Number(args.queues ?? 20);
const RATE = Number(args.rate ?? 250);
const SECONDS = Number(args.seconds ?? 30);
const PAINTS = Number(args.paints ?? 3);
const WORKER_RATE = Number(args['worker-rate'] ?? 0);
const TABS = (args.tabs ?? 'overview,workers,tasks,events').split(',');

const server = await startServer();
const base = server.baseUrl;
const auth = `Basic ${Buffer.from(`${server.accountSid}:${server.authToken}`).toString('base64')}`;

async function post(path, form) {
  const res = await fetch(`${base}/${path}`, {
    method: 'POST',
    headers: { Authorization: auth, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/** Runs `count` calls of `one(i)` with `width` in flight. */
async function many(count, width, one) {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    for (let i = next++; i < count; i = next++) await one(i);
  }));
}

const skill = (i) => `s${i % QUEUES}`;

try {
  const ws = await post('v1/Workspaces', { FriendlyName: 'Console benchmark' });
  const wsPath = `v1/Workspaces/${ws.sid}`;
  const queues = [];
  for (let q = 0; q < QUEUES; q += 1) {
    queues.push(await post(`${wsPath}/TaskQueues`, { FriendlyName: `Skill ${skill(q)}`, TargetWorkers: `skills HAS "${skill(q)}"` }));
  }
  const config = {
    task_routing: {
      filters: queues.map((q, i) => ({ filter_friendly_name: skill(i), expression: `skill == "${skill(i)}"`, targets: [{ queue: q.sid }] })),
      default_filter: { queue: queues[0].sid },
    },
  };
  const flow = await post(`${wsPath}/Workflows`, { FriendlyName: 'By skill', Configuration: JSON.stringify(config) });
  let t0 = Date.now();
  const workerSids = [];
  await many(WORKERS, 32, (i) => post(`${wsPath}/Workers`, {
    FriendlyName: `Agent ${i}`,
    Attributes: JSON.stringify({ skills: [skill(i), skill(i + 7)], level: i % 5 }),
  }).then((w) => { workerSids[i] = w.sid; }));
  const activities = {};
  for (const a of (await (await fetch(`${base}/${wsPath}/Activities`, { headers: { Authorization: auth } })).json()).activities) {
    activities[a.friendly_name] = a.sid;
  }
  console.log(`made ${WORKERS} workers in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  t0 = Date.now();
  const task = (i) => post(`${wsPath}/Tasks`, {
    WorkflowSid: flow.sid,
    Attributes: JSON.stringify({ skill: skill(i * 13), customer: `C${i}`, channel: 'chat' }),
  });
  await many(TASKS, 32, task);
  console.log(`made ${TASKS} waiting tasks in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const browser = await launchChromium();
  async function open() {
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 1000 });
    await page.evaluateOnNewDocument((a, who) => {
      sessionStorage.setItem('taskyard.auth', a);
      sessionStorage.setItem('taskyard.who', who);
    }, auth, server.accountSid);
    await page.goto(`${base}/console/#${ws.sid}`);
    await page.waitForFunction(() => window.taskyardConsole?.workersLoadedMs !== null && window.taskyardConsole?.firstPaintMs !== null,
      { timeout: 120_000, polling: 50 });
    return page;
  }
  const paints = [];
  for (let i = 0; i < PAINTS; i += 1) {
    const page = await open();
    const m = await page.evaluate(() => ({ ...window.taskyardConsole }));
    // Then the Workers tab: from the click to its rows on the screen.
    const t = performance.now();
    await page.click('#tabs button[data-tab="workers"]');
    await page.waitForFunction(() => document.querySelectorAll('#workers tbody tr').length > 0, { polling: 'raf' });
    m.workersTabMs = performance.now() - t;
    paints.push(m);
    console.log(`first paint ${m.firstPaintMs.toFixed(0)} ms, worst lag while loading ${m.maxLagMs} ms (${m.events} events), all ${WORKERS} workers listed at ${m.workersLoadedMs.toFixed(0)} ms, Workers tab drawn ${m.workersTabMs.toFixed(0)} ms after its click`);
    await page.close();
  }

  // Live: one page, each tab in turn, tasks created at RATE per second.
  const page = await open();
  await page.waitForSelector('#live[data-state="on"]');
  let next = TASKS;
  // Across phases, so that each change really changes the worker's activity (an update to
  // the activity a worker already has makes no event).
  let changes = 0;
  const live = [];
  for (const tab of TABS) {
    await page.click(`#tabs button[data-tab="${tab}"]`);
    live.push({ tab, ...await livePhase(page) });
  }

  async function livePhase(page) {
    // Figures of this phase only.
    const before = await page.evaluate(() => {
      window.taskyardConsole.maxLagMs = 0;
      window.taskyardConsole.maxRenderMs = 0;
      window.taskyardConsole.viewMs = {};
      return { ...window.taskyardConsole };
    });
    const profiler = args.profile ? await page.createCDPSession() : null;
    if (profiler) {
      await profiler.send('Profiler.enable');
      await profiler.send('Profiler.start');
    }
    let made = 0;
    let changed = 0;
    let load = true;
    const started = Date.now();
    const driver = (async () => {
      const inflight = new Set();
      let issued = 0;
      let issuedChanges = 0;
      while (load && Date.now() - started < SECONDS * 1000) {
        const due = Math.floor(((Date.now() - started) / 1000) * RATE);
        while (issued < due && inflight.size < 64) {
          const p = task(next++).then(() => { made += 1; }).finally(() => inflight.delete(p));
          inflight.add(p);
          issued += 1;
        }
        const dueChanges = Math.floor(((Date.now() - started) / 1000) * WORKER_RATE);
        while (issuedChanges < dueChanges && inflight.size < 64) {
          issuedChanges += 1;
          const n = changes++;
          const sid = workerSids[n % Math.min(100, workerSids.length)];
          const to = Math.floor(n / Math.min(100, workerSids.length)) % 2 ? activities.Offline : activities.Unavailable;
          const p = post(`${wsPath}/Workers/${sid}`, { ActivitySid: to }).then(() => { changed += 1; }).finally(() => inflight.delete(p));
          inflight.add(p);
        }
        await sleep(5);
      }
      await Promise.all(inflight);
    })();
    const answers = [];
    while (Date.now() - started < SECONDS * 1000) {
      const t = performance.now();
      await page.evaluate(() => 1);
      answers.push(performance.now() - t);
      await sleep(100);
    }
    load = false;
    await driver;
    const loadEnded = Date.now();
    // Let the page catch up with what was committed, then read its figures.
    const expected = before.events + made * 4 + changed;
    await page.waitForFunction((n) => window.taskyardConsole.events >= n, { timeout: 30_000, polling: 20 }, expected).catch(() => {});
    const caughtUp = Date.now() - loadEnded;
    if (profiler) {
      // --profile: where the page's main thread spent its time (self time by function).
      const { profile } = await profiler.send('Profiler.stop');
      const self = new Map();
      const dt = profile.timeDeltas;
      const byId = new Map(profile.nodes.map((n) => [n.id, n]));
      profile.samples.forEach((id, i) => {
        const n = byId.get(id);
        const name = `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').pop()}:${n.callFrame.lineNumber + 1}`;
        self.set(name, (self.get(name) || 0) + (dt[i] || 0) / 1000);
      });
      const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, 15);
      console.log(`profile (${page.url()}):`);
      for (const [name, ms] of top) console.log(`  ${ms.toFixed(0).padStart(6)} ms  ${name}`);
    }
    const after = await page.evaluate(() => ({ ...window.taskyardConsole }));
    const secs = (loadEnded - started) / 1000;
    answers.sort((x, y) => x - y);
    const q = (p) => Number(answers[Math.min(answers.length - 1, Math.floor(p * answers.length))].toFixed(1));
    const renders = after.renders - before.renders;
    return {
      tasks_created: made,
      activity_changes: changed,
      events_applied: after.events - before.events,
      events_expected: made * 4 + changed,
      events_per_s: Math.round((after.events - before.events) / secs),
      caught_up_ms_after_load: caughtUp,
      lag_at_end_ms: after.lagMs,
      max_lag_ms: after.maxLagMs,
      redraws: renders,
      mean_redraw_ms: Number(((after.renderMs - before.renderMs) / Math.max(1, renders)).toFixed(2)),
      max_redraw_ms: Number(after.maxRenderMs.toFixed(1)),
      redraw_ms_by_view: Object.fromEntries(Object.entries(after.viewMs).map(([k, v]) => [k, Math.round(v)])),
      page_answer_ms_p50: q(0.5),
      page_answer_ms_p99: q(0.99),
    };
  }

  console.log(JSON.stringify({
    workers: WORKERS,
    waiting_tasks: TASKS,
    queues: QUEUES,
    first_paint_ms: paints.map((m) => Math.round(m.firstPaintMs)),
    all_workers_listed_ms: paints.map((m) => Math.round(m.workersLoadedMs)),
    workers_tab_ms: paints.map((m) => Math.round(m.workersTabMs)),
    live,
  }, null, 2));
  await browser.close();
} finally {
  await server.cleanup();
}
