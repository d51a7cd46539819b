"""Events (taskrouter-semantics.md §7, taskrouter-api.md "Events").

Three ways to see the same events:

* the Events REST resource through the helper library
  (``ws.events.list(...)`` with every filter, ``ws.events(sid).fetch()``);
* the Workspace event callback (``EventCallbackUrl`` + ``EventsFilter``):
  signed form POSTs, delivered at least once and in order, through receiver
  errors, a receiver that is down, and a server killed mid-delivery;
* the live stream ``GET …/Workspaces/WS/Events/Stream`` (Server-Sent Events,
  Taskyard's addition), with ``EventType`` filtering and ``Last-Event-ID``
  replay.
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from callbacks import NO_CONTENT, Reply, SseStream, assert_signed, camel_case, dedupe_by
from conftest import TaskyardServer, new_auth_token
from helpers import (
    activities_by_name,
    assert_datetime,
    assert_json_equal,
    assert_sid,
    build_routing,
    event_types,
    expect_rest_exception,
    missing_sid,
    routing_config,
    wait_event_types,
    wait_events,
    wait_reservations,
    wait_task_status,
    wait_until,
)

NEW_TASK_ORDER = ["workflow.entered", "task-queue.entered", "task.created", "workflow.target-matched"]

# Parameters every event callback carries, besides the event_data keys in CamelCase.
CALLBACK_BASE_PARAMS = {
    "EventType",
    "EventDescription",
    "ResourceType",
    "ResourceSid",
    "Sid",
    "Timestamp",
    "TimestampMs",
    "AccountSid",
    "WorkspaceSid",
    "WorkspaceName",
}

EVENTS = "/events"


def sids(events) -> list:
    return [e.sid for e in events]


def raw_event(client, ws_url: str, sid: str) -> dict:
    """The Event resource exactly as the REST API renders it."""
    response = client.request("GET", f"{ws_url}/Events/{sid}")
    assert response.status_code == 200, response.text
    return json.loads(response.text)


# ---------------------------------------------------------------------------
# The Events resource
# ---------------------------------------------------------------------------


def test_new_task_events_in_order(ws):
    """A new task: workflow.entered, task-queue.entered, task.created,
    workflow.target-matched, then reservation.created when a worker is free;
    then reservation.accepted and the completion events."""
    routing = build_routing(ws, workers=1)
    task = ws.tasks.create(workflow_sid=routing.workflow.sid, attributes=json.dumps({"n": 1}))
    (reservation,) = wait_reservations(ws, task.sid, 1, "pending")
    events = wait_event_types(ws, ["reservation.created"], task_sid=task.sid)
    assert event_types(events)[:5] == NEW_TASK_ORDER + ["reservation.created"]
    assert all(e.event_data["task_sid"] == task.sid for e in events)
    created = events[4]
    assert created.resource_sid == reservation.sid
    assert created.event_data["reservation_sid"] == reservation.sid

    ws.tasks(task.sid).reservations(reservation.sid).update(reservation_status="accepted")
    ws.tasks(task.sid).update(assignment_status="completed", reason="done")
    events = wait_event_types(ws, ["reservation.accepted", "task.completed", "reservation.completed"],
                              task_sid=task.sid)
    types = event_types(events)
    assert types[:5] == NEW_TASK_ORDER + ["reservation.created"]
    assert types.index("reservation.created") < types.index("reservation.accepted") < types.index("task.completed")
    assert types.index("reservation.accepted") < types.index("reservation.completed")
    completed = events[types.index("task.completed")]
    assert completed.event_data["task_assignment_status"] == "completed"
    assert completed.event_data["task_completed_reason"] == "done"
    dates = [e.event_date_ms for e in events]
    assert dates == sorted(dates), "events must be listed oldest first"


def test_new_task_without_free_worker(ws):
    """Nobody available: the four routing events and no reservation.created."""
    routing = build_routing(ws, workers=1, available=False)
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    events = wait_event_types(ws, ["workflow.target-matched"], task_sid=task.sid)
    time.sleep(0.2)
    assert event_types(ws.events.list(task_sid=task.sid)) == NEW_TASK_ORDER
    matched = events[3]
    assert matched.event_data["workflow_sid"] == routing.workflow.sid
    assert matched.event_data["task_queue_sid"] == routing.queue.sid


def test_event_fields(ws, workspace, client, ws_url):
    """Every field of an Event, from list and fetch, for a task.created and a
    reservation.created (event_data: snake_case keys, string values)."""
    routing = build_routing(ws, workers=1, name="Fields")
    worker = routing.workers[0]
    attrs = {"selected_language": "es", "n": 2}
    before_ms = int(time.time() * 1000)
    task = ws.tasks.create(workflow_sid=routing.workflow.sid, attributes=json.dumps(attrs), priority=4)
    (reservation,) = wait_reservations(ws, task.sid, 1, "pending")
    after_ms = int(time.time() * 1000)
    (created,) = ws.events.list(task_sid=task.sid, event_type="task.created")
    (reserved,) = wait_events(ws, lambda evs: len(evs) == 1, task_sid=task.sid, event_type="reservation.created")

    for listed, resource_type, resource_sid, resource_url in (
        (created, "task", task.sid, f"{ws_url}/Tasks/{task.sid}"),
        (reserved, "reservation", reservation.sid, f"{ws_url}/Tasks/{task.sid}/Reservations/{reservation.sid}"),
    ):
        fetched = ws.events(listed.sid).fetch()
        for e in (listed, fetched):
            assert_sid(e.sid, "EV")
            assert e.sid == listed.sid
            assert e.account_sid == client.account_sid
            assert e.workspace_sid == workspace.sid
            assert e.resource_type == resource_type
            assert e.resource_sid == resource_sid
            assert e.resource_url == resource_url
            assert e.url == f"{ws_url}/Events/{listed.sid}"
            assert e.actor_type == "workspace"
            assert e.actor_sid == workspace.sid
            assert e.actor_url == ws_url
            assert isinstance(e.description, str) and e.description
            assert isinstance(e.source, str) and e.source
            assert_datetime(e.event_date)
            assert isinstance(e.event_date_ms, int)
            assert before_ms - 1000 <= e.event_date_ms <= after_ms + 1000
            assert int(e.event_date.timestamp()) == e.event_date_ms // 1000
            data = e.event_data
            assert isinstance(data, dict)
            assert all(isinstance(k, str) and k == k.lower() for k in data), data
            assert all(isinstance(v, str) for v in data.values()), data
            assert data["task_sid"] == task.sid
            assert_json_equal(data["task_attributes"], attrs)
            assert data["task_priority"] == "4"
            assert int(data["task_age"]) >= 0
            assert data["task_queue_sid"] == routing.queue.sid
            assert data["task_queue_name"] == "Fields queue"
            assert data["workflow_sid"] == routing.workflow.sid
            assert data["workflow_name"] == "Fields workflow"
            assert data["workspace_sid"] == workspace.sid
            assert data["workspace_name"] == workspace.friendly_name
        assert fetched.event_date_ms == listed.event_date_ms
        assert fetched.event_data == listed.event_data
        assert fetched.description == listed.description

    assert created.event_data["task_assignment_status"] == "pending"
    data = reserved.event_data
    assert data["task_assignment_status"] == "reserved"
    assert data["reservation_sid"] == reservation.sid
    assert data["worker_sid"] == worker.sid
    assert data["worker_name"] == worker.friendly_name
    assert_json_equal(data["worker_attributes"], {})
    assert data["worker_activity_sid"] == routing.acts["Available"].sid
    assert data["worker_activity_name"] == "Available"

    # the wire form: a real JSON object with string values, not a JSON string
    raw = raw_event(client, ws_url, reserved.sid)
    assert isinstance(raw["event_data"], dict)
    assert isinstance(raw["event_date_ms"], int)
    assert raw["event_date"].endswith("Z")


def test_fetch_missing_event_is_404(ws):
    with expect_rest_exception(404, 20404):
        ws.events(missing_sid("EV")).fetch()


def test_configuration_events_and_resource_types(ws, workspace, ws_url):
    """Configuration changes and their events: type, lowercase resource_type,
    resource_sid and resource_url."""
    acts = activities_by_name(ws)
    ws.update(friendly_name=workspace.friendly_name + " renamed")
    activity = ws.activities.create(friendly_name="Lunch", available=False)
    ws.activities(activity.sid).update(friendly_name="Long lunch")
    channel = ws.task_channels.create(friendly_name="Fax", unique_name="fax")
    ws.task_channels(channel.sid).update(friendly_name="Telefax")
    queue = ws.task_queues.create(friendly_name="Q", target_workers="1==1")
    ws.task_queues(queue.sid).update(target_workers='skill == "x"')
    workflow = ws.workflows.create(friendly_name="W", configuration=routing_config(default_queue=queue.sid))
    ws.workflows(workflow.sid).update(friendly_name="W2")
    worker = ws.workers.create(friendly_name="Wanda", attributes=json.dumps({"skill": "x"}))
    ws.workers(worker.sid).update(attributes=json.dumps({"skill": "y"}))
    ws.workers(worker.sid).update(activity_sid=acts["Available"].sid)
    ws.workers(worker.sid).worker_channels("default").update(capacity=3)
    ws.workers(worker.sid).worker_channels("voice").update(available=False)
    ws.workflows(workflow.sid).delete()
    ws.task_queues(queue.sid).delete()
    ws.workers(worker.sid).delete()
    ws.activities(activity.sid).delete()
    ws.task_channels(channel.sid).delete()

    expected = [
        ("workspace.created", "workspace", workspace.sid, ws_url),
        ("workspace.updated", "workspace", workspace.sid, ws_url),
        ("activity.created", "activity", activity.sid, f"{ws_url}/Activities/{activity.sid}"),
        ("activity.updated", "activity", activity.sid, f"{ws_url}/Activities/{activity.sid}"),
        ("task-channel.created", "taskchannel", channel.sid, f"{ws_url}/TaskChannels/{channel.sid}"),
        ("task-channel.updated", "taskchannel", channel.sid, f"{ws_url}/TaskChannels/{channel.sid}"),
        ("task-queue.created", "taskqueue", queue.sid, f"{ws_url}/TaskQueues/{queue.sid}"),
        ("task-queue.expression.updated", "taskqueue", queue.sid, f"{ws_url}/TaskQueues/{queue.sid}"),
        ("workflow.created", "workflow", workflow.sid, f"{ws_url}/Workflows/{workflow.sid}"),
        ("workflow.updated", "workflow", workflow.sid, f"{ws_url}/Workflows/{workflow.sid}"),
        ("worker.created", "worker", worker.sid, f"{ws_url}/Workers/{worker.sid}"),
        ("worker.attributes.update", "worker", worker.sid, f"{ws_url}/Workers/{worker.sid}"),
        ("worker.activity.update", "worker", worker.sid, f"{ws_url}/Workers/{worker.sid}"),
        ("worker.capacity.update", "worker", worker.sid, f"{ws_url}/Workers/{worker.sid}"),
        ("worker.channel.availability.update", "worker", worker.sid, f"{ws_url}/Workers/{worker.sid}"),
        ("workflow.deleted", "workflow", workflow.sid, f"{ws_url}/Workflows/{workflow.sid}"),
        ("task-queue.deleted", "taskqueue", queue.sid, f"{ws_url}/TaskQueues/{queue.sid}"),
        ("worker.deleted", "worker", worker.sid, f"{ws_url}/Workers/{worker.sid}"),
        ("activity.deleted", "activity", activity.sid, f"{ws_url}/Activities/{activity.sid}"),
        ("task-channel.deleted", "taskchannel", channel.sid, f"{ws_url}/TaskChannels/{channel.sid}"),
    ]
    events = wait_event_types(ws, ["task-channel.deleted"])
    got = [(e.event_type, e.resource_type, e.resource_sid, e.resource_url) for e in events]
    # the workspace's own events plus ours, in this order (task channels of a
    # new workspace may add their own task-channel.created first)
    ours = [g for g in got if g[2] in {workspace.sid, activity.sid, channel.sid, queue.sid, workflow.sid, worker.sid}]
    assert ours == expected

    by_type = {e.event_type: e for e in events if e.resource_sid == worker.sid}
    moved = by_type["worker.activity.update"].event_data
    assert moved["worker_activity_name"] == "Available"
    assert moved["worker_activity_sid"] == acts["Available"].sid
    assert moved["worker_previous_activity_sid"] == acts["Offline"].sid
    assert int(moved["worker_time_in_previous_activity"]) >= 0
    assert int(moved["worker_time_in_previous_activity_ms"]) >= 0
    assert_json_equal(by_type["worker.attributes.update"].event_data["worker_attributes"], {"skill": "y"})
    assert by_type["worker.capacity.update"].event_data["worker_channel_capacity"] == "3"
    assert by_type["worker.channel.availability.update"].event_data["worker_channel_available"] == "false"
    renamed = [e for e in events if e.event_type == "workspace.updated"][0]
    assert renamed.event_data["workspace_name"] == workspace.friendly_name + " renamed"
    expr = [e for e in events if e.event_type == "task-queue.expression.updated"][0]
    assert expr.event_data["task_queue_target_expression"] == 'skill == "x"'


def test_task_and_reservation_lifecycle_events(ws):
    """rescinded, wrapup, completed, updated, rejected, canceled, deleted and
    timeout events, each about the right task/reservation."""
    routing = build_routing(ws, workers=2, max_reserved_workers=2)
    acts = routing.acts

    # T1: two reservations; accepting one rescinds the other; update, wrap, complete
    t1 = ws.tasks.create(workflow_sid=routing.workflow.sid, attributes="{}")
    r1a, r1b = wait_reservations(ws, t1.sid, 2, "pending")
    ws.tasks(t1.sid).reservations(r1a.sid).update(reservation_status="accepted")
    ws.tasks(t1.sid).update(priority=9)
    ws.tasks(t1.sid).update(assignment_status="wrapping")
    ws.tasks(t1.sid).update(assignment_status="completed", reason="resolved")
    t1_types = event_types(wait_event_types(ws, ["task.completed"], task_sid=t1.sid))
    for t in ("reservation.accepted", "reservation.rescinded", "task.updated", "task.wrapup", "reservation.wrapup",
              "task.completed", "reservation.completed"):
        assert t in t1_types, (t, t1_types)
    (rescinded,) = ws.events.list(reservation_sid=r1b.sid, event_type="reservation.rescinded")
    assert rescinded.resource_sid == r1b.sid
    (accepted,) = ws.events.list(reservation_sid=r1a.sid, event_type="reservation.accepted")
    assert accepted.resource_sid == r1a.sid
    (updated,) = ws.events.list(task_sid=t1.sid, event_type="task.updated")
    assert updated.event_data["task_priority"] == "9"

    # T2: both reject; the task waits, is canceled, then deleted
    t2 = ws.tasks.create(workflow_sid=routing.workflow.sid, attributes="{}")
    for r in wait_reservations(ws, t2.sid, 2, "pending"):
        ws.tasks(t2.sid).reservations(r.sid).update(reservation_status="rejected")
    wait_task_status(ws, t2.sid, "pending")
    ws.tasks(t2.sid).update(assignment_status="canceled", reason="gave up")
    ws.tasks(t2.sid).delete()
    t2_events = wait_event_types(ws, ["task.deleted"], task_sid=t2.sid)
    t2_types = event_types(t2_events)
    assert t2_types.count("reservation.rejected") == 2
    assert t2_types.index("task.canceled") < t2_types.index("task.deleted")
    canceled = t2_events[t2_types.index("task.canceled")]
    assert canceled.event_data["task_canceled_reason"] == "gave up"

    # T3: canceled while reserved → its pending reservations are canceled
    t3 = ws.tasks.create(workflow_sid=routing.workflow.sid, attributes="{}")
    wait_reservations(ws, t3.sid, 2, "pending")
    ws.tasks(t3.sid).update(assignment_status="canceled", reason="caller hung up")
    t3_types = event_types(wait_event_types(ws, ["task.canceled"], task_sid=t3.sid))
    assert t3_types.count("reservation.canceled") == 2

    # T4: the reservation times out (1 s)
    fast = ws.workflows.create(friendly_name="fast", configuration=routing_config(default_queue=routing.queue.sid),
                               task_reservation_timeout=1)
    for w in routing.workers:
        ws.workers(w.sid).update(activity_sid=acts["Available"].sid)
    t4 = ws.tasks.create(workflow_sid=fast.sid, attributes="{}")
    timeout_events = wait_event_types(ws, ["reservation.timeout"], timeout=8, task_sid=t4.sid)
    timed_out = [e for e in timeout_events if e.event_type == "reservation.timeout"]
    t4_reservations = {r.sid: r.reservation_status for r in ws.tasks(t4.sid).reservations.list()}
    for e in timed_out:
        assert e.resource_type == "reservation"
        assert t4_reservations[e.resource_sid] == "timeout"


@pytest.mark.parametrize("state", ["pending", "reserved", "assigned"])
def test_task_attributes_update_event(ws, state):
    """Changing a task's attributes is a change like any other: task.updated
    with the new attributes, whatever the task's status."""
    routing = build_routing(ws, workers=1, available=state != "pending")
    task = ws.tasks.create(workflow_sid=routing.workflow.sid, attributes=json.dumps({"v": 1}))
    if state != "pending":
        (r,) = wait_reservations(ws, task.sid, 1, "pending")
        if state == "assigned":
            ws.tasks(task.sid).reservations(r.sid).update(reservation_status="accepted")
    assert ws.tasks(task.sid).fetch().assignment_status == state
    ws.tasks(task.sid).update(attributes=json.dumps({"v": 2}))
    events = wait_event_types(ws, ["task.updated"], timeout=3, task_sid=task.sid)
    (updated,) = [e for e in events if e.event_type == "task.updated"]
    assert updated.resource_sid == task.sid
    assert_json_equal(updated.event_data["task_attributes"], {"v": 2})
    assert updated.event_data["task_assignment_status"] == state


@pytest.fixture
def two_flows(ws):
    """Two queues/workflows, two workers, a chat task on flow A (accepted) and
    a voice task on flow B (pending reservation)."""
    a = build_routing(ws, workers=2, name="A")
    queue_b = ws.task_queues.create(friendly_name="B queue", target_workers="1==1")
    flow_b = ws.workflows.create(friendly_name="B workflow", configuration=routing_config(default_queue=queue_b.sid))
    t1 = ws.tasks.create(workflow_sid=a.workflow.sid, attributes=json.dumps({"n": 1}), task_channel="chat")
    (r1,) = wait_reservations(ws, t1.sid, 1, "pending")
    ws.tasks(t1.sid).reservations(r1.sid).update(reservation_status="accepted")
    t2 = ws.tasks.create(workflow_sid=flow_b.sid, attributes=json.dumps({"n": 2}), task_channel="voice")
    (r2,) = wait_reservations(ws, t2.sid, 1, "pending")
    wait_event_types(ws, ["reservation.created"], task_sid=t2.sid)
    channels = {c.unique_name: c.sid for c in ws.task_channels.list()}
    return SimpleNamespace(a=a, queue_b=queue_b, flow_b=flow_b, t1=t1, r1=r1, t2=t2, r2=r2, channels=channels)


def test_list_filters(ws, two_flows):
    """Every filter returns only matching events and all of them."""
    f = two_flows
    everything = ws.events.list()
    assert len(everything) >= 10

    by_type = ws.events.list(event_type="task.created")
    assert [e.event_data["task_sid"] for e in by_type] == [f.t1.sid, f.t2.sid]

    by_task = ws.events.list(task_sid=f.t1.sid)
    assert by_task and all(e.event_data.get("task_sid") == f.t1.sid for e in by_task)
    assert sids(by_task) == [e.sid for e in everything if e.event_data.get("task_sid") == f.t1.sid]
    assert {"task.created", "reservation.created", "reservation.accepted"} <= set(event_types(by_task))

    by_reservation = ws.events.list(reservation_sid=f.r1.sid)
    assert event_types(by_reservation)[:1] == ["reservation.created"]
    assert "reservation.accepted" in event_types(by_reservation)
    assert all(e.event_data.get("reservation_sid") == f.r1.sid for e in by_reservation)

    by_worker = ws.events.list(worker_sid=f.r2.worker_sid)
    assert all(e.event_data.get("worker_sid") == f.r2.worker_sid for e in by_worker)
    assert {"worker.created", "reservation.created"} <= set(event_types(by_worker))
    assert sids(by_worker) == [e.sid for e in everything if e.event_data.get("worker_sid") == f.r2.worker_sid]

    by_queue = ws.events.list(task_queue_sid=f.queue_b.sid)
    assert all(e.event_data.get("task_queue_sid") == f.queue_b.sid for e in by_queue)
    assert {"task-queue.created", "task-queue.entered", "task.created"} <= set(event_types(by_queue))
    assert f.t1.sid not in {e.event_data.get("task_sid") for e in by_queue}

    by_workflow = ws.events.list(workflow_sid=f.flow_b.sid)
    assert all(e.event_data.get("workflow_sid") == f.flow_b.sid for e in by_workflow)
    assert {"workflow.created", "workflow.entered", "workflow.target-matched"} <= set(event_types(by_workflow))

    (one,) = ws.events.list(sid=by_type[1].sid)
    assert one.sid == by_type[1].sid and one.event_type == "task.created"

    both = ws.events.list(task_sid=f.t1.sid, event_type="reservation.created")
    assert [e.resource_sid for e in both] == [f.r1.sid]

    assert ws.events.list(task_sid=missing_sid("WT")) == []
    assert ws.events.list(event_type="no.such-type") == []


@pytest.mark.parametrize("by", ["unique_name", "sid"])
def test_list_filter_task_channel(ws, two_flows, by):
    """TaskChannel= selects the events of tasks on that channel."""
    f = two_flows
    value = "chat" if by == "unique_name" else f.channels["chat"]
    events = ws.events.list(task_channel=value)
    assert events
    # (events about the channel itself, e.g. its task-channel.created, may be included)
    assert {e.event_data.get("task_sid") for e in events} - {None} == {f.t1.sid}
    assert all(e.event_data.get("task_channel_sid") == f.channels["chat"] for e in events)
    assert "task.created" in event_types(events)


def test_paging_keeps_order(ws, two_flows):
    """Small pages walk the same events in the same (ascending) order."""
    everything = ws.events.list()
    paged = ws.events.list(page_size=3)
    assert sids(paged) == sids(everything)
    assert len(set(sids(paged))) == len(paged)
    page = list(ws.events.page(page_size=3))
    assert [e.sid for e in page] == sids(everything)[:3]
    dates = [e.event_date_ms for e in everything]
    assert dates == sorted(dates)


def _iso(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def test_time_window(ws):
    """StartDate/EndDate (ISO 8601, seconds) and Minutes select by event time;
    the default window (last 15 minutes) includes everything just made."""
    first = ws.activities.create(friendly_name="early", available=False)
    (early,) = wait_events(ws, lambda evs: len(evs) == 1, event_type="activity.created")
    boundary = early.event_date_ms // 1000 + 1  # first whole second after `early`
    time.sleep(max(0.0, boundary + 1.05 - time.time()))
    ws.activities.create(friendly_name="late", available=False)
    early_ev, late_ev = wait_events(ws, lambda evs: len(evs) == 2, event_type="activity.created")
    assert early_ev.sid == early.sid
    assert late_ev.event_date_ms >= (boundary + 1) * 1000

    def window(**kw):
        return sids(ws.events.list(event_type="activity.created", **kw))

    assert window() == [early.sid, late_ev.sid]
    assert window(minutes=1) == [early.sid, late_ev.sid]
    assert window(minutes=15) == [early.sid, late_ev.sid]
    assert window(start_date=_iso(boundary)) == [late_ev.sid]
    assert window(end_date=_iso(boundary)) == [early.sid]
    assert window(start_date=_iso(boundary - 3600), end_date=_iso(boundary)) == [early.sid]
    assert window(start_date=_iso(time.time() + 3600)) == []
    assert window(start_date=_iso(time.time() - 3 * 86400)) == [early.sid, late_ev.sid]
    assert window(end_date=_iso(time.time() - 7200)) == []
    assert first.sid == early.resource_sid


# ---------------------------------------------------------------------------
# Event callbacks
# ---------------------------------------------------------------------------


def check_event_callback(req, event, *, auth_token: str, url: str, workspace_name: str) -> None:
    """One event callback POST: signed, with exactly the base params plus every
    event_data key in CamelCase, and the same values as the Event resource."""
    assert req.method == "POST"
    assert req.header("Content-Type").startswith("application/x-www-form-urlencoded")
    assert_signed(auth_token, url, req)
    p = req.params
    assert set(p) == CALLBACK_BASE_PARAMS | {camel_case(k) for k in event.event_data}, sorted(
        set(p) ^ (CALLBACK_BASE_PARAMS | {camel_case(k) for k in event.event_data})
    )
    assert p["Sid"] == event.sid
    assert p["EventType"] == event.event_type
    assert p["EventDescription"] == event.description
    assert p["ResourceType"] == event.resource_type
    assert p["ResourceSid"] == event.resource_sid
    assert p["AccountSid"] == event.account_sid
    assert p["WorkspaceSid"] == event.workspace_sid
    assert p["WorkspaceName"] == workspace_name
    assert p["TimestampMs"] == str(event.event_date_ms)
    assert abs(int(p["Timestamp"]) - event.event_date_ms / 1000) <= 1
    for key, value in event.event_data.items():
        assert p[camel_case(key)] == value, key


def set_callback(ws, url, events_filter=None):
    """Point the workspace's event callback at ``url``; return the SID of the
    workspace.updated event that did it."""
    kwargs = {"event_callback_url": url}
    if events_filter is not None:
        kwargs["events_filter"] = events_filter
    updated = ws.update(**kwargs)
    assert updated.event_callback_url == url
    if events_filter is not None:
        assert updated.events_filter == events_filter
    return wait_events(ws, lambda evs: len(evs) >= 1, event_type="workspace.updated")[-1].sid


def events_after(ws, sid: str) -> list:
    """Stored events strictly after ``sid``, oldest first."""
    events = ws.events.list()
    index = sids(events).index(sid)
    return events[index + 1:]


def delivered(receiver, path=EVENTS, *, skip=None) -> list:
    """Successfully answered callbacks, first occurrence of each event Sid,
    in arrival order (``skip``: the workspace.updated that set the URL)."""
    ok = [r for r in receiver.requests(path) if r.reply and not r.reply.close and 200 <= r.reply.status < 300]
    return [r for r in dedupe_by(ok, "Sid") if r.params["Sid"] != skip]


def wait_delivered(receiver, expected_sids, *, skip=None, timeout=15.0) -> list:
    expected = list(expected_sids)

    def done(_):
        return {r.params["Sid"] for r in delivered(receiver, skip=skip)} >= set(expected)

    receiver.wait_for(done, EVENTS, timeout=timeout, what=f"{len(expected)} events delivered")
    return delivered(receiver, skip=skip)


def first_occurrences(receiver, path=EVENTS, *, skip=None) -> list:
    """Every attempt's Sid, first occurrence only, in arrival order."""
    return [r.params["Sid"] for r in dedupe_by(receiver.requests(path), "Sid") if r.params["Sid"] != skip]


def test_event_callback_posts_every_event_signed(ws, workspace, server, receiver):
    """With EventCallbackUrl and no EventsFilter every new event is POSTed,
    signed, in order, with the same data as the Event resource; events from
    before the URL was set are not sent."""
    receiver.answer(EVENTS, NO_CONTENT)
    url = receiver.url(EVENTS)
    marker = set_callback(ws, url)
    routing = build_routing(ws, workers=1, name="Cb")
    task = ws.tasks.create(workflow_sid=routing.workflow.sid, attributes=json.dumps({"k": "v"}))
    wait_reservations(ws, task.sid, 1, "pending")
    expected = wait_until(
        lambda: events_after(ws, marker),
        lambda evs: "reservation.created" in event_types(evs),
        what="reservation.created stored",
    )
    got = wait_delivered(receiver, sids(expected), skip=marker)
    assert [r.params["Sid"] for r in got] == sids(expected)
    name = ws.fetch().friendly_name
    for req, event in zip(got, expected):
        check_event_callback(req, event, auth_token=server.auth_token, url=url, workspace_name=name)
    assert "workspace.created" not in {r.params["EventType"] for r in receiver.requests(EVENTS)}
    types = [r.params["EventType"] for r in got]
    assert {"task-queue.created", "workflow.created", "worker.created", "task.created",
            "reservation.created"} <= set(types)
    reserved = got[types.index("reservation.created")].params
    assert reserved["TaskSid"] == task.sid
    assert reserved["WorkerName"] == "Cb worker 0"
    assert reserved["TaskQueueSid"] == routing.queue.sid


def test_events_filter(ws, server, receiver):
    """EventsFilter: only the listed types are sent (in order)."""
    receiver.answer(EVENTS, NO_CONTENT)
    acts = activities_by_name(ws)
    marker = set_callback(ws, receiver.url(EVENTS), events_filter="task.created,worker.activity.update")
    routing = build_routing(ws, workers=1, available=False, name="Filter")
    worker = routing.workers[0]
    ws.workers(worker.sid).update(attributes=json.dumps({"x": 1}))  # not sent
    ws.workers(worker.sid).update(activity_sid=acts["Available"].sid)  # sent
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)  # task.created sent, the rest not
    wait_reservations(ws, task.sid, 1, "pending")
    ws.workers(worker.sid).update(activity_sid=acts["Offline"].sid)  # sent: the last one
    stored = wait_until(
        lambda: [e for e in events_after(ws, marker) if e.event_type in ("task.created", "worker.activity.update")],
        lambda evs: len(evs) == 3,
        what="3 filtered events stored",
    )
    got = wait_delivered(receiver, sids(stored), skip=marker)
    assert [r.params["EventType"] for r in got] == ["worker.activity.update", "task.created",
                                                    "worker.activity.update"]
    assert [r.params["Sid"] for r in got] == sids(stored)
    assert [r.params["WorkerActivityName"] for r in got if r.params["EventType"] == "worker.activity.update"] == [
        "Available", "Offline"]
    for req, event in zip(got, stored):
        check_event_callback(req, event, auth_token=server.auth_token, url=receiver.url(EVENTS),
                             workspace_name=event.event_data["workspace_name"])
    # nothing else was sent (everything up to the last filtered event has been considered)
    receiver.assert_quiet(EVENTS, len(receiver.requests(EVENTS)), 0.3)
    assert {r.params["EventType"] for r in receiver.requests(EVENTS)} <= {"task.created", "worker.activity.update"}


def test_event_callback_retried_after_errors_in_order(ws, receiver):
    """The receiver answers 500 twice: the first event is retried with
    backoff (about 1 s, then more) and nothing later is sent before it gets
    through; in the end every event arrives, in order."""
    answers = iter([Reply(500, "busy", "text/plain"), Reply(503)])
    receiver.answer(EVENTS, lambda req: next(answers, NO_CONTENT))
    marker = set_callback(ws, receiver.url(EVENTS))
    workers = [ws.workers.create(friendly_name=f"retry {i}") for i in range(4)]
    expected = wait_until(lambda: events_after(ws, marker),
                          lambda evs: sum(e.event_type == "worker.created" for e in evs) == 4,
                          what="4 worker.created stored")
    got = wait_delivered(receiver, sids(expected), skip=marker, timeout=20)
    assert [r.params["Sid"] for r in got] == sids(expected)
    assert [r.params["WorkerSid"] for r in got if r.params["EventType"] == "worker.created"] == [
        w.sid for w in workers]

    attempts = receiver.requests(EVENTS)
    failing = attempts[0].params["Sid"]
    assert [r.params["Sid"] for r in attempts[:3]] == [failing] * 3, attempts[:4]
    assert [r.reply.status for r in attempts[:3]] == [500, 503, 204]
    gaps = [attempts[1].at - attempts[0].at, attempts[2].at - attempts[1].at]
    assert gaps[0] >= 0.5, f"retried after {gaps[0]:.2f}s (backoff starts around 1 s)"
    assert gaps[1] >= 0.5, gaps
    assert first_occurrences(receiver, skip=marker) == sids(expected)


def test_event_callback_receiver_down_then_back(ws, receiver):
    """The receiver's port is closed for a while: events are retried, never
    skipped, and all arrive in order once it listens again."""
    receiver.answer(EVENTS, NO_CONTENT)
    marker = set_callback(ws, receiver.url(EVENTS))
    first = ws.workers.create(friendly_name="before outage")
    early = wait_until(lambda: events_after(ws, marker), lambda evs: len(evs) >= 1, what="first event")
    wait_delivered(receiver, sids(early), skip=marker)

    receiver.stop()
    during = [ws.workers.create(friendly_name=f"during outage {i}") for i in range(3)]
    time.sleep(1.5)  # several failed attempts
    restarted_at = time.monotonic()
    receiver.start()
    expected = wait_until(lambda: events_after(ws, marker),
                          lambda evs: sum(e.event_type == "worker.created" for e in evs) == 4,
                          what="4 worker.created stored")
    got = wait_delivered(receiver, sids(expected), skip=marker, timeout=20)
    assert [r.params["Sid"] for r in got] == sids(expected)
    assert [r.params["WorkerSid"] for r in got if r.params["EventType"] == "worker.created"] == [
        w.sid for w in [first] + during]
    late = [r for r in got if r.params["WorkerSid"] in {w.sid for w in during}]
    assert all(r.at >= restarted_at for r in late)
    assert first_occurrences(receiver, skip=marker) == sids(expected)


@pytest.fixture
def own_server():
    tmp = Path(tempfile.mkdtemp(prefix="taskyard-events-"))
    srv = TaskyardServer(tmp / "data", log_path=tmp / "taskyard.log")
    srv.start()
    yield srv
    srv.kill()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.durability
@pytest.mark.parametrize("hard", [True, False], ids=["sigkill", "sigterm"])
def test_event_delivery_survives_restart(own_server, receiver, hard):
    """Delivery position is durable: events the receiver has not acknowledged
    when the server dies (SIGKILL or SIGTERM) are delivered after the restart,
    in order, before newer ones; nothing is lost."""
    srv = own_server
    mode = {"ok": True}
    receiver.answer(EVENTS, lambda req: NO_CONTENT if mode["ok"] else Reply(500))
    tr = srv.client().taskrouter.v1
    workspace = tr.workspaces.create(friendly_name="delivery")
    ws = tr.workspaces(workspace.sid)
    marker = set_callback(ws, receiver.url(EVENTS))
    before = [ws.workers.create(friendly_name=f"acked {i}") for i in range(2)]
    acked = wait_until(lambda: events_after(ws, marker), lambda evs: len(evs) >= 2, what="2 events")
    wait_delivered(receiver, sids(acked), skip=marker)

    mode["ok"] = False
    pending = [ws.workers.create(friendly_name=f"unacked {i}") for i in range(3)]
    stored_before_kill = wait_until(lambda: events_after(ws, marker), lambda evs: len(evs) >= 5, what="5 events")
    unacked = [e.sid for e in stored_before_kill if e.resource_sid in {w.sid for w in pending}]
    receiver.wait_for(lambda rs: any(r.params.get("Sid") == unacked[0] for r in rs), EVENTS,
                      what="a failed attempt of the first unacknowledged event")
    srv.restart(hard=hard)
    restarted_at = time.monotonic()
    mode["ok"] = True

    ws = srv.client().taskrouter.v1.workspaces(workspace.sid)
    after = ws.workers.create(friendly_name="after restart")
    expected = wait_until(lambda: events_after(ws, marker),
                          lambda evs: any(e.resource_sid == after.sid for e in evs),
                          what="the post-restart event stored")
    assert sids(expected)[:len(stored_before_kill)] == sids(stored_before_kill), "stored events lost"
    got = wait_delivered(receiver, sids(expected), skip=marker, timeout=20)
    assert [r.params["Sid"] for r in got] == sids(expected)
    assert [r.params["WorkerSid"] for r in got if r.params["EventType"] == "worker.created"] == [
        w.sid for w in before + pending + [after]]
    assert all(r.at >= restarted_at for r in got if r.params["Sid"] in unacked)
    assert first_occurrences(receiver, skip=marker) == sids(expected)


# ---------------------------------------------------------------------------
# Live stream (Server-Sent Events)
# ---------------------------------------------------------------------------


def open_stream(server, workspace_sid, *, params=None, last_event_id=None, auth=None):
    headers = {"Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    response = requests.get(
        f"{server.base_url}/v1/Workspaces/{workspace_sid}/Events/Stream",
        params=params,
        headers=headers,
        auth=auth or (server.account_sid, server.auth_token),
        stream=True,
        timeout=(5, 30),
    )
    return response


@pytest.fixture
def stream_factory(server):
    opened = []

    def make(workspace_sid, **kw):
        response = open_stream(server, workspace_sid, **kw)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/event-stream")
        stream = SseStream(response)
        opened.append(stream)
        return stream

    yield make
    for s in opened:
        s.close()


def test_stream_live_events(ws, workspace, client, ws_url, stream_factory):
    """Each message: ``id: EV…``, ``event: <type>``, ``data: <the Event JSON as
    the REST API renders it>``, in order."""
    stream = stream_factory(workspace.sid)
    worker = ws.workers.create(friendly_name="Streamer", attributes=json.dumps({"a": 1}))
    ws.workers(worker.sid).update(attributes=json.dumps({"a": 2}))
    messages = stream.until(lambda m: m.event == "worker.attributes.update")
    relevant = [m for m in messages if m.event in ("worker.created", "worker.attributes.update")]
    assert [m.event for m in relevant] == ["worker.created", "worker.attributes.update"]
    for m in relevant:
        assert_sid(m.id, "EV")
        data = m.json()
        assert data == raw_event(client, ws_url, m.id)
        assert data["sid"] == m.id
        assert data["event_type"] == m.event
        assert data["resource_sid"] == worker.sid
        assert data["event_data"]["worker_sid"] == worker.sid
    stored = sids(ws.events.list(worker_sid=worker.sid))
    assert [m.id for m in relevant] == stored


def test_stream_event_type_filter(ws, workspace, stream_factory):
    """``?EventType=a,b`` sends only those types."""
    stream = stream_factory(workspace.sid, params={"EventType": "worker.created,worker.deleted"})
    worker = ws.workers.create(friendly_name="Filtered")
    ws.workers(worker.sid).update(attributes=json.dumps({"a": 1}))
    ws.workers(worker.sid).delete()
    messages = stream.until(lambda m: m.event == "worker.deleted")
    assert [m.event for m in messages] == ["worker.created", "worker.deleted"]
    assert all(m.json()["resource_sid"] == worker.sid for m in messages)


def test_stream_replays_after_last_event_id(ws, workspace, stream_factory):
    """``Last-Event-ID: EV…`` first replays the stored events after that one,
    in order, then continues live."""
    made = [ws.workers.create(friendly_name=f"replay {i}") for i in range(3)]
    stored = wait_until(lambda: ws.events.list(), lambda evs: sum(e.event_type == "worker.created" for e in evs) == 3,
                        what="3 worker.created stored")
    created = [e for e in stored if e.event_type == "worker.created"]
    start = created[0].sid
    expected = sids(stored)[sids(stored).index(start) + 1:]
    stream = stream_factory(workspace.sid, last_event_id=start)
    replayed = [stream.next().id for _ in expected]
    assert replayed == expected
    live = ws.workers.create(friendly_name="live")
    msg = stream.until(lambda m: m.event == "worker.created")[-1]
    assert msg.json()["resource_sid"] == live.sid
    assert [e.resource_sid for e in created] == [w.sid for w in made]


def test_stream_wrong_credentials_is_401(server, workspace):
    """Same Basic auth as the REST API; a wrong token gets Twilio's 401 JSON."""
    response = open_stream(server, workspace.sid, auth=(server.account_sid, new_auth_token()))
    try:
        assert response.status_code == 401
        body = response.json()
        assert body["status"] == 401
        assert body["code"] == 20003
        assert isinstance(body["message"], str) and body["message"]
        assert body["more_info"] == "https://www.twilio.com/docs/errors/20003"
    finally:
        response.close()
    response = requests.get(f"{server.base_url}/v1/Workspaces/{workspace.sid}/Events/Stream", timeout=5)
    assert response.status_code == 401


@pytest.mark.durability
def test_sigterm_ends_open_streams_and_exits_cleanly(own_server):
    """SIGTERM while a live stream is open (a console tab, a dashboard): the server ends the
    stream cleanly (its client reconnects and resumes with Last-Event-ID) and exits with
    status 0 at once, instead of waiting forever for the stream, keeping what it
    acknowledged."""
    srv = own_server
    tr = srv.client().taskrouter.v1
    workspace = tr.workspaces.create(friendly_name="stopping")
    stream = SseStream(open_stream(srv, workspace.sid))
    worker = tr.workspaces(workspace.sid).workers.create(friendly_name="written before SIGTERM")
    first = stream.until(lambda m: m.event == "worker.created", timeout=10)[-1]

    started = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(10) == 0, srv.log_tail()
    assert time.monotonic() - started < 5, "the open stream held the shutdown"
    assert stream.messages.get(timeout=5) is None, "the stream ends cleanly, not cut"

    srv.start()
    ws = srv.client().taskrouter.v1.workspaces(workspace.sid)
    assert ws.workers(worker.sid).fetch().friendly_name == "written before SIGTERM"
    # Resuming after the last event seen: the next one is new, nothing is seen twice.
    resumed = SseStream(open_stream(srv, workspace.sid, last_event_id=first.id))
    later = ws.workers.create(friendly_name="after restart")
    nxt = resumed.until(lambda m: m.event == "worker.created", timeout=10)
    assert all(m.id > first.id for m in nxt)
    assert json.loads(nxt[-1].data)["resource_sid"] == later.sid
    resumed.close()
