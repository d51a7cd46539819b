"""TaskRouter quickstart, Part 2 (taskrouter-semantics.md §11 steps 5-7 and the
reject flow of step 9), driven through the REST API only: a Spanish task waits
for Alice, is reserved to her when she becomes available, is accepted, wrapped
up and completed; English tasks go to whichever of Alice/Bob has been idle
longest (§6.3); a rejected reservation sends the task to the next worker.

Step 8 (the assignment callback answering ``{"instruction": "accept"}``) needs
an HTTP callback receiver: see test_assignment_callbacks.py."""

import json

import pytest

from helpers import (
    assert_datetime,
    assert_json_equal,
    assert_sid,
    wait_reservations,
    wait_task_status,
    wait_until,
)

SPANISH_TASK = {"selected_language": "es"}
ENGLISH_TASK = {"selected_language": "en"}


@pytest.fixture
def qs(quickstart):
    return quickstart


def make_available(qs, worker):
    return qs.ws.workers(worker.sid).update(activity_sid=qs.acts["Available"].sid)


def default_channel(ws, worker_sid):
    return ws.workers(worker_sid).worker_channels("default").fetch()


def test_step5_spanish_task_waits_in_spanish_queue(qs, base_url):
    """Step 5: Alice Offline, task {"selected_language": "es"} → pending in the
    Spanish queue (Bob is not eligible, nobody is available)."""
    assert qs.ws.workers(qs.alice.sid).fetch().activity_name == "Offline"
    response = qs.ws.tasks.create_with_http_info(
        attributes=json.dumps(SPANISH_TASK), workflow_sid=qs.workflow.sid
    )
    assert response.status_code == 201
    task = response.data
    ws_url = f"{base_url}/v1/Workspaces/{qs.workspace.sid}"
    assert_sid(task.sid, "WT")
    assert task.assignment_status == "pending"
    assert task.workspace_sid == qs.workspace.sid
    assert task.account_sid == qs.workspace.account_sid
    assert task.workflow_sid == qs.workflow.sid
    assert task.workflow_friendly_name == "Incoming Customer Care Requests"
    assert task.task_queue_sid == qs.spanish.sid
    assert task.task_queue_friendly_name == "Customer Care Requests - Spanish"
    assert task.priority == 0
    assert task.timeout == 86400
    assert task.task_channel_unique_name == "default"
    assert task.task_channel_sid == {c.unique_name: c.sid for c in qs.ws.task_channels.list()}["default"]
    assert isinstance(task.age, int) and 0 <= task.age < 60
    assert task.reason is None
    assert_json_equal(task.attributes, SPANISH_TASK)
    for stamp in (task.date_created, task.date_updated, task.task_queue_entered_date, task.virtual_start_time):
        assert_datetime(stamp)
    assert task.virtual_start_time == task.date_created  # "default = date_created"
    assert task.url == f"{ws_url}/Tasks/{task.sid}"
    assert task.links == {
        "task_queue": f"{ws_url}/TaskQueues/{qs.spanish.sid}",
        "workflow": f"{ws_url}/Workflows/{qs.workflow.sid}",
        "workspace": ws_url,
        "reservations": f"{ws_url}/Tasks/{task.sid}/Reservations",
    }
    fetched = qs.ws.tasks(task.sid).fetch()
    assert fetched.assignment_status == "pending"
    assert fetched.task_queue_sid == qs.spanish.sid
    assert qs.ws.tasks(task.sid).reservations.list() == []
    assert qs.ws.workers(qs.alice.sid).reservations.list() == []


def test_steps_6_7_reserve_accept_wrap_complete(qs):
    task = qs.ws.tasks.create(attributes=json.dumps(SPANISH_TASK), workflow_sid=qs.workflow.sid)
    assert task.assignment_status == "pending"

    # Step 6: Alice becomes available → TaskRouter reserves her.
    make_available(qs, qs.alice)
    reserved = wait_task_status(qs.ws, task.sid, "reserved")
    assert reserved.task_queue_sid == qs.spanish.sid
    (reservation,) = wait_reservations(qs.ws, task.sid, 1, "pending")
    assert_sid(reservation.sid, "WR")
    assert reservation.reservation_status == "pending"
    assert reservation.worker_name == "Alice"
    assert reservation.worker_sid == qs.alice.sid
    assert reservation.task_sid == task.sid
    assert reservation.workspace_sid == qs.workspace.sid
    assert [r.sid for r in qs.ws.tasks(task.sid).reservations.list()] == [reservation.sid]
    alices = qs.ws.workers(qs.alice.sid).reservations.list()
    assert [(r.sid, r.reservation_status, r.task_sid) for r in alices] == [(reservation.sid, "pending", task.sid)]
    assert qs.ws.workers(qs.bob.sid).reservations.list() == []

    # Step 7: accept via REST.
    accepted = qs.ws.tasks(task.sid).reservations(reservation.sid).update(reservation_status="accepted")
    assert accepted.sid == reservation.sid
    assert accepted.reservation_status == "accepted"
    assert accepted.worker_name == "Alice"
    assert accepted.worker_sid == qs.alice.sid
    assert qs.ws.tasks(task.sid).fetch().assignment_status == "assigned"
    # Multitasking workspace (the default): the activity does not change on
    # reserve/accept, and the accepted task takes one unit of capacity (§4).
    alice = qs.ws.workers(qs.alice.sid).fetch()
    assert alice.activity_name == "Available"
    channel = default_channel(qs.ws, qs.alice.sid)
    assert channel.assigned_tasks == 1
    assert channel.available_capacity_percentage == 0

    # The agent wraps up ...
    wrapping = qs.ws.tasks(task.sid).update(assignment_status="wrapping")
    assert wrapping.assignment_status == "wrapping"
    assert qs.ws.tasks(task.sid).fetch().assignment_status == "wrapping"
    # (§3.1: the reservation follows the task into `wrapping`, or stays
    # accepted; it must not be finished yet.)
    assert qs.ws.tasks(task.sid).reservations(reservation.sid).fetch().reservation_status in ("accepted", "wrapping")

    # ... and completes with a reason.
    completed = qs.ws.tasks(task.sid).update(assignment_status="completed", reason="resolved")
    assert completed.assignment_status == "completed"
    assert completed.reason == "resolved"
    fetched = qs.ws.tasks(task.sid).fetch()
    assert (fetched.assignment_status, fetched.reason) == ("completed", "resolved")
    # §3.1 `completed`: "Reservation finished, aligned with task.completed".
    for r in (
        qs.ws.tasks(task.sid).reservations(reservation.sid).fetch(),
        qs.ws.workers(qs.alice.sid).reservations(reservation.sid).fetch(),
    ):
        assert r.reservation_status == "completed"
        assert r.worker_name == "Alice"
    # §4: "moving the task to completed gives it back" (capacity).
    channel = default_channel(qs.ws, qs.alice.sid)
    assert channel.assigned_tasks == 0
    assert channel.available_capacity_percentage == 100


def test_complete_without_wrapping(qs):
    """`assigned` → `completed` directly is allowed (§2 lifecycle table);
    the reservation goes `accepted` → `completed` (§3.1)."""
    task = qs.ws.tasks.create(attributes=json.dumps(SPANISH_TASK), workflow_sid=qs.workflow.sid)
    make_available(qs, qs.alice)
    (reservation,) = wait_reservations(qs.ws, task.sid, 1, "pending")
    qs.ws.tasks(task.sid).reservations(reservation.sid).update(reservation_status="accepted")
    done = qs.ws.tasks(task.sid).update(assignment_status="completed", reason="done on the phone")
    assert (done.assignment_status, done.reason) == ("completed", "done on the phone")
    assert qs.ws.tasks(task.sid).reservations(reservation.sid).fetch().reservation_status == "completed"


def test_alice_takes_next_spanish_task_after_completing(qs):
    """Capacity 1: a second Spanish task waits while Alice works on the first
    and is reserved to her once the first is completed."""
    first = qs.ws.tasks.create(attributes=json.dumps(SPANISH_TASK), workflow_sid=qs.workflow.sid)
    make_available(qs, qs.alice)
    (r1,) = wait_reservations(qs.ws, first.sid, 1, "pending")
    qs.ws.tasks(first.sid).reservations(r1.sid).update(reservation_status="accepted")
    second = qs.ws.tasks.create(attributes=json.dumps(SPANISH_TASK), workflow_sid=qs.workflow.sid)
    assert second.assignment_status == "pending"
    assert qs.ws.tasks(second.sid).fetch().assignment_status == "pending"
    assert qs.ws.tasks(second.sid).reservations.list() == []
    qs.ws.tasks(first.sid).update(assignment_status="completed", reason="resolved")
    (r2,) = wait_reservations(qs.ws, second.sid, 1, "pending")
    assert r2.worker_name == "Alice"
    assert qs.ws.tasks(second.sid).fetch().assignment_status == "reserved"


def test_english_tasks_spread_over_alice_and_bob(qs):
    """Both available: the first English task is reserved to one of them, the
    second to the other one (the first has no free capacity and has just been
    given a task, §6.3)."""
    make_available(qs, qs.alice)
    make_available(qs, qs.bob)
    first = qs.ws.tasks.create(attributes=json.dumps(ENGLISH_TASK), workflow_sid=qs.workflow.sid)
    assert first.task_queue_sid == qs.english.sid
    (r1,) = wait_reservations(qs.ws, first.sid, 1, "pending")
    assert r1.worker_name in ("Alice", "Bob")
    second = qs.ws.tasks.create(attributes=json.dumps(ENGLISH_TASK), workflow_sid=qs.workflow.sid)
    (r2,) = wait_reservations(qs.ws, second.sid, 1, "pending")
    assert {r1.worker_name, r2.worker_name} == {"Alice", "Bob"}
    for task, r in ((first, r1), (second, r2)):
        assert qs.ws.tasks(task.sid).fetch().assignment_status == "reserved"
        assert [x.sid for x in qs.ws.workers(r.worker_sid).reservations.list()] == [r.sid]


def test_english_tasks_go_to_longest_idle_worker(qs):
    """With capacity for several tasks each, selection is by longest time
    without a task (§6.3, "round robin"): X, then Y, then X again."""
    for worker in (qs.alice, qs.bob):
        qs.ws.workers(worker.sid).worker_channels("default").update(capacity=3)
    make_available(qs, qs.alice)
    make_available(qs, qs.bob)
    chosen = []
    for _ in range(4):
        task = qs.ws.tasks.create(attributes=json.dumps(ENGLISH_TASK), workflow_sid=qs.workflow.sid)
        (r,) = wait_reservations(qs.ws, task.sid, 1, "pending")
        qs.ws.tasks(task.sid).reservations(r.sid).update(reservation_status="accepted")
        chosen.append(r.worker_name)
    x, y = chosen[0], {"Alice", "Bob"}.difference({chosen[0]}).pop()
    assert chosen == [x, y, x, y]


def test_worker_without_recent_task_is_preferred(qs):
    """Alice has just finished a task, Bob never had one: Bob has gone longest
    without a task and gets the next English task (§6.3)."""
    qs.ws.workers(qs.alice.sid).worker_channels("default").update(capacity=2)
    make_available(qs, qs.alice)
    spanish = qs.ws.tasks.create(attributes=json.dumps(SPANISH_TASK), workflow_sid=qs.workflow.sid)
    (r,) = wait_reservations(qs.ws, spanish.sid, 1, "pending")
    qs.ws.tasks(spanish.sid).reservations(r.sid).update(reservation_status="accepted")
    make_available(qs, qs.bob)
    english = qs.ws.tasks.create(attributes=json.dumps(ENGLISH_TASK), workflow_sid=qs.workflow.sid)
    (r2,) = wait_reservations(qs.ws, english.sid, 1, "pending")
    assert r2.worker_name == "Bob"


def test_reject_via_worker_endpoint_moves_worker_and_reroutes(qs):
    """Reject through …/Workers/WK/Reservations/WR with WorkerActivitySid=Offline:
    the reservation is `rejected`, the worker is moved Offline (§3.1), the task
    goes back to routing and is offered to the next eligible worker (§2, §5.2)."""
    make_available(qs, qs.alice)
    make_available(qs, qs.bob)
    task = qs.ws.tasks.create(attributes=json.dumps(ENGLISH_TASK), workflow_sid=qs.workflow.sid)
    (first,) = wait_reservations(qs.ws, task.sid, 1, "pending")
    rejecter = first.worker_sid
    other = qs.bob.sid if rejecter == qs.alice.sid else qs.alice.sid

    rejected = qs.ws.workers(rejecter).reservations(first.sid).update(
        reservation_status="rejected", worker_activity_sid=qs.acts["Offline"].sid
    )
    assert rejected.sid == first.sid
    assert rejected.reservation_status == "rejected"
    assert rejected.worker_sid == rejecter
    worker = qs.ws.workers(rejecter).fetch()
    assert (worker.activity_sid, worker.activity_name, worker.available) == (qs.acts["Offline"].sid, "Offline", False)
    assert qs.ws.tasks(task.sid).reservations(first.sid).fetch().reservation_status == "rejected"

    # back to routing: the other worker gets it, the rejecting one does not
    (second,) = wait_reservations(qs.ws, task.sid, 1, "pending")
    assert second.sid != first.sid
    assert second.worker_sid == other
    assert qs.ws.tasks(task.sid).fetch().assignment_status == "reserved"
    assert [r.reservation_status for r in qs.ws.workers(rejecter).reservations.list()] == ["rejected"]
    statuses = {r.sid: r.reservation_status for r in qs.ws.tasks(task.sid).reservations.list()}
    assert statuses == {first.sid: "rejected", second.sid: "pending"}


def test_reject_with_no_other_worker_leaves_task_pending(qs):
    """Spanish task, only Alice can take it: after she rejects (moving Offline)
    the task is `pending` again (§2 reserved → pending) with no reservation."""
    task = qs.ws.tasks.create(attributes=json.dumps(SPANISH_TASK), workflow_sid=qs.workflow.sid)
    make_available(qs, qs.alice)
    (r,) = wait_reservations(qs.ws, task.sid, 1, "pending")
    qs.ws.workers(qs.alice.sid).reservations(r.sid).update(
        reservation_status="rejected", worker_activity_sid=qs.acts["Offline"].sid
    )
    pending = wait_task_status(qs.ws, task.sid, "pending")
    assert pending.task_queue_sid == qs.spanish.sid
    assert [x.reservation_status for x in qs.ws.tasks(task.sid).reservations.list()] == ["rejected"]
    assert qs.ws.workers(qs.alice.sid).fetch().activity_name == "Offline"
    # (Whether the task is offered to Alice again once she is back is not
    # documented; Taskyard never re-offers a task to a worker who rejected it.)


def test_reject_without_activity_keeps_worker_activity(qs):
    """Without WorkerActivitySid the worker keeps its activity (multitasking:
    the reservation never changed it, §3.1/§4)."""
    make_available(qs, qs.bob)
    task = qs.ws.tasks.create(attributes=json.dumps(ENGLISH_TASK), workflow_sid=qs.workflow.sid)
    (r,) = wait_reservations(qs.ws, task.sid, 1, "pending")
    assert r.worker_name == "Bob"
    rejected = qs.ws.tasks(task.sid).reservations(r.sid).update(reservation_status="rejected")
    assert rejected.reservation_status == "rejected"
    assert qs.ws.workers(qs.bob.sid).fetch().activity_name == "Available"


def test_reject_pending_reservations_when_going_offline(qs):
    """UpdateWorker RejectPendingReservations=true with an unavailable activity
    rejects the outstanding reservations (§4); the task is pending again."""
    task = qs.ws.tasks.create(attributes=json.dumps(SPANISH_TASK), workflow_sid=qs.workflow.sid)
    make_available(qs, qs.alice)
    (r,) = wait_reservations(qs.ws, task.sid, 1, "pending")
    qs.ws.workers(qs.alice.sid).update(activity_sid=qs.acts["Offline"].sid, reject_pending_reservations=True)
    assert qs.ws.tasks(task.sid).reservations(r.sid).fetch().reservation_status == "rejected"
    wait_task_status(qs.ws, task.sid, "pending")


def test_reservation_survives_switch_between_available_activities(qs):
    """"Reservations stay with a worker who switches between available
    activities" (§4)."""
    lunch_ready = qs.ws.activities.create(friendly_name="Ready too", available=True)
    task = qs.ws.tasks.create(attributes=json.dumps(SPANISH_TASK), workflow_sid=qs.workflow.sid)
    make_available(qs, qs.alice)
    (r,) = wait_reservations(qs.ws, task.sid, 1, "pending")
    qs.ws.workers(qs.alice.sid).update(activity_sid=lunch_ready.sid)
    assert qs.ws.tasks(task.sid).reservations(r.sid).fetch().reservation_status == "pending"
    assert qs.ws.tasks(task.sid).fetch().assignment_status == "reserved"
    accepted = qs.ws.workers(qs.alice.sid).reservations(r.sid).update(reservation_status="accepted")
    assert accepted.reservation_status == "accepted"
    assert wait_until(
        lambda: qs.ws.tasks(task.sid).fetch().assignment_status, lambda s: s == "assigned", what="assigned"
    )
