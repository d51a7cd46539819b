"""Crash durability of tasks and reservations: every acknowledged task and
reservation change survives a SIGKILL, and the routing state read back after
the restart is consistent (taskrouter-semantics.md §2, §3, §4).

Six client threads create tasks and work their reservations at full speed
through the helper library (accept, sometimes reject first, sometimes wrap up,
complete, cancel when nobody is free), recording every acknowledged response.
The server is SIGKILLed in the middle of that load and restarted on the same
data directory; then:

- every acknowledged task exists (fetch and list) with a status its
  acknowledged history allows (an unanswered request may or may not have been
  applied), and the acknowledged `reason`;
- a task whose acceptance was acknowledged is `assigned` or later, with exactly
  one won (accepted/wrapping/completed) reservation: the acknowledged one;
- no task has two won reservations; `assigned`/`wrapping` tasks have exactly
  one, `reserved` tasks have a pending one, `pending` tasks have none;
- no worker holds more pending+accepted+wrapping reservations than its
  capacity (1 on the default channel), both scopes agree on every
  reservation's status, and the channel's `available_capacity_percentage`
  matches (§4);
- every acknowledged reservation exists with its acknowledged status.

Finished tasks are purged ~5 minutes after they end (§2); the whole test runs
well within that.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set

import pytest
from twilio.base.exceptions import TwilioRestException

from conftest import TaskyardServer
from helpers import HOLDING_STATUSES, WON_STATUSES, build_routing, unique_name

pytestmark = pytest.mark.durability

THREADS = 6
WORKERS = 20
CAPACITY = 1  # default channel capacity of a new worker
ROUNDS = 3
LOAD_SECONDS = 1.5  # run the clients at least this long before the SIGKILL
MIN_ACKS_PER_ROUND = 40  # ... and until at least this many writes were acknowledged
MAX_LOAD_SECONDS = 20.0
RESERVATION_WAIT = 2.0  # how long a client waits for its task to be reserved

# What an unanswered request may have done to a task (status before → after).
IN_DOUBT_RESULT = {"accept": "assigned", "wrap": "wrapping", "complete": "completed", "cancel": "canceled"}


@pytest.fixture
def durable_server(tmp_path):
    srv = TaskyardServer(tmp_path / "data", log_path=tmp_path / "taskyard.log")
    srv.start()
    yield srv
    srv.stop()


# ---------------------------------------------------------------------------
# Ledger of acknowledged responses
# ---------------------------------------------------------------------------


@dataclass
class TaskEntry:
    sid: str
    owner: str
    status: str  # last acknowledged assignment_status
    reason: Optional[str] = None
    accepted: Optional[str] = None  # reservation whose acceptance was acknowledged
    in_doubt: Optional[str] = None  # "accept" | "wrap" | "complete" | "cancel" | "reject"
    in_doubt_reservation: Optional[str] = None


@dataclass
class ReservationEntry:
    sid: str
    task_sid: str
    worker_sid: str
    status: str  # last acknowledged reservation_status


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    tasks: Dict[str, TaskEntry] = field(default_factory=dict)
    reservations: Dict[str, ReservationEntry] = field(default_factory=dict)
    acks: int = 0
    problems: List[str] = field(default_factory=list)
    in_flight_at_kill: int = 0

    def task(self, owner, instance):
        with self.lock:
            if instance.sid in self.tasks:
                self.problems.append(f"task SID {instance.sid} handed out twice")
            self.tasks[instance.sid] = TaskEntry(instance.sid, owner, instance.assignment_status)
            self.acks += 1
            return self.tasks[instance.sid]

    def task_updated(self, entry: TaskEntry, instance):
        with self.lock:
            entry.status = instance.assignment_status
            entry.reason = instance.reason
            entry.in_doubt = entry.in_doubt_reservation = None
            self.acks += 1

    def reservation(self, instance, task_entry: Optional[TaskEntry] = None):
        with self.lock:
            self.reservations[instance.sid] = ReservationEntry(
                instance.sid, instance.task_sid, instance.worker_sid, instance.reservation_status
            )
            if task_entry is not None:
                if instance.reservation_status == "accepted":
                    task_entry.accepted = instance.sid
                    task_entry.status = "assigned"
                task_entry.in_doubt = task_entry.in_doubt_reservation = None
            self.acks += 1

    def problem(self, text):
        with self.lock:
            self.problems.append(text)


# ---------------------------------------------------------------------------
# Client threads
# ---------------------------------------------------------------------------


class Agent(threading.Thread):
    """Creates tasks and works their reservations until ``killing`` is set."""

    def __init__(self, number, round_no, server, ws_sid, workflow_sid, offline_sid, ledger, killing):
        super().__init__(name=f"agent-{round_no}-{number}", daemon=True)
        self.number = number
        self.round_no = round_no
        self.client = server.client(timeout=10)
        self.ws = self.client.taskrouter.v1.workspaces(ws_sid)
        self.workflow_sid = workflow_sid
        self.offline_sid = offline_sid
        self.ledger = ledger
        self.killing = killing
        self.rng = random.Random(f"tasks {round_no}/{number}")
        self.seq = 0
        self.held: Optional[TaskEntry] = None  # an assigned task this agent is "working on"

    # -- steps --------------------------------------------------------------
    def send(self, entry: TaskEntry, what: str, call, reservation_sid: Optional[str] = None):
        """Run a state-changing call on ``entry``; if it is never answered the
        entry stays marked as in doubt."""
        entry.in_doubt, entry.in_doubt_reservation = what, reservation_sid
        return call()

    def wait_pending_reservation(self, task_sid, seen: Set[str]):
        deadline = time.monotonic() + RESERVATION_WAIT
        while not self.killing.is_set() and time.monotonic() < deadline:
            for r in self.ws.tasks(task_sid).reservations.list(reservation_status="pending"):
                if r.sid not in seen:
                    return r
            time.sleep(0.01)
        return None

    def finish_held(self):
        entry, self.held = self.held, None
        if entry is None:
            return
        if self.rng.random() < 0.4:
            wrapped = self.send(entry, "wrap", lambda: self.ws.tasks(entry.sid).update(assignment_status="wrapping"))
            self.ledger.task_updated(entry, wrapped)
        reason = f"done t{self.number} r{self.round_no} #{self.seq}"
        done = self.send(
            entry, "complete", lambda: self.ws.tasks(entry.sid).update(assignment_status="completed", reason=reason)
        )
        self.ledger.task_updated(entry, done)

    def one_task(self):
        attributes = json.dumps({"agent": self.number, "round": self.round_no, "seq": self.seq})
        task = self.ws.tasks.create(workflow_sid=self.workflow_sid, attributes=attributes)
        entry = self.ledger.task(self.name, task)
        seen: Set[str] = set()
        rejects = 1 if self.seq % 5 == 0 else 0
        while True:
            r = self.wait_pending_reservation(task.sid, seen)
            if self.killing.is_set():
                return
            if r is None:  # nobody free: give up on this one
                reason = f"nobody free t{self.number} #{self.seq}"
                canceled = self.send(
                    entry, "cancel", lambda: self.ws.tasks(task.sid).update(assignment_status="canceled", reason=reason)
                )
                self.ledger.task_updated(entry, canceled)
                return
            seen.add(r.sid)
            if rejects:
                rejects -= 1
                rejected = self.send(
                    entry,
                    "reject",
                    lambda: self.ws.workers(r.worker_sid).reservations(r.sid).update(reservation_status="rejected"),
                    r.sid,
                )
                self.ledger.reservation(rejected, entry)
                continue
            if self.seq % 2:
                call = lambda: self.ws.tasks(task.sid).reservations(r.sid).update(reservation_status="accepted")
            else:
                call = lambda: self.ws.workers(r.worker_sid).reservations(r.sid).update(reservation_status="accepted")
            accepted = self.send(entry, "accept", call, r.sid)
            self.ledger.reservation(accepted, entry)
            self.held = entry
            return

    def run(self):
        while not self.killing.is_set():
            self.seq += 1
            try:
                self.finish_held()
                self.one_task()
            except TwilioRestException as e:
                if not self.killing.is_set():
                    self.ledger.problem(f"{self.name}: HTTP {e.status} code {e.code} {e.msg!r} on {e.method} {e.uri}")
            except Exception as e:  # connection refused/reset: the SIGKILL
                if self.killing.is_set():
                    with self.ledger.lock:
                        self.ledger.in_flight_at_kill += 1
                    return
                self.ledger.problem(f"{self.name}: {type(e).__name__}: {e}")


def run_load_and_kill(server, setup, ledger, round_no):
    killing = threading.Event()
    agents = [
        Agent(n, round_no, server, setup.ws_sid, setup.workflow_sid, setup.offline_sid, ledger, killing)
        for n in range(THREADS)
    ]
    acks_before, cut_before = ledger.acks, ledger.in_flight_at_kill
    started = time.monotonic()
    for a in agents:
        a.start()
    while True:
        elapsed = time.monotonic() - started
        if elapsed >= MAX_LOAD_SECONDS:
            break
        if elapsed >= LOAD_SECONDS and ledger.acks - acks_before >= MIN_ACKS_PER_ROUND:
            break
        time.sleep(0.02)
    killing.set()
    server.kill()  # SIGKILL while the agents still have requests in flight
    for a in agents:
        a.join(30)
        assert not a.is_alive(), f"{a.name} did not stop after the server was killed"
    return ledger.acks - acks_before, ledger.in_flight_at_kill - cut_before


# ---------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------


def allowed_statuses(entry: TaskEntry) -> Set[str]:
    """Task statuses compatible with what was acknowledged for it."""
    allowed = {entry.status}
    if entry.status in ("pending", "reserved"):
        allowed |= {"pending", "reserved"}  # routing may have moved it either way
    if entry.in_doubt in IN_DOUBT_RESULT:
        allowed.add(IN_DOUBT_RESULT[entry.in_doubt])
        if entry.in_doubt == "complete" and entry.status == "assigned":
            allowed.add("completed")
    return allowed


def verify(server: TaskyardServer, setup, ledger: Ledger) -> List[str]:
    ws = server.client().taskrouter.v1.workspaces(setup.ws_sid)
    problems: List[str] = []
    listed = {t.sid: t for t in ws.tasks.list(page_size=1000)}

    # Every task's reservations (task scope), and per-task invariants.
    reservations_by_task = {}
    status_by_reservation: Dict[str, str] = {}
    for sid, task in listed.items():
        rs = ws.tasks(sid).reservations.list(page_size=1000)
        reservations_by_task[sid] = rs
        for r in rs:
            status_by_reservation[r.sid] = r.reservation_status
            if r.task_sid != sid:
                problems.append(f"reservation {r.sid} listed under task {sid} names task {r.task_sid}")
        won = [r for r in rs if r.reservation_status in WON_STATUSES]
        pending = [r for r in rs if r.reservation_status == "pending"]
        status = task.assignment_status
        if len(won) > 1:
            problems.append(f"task {sid} has {len(won)} won reservations: {[(r.sid, r.reservation_status) for r in won]}")
        if status in ("assigned", "wrapping") and len(won) != 1:
            problems.append(f"{status} task {sid} has {len(won)} won reservations")
        if status == "completed" and len(won) == 1 and won[0].reservation_status != "completed":
            problems.append(f"completed task {sid}: its reservation {won[0].sid} is {won[0].reservation_status!r}")
        if status == "reserved" and not pending:
            problems.append(f"reserved task {sid} has no pending reservation")
        if status in ("pending", "canceled", "completed") and pending:
            problems.append(f"{status} task {sid} still has pending reservation(s) {[r.sid for r in pending]}")
        if status in ("pending", "reserved") and won:
            problems.append(f"{status} task {sid} has a won reservation {won[0].sid}")

    # Acknowledged tasks.
    for entry in ledger.tasks.values():
        try:
            actual = ws.tasks(entry.sid).fetch()
        except TwilioRestException as e:
            problems.append(f"acknowledged task {entry.sid} lost: HTTP {e.status} {e.msg!r}")
            continue
        if entry.sid not in listed:
            problems.append(f"acknowledged task {entry.sid} missing from the list endpoint")
        if actual.assignment_status not in allowed_statuses(entry):
            problems.append(
                f"task {entry.sid}: acknowledged {entry.status!r} (in doubt: {entry.in_doubt}), "
                f"found {actual.assignment_status!r}"
            )
        if entry.status in ("canceled", "completed") and actual.reason != entry.reason:
            problems.append(f"task {entry.sid}: acknowledged reason {entry.reason!r}, found {actual.reason!r}")
        won = [r for r in reservations_by_task.get(entry.sid, []) if r.reservation_status in WON_STATUSES]
        if entry.accepted is not None:
            if [r.sid for r in won] != [entry.accepted]:
                problems.append(
                    f"task {entry.sid}: acceptance of {entry.accepted} was acknowledged, won reservations are "
                    f"{[(r.sid, r.reservation_status) for r in won]}"
                )
        # Resolve what was in doubt, so that the next round starts from the truth.
        entry.status, entry.reason = actual.assignment_status, actual.reason
        if entry.accepted is None and len(won) == 1:
            entry.accepted = won[0].sid
        entry.in_doubt = entry.in_doubt_reservation = None

    # Acknowledged reservations.
    for rentry in ledger.reservations.values():
        try:
            by_task = ws.tasks(rentry.task_sid).reservations(rentry.sid).fetch()
            by_worker = ws.workers(rentry.worker_sid).reservations(rentry.sid).fetch()
        except TwilioRestException as e:
            problems.append(f"acknowledged reservation {rentry.sid} ({rentry.status}) lost: HTTP {e.status}")
            continue
        if by_task.reservation_status != by_worker.reservation_status:
            problems.append(
                f"reservation {rentry.sid}: task scope {by_task.reservation_status!r}, "
                f"worker scope {by_worker.reservation_status!r}"
            )
        ok = {"rejected": {"rejected"}, "accepted": set(WON_STATUSES)}.get(rentry.status, {rentry.status})
        if by_task.reservation_status not in ok:
            problems.append(
                f"reservation {rentry.sid}: acknowledged {rentry.status!r}, found {by_task.reservation_status!r}"
            )

    # Per-worker capacity.
    for worker_sid in setup.worker_sids:
        rs = ws.workers(worker_sid).reservations.list(page_size=1000)
        holding = [r for r in rs if r.reservation_status in HOLDING_STATUSES]
        if len(holding) > CAPACITY:
            problems.append(
                f"worker {worker_sid} holds {len(holding)} reservations (capacity {CAPACITY}): "
                f"{[(r.sid, r.task_sid, r.reservation_status) for r in holding]}"
            )
        for r in rs:
            if r.worker_sid != worker_sid:
                problems.append(f"reservation {r.sid} listed under worker {worker_sid} names {r.worker_sid}")
            seen = status_by_reservation.get(r.sid)
            if seen is not None and seen != r.reservation_status:
                problems.append(
                    f"reservation {r.sid}: task-scoped list says {seen!r}, worker-scoped list {r.reservation_status!r}"
                )
        channel = ws.workers(worker_sid).worker_channels("default").fetch()
        expected_pct = max(0, (100 * (CAPACITY - len(holding))) // CAPACITY)
        if channel.available_capacity_percentage != expected_pct:
            problems.append(
                f"worker {worker_sid}: {len(holding)} holding reservation(s) but default channel "
                f"available_capacity_percentage={channel.available_capacity_percentage}"
            )
    return problems


def clean_up(server: TaskyardServer, setup, ledger: Ledger) -> None:
    """Finish whatever the kill left open, so that every worker is free for the
    next round (completions and cancellations are acknowledged writes too)."""
    ws = server.client().taskrouter.v1.workspaces(setup.ws_sid)
    for task in ws.tasks.list(assignment_status=["pending", "reserved", "assigned", "wrapping"], page_size=1000):
        if task.assignment_status in ("assigned", "wrapping"):
            updated = ws.tasks(task.sid).update(assignment_status="completed", reason="cleanup")
        else:
            updated = ws.tasks(task.sid).update(assignment_status="canceled", reason="cleanup")
        entry = ledger.tasks.get(task.sid)
        if entry is not None:
            ledger.task_updated(entry, updated)


def test_tasks_and_reservations_survive_sigkill(durable_server):
    server = durable_server
    tr = server.client().taskrouter.v1
    workspace = tr.workspaces.create(friendly_name=unique_name("durable tasks"))
    ws = tr.workspaces(workspace.sid)
    routing = build_routing(ws, workers=WORKERS, task_reservation_timeout=3600, name="Durable")
    setup = type("Setup", (), {})()
    setup.ws_sid = workspace.sid
    setup.workflow_sid = routing.workflow.sid
    setup.offline_sid = routing.acts["Offline"].sid
    setup.worker_sids = [w.sid for w in routing.workers]

    ledger = Ledger()
    report = []
    for round_no in range(1, ROUNDS + 1):
        acked, cut = run_load_and_kill(server, setup, ledger, round_no)
        assert acked > 0, "no write was acknowledged before the kill\n" + server.log_tail()
        server.start()  # same data dir
        problems = verify(server, setup, ledger)
        statuses = Counter(e.status for e in ledger.tasks.values())
        report.append(f"round {round_no}: {acked} acks, {cut} requests cut by the kill, tasks {dict(statuses)}")
        assert not problems, (
            f"after SIGKILL round {round_no}:\n  " + "\n  ".join(problems[:25]) + "\n" + server.log_tail()
        )
        clean_up(server, setup, ledger)
    assert not ledger.problems, "errors while the server was healthy:\n  " + "\n  ".join(ledger.problems[:25])
    assert sum(1 for e in ledger.tasks.values() if e.accepted) > 0, "no reservation was ever accepted"
    print("\n".join(report))


# ---------------------------------------------------------------------------
# Snapshots and timers across a SIGKILL
# ---------------------------------------------------------------------------


def task_snapshot(ws, base_url):
    """Every task and reservation (both scopes) as plain dicts, plus the task
    ETags; `age` is left out (it grows while the server is down)."""
    from helpers import fields, header

    snap = {"tasks": {}, "etags": {}, "reservations": {}, "worker_reservations": {}}
    for t in ws.tasks.list(page_size=1000):
        response = ws.tasks(t.sid).fetch_with_http_info()
        snap["tasks"][t.sid] = {k: v for k, v in fields(response.data, base_url).items() if k != "age"}
        snap["etags"][t.sid] = header(response.headers, "ETag")
        for r in ws.tasks(t.sid).reservations.list():
            snap["reservations"][r.sid] = fields(ws.tasks(t.sid).reservations(r.sid).fetch(), base_url)
    for w in ws.workers.list():
        for r in ws.workers(w.sid).reservations.list():
            snap["worker_reservations"][r.sid] = fields(ws.workers(w.sid).reservations(r.sid).fetch(), base_url)
    return snap


def test_task_states_survive_sigkill(durable_server):
    from helpers import wait_reservations

    server = durable_server
    tr = server.client().taskrouter.v1
    workspace = tr.workspaces.create(friendly_name=unique_name("task states"))
    ws = tr.workspaces(workspace.sid)
    routing = build_routing(ws, workers=5, name="States")
    offline = routing.acts["Offline"].sid
    tasks = [
        ws.tasks.create(workflow_sid=routing.workflow.sid, attributes=json.dumps({"n": i}), priority=i)
        for i in range(5)
    ]
    r = [wait_reservations(ws, t.sid, 1, "pending")[0] for t in tasks]
    ws.tasks(tasks[0].sid).reservations(r[0].sid).update(reservation_status="accepted")  # assigned
    ws.tasks(tasks[1].sid).reservations(r[1].sid).update(reservation_status="accepted")
    ws.tasks(tasks[1].sid).update(assignment_status="wrapping")  # wrapping
    ws.tasks(tasks[2].sid).reservations(r[2].sid).update(reservation_status="accepted")
    ws.tasks(tasks[2].sid).update(assignment_status="completed", reason="resolved")  # completed
    ws.tasks(tasks[3].sid).update(assignment_status="canceled", reason="hung up")  # canceled
    ws.workers(r[4].worker_sid).reservations(r[4].sid).update(  # rejected → pending again
        reservation_status="rejected", worker_activity_sid=offline
    )
    for w in routing.workers:  # nobody free any more: what is pending stays pending
        ws.workers(w.sid).update(activity_sid=offline, reject_pending_reservations=True)
    ws.tasks.create(workflow_sid=routing.workflow.sid, attributes='{"n": 5}')  # pending
    before = task_snapshot(ws, server.base_url)
    assert sorted(t["assignment_status"] for t in before["tasks"].values()) == [
        "assigned", "canceled", "completed", "pending", "pending", "wrapping"
    ]

    server.kill()
    server.start()

    after = task_snapshot(server.client().taskrouter.v1.workspaces(workspace.sid), server.base_url)
    for section in before:
        assert after[section] == before[section], f"{section} changed across SIGKILL/restart"


def test_task_timers_fire_after_restart(durable_server):
    """A task TTL and a reservation timeout that come due while the server is
    down still take effect after the restart: the task is canceled with
    "Task TTL Exceeded", the reservation becomes `timeout` and its worker moves
    to the timeout activity (semantics §2, §3.1)."""
    from helpers import wait_reservations, wait_until

    server = durable_server
    tr = server.client().taskrouter.v1
    workspace = tr.workspaces.create(friendly_name=unique_name("timers"))
    ws = tr.workspaces(workspace.sid)
    routing = build_routing(ws, workers=1, task_reservation_timeout=2, name="Timers")
    worker = routing.workers[0]
    nobody = ws.task_queues.create(friendly_name="Nobody", target_workers="1==2")
    wf_nobody = ws.workflows.create(
        friendly_name="Nobody", configuration=json.dumps({"task_routing": {"filters": [], "default_filter": {"queue": nobody.sid}}})
    )
    reserved = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (r,) = wait_reservations(ws, reserved.sid, 1, "pending")
    waiting = ws.tasks.create(workflow_sid=wf_nobody.sid, timeout=2)
    server.kill()
    time.sleep(3)  # the server is down: let both deadlines pass
    server.start()

    ws = server.client().taskrouter.v1.workspaces(workspace.sid)
    canceled = wait_until(lambda: ws.tasks(waiting.sid).fetch(), lambda t: t.assignment_status == "canceled",
                          what="TTL cancel after restart")
    assert canceled.reason == "Task TTL Exceeded"
    wait_until(lambda: ws.tasks(reserved.sid).reservations(r.sid).fetch().reservation_status,
               lambda s: s == "timeout", what="reservation timeout after restart")
    assert ws.workers(worker.sid).fetch().activity_sid == workspace.timeout_activity_sid
    assert ws.tasks(reserved.sid).fetch().assignment_status == "pending"
