"""Tasks: create, fetch, update (lifecycle transitions, If-Match), list filters,
ordering and paging, delete, TTL (taskrouter-api.md §6 Tasks and "Notes on
specific operations", §0, §7 `workspace.task`; taskrouter-semantics.md §2, §5)."""

import json
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import pytest

from helpers import (
    activities_by_name,
    api_message,
    assert_datetime,
    assert_json_equal,
    assert_sid,
    build_routing,
    expect_error,
    expect_rest_exception,
    header,
    missing_sid,
    routing_config,
    wait_reservations,
    wait_task_status,
    wait_until,
)


@pytest.fixture
def routing(ws):
    """One queue (nobody in it yet), one workflow routing every task to it."""
    return build_routing(ws)


@pytest.fixture
def qs(quickstart):
    return quickstart


def assigned_task(ws, routing, worker=None, attributes=None):
    """A task reserved to an available worker and accepted → `assigned`."""
    if worker is None:
        worker = ws.workers.create(
            friendly_name=f"Taker {time.monotonic_ns()}", activity_sid=routing.acts["Available"].sid
        )
    task = ws.tasks.create(attributes=json.dumps(attributes or {}), workflow_sid=routing.workflow.sid)
    (reservation,) = wait_reservations(ws, task.sid, 1, "pending")
    ws.tasks(task.sid).reservations(reservation.sid).update(reservation_status="accepted")
    wait_task_status(ws, task.sid, "assigned")
    return task, reservation


# ---------------------------------------------------------------------------
# Create
# ---------------------------------------------------------------------------


def test_create_returns_201_and_task_fields(ws, workspace, ws_url, routing, client):
    response = ws.tasks.create_with_http_info(
        attributes=json.dumps({"type": "support", "name": "Zoë ✓"}), workflow_sid=routing.workflow.sid
    )
    assert response.status_code == 201
    assert header(response.headers, "ETag"), "Task create must send an ETag header (api §0)"
    task = response.data
    assert_sid(task.sid, "WT")
    assert task.account_sid == client.account_sid
    assert task.workspace_sid == workspace.sid
    assert task.assignment_status == "pending"
    assert_json_equal(task.attributes, {"type": "support", "name": "Zoë ✓"})
    assert task.workflow_sid == routing.workflow.sid
    assert task.workflow_friendly_name == routing.workflow.friendly_name
    assert task.task_queue_sid == routing.queue.sid
    assert task.task_queue_friendly_name == routing.queue.friendly_name
    assert (task.priority, task.timeout, task.reason) == (0, 86400, None)
    assert task.task_channel_unique_name == "default"
    assert_sid(task.task_channel_sid, "TC")
    assert task.url == f"{ws_url}/Tasks/{task.sid}"
    assert task.links["reservations"] == f"{ws_url}/Tasks/{task.sid}/Reservations"
    assert task.links["workspace"] == ws_url
    for stamp in (task.date_created, task.date_updated, task.task_queue_entered_date, task.virtual_start_time):
        assert_datetime(stamp)


def test_fetch_matches_create(ws, routing):
    created = ws.tasks.create(attributes='{"a": 1}', workflow_sid=routing.workflow.sid, priority=4, timeout=600)
    response = ws.tasks(created.sid).fetch_with_http_info()
    assert response.status_code == 200
    assert header(response.headers, "ETag")
    fetched = response.data
    for attr in (
        "sid", "account_sid", "workspace_sid", "assignment_status", "attributes", "priority", "timeout",
        "workflow_sid", "workflow_friendly_name", "task_queue_sid", "task_queue_friendly_name",
        "task_channel_sid", "task_channel_unique_name", "date_created", "virtual_start_time", "url", "links",
    ):
        assert getattr(fetched, attr) == getattr(created, attr), attr
    assert (fetched.priority, fetched.timeout) == (4, 600)


def test_fetch_missing_task_is_404(ws):
    with expect_rest_exception(404, 20404):
        ws.tasks(missing_sid("WT")).fetch()
    with expect_rest_exception(404):
        ws.tasks("WTnothex").fetch()


def test_create_without_workflow_sid_when_workspace_has_one_workflow(ws, routing):
    task = ws.tasks.create(attributes='{"x": 1}')
    assert task.workflow_sid == routing.workflow.sid
    assert task.task_queue_sid == routing.queue.sid
    assert task.assignment_status == "pending"


def test_create_without_attributes(ws, routing):
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    assert task.assignment_status == "pending"
    assert json.loads(task.attributes) == {}


def test_create_on_other_task_channel(ws, routing):
    channels = {c.unique_name: c.sid for c in ws.task_channels.list()}
    by_name = ws.tasks.create(workflow_sid=routing.workflow.sid, task_channel="voice")
    assert (by_name.task_channel_unique_name, by_name.task_channel_sid) == ("voice", channels["voice"])
    by_sid = ws.tasks.create(workflow_sid=routing.workflow.sid, task_channel=channels["sms"])
    assert (by_sid.task_channel_unique_name, by_sid.task_channel_sid) == ("sms", channels["sms"])


def test_create_with_priority_timeout_and_virtual_start_time(ws, routing):
    vst = datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    task = ws.tasks.create(
        workflow_sid=routing.workflow.sid, priority=2147483647, timeout=1209600, virtual_start_time=vst
    )
    assert task.priority == 2147483647
    assert task.timeout == 1209600
    assert task.virtual_start_time == vst
    assert ws.tasks(task.sid).fetch().virtual_start_time == vst


def test_target_priority_overrides_create_priority(ws):
    """"a matching Workflow target `priority` overrides it" (api notes CreateTask,
    semantics §5.3); without Priority the task takes the target's."""
    queue = ws.task_queues.create(friendly_name="VIP")
    config = {
        "task_routing": {
            "filters": [
                {"filter_friendly_name": "vip", "expression": "vip == true",
                 "targets": [{"queue": queue.sid, "priority": 10}]},
            ],
            "default_filter": {"queue": queue.sid},
        }
    }
    wf = ws.workflows.create(friendly_name="VIP", configuration=json.dumps(config))
    assert ws.tasks.create(workflow_sid=wf.sid, attributes='{"vip": true}', priority=3).priority == 10
    assert ws.tasks.create(workflow_sid=wf.sid, attributes='{"vip": true}').priority == 10
    assert ws.tasks.create(workflow_sid=wf.sid, attributes='{"vip": false}', priority=3).priority == 3


BAD_CREATES = {
    "malformed-attributes": dict(attributes="{bad"),
    "attributes-over-4096": dict(attributes=json.dumps({"a": "x" * 4096})),
    "priority-negative": dict(priority=-1),
    "priority-over-2^31-1": dict(priority=2147483648),
    "timeout-zero": dict(timeout=0),
    "timeout-over-two-weeks": dict(timeout=1209601),
    "unknown-task-channel": dict(task_channel="carrier_pigeon"),
    "virtual-start-time-in-future": dict(virtual_start_time=datetime.now(timezone.utc) + timedelta(hours=1)),
    "virtual-start-time-before-1900": dict(virtual_start_time=datetime(1899, 12, 31, tzinfo=timezone.utc)),
}


@pytest.mark.parametrize("kwargs", BAD_CREATES.values(), ids=BAD_CREATES.keys())
def test_create_rejects_invalid_parameters(ws, routing, kwargs):
    params = {"workflow_sid": routing.workflow.sid, "attributes": "{}"}
    params.update(kwargs)
    with expect_rest_exception(400, 20001) as err:
        ws.tasks.create(**params)
    assert err.message
    assert ws.tasks.list() == []


def test_create_with_unknown_workflow_sid_rejected(ws, routing):
    with expect_rest_exception(400, 20001):
        ws.tasks.create(attributes="{}", workflow_sid=missing_sid("WW"))
    assert ws.tasks.list() == []


def test_create_with_workflow_of_other_workspace_rejected(tr, ws, routing):
    other = tr.workspaces.create(friendly_name="other tasks")
    try:
        theirs = build_routing(tr.workspaces(other.sid), name="Theirs")
        with expect_rest_exception(400, 20001):
            ws.tasks.create(attributes="{}", workflow_sid=theirs.workflow.sid)
    finally:
        tr.workspaces(other.sid).delete()
    assert ws.tasks.list() == []


def test_create_without_workflow_sid_when_workspace_has_two_workflows(ws, routing):
    ws.workflows.create(friendly_name="Second", configuration=routing_config(default_queue=routing.queue.sid))
    with expect_rest_exception(400, 20001):
        ws.tasks.create(attributes="{}")
    assert ws.tasks.list() == []


# ---------------------------------------------------------------------------
# Update: lifecycle (semantics §2)
# ---------------------------------------------------------------------------


def test_cancel_pending_task_with_reason(ws, routing):
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    canceled = ws.tasks(task.sid).update(assignment_status="canceled", reason="customer hung up")
    assert canceled.assignment_status == "canceled"
    assert canceled.reason == "customer hung up"
    fetched = ws.tasks(task.sid).fetch()
    assert (fetched.assignment_status, fetched.reason) == ("canceled", "customer hung up")


def test_cancel_reserved_task_cancels_pending_reservation(ws):
    """§3.1 `canceled`: "Task canceled (API, TTL, workflow timeout) while this
    reservation was pending"."""
    routing = build_routing(ws, workers=1)
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    assert ws.tasks(task.sid).fetch().assignment_status == "reserved"
    canceled = ws.tasks(task.sid).update(assignment_status="canceled", reason="no longer needed")
    assert canceled.assignment_status == "canceled"
    assert ws.tasks(task.sid).reservations(r.sid).fetch().reservation_status == "canceled"
    assert ws.workers(r.worker_sid).reservations(r.sid).fetch().reservation_status == "canceled"


def test_cancel_requires_reason(ws, routing):
    """api notes UpdateTask: "`Reason` is required when canceling/completing"."""
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    with expect_rest_exception(400, 20001):
        ws.tasks(task.sid).update(assignment_status="canceled")
    assert ws.tasks(task.sid).fetch().assignment_status == "pending"


def test_cancel_assigned_task_is_refused(ws, workspace, client, routing):
    task, _ = assigned_task(ws, routing)
    with expect_rest_exception(400, 20001) as err:
        ws.tasks(task.sid).update(assignment_status="canceled", reason="too late")
    assert api_message(err).startswith(f"Cannot cancel task {task.sid}"), err.message
    assert api_message(err) == (
        f"Cannot cancel task {task.sid} in workspace {workspace.sid} for account {client.account_sid} "
        "because it is not pending or reserved."
    )
    assert ws.tasks(task.sid).fetch().assignment_status == "assigned"


def test_cancel_completed_or_canceled_task_is_refused(ws, routing):
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    ws.tasks(task.sid).update(assignment_status="canceled", reason="first")
    with expect_rest_exception(400, 20001) as err:
        ws.tasks(task.sid).update(assignment_status="canceled", reason="second")
    assert api_message(err).startswith(f"Cannot cancel task {task.sid}")
    assert ws.tasks(task.sid).fetch().reason == "first"


def test_wrap_up_pending_task_is_refused(ws, workspace, client, routing):
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    with expect_rest_exception(400, 20001) as err:
        ws.tasks(task.sid).update(assignment_status="wrapping")
    assert api_message(err).startswith(f"Cannot wrap up a task {task.sid}"), err.message
    assert api_message(err) == (
        f"Cannot wrap up a task {task.sid} in workspace {workspace.sid} for account {client.account_sid} "
        "because it is not currently assigned."
    )
    assert ws.tasks(task.sid).fetch().assignment_status == "pending"


def test_complete_pending_task_is_refused(ws, routing):
    """Only `assigned`/`wrapping` tasks can be completed (§2 lifecycle table)."""
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    with expect_rest_exception(400, 20001):
        ws.tasks(task.sid).update(assignment_status="completed", reason="resolved")
    assert ws.tasks(task.sid).fetch().assignment_status == "pending"


def test_complete_requires_reason(ws, routing):
    task, _ = assigned_task(ws, routing)
    with expect_rest_exception(400, 20001):
        ws.tasks(task.sid).update(assignment_status="completed")
    assert ws.tasks(task.sid).fetch().assignment_status == "assigned"
    done = ws.tasks(task.sid).update(assignment_status="completed", reason="resolved")
    assert (done.assignment_status, done.reason) == ("completed", "resolved")


def test_wrapping_then_completed(ws, routing):
    task, reservation = assigned_task(ws, routing)
    assert ws.tasks(task.sid).update(assignment_status="wrapping").assignment_status == "wrapping"
    with expect_rest_exception(400, 20001):  # `wrapping` tasks can only be completed
        ws.tasks(task.sid).update(assignment_status="canceled", reason="nope")
    done = ws.tasks(task.sid).update(assignment_status="completed", reason="wrapped")
    assert (done.assignment_status, done.reason) == ("completed", "wrapped")
    assert ws.tasks(task.sid).reservations(reservation.sid).fetch().reservation_status == "completed"


def test_update_priority(ws, routing):
    task = ws.tasks.create(workflow_sid=routing.workflow.sid, priority=1)
    updated = ws.tasks(task.sid).update(priority=50)
    assert updated.priority == 50
    assert ws.tasks(task.sid).fetch().priority == 50
    assert updated.assignment_status == "pending"


def test_update_is_partial(ws, routing):
    task = ws.tasks.create(workflow_sid=routing.workflow.sid, attributes='{"keep": true}', priority=7)
    ws.tasks(task.sid).update(priority=8)
    fetched = ws.tasks(task.sid).fetch()
    assert_json_equal(fetched.attributes, {"keep": True})
    ws.tasks(task.sid).update(attributes='{"keep": false}')
    assert ws.tasks(task.sid).fetch().priority == 8


def test_update_with_malformed_attributes_changes_nothing(ws, routing):
    task = ws.tasks.create(workflow_sid=routing.workflow.sid, attributes='{"v": 1}')
    with expect_rest_exception(400, 20001):
        ws.tasks(task.sid).update(attributes="{bad", priority=9)
    fetched = ws.tasks(task.sid).fetch()
    assert_json_equal(fetched.attributes, {"v": 1})
    assert fetched.priority == 0


def test_attributes_update_reroutes_pending_task(qs):
    """semantics §2/§5.2 item 6: updating Attributes on a pending task
    re-evaluates it against the workflow."""
    task = qs.ws.tasks.create(attributes='{"selected_language": "es"}', workflow_sid=qs.workflow.sid)
    assert task.task_queue_sid == qs.spanish.sid
    updated = qs.ws.tasks(task.sid).update(attributes='{"selected_language": "en"}')
    assert_json_equal(updated.attributes, {"selected_language": "en"})
    moved = wait_until(
        lambda: qs.ws.tasks(task.sid).fetch(),
        lambda t: t.task_queue_sid == qs.english.sid,
        what="task to move to the English queue",
    )
    assert moved.task_queue_friendly_name == "Customer Care Requests - English"
    assert moved.assignment_status == "pending"
    assert moved.task_queue_entered_date >= task.task_queue_entered_date
    # Bob (English only) can now take it.
    qs.ws.workers(qs.bob.sid).update(activity_sid=qs.acts["Available"].sid)
    (r,) = wait_reservations(qs.ws, task.sid, 1, "pending")
    assert r.worker_name == "Bob"


def test_update_with_mismatched_if_match_is_412(ws, routing):
    task = ws.tasks.create(workflow_sid=routing.workflow.sid, priority=1)
    with expect_error(412):
        ws.tasks(task.sid).update(priority=2, if_match="999")
    assert ws.tasks(task.sid).fetch().priority == 1


def test_update_with_current_etag(ws, routing):
    task = ws.tasks.create(workflow_sid=routing.workflow.sid, priority=1)
    etag = header(ws.tasks(task.sid).fetch_with_http_info().headers, "ETag")
    assert etag
    response = ws.tasks(task.sid).update_with_http_info(priority=2, if_match=etag)
    assert response.status_code == 200
    assert response.data.priority == 2
    new_etag = header(response.headers, "ETag")
    assert new_etag and new_etag != etag, "the ETag (version) must change when the task changes"
    assert header(ws.tasks(task.sid).fetch_with_http_info().headers, "ETag") == new_etag
    with expect_error(412):
        ws.tasks(task.sid).update(priority=3, if_match=etag)
    assert ws.tasks(task.sid).update(priority=3, if_match=new_etag).priority == 3


def test_update_missing_task_is_404(ws):
    with expect_rest_exception(404, 20404):
        ws.tasks(missing_sid("WT")).update(priority=1)


# ---------------------------------------------------------------------------
# List
# ---------------------------------------------------------------------------


@pytest.fixture
def task_set(ws):
    """Five tasks over two workflows and two queues, in different states:

    ====  ==========  ===================  ========  =====  =========
    task  workflow    attributes           queue     prio   status
    ====  ==========  ===================  ========  =====  =========
    t1    Workflow A  es                   Queue A   5      reserved
    t2    Workflow A  en                   Queue B   1      pending
    t3    Workflow B  es                   Queue B   9      pending
    t4    Workflow A  es                   Queue A   3      canceled
    t5    Workflow B  fr                   Queue B   7      pending
    ====  ==========  ===================  ========  =====  =========
    """
    acts = activities_by_name(ws)
    qa = ws.task_queues.create(friendly_name="Queue A", target_workers='team == "a"')
    qb = ws.task_queues.create(friendly_name="Queue B", target_workers='team == "b"')
    wa = ws.workflows.create(
        friendly_name="Workflow A",
        configuration=routing_config([("es", 'selected_language == "es"', qa.sid)], default_queue=qb.sid),
    )
    wb = ws.workflows.create(friendly_name="Workflow B", configuration=routing_config(default_queue=qb.sid))
    ann = ws.workers.create(friendly_name="Ann", attributes='{"team": "a"}')

    def make(workflow, lang, priority):
        return ws.tasks.create(
            workflow_sid=workflow.sid, attributes=json.dumps({"selected_language": lang}), priority=priority
        ).sid

    t1 = make(wa, "es", 5)
    t2 = make(wa, "en", 1)
    t3 = make(wb, "es", 9)
    t4 = make(wa, "es", 3)
    t5 = make(wb, "fr", 7)
    ws.tasks(t4).update(assignment_status="canceled", reason="test")
    ws.workers(ann.sid).update(activity_sid=acts["Available"].sid)
    wait_task_status(ws, t1, "reserved")
    return dict(t1=t1, t2=t2, t3=t3, t4=t4, t5=t5, qa=qa, qb=qb, wa=wa, wb=wb, ann=ann)


def sids(tasks):
    return [t.sid for t in tasks]


def test_list_default_order_is_date_created_ascending(ws, task_set):
    s = task_set
    assert sids(ws.tasks.list()) == [s["t1"], s["t2"], s["t3"], s["t4"], s["t5"]]


def test_list_filter_assignment_status_single(ws, task_set):
    s = task_set
    assert sids(ws.tasks.list(assignment_status=["pending"])) == [s["t2"], s["t3"], s["t5"]]
    assert sids(ws.tasks.list(assignment_status=["reserved"])) == [s["t1"]]
    assert sids(ws.tasks.list(assignment_status=["canceled"])) == [s["t4"]]
    assert ws.tasks.list(assignment_status=["assigned"]) == []


def test_list_filter_assignment_status_several(ws, task_set):
    """The helper sends a list as repeated keys (AssignmentStatus=a&AssignmentStatus=b)."""
    s = task_set
    assert sids(ws.tasks.list(assignment_status=["pending", "reserved"])) == [s["t1"], s["t2"], s["t3"], s["t5"]]
    assert sids(ws.tasks.list(assignment_status=["canceled", "reserved"])) == [s["t1"], s["t4"]]


def test_list_filter_assignment_status_comma_form(client, ws_url, task_set):
    """The spec's list example uses `AssignmentStatus=pending%2Creserved` (api §0)."""
    s = task_set
    response = client.request("GET", f"{ws_url}/Tasks", params={"AssignmentStatus": "pending,reserved"})
    assert response.status_code == 200, response.text
    got = [t["sid"] for t in json.loads(response.text)["tasks"]]
    assert got == [s["t1"], s["t2"], s["t3"], s["t5"]]


def test_list_filter_workflow(ws, task_set):
    s = task_set
    assert sids(ws.tasks.list(workflow_sid=s["wa"].sid)) == [s["t1"], s["t2"], s["t4"]]
    assert sids(ws.tasks.list(workflow_name="Workflow B")) == [s["t3"], s["t5"]]
    assert ws.tasks.list(workflow_sid=missing_sid("WW")) == []


def test_list_filter_task_queue(ws, task_set):
    s = task_set
    assert sids(ws.tasks.list(task_queue_sid=s["qb"].sid)) == [s["t2"], s["t3"], s["t5"]]
    assert sids(ws.tasks.list(task_queue_name="Queue B")) == [s["t2"], s["t3"], s["t5"]]
    in_a = sids(ws.tasks.list(task_queue_sid=s["qa"].sid))
    assert s["t1"] in in_a and set(in_a) <= {s["t1"], s["t4"]}


def test_list_filter_priority(ws, task_set):
    assert sids(ws.tasks.list(priority=7)) == [task_set["t5"]]


def test_list_filter_combined(ws, task_set):
    s = task_set
    assert sids(ws.tasks.list(workflow_sid=s["wa"].sid, assignment_status=["pending"])) == [s["t2"]]


def test_list_filter_evaluate_task_attributes(ws, task_set):
    s = task_set
    assert sids(ws.tasks.list(evaluate_task_attributes='selected_language == "es"')) == [s["t1"], s["t3"], s["t4"]]
    assert sids(ws.tasks.list(evaluate_task_attributes='selected_language IN ["en", "fr"]')) == [s["t2"], s["t5"]]
    assert ws.tasks.list(evaluate_task_attributes='selected_language == "de"') == []


def test_list_ordering(ws, task_set):
    s = task_set
    by_priority_desc = [s["t3"], s["t5"], s["t1"], s["t4"], s["t2"]]
    assert sids(ws.tasks.list(ordering="Priority:desc")) == by_priority_desc
    assert sids(ws.tasks.list(ordering="Priority:asc")) == by_priority_desc[::-1]
    assert sids(ws.tasks.list(ordering="DateCreated:desc")) == [s["t5"], s["t4"], s["t3"], s["t2"], s["t1"]]
    assert sids(ws.tasks.list(ordering="DateCreated:asc")) == [s["t1"], s["t2"], s["t3"], s["t4"], s["t5"]]


def test_list_ordering_with_filter(ws, task_set):
    s = task_set
    assert sids(ws.tasks.list(assignment_status=["pending"], ordering="Priority:desc")) == [s["t3"], s["t5"], s["t2"]]


def test_list_paging_follows_next_page_url(ws, task_set):
    s = task_set
    everything = [s["t1"], s["t2"], s["t3"], s["t4"], s["t5"]]
    assert sids(ws.tasks.list(page_size=2)) == everything
    first = ws.tasks.page(page_size=2)
    assert sids(first) == everything[:2]
    assert first._payload["meta"]["key"] == "tasks"
    second = first.next_page()
    third = second.next_page()
    assert sids(second) == everything[2:4]
    assert sids(third) == everything[4:]
    assert third.next_page_url is None


def test_list_paging_with_ordering(ws, task_set):
    s = task_set
    by_priority_desc = [s["t3"], s["t5"], s["t1"], s["t4"], s["t2"]]
    first = ws.tasks.page(ordering="Priority:desc", page_size=2)
    assert parse_qs(urlparse(first.next_page_url).query).get("Ordering") == ["Priority:desc"]
    assert sids(ws.tasks.list(ordering="Priority:desc", page_size=2)) == by_priority_desc
    newest_first = [s["t5"], s["t4"], s["t3"], s["t2"], s["t1"]]
    assert sids(ws.tasks.list(ordering="DateCreated:desc", page_size=2)) == newest_first
    assert sids(ws.tasks.list(assignment_status=["pending", "reserved"], ordering="Priority:desc", page_size=1)) == [
        s["t3"], s["t5"], s["t1"], s["t2"]
    ]


def test_list_filter_has_addons(ws, task_set):
    everything = sids(ws.tasks.list())
    assert sids(ws.tasks.list(has_addons=False)) == everything
    assert ws.tasks.list(has_addons=True) == []


def test_list_hides_attributes_fetch_shows_them(ws, task_set):
    listed = ws.tasks.list()
    assert listed and all(t.attributes is None for t in listed)
    assert_json_equal(ws.tasks(task_set["t3"]).fetch().attributes, {"selected_language": "es"})


def test_list_sends_etag(client, ws_url, task_set):
    response = client.request("GET", f"{ws_url}/Tasks")
    assert response.status_code == 200
    assert header(response.headers, "ETag"), "ListTask declares an `ETag` response header (api §6 Tasks)"


def test_list_is_per_workspace(tr, ws, routing):
    mine = ws.tasks.create(workflow_sid=routing.workflow.sid)
    other = tr.workspaces.create(friendly_name="other list")
    try:
        theirs = tr.workspaces(other.sid)
        r = build_routing(theirs, name="Theirs")
        theirs.tasks.create(workflow_sid=r.workflow.sid)
        assert sids(ws.tasks.list()) == [mine.sid]
        with expect_rest_exception(404):
            theirs.tasks(mine.sid).fetch()
    finally:
        tr.workspaces(other.sid).delete()


# ---------------------------------------------------------------------------
# Delete
# ---------------------------------------------------------------------------


def test_delete_task_and_its_reservations(ws):
    routing = build_routing(ws, workers=1)
    worker = routing.workers[0]
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    assert ws.tasks(task.sid).delete() is True
    with expect_rest_exception(404, 20404):
        ws.tasks(task.sid).fetch()
    with expect_rest_exception(404):
        ws.tasks(task.sid).reservations(r.sid).fetch()
    with expect_error(404):
        ws.tasks(task.sid).reservations.list()
    with expect_rest_exception(404):
        ws.workers(worker.sid).reservations(r.sid).fetch()
    assert r.sid not in {x.sid for x in ws.workers(worker.sid).reservations.list()}
    assert task.sid not in sids(ws.tasks.list())
    # the worker's capacity is free again: the next task is reserved to it
    nxt = ws.tasks.create(workflow_sid=routing.workflow.sid)
    (r2,) = wait_reservations(ws, nxt.sid, 1, "pending")
    assert r2.worker_sid == worker.sid


def test_delete_missing_task_is_404(ws):
    with expect_rest_exception(404, 20404):
        ws.tasks(missing_sid("WT")).delete()


def test_delete_with_mismatched_if_match_is_412(client, ws, ws_url, routing):
    """twilio-python 9.13's TaskContext.delete(if_match=...) drops the header
    (like WorkerContext.delete), so send the DELETE through client.request."""
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    response = client.request("DELETE", f"{ws_url}/Tasks/{task.sid}", headers={"If-Match": "999"})
    assert response.status_code == 412, response.text
    assert ws.tasks(task.sid).fetch().sid == task.sid
    etag = header(ws.tasks(task.sid).fetch_with_http_info().headers, "ETag")
    response = client.request("DELETE", f"{ws_url}/Tasks/{task.sid}", headers={"If-Match": etag})
    assert response.status_code == 204, response.text


# ---------------------------------------------------------------------------
# Task TTL (`timeout`)
# ---------------------------------------------------------------------------


def test_task_ttl_cancels_waiting_task(ws, routing):
    """Nobody can take it: after `timeout` seconds the task is canceled with
    "Task TTL Exceeded" (api CreateTask `Timeout`, semantics §2)."""
    task = ws.tasks.create(workflow_sid=routing.workflow.sid, timeout=2)
    assert task.timeout == 2
    assert ws.tasks(task.sid).fetch().assignment_status == "pending"
    canceled = wait_task_status(ws, task.sid, "canceled", timeout=8)
    assert canceled.reason == "Task TTL Exceeded"
    assert sids(ws.tasks.list(assignment_status=["canceled"])) == [task.sid]


def test_task_ttl_cancels_reserved_task_and_its_reservation(ws):
    """TTL applies while `pending`/`reserved`; the pending reservation becomes
    `canceled` (§3.1)."""
    routing = build_routing(ws, workers=1)
    task = ws.tasks.create(workflow_sid=routing.workflow.sid, timeout=2)
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    canceled = wait_task_status(ws, task.sid, "canceled", timeout=8)
    assert canceled.reason == "Task TTL Exceeded"
    assert ws.tasks(task.sid).reservations(r.sid).fetch().reservation_status == "canceled"


def test_task_ttl_does_not_apply_once_assigned(ws, routing):
    """TTL "applies while pending/reserved" (§2): an assigned task stays assigned."""
    worker = ws.workers.create(friendly_name="Quick", activity_sid=routing.acts["Available"].sid)
    task = ws.tasks.create(workflow_sid=routing.workflow.sid, timeout=2)
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    ws.tasks(task.sid).reservations(r.sid).update(reservation_status="accepted")
    time.sleep(3)  # a negative check: nothing to poll for
    assert ws.tasks(task.sid).fetch().assignment_status == "assigned"
    assert r.worker_sid == worker.sid


def test_age_counts_seconds_since_creation(ws, routing):
    """`age` = seconds since `date_created` (§2)."""
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    assert task.age in (0, 1)
    aged = wait_until(lambda: ws.tasks(task.sid).fetch(), lambda t: t.age >= 2, timeout=5, what="age >= 2")
    assert aged.age <= 4
    assert aged.date_created == task.date_created
