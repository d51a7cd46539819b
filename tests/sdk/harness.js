// Shared helpers for the SDK suite: everything a test needs to drive a real `taskyard serve`
// with Twilio's unmodified worker SDK (`twilio-taskrouter`) and helper library (`twilio`).
//
//   - TaskyardServer: spawn `taskyard serve` on a free port with a fresh data dir and a
//     generated account, wait for /healthz, SIGKILL it and start it again on the same port and
//     data dir; REST clients pointed at it (the only change an app makes is the base URL).
//   - API keys and Access Tokens made exactly as an app makes them with the npm `twilio` library.
//   - The TaskRouter quickstart set-up (workspace, activities, queues, workflow, Alice and Bob).
//   - CallbackReceiver: a local HTTP endpoint for assignment callbacks that checks
//     X-Twilio-Signature with `twilio.validateRequest` and answers as the test says.
//   - connectWorker: an SDK `Worker` plus an EventLog of every event it (and its reservations and
//     tasks) emitted, in order, and bounded waits that fail listing what did arrive.
//
// The binary is $TASKYARD_BIN or <repo>/target/release/taskyard. Set TASKYARD_KEEP_DATA=1 to keep
// the data dirs and server logs, TASKYARD_SDK_LOG=debug to see the SDK's own log.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import twilio from 'twilio';
import TaskRouter from 'twilio-taskrouter';

const { Worker } = TaskRouter;
export { twilio, Worker, sleep };

/** The system's Chromium (`CHROMIUM_BIN`, else /usr/bin/chromium), headless, for the browser tests. */
export async function launchChromium() {
  const executablePath = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
  if (!fs.existsSync(executablePath)) throw new Error(`no Chromium at ${executablePath} (set CHROMIUM_BIN)`);
  const { default: puppeteer } = await import('puppeteer-core');
  return puppeteer.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
}

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '..', '..');
const HEALTH_TIMEOUT_MS = 20_000;

// Requests to 127.0.0.1 must not go through a proxy (twilio-node uses HTTP_PROXY, the SDK's axios
// every *_PROXY variable), and twilio-node must not rewrite hosts for an edge or region.
for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy', 'ALL_PROXY', 'all_proxy',
  'TWILIO_EDGE', 'TWILIO_REGION']) {
  delete process.env[name];
}

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

export function randomSid(prefix) {
  return prefix + crypto.randomBytes(16).toString('hex');
}

export function uniqueName(prefix = 'sdk') {
  return `${prefix} ${crypto.randomBytes(5).toString('hex')}`;
}

export function taskyardBinary() {
  return process.env.TASKYARD_BIN || path.join(REPO_ROOT, 'target', 'release', 'taskyard');
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function portIsFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** Poll `probe()` until `predicate(value)` holds and return that value; bounded by `timeout` ms. */
export async function waitUntil(probe, predicate, { timeout = 5000, interval = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  let lastError;
  for (;;) {
    try {
      last = await probe();
      lastError = undefined;
      if (predicate(last)) return last;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const seen = lastError ? `last error: ${lastError.message || lastError}` : `last value: ${brief(last)}`;
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; ${seen}`);
    }
    await sleep(interval);
  }
}

function brief(value) {
  try {
    return JSON.stringify(value, (k, v) => (k.startsWith('_') ? undefined : v))?.slice(0, 600);
  } catch {
    return String(value);
  }
}

/** Resolve with `promise`, or reject after `ms` with a message saying what was awaited. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------

const running = new Set();
// A test process that dies must not leave servers behind.
process.on('exit', () => {
  for (const server of running) server.proc?.kill('SIGKILL');
});

/**
 * One `taskyard serve` process bound to a data directory. start / kill (SIGKILL) / stop (SIGTERM)
 * / restart can be called repeatedly; the data dir, the account and (when it can be bound again)
 * the port stay the same, so the SDK's ebServer/wsServer URLs stay valid across a restart.
 */
export class TaskyardServer {
  constructor({ accountSid, authToken, env = {} } = {}) {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'taskyard-sdk-'));
    this.dataDir = path.join(this.root, 'data');
    this.logPath = path.join(this.root, 'taskyard.log');
    this.accountSid = accountSid || randomSid('AC');
    this.authToken = authToken || crypto.randomBytes(16).toString('hex');
    this.binary = taskyardBinary();
    this.env = env;
    this.port = null;
    this.proc = null;
    this.starts = 0;
  }

  get baseUrl() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** What an app passes to `new Worker(token, {ebServer, wsServer})`. */
  get ebServer() {
    return `${this.baseUrl}/v1/wschannels`;
  }

  get wsServer() {
    return `ws://127.0.0.1:${this.port}/v1/wschannels`;
  }

  isRunning() {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async start() {
    if (!fs.existsSync(this.binary)) {
      throw new Error(`taskyard binary not found at ${this.binary} `
        + '(build it with `cargo build --release --bin taskyard` or set TASKYARD_BIN)');
    }
    if (this.isRunning()) throw new Error('server already running');
    if (this.port === null) {
      this.port = await freePort();
    } else {
      // After a SIGKILL the old port may linger for a moment; the SDK reconnects to the same URL.
      await waitUntil(() => portIsFree(this.port), (free) => free,
        { timeout: 5000, interval: 100, what: `port ${this.port} to be free again` });
    }
    this.starts += 1;
    fs.appendFileSync(this.logPath, `\n===== start #${this.starts} on port ${this.port} =====\n`);
    const log = fs.openSync(this.logPath, 'a');
    const env = { ...process.env };
    for (const name of ['TASKYARD_LISTEN', 'TASKYARD_DATA_DIR', 'TASKYARD_PUBLIC_URL',
      'TASKYARD_MEDIA_CONNECTOR_URL', 'TASKYARD_ASSIGNMENT_CALLBACK_TIMEOUT', 'TASKYARD_EVENT_CALLBACK_MAX_BACKOFF']) {
      delete env[name];
    }
    Object.assign(env, {
      TASKYARD_ACCOUNT_SID: this.accountSid,
      TASKYARD_AUTH_TOKEN: this.authToken,
    }, this.env);
    try {
      this.proc = spawn(this.binary,
        ['serve', '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir],
        { env, stdio: ['ignore', log, log] });
    } finally {
      fs.closeSync(log);
    }
    running.add(this);
    this.exited = new Promise((resolve) => this.proc.once('exit', resolve));
    await this.waitHealthy();
    return this;
  }

  async waitHealthy() {
    const deadline = Date.now() + HEALTH_TIMEOUT_MS;
    let last = 'no attempt';
    while (Date.now() < deadline) {
      if (!this.isRunning()) {
        throw new Error(`taskyard exited (${this.proc.exitCode ?? this.proc.signalCode}) during start-up\n${this.logTail()}`);
      }
      try {
        const res = await fetch(`${this.baseUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
        if (res.status === 200) return;
        last = `HTTP ${res.status}`;
      } catch (err) {
        last = String(err.cause?.code || err.message);
      }
      await sleep(50);
    }
    await this.kill();
    throw new Error(`taskyard did not answer GET /healthz with 200 within ${HEALTH_TIMEOUT_MS} ms (last: ${last})\n${this.logTail()}`);
  }

  /** Crash the server: SIGKILL, no chance to flush or to close sockets politely. */
  async kill() {
    if (!this.isRunning()) return;
    this.proc.kill('SIGKILL');
    await withTimeout(this.exited, 10_000, 'taskyard to exit after SIGKILL');
    running.delete(this);
  }

  /** Graceful stop: SIGTERM, then SIGKILL if it does not exit within 10 s. */
  async stop() {
    if (!this.isRunning()) return;
    this.proc.kill('SIGTERM');
    try {
      await withTimeout(this.exited, 10_000, 'taskyard to exit after SIGTERM');
    } catch {
      await this.kill();
    }
    running.delete(this);
  }

  async restart({ hard = true } = {}) {
    if (hard) await this.kill(); else await this.stop();
    return this.start();
  }

  /** Kill the server and remove its data dir (kept with TASKYARD_KEEP_DATA=1). */
  async cleanup() {
    await this.kill();
    if (process.env.TASKYARD_KEEP_DATA) {
      console.log(`# kept taskyard data and log in ${this.root}`);
    } else {
      fs.rmSync(this.root, { recursive: true, force: true });
    }
  }

  logTail(lines = 60) {
    try {
      const text = fs.readFileSync(this.logPath, 'utf8').split('\n');
      return `--- tail of the server log ---\n${text.slice(-lines).join('\n')}`;
    } catch (err) {
      return `(no server log: ${err.message})`;
    }
  }

  /**
   * A stock npm `twilio` client pointed at this server. Default: the account's own credentials.
   * With an API key: `server.client(keySid, keySecret)` (the accountSid option is added).
   */
  client(username = this.accountSid, password = this.authToken, { accountSid } = {}) {
    return makeClient(this.baseUrl, username, password, {
      accountSid: accountSid ?? (username.startsWith('SK') ? this.accountSid : undefined),
    });
  }

  /** Create an API key over REST (`POST /2010-04-01/Accounts/{AC}/Keys.json`). */
  async createApiKey(friendlyName = uniqueName('sdk key')) {
    const key = await this.client().newKeys.create({ friendlyName });
    return { sid: key.sid, secret: key.secret };
  }
}

/**
 * Twilio's helper library with every domain the suite uses pointed at Taskyard. Each domain
 * object (`client.taskrouter`, `client.api`) carries a `baseUrl` that twilio-node joins with the
 * resource path (lib/base/Domain.js); changing it is the whole migration.
 */
export function makeClient(baseUrl, username, password, { accountSid } = {}) {
  const opts = { timeout: 15_000 };
  if (accountSid) opts.accountSid = accountSid;
  const client = twilio(username, password, opts);
  client.taskrouter.baseUrl = baseUrl;
  client.api.baseUrl = baseUrl;
  return client;
}

/** Start a server; returns it running. */
export async function startServer(options) {
  const server = new TaskyardServer(options);
  await server.start();
  return server;
}

// ---------------------------------------------------------------------------
// Access Tokens
// ---------------------------------------------------------------------------

/**
 * An Access Token with a TaskRouter grant, made the way Twilio's docs tell an app to make one.
 * `ttl` is in seconds (twilio-node passes it to jsonwebtoken's `expiresIn`).
 */
export function mintToken({ accountSid, key, workspaceSid, workerSid, ttl = 3600, identity, role = 'worker' }) {
  const { AccessToken } = twilio.jwt;
  const token = new AccessToken(accountSid, key.sid, key.secret, { identity: identity || workerSid || 'sdk-test', ttl });
  token.addGrant(new AccessToken.TaskRouterGrant({ workspaceSid, workerSid, role }));
  return token.toJwt();
}

/** The header and payload of a JWT, unverified (for assertions about what was minted). */
export function decodeJwt(jwt) {
  const [header, payload] = jwt.split('.').slice(0, 2).map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')));
  return { header, payload };
}

// ---------------------------------------------------------------------------
// REST set-ups
// ---------------------------------------------------------------------------

export const ALICE_ATTRS = { languages: ['en', 'es'] };
export const BOB_ATTRS = { languages: ['en'] };

export async function activitiesByName(ws) {
  const list = await ws.activities.list();
  return Object.fromEntries(list.map((a) => [a.friendlyName, a]));
}

/**
 * TaskRouter quickstart Part 1: a workspace, Alice (en, es) and Bob (en), a Spanish and an English
 * queue, and a workflow routing `selected_language == "es"` to the Spanish queue and "en" to the
 * English one. Both workers start Offline, as workers created over REST do.
 *
 * Returns { ws (WorkspaceContext), workspaceSid, acts: {Offline, Available, Unavailable, …},
 *           alice, bob, spanish, english, workflow }.
 */
export async function buildQuickstart(client, { assignmentCallbackUrl, taskReservationTimeout = 1200 } = {}) {
  const tr = client.taskrouter.v1;
  const workspace = await tr.workspaces.create({ friendlyName: uniqueName('Quickstart') });
  const ws = tr.workspaces(workspace.sid);
  const acts = await activitiesByName(ws);
  for (const name of ['Offline', 'Available', 'Unavailable']) {
    if (!acts[name]) throw new Error(`the new workspace has no ${name} activity: ${Object.keys(acts)}`);
  }
  const alice = await ws.workers.create({ friendlyName: 'Alice', attributes: JSON.stringify(ALICE_ATTRS) });
  const bob = await ws.workers.create({ friendlyName: 'Bob', attributes: JSON.stringify(BOB_ATTRS) });
  const spanish = await ws.taskQueues.create({
    friendlyName: 'Customer Care Requests - Spanish', targetWorkers: 'languages HAS "es"',
  });
  const english = await ws.taskQueues.create({
    friendlyName: 'Customer Care Requests - English', targetWorkers: 'languages HAS "en"',
  });
  const configuration = {
    task_routing: {
      filters: [
        { filter_friendly_name: 'Language - Spanish', expression: 'selected_language == "es"', targets: [{ queue: spanish.sid }] },
        { filter_friendly_name: 'Language - English', expression: 'selected_language == "en"', targets: [{ queue: english.sid }] },
      ],
    },
  };
  const workflow = await ws.workflows.create({
    friendlyName: 'Incoming Customer Care Requests',
    configuration: JSON.stringify(configuration),
    taskReservationTimeout,
    ...(assignmentCallbackUrl ? { assignmentCallbackUrl } : {}),
  });
  return { ws, workspace, workspaceSid: workspace.sid, acts, alice, bob, spanish, english, workflow };
}

/**
 * One queue (`targetWorkers`, `maxReservedWorkers`), one workflow sending every task to it, and
 * the named workers (created Available unless `available: false`).
 */
export async function buildRouting(client, {
  workers = ['Agent 1'], maxReservedWorkers = 1, taskReservationTimeout = 1200, targetWorkers = '1==1',
  available = true, assignmentCallbackUrl,
} = {}) {
  const tr = client.taskrouter.v1;
  const workspace = await tr.workspaces.create({ friendlyName: uniqueName('Routing') });
  const ws = tr.workspaces(workspace.sid);
  const acts = await activitiesByName(ws);
  const queue = await ws.taskQueues.create({ friendlyName: 'Everything', targetWorkers, maxReservedWorkers });
  const workflow = await ws.workflows.create({
    friendlyName: 'Everything to one queue',
    configuration: JSON.stringify({ task_routing: { filters: [], default_filter: { queue: queue.sid } } }),
    taskReservationTimeout,
    ...(assignmentCallbackUrl ? { assignmentCallbackUrl } : {}),
  });
  const created = [];
  for (const friendlyName of workers) {
    created.push(await ws.workers.create({
      friendlyName, attributes: '{}', ...(available ? { activitySid: acts.Available.sid } : {}),
    }));
  }
  return { ws, workspace, workspaceSid: workspace.sid, acts, queue, workflow, workers: created };
}

/** Poll REST until the task has `count` reservations in `status`; returns them. */
export function waitReservations(ws, taskSid, { status = 'pending', count = 1, timeout = 5000 } = {}) {
  return waitUntil(
    async () => (await ws.tasks(taskSid).reservations.list()).filter((r) => r.reservationStatus === status),
    (list) => list.length === count,
    { timeout, what: `${count} ${status} reservation(s) on task ${taskSid}` },
  );
}

/** Poll REST until the task is in `status`; returns the fetched task. */
export function waitTaskStatus(ws, taskSid, status, { timeout = 5000 } = {}) {
  return waitUntil(() => ws.tasks(taskSid).fetch(), (t) => t.assignmentStatus === status,
    { timeout, what: `task ${taskSid} to become ${status}` });
}

/** Poll REST until the reservation is in `status`; returns it. */
export function waitReservationStatus(ws, taskSid, reservationSid, status, { timeout = 5000 } = {}) {
  return waitUntil(() => ws.tasks(taskSid).reservations(reservationSid).fetch(),
    (r) => r.reservationStatus === status,
    { timeout, what: `reservation ${reservationSid} to become ${status}` });
}

// ---------------------------------------------------------------------------
// Assignment callbacks
// ---------------------------------------------------------------------------

/**
 * A real HTTP endpoint on 127.0.0.1 that records every request and checks its X-Twilio-Signature
 * against the account's auth token with twilio-node's own `validateRequest`. `respond(request)`
 * decides the answer ({status, body, contentType}); the default is an empty 200 (no instruction).
 */
export class CallbackReceiver {
  constructor(authToken) {
    this.authToken = authToken;
    this.requests = [];
    this.respond = () => ({ status: 200, body: '' });
    this.waiters = new Set();
    this.sockets = new Set();
  }

  async start() {
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (s) => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)); });
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = this.server.address().port;
    return this;
  }

  url(p = '/assignment') {
    return `http://127.0.0.1:${this.port}${p}`;
  }

  handle(req, res) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const params = {};
      if ((req.headers['content-type'] || '').includes('application/x-www-form-urlencoded')) {
        for (const [k, v] of new URLSearchParams(body)) {
          params[k] = k in params ? [].concat(params[k], v) : v;
        }
      }
      const signature = req.headers['x-twilio-signature'];
      const url = `http://127.0.0.1:${this.port}${req.url}`;
      const record = {
        method: req.method, path: req.url, url, headers: req.headers, body, params, signature,
        signatureValid: Boolean(signature) && twilio.validateRequest(this.authToken, signature, url, params),
        at: Date.now(),
      };
      let answer;
      try {
        answer = this.respond(record) || { status: 200, body: '' };
      } catch (err) {
        answer = { status: 500, body: String(err) };
      }
      record.answer = answer;
      this.requests.push(record);
      for (const w of this.waiters) w();
      const data = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
      res.writeHead(answer.status ?? 200, {
        'Content-Type': answer.contentType || (typeof answer.body === 'string' ? 'text/plain' : 'application/json'),
        'Content-Length': Buffer.byteLength(data),
      });
      res.end(data);
    });
  }

  /** Wait (bounded) for a request matching `predicate`; fails listing what arrived. */
  waitFor(predicate, { timeout = 10_000, what = 'a callback' } = {}) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.requests.find(predicate);
        if (found) {
          this.waiters.delete(check);
          clearTimeout(timer);
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeout} ms waiting for ${what}; received: ${this.summary()}`));
      }, timeout);
      this.waiters.add(check);
      check();
    });
  }

  summary() {
    if (this.requests.length === 0) return '(nothing)';
    return this.requests.map((r) => `${r.method} ${r.path} ReservationSid=${r.params.ReservationSid} `
      + `WorkerSid=${r.params.WorkerSid} signatureValid=${r.signatureValid}`).join('; ');
  }

  async stop() {
    if (!this.server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
    this.server = null;
  }
}

/** Answers for the receiver. */
export const ACCEPT = { status: 200, body: { instruction: 'accept' } };
export const NO_INSTRUCTION = { status: 200, body: {} };

// ---------------------------------------------------------------------------
// The SDK: workers and their events
// ---------------------------------------------------------------------------

const WORKER_EVENTS = ['ready', 'error', 'disconnected', 'activityUpdated', 'attributesUpdated',
  'reservationCreated', 'reservationFailed', 'tokenExpired', 'tokenUpdated'];
const RESERVATION_EVENTS = ['accepted', 'canceled', 'completed', 'rejected', 'rescinded', 'timeout', 'wrapup'];
const TASK_EVENTS = ['canceled', 'completed', 'updated', 'wrapup'];

/**
 * Every event a Worker, its Reservations and their Tasks emitted, in arrival order. Worker events
 * keep their SDK name (`ready`, `reservationCreated`, …); reservation and task events are named
 * `reservation.<event>` / `task.<event>` and carry the object's `sid`. Each entry keeps a
 * snapshot of what the app could read at that moment (statuses, attributes, messages).
 */
export class EventLog {
  constructor(label) {
    this.label = label;
    this.entries = [];
    this.waiters = new Set();
    this.t0 = Date.now();
  }

  push(name, sid, snapshot, object) {
    const entry = { index: this.entries.length, name, sid, at: Date.now(), snapshot, object };
    this.entries.push(entry);
    for (const w of [...this.waiters]) w();
    return entry;
  }

  /** The index of the next entry: pass as `since` to only look at what comes later. */
  get mark() {
    return this.entries.length;
  }

  static matcher(match) {
    if (typeof match === 'function') return match;
    if (typeof match === 'string') return (e) => e.name === match;
    return (e) => Object.entries(match).every(([k, v]) => e[k] === v);
  }

  find(match, since = 0) {
    const m = EventLog.matcher(match);
    return this.entries.slice(since).find(m);
  }

  all(match, since = 0) {
    const m = EventLog.matcher(match);
    return this.entries.slice(since).filter(m);
  }

  /** Wait (bounded) for the first entry at or after `since` that matches. */
  waitFor(match, { timeout = 10_000, since = 0, what } = {}) {
    const m = EventLog.matcher(match);
    const label = what || (typeof match === 'function' ? 'a matching event' : JSON.stringify(match));
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.entries.slice(since).find(m);
        if (found) {
          this.waiters.delete(check);
          clearTimeout(timer);
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`${this.label}: timed out after ${timeout} ms waiting for ${label}\n${this.describe()}`));
      }, timeout);
      this.waiters.add(check);
      check();
    });
  }

  /** Assert that nothing matching arrives (at or after `since`) for `ms` milliseconds. */
  async expectNone(match, ms, { since = 0, what } = {}) {
    await sleep(ms);
    const found = this.all(match, since);
    if (found.length > 0) {
      const label = what || (typeof match === 'function' ? 'a matching event' : JSON.stringify(match));
      throw new Error(`${this.label}: expected no ${label} within ${ms} ms, got ${found.length}\n${this.describe()}`);
    }
  }

  describe() {
    if (this.entries.length === 0) return '  events so far: (none)';
    const lines = this.entries.map((e) => `  +${e.at - this.t0}ms ${e.name}${e.sid ? ` ${e.sid}` : ''}`
      + `${e.snapshot ? ` ${brief(e.snapshot)}` : ''}`);
    return `  events so far:\n${lines.join('\n')}`;
  }
}

function workerSnapshot(worker) {
  return { activity: worker.activity?.name, available: worker.activity?.available, attributes: worker.attributes };
}

function reservationSnapshot(reservation) {
  return {
    status: reservation.status,
    taskSid: reservation.task?.sid,
    taskStatus: reservation.task?.status,
    attributes: reservation.task?.attributes,
  };
}

function errorSnapshot(err) {
  return { message: err?.message, code: err?.code, name: err?.name };
}

const connected = new Set();

/**
 * `new Worker(token, {ebServer, wsServer, ...options})` against `server`, with an EventLog that
 * is listening before the first event can arrive. Returns { worker, events, ready(timeout) };
 * `ready()` resolves with the first `ready` entry or fails listing what arrived instead.
 */
export function connectWorker(server, token, options = {}) {
  const label = options.label || 'worker';
  const sdkOptions = { ...options };
  delete sdkOptions.label;
  const worker = new Worker(token, {
    ebServer: server.ebServer,
    wsServer: server.wsServer,
    logLevel: process.env.TASKYARD_SDK_LOG || 'silent',
    ...sdkOptions,
  });
  const events = new EventLog(label);
  const watched = new WeakSet();

  const watchTask = (task) => {
    if (!task || watched.has(task)) return;
    watched.add(task);
    for (const name of TASK_EVENTS) {
      task.on(name, (t) => events.push(`task.${name}`, task.sid, { status: t?.status, attributes: t?.attributes }, task));
    }
  };
  const watchReservation = (reservation) => {
    if (!reservation || watched.has(reservation)) return;
    watched.add(reservation);
    for (const name of RESERVATION_EVENTS) {
      reservation.on(name, (r) => events.push(`reservation.${name}`, reservation.sid, reservationSnapshot(r || reservation), reservation));
    }
    watchTask(reservation.task);
  };

  for (const name of WORKER_EVENTS) {
    worker.on(name, (arg) => {
      if (name === 'reservationCreated') {
        watchReservation(arg);
        events.push(name, arg?.sid, reservationSnapshot(arg), arg);
      } else if (name === 'ready') {
        // Reservations that existed at connect time come with `ready`, not with reservationCreated.
        for (const r of worker.reservations.values()) watchReservation(r);
        events.push(name, worker.sid, { ...workerSnapshot(worker), reservations: [...worker.reservations.keys()] });
      } else if (name === 'error') {
        events.push(name, undefined, errorSnapshot(arg), arg);
      } else if (name === 'disconnected') {
        events.push(name, undefined, { message: arg?.message }, arg);
      } else if (name === 'activityUpdated' || name === 'attributesUpdated') {
        events.push(name, worker.sid, workerSnapshot(worker));
      } else {
        events.push(name, undefined, undefined, arg);
      }
    });
  }

  const handle = {
    worker,
    events,
    label,
    ready: (timeout = 10_000) => events.waitFor('ready', { timeout, what: 'ready' }),
    disconnect: () => disconnectWorker(handle),
  };
  connected.add(handle);
  return handle;
}

/**
 * Disconnect a worker. The SDK nulls its websocket handlers and calls `close()`; the `ws` package
 * reports closing a still-CONNECTING socket (a refused or reconnecting worker) as an 'error'
 * event, which nobody would then hear: an uncaught exception that ends the test file. So the
 * socket gets a listener of its own first.
 */
export async function disconnectWorker(handle) {
  if (!connected.has(handle)) return;
  connected.delete(handle);
  const socket = handle.worker._signaling?.webSocket;
  if (typeof socket?.on === 'function') socket.on('error', () => {});
  try {
    handle.worker.disconnect();
  } catch {
    // already gone
  }
}

/** Disconnect every worker still connected (for `after`/`afterEach` hooks). */
export async function disconnectAll() {
  await Promise.all([...connected].map((h) => disconnectWorker(h)));
}

/** The worker's activity with this friendly name (from the list the SDK fetched at `ready`). */
export function sdkActivity(worker, name) {
  const found = [...worker.activities.values()].find((a) => a.name === name);
  if (!found) throw new Error(`the SDK knows no activity named ${name}: ${[...worker.activities.values()].map((a) => a.name)}`);
  return found;
}

/**
 * Everything a test file needs: one server for the file, an API key, and helpers bound to them.
 * Call `await env.setUp()` in `before` and `await env.tearDown()` in `after`.
 */
export class SdkEnv {
  constructor(options) {
    this.options = options;
    this.receivers = [];
  }

  async setUp() {
    this.server = await startServer(this.options);
    this.client = this.server.client();
    this.key = await this.server.createApiKey();
    return this;
  }

  token(workspaceSid, workerSid, extra = {}) {
    return mintToken({ accountSid: this.server.accountSid, key: this.key, workspaceSid, workerSid, ...extra });
  }

  connect(workspaceSid, workerSid, options = {}) {
    return connectWorker(this.server, this.token(workspaceSid, workerSid), { label: workerSid, ...options });
  }

  async receiver() {
    const r = await new CallbackReceiver(this.server.authToken).start();
    this.receivers.push(r);
    return r;
  }

  async tearDown() {
    await disconnectAll();
    await Promise.all(this.receivers.map((r) => r.stop()));
    await this.server?.cleanup();
  }
}
