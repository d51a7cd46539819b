"""Statistics (taskrouter-semantics.md §9, taskrouter-api.md "### Statistics" and §8).

Every Statistics resource through the helper library's own classes:

* real-time: ``ws.real_time_statistics()``, ``ws.task_queues(q).real_time_statistics()``,
  ``ws.task_queues.bulk_real_time_statistics.create(...)``, ``ws.workflows(f).real_time_statistics()``,
  ``ws.workers.real_time_statistics()``;
* cumulative: ``ws.cumulative_statistics()``, ``ws.task_queues(q).cumulative_statistics()``,
  ``ws.workflows(f).cumulative_statistics()``, ``ws.workers.cumulative_statistics()``,
  ``ws.workers(k).statistics()``;
* combined ``{cumulative, realtime}``: ``ws.statistics()``, ``ws.task_queues(q).statistics()``,
  ``ws.task_queues.statistics.list()``, ``ws.workflows(f).statistics()``, ``ws.workers.statistics()``.

One scripted scenario (the module fixture ``sc``, ~9 s of real time) runs tasks and workers
through every outcome on a fixed schedule; every figure the tests expect is a literal worked out
by hand from that schedule (see ``run_scenario``'s timeline). Durations are whole seconds
rounded down, so each scheduled moment sits a few tenths of a second past a whole second
relative to what it is measured from, and the schedule checks it is never late enough to cross one.

Activity durations also count each worker's activity period still going on, up to EndDate
(or now), so every figure with ``activity_durations`` is fetched with ``end_date=sc.end``: a
whole second of the wall clock (the helper library sends EndDate in whole seconds) that the
scenario places ~8.92 s after t0 by starting just after the wall clock passes a whole second.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import TaskyardServer
from helpers import (
    activities_by_name,
    build_routing,
    expect_error,
    expect_rest_exception,
    missing_sid,
    routing_config,
    unique_name,
    wait_reservations,
    wait_task_status,
    wait_until,
)

SPLIT = "3,30"

# ---------------------------------------------------------------------------
# Expected-value builders
# ---------------------------------------------------------------------------


def d(avg, mn, mx, total):
    """A ``{avg, min, max, total}`` duration object (whole seconds)."""
    return {"avg": avg, "min": mn, "max": mx, "total": total}


ZERO_D = d(0, 0, 0, 0)


def res(created=0, accepted=0, rejected=0, timed_out=0, canceled=0, rescinded=0):
    return {
        "reservations_created": created,
        "reservations_accepted": accepted,
        "reservations_rejected": rejected,
        "reservations_timed_out": timed_out,
        "reservations_canceled": canceled,
        "reservations_rescinded": rescinded,
    }


def split(t3, t30):
    """``split_by_wait_time`` for thresholds 3 and 30; each argument is
    ``((accepted_below, canceled_below), (accepted_above, canceled_above))``. A wait of at
    most the threshold is below, a longer one above (exact waits, not whole seconds)."""

    def one(x):
        (ab, cb), (aa, ca) = x
        return {
            "below": {"reservations_accepted": ab, "tasks_canceled": cb},
            "above": {"reservations_accepted": aa, "tasks_canceled": ca},
        }

    return {"3": one(t3), "30": one(t30)}


ZERO_SPLIT = split(((0, 0), (0, 0)), ((0, 0), (0, 0)))


def pick(source, keys):
    """The ``keys`` of a helper-library instance (attributes) or of a dict (combined
    ``cumulative``/``realtime`` objects); a missing key shows as ``'<missing>'``."""
    if isinstance(source, dict):
        return {k: source.get(k, "<missing>") for k in keys}
    return {k: getattr(source, k, "<missing>") for k in keys}


def assert_figures(source, expected, what=""):
    got = pick(source, expected.keys())
    diff = {k: (got[k], v) for k, v in expected.items() if got[k] != v}
    assert not diff, f"{what}: mismatching fields {{field: (got, expected)}}: {diff}"


def activity_list(sc, counts):
    """``activity_statistics`` in activity creation order: ``counts`` = (Offline, Available, Unavailable)."""
    return [
        {"sid": sid, "friendly_name": name, "workers": n}
        for (name, sid), n in zip(sc.activity_order, counts)
    ]


def durations_list(sc, offline, available, unavailable):
    """``activity_durations`` in activity creation order."""
    return [
        {"sid": sid, "friendly_name": name, **dur}
        for (name, sid), dur in zip(sc.activity_order, (offline, available, unavailable))
    ]


def status(pending=0, reserved=0, assigned=0, wrapping=0):
    return {"pending": pending, "reserved": reserved, "assigned": assigned, "wrapping": wrapping}


# ---------------------------------------------------------------------------
# The scenario
# ---------------------------------------------------------------------------


class Schedule:
    """Runs steps at fixed offsets from t0 (monotonic clock) and refuses to go on when a
    step starts so late that a whole-second figure could change (the expected literals
    assume every step starts less than 0.2 s after its slot)."""

    MAX_LATE = 0.2

    def __init__(self):
        self.t0 = time.monotonic()
        self.wall0 = time.time()  # the wall clock at t0 (to well under a millisecond)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def at(self, offset: float) -> None:
        delay = self.t0 + offset - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        late = self.now() - offset
        assert late < self.MAX_LATE, (
            f"step scheduled at t0+{offset}s started {late:.3f}s late; the machine is too slow for "
            "the hand-computed whole-second figures of this scenario"
        )

    @staticmethod
    def align_wall_clock(phase: float) -> None:
        """Sleep until the wall clock is next ``phase`` s past a whole second."""
        time.sleep((phase - time.time()) % 1.0)


# The workers are created when the wall clock is WALL_PHASE s past a whole second, and t0
# (just after) must come less than ALIGN_LATE s after that; ``sc.end``, the EndDate of every
# activity-duration figure, is the whole second 9 s after the one before t0: t0 + 8.92 s
# (8.875 … 8.925 s).
WALL_PHASE = 0.075
ALIGN_LATE = 0.05


def run_scenario(ws) -> SimpleNamespace:
    """Build the scenario in ``ws`` and return what the tests need.

    Set-up: activities Offline / Available / Unavailable (the defaults, created in that
    order); queues Sales (`skills HAS "sales"`), Support (`skills HAS "support"`), VIP
    (`skills HAS "vip"`: nobody); workflow "Stats flow" with TaskReservationTimeout 2 s and
    filters  sales → Sales;  support → Support;  escalate → [VIP, timeout 1] then Sales;
    vip → [VIP, timeout 1] (then falls off the workflow).
    Workers Alice (sales, Available), Bob (support, Available), Carol (sales+support, Offline;
    her voice channel made unavailable). Every worker channel has capacity 1.

    Timeline (seconds after t0 = just after Carol's creation; Alice and Bob were created a few
    ms before t0; the three are created just after the wall clock is WALL_PHASE s past a whole
    second, so t0 is 0.075 … 0.125 s past one):

    0.00  T1 sales/voice/p5 → Sales, R1 Alice.   T2 support/default/p1 → Support, R2 Bob.
          T6 vip/default/p0 → VIP (nobody).
    1.00  (timer) T6 falls off the workflow: workflow.timeout + task.canceled after 1.0 s.
    1.25  Carol → Unavailable (Offline 1.25 s).  accept R1 (T1 waited 1.25 s).
          reject R2 (T2 back to pending; Bob rejected it, Carol is not available: it waits).
          T3 sales/voice/p5 → Sales, pending (Alice's voice capacity is taken by T1).
          T4 support/default/p1 → Support, R4 Bob.
    ~3.27 (timer) R4 times out; Bob → Offline (the workspace's timeout activity): Bob was
          Available ~3.28 s.
    3.60  Carol → Offline (Unavailable 2.35 s).  Workflow TaskReservationTimeout → 600 s.
          complete T1 → Alice's voice is free → R3 Alice for T3.  cancel T3 (R3 canceled;
          T3 waited 2.35 s).  T5 escalate/voice/p3 → VIP.
    ~4.63 (timer) T5's VIP step times out: task-queue.moved VIP → Sales, R5 Alice.
    5.00  Alice → Unavailable (Available ~5.02 s).
    5.50  Bob → Unavailable (Offline 2.23 s).
    6.20  cancel T2 (waited ~6.19 s).
    6.45  Alice → Available (Unavailable 1.45 s).
    7.80  accept R5 (T5 waited 4.17 s since creation, 3.17 s since entering Sales).
          T7 sales/default/p3 → R7 Alice (pending; 600 s timeout).
          T8 sales/chat/p4 → R8 Alice, accepted at once (waited ~0.02 s), then wrapping.

    ~8.92 ``sc.end`` (a whole second of the wall clock; the fixture waits until it has passed).

    End state: T4 pending (Support, p1, default), T5 assigned (Sales, p3, voice), T7 reserved
    (Sales, p3, default), T8 wrapping (Sales, p4, chat); T1 completed; T2, T3, T6 canceled.
    Alice Available (since 6.45), Bob Unavailable (since 5.50), Carol Offline (since 3.60).
    """
    acts = activities_by_name(ws)
    off, avail, unavail = acts["Offline"].sid, acts["Available"].sid, acts["Unavailable"].sid
    channels = {c.unique_name: c.sid for c in ws.task_channels.list()}
    sales = ws.task_queues.create(friendly_name="Sales", target_workers='skills HAS "sales"')
    support = ws.task_queues.create(friendly_name="Support", target_workers='skills HAS "support"')
    vip = ws.task_queues.create(friendly_name="VIP", target_workers='skills HAS "vip"')
    config = {
        "task_routing": {
            "filters": [
                {"filter_friendly_name": "sales", "expression": 'type == "sales"',
                 "targets": [{"queue": sales.sid}]},
                {"filter_friendly_name": "support", "expression": 'type == "support"',
                 "targets": [{"queue": support.sid}]},
                {"filter_friendly_name": "escalate", "expression": 'type == "escalate"',
                 "targets": [{"queue": vip.sid, "timeout": 1}, {"queue": sales.sid}]},
                {"filter_friendly_name": "vip", "expression": 'type == "vip"',
                 "targets": [{"queue": vip.sid, "timeout": 1}]},
            ]
        }
    }
    flow = ws.workflows.create(friendly_name="Stats flow", configuration=json.dumps(config),
                               task_reservation_timeout=2)

    def worker(name, skills, activity):
        return ws.workers.create(friendly_name=name, attributes=json.dumps({"skills": skills}),
                                 activity_sid=activity)

    def task(kind, channel, priority):
        return ws.tasks.create(workflow_sid=flow.sid, attributes=json.dumps({"type": kind}),
                               task_channel=channel, priority=priority)

    def reservation(t):
        (r,) = wait_reservations(ws, t.sid, 1, "pending")
        return r

    def set_activity(w, activity):
        ws.workers(w.sid).update(activity_sid=activity)

    Schedule.align_wall_clock(WALL_PHASE)
    alice = worker("Alice", ["sales"], avail)
    bob = worker("Bob", ["support"], avail)
    carol = worker("Carol", ["sales", "support"], off)
    s = Schedule()
    wall0 = datetime.fromtimestamp(s.wall0, timezone.utc)
    phase = s.wall0 % 1.0
    assert WALL_PHASE <= phase < WALL_PHASE + ALIGN_LATE, (
        f"t0 came {phase:.3f}s past a whole second of the wall clock; the activity-duration figures assume "
        f"{WALL_PHASE} … {WALL_PHASE + ALIGN_LATE}s (creating the workers was too slow)")
    end = wall0.replace(microsecond=0) + timedelta(seconds=9)
    ws.workers(carol.sid).worker_channels("voice").update(available=False)

    # 0.00
    t1 = task("sales", "voice", 5)
    t2 = task("support", "default", 1)
    t6 = task("vip", "default", 0)
    r1, r2 = reservation(t1), reservation(t2)

    # 1.25
    s.at(1.25)
    set_activity(carol, unavail)
    ws.tasks(t1.sid).reservations(r1.sid).update(reservation_status="accepted")
    ws.tasks(t2.sid).reservations(r2.sid).update(reservation_status="rejected")
    t3 = task("sales", "voice", 5)
    t4_before = s.now()
    t4 = task("support", "default", 1)
    t4_after = s.now()
    r4 = reservation(t4)
    wait_task_status(ws, t6.sid, "canceled", timeout=3)
    wait_until(lambda: ws.tasks(t4.sid).reservations(r4.sid).fetch().reservation_status,
               lambda st: st == "timeout", timeout=4, what="R4 to time out")

    # 3.60
    s.at(3.6)
    set_activity(carol, off)
    ws.workflows(flow.sid).update(task_reservation_timeout=600)
    ws.tasks(t1.sid).update(assignment_status="completed", reason="done")
    r3 = reservation(t3)
    ws.tasks(t3.sid).update(assignment_status="canceled", reason="caller hung up")
    t5 = task("escalate", "voice", 3)
    r5 = wait_until(lambda: ws.tasks(t5.sid).reservations.list(reservation_status="pending"),
                    lambda rs: len(rs) == 1, timeout=3, what="R5 after T5's VIP step timed out")[0]

    # 5.00, 5.50, 6.20, 6.45
    s.at(5.0)
    set_activity(alice, unavail)
    s.at(5.5)
    set_activity(bob, unavail)
    s.at(6.2)
    ws.tasks(t2.sid).update(assignment_status="canceled", reason="caller hung up")
    s.at(6.45)
    set_activity(alice, avail)

    # 7.80
    s.at(7.8)
    ws.tasks(t5.sid).reservations(r5.sid).update(reservation_status="accepted")
    t7 = task("sales", "default", 3)
    r7 = reservation(t7)
    t8 = task("sales", "chat", 4)
    r8 = reservation(t8)
    ws.tasks(t8.sid).reservations(r8.sid).update(reservation_status="accepted")
    ws.tasks(t8.sid).update(assignment_status="wrapping")
    assert s.now() < 8.3, f"last step took until t0+{s.now():.2f}s"
    # EndDate may not be in the future (the server would take "now" instead).
    time.sleep(max(0.0, (end - datetime.now(timezone.utc)).total_seconds()) + 0.05)

    return SimpleNamespace(
        ws=ws, workspace_sid=ws._solution["sid"], sales=sales.sid, support=support.sid, vip=vip.sid, flow=flow.sid,
        alice=alice.sid, bob=bob.sid, carol=carol.sid, channels=channels,
        activity_order=[("Offline", off), ("Available", avail), ("Unavailable", unavail)],
        tasks=SimpleNamespace(t1=t1.sid, t2=t2.sid, t3=t3.sid, t4=t4.sid, t5=t5.sid, t6=t6.sid,
                              t7=t7.sid, t8=t8.sid),
        reservations=[r1.sid, r2.sid, r3.sid, r4.sid, r5.sid, r7.sid, r8.sid],
        schedule=s, wall0=wall0, t4_created=(t4_before, t4_after), end=end,
    )


@pytest.fixture(scope="module")
def sc(tr):
    workspace = tr.workspaces.create(friendly_name=unique_name("stats"))
    ws = tr.workspaces(workspace.sid)
    try:
        yield run_scenario(ws)
    finally:
        try:
            ws.delete()
        except Exception:
            pass


def age_bounds(sc, fetch):
    """Run ``fetch`` and return ``(result, lo, hi)``: the bounds of T4's age in whole
    seconds (T4 is the only pending task) from the client's clock around its creation and
    around the fetch."""
    before = sc.schedule.now()
    result = fetch()
    after = sc.schedule.now()
    created_lo, created_hi = sc.t4_created
    return result, math.floor(before - created_hi), math.floor(after - created_lo)


# ---------------------------------------------------------------------------
# Expected cumulative figures (default window: the last 15 minutes, all of the scenario)
# ---------------------------------------------------------------------------

# Waits until accepted: T1 1.25 s, T5 4.17 s, T8 ~0.02 s → 5.44 s: total 5, avg 1.81 → 1,
# min 0, max 4. Waits until canceled: T6 1.0 s, T3 2.35 s, T2 6.19 s → 9.54 s: total 9,
# avg 3.18 → 3, min 1, max 6. Split at 3 s: accepted below T1 (1.25 s), T8 (~0.02 s), above
# T5 (4.17 s, or 3.17 s in Sales: above either way); canceled below T6 (1.0 s), T3 (2.35 s),
# above T2 (6.19 s). At 30 s everything is below. (No wait is within 0.17 s of 3 s or 30 s.)
WAIT_ACCEPTED_ALL = d(1, 0, 4, 5)
WAIT_CANCELED_ALL = d(3, 1, 6, 9)
SPLIT_ALL = split(((2, 2), (1, 1)), ((3, 3), (0, 0)))

EXP_WORKSPACE = {
    # R1 R2 R3 R4 R5 R7 R8 created; R1 R5 R8 accepted; R2 rejected; R4 timed out; R3 canceled.
    **res(created=7, accepted=3, rejected=1, timed_out=1, canceled=1),
    "tasks_created": 8,            # T1..T8
    "tasks_canceled": 3,           # T2, T3, T6
    "tasks_completed": 1,          # T1
    "tasks_deleted": 0,
    "tasks_moved": 1,              # T5: VIP → Sales
    "tasks_timed_out_in_workflow": 1,  # T6
    "avg_task_acceptance_time": 1,
    "wait_duration_until_accepted": WAIT_ACCEPTED_ALL,
    "wait_duration_until_canceled": WAIT_CANCELED_ALL,
    "split_by_wait_time": SPLIT_ALL,
}

EXP_WORKSPACE_VOICE = {
    # voice: T1, T3, T5; R1, R3, R5.
    **res(created=3, accepted=2, canceled=1),
    "tasks_created": 3,
    "tasks_canceled": 1,           # T3
    "tasks_completed": 1,          # T1
    "tasks_deleted": 0,
    "tasks_moved": 1,              # T5
    "tasks_timed_out_in_workflow": 0,
    # T1 1.25 s + T5 4.17 s = 5.42 s: total 5, avg 2.71 → 2, min 1, max 4.
    "avg_task_acceptance_time": 2,
    "wait_duration_until_accepted": d(2, 1, 4, 5),
    "wait_duration_until_canceled": d(2, 2, 2, 2),  # T3 2.35 s
    "split_by_wait_time": split(((1, 1), (1, 0)), ((2, 1), (0, 0))),
}

EXP_WORKSPACE_DEFAULT = {
    # default channel: T2, T4, T6, T7; R2 (rejected), R4 (timed out), R7 (pending).
    **res(created=3, rejected=1, timed_out=1),
    "tasks_created": 4,
    "tasks_canceled": 2,           # T2, T6
    "tasks_completed": 0,
    "tasks_deleted": 0,
    "tasks_moved": 0,
    "tasks_timed_out_in_workflow": 1,  # T6
    "avg_task_acceptance_time": 0,
    "wait_duration_until_accepted": ZERO_D,
    # T6 1.0 s + T2 6.19 s = 7.19 s: total 7, avg 3.6 → 3, min 1, max 6.
    "wait_duration_until_canceled": d(3, 1, 6, 7),
    "split_by_wait_time": split(((0, 1), (0, 1)), ((0, 2), (0, 0))),
}


def zero_cumulative(tasks_fields):
    out = {**res(), "avg_task_acceptance_time": 0, "wait_duration_until_accepted": ZERO_D,
           "wait_duration_until_canceled": ZERO_D, "split_by_wait_time": ZERO_SPLIT}
    out.update({k: 0 for k in tasks_fields})
    return out


WORKSPACE_TASK_FIELDS = ["tasks_created", "tasks_canceled", "tasks_completed", "tasks_deleted", "tasks_moved",
                         "tasks_timed_out_in_workflow"]
EXP_WORKSPACE_ZERO = zero_cumulative(WORKSPACE_TASK_FIELDS)

EXP_SALES = {
    # Sales saw T1, T3, T5 (after its move), T7, T8 and R1, R3, R5, R7, R8.
    **res(created=5, accepted=3, canceled=1),
    "tasks_entered": 5,
    "tasks_canceled": 1,           # T3
    "tasks_completed": 1,          # T1
    "tasks_deleted": 0,
    "tasks_moved": 0,              # moves count for the queue left (VIP)
    "avg_task_acceptance_time": 1,
    "wait_duration_until_accepted": WAIT_ACCEPTED_ALL,
    # In Sales until accepted: T1 1.25 s, T5 3.17 s (entered at ~4.63), T8 ~0.02 s → 4.44 s:
    # total 4, avg 1.48 → 1, min 0, max 3.
    "wait_duration_in_queue_until_accepted": d(1, 0, 3, 4),
    "wait_duration_until_canceled": d(2, 2, 2, 2),
    "split_by_wait_time": split(((2, 1), (1, 0)), ((3, 1), (0, 0))),
}

EXP_SALES_VOICE = {
    **res(created=3, accepted=2, canceled=1),  # R1, R3, R5
    "tasks_entered": 3,            # T1, T3, T5
    "tasks_canceled": 1,
    "tasks_completed": 1,
    "tasks_moved": 0,
    "avg_task_acceptance_time": 2,
    "wait_duration_until_accepted": d(2, 1, 4, 5),
    # T1 1.25 s + T5 3.17 s = 4.42 s: total 4, avg 2.21 → 2, min 1, max 3.
    "wait_duration_in_queue_until_accepted": d(2, 1, 3, 4),
    "wait_duration_until_canceled": d(2, 2, 2, 2),
    "split_by_wait_time": split(((1, 1), (1, 0)), ((2, 1), (0, 0))),
}

EXP_SUPPORT = {
    **res(created=2, rejected=1, timed_out=1),  # R2 rejected, R4 timed out
    "tasks_entered": 2,            # T2, T4 (a rejection does not re-enter the queue)
    "tasks_canceled": 1,           # T2 after 6.19 s
    "tasks_completed": 0,
    "tasks_deleted": 0,
    "tasks_moved": 0,
    "avg_task_acceptance_time": 0,
    "wait_duration_until_accepted": ZERO_D,
    "wait_duration_in_queue_until_accepted": ZERO_D,
    "wait_duration_until_canceled": d(6, 6, 6, 6),
    "split_by_wait_time": split(((0, 0), (0, 1)), ((0, 1), (0, 0))),
}

EXP_VIP = {
    **res(),
    "tasks_entered": 2,            # T6, T5
    "tasks_canceled": 1,           # T6 fell off the workflow while in VIP, after 1.0 s
    "tasks_completed": 0,
    "tasks_deleted": 0,
    "tasks_moved": 1,              # T5 left for Sales
    "avg_task_acceptance_time": 0,
    "wait_duration_until_accepted": ZERO_D,
    "wait_duration_in_queue_until_accepted": ZERO_D,
    "wait_duration_until_canceled": d(1, 1, 1, 1),
    "split_by_wait_time": split(((0, 1), (0, 0)), ((0, 1), (0, 0))),
}

EXP_WORKFLOW = {
    **res(created=7, accepted=3, rejected=1, timed_out=1, canceled=1),
    "tasks_entered": 8,            # every task came through the workflow
    "tasks_canceled": 3,
    "tasks_completed": 1,
    "tasks_deleted": 0,
    "tasks_moved": 1,
    "tasks_timed_out_in_workflow": 1,
    "avg_task_acceptance_time": 1,
    "wait_duration_until_accepted": WAIT_ACCEPTED_ALL,
    "wait_duration_until_canceled": WAIT_CANCELED_ALL,
    "split_by_wait_time": SPLIT_ALL,
}


# Activity durations, all fetched with EndDate = sc.end = t0 + 8.92 s (8.875 … 8.925 s).
# Periods that ended:
#   Alice: Available t0-0.02 → 5.00 (5.02 s → 5); Unavailable 5.00 → 6.45 (1.45 s → 1).
#   Bob:   Available t0-0.01 → ~3.27 (R4 timeout; ~3.28 s → 3); Offline ~3.27 → 5.50 (2.23 s → 2).
#   Carol: Offline t0 → 1.25 (1.25 s → 1); Unavailable 1.25 → 3.60 (2.35 s → 2).
# Periods still open, up to EndDate (one more period each; a late t0 or a late step only
# shortens them, by a few hundredths of a second):
#   Alice: Available since 6.45 (2.47 s → 2).
#   Bob:   Unavailable since 5.50 (3.42 s → 3).
#   Carol: Offline since 3.60 (5.32 s → 5).
# (One EndDate serves every worker, so Alice's return is at 6.45 rather than 6.10: then every
# sum below is at least 0.2 s from a whole second for EndDate t0 + 8.92 s.)
def exp_durations_all(sc):
    return durations_list(
        sc,
        d(2, 1, 5, 8),   # Offline: Carol 1.25 + Bob 2.23 + Carol 5.32 = 8.80 s: avg 2.93 → 2, min 1, max 5
        d(3, 2, 5, 10),  # Available: Bob 3.28 + Alice 5.02 + Alice 2.47 = 10.77 s: avg 3.59 → 3, min 2, max 5
        d(2, 1, 3, 7),   # Unavailable: Carol 2.35 + Alice 1.45 + Bob 3.42 = 7.22 s: avg 2.41 → 2, min 1, max 3
    )


EXP_RES_ALICE = res(created=5, accepted=3, canceled=1)  # R1 R3 R5 R7 R8; R1 R5 R8; R3
EXP_RES_BOB = res(created=2, rejected=1, timed_out=1)   # R2, R4
EXP_RES_ALL = res(created=7, accepted=3, rejected=1, timed_out=1, canceled=1)
EXP_RES_VOICE = res(created=3, accepted=2, canceled=1)   # R1, R3, R5 (all Alice's)


def exp_worker_durations(sc, who):
    """One worker's ``activity_durations`` with EndDate = sc.end."""
    return {
        # Available 5.02 + 2.47 = 7.49 s: avg 3.74 → 3, min 2, max 5; Unavailable 1.45 s.
        "alice": durations_list(sc, ZERO_D, d(3, 2, 5, 7), d(1, 1, 1, 1)),
        # Offline 2.23 s; Available 3.28 s; Unavailable 3.42 s (open).
        "bob": durations_list(sc, d(2, 2, 2, 2), d(3, 3, 3, 3), d(3, 3, 3, 3)),
        # Offline 1.25 + 5.32 = 6.57 s: avg 3.28 → 3, min 1, max 5; Unavailable 2.35 s.
        "carol": durations_list(sc, d(3, 1, 5, 6), ZERO_D, d(2, 2, 2, 2)),
    }[who]


# ---------------------------------------------------------------------------
# Expected real-time figures (end state)
# ---------------------------------------------------------------------------


def exp_rt_workspace(sc):
    return {
        "total_tasks": 4,  # T4 pending, T7 reserved, T5 assigned, T8 wrapping
        "tasks_by_status": status(pending=1, reserved=1, assigned=1, wrapping=1),
        "tasks_by_priority": {"1": 1, "3": 2, "4": 1},  # T4 p1; T5, T7 p3; T8 p4
        "longest_task_waiting_sid": sc.tasks.t4,
        "total_workers": 3,
        "activity_statistics": activity_list(sc, (1, 1, 1)),  # Carol, Alice, Bob
    }


def exp_rt_sales(sc):
    return {
        "task_queue_sid": sc.sales,
        "total_tasks": 3,  # T5 assigned, T7 reserved, T8 wrapping
        "tasks_by_status": status(reserved=1, assigned=1, wrapping=1),
        "tasks_by_priority": {"3": 2, "4": 1},
        "longest_task_waiting_sid": None,
        "longest_task_waiting_age": 0,
        "longest_relative_task_sid_in_queue": None,
        "longest_relative_task_age_in_queue": 0,
        "total_eligible_workers": 2,   # Alice, Carol
        "total_available_workers": 1,  # Alice
        "activity_statistics": activity_list(sc, (1, 1, 0)),
    }


def exp_rt_sales_voice(sc):
    return {
        "task_queue_sid": sc.sales,
        "total_tasks": 1,  # T5
        "tasks_by_status": status(assigned=1),
        "tasks_by_priority": {"3": 1},
        "longest_task_waiting_sid": None,
        "longest_task_waiting_age": 0,
        "total_eligible_workers": 1,   # Alice (Carol's voice channel is unavailable)
        "total_available_workers": 1,
        "activity_statistics": activity_list(sc, (0, 1, 0)),
    }


def exp_rt_support(sc):
    return {
        "task_queue_sid": sc.support,
        "total_tasks": 1,
        "tasks_by_status": status(pending=1),
        "tasks_by_priority": {"1": 1},
        "longest_task_waiting_sid": sc.tasks.t4,
        "longest_relative_task_sid_in_queue": sc.tasks.t4,
        "total_eligible_workers": 2,   # Bob, Carol
        "total_available_workers": 0,
        "activity_statistics": activity_list(sc, (1, 0, 1)),  # Carol Offline, Bob Unavailable
    }


def exp_rt_vip(sc):
    return {
        "task_queue_sid": sc.vip,
        "total_tasks": 0,
        "tasks_by_status": status(),
        "tasks_by_priority": {},
        "longest_task_waiting_sid": None,
        "longest_task_waiting_age": 0,
        "total_eligible_workers": 0,
        "total_available_workers": 0,
        "activity_statistics": activity_list(sc, (0, 0, 0)),
    }


# ===========================================================================
# 1. The scenario: cumulative figures
# ===========================================================================


def test_workspace_cumulative(sc):
    ws = sc.ws
    before = datetime.now(timezone.utc).replace(microsecond=0)
    stats = ws.cumulative_statistics().fetch(split_by_wait_time=SPLIT)
    assert_figures(stats, EXP_WORKSPACE, "workspace cumulative")
    assert stats.workspace_sid == sc.workspace_sid
    # The default window is the last 15 minutes.
    assert before - timedelta(seconds=2) <= stats.end_time <= datetime.now(timezone.utc) + timedelta(seconds=1)
    assert stats.end_time - stats.start_time == timedelta(minutes=15)
    # Without SplitByWaitTime there is nothing to split.
    assert not ws.cumulative_statistics().fetch().split_by_wait_time


def test_workspace_cumulative_by_task_channel(sc):
    ws = sc.ws
    by_name = ws.cumulative_statistics().fetch(task_channel="voice", split_by_wait_time=SPLIT)
    assert_figures(by_name, EXP_WORKSPACE_VOICE, "workspace cumulative, TaskChannel=voice")
    by_sid = ws.cumulative_statistics().fetch(task_channel=sc.channels["voice"], split_by_wait_time=SPLIT)
    assert_figures(by_sid, EXP_WORKSPACE_VOICE, "workspace cumulative, TaskChannel=<voice SID>")
    default = ws.cumulative_statistics().fetch(task_channel="default", split_by_wait_time=SPLIT)
    assert_figures(default, EXP_WORKSPACE_DEFAULT, "workspace cumulative, TaskChannel=default")
    # video: no traffic at all.
    video = ws.cumulative_statistics().fetch(task_channel="video", split_by_wait_time=SPLIT)
    assert_figures(video, EXP_WORKSPACE_ZERO, "workspace cumulative, TaskChannel=video")


def test_task_queue_cumulative(sc):
    ws = sc.ws
    for sid, expected, name in ((sc.sales, EXP_SALES, "Sales"), (sc.support, EXP_SUPPORT, "Support"),
                                (sc.vip, EXP_VIP, "VIP")):
        stats = ws.task_queues(sid).cumulative_statistics().fetch(split_by_wait_time=SPLIT)
        assert stats.task_queue_sid == sid
        assert_figures(stats, expected, f"{name} cumulative")
    voice = ws.task_queues(sc.sales).cumulative_statistics().fetch(task_channel="voice", split_by_wait_time=SPLIT)
    assert_figures(voice, EXP_SALES_VOICE, "Sales cumulative, TaskChannel=voice")
    chat = ws.task_queues(sc.support).cumulative_statistics().fetch(task_channel="chat")
    assert_figures(chat, {**res(), "tasks_entered": 0, "tasks_canceled": 0,
                          "wait_duration_until_canceled": ZERO_D}, "Support cumulative, TaskChannel=chat")


def test_workflow_cumulative(sc):
    ws = sc.ws
    stats = ws.workflows(sc.flow).cumulative_statistics().fetch(split_by_wait_time=SPLIT)
    assert stats.workflow_sid == sc.flow
    assert_figures(stats, EXP_WORKFLOW, "workflow cumulative")
    voice = ws.workflows(sc.flow).cumulative_statistics().fetch(task_channel="voice")
    assert_figures(voice, {**EXP_RES_VOICE, "tasks_entered": 3, "tasks_canceled": 1, "tasks_completed": 1,
                           "tasks_moved": 1, "tasks_timed_out_in_workflow": 0,
                           "wait_duration_until_accepted": d(2, 1, 4, 5)}, "workflow cumulative, voice")


def test_workers_cumulative(sc):
    ws = sc.ws
    stats = ws.workers.cumulative_statistics().fetch(end_date=sc.end)
    assert_figures(stats, {**EXP_RES_ALL, "activity_durations": exp_durations_all(sc)}, "workers cumulative")
    assert stats.end_time == sc.end
    # TaskChannel filters the reservations; activity durations have no channel.
    voice = ws.workers.cumulative_statistics().fetch(task_channel="voice", end_date=sc.end)
    assert_figures(voice, {**EXP_RES_VOICE, "activity_durations": exp_durations_all(sc)},
                   "workers cumulative, TaskChannel=voice")


def test_worker_instance_statistics(sc):
    ws = sc.ws
    for who, sid, reservations in (("alice", sc.alice, EXP_RES_ALICE), ("bob", sc.bob, EXP_RES_BOB),
                                   ("carol", sc.carol, res())):
        stats = ws.workers(sid).statistics().fetch(end_date=sc.end)
        assert stats.worker_sid == sid
        assert_figures(stats.cumulative, {**reservations, "activity_durations": exp_worker_durations(sc, who)},
                       f"{who}'s statistics")


def test_worker_instance_statistics_by_task_channel(sc):
    """Twilio: TaskChannel — "Only calculate statistics on this TaskChannel". Alice's voice
    reservations are R1 (accepted), R3 (canceled), R5 (accepted); R7 is default, R8 chat.
    Activity durations have no channel: all of them, whatever TaskChannel says."""
    stats = sc.ws.workers(sc.alice).statistics().fetch(task_channel="voice", end_date=sc.end)
    assert_figures(stats.cumulative, {**EXP_RES_VOICE, "activity_durations": exp_worker_durations(sc, "alice")},
                   "Alice's statistics, TaskChannel=voice")
    chat = sc.ws.workers(sc.alice).statistics().fetch(task_channel="chat").cumulative
    assert_figures(chat, res(created=1, accepted=1), "Alice's statistics, TaskChannel=chat")  # R8
    assert_figures(sc.ws.workers(sc.bob).statistics().fetch(task_channel="voice").cumulative, res(),
                   "Bob's statistics, TaskChannel=voice")  # R2 and R4 were default


def test_split_by_wait_time_is_exact(sc):
    """Twilio: "the number of Tasks canceled and reservations accepted above and below the
    specified thresholds in seconds": a wait of at most the threshold is below, a longer one
    above. Accepted after: T8 ~0.02 s, T1 1.25 s, T5 4.17 s; so at 1 s, one reservation was
    accepted below and two above (T1's 1.25 s is above 1 s, not "1 whole second"); at 0 s
    all three are above (even T8's few hundredths of a second); at 4 s only T5 is above, at
    5 s none."""
    stats = sc.ws.cumulative_statistics().fetch(split_by_wait_time="0,1,4,5")
    got = {t: {side: stats.split_by_wait_time[t][side]["reservations_accepted"] for side in ("below", "above")}
           for t in ("0", "1", "4", "5")}
    assert got == {"0": {"below": 0, "above": 3}, "1": {"below": 1, "above": 2},
                   "4": {"below": 2, "above": 1}, "5": {"below": 3, "above": 0}}


# ===========================================================================
# 1. The scenario: real-time figures
# ===========================================================================


def test_workspace_real_time(sc):
    ws = sc.ws
    stats, lo, hi = age_bounds(sc, lambda: ws.real_time_statistics().fetch())
    assert_figures(stats, exp_rt_workspace(sc), "workspace real-time")
    assert lo <= stats.longest_task_waiting_age <= hi, (stats.longest_task_waiting_age, lo, hi)

    voice = ws.real_time_statistics().fetch(task_channel="voice")
    assert_figures(voice, {
        "total_tasks": 1, "tasks_by_status": status(assigned=1), "tasks_by_priority": {"3": 1},
        "longest_task_waiting_sid": None, "longest_task_waiting_age": 0,
        # Carol cannot take voice tasks: the workers able to are Alice and Bob.
        "total_workers": 2, "activity_statistics": activity_list(sc, (0, 1, 1)),
    }, "workspace real-time, TaskChannel=voice")
    video = ws.real_time_statistics().fetch(task_channel=sc.channels["video"])
    assert_figures(video, {
        "total_tasks": 0, "tasks_by_status": status(), "tasks_by_priority": {},
        "longest_task_waiting_sid": None, "longest_task_waiting_age": 0,
        "total_workers": 3, "activity_statistics": activity_list(sc, (1, 1, 1)),
    }, "workspace real-time, TaskChannel=video")


def test_task_queue_real_time(sc):
    ws = sc.ws
    stats = ws.task_queues(sc.sales).real_time_statistics().fetch()
    assert_figures(stats, exp_rt_sales(sc), "Sales real-time")
    support, lo, hi = age_bounds(sc, lambda: ws.task_queues(sc.support).real_time_statistics().fetch())
    assert_figures(support, exp_rt_support(sc), "Support real-time")
    assert lo <= support.longest_task_waiting_age <= hi, (support.longest_task_waiting_age, lo, hi)
    # T4 entered Support when it was created; its reservation timing out did not move it.
    assert lo <= support.longest_relative_task_age_in_queue <= hi, (support.longest_relative_task_age_in_queue, lo, hi)
    assert_figures(ws.task_queues(sc.vip).real_time_statistics().fetch(), exp_rt_vip(sc), "VIP real-time")
    voice = ws.task_queues(sc.sales).real_time_statistics().fetch(task_channel="voice")
    assert_figures(voice, exp_rt_sales_voice(sc), "Sales real-time, TaskChannel=voice")


def test_task_queue_bulk_real_time(sc):
    ws = sc.ws

    class Body:  # what the generated create() expects: anything with to_dict()
        def __init__(self, doc):
            self.doc = doc

        def to_dict(self):
            return self.doc

    gone = missing_sid("WQ")
    bulk = ws.task_queues.bulk_real_time_statistics.create(
        body=Body({"QueueSids": [sc.support, sc.sales, sc.vip, gone]}))
    assert bulk.task_queue_response_count == 4
    entries = bulk.task_queue_data
    assert [e["task_queue_sid"] for e in entries] == [sc.support, sc.sales, sc.vip, gone]
    keep = ("task_queue_sid", "total_tasks", "tasks_by_status", "tasks_by_priority", "longest_task_waiting_sid",
            "total_eligible_workers", "total_available_workers", "activity_statistics")
    assert_figures(entries[0], {k: v for k, v in exp_rt_support(sc).items() if k in keep}, "bulk: Support")
    assert_figures(entries[1], {k: v for k, v in exp_rt_sales(sc).items() if k in keep}, "bulk: Sales")
    assert_figures(entries[2], {k: v for k, v in exp_rt_vip(sc).items() if k in keep}, "bulk: VIP")
    # A well-formed SID of no queue here: all zeros, every activity listed.
    assert_figures(entries[3], {**{k: v for k, v in exp_rt_vip(sc).items() if k in keep}, "task_queue_sid": gone},
                   "bulk: unknown queue")

    # TaskChannel in the body, the documentation's `queueSids` spelling, a repeated SID.
    voice = ws.task_queues.bulk_real_time_statistics.create(
        body=Body({"queueSids": [sc.sales, sc.sales], "TaskChannel": "voice"}))
    assert voice.task_queue_response_count == 1
    assert_figures(voice.task_queue_data[0], {k: v for k, v in exp_rt_sales_voice(sc).items() if k in keep},
                   "bulk: Sales, TaskChannel=voice")

    with expect_rest_exception(400, 20001):
        ws.task_queues.bulk_real_time_statistics.create(body=Body({"QueueSids": []}))
    with expect_rest_exception(400, 20001):
        ws.task_queues.bulk_real_time_statistics.create(body=Body({"QueueSids": [missing_sid("WQ") for _ in range(51)]}))
    with expect_rest_exception(400, 20001):
        ws.task_queues.bulk_real_time_statistics.create(body=Body({"QueueSids": ["WQnot-a-sid"]}))
    with expect_rest_exception(400, 20001):
        ws.task_queues.bulk_real_time_statistics.create(body=Body({"QueueSids": [sc.sales], "TaskChannel": "nope"}))


def test_workflow_real_time(sc):
    ws = sc.ws
    stats, lo, hi = age_bounds(sc, lambda: ws.workflows(sc.flow).real_time_statistics().fetch())
    rt = exp_rt_workspace(sc)
    assert_figures(stats, {"workflow_sid": sc.flow, **{k: rt[k] for k in (
        "total_tasks", "tasks_by_status", "tasks_by_priority", "longest_task_waiting_sid")}}, "workflow real-time")
    assert lo <= stats.longest_task_waiting_age <= hi
    chat = ws.workflows(sc.flow).real_time_statistics().fetch(task_channel="chat")
    assert_figures(chat, {"total_tasks": 1, "tasks_by_status": status(wrapping=1), "tasks_by_priority": {"4": 1},
                          "longest_task_waiting_sid": None}, "workflow real-time, TaskChannel=chat")


def test_workers_real_time(sc):
    ws = sc.ws
    stats = ws.workers.real_time_statistics().fetch()
    assert_figures(stats, {"total_workers": 3, "activity_statistics": activity_list(sc, (1, 1, 1))},
                   "workers real-time")
    voice = ws.workers.real_time_statistics().fetch(task_channel="voice")
    assert_figures(voice, {"total_workers": 2, "activity_statistics": activity_list(sc, (0, 1, 1))},
                   "workers real-time, TaskChannel=voice")


# ===========================================================================
# 1. The scenario: the combined …/Statistics resources
# ===========================================================================


def test_workspace_statistics_combined(sc):
    ws = sc.ws
    stats, lo, hi = age_bounds(sc, lambda: ws.statistics().fetch(split_by_wait_time=SPLIT))
    assert_figures(stats.cumulative, EXP_WORKSPACE, "workspace statistics: cumulative")
    rt = {k: v for k, v in exp_rt_workspace(sc).items() if k != "tasks_by_priority"}
    assert_figures(stats.realtime, rt, "workspace statistics: realtime")
    assert lo <= stats.realtime["longest_task_waiting_age"] <= hi
    voice = ws.statistics().fetch(task_channel="voice", split_by_wait_time=SPLIT, minutes=60)
    assert_figures(voice.cumulative, EXP_WORKSPACE_VOICE, "workspace statistics, voice: cumulative")
    assert_figures(voice.realtime, {"total_tasks": 1, "tasks_by_status": status(assigned=1), "total_workers": 2},
                   "workspace statistics, voice: realtime")


def test_task_queue_statistics_combined(sc):
    ws = sc.ws
    sales = ws.task_queues(sc.sales).statistics().fetch(split_by_wait_time=SPLIT)
    assert sales.task_queue_sid == sc.sales
    assert_figures(sales.cumulative, EXP_SALES, "Sales statistics: cumulative")
    assert_figures(sales.realtime, {k: v for k, v in exp_rt_sales(sc).items() if k in (
        "total_tasks", "tasks_by_status", "longest_task_waiting_sid", "total_eligible_workers",
        "total_available_workers", "activity_statistics")}, "Sales statistics: realtime")
    voice = ws.task_queues(sc.sales).statistics().fetch(task_channel=sc.channels["voice"], split_by_wait_time=SPLIT)
    assert_figures(voice.cumulative, EXP_SALES_VOICE, "Sales statistics, voice: cumulative")
    assert_figures(voice.realtime, {"total_tasks": 1, "total_eligible_workers": 1},
                   "Sales statistics, voice: realtime")


def test_task_queues_statistics_list(sc):
    ws = sc.ws
    every = ws.task_queues.statistics.list(split_by_wait_time=SPLIT)
    assert [s.task_queue_sid for s in every] == [sc.sales, sc.support, sc.vip]
    for s, expected in zip(every, (EXP_SALES, EXP_SUPPORT, EXP_VIP)):
        assert_figures(s.cumulative, expected, f"queue list: {s.task_queue_sid}")
    assert [s.realtime["total_tasks"] for s in every] == [3, 1, 0]
    assert [s.realtime["total_eligible_workers"] for s in every] == [2, 2, 0]

    (support,) = ws.task_queues.statistics.list(friendly_name="Support", split_by_wait_time=SPLIT)
    assert support.task_queue_sid == sc.support
    assert_figures(support.cumulative, EXP_SUPPORT, "queue list, FriendlyName=Support")
    assert_figures(support.realtime, {"total_tasks": 1, "tasks_by_status": status(pending=1),
                                      "longest_task_waiting_sid": sc.tasks.t4,
                                      "activity_statistics": activity_list(sc, (1, 0, 1))},
                   "queue list, FriendlyName=Support: realtime")
    assert ws.task_queues.statistics.list(friendly_name="No such queue") == []

    voice = ws.task_queues.statistics.list(task_channel="voice", split_by_wait_time=SPLIT, page_size=1)
    assert [s.task_queue_sid for s in voice] == [sc.sales, sc.support, sc.vip]  # paged one at a time
    assert_figures(voice[0].cumulative, EXP_SALES_VOICE, "queue list, voice: Sales")
    assert_figures(voice[1].cumulative, {**res(), "tasks_entered": 0, "tasks_canceled": 0},
                   "queue list, voice: Support")


def test_workflow_statistics_combined(sc):
    ws = sc.ws
    stats = ws.workflows(sc.flow).statistics().fetch(split_by_wait_time=SPLIT)
    assert stats.workflow_sid == sc.flow
    assert_figures(stats.cumulative, EXP_WORKFLOW, "workflow statistics: cumulative")
    assert_figures(stats.realtime, {"total_tasks": 4, "tasks_by_status": status(1, 1, 1, 1),
                                    "longest_task_waiting_sid": sc.tasks.t4}, "workflow statistics: realtime")


def test_workers_statistics_combined(sc):
    ws = sc.ws
    stats = ws.workers.statistics().fetch(end_date=sc.end)
    assert_figures(stats.cumulative, {**EXP_RES_ALL, "activity_durations": exp_durations_all(sc)},
                   "workers statistics: cumulative")
    assert_figures(stats.realtime, {"total_workers": 3, "activity_statistics": activity_list(sc, (1, 1, 1))},
                   "workers statistics: realtime")
    voice = ws.workers.statistics().fetch(task_channel="voice")
    assert_figures(voice.cumulative, EXP_RES_VOICE, "workers statistics, voice: cumulative")
    assert_figures(voice.realtime, {"total_workers": 2, "activity_statistics": activity_list(sc, (0, 1, 1))},
                   "workers statistics, voice: realtime")


def test_rescinded_and_deleted(ws):
    """The two counters the scenario does not reach: a multi-reservation task accepted by
    one worker rescinds the other's reservation; a pending task deleted counts as deleted
    (not canceled)."""
    routing = build_routing(ws, workers=2, max_reserved_workers=2)
    t1 = ws.tasks.create(workflow_sid=routing.workflow.sid)
    first, second = wait_reservations(ws, t1.sid, 2)
    ws.tasks(t1.sid).reservations(first.sid).update(reservation_status="accepted")
    wait_reservations(ws, t1.sid, 1, "rescinded")
    ws.workers(second.worker_sid).update(activity_sid=routing.acts["Offline"].sid)
    t2 = ws.tasks.create(workflow_sid=routing.workflow.sid, priority=7)  # nobody free: pending
    assert ws.tasks(t2.sid).fetch().assignment_status == "pending"
    ws.tasks(t2.sid).delete()

    common = {**res(created=2, accepted=1, rescinded=1), "tasks_canceled": 0, "tasks_completed": 0,
              "tasks_deleted": 1, "wait_duration_until_canceled": ZERO_D}
    assert_figures(ws.cumulative_statistics().fetch(), {**common, "tasks_created": 2}, "workspace")
    assert_figures(ws.task_queues(routing.queue.sid).cumulative_statistics().fetch(),
                   {**common, "tasks_entered": 2}, "queue")
    assert_figures(ws.workflows(routing.workflow.sid).cumulative_statistics().fetch(),
                   {**common, "tasks_entered": 2}, "workflow")
    assert_figures(ws.workers.cumulative_statistics().fetch(), res(created=2, accepted=1, rescinded=1), "workers")
    assert_figures(ws.workers(first.worker_sid).statistics().fetch().cumulative, res(created=1, accepted=1),
                   "the accepting worker")
    assert_figures(ws.workers(second.worker_sid).statistics().fetch().cumulative, res(created=1, rescinded=1),
                   "the rescinded worker")
    # Deleted tasks are gone from the real-time figures: only T1, assigned.
    assert_figures(ws.real_time_statistics().fetch(), {
        "total_tasks": 1, "tasks_by_status": status(assigned=1), "tasks_by_priority": {"0": 1},
        "longest_task_waiting_sid": None}, "workspace real-time")


# ===========================================================================
# 2. Filters
# ===========================================================================


def test_workers_statistics_filters(sc):
    ws = sc.ws
    # Activity durations with EndDate = sc.end (see exp_durations_all).
    # Support's members: Bob and Carol.
    support = ws.workers.statistics().fetch(task_queue_sid=sc.support, end_date=sc.end)
    assert_figures(support.realtime, {"total_workers": 2, "activity_statistics": activity_list(sc, (1, 0, 1))},
                   "TaskQueueSid=Support: realtime")
    assert_figures(support.cumulative, {**EXP_RES_BOB, "activity_durations": durations_list(
        sc,
        d(2, 1, 5, 8),   # Carol 1.25 s + Bob 2.23 s + Carol 5.32 s (open) = 8.80 s: avg 2.93 → 2
        d(3, 3, 3, 3),   # Bob 3.28 s
        d(2, 2, 3, 5),   # Carol 2.35 s + Bob 3.42 s (open) = 5.77 s: avg 2.88 → 2
    )}, "TaskQueueSid=Support: cumulative")

    # Sales' members: Alice and Carol.
    sales = ws.workers.statistics().fetch(task_queue_name="Sales", end_date=sc.end)
    assert_figures(sales.realtime, {"total_workers": 2, "activity_statistics": activity_list(sc, (1, 1, 0))},
                   "TaskQueueName=Sales: realtime")
    assert_figures(sales.cumulative, {**EXP_RES_ALICE, "activity_durations": durations_list(
        sc,
        d(3, 1, 5, 6),   # Carol 1.25 s + Carol 5.32 s (open) = 6.57 s: avg 3.28 → 3
        d(3, 2, 5, 7),   # Alice 5.02 s + Alice 2.47 s (open) = 7.49 s: avg 3.74 → 3
        d(1, 1, 2, 3),   # Carol 2.35 s + Alice 1.45 s = 3.80 s: avg 1.90 → 1
    )}, "TaskQueueName=Sales: cumulative")

    bob = ws.workers.statistics().fetch(friendly_name="Bob", end_date=sc.end)
    assert_figures(bob.realtime, {"total_workers": 1, "activity_statistics": activity_list(sc, (0, 0, 1))},
                   "FriendlyName=Bob: realtime")
    assert_figures(bob.cumulative, {**EXP_RES_BOB, "activity_durations": exp_worker_durations(sc, "bob")},
                   "FriendlyName=Bob: cumulative")

    carol = ws.workers.statistics().fetch(task_queue_sid=sc.sales, friendly_name="Carol", end_date=sc.end)
    assert_figures(carol.realtime, {"total_workers": 1, "activity_statistics": activity_list(sc, (1, 0, 0))},
                   "TaskQueueSid=Sales&FriendlyName=Carol: realtime")
    assert_figures(carol.cumulative, {**res(), "activity_durations": exp_worker_durations(sc, "carol")},
                   "TaskQueueSid=Sales&FriendlyName=Carol: cumulative")

    # Bob is not in Sales; VIP has no members; no queue has that name.
    for params in ({"task_queue_sid": sc.sales, "friendly_name": "Bob"}, {"task_queue_sid": sc.vip},
                   {"task_queue_name": "No such queue"}):
        nobody = ws.workers.statistics().fetch(**params, end_date=sc.end)
        assert_figures(nobody.realtime, {"total_workers": 0, "activity_statistics": activity_list(sc, (0, 0, 0))},
                       f"{params}: realtime")
        assert_figures(nobody.cumulative, {**res(), "activity_durations": durations_list(sc, ZERO_D, ZERO_D, ZERO_D)},
                       f"{params}: cumulative")


def test_workers_statistics_filters_with_task_channel(sc):
    """Without a worker filter, TaskChannel=voice leaves Carol out of the realtime counts (her
    voice channel is unavailable) and keeps only voice reservations; the same must hold with a
    filter: Sales' members who can take voice = Alice only; Alice's voice reservations = R1 R3 R5."""
    stats = sc.ws.workers.statistics().fetch(task_queue_sid=sc.sales, task_channel="voice")
    assert_figures(stats.realtime, {"total_workers": 1, "activity_statistics": activity_list(sc, (0, 1, 0))},
                   "TaskQueueSid=Sales&TaskChannel=voice: realtime")
    assert_figures(stats.cumulative, EXP_RES_VOICE, "TaskQueueSid=Sales&TaskChannel=voice: cumulative")


def test_windows(sc):
    ws = sc.ws
    # Any window of whole minutes that covers the scenario gives the same figures.
    assert_figures(ws.cumulative_statistics().fetch(minutes=5, split_by_wait_time=SPLIT), EXP_WORKSPACE,
                   "Minutes=5")
    assert_figures(ws.cumulative_statistics().fetch(minutes=43200, split_by_wait_time=SPLIT), EXP_WORKSPACE,
                   "Minutes=43200 (30 days)")
    start = sc.wall0 - timedelta(minutes=3)
    window = ws.cumulative_statistics().fetch(start_date=start, split_by_wait_time=SPLIT)
    assert_figures(window, EXP_WORKSPACE, "StartDate=t0-3min")
    assert window.start_time == start.replace(microsecond=0)

    # A window that ended before the scenario began: zeros everywhere.
    start, end = sc.wall0 - timedelta(hours=3), sc.wall0 - timedelta(minutes=10)
    past = ws.cumulative_statistics().fetch(start_date=start, end_date=end, split_by_wait_time=SPLIT)
    assert_figures(past, EXP_WORKSPACE_ZERO, "a window before the scenario")
    assert (past.start_time, past.end_time) == (start.replace(microsecond=0), end.replace(microsecond=0))
    assert_figures(ws.task_queues(sc.sales).cumulative_statistics().fetch(start_date=start, end_date=end),
                   {**res(), "tasks_entered": 0, "wait_duration_in_queue_until_accepted": ZERO_D},
                   "Sales, a window before the scenario")
    assert_figures(ws.workflows(sc.flow).cumulative_statistics().fetch(start_date=start, end_date=end),
                   {**res(), "tasks_entered": 0, "tasks_timed_out_in_workflow": 0}, "workflow, past window")
    assert_figures(ws.workers.cumulative_statistics().fetch(start_date=start, end_date=end),
                   {**res(), "activity_durations": durations_list(sc, ZERO_D, ZERO_D, ZERO_D)}, "workers, past window")
    assert_figures(ws.workers(sc.bob).statistics().fetch(start_date=start, end_date=end).cumulative,
                   {**res(), "activity_durations": durations_list(sc, ZERO_D, ZERO_D, ZERO_D)}, "Bob, past window")
    combined = ws.statistics().fetch(start_date=start, end_date=end)
    assert_figures(combined.cumulative, {**res(), "tasks_created": 0}, "workspace statistics, past window")
    # The realtime half is "now" whatever the window.
    assert combined.realtime["total_tasks"] == 4
    future = ws.cumulative_statistics().fetch(end_date=datetime.now(timezone.utc) + timedelta(days=1))
    assert_figures(future, {**res(created=7, accepted=3, rejected=1, timed_out=1, canceled=1)}, "EndDate tomorrow")


# ===========================================================================
# 4. Errors
# ===========================================================================


def test_bad_parameters_are_400(sc):
    ws = sc.ws
    old = datetime.now(timezone.utc) - timedelta(days=31)
    cumulative_fetches = {
        "workspace cumulative": lambda **kw: ws.cumulative_statistics().fetch(**kw),
        "workspace statistics": lambda **kw: ws.statistics().fetch(**kw),
        "queue cumulative": lambda **kw: ws.task_queues(sc.sales).cumulative_statistics().fetch(**kw),
        "queue statistics": lambda **kw: ws.task_queues(sc.sales).statistics().fetch(**kw),
        "queue statistics list": lambda **kw: ws.task_queues.statistics.list(**kw),
        "workflow cumulative": lambda **kw: ws.workflows(sc.flow).cumulative_statistics().fetch(**kw),
        "workflow statistics": lambda **kw: ws.workflows(sc.flow).statistics().fetch(**kw),
        "workers cumulative": lambda **kw: ws.workers.cumulative_statistics().fetch(**kw),
        "workers statistics": lambda **kw: ws.workers.statistics().fetch(**kw),
        "worker statistics": lambda **kw: ws.workers(sc.alice).statistics().fetch(**kw),
    }
    bad = [{"minutes": 0}, {"minutes": -5}, {"minutes": 43201}, {"start_date": old},
           {"start_date": datetime.now(timezone.utc) - timedelta(minutes=5),
            "end_date": datetime.now(timezone.utc) - timedelta(minutes=10)},
           {"start_date": "yesterday"}, {"task_channel": "nope"}]
    for name, fetch in cumulative_fetches.items():
        for params in bad:
            with expect_error(400, 20001) as caught:
                fetch(**params)
            assert caught.message, f"{name} {params}: an error message is expected"
    split_fetches = ["workspace cumulative", "workspace statistics", "queue cumulative", "queue statistics",
                     "queue statistics list", "workflow cumulative", "workflow statistics"]
    for name in split_fetches:
        for value in ("abc", "5,x", "-1"):
            with expect_error(400, 20001):
                cumulative_fetches[name](split_by_wait_time=value)
    realtime_fetches = {
        "workspace": lambda: ws.real_time_statistics().fetch(task_channel="nope"),
        "queue": lambda: ws.task_queues(sc.sales).real_time_statistics().fetch(task_channel="nope"),
        "workflow": lambda: ws.workflows(sc.flow).real_time_statistics().fetch(task_channel=missing_sid("TC")),
        "workers": lambda: ws.workers.real_time_statistics().fetch(task_channel="nope"),
    }
    for name, fetch in realtime_fetches.items():
        with expect_rest_exception(400, 20001):
            fetch()
    with expect_rest_exception(400, 20001):
        ws.workers.statistics().fetch(task_queue_sid="WQnot-a-sid")


def test_unknown_resources_are_404(sc):
    ws = sc.ws
    q, f, k = missing_sid("WQ"), missing_sid("WW"), missing_sid("WK")
    calls = [
        lambda: ws.task_queues(q).statistics().fetch(),
        lambda: ws.task_queues(q).real_time_statistics().fetch(),
        lambda: ws.task_queues(q).cumulative_statistics().fetch(),
        lambda: ws.task_queues("WQnot-a-sid").real_time_statistics().fetch(),
        lambda: ws.workflows(f).statistics().fetch(),
        lambda: ws.workflows(f).real_time_statistics().fetch(),
        lambda: ws.workflows(f).cumulative_statistics().fetch(),
        lambda: ws.workers(k).statistics().fetch(),
        # a SID of the wrong kind in the path
        lambda: ws.task_queues(sc.flow).cumulative_statistics().fetch(),
        lambda: ws.workers(sc.sales).statistics().fetch(),
        # a workspace that does not exist
        lambda: ws._version.workspaces(missing_sid("WS")).statistics().fetch(),
        lambda: ws._version.workspaces(missing_sid("WS")).real_time_statistics().fetch(),
        lambda: ws._version.workspaces(missing_sid("WS")).workers.cumulative_statistics().fetch(),
    ]
    for call in calls:
        with expect_rest_exception(404, 20404):
            call()


# ===========================================================================
# 3. Cumulative figures survive restarts
# ===========================================================================


@pytest.fixture
def own_server():
    tmp = Path(tempfile.mkdtemp(prefix="taskyard-stats-"))
    srv = TaskyardServer(tmp / "data", log_path=tmp / "taskyard.log")
    srv.start()
    yield srv
    srv.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def cumulative_snapshot(ws, q, f, k, **window):
    """Every cumulative figure of the workspace, one queue, one workflow, the workers and
    one worker (the ``cumulative`` halves of the combined resources too), with URLs left out
    (the server may come back on another port)."""

    def strip(instance):
        return {key: v for key, v in vars(instance).items() if not key.startswith("_") and key not in ("url", "links")}

    split_window = dict(window, split_by_wait_time="2,10")
    return {
        "workspace": strip(ws.cumulative_statistics().fetch(**split_window)),
        "workspace/statistics": ws.statistics().fetch(**split_window).cumulative,
        "queue": strip(ws.task_queues(q).cumulative_statistics().fetch(**split_window)),
        "queue/statistics": ws.task_queues(q).statistics().fetch(**split_window).cumulative,
        "queues/statistics": [s.cumulative for s in ws.task_queues.statistics.list(**split_window)],
        "workflow": strip(ws.workflows(f).cumulative_statistics().fetch(**split_window)),
        "workflow/statistics": ws.workflows(f).statistics().fetch(**split_window).cumulative,
        "workers": strip(ws.workers.cumulative_statistics().fetch(**window)),
        "workers/statistics": ws.workers.statistics().fetch(**window).cumulative,
        "worker": ws.workers(k).statistics().fetch(**window).cumulative,
    }


@pytest.mark.durability
def test_cumulative_statistics_survive_restart_and_kill(own_server):
    """Graceful restart: every cumulative figure is unchanged. SIGKILL right after an
    acknowledged change: the change is in the figures when the server is back."""
    tr = own_server.client().taskrouter.v1
    workspace = tr.workspaces.create(friendly_name="stats durability")
    ws = tr.workspaces(workspace.sid)
    acts = activities_by_name(ws)
    queue = ws.task_queues.create(friendly_name="Q", target_workers="1==1")
    flow = ws.workflows.create(friendly_name="F", configuration=routing_config(default_queue=queue.sid),
                               task_reservation_timeout=600)
    wall0 = datetime.now(timezone.utc)
    w = ws.workers.create(friendly_name="W", activity_sid=acts["Available"].sid)
    s = Schedule()
    t1 = ws.tasks.create(workflow_sid=flow.sid, task_channel="voice")
    (r1,) = wait_reservations(ws, t1.sid)
    t2 = ws.tasks.create(workflow_sid=flow.sid, task_channel="chat")
    (r2,) = wait_reservations(ws, t2.sid)
    s.at(1.3)
    ws.tasks(t1.sid).reservations(r1.sid).update(reservation_status="accepted")   # waited 1.3 s
    ws.tasks(t2.sid).reservations(r2.sid).update(reservation_status="rejected")   # T2 pending again
    ws.tasks(t2.sid).update(assignment_status="canceled", reason="gone")          # waited 1.3 s
    window = {"start_date": wall0 - timedelta(minutes=2), "end_date": datetime.now(timezone.utc)}

    before = cumulative_snapshot(ws, queue.sid, flow.sid, w.sid, **window)
    assert_figures(before["workspace"], {
        **res(created=2, accepted=1, rejected=1), "tasks_created": 2, "tasks_canceled": 1, "tasks_completed": 0,
        "wait_duration_until_accepted": d(1, 1, 1, 1), "wait_duration_until_canceled": d(1, 1, 1, 1),
        "split_by_wait_time": {"2": {"below": {"reservations_accepted": 1, "tasks_canceled": 1},
                                     "above": {"reservations_accepted": 0, "tasks_canceled": 0}},
                               "10": {"below": {"reservations_accepted": 1, "tasks_canceled": 1},
                                      "above": {"reservations_accepted": 0, "tasks_canceled": 0}}},
    }, "before the restart")
    assert before["worker"]["reservations_created"] == 2

    realtime_before = {k: v for k, v in vars(ws.real_time_statistics().fetch()).items()
                       if not k.startswith("_") and k != "url"}
    assert_figures(realtime_before, {"total_tasks": 1, "tasks_by_status": status(assigned=1)}, "real-time")

    own_server.restart()
    ws = own_server.client().taskrouter.v1.workspaces(workspace.sid)
    after = cumulative_snapshot(ws, queue.sid, flow.sid, w.sid, **window)
    assert after == before
    realtime_after = {k: v for k, v in vars(ws.real_time_statistics().fetch()).items()
                      if not k.startswith("_") and k != "url"}
    assert realtime_after == realtime_before

    # Acknowledged, then SIGKILL at once: the task completion, the worker's Available period
    # and its Offline period since then must be counted after the restart. The worker goes
    # Offline a few tenths of a second past a whole second after its creation (t0), so that
    # whole second is its Available duration, and a few tenths of a second past a whole second
    # of the wall clock, so that its Offline period up to EndDate = the whole second after the
    # next one lasts 1 s and some tenths (EndDate goes in whole seconds). Some x in 0.2 … 0.8
    # keeps both at least 0.25 s from a whole second.
    available_for = math.floor(s.now()) + 1

    def margin(x):
        wall = (s.wall0 + available_for + x) % 1
        return min(x, 1 - x, wall, 1 - wall)

    past = max((i / 100 for i in range(20, 81)), key=margin)
    assert margin(past) >= 0.25
    s.at(available_for + past)
    ws.tasks(t1.sid).update(assignment_status="completed", reason="done")
    ws.workers(w.sid).update(activity_sid=acts["Offline"].sid)
    own_server.kill()
    own_server.start()
    ws = own_server.client().taskrouter.v1.workspaces(workspace.sid)
    end = datetime.fromtimestamp(math.ceil(s.wall0 + available_for + past) + 1, timezone.utc)
    time.sleep(max(0.0, (end - datetime.now(timezone.utc)).total_seconds()) + 0.05)  # EndDate not in the future
    window = {"start_date": window["start_date"], "end_date": end}
    killed = cumulative_snapshot(ws, queue.sid, flow.sid, w.sid, **window)
    for name in ("workspace", "workspace/statistics", "queue", "queue/statistics", "workflow",
                 "workflow/statistics"):
        expected = {k: v for k, v in before[name].items() if k not in ("start_time", "end_time")}
        expected["tasks_completed"] = 1
        assert_figures(killed[name], expected, f"{name} after SIGKILL")
    assert killed["queues/statistics"][0]["tasks_completed"] == 1
    available = durations_list(SimpleNamespace(activity_order=[(a, acts[a].sid) for a in
                                                               ("Offline", "Available", "Unavailable")]),
                               d(1, 1, 1, 1), d(available_for, available_for, available_for, available_for), ZERO_D)
    for name in ("workers", "workers/statistics", "worker"):
        assert_figures(killed[name], {**res(created=2, accepted=1, rejected=1), "activity_durations": available},
                       f"{name} after SIGKILL")

    own_server.restart(hard=True)
    ws = own_server.client().taskrouter.v1.workspaces(workspace.sid)
    assert cumulative_snapshot(ws, queue.sid, flow.sid, w.sid, **window) == killed


# ===========================================================================
# 5. No 100-worker cap
# ===========================================================================


def test_more_than_100_workers(ws):
    acts = activities_by_name(ws)
    queue = ws.task_queues.create(friendly_name="Everyone", target_workers="1==1")
    for i in range(150):
        ws.workers.create(friendly_name=f"Worker {i:03d}",
                          activity_sid=(acts["Available"] if i % 3 == 0 else acts["Offline"]).sid)
    # 50 Available (i = 0, 3, …, 147), 100 Offline.
    counts = [{"sid": acts[n].sid, "friendly_name": n, "workers": c}
              for n, c in (("Offline", 100), ("Available", 50), ("Unavailable", 0))]
    stats = ws.workers.statistics().fetch()
    assert_figures(stats.realtime, {"total_workers": 150, "activity_statistics": counts}, "workers statistics")
    assert_figures(stats.cumulative, res(), "workers statistics: cumulative")
    assert_figures(ws.workers.real_time_statistics().fetch(), {"total_workers": 150, "activity_statistics": counts},
                   "workers real-time")
    assert ws.workers.cumulative_statistics().fetch().reservations_created == 0
    assert_figures(ws.task_queues(queue.sid).real_time_statistics().fetch(),
                   {"total_eligible_workers": 150, "total_available_workers": 50, "activity_statistics": counts},
                   "queue real-time")
    assert ws.workers.statistics().fetch(task_queue_sid=queue.sid).realtime["total_workers"] == 150
    one = ws.workers.statistics().fetch(friendly_name="Worker 147")
    assert one.realtime["total_workers"] == 1
    assert [a["workers"] for a in one.realtime["activity_statistics"]] == [0, 1, 0]
