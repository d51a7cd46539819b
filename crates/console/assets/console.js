// The Taskyard console: one page, the public TaskRouter v1 API, the workspace's event stream.
//
// State comes from REST once per workspace (activities, queues, workflows, workers, the
// newest event), then from the event stream, resumed from that newest event so that nothing
// committed in between is missed. Events carry the task's and the worker's fields, so rows
// are updated from them directly; what they do not carry (queue statistics, the task page
// being looked at) is read again when an event says it changed, at most once a second.
// Rendering is batched into animation frames, so a burst of events costs one redraw.
//
// Everything shown is built with textContent, never HTML: attributes and names are data
// that any API user can set.

import { bars, colour, histogram, lineChart } from './charts.js';
import { jsonError } from './json.js';

const ROOT = new URL('../', window.location.href);
const SHOWN_WORKERS = 100;
const KEPT_EVENTS = 1000;
const TASK_PAGE = 50;
const SLA_SECONDS = 30;
// Thresholds asked of the queue statistics: their below/above counts make the wait histogram.
const WAIT_SPLITS = [10, SLA_SECONDS, 60, 120, 300, 600];
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

// The console's own figures, for whoever watches the console itself (the benchmark in
// tests/sdk/bench/ reads them): when the first full view was drawn, how many events were
// applied, how far behind the newest was (now minus its event_date_ms), how long redraws took.
const METRICS = {
  firstPaintMs: null, workersLoadedMs: null,
  events: 0, lagMs: 0, maxLagMs: 0, renders: 0, renderMs: 0, maxRenderMs: 0,
  viewMs: {}, // time spent drawing each view
};
window.taskyardConsole = METRICS;

const S = {
  auth: sessionStorage.getItem('taskyard.auth'),
  who: sessionStorage.getItem('taskyard.who'),
  ws: null,
  gen: 0, // bumped when the workspace changes: late answers for the old one are dropped
  stream: null,
  lastEvent: null,
  activities: new Map(),
  queues: new Map(),
  stats: new Map(),
  history: new Map(),
  workflows: new Map(),
  workers: new Map(),
  work: new Map(), // worker SID -> Map(reservation SID -> {task, status})
  seenReservations: new Set(), // reservations an event has told of since the page opened
  events: [],
  tasks: { filter: {}, tokens: [null], page: 0, rows: new Map(), order: [] },
  // Task attributes by SID. Lists show none (as Twilio's: attributes only in a single fetch),
  // so they come from events and, for a row on the page that no event has shown, a fetch.
  attrs: new Map(),
  dirty: new Set(),
  hiddenDirty: new Set(), // views that changed while their tab was hidden
  frame: 0,
  refreshTimer: 0,
  lastRefresh: 0,
};

// ---------------------------------------------------------------------------------------
// REST

class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function url(path) {
  return new URL(path.replace(/^\/+/, ''), ROOT);
}

/** The path of a `next_page_url` (an absolute URL, maybe under another host name). */
function relative(absolute) {
  const u = new URL(absolute);
  return u.pathname.slice(u.pathname.indexOf('/v1/') + 1) + u.search;
}

async function api(path, { method = 'GET', form, auth = S.auth } = {}) {
  const headers = { Authorization: auth };
  let body;
  if (form) {
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(Object.entries(form).filter(([, v]) => v !== undefined));
  }
  // credentials: 'omit' because the console sends its own Authorization header: with the
  // browser's credentials mode, a 401 (which carries WWW-Authenticate, as Twilio's does)
  // would open the browser's own password prompt and leave the request hanging.
  const res = await fetch(url(path), { method, headers, body, credentials: 'omit' });
  if (res.status === 204) return null;
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = { message: text };
  }
  if (!res.ok) {
    if (res.status === 401 && auth === S.auth && S.auth) logout('The server refused the credentials; log in again.');
    throw new ApiError(res.status, json);
  }
  return json;
}

async function all(path, key, onPage) {
  let next = path;
  const out = [];
  while (next) {
    const page = await api(next);
    const items = page[key] || [];
    out.push(...items);
    if (onPage) onPage(items);
    next = page.meta?.next_page_url ? relative(page.meta.next_page_url) : null;
  }
  return out;
}

const wsPath = (rest = '') => `v1/Workspaces/${S.ws}${rest}`;

// ---------------------------------------------------------------------------------------
// DOM helpers

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(e.dataset, v);
    // Through the CSSOM: the page's policy allows no inline style attributes.
    else if (k === 'style') Object.assign(e.style, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v;
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) e.append(c);
  return e;
}

function showError(target, err) {
  const node = typeof target === 'string' ? $(target) : target;
  if (!node) return;
  node.textContent = err ? (err.body?.code ? `${err.message} (code ${err.body.code})` : String(err.message || err)) : '';
}

function age(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function ageOf(isoDate) {
  return (Date.now() - Date.parse(isoDate)) / 1000;
}

function brief(json, max = 120) {
  const text = typeof json === 'string' ? json : JSON.stringify(json);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function schedule(...what) {
  for (const w of what) S.dirty.add(w);
  if (!S.frame) S.frame = requestAnimationFrame(render);
}

// ---------------------------------------------------------------------------------------
// Log in and out

function showLogin(message) {
  $('#login').hidden = false;
  $('#app').hidden = true;
  $('#logout').hidden = true;
  $('#workspace').hidden = true;
  $('#who').textContent = '';
  showError('#login-error', message ? { message } : null);
}

function logout(message) {
  S.auth = null;
  S.who = null;
  sessionStorage.removeItem('taskyard.auth');
  sessionStorage.removeItem('taskyard.who');
  S.stream?.abort();
  S.ws = null;
  S.gen += 1;
  setLive('off');
  showLogin(message);
}

async function login(user, password) {
  const auth = `Basic ${btoa(`${user.trim()}:${password}`)}`;
  try {
    await api('v1/Workspaces?PageSize=1', { auth });
  } catch (err) {
    if (err.status === 401) throw new Error('Those credentials are not valid here.');
    throw err;
  }
  S.auth = auth;
  S.who = user.trim();
  sessionStorage.setItem('taskyard.auth', auth);
  sessionStorage.setItem('taskyard.who', S.who);
}

async function start() {
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#logout').hidden = false;
  $('#who').textContent = S.who;
  const list = await all('v1/Workspaces?PageSize=1000', 'workspaces');
  const select = $('#workspace');
  select.replaceChildren(...list.map((w) => el('option', { value: w.sid, text: `${w.friendly_name} (${w.sid})` })));
  select.hidden = false;
  if (!list.length) {
    showError('#app-error', { message: 'This account has no workspace yet: create one through the API.' });
    return;
  }
  const wanted = window.location.hash.slice(1);
  const ws = list.some((w) => w.sid === wanted) ? wanted : list[0].sid;
  select.value = ws;
  await openWorkspace(ws);
}

// ---------------------------------------------------------------------------------------
// A workspace: initial load, then the event stream

async function openWorkspace(ws) {
  S.stream?.abort();
  S.gen += 1;
  const gen = S.gen;
  drawnWorkers = new Map();
  Object.assign(S, {
    ws, lastEvent: null, events: [],
    activities: new Map(), queues: new Map(), stats: new Map(), history: new Map(),
    workflows: new Map(), workers: new Map(), work: new Map(), attrs: new Map(), seenReservations: new Set(),
    tasks: { filter: S.tasks.filter, tokens: [null], page: 0, rows: new Map(), order: [] },
  });
  if (window.location.hash.slice(1) !== ws) window.history.replaceState(null, '', `#${ws}`);
  showError('#app-error', null);
  try {
    // The stream first: once its answer has arrived the server has subscribed it, so every
    // event committed from then on reaches the page, and the lists read after that are
    // brought up to date by the events that follow them. (Resuming from the newest stored
    // event instead would need that event, and the Events list is oldest first.)
    await new Promise((resolve) => follow(ws, gen, resolve));
    if (gen !== S.gen) return;
    const [activities, queues, workflows] = await Promise.all([
      all(wsPath('/Activities?PageSize=1000'), 'activities'),
      all(wsPath('/TaskQueues?PageSize=1000'), 'task_queues'),
      all(wsPath('/Workflows?PageSize=1000'), 'workflows'),
    ]);
    if (gen !== S.gen) return;
    for (const a of activities) S.activities.set(a.sid, a);
    for (const q of queues) S.queues.set(q.sid, q);
    for (const w of workflows) S.workflows.set(w.sid, w);
    schedule('queues', 'workflows', 'events', 'filters');
    refreshStats();
    loadTasks();
    recentEvents(gen);
    activeReservations(gen);
    // Workers page by page: the first thousand are on the screen while the rest load.
    await all(wsPath('/Workers?PageSize=1000'), 'workers', (page) => {
      if (gen !== S.gen) return;
      for (const w of page) if (!S.workers.has(w.sid)) S.workers.set(w.sid, w);
      schedule('workers');
    });
    if (gen === S.gen && METRICS.workersLoadedMs === null) METRICS.workersLoadedMs = performance.now();
  } catch (err) {
    if (gen === S.gen) showError('#app-error', err);
  }
}

function setLive(state) {
  const node = $('#live');
  node.dataset.state = state;
  node.textContent = { on: 'live', retrying: 'reconnecting…', off: 'offline' }[state];
}

/** The stream of the workspace's events, reconnecting; `connected` is called once, when it
 * first answers (or first fails: the page then loads without waiting for it). */
async function follow(ws, gen, connected = () => {}) {
  let delay = 500;
  const ctrl = new AbortController();
  S.stream = ctrl;
  while (gen === S.gen && S.auth) {
    try {
      const headers = { Authorization: S.auth };
      if (S.lastEvent) headers['Last-Event-ID'] = S.lastEvent;
      const res = await fetch(url(`v1/Workspaces/${ws}/Events/Stream`), { headers, signal: ctrl.signal, credentials: 'omit' });
      if (res.status === 401) {
        connected();
        logout('The server refused the credentials; log in again.');
        return;
      }
      if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
      setLive('on');
      connected();
      delay = 500;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = [];
          let id = null;
          for (const line of block.split('\n')) {
            if (line.startsWith('data:')) data.push(line.slice(line[5] === ' ' ? 6 : 5));
            else if (line.startsWith('id:')) id = line.slice(3).trim();
          }
          if (!data.length || gen !== S.gen) continue;
          if (id) S.lastEvent = id;
          try {
            onEvent(JSON.parse(data.join('\n')));
          } catch (err) {
            console.error('an event the console cannot read', err);
          }
        }
      }
    } catch (err) {
      connected();
      if (ctrl.signal.aborted) return;
      console.warn('event stream', err);
    }
    if (gen !== S.gen) return;
    setLive('retrying');
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10_000);
  }
}

/**
 * Reservations made before the page opened: the tasks that are reserved, assigned or
 * wrapping, then each one's reservations (a few requests at a time, in the background).
 * Events are newer than these answers, so a reservation an event has told of is left as the
 * event said.
 */
async function activeReservations(gen) {
  try {
    const tasks = await all(wsPath('/Tasks?AssignmentStatus=reserved&AssignmentStatus=assigned&AssignmentStatus=wrapping&PageSize=1000'), 'tasks');
    const queue = tasks.map((t) => t.sid);
    const one = async () => {
      for (let sid = queue.shift(); sid && gen === S.gen; sid = queue.shift()) {
        const page = await api(wsPath(`/Tasks/${sid}/Reservations?PageSize=100`)).catch(() => null);
        if (gen !== S.gen) return;
        for (const r of page?.reservations || []) {
          if (S.seenReservations.has(r.sid) || !['pending', 'accepted', 'wrapping'].includes(r.reservation_status)) continue;
          const mine = S.work.get(r.worker_sid) || new Map();
          mine.set(r.sid, { task: r.task_sid, status: r.reservation_status });
          S.work.set(r.worker_sid, mine);
        }
        schedule('workers', 'queues');
      }
    };
    await Promise.all(Array.from({ length: 4 }, one));
  } catch (err) {
    console.warn('reservations', err);
  }
}

/** The event log's start: the events of the last minute (up to 200, oldest of them first
 * as the Events list gives them), under those the stream has brought since. */
async function recentEvents(gen) {
  try {
    const since = new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
    const page = await api(wsPath(`/Events?StartDate=${since}&PageSize=200`));
    if (gen !== S.gen) return;
    const seen = new Set(S.events.map((e) => e.sid));
    const older = (page.events || []).filter((e) => !seen.has(e.sid)).reverse();
    S.events = [...S.events, ...older].sort((a, b) => (a.sid < b.sid ? 1 : -1)).slice(0, KEPT_EVENTS);
    eventsDrawn.key = null; // older rows go under the drawn ones: draw the log whole
    schedule('events');
  } catch (err) {
    console.warn('recent events', err);
  }
}

/** A committed event of the workspace, from the stream. */
function onEvent(e) {
  METRICS.events += 1;
  if (e.event_date_ms) {
    METRICS.lagMs = Date.now() - e.event_date_ms;
    METRICS.maxLagMs = Math.max(METRICS.maxLagMs, METRICS.lagMs);
  }
  S.events.unshift(e);
  if (S.events.length > KEPT_EVENTS) S.events.length = KEPT_EVENTS;
  const d = e.event_data || {};
  const type = e.event_type || '';
  if (d.worker_sid && d.worker_activity_sid) {
    if (type === 'worker.deleted') {
      S.workers.delete(d.worker_sid);
      S.work.delete(d.worker_sid);
    } else {
      const w = S.workers.get(d.worker_sid) || { sid: d.worker_sid };
      Object.assign(w, {
        friendly_name: d.worker_name ?? w.friendly_name,
        attributes: d.worker_attributes ?? w.attributes,
        activity_sid: d.worker_activity_sid,
        activity_name: d.worker_activity_name ?? S.activities.get(d.worker_activity_sid)?.friendly_name,
        available: d.worker_available ?? w.available,
      });
      S.workers.set(w.sid, w);
    }
    schedule('workers');
  }
  if (d.reservation_sid && d.worker_sid) {
    S.seenReservations.add(d.reservation_sid);
    const status = d.reservation_status || type.split('.')[1];
    const mine = S.work.get(d.worker_sid) || new Map();
    if (['pending', 'accepted', 'wrapping'].includes(status)) mine.set(d.reservation_sid, { task: d.task_sid, status });
    else mine.delete(d.reservation_sid);
    S.work.set(d.worker_sid, mine);
    schedule('workers');
  }
  if (d.task_sid && d.task_attributes !== undefined && d.task_attributes !== null) remember(d.task_sid, d.task_attributes);
  if (type === 'task.deleted') S.attrs.delete(d.task_sid);
  if (d.task_sid && d.task_assignment_status) {
    const row = S.tasks.rows.get(d.task_sid);
    if (row) {
      Object.assign(row, {
        assignment_status: d.task_assignment_status,
        task_queue_sid: d.task_queue_sid ?? row.task_queue_sid,
        priority: d.task_priority ?? row.priority,
      });
      schedule('tasks');
    }
    if (type === 'task.created' || !row) S.dirty.add('task-page');
    if (type === 'task.deleted' && row) S.dirty.add('task-page');
  }
  // Only the events about the resources themselves: task-queue.entered, workflow.entered and
  // the like are a task's steps, a thousand a second when busy.
  if (['task-queue.created', 'task-queue.deleted', 'task-queue.expression.updated'].includes(type)) S.dirty.add('queue-list');
  if (['workflow.created', 'workflow.updated', 'workflow.deleted'].includes(type)) S.dirty.add('workflow-list');
  if (type.startsWith('activity.')) S.dirty.add('activity-list');
  if (type.startsWith('task.') || type.startsWith('reservation.') || type.startsWith('worker.')) S.dirty.add('stats');
  schedule('events');
  refreshSoon();
}

/** Reads again, at most once a second, what events said changed but do not carry. */
function refreshSoon() {
  if (S.refreshTimer) return;
  const wait = Math.max(0, 1000 - (Date.now() - S.lastRefresh));
  S.refreshTimer = setTimeout(async () => {
    S.refreshTimer = 0;
    S.lastRefresh = Date.now();
    const want = new Set(S.dirty);
    for (const w of ['stats', 'task-page', 'queue-list', 'workflow-list', 'activity-list']) S.dirty.delete(w);
    const gen = S.gen;
    try {
      if (want.has('queue-list')) {
        const queues = await all(wsPath('/TaskQueues?PageSize=1000'), 'task_queues');
        if (gen !== S.gen) return;
        S.queues = new Map(queues.map((q) => [q.sid, q]));
        schedule('queues', 'filters');
      }
      if (want.has('workflow-list')) {
        const wfs = await all(wsPath('/Workflows?PageSize=1000'), 'workflows');
        if (gen !== S.gen) return;
        S.workflows = new Map(wfs.map((w) => [w.sid, w]));
        schedule('workflows');
      }
      if (want.has('activity-list')) {
        const acts = await all(wsPath('/Activities?PageSize=1000'), 'activities');
        if (gen !== S.gen) return;
        S.activities = new Map(acts.map((a) => [a.sid, a]));
        schedule('workers');
      }
      if (want.has('stats') || want.has('queue-list')) await refreshStats();
      if (want.has('task-page') && S.tasks.page === 0) await loadTasks({ quiet: true });
    } catch (err) {
      console.warn('refresh', err);
    }
    if ([...S.dirty].some((w) => ['stats', 'task-page', 'queue-list', 'workflow-list', 'activity-list'].includes(w))) refreshSoon();
  }, wait);
}

async function refreshStats() {
  const gen = S.gen;
  const [queues, workspace] = await Promise.all([
    all(wsPath(`/TaskQueues/Statistics?PageSize=1000&Minutes=1440&SplitByWaitTime=${WAIT_SPLITS.join(',')}`), 'task_queues_statistics'),
    api(wsPath('/RealTimeStatistics')),
  ]);
  if (gen !== S.gen) return;
  const now = Date.now();
  for (const q of queues) {
    S.stats.set(q.task_queue_sid, q);
    const waiting = q.realtime?.tasks_by_status?.pending ?? 0;
    const h = S.history.get(q.task_queue_sid) || [];
    h.push([now, waiting]);
    while (h.length > 2000 || (h.length && h[0][0] < now - 60 * 60_000)) h.shift();
    S.history.set(q.task_queue_sid, h);
  }
  S.workspaceStats = workspace;
  schedule('queues', 'charts');
}

// ---------------------------------------------------------------------------------------
// Rendering

// Each view and the tab it is on (none: drawn whatever the tab). A view on a hidden tab is
// not drawn: it stays marked and is drawn when its tab opens.
const VIEWS = [
  ['queues', 'overview', () => renderQueues()],
  ['charts', 'overview', () => renderCharts()],
  ['workers', 'workers', () => renderWorkers()],
  ['tasks', 'tasks', () => renderTasks()],
  ['workflows', null, () => renderWorkflows()],
  ['events', 'events', () => renderEvents()],
  ['filters', null, () => renderFilters()],
];

function seen(panel) {
  return !panel || !$(`[data-panel="${panel}"]`).hidden;
}

function render() {
  const started = performance.now();
  S.frame = 0;
  const dirty = S.dirty;
  // The charts show worker counts too, but a worker's change need not redraw them at once.
  if (dirty.has('workers') && performance.now() - (S.chartsAt || 0) > 1000) dirty.add('charts');
  for (const [name, panel, draw] of VIEWS) {
    if (!dirty.has(name)) continue;
    if (!seen(panel)) {
      S.hiddenDirty.add(name);
      dirty.delete(name);
      continue;
    }
    dirty.delete(name);
    const t = performance.now();
    if (name === 'charts') S.chartsAt = t;
    draw();
    METRICS.viewMs[name] = (METRICS.viewMs[name] || 0) + performance.now() - t;
  }
  const took = performance.now() - started;
  METRICS.renders += 1;
  METRICS.renderMs += took;
  METRICS.maxRenderMs = Math.max(METRICS.maxRenderMs, took);
  // The first full view: queues with their statistics, and the first page of workers.
  if (METRICS.firstPaintMs === null && S.stats.size && S.workers.size) METRICS.firstPaintMs = performance.now();
}

function splitAccepted(cumulative) {
  const split = cumulative?.split_by_wait_time?.[String(SLA_SECONDS)];
  if (!split) return '–';
  const below = split.below?.reservations_accepted ?? 0;
  const above = split.above?.reservations_accepted ?? 0;
  if (!below && !above) return '–';
  return `${Math.round((100 * below) / (below + above))}% (${below} of ${below + above})`;
}

function renderQueues() {
  const ws = S.workspaceStats;
  const byStatus = ws?.tasks_by_status || {};
  $('#totals').replaceChildren(
    ...[
      ['Tasks waiting', byStatus.pending ?? 0],
      ['Reserved', byStatus.reserved ?? 0],
      ['Assigned', byStatus.assigned ?? 0],
      ['Wrapping', byStatus.wrapping ?? 0],
      ['Longest wait', age(ws?.longest_task_waiting_age)],
      ['Workers', ws?.total_workers ?? S.workers.size],
      ['With reservations or tasks', busyWorkers()],
      ['Occupancy', occupancy()],
    ].map(([label, value]) => el('div', { class: 'figure' }, el('span', { text: label }), el('strong', { text: String(value) }))),
  );
  const rows = [...S.queues.values()].sort((a, b) => a.friendly_name.localeCompare(b.friendly_name)).map((q) => {
    const st = S.stats.get(q.sid);
    const rt = st?.realtime || {};
    const tbs = rt.tasks_by_status || {};
    const avg = st?.cumulative?.avg_task_acceptance_time;
    return el('tr', { dataset: { queue: q.sid } },
      el('td', {}, el('strong', { text: q.friendly_name }), el('div', { class: 'muted mono', text: q.target_workers || '' })),
      el('td', { class: 'num', dataset: { field: 'waiting' }, text: String(tbs.pending ?? 0) }),
      el('td', { class: 'num', text: age(rt.longest_task_waiting_age) }),
      el('td', { class: 'num', text: String(tbs.reserved ?? 0) }),
      el('td', { class: 'num', text: String(tbs.assigned ?? 0) }),
      el('td', { class: 'num', text: String(rt.total_available_workers ?? '–') }),
      el('td', { class: 'num', text: String(rt.total_eligible_workers ?? '–') }),
      el('td', { class: 'num', text: splitAccepted(st?.cumulative) }),
      el('td', { class: 'num', text: avg === undefined ? '–' : age(avg) }),
      el('td', {}, el('button', { type: 'button', text: 'Edit', dataset: { action: 'edit' }, onclick: () => editQueue(q) })));
  });
  $('#queues tbody').replaceChildren(...rows);
}

function busyWorkers() {
  let n = 0;
  for (const m of S.work.values()) if (m.size) n += 1;
  return n;
}

/** Workers with a reservation or a task, of those working: in an available activity or busy. */
function occupancy() {
  let working = 0;
  let busy = 0;
  for (const w of S.workers.values()) {
    const has = S.work.get(w.sid)?.size > 0;
    if (has) busy += 1;
    if (has || w.available) working += 1;
  }
  return working ? `${Math.round((100 * busy) / working)}%` : '–';
}

function editQueue(q) {
  const dialog = $('#edit-queue');
  const form = $('#edit-queue-form');
  form.FriendlyName.value = q.friendly_name || '';
  form.TargetWorkers.value = q.target_workers || '';
  form.MaxReservedWorkers.value = q.max_reserved_workers ?? 1;
  form.TaskOrder.value = q.task_order || 'FIFO';
  showError($('.error', form), null);
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    try {
      const updated = await api(wsPath(`/TaskQueues/${q.sid}`), {
        method: 'POST',
        form: {
          FriendlyName: form.FriendlyName.value,
          TargetWorkers: form.TargetWorkers.value,
          MaxReservedWorkers: form.MaxReservedWorkers.value,
          TaskOrder: form.TaskOrder.value,
        },
      });
      S.queues.set(updated.sid, updated);
      dialog.close();
      schedule('queues', 'filters');
      refreshSoon();
    } catch (err) {
      showError($('.error', form), err);
    }
  };
  $('[data-close]', form).onclick = () => dialog.close();
  dialog.showModal();
}

function renderCharts() {
  const queues = [...S.queues.values()];
  lineChart($('#chart-waiting'), queues.map((q) => ({ label: q.friendly_name, points: S.history.get(q.sid) || [] })));
  $('#legend-waiting').replaceChildren(...queues.map((q, i) => el('span', { class: 'key' },
    el('i', { style: { background: colour(i) } }), q.friendly_name)));
  // Waits until accepted over the last 24 hours, all queues: each threshold's "below" count
  // less the previous one's is a bucket; the last threshold's "above" is the rest.
  const below = WAIT_SPLITS.map(() => 0);
  let above = 0;
  for (const st of S.stats.values()) {
    const split = st.cumulative?.split_by_wait_time || {};
    WAIT_SPLITS.forEach((t, i) => { below[i] += split[String(t)]?.below?.reservations_accepted ?? 0; });
    above += split[String(WAIT_SPLITS[WAIT_SPLITS.length - 1])]?.above?.reservations_accepted ?? 0;
  }
  const name = (t) => (t < 60 ? `${t}s` : `${t / 60}m`);
  const counts = WAIT_SPLITS.map((t, i) => ({ label: `≤${name(t)}`, value: Math.max(0, below[i] - (i ? below[i - 1] : 0)) }));
  counts.push({ label: `>${name(WAIT_SPLITS[WAIT_SPLITS.length - 1])}`, value: above });
  histogram($('#chart-waits'), counts);
  const byActivity = new Map();
  for (const w of S.workers.values()) {
    const name = w.activity_name || S.activities.get(w.activity_sid)?.friendly_name || '?';
    byActivity.set(name, (byActivity.get(name) || 0) + 1);
  }
  bars($('#chart-occupancy'), [...byActivity].sort((a, b) => b[1] - a[1]).slice(0, 7).map(([label, value]) => ({ label, value })));
}

function activitySelect(worker) {
  const select = el('select', { 'aria-label': `Activity of ${worker.friendly_name}`, dataset: { worker: worker.sid } },
    [...S.activities.values()].map((a) => el('option', { value: a.sid, text: a.friendly_name, selected: a.sid === worker.activity_sid })));
  select.addEventListener('change', async () => {
    select.disabled = true;
    try {
      const updated = await api(wsPath(`/Workers/${worker.sid}`), { method: 'POST', form: { ActivitySid: select.value } });
      Object.assign(S.workers.get(worker.sid) || {}, updated);
    } catch (err) {
      showError('#app-error', err);
      select.value = worker.activity_sid;
    } finally {
      select.disabled = false;
      schedule('workers');
    }
  });
  return select;
}

// The worker rows on the screen: SID -> {key, tr}. A row is built again only when what it
// shows changed, so an event about one worker costs one row, not five hundred (and a select
// someone is using is not replaced under them).
let drawnWorkers = new Map();

function workerKey(w) {
  const work = [...(S.work.get(w.sid)?.entries() || [])].map(([r, x]) => `${r}:${x.status}`).join(',');
  return `${w.friendly_name}\u0000${w.activity_sid}\u0000${w.attributes}\u0000${work}\u0000${S.activities.size}`;
}

function workerRow(w) {
  const work = [...(S.work.get(w.sid)?.entries() || [])];
  return el('tr', { dataset: { worker: w.sid, activity: w.activity_name || '' } },
    el('td', {}, el('strong', { text: w.friendly_name || w.sid }), el('div', { class: 'muted mono', text: w.sid })),
    el('td', {}, activitySelect(w)),
    el('td', {}, work.length ? work.map(([, x]) => el('div', { class: 'mono', text: `${x.status}: ${x.task}` })) : el('span', { class: 'muted', text: 'none' })),
    // Lists hide attributes (as Twilio's do); events and Edit show them.
    el('td', { class: 'mono', text: w.attributes === null || w.attributes === undefined ? '–' : brief(w.attributes) }),
    el('td', {}, el('button', { type: 'button', text: 'Edit', onclick: () => editWorker(w) })));
}

function renderWorkers() {
  let available = 0;
  let busy = 0;
  const shown = [];
  let matching = 0;
  const find = $('#worker-filter [name=q]').value.trim().toLowerCase();
  for (const w of S.workers.values()) {
    if (w.available) available += 1;
    if (S.work.get(w.sid)?.size) busy += 1;
    if (find && !`${w.friendly_name}\u0000${w.sid}\u0000${w.activity_name}`.toLowerCase().includes(find)) continue;
    matching += 1;
    if (shown.length < SHOWN_WORKERS) shown.push(w);
  }
  $('#worker-counts').textContent = `${S.workers.size} workers · ${available} in an available activity · ${busy} with reservations or tasks`;
  const tbody = $('#workers tbody');
  const drawn = new Map();
  const order = [...drawnWorkers.keys()];
  let same = shown.length === order.length;
  shown.forEach((w, i) => {
    const key = workerKey(w);
    const old = drawnWorkers.get(w.sid);
    if (old && old.key === key) {
      drawn.set(w.sid, old);
    } else {
      const tr = workerRow(w);
      if (old) old.tr.replaceWith(tr);
      drawn.set(w.sid, { key, tr });
    }
    if (same && order[i] !== w.sid) same = false;
  });
  if (!same) tbody.replaceChildren(...[...drawn.values()].map((d) => d.tr));
  drawnWorkers = drawn;
  $('#workers-more').textContent = matching > SHOWN_WORKERS ? `Showing the first ${SHOWN_WORKERS} of ${matching}: find one by name, SID or activity.` : '';
}

async function editWorker(listed) {
  const dialog = $('#edit-worker');
  const form = $('#edit-worker-form');
  // The worker itself, not the list's row: lists carry no attributes, and saving what a
  // list showed would overwrite the worker's attributes with nothing.
  let w;
  try {
    w = await api(wsPath(`/Workers/${listed.sid}`));
  } catch (err) {
    showError('#app-error', err);
    return;
  }
  Object.assign(S.workers.get(w.sid) || {}, w);
  form.FriendlyName.value = w.friendly_name || '';
  form.Attributes.value = JSON.stringify(JSON.parse(w.attributes || '{}'), null, 2);
  showError($('.error', form), null);
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const error = jsonError(form.Attributes.value);
    if (error) {
      showError($('.error', form), { message: `Attributes: ${error.message}` });
      selectAt(form.Attributes, error.position);
      return;
    }
    try {
      const updated = await api(wsPath(`/Workers/${w.sid}`), {
        method: 'POST',
        form: { FriendlyName: form.FriendlyName.value, Attributes: JSON.stringify(JSON.parse(form.Attributes.value)) },
      });
      Object.assign(S.workers.get(w.sid) || {}, updated);
      dialog.close();
      schedule('workers');
    } catch (err) {
      showError($('.error', form), err);
    }
  };
  $('[data-close]', form).onclick = () => dialog.close();
  dialog.showModal();
}

async function loadTasks({ quiet = false } = {}) {
  const gen = S.gen;
  const t = S.tasks;
  // Newest first: the server reads its task map backwards for this order (no sort).
  const q = new URLSearchParams({ PageSize: String(TASK_PAGE), Ordering: 'DateCreated:desc' });
  for (const [k, v] of Object.entries(t.filter)) if (v) q.set(k, v);
  const token = t.tokens[t.page];
  if (token) {
    for (const [k, v] of new URLSearchParams(token)) q.set(k, v);
  }
  try {
    const page = await api(wsPath(`/Tasks?${q}`));
    if (gen !== S.gen) return;
    showError('#task-filter-error', null);
    t.rows = new Map(page.tasks.map((x) => [x.sid, x]));
    t.order = page.tasks.map((x) => x.sid);
    for (const x of page.tasks) if (x.attributes !== null && x.attributes !== undefined) remember(x.sid, x.attributes);
    const next = page.meta?.next_page_url;
    t.tokens[t.page + 1] = next ? new URL(next).search.slice(1) : undefined;
    schedule('tasks', 'charts');
    await fetchAttributes(page.tasks.map((x) => x.sid).filter((sid) => !S.attrs.has(sid)), gen);
  } catch (err) {
    if (!quiet || err.status === 400) showError('#task-filter-error', err);
  }
}

const KEPT_ATTRIBUTES = 20_000;

function remember(sid, attributes) {
  S.attrs.delete(sid);
  S.attrs.set(sid, attributes);
  // A Map iterates in insertion order: the first key is the one least recently seen.
  if (S.attrs.size > KEPT_ATTRIBUTES) S.attrs.delete(S.attrs.keys().next().value);
}

/** Fetches the given tasks one by one (a few at a time) for their attributes. */
async function fetchAttributes(sids, gen) {
  const queue = [...sids];
  const one = async () => {
    for (let sid = queue.shift(); sid; sid = queue.shift()) {
      try {
        const task = await api(wsPath(`/Tasks/${sid}`));
        if (gen !== S.gen) return;
        remember(sid, task.attributes);
        schedule('tasks');
      } catch (err) {
        if (err.status !== 404) console.warn('task attributes', err);
      }
    }
  };
  await Promise.all(Array.from({ length: 4 }, one));
}

async function taskAction(task, status) {
  try {
    const form = { AssignmentStatus: status, Reason: `${status} from the console` };
    const updated = await api(wsPath(`/Tasks/${task.sid}`), { method: 'POST', form });
    S.tasks.rows.set(task.sid, updated);
    remember(task.sid, updated.attributes);
    schedule('tasks');
  } catch (err) {
    showError('#task-filter-error', err);
  }
}

function renderTasks() {
  const t = S.tasks;
  const rows = t.order.map((sid) => t.rows.get(sid)).filter(Boolean).map((task) => {
    const actions = [];
    if (['pending', 'reserved', 'assigned'].includes(task.assignment_status)) {
      actions.push(el('button', { type: 'button', dataset: { action: 'cancel' }, text: 'Cancel', onclick: () => taskAction(task, 'canceled') }));
    }
    if (['assigned', 'wrapping'].includes(task.assignment_status)) {
      actions.push(el('button', { type: 'button', dataset: { action: 'complete' }, text: 'Complete', onclick: () => taskAction(task, 'completed') }));
    }
    return el('tr', { dataset: { task: task.sid, status: task.assignment_status } },
      el('td', { class: 'mono', text: task.sid }),
      el('td', {}, el('span', { class: `status ${task.assignment_status}`, text: task.assignment_status })),
      el('td', { text: S.queues.get(task.task_queue_sid)?.friendly_name || task.task_queue_friendly_name || '–' }),
      el('td', { class: 'num', text: age(ageOf(task.date_created)) }),
      el('td', { class: 'num', text: String(task.priority ?? 0) }),
      el('td', { class: 'mono', text: S.attrs.has(task.sid) ? brief(S.attrs.get(task.sid)) : '…' }),
      el('td', {}, actions));
  });
  $('#tasks tbody').replaceChildren(...rows);
  $('#tasks-page').textContent = `page ${t.page + 1}`;
  $('#tasks-prev').disabled = t.page === 0;
  $('#tasks-next').disabled = !t.tokens[t.page + 1];
}

function renderFilters() {
  const select = $('#task-filter [name=TaskQueueSid]');
  const value = select.value;
  select.replaceChildren(el('option', { value: '', text: 'any' }),
    ...[...S.queues.values()].map((q) => el('option', { value: q.sid, text: q.friendly_name })));
  select.value = value;
}

function selectAt(textarea, position) {
  if (position === null || position === undefined) return;
  textarea.focus();
  textarea.setSelectionRange(position, Math.min(textarea.value.length, position + 1));
}

function renderWorkflows() {
  const rows = [...S.workflows.values()].map((w) => el('tr', { dataset: { workflow: w.sid } },
    el('td', {}, el('strong', { text: w.friendly_name }), el('div', { class: 'muted mono', text: w.sid })),
    el('td', { class: 'num', text: `${w.task_reservation_timeout} s` }),
    el('td', { class: 'mono', text: w.assignment_callback_url || '–' }),
    el('td', {}, el('button', { type: 'button', text: 'Edit', dataset: { action: 'edit' }, onclick: () => editWorkflow(w) }))));
  $('#workflows tbody').replaceChildren(...rows);
  renderPreviewWorkflows();
}

function renderPreviewWorkflows() {
  const select = $('#route-preview [name=WorkflowSid]');
  const value = select.value;
  select.replaceChildren(...[...S.workflows.values()].map((w) => el('option', { value: w.sid, text: w.friendly_name })));
  if (S.workflows.has(value)) select.value = value;
}

const OUTCOMES = {
  reserve: 'A task with these attributes would be reserved at once for a worker of the step marked ▶.',
  wait: 'A task with these attributes would wait in the queue of the step marked ▶: no worker it admits has room now.',
  cancel: 'A task with these attributes would be canceled: every step it matches is skipped or timed out, and there is no default filter.',
  no_queue: 'No filter matches and there is no default filter: a task with these attributes would wait in no queue until its timeout.',
};

async function previewRoute(form) {
  const out = $('#route-preview-result');
  showError('#route-preview-error', null);
  const error = jsonError(form.Attributes.value);
  if (error) {
    showError('#route-preview-error', { message: `Attributes: ${error.message}` });
    selectAt(form.Attributes, error.position);
    return;
  }
  const params = { Attributes: form.Attributes.value };
  if (form.unsaved.checked) params.Configuration = $('#workflow-editor [name=Configuration]').value;
  else params.WorkflowSid = form.WorkflowSid.value;
  try {
    const p = await api(wsPath('/RoutePreview'), { method: 'POST', form: params });
    const rows = p.steps.map((s, i) => el('tr', { dataset: { step: String(i), queue: s.task_queue_sid }, class: i === p.stops_at ? 'chosen' : undefined },
      el('td', { text: i === p.stops_at ? '▶' : '' }),
      el('td', { text: s.filter_index === null ? 'default filter' : `${s.filter_friendly_name || `filter ${s.filter_index}`} · target ${s.target_index}` }),
      el('td', { text: s.task_queue_friendly_name || s.task_queue_sid }),
      el('td', { class: 'num', text: s.timeout_after === null ? '–' : `${s.timeout_after} s` }),
      el('td', { class: 'num', text: `${s.workers_with_room} of ${s.eligible_workers}` }),
      el('td', { text: s.skipped_now ? 'yes' : 'no' }),
      el('td', {}, s.workers.map((w) => el('div', { class: w.has_room ? 'mono' : 'mono muted', dataset: { worker: w.sid } },
        `${w.friendly_name} (${w.activity_name || '?'})${w.has_room ? '' : ' · no room'}`)),
      s.eligible_workers > s.workers.length ? el('div', { class: 'muted', text: `and ${s.eligible_workers - s.workers.length} more` }) : null)));
    out.replaceChildren(
      el('p', { id: 'route-preview-outcome', dataset: { outcome: p.outcome }, text: OUTCOMES[p.outcome] || p.outcome }),
      p.steps.length ? el('table', {},
        el('thead', {}, el('tr', {}, ...['', 'Filter and target', 'Queue', 'Moves on after', 'With room', 'Skipped now', 'Workers'].map((h) => el('th', { text: h })))),
        el('tbody', {}, rows)) : null);
  } catch (err) {
    out.replaceChildren();
    showError('#route-preview-error', err);
  }
}

function editWorkflow(w) {
  const form = $('#workflow-editor');
  form.hidden = false;
  $('#workflow-title').textContent = w ? `Workflow ${w.friendly_name}` : 'New workflow';
  form.FriendlyName.value = w?.friendly_name || '';
  const firstQueue = [...S.queues.keys()][0] || 'WQ…';
  const config = w ? JSON.parse(w.configuration) : { task_routing: { filters: [], default_filter: { queue: firstQueue } } };
  form.Configuration.value = JSON.stringify(config, null, 2);
  showError('#workflow-error', null);
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const text = form.Configuration.value;
    const error = jsonError(text);
    if (error) {
      showError('#workflow-error', { message: `Configuration is not valid JSON: ${error.message}` });
      selectAt(form.Configuration, error.position);
      return;
    }
    try {
      const saved = await api(w ? wsPath(`/Workflows/${w.sid}`) : wsPath('/Workflows'), {
        method: 'POST',
        form: { FriendlyName: form.FriendlyName.value, Configuration: text },
      });
      S.workflows.set(saved.sid, saved);
      w = saved;
      $('#workflow-title').textContent = `Workflow ${saved.friendly_name}`;
      showError('#workflow-error', null);
      $('#workflow-error').textContent = 'Saved.';
      schedule('workflows');
    } catch (err) {
      showError('#workflow-error', err);
    }
  };
  form.scrollIntoView({ block: 'nearest' });
}

function describe(e) {
  const d = e.event_data || {};
  const parts = [];
  if (d.worker_name) parts.push(`worker ${d.worker_name}`);
  if (d.worker_activity_name && e.event_type?.startsWith('worker.')) parts.push(`now ${d.worker_activity_name}`);
  if (d.task_queue_name) parts.push(`queue ${d.task_queue_name}`);
  if (d.task_assignment_status) parts.push(`task ${d.task_assignment_status}`);
  return e.description || parts.join(' · ');
}

const SHOWN_EVENTS = 200;
let eventsDrawn = { key: null, top: null };

function eventRow(e) {
  return el('tr', { dataset: { event: e.event_type } },
    el('td', { class: 'mono', text: (e.event_date || '').replace('T', ' ').replace('Z', '') }),
    el('td', { text: e.event_type }),
    el('td', { class: 'mono', text: e.resource_sid || '' }),
    el('td', { text: describe(e) }));
}

/** The event log. New events are added on top and the oldest rows dropped, so a burst of
 * events costs rows for those events only; a changed filter (or workspace) redraws all. */
function renderEvents() {
  const f = $('#event-filter');
  if (f.pause.checked) return;
  const type = f.type.value.trim();
  const sid = f.sid.value.trim();
  const wanted = (e) => (!type || e.event_type?.includes(type)) && (!sid || JSON.stringify(e).includes(sid));
  const tbody = $('#events tbody');
  const key = `${S.gen}\u0000${type}\u0000${sid}`;
  const fresh = [];
  let whole = eventsDrawn.key !== key || eventsDrawn.top === null;
  if (!whole) {
    for (const e of S.events) {
      if (e.sid <= eventsDrawn.top) break;
      if (wanted(e)) fresh.push(e);
      if (fresh.length >= SHOWN_EVENTS) break;
    }
    // A burst larger than the log: draw it whole.
    if (fresh.length >= SHOWN_EVENTS) whole = true;
  }
  if (whole) {
    const shown = [];
    for (const e of S.events) {
      if (!wanted(e)) continue;
      shown.push(e);
      if (shown.length >= SHOWN_EVENTS) break;
    }
    tbody.replaceChildren(...shown.map(eventRow));
  } else if (fresh.length) {
    tbody.prepend(...fresh.map(eventRow));
    while (tbody.rows.length > SHOWN_EVENTS) tbody.lastElementChild.remove();
  }
  eventsDrawn = { key, top: S.events[0]?.sid ?? null };
}

// ---------------------------------------------------------------------------------------
// Wiring

function createForm(selector, path, after) {
  const form = $(selector);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    const error = data.Attributes !== undefined ? jsonError(data.Attributes) : null;
    if (error) {
      showError($('.error', form), { message: `Attributes: ${error.message}` });
      return;
    }
    try {
      const made = await api(wsPath(path), { method: 'POST', form: data });
      showError($('.error', form), null);
      form.reset();
      after(made);
    } catch (err) {
      showError($('.error', form), err);
    }
  });
}

function wire() {
  $('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    showError('#login-error', null);
    try {
      await login(form.user.value, form.password.value);
      form.reset();
      await start();
    } catch (err) {
      showError('#login-error', err);
    }
  });
  $('#logout').addEventListener('click', () => logout());
  $('#workspace').addEventListener('change', (ev) => openWorkspace(ev.target.value));
  for (const tab of $$('#tabs button')) {
    tab.addEventListener('click', () => {
      for (const t of $$('#tabs button')) t.setAttribute('aria-selected', String(t === tab));
      for (const p of $$('[data-panel]')) p.hidden = p.dataset.panel !== tab.dataset.tab;
      // What changed while this tab was hidden, and the charts (their size may have changed).
      schedule('charts', ...S.hiddenDirty);
      S.hiddenDirty.clear();
    });
  }
  $('#task-filter').addEventListener('submit', (ev) => {
    ev.preventDefault();
    S.tasks.filter = Object.fromEntries(new FormData(ev.target));
    S.tasks.page = 0;
    S.tasks.tokens = [null];
    loadTasks();
  });
  $('#tasks-next').addEventListener('click', () => {
    S.tasks.page += 1;
    loadTasks();
  });
  $('#tasks-prev').addEventListener('click', () => {
    S.tasks.page = Math.max(0, S.tasks.page - 1);
    loadTasks();
  });
  $('#event-filter').addEventListener('input', () => schedule('events'));
  $('#worker-filter').addEventListener('input', () => schedule('workers'));
  $('#worker-filter').addEventListener('submit', (ev) => ev.preventDefault());
  $('#workflow-cancel').addEventListener('click', () => {
    $('#workflow-editor').hidden = true;
  });
  $('#new-workflow').addEventListener('click', () => editWorkflow(null));
  $('#route-preview').addEventListener('submit', (ev) => {
    ev.preventDefault();
    previewRoute(ev.target);
  });
  createForm('#new-queue', '/TaskQueues', (q) => {
    S.queues.set(q.sid, q);
    schedule('queues', 'filters');
    refreshSoon();
  });
  createForm('#new-worker', '/Workers', (w) => {
    S.workers.set(w.sid, w);
    schedule('workers');
  });
  // Ages on the screen keep counting between events.
  setInterval(() => schedule('tasks'), 5000);
}

wire();
if (S.auth) {
  start().catch((err) => showError('#app-error', err));
} else {
  showLogin();
}
