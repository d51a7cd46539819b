"""Crash durability: every write the server acknowledged survives a SIGKILL.

Each test starts its own ``taskyard serve`` on a fresh data directory, drives
it through the helper library, kills it with SIGKILL (``os.kill(pid,
SIGKILL)``) and restarts it on the SAME data directory.  Resources are compared
field by field with the acknowledged responses (absolute URLs are compared by
path, in case the restarted server had to bind another port).
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import pytest
from twilio.base.exceptions import TwilioRestException

from conftest import TaskyardServer, make_client
from helpers import build_quickstart, fields, snapshot_workspace, unique_name

pytestmark = pytest.mark.durability

THREADS = 8
ROUNDS = 3
LOAD_SECONDS = 1.5  # run the writers at least this long before the SIGKILL
MIN_ACKS_PER_ROUND = 40  # ... and until at least this many writes were acknowledged
MAX_LOAD_SECONDS = 20.0


@pytest.fixture
def durable_server(tmp_path):
    srv = TaskyardServer(tmp_path / "data", log_path=tmp_path / "taskyard.log")
    srv.start()
    yield srv
    srv.stop()


# ---------------------------------------------------------------------------
# Ledger of acknowledged writes
# ---------------------------------------------------------------------------


@dataclass
class Entry:
    kind: str  # "worker" | "activity" | "task_queue"
    sid: str
    owner: int  # writer thread that created it (only the owner updates it)
    fields: Dict[str, Any]  # last acknowledged representation (URLs relative)
    in_doubt: Optional[Dict[str, Any]] = None  # an update that was sent but never answered
    deleted: bool = False  # an acknowledged DELETE
    delete_in_doubt: bool = False  # a DELETE that was sent but never answered


class Ledger:
    def __init__(self):
        self.lock = threading.Lock()
        self.entries: Dict[str, Entry] = {}
        self.acks = 0
        self.problems: List[str] = []  # server errors while the server was healthy
        self.in_flight_at_kill = 0

    def created(self, kind, owner, instance, base_url):
        with self.lock:
            if instance.sid in self.entries:
                self.problems.append(f"SID {instance.sid} handed out twice")
            self.entries[instance.sid] = Entry(kind, instance.sid, owner, fields(instance, base_url))
            self.acks += 1

    def updated(self, sid, instance, base_url):
        with self.lock:
            self.entries[sid].fields = fields(instance, base_url)
            self.acks += 1

    def removed(self, sid):
        with self.lock:
            self.entries[sid].deleted = True
            self.acks += 1

    def owned(self, owner, kind) -> List[Entry]:
        with self.lock:
            return [
                e for e in self.entries.values()
                if e.owner == owner and e.kind == kind and e.in_doubt is None
                and not e.deleted and not e.delete_in_doubt
            ]


# ---------------------------------------------------------------------------
# Writer threads
# ---------------------------------------------------------------------------


class Writer(threading.Thread):
    """Creates workers/activities/queues, updates and deletes its own resources until
    ``killing`` is set; every acknowledged response goes into the ledger."""

    def __init__(self, number, round_no, server, ws_sid, default_activities, ledger, killing):
        super().__init__(name=f"writer-{number}", daemon=True)
        self.number = number
        self.round_no = round_no
        self.base_url = server.base_url
        self.client = server.client(timeout=10)
        self.ws = self.client.taskrouter.v1.workspaces(ws_sid)
        self.default_activities = default_activities
        self.ledger = ledger
        self.killing = killing
        self.rng = random.Random(f"{round_no}/{number}")
        self.seq = 0

    def name_for(self, kind):
        return f"{kind} t{self.number} r{self.round_no} #{self.seq}"

    def attributes(self):
        return json.dumps(
            {
                "thread": self.number,
                "round": self.round_no,
                "seq": self.seq,
                "skills": self.rng.sample(["billing", "sales", "support", "tech", "es", "en"], 3),
                "level": self.rng.randint(1, 10),
                "note": "Zoë ✓ " + "x" * self.rng.randint(0, 300),
            }
        )

    # -- operations -------------------------------------------------------
    def create_worker(self):
        worker = self.ws.workers.create(
            friendly_name=self.name_for("worker"),
            attributes=self.attributes(),
            activity_sid=self.rng.choice(self.default_activities),
        )
        self.ledger.created("worker", self.number, worker, self.base_url)

    def create_activity(self):
        activity = self.ws.activities.create(
            friendly_name=self.name_for("activity"), available=self.rng.choice([True, False])
        )
        self.ledger.created("activity", self.number, activity, self.base_url)

    def create_task_queue(self):
        queue = self.ws.task_queues.create(
            friendly_name=self.name_for("queue"),
            target_workers=f"thread == {self.number} AND level >= {self.rng.randint(1, 10)}",
            max_reserved_workers=self.rng.randint(1, 50),
            task_order=self.rng.choice(["FIFO", "LIFO"]),
        )
        self.ledger.created("task_queue", self.number, queue, self.base_url)

    def update(self, kind, send):
        candidates = self.ledger.owned(self.number, kind)
        if not candidates:
            return False
        entry = self.rng.choice(candidates)
        intended = send(entry.sid)  # returns (intended fields, call)
        want, call = intended
        try:
            instance = call()
        except TwilioRestException:
            raise
        except Exception:
            entry.in_doubt = want
            raise
        self.ledger.updated(entry.sid, instance, self.base_url)
        return True

    def update_worker(self):
        def send(sid):
            want = {
                "friendly_name": self.name_for("worker") + " (updated)",
                "attributes": self.attributes(),
                "activity_sid": self.rng.choice(self.default_activities),
            }
            return want, lambda: self.ws.workers(sid).update(**want)

        return self.update("worker", send)

    def update_activity(self):
        def send(sid):
            want = {"friendly_name": self.name_for("activity") + " (renamed)"}
            return want, lambda: self.ws.activities(sid).update(**want)

        return self.update("activity", send)

    def update_task_queue(self):
        def send(sid):
            want = {
                "friendly_name": self.name_for("queue") + " (updated)",
                "target_workers": f"level >= {self.rng.randint(1, 10)}",
                "max_reserved_workers": self.rng.randint(1, 50),
            }
            return want, lambda: self.ws.task_queues(sid).update(**want)

        return self.update("task_queue", send)

    def delete(self, kind, call):
        candidates = self.ledger.owned(self.number, kind)
        if len(candidates) < 2:  # keep a few around
            return False
        entry = self.rng.choice(candidates)
        try:
            call(entry.sid)
        except TwilioRestException:
            raise
        except Exception:
            entry.delete_in_doubt = True
            raise
        self.ledger.removed(entry.sid)
        return True

    def delete_worker(self):
        return self.delete("worker", lambda sid: self.ws.workers(sid).delete())

    def delete_activity(self):
        return self.delete("activity", lambda sid: self.ws.activities(sid).delete())

    def delete_task_queue(self):
        return self.delete("task_queue", lambda sid: self.ws.task_queues(sid).delete())

    def run(self):
        creates = [self.create_worker, self.create_activity, self.create_task_queue]
        updates = [self.update_worker, self.update_activity, self.update_task_queue]
        deletes = [self.delete_worker, self.delete_activity, self.delete_task_queue]
        while not self.killing.is_set():
            self.seq += 1
            try:
                if self.seq % 7 == 0 and deletes[self.seq % 3]():
                    continue
                if self.seq % 2 == 0 and updates[self.seq % 3]():
                    continue
                creates[self.seq % 3]()
            except TwilioRestException as e:
                if not self.killing.is_set():
                    with self.ledger.lock:
                        self.ledger.problems.append(
                            f"{self.name}: HTTP {e.status} code {e.code} {e.msg!r} on {e.method} {e.uri}"
                        )
            except Exception as e:  # connection refused/reset: the SIGKILL
                if self.killing.is_set():
                    with self.ledger.lock:
                        self.ledger.in_flight_at_kill += 1
                    return
                with self.ledger.lock:
                    self.ledger.problems.append(f"{self.name}: {type(e).__name__}: {e}")


# ---------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------

KIND_ACCESSORS = {
    "worker": lambda ws, sid: ws.workers(sid).fetch(),
    "activity": lambda ws, sid: ws.activities(sid).fetch(),
    "task_queue": lambda ws, sid: ws.task_queues(sid).fetch(),
}


def matches_intended(actual: Dict[str, Any], want: Dict[str, Any]) -> bool:
    for key, value in want.items():
        if key == "attributes":
            if actual.get("attributes") is None or json.loads(actual["attributes"]) != json.loads(value):
                return False
        elif actual.get(key) != value:
            return False
    return True


def _short(value: Any, limit: int = 90) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def verify_ledger(server: TaskyardServer, ws_sid: str, ledger: Ledger) -> List[str]:
    """Every acknowledged resource must exist with identical fields, and every
    acknowledged delete must stay deleted."""
    ws = server.client().taskrouter.v1.workspaces(ws_sid)
    problems = []
    for entry in list(ledger.entries.values()):
        try:
            actual = fields(KIND_ACCESSORS[entry.kind](ws, entry.sid), server.base_url)
        except TwilioRestException as e:
            if e.status == 404 and (entry.deleted or entry.delete_in_doubt):
                entry.deleted, entry.delete_in_doubt = True, False
                continue
            problems.append(f"acknowledged {entry.kind} {entry.sid} lost: HTTP {e.status} {e.msg!r}")
            continue
        if entry.deleted:
            problems.append(f"{entry.kind} {entry.sid} came back after an acknowledged DELETE")
            continue
        entry.delete_in_doubt = False
        if actual == entry.fields:
            entry.in_doubt = None
            continue
        if entry.in_doubt is not None and matches_intended(actual, entry.in_doubt):
            # the unanswered update was applied: fine, that is the new truth
            entry.fields, entry.in_doubt = actual, None
            continue
        diff = {
            k: (_short(entry.fields.get(k)), _short(actual.get(k)))
            for k in sorted(set(entry.fields) | set(actual))
            if entry.fields.get(k) != actual.get(k) and k != "links"
        }
        problems.append(f"{entry.kind} {entry.sid} differs from acknowledged state (expected, actual): {diff}")
    listed = {
        "worker": {w.sid for w in ws.workers.list(page_size=1000)},
        "activity": {a.sid for a in ws.activities.list(page_size=1000)},
        "task_queue": {q.sid for q in ws.task_queues.list(page_size=1000)},
    }
    for entry in ledger.entries.values():
        if entry.deleted and entry.sid in listed[entry.kind]:
            problems.append(f"deleted {entry.kind} {entry.sid} still in the list endpoint")
        elif not entry.deleted and entry.sid not in listed[entry.kind]:
            problems.append(f"acknowledged {entry.kind} {entry.sid} missing from the list endpoint")
    return problems


def run_load_and_kill(server, ws_sid, default_activities, ledger, round_no):
    killing = threading.Event()
    writers = [
        Writer(n, round_no, server, ws_sid, default_activities, ledger, killing) for n in range(THREADS)
    ]
    acks_before = ledger.acks
    cut_before = ledger.in_flight_at_kill
    started = time.monotonic()
    for w in writers:
        w.start()
    # Poll until the load ran long enough and produced enough acknowledged writes.
    while True:
        elapsed = time.monotonic() - started
        if elapsed >= MAX_LOAD_SECONDS:
            break
        if elapsed >= LOAD_SECONDS and ledger.acks - acks_before >= MIN_ACKS_PER_ROUND:
            break
        time.sleep(0.02)
    killing.set()
    server.kill()  # os.kill(pid, SIGKILL) while the writers still have requests in flight
    for w in writers:
        w.join(30)
        assert not w.is_alive(), f"{w.name} did not stop after the server was killed"
    return ledger.acks - acks_before, ledger.in_flight_at_kill - cut_before


def test_acknowledged_writes_survive_sigkill(durable_server):
    server = durable_server
    setup_client = server.client()
    workspace = setup_client.taskrouter.v1.workspaces.create(friendly_name=unique_name("durable"))
    ws = setup_client.taskrouter.v1.workspaces(workspace.sid)
    default_activities = [a.sid for a in ws.activities.list()]
    ledger = Ledger()
    report = []
    for round_no in range(1, ROUNDS + 1):
        acked, cut = run_load_and_kill(server, workspace.sid, default_activities, ledger, round_no)
        assert acked > 0, "no write was acknowledged before the kill\n" + server.log_tail()
        server.start()  # same data dir
        problems = verify_ledger(server, workspace.sid, ledger)
        report.append(f"round {round_no}: {acked} acks, {cut} requests cut by the kill")
        assert not problems, (
            f"after SIGKILL round {round_no}:\n  " + "\n  ".join(problems[:25]) + "\n" + server.log_tail()
        )
    assert not ledger.problems, "errors while the server was healthy:\n  " + "\n  ".join(ledger.problems[:25])
    print("\n".join(report))


def test_quickstart_survives_sigkill(durable_server):
    server = durable_server
    tr = server.client().taskrouter.v1
    qs = build_quickstart(tr)
    # a few acknowledged updates on top of the creates
    qs.ws.workers(qs.alice.sid).worker_channels("voice").update(capacity=3)
    qs.ws.workers(qs.bob.sid).update(
        activity_sid={a.friendly_name: a.sid for a in qs.ws.activities.list()}["Available"]
    )
    qs.ws.workflows(qs.workflow.sid).update(assignment_callback_url="https://example.com/assignment_callback")
    before = snapshot_workspace(tr, qs.workspace.sid, server.base_url)

    server.kill()
    server.start()

    tr = server.client().taskrouter.v1
    after = snapshot_workspace(tr, qs.workspace.sid, server.base_url)
    for section in before:
        assert after[section] == before[section], f"{section} changed across SIGKILL/restart"
    assert qs.workspace.sid in {w.sid for w in tr.workspaces.list()}


def test_deletes_survive_sigkill(durable_server):
    server = durable_server
    tr = server.client().taskrouter.v1
    keep = build_quickstart(tr)
    doomed = tr.workspaces.create(friendly_name=unique_name("doomed"))
    tr.workspaces(doomed.sid).delete()
    keep.ws.workers(keep.bob.sid).delete()

    server.kill()
    server.start()

    tr = server.client().taskrouter.v1
    assert doomed.sid not in {w.sid for w in tr.workspaces.list()}
    assert [w.friendly_name for w in tr.workspaces(keep.workspace.sid).workers.list()] == ["Alice"]


def test_data_survives_graceful_restart(durable_server):
    server = durable_server
    tr = server.client().taskrouter.v1
    qs = build_quickstart(tr)
    before = snapshot_workspace(tr, qs.workspace.sid, server.base_url)
    server.restart()  # SIGTERM + start
    after = snapshot_workspace(server.client().taskrouter.v1, qs.workspace.sid, server.base_url)
    assert after == before


def test_subaccounts_survive_sigkill(durable_server):
    server = durable_server
    account = server.client().api.v2010.accounts.create(friendly_name="durable sub")
    sub = make_client(server.base_url, account.sid, account.auth_token)
    theirs = sub.taskrouter.v1.workspaces.create(friendly_name=unique_name("sub"))

    server.kill()
    server.start()

    sub = make_client(server.base_url, account.sid, account.auth_token)
    assert [w.sid for w in sub.taskrouter.v1.workspaces.list()] == [theirs.sid]
    assert theirs.sid not in {w.sid for w in server.client().taskrouter.v1.workspaces.list()}


def test_new_sids_after_restart_do_not_collide(durable_server):
    server = durable_server
    tr = server.client().taskrouter.v1
    workspace = tr.workspaces.create(friendly_name=unique_name("sids"))
    ws = tr.workspaces(workspace.sid)
    seen = {w.sid for w in (ws.workers.create(friendly_name=f"before {i}") for i in range(5))}
    server.kill()
    server.start()
    ws = server.client().taskrouter.v1.workspaces(workspace.sid)
    after = {ws.workers.create(friendly_name=f"after {i}").sid for i in range(5)}
    assert not seen & after
    assert {w.sid for w in ws.workers.list()} == seen | after
