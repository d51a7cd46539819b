"""Workspaces: create / fetch / update / delete / list and the defaults a new
workspace comes with (taskrouter-api.md §6 Workspaces, semantics §4)."""

import json

from twilio.base import values

from helpers import (
    activities_by_name,
    assert_datetime,
    assert_sid,
    expect_error,
    missing_sid,
    unique_name,
)

WORKSPACE_LINKS = {
    "activities": "Activities",
    "statistics": "Statistics",
    "real_time_statistics": "RealTimeStatistics",
    "cumulative_statistics": "CumulativeStatistics",
    "task_queues": "TaskQueues",
    "tasks": "Tasks",
    "workers": "Workers",
    "workflows": "Workflows",
    "task_channels": "TaskChannels",
    "events": "Events",
}


def test_create_returns_workspace_fields(tr, client, base_url):
    name = unique_name("Customer Support")
    ws = tr.workspaces.create(friendly_name=name)
    try:
        assert_sid(ws.sid, "WS")
        assert ws.friendly_name == name
        assert ws.account_sid == client.account_sid
        assert_datetime(ws.date_created)
        assert_datetime(ws.date_updated)
        assert ws.url == f"{base_url}/v1/Workspaces/{ws.sid}"
        assert ws.event_callback_url in (None, "")
        assert ws.events_filter is None
    finally:
        tr.workspaces(ws.sid).delete()


def test_create_defaults(workspace):
    assert workspace.multi_task_enabled is True
    assert workspace.prioritize_queue_order == "FIFO"
    assert workspace.default_activity_name == "Offline"
    assert workspace.timeout_activity_name == "Offline"
    assert_sid(workspace.default_activity_sid, "WA")
    assert workspace.timeout_activity_sid == workspace.default_activity_sid


def test_links_are_absolute(workspace, ws_url):
    assert set(workspace.links) == set(WORKSPACE_LINKS)
    for key, sub in WORKSPACE_LINKS.items():
        assert workspace.links[key] == f"{ws_url}/{sub}", key


def test_new_workspace_has_default_activities(ws, workspace):
    activities = activities_by_name(ws)
    assert {name: a.available for name, a in activities.items()} == {
        "Offline": False,
        "Available": True,
        "Unavailable": False,
    }
    assert activities["Offline"].sid == workspace.default_activity_sid


def test_new_workspace_has_default_task_channels(ws):
    assert sorted(c.unique_name for c in ws.task_channels.list()) == sorted(
        ["default", "voice", "sms", "chat", "video"]
    )


def test_template_none_creates_no_queues_or_workflows(tr):
    created = tr.workspaces.create(friendly_name=unique_name("none"), template="NONE")
    try:
        ws = tr.workspaces(created.sid)
        assert ws.task_queues.list() == []
        assert ws.workflows.list() == []
    finally:
        tr.workspaces(created.sid).delete()


def test_template_fifo_creates_queue_and_workflow(tr):
    created = tr.workspaces.create(friendly_name=unique_name("fifo"), template="FIFO")
    try:
        ws = tr.workspaces(created.sid)
        queues = ws.task_queues.list()
        assert len(queues) == 1
        assert queues[0].target_workers == "1==1"
        workflows = ws.workflows.list()
        assert len(workflows) == 1
        config = json.loads(ws.workflows(workflows[0].sid).fetch().configuration)
        assert queues[0].sid in json.dumps(config), "the FIFO workflow must route to the FIFO queue"
    finally:
        tr.workspaces(created.sid).delete()


def test_create_with_all_parameters(tr):
    created = tr.workspaces.create(
        friendly_name=unique_name("all"),
        event_callback_url="https://example.com/events",
        events_filter="task.created,worker.activity.update",
        multi_task_enabled=False,
        template="NONE",
        prioritize_queue_order="LIFO",
    )
    try:
        for ws in (created, tr.workspaces(created.sid).fetch()):
            assert ws.event_callback_url == "https://example.com/events"
            assert ws.events_filter == "task.created,worker.activity.update"
            assert ws.multi_task_enabled is False
            assert ws.prioritize_queue_order == "LIFO"
    finally:
        tr.workspaces(created.sid).delete()


def test_fetch_matches_create(tr, workspace):
    fetched = tr.workspaces(workspace.sid).fetch()
    for attr in (
        "sid",
        "friendly_name",
        "account_sid",
        "date_created",
        "default_activity_sid",
        "default_activity_name",
        "timeout_activity_sid",
        "timeout_activity_name",
        "multi_task_enabled",
        "prioritize_queue_order",
        "url",
        "links",
    ):
        assert getattr(fetched, attr) == getattr(workspace, attr), attr


def test_update_friendly_name_and_callbacks(tr, workspace):
    new_name = unique_name("renamed")
    updated = tr.workspaces(workspace.sid).update(
        friendly_name=new_name,
        event_callback_url="https://example.com/cb",
        events_filter="task.created",
        prioritize_queue_order="LIFO",
    )
    assert updated.friendly_name == new_name
    assert updated.event_callback_url == "https://example.com/cb"
    assert updated.events_filter == "task.created"
    assert updated.prioritize_queue_order == "LIFO"
    assert updated.date_updated >= workspace.date_created
    fetched = tr.workspaces(workspace.sid).fetch()
    assert (fetched.friendly_name, fetched.event_callback_url, fetched.prioritize_queue_order) == (
        new_name,
        "https://example.com/cb",
        "LIFO",
    )


def test_update_is_partial(tr, workspace):
    tr.workspaces(workspace.sid).update(event_callback_url="https://example.com/cb")
    fetched = tr.workspaces(workspace.sid).fetch()
    assert fetched.friendly_name == workspace.friendly_name
    assert fetched.prioritize_queue_order == workspace.prioritize_queue_order
    assert fetched.default_activity_sid == workspace.default_activity_sid


def test_update_default_and_timeout_activity(tr, ws, workspace):
    acts = activities_by_name(ws)
    updated = tr.workspaces(workspace.sid).update(
        default_activity_sid=acts["Available"].sid,
        timeout_activity_sid=acts["Unavailable"].sid,
    )
    assert updated.default_activity_sid == acts["Available"].sid
    assert updated.default_activity_name == "Available"
    assert updated.timeout_activity_sid == acts["Unavailable"].sid
    assert updated.timeout_activity_name == "Unavailable"
    worker = ws.workers.create(friendly_name="new default")
    assert worker.activity_sid == acts["Available"].sid


def test_update_default_activity_must_exist(tr, workspace):
    with expect_error(400):
        tr.workspaces(workspace.sid).update(default_activity_sid=missing_sid("WA"))
    assert tr.workspaces(workspace.sid).fetch().default_activity_sid == workspace.default_activity_sid


def test_update_multi_task_enabled(tr):
    created = tr.workspaces.create(friendly_name=unique_name("single"), multi_task_enabled=False)
    try:
        updated = tr.workspaces(created.sid).update(multi_task_enabled=True)
        assert updated.multi_task_enabled is True
    finally:
        tr.workspaces(created.sid).delete()


def test_list_contains_created_workspace(tr, workspace):
    listed = {w.sid: w for w in tr.workspaces.list()}
    assert workspace.sid in listed
    assert listed[workspace.sid].friendly_name == workspace.friendly_name


def test_list_filter_friendly_name(tr, workspace):
    other = tr.workspaces.create(friendly_name=unique_name("other"))
    try:
        matched = tr.workspaces.list(friendly_name=workspace.friendly_name)
        assert [w.sid for w in matched] == [workspace.sid]
    finally:
        tr.workspaces(other.sid).delete()


def test_stream_and_page(tr, workspace):
    assert workspace.sid in {w.sid for w in tr.workspaces.stream()}
    page = tr.workspaces.page(friendly_name=workspace.friendly_name)
    assert [w.sid for w in page] == [workspace.sid]


def test_delete_removes_workspace(tr):
    created = tr.workspaces.create(friendly_name=unique_name("doomed"))
    assert tr.workspaces(created.sid).delete() is True
    with expect_error(404, 20404):
        tr.workspaces(created.sid).fetch()
    assert created.sid not in {w.sid for w in tr.workspaces.list()}


def test_delete_removes_sub_resources(tr):
    created = tr.workspaces.create(friendly_name=unique_name("doomed"), template="FIFO")
    ws = tr.workspaces(created.sid)
    activity = ws.activities.list()[0]
    channel = ws.task_channels.list()[0]
    queue = ws.task_queues.list()[0]
    workflow = ws.workflows.list()[0]
    worker = ws.workers.create(friendly_name="doomed worker")
    ws.delete()
    with expect_error(404):
        ws.activities(activity.sid).fetch()
    with expect_error(404):
        ws.task_channels(channel.sid).fetch()
    with expect_error(404):
        ws.task_queues(queue.sid).fetch()
    with expect_error(404):
        ws.workflows(workflow.sid).fetch()
    with expect_error(404):
        ws.workers(worker.sid).fetch()
    with expect_error(404):
        ws.workers(worker.sid).worker_channels("default").fetch()


def test_delete_twice_is_404(tr):
    created = tr.workspaces.create(friendly_name=unique_name("doomed"))
    tr.workspaces(created.sid).delete()
    with expect_error(404, 20404):
        tr.workspaces(created.sid).delete()


def test_create_requires_friendly_name(tr):
    with expect_error(400, 20001):
        tr.workspaces.create(friendly_name=values.unset)


def test_friendly_name_length_limit(tr):
    ok = tr.workspaces.create(friendly_name="w" * 64)
    try:
        assert ok.friendly_name == "w" * 64
    finally:
        tr.workspaces(ok.sid).delete()
    with expect_error(400):
        tr.workspaces.create(friendly_name="w" * 65)


def test_invalid_prioritize_queue_order_rejected(tr):
    name = unique_name("bad order")
    with expect_error(400):
        tr.workspaces.create(friendly_name=name, prioritize_queue_order="RANDOM")
    assert tr.workspaces.list(friendly_name=name) == []


def test_invalid_template_rejected(tr):
    name = unique_name("bad template")
    with expect_error(400):
        tr.workspaces.create(friendly_name=name, template="NOPE")
    assert tr.workspaces.list(friendly_name=name) == []
