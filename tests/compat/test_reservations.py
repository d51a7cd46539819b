"""Reservations, task- and worker-scoped (taskrouter-api.md §6 Task/Worker
Reservations, §4 links, §7; taskrouter-semantics.md §3, §5.3, §6.1, §6.3):
fetch through both scopes, list filters, multi-reservation and rescinding,
reservation timeout, If-Match, and the order in which a queue hands out tasks."""

import json
from datetime import datetime, timedelta, timezone

import pytest
from twilio.base.exceptions import TwilioRestException

from helpers import (
    assert_datetime,
    assert_sid,
    build_routing,
    expect_error,
    expect_rest_exception,
    header,
    missing_sid,
    wait_reservations,
    wait_task_status,
    wait_until,
)


def test_reservation_fields_and_both_scopes(ws, workspace, ws_url, client):
    routing = build_routing(ws, workers=1)
    worker = routing.workers[0]
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (listed,) = wait_reservations(ws, task.sid, 1, "pending")
    by_task = ws.tasks(task.sid).reservations(listed.sid).fetch()
    by_worker = ws.workers(worker.sid).reservations(listed.sid).fetch()
    assert by_task.sid == by_worker.sid == listed.sid
    assert_sid(by_task.sid, "WR")
    for r in (listed, by_task, by_worker):
        assert r.account_sid == client.account_sid
        assert r.workspace_sid == workspace.sid
        assert r.task_sid == task.sid
        assert r.worker_sid == worker.sid
        assert r.worker_name == worker.friendly_name
        assert r.reservation_status == "pending"
        assert_datetime(r.date_created)
        assert_datetime(r.date_updated)
        assert r.links == {
            "task": f"{ws_url}/Tasks/{task.sid}",
            "worker": f"{ws_url}/Workers/{worker.sid}",
            "workspace": ws_url,
        }
    # "Task-scoped reservation url = …/Tasks/WT/Reservations/WR, worker-scoped =
    # …/Workers/WK/Reservations/WR" (api §4)
    assert by_task.url == listed.url == f"{ws_url}/Tasks/{task.sid}/Reservations/{listed.sid}"
    assert by_worker.url == f"{ws_url}/Workers/{worker.sid}/Reservations/{listed.sid}"
    (worker_listed,) = ws.workers(worker.sid).reservations.list()
    assert worker_listed.url == by_worker.url


def test_reservation_list_envelope_key(ws):
    routing = build_routing(ws, workers=1)
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    wait_reservations(ws, task.sid, 1, "pending")
    assert ws.tasks(task.sid).reservations.page()._payload["meta"]["key"] == "reservations"
    assert ws.workers(routing.workers[0].sid).reservations.page()._payload["meta"]["key"] == "reservations"


@pytest.fixture
def one_reservation(ws):
    routing = build_routing(ws, workers=1)
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    return routing.workers[0], task, r


def test_task_reservation_fetch_sends_etag(ws, one_reservation):
    """"ETag on … Task-Reservation list/fetch(`Etag`)/update" (api §0)."""
    _, task, r = one_reservation
    fetched = ws.tasks(task.sid).reservations(r.sid).fetch_with_http_info()
    assert header(fetched.headers, "ETag"), "FetchTaskReservation declares an `Etag` response header"


def test_task_reservation_update_sends_etag(ws, one_reservation):
    _, task, r = one_reservation
    updated = ws.tasks(task.sid).reservations(r.sid).update_with_http_info(reservation_status="accepted")
    assert updated.status_code == 200
    assert header(updated.headers, "ETag"), "UpdateTaskReservation declares an `ETag` response header"


def test_task_reservation_list_sends_etag(client, ws_url, one_reservation):
    _, task, _ = one_reservation
    listed = client.request("GET", f"{ws_url}/Tasks/{task.sid}/Reservations")
    assert listed.status_code == 200
    assert header(listed.headers, "ETag"), "ListTaskReservation declares an `ETag` response header"


def test_worker_reservation_list_sends_etag(client, ws_url, one_reservation):
    worker, _, _ = one_reservation
    listed = client.request("GET", f"{ws_url}/Workers/{worker.sid}/Reservations")
    assert listed.status_code == 200
    assert header(listed.headers, "ETag"), "ListWorkerReservation declares an `Etag` response header"


def test_reservation_update_with_mismatched_if_match_is_412(ws):
    routing = build_routing(ws, workers=1)
    worker = routing.workers[0]
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    with expect_error(412):
        ws.tasks(task.sid).reservations(r.sid).update(reservation_status="accepted", if_match="999")
    with expect_error(412):
        ws.workers(worker.sid).reservations(r.sid).update(reservation_status="accepted", if_match="999")
    assert ws.tasks(task.sid).reservations(r.sid).fetch().reservation_status == "pending"
    assert ws.tasks(task.sid).fetch().assignment_status == "reserved"
    etag = header(ws.tasks(task.sid).reservations(r.sid).fetch_with_http_info().headers, "ETag")
    assert etag
    accepted = ws.tasks(task.sid).reservations(r.sid).update(reservation_status="accepted", if_match=etag)
    assert accepted.reservation_status == "accepted"


def test_accept_via_worker_scope(ws):
    routing = build_routing(ws, workers=1)
    worker = routing.workers[0]
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    accepted = ws.workers(worker.sid).reservations(r.sid).update(reservation_status="accepted")
    assert accepted.reservation_status == "accepted"
    assert accepted.url.endswith(f"/Workers/{worker.sid}/Reservations/{r.sid}")
    assert ws.tasks(task.sid).fetch().assignment_status == "assigned"
    assert ws.tasks(task.sid).reservations(r.sid).fetch().reservation_status == "accepted"


def test_list_filter_reservation_status(ws):
    """Task scope: one rejected + one pending reservation; worker scope: a
    rejected and an accepted one."""
    routing = build_routing(ws, workers=2)
    first_task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (r1,) = wait_reservations(ws, first_task.sid, 1, "pending")
    ws.tasks(first_task.sid).reservations(r1.sid).update(reservation_status="rejected")
    (r2,) = wait_reservations(ws, first_task.sid, 1, "pending")
    assert r2.worker_sid != r1.worker_sid
    task_scope = ws.tasks(first_task.sid).reservations
    assert [r.sid for r in task_scope.list(reservation_status="rejected")] == [r1.sid]
    assert [r.sid for r in task_scope.list(reservation_status="pending")] == [r2.sid]
    assert task_scope.list(reservation_status="accepted") == []
    assert [r.sid for r in task_scope.list()] == [r1.sid, r2.sid]
    assert [r.sid for r in task_scope.list(worker_sid=r1.worker_sid)] == [r1.sid]

    # the rejecting worker (still available, free capacity) takes the next task
    second_task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (r3,) = wait_reservations(ws, second_task.sid, 1, "pending")
    assert r3.worker_sid == r1.worker_sid
    ws.tasks(second_task.sid).reservations(r3.sid).update(reservation_status="accepted")
    worker_scope = ws.workers(r1.worker_sid).reservations
    assert [r.sid for r in worker_scope.list()] == [r1.sid, r3.sid]
    assert [r.sid for r in worker_scope.list(reservation_status="rejected")] == [r1.sid]
    assert [r.sid for r in worker_scope.list(reservation_status="accepted")] == [r3.sid]
    assert worker_scope.list(reservation_status="pending") == []


def test_reservation_of_other_task_or_worker_is_404(ws):
    routing = build_routing(ws, workers=2)
    a = ws.tasks.create(workflow_sid=routing.workflow.sid)
    b = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (ra,) = wait_reservations(ws, a.sid, 1, "pending")
    (rb,) = wait_reservations(ws, b.sid, 1, "pending")
    assert ra.worker_sid != rb.worker_sid
    with expect_rest_exception(404):
        ws.tasks(b.sid).reservations(ra.sid).fetch()
    with expect_rest_exception(404):
        ws.workers(rb.worker_sid).reservations(ra.sid).fetch()
    with expect_rest_exception(404):
        ws.tasks(b.sid).reservations(ra.sid).update(reservation_status="accepted")
    with expect_rest_exception(404, 20404):
        ws.tasks(a.sid).reservations(missing_sid("WR")).fetch()
    with expect_rest_exception(404):
        ws.tasks(missing_sid("WT")).reservations(ra.sid).fetch()
    assert ws.tasks(a.sid).reservations(ra.sid).fetch().reservation_status == "pending"


def test_worker_reservations_of_missing_worker_is_404(ws):
    with expect_error(404):
        ws.workers(missing_sid("WK")).reservations.list()
    with expect_error(404):
        ws.tasks(missing_sid("WT")).reservations.list()


def test_reservation_cannot_be_deleted(client, ws, ws_url):
    """DELETE on a reservation: 405 / 20004 (api §3)."""
    routing = build_routing(ws, workers=1)
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    response = client.request("DELETE", f"{ws_url}/Tasks/{task.sid}/Reservations/{r.sid}")
    assert response.status_code == 405, response.text
    assert json.loads(response.text)["code"] == 20004


# ---------------------------------------------------------------------------
# Multi-reservation (semantics §6.1, §3.1 `rescinded`)
# ---------------------------------------------------------------------------


def test_multi_reservation_accept_one_rescinds_the_others(ws):
    routing = build_routing(ws, workers=3, max_reserved_workers=2)
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    pending = wait_reservations(ws, task.sid, 2, "pending")
    assert len({r.worker_sid for r in pending}) == 2
    assert ws.tasks(task.sid).fetch().assignment_status == "reserved"
    winner, loser = pending
    accepted = ws.tasks(task.sid).reservations(winner.sid).update(reservation_status="accepted")
    assert accepted.reservation_status == "accepted"
    assert ws.tasks(task.sid).fetch().assignment_status == "assigned"
    assert ws.tasks(task.sid).reservations(loser.sid).fetch().reservation_status == "rescinded"
    assert ws.workers(loser.worker_sid).reservations(loser.sid).fetch().reservation_status == "rescinded"
    # "Trying to accept a rescinded reservation returns a 410" (§3.1)
    with expect_rest_exception(410):
        ws.tasks(task.sid).reservations(loser.sid).update(reservation_status="accepted")
    with expect_rest_exception(410):
        ws.workers(loser.worker_sid).reservations(loser.sid).update(reservation_status="accepted")
    assert ws.tasks(task.sid).reservations(loser.sid).fetch().reservation_status == "rescinded"
    assert ws.tasks(task.sid).reservations(winner.sid).fetch().reservation_status == "accepted"
    statuses = sorted(r.reservation_status for r in ws.tasks(task.sid).reservations.list())
    assert statuses == ["accepted", "rescinded"]


def test_multi_reservation_limited_by_available_workers(ws):
    """"task escalates to a queue with 2 available workers and
    MaxReservedWorkers=5 → 2 reservations" (§6.1)."""
    routing = build_routing(ws, workers=2, max_reserved_workers=5)
    ws.workers.create(friendly_name="Offline one")  # member of the queue, but unavailable
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    pending = wait_reservations(ws, task.sid, 2, "pending")
    assert {r.worker_sid for r in pending} == {w.sid for w in routing.workers}


def test_multi_reservation_rescinded_worker_gets_next_task(ws):
    """A rescinded reservation no longer holds the worker's capacity."""
    routing = build_routing(ws, workers=2, max_reserved_workers=2)
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    winner, loser = wait_reservations(ws, task.sid, 2, "pending")
    ws.tasks(task.sid).reservations(winner.sid).update(reservation_status="accepted")
    nxt = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (r,) = wait_reservations(ws, nxt.sid, 1, "pending")
    assert r.worker_sid == loser.worker_sid


def test_multi_reservation_task_pending_only_when_all_end(ws):
    """With multi-reservation the task goes back to `pending` only when all
    outstanding reservations ended without acceptance (§2)."""
    routing = build_routing(ws, workers=2, max_reserved_workers=2)
    offline = routing.acts["Offline"].sid
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    a, b = wait_reservations(ws, task.sid, 2, "pending")
    ws.workers(a.worker_sid).reservations(a.sid).update(reservation_status="rejected", worker_activity_sid=offline)
    assert ws.tasks(task.sid).fetch().assignment_status == "reserved"
    assert ws.tasks(task.sid).reservations(b.sid).fetch().reservation_status == "pending"
    ws.workers(b.worker_sid).reservations(b.sid).update(reservation_status="rejected", worker_activity_sid=offline)
    wait_task_status(ws, task.sid, "pending")
    assert sorted(r.reservation_status for r in ws.tasks(task.sid).reservations.list()) == ["rejected", "rejected"]


# ---------------------------------------------------------------------------
# Reservation timeout (semantics §3.1 `timeout`, §2 worked example)
# ---------------------------------------------------------------------------


def test_reservation_timeout_moves_worker_to_timeout_activity(ws, workspace):
    routing = build_routing(ws, workers=1, task_reservation_timeout=2)
    worker = routing.workers[0]
    assert routing.workflow.task_reservation_timeout == 2
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    timed_out = wait_until(
        lambda: ws.tasks(task.sid).reservations(r.sid).fetch(),
        lambda x: x.reservation_status == "timeout",
        timeout=8,
        what="reservation timeout",
    )
    assert timed_out.worker_sid == worker.sid
    assert ws.workers(worker.sid).reservations(r.sid).fetch().reservation_status == "timeout"
    moved = ws.workers(worker.sid).fetch()
    assert moved.activity_sid == workspace.timeout_activity_sid
    assert moved.activity_name == "Offline"
    assert moved.available is False
    # back to routing; nobody else can take it
    back = wait_task_status(ws, task.sid, "pending")
    assert back.task_queue_sid == routing.queue.sid
    assert [x.sid for x in ws.workers(worker.sid).reservations.list(reservation_status="timeout")] == [r.sid]


def test_reservation_timeout_uses_workspace_timeout_activity(ws):
    """The worker goes to the Workspace `timeout_activity_sid`, whatever it is."""
    break_activity = ws.activities.create(friendly_name="Missed a task", available=False)
    ws.update(timeout_activity_sid=break_activity.sid)
    routing = build_routing(ws, workers=1, task_reservation_timeout=1)
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    wait_until(
        lambda: ws.workers(routing.workers[0].sid).fetch().activity_sid,
        lambda sid: sid == break_activity.sid,
        timeout=8,
        what="worker moved to the timeout activity",
    )
    assert ws.tasks(task.sid).reservations(r.sid).fetch().reservation_status == "timeout"


def test_reservation_timeout_reroutes_to_next_worker(ws):
    """The worked example of §2: the reservation times out, the first worker is
    moved to the timeout activity, the task is reserved to the other worker."""
    routing = build_routing(ws, workers=2, task_reservation_timeout=1)
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (first,) = wait_reservations(ws, task.sid, 1, "pending")
    second = wait_until(
        lambda: [r for r in ws.tasks(task.sid).reservations.list() if r.sid != first.sid],
        lambda rs: len(rs) == 1,
        timeout=8,
        what="a second reservation",
    )[0]
    assert second.worker_sid != first.worker_sid
    assert ws.tasks(task.sid).reservations(first.sid).fetch().reservation_status == "timeout"
    accepted = ws.tasks(task.sid).reservations(second.sid).update(reservation_status="accepted")
    assert accepted.reservation_status == "accepted"
    assert ws.tasks(task.sid).fetch().assignment_status == "assigned"


def test_accepted_reservation_does_not_time_out(ws):
    routing = build_routing(ws, workers=1, task_reservation_timeout=1)
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    ws.tasks(task.sid).reservations(r.sid).update(reservation_status="accepted")
    import time

    time.sleep(2)  # a negative check: nothing to poll for
    assert ws.tasks(task.sid).reservations(r.sid).fetch().reservation_status == "accepted"
    assert ws.tasks(task.sid).fetch().assignment_status == "assigned"
    assert ws.workers(r.worker_sid).fetch().activity_name == "Available"


# ---------------------------------------------------------------------------
# Which task a free worker gets (semantics §5.3)
# ---------------------------------------------------------------------------


def _first_reserved(ws, routing, task_sids):
    ws.workers(routing.workers[0].sid).update(activity_sid=routing.acts["Available"].sid)
    return wait_until(
        lambda: [t for t in task_sids if ws.tasks(t).fetch().assignment_status == "reserved"],
        lambda reserved: len(reserved) == 1,
        what="one task reserved",
    )[0]


def test_higher_priority_task_first(ws):
    routing = build_routing(ws, workers=1, available=False)
    low = ws.tasks.create(workflow_sid=routing.workflow.sid, priority=1).sid
    high = ws.tasks.create(workflow_sid=routing.workflow.sid, priority=10).sid
    mid = ws.tasks.create(workflow_sid=routing.workflow.sid, priority=5).sid
    assert _first_reserved(ws, routing, [low, high, mid]) == high


def test_fifo_equal_priority_oldest_first(ws):
    routing = build_routing(ws, workers=1, available=False)
    tasks = [ws.tasks.create(workflow_sid=routing.workflow.sid).sid for _ in range(3)]
    assert _first_reserved(ws, routing, tasks) == tasks[0]


def test_fifo_uses_virtual_start_time(ws):
    """`virtual_start_time` is the "oldest first" key and can be back-dated (§2)."""
    routing = build_routing(ws, workers=1, available=False)
    first = ws.tasks.create(workflow_sid=routing.workflow.sid).sid
    backdated = ws.tasks.create(
        workflow_sid=routing.workflow.sid,
        virtual_start_time=datetime.now(timezone.utc) - timedelta(hours=1),
    ).sid
    assert _first_reserved(ws, routing, [first, backdated]) == backdated


def _create_spaced(ws, routing, count, **kwargs):
    """Create tasks at distinct milliseconds, so that creation order is visible
    in their timestamps too."""
    import time

    sids = []
    for _ in range(count):
        sids.append(ws.tasks.create(workflow_sid=routing.workflow.sid, **kwargs).sid)
        time.sleep(0.005)
    return sids


def test_lifo_newest_first(ws):
    routing = build_routing(ws, workers=1, available=False, task_order="LIFO")
    tasks = _create_spaced(ws, routing, 3)
    assert _first_reserved(ws, routing, tasks) == tasks[-1]


def test_lifo_newest_first_ignoring_priority(ws):
    """"LIFO queue: newest first and **priority is ignored**" (semantics §5.3;
    Twilio's queue-ordering page: "Unlike FIFO ordering, LIFO ordering does not
    consider the Task priority when ordering Tasks")."""
    routing = build_routing(ws, workers=1, available=False, task_order="LIFO")
    (old_high,) = _create_spaced(ws, routing, 1, priority=100)
    (newest,) = _create_spaced(ws, routing, 1, priority=0)
    assert _first_reserved(ws, routing, [old_high, newest]) == newest


def test_lifo_most_recently_created_first_within_same_millisecond(ws):
    """TaskOrder LIFO: "assign most recently created Task first" (spec,
    task_queue.task_order).  Tasks created one after the other can share a
    millisecond timestamp (here: the same explicit VirtualStartTime); the task
    created last must still come first."""
    routing = build_routing(ws, workers=1, available=False, task_order="LIFO")
    vst = (datetime.now(timezone.utc) - timedelta(minutes=1)).replace(microsecond=0)
    tasks = [ws.tasks.create(workflow_sid=routing.workflow.sid, virtual_start_time=vst).sid for _ in range(3)]
    assert _first_reserved(ws, routing, tasks) == tasks[-1]


def test_fifo_same_virtual_start_time_oldest_first(ws):
    routing = build_routing(ws, workers=1, available=False)
    vst = (datetime.now(timezone.utc) - timedelta(minutes=1)).replace(microsecond=0)
    tasks = [ws.tasks.create(workflow_sid=routing.workflow.sid, virtual_start_time=vst).sid for _ in range(3)]
    assert _first_reserved(ws, routing, tasks) == tasks[0]


@pytest.mark.parametrize("capacity", [2])
def test_worker_capacity_limits_pending_reservations(ws, capacity):
    """Multitasking: a worker is eligible while it has free capacity on the
    task's channel; pending reservations count against it (§4)."""
    routing = build_routing(ws, workers=1)
    worker = routing.workers[0]
    ws.workers(worker.sid).worker_channels("default").update(capacity=capacity)
    tasks = [ws.tasks.create(workflow_sid=routing.workflow.sid).sid for _ in range(capacity + 1)]
    for t in tasks[:capacity]:
        wait_reservations(ws, t, 1, "pending")
    assert ws.tasks(tasks[-1]).fetch().assignment_status == "pending"
    assert len(ws.workers(worker.sid).reservations.list(reservation_status="pending")) == capacity
    # another channel is not affected
    voice = ws.tasks.create(workflow_sid=routing.workflow.sid, task_channel="voice")
    (rv,) = wait_reservations(ws, voice.sid, 1, "pending")
    assert rv.worker_sid == worker.sid


def test_priority_update_reorders_waiting_tasks(ws):
    """Updating `Priority` of a waiting task changes its place in a FIFO queue
    (§5.3: higher priority first)."""
    routing = build_routing(ws, workers=1, available=False)
    first = ws.tasks.create(workflow_sid=routing.workflow.sid, priority=5).sid
    bumped = ws.tasks.create(workflow_sid=routing.workflow.sid, priority=1).sid
    ws.tasks(bumped).update(priority=50)
    assert _first_reserved(ws, routing, [first, bumped]) == bumped


@pytest.mark.parametrize("change", [{"available": False}, {"capacity": 0}], ids=["unavailable", "capacity-0"])
def test_worker_channel_off_stops_that_channel_only(ws, change):
    """"Setting a WorkerChannel available=false or Capacity=0 stops new
    reservations for that channel only" (§4)."""
    routing = build_routing(ws, workers=1)
    worker = routing.workers[0]
    ws.workers(worker.sid).worker_channels("default").update(**change)
    blocked = ws.tasks.create(workflow_sid=routing.workflow.sid)
    sms = ws.tasks.create(workflow_sid=routing.workflow.sid, task_channel="sms")
    (r,) = wait_reservations(ws, sms.sid, 1, "pending")
    assert r.worker_sid == worker.sid
    assert ws.tasks(blocked.sid).fetch().assignment_status == "pending"
    assert ws.tasks(blocked.sid).reservations.list() == []
    # switching the channel back on hands the waiting task over
    restore = {"available": True} if "available" in change else {"capacity": 1}
    ws.workers(worker.sid).worker_channels("default").update(**restore)
    (r2,) = wait_reservations(ws, blocked.sid, 1, "pending")
    assert r2.worker_sid == worker.sid


def test_worker_becoming_unavailable_keeps_pending_reservation(ws):
    """Moving to an unavailable activity "stops everything" new, but without
    RejectPendingReservations the existing reservation stays pending and can
    still be accepted (§4)."""
    routing = build_routing(ws, workers=1)
    worker = routing.workers[0]
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    ws.workers(worker.sid).update(activity_sid=routing.acts["Unavailable"].sid)
    assert ws.tasks(task.sid).reservations(r.sid).fetch().reservation_status == "pending"
    ws.workers(worker.sid).worker_channels("default").update(capacity=2)
    other = ws.tasks.create(workflow_sid=routing.workflow.sid)
    accepted = ws.workers(worker.sid).reservations(r.sid).update(reservation_status="accepted")
    assert accepted.reservation_status == "accepted"
    assert ws.tasks(other.sid).fetch().assignment_status == "pending"


def test_prioritize_queue_order(ws):
    """A worker eligible for tasks in a FIFO and a LIFO queue gets the kind the
    workspace's `prioritize_queue_order` names first (default FIFO, §5.3)."""
    from helpers import activities_by_name, routing_config

    acts = activities_by_name(ws)
    fifo = ws.task_queues.create(friendly_name="FIFO queue", task_order="FIFO")
    lifo = ws.task_queues.create(friendly_name="LIFO queue", task_order="LIFO")
    wf_fifo = ws.workflows.create(friendly_name="to fifo", configuration=routing_config(default_queue=fifo.sid))
    wf_lifo = ws.workflows.create(friendly_name="to lifo", configuration=routing_config(default_queue=lifo.sid))
    worker = ws.workers.create(friendly_name="Both")
    assert ws.fetch().prioritize_queue_order == "FIFO"

    def first_reserved():
        in_lifo = ws.tasks.create(workflow_sid=wf_lifo.sid).sid
        in_fifo = ws.tasks.create(workflow_sid=wf_fifo.sid).sid
        ws.workers(worker.sid).update(activity_sid=acts["Available"].sid)
        reserved = wait_until(
            lambda: [t for t in (in_lifo, in_fifo) if ws.tasks(t).fetch().assignment_status == "reserved"],
            lambda rs: len(rs) == 1,
            what="one task reserved",
        )[0]
        ws.workers(worker.sid).update(activity_sid=acts["Offline"].sid, reject_pending_reservations=True)
        for t in (in_lifo, in_fifo):
            ws.tasks(t).update(assignment_status="canceled", reason="next round")
        return "LIFO" if reserved == in_lifo else "FIFO"

    assert first_reserved() == "FIFO"
    ws.update(prioritize_queue_order="LIFO")
    assert first_reserved() == "LIFO"


def test_accepting_a_timed_out_reservation_fails(ws):
    """Only a `pending` reservation can be accepted (§3.1 transitions)."""
    routing = build_routing(ws, workers=1, task_reservation_timeout=1)
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    wait_until(
        lambda: ws.tasks(task.sid).reservations(r.sid).fetch().reservation_status,
        lambda s: s == "timeout",
        timeout=8,
        what="reservation timeout",
    )
    with pytest.raises(TwilioRestException) as info:
        ws.tasks(task.sid).reservations(r.sid).update(reservation_status="accepted")
    assert 400 <= info.value.status < 500
    assert ws.tasks(task.sid).reservations(r.sid).fetch().reservation_status == "timeout"
    assert ws.tasks(task.sid).fetch().assignment_status == "pending"


def test_accepting_reservation_of_canceled_task_fails(ws):
    routing = build_routing(ws, workers=1)
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    ws.tasks(task.sid).update(assignment_status="canceled", reason="gone")
    with pytest.raises(TwilioRestException) as info:
        ws.workers(r.worker_sid).reservations(r.sid).update(reservation_status="accepted")
    assert 400 <= info.value.status < 500
    assert ws.tasks(task.sid).fetch().assignment_status == "canceled"
    assert ws.tasks(task.sid).reservations(r.sid).fetch().reservation_status == "canceled"


def test_reservation_wrapping_and_completed(ws):
    """`ReservationStatus=wrapping|completed` — Flex-style wrap/complete of the
    reservation: accepted → wrapping → completed (§3.1, §3.2)."""
    routing = build_routing(ws, workers=1)
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    ws.tasks(task.sid).reservations(r.sid).update(reservation_status="accepted")
    wrapping = ws.tasks(task.sid).reservations(r.sid).update(reservation_status="wrapping")
    assert wrapping.reservation_status == "wrapping"
    completed = ws.workers(r.worker_sid).reservations(r.sid).update(reservation_status="completed")
    assert completed.reservation_status == "completed"
    assert ws.tasks(task.sid).reservations(r.sid).fetch().reservation_status == "completed"
