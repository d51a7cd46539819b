"""Single-tasking workspaces (`multi_task_enabled=false`, taskrouter-semantics.md
§4, §3.1 `rejected`, §11 step 7): one task at a time, and the queue's
reservation/assignment activities move the worker."""

import pytest

from helpers import (
    activities_by_name,
    routing_config,
    wait_reservations,
    wait_until,
)


@pytest.fixture
def single(ws):
    ws.update(multi_task_enabled=False)
    assert ws.fetch().multi_task_enabled is False
    acts = activities_by_name(ws)
    acts["Reserved"] = ws.activities.create(friendly_name="Reserved", available=False)
    acts["Busy"] = ws.activities.create(friendly_name="Busy", available=False)
    return acts


def make_queue(ws, acts, with_activities=True):
    kwargs = {}
    if with_activities:
        kwargs = dict(reservation_activity_sid=acts["Reserved"].sid, assignment_activity_sid=acts["Busy"].sid)
    queue = ws.task_queues.create(friendly_name=f"Single {with_activities}", **kwargs)
    workflow = ws.workflows.create(
        friendly_name=f"Single {with_activities}", configuration=routing_config(default_queue=queue.sid)
    )
    return queue, workflow


def activity_of(ws, worker_sid):
    return ws.workers(worker_sid).fetch().activity_name


def test_reservation_and_assignment_activities(ws, single):
    """Reserve → queue's reservation activity; accept → assignment activity
    ("Alice moves to the queue's assignment activity ("Busy")"); completing
    does not change the activity."""
    _, workflow = make_queue(ws, single)
    worker = ws.workers.create(friendly_name="Solo", activity_sid=single["Available"].sid)
    task = ws.tasks.create(workflow_sid=workflow.sid)
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    assert r.worker_sid == worker.sid
    wait_until(lambda: activity_of(ws, worker.sid), lambda a: a == "Reserved", what="worker in Reserved")
    ws.tasks(task.sid).reservations(r.sid).update(reservation_status="accepted")
    wait_until(lambda: activity_of(ws, worker.sid), lambda a: a == "Busy", what="worker in Busy")
    ws.tasks(task.sid).update(assignment_status="completed", reason="done")
    assert activity_of(ws, worker.sid) == "Busy"


def test_reject_returns_worker_to_previous_activity(ws, single):
    """Rejected without WorkerActivitySid: "back to the activity it had before
    the reservation (single-tasking reservation_activity_sid case)" (§3.1)."""
    _, workflow = make_queue(ws, single)
    worker = ws.workers.create(friendly_name="Picky", activity_sid=single["Available"].sid)
    task = ws.tasks.create(workflow_sid=workflow.sid)
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    wait_until(lambda: activity_of(ws, worker.sid), lambda a: a == "Reserved", what="worker in Reserved")
    ws.workers(worker.sid).reservations(r.sid).update(reservation_status="rejected")
    assert activity_of(ws, worker.sid) == "Available"


def test_reject_with_activity(ws, single):
    _, workflow = make_queue(ws, single)
    worker = ws.workers.create(friendly_name="Leaving", activity_sid=single["Available"].sid)
    task = ws.tasks.create(workflow_sid=workflow.sid)
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    ws.workers(worker.sid).reservations(r.sid).update(
        reservation_status="rejected", worker_activity_sid=single["Offline"].sid
    )
    assert activity_of(ws, worker.sid) == "Offline"


def test_one_task_at_a_time_across_channels(ws, single):
    """Single-tasking: one task at a time, whatever the channel capacities."""
    _, workflow = make_queue(ws, single, with_activities=False)
    worker = ws.workers.create(friendly_name="One thing", activity_sid=single["Available"].sid)
    first = ws.tasks.create(workflow_sid=workflow.sid)
    (r,) = wait_reservations(ws, first.sid, 1, "pending")
    ws.tasks(first.sid).reservations(r.sid).update(reservation_status="accepted")
    assert activity_of(ws, worker.sid) == "Available"  # the queue names no activities
    voice = ws.tasks.create(workflow_sid=workflow.sid, task_channel="voice")
    default = ws.tasks.create(workflow_sid=workflow.sid)
    import time

    time.sleep(0.3)  # a negative check
    assert ws.tasks(voice.sid).fetch().assignment_status == "pending"
    assert ws.tasks(default.sid).fetch().assignment_status == "pending"
    ws.tasks(first.sid).update(assignment_status="completed", reason="done")
    wait_until(
        lambda: [ws.tasks(t).fetch().assignment_status for t in (voice.sid, default.sid)],
        lambda s: sorted(s) == ["pending", "reserved"],
        what="exactly one of the waiting tasks reserved",
    )
