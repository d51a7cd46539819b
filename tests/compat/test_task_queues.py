"""TaskQueues (taskrouter-api.md §6 TaskQueues, §4 links; semantics §6.1)."""

from twilio.base import values

from helpers import (
    activities_by_name,
    assert_datetime,
    assert_sid,
    expect_error,
    missing_sid,
    routing_config,
)


def test_create_returns_queue_fields(ws, workspace, ws_url, client):
    queue = ws.task_queues.create(friendly_name="Support")
    assert_sid(queue.sid, "WQ")
    assert queue.friendly_name == "Support"
    assert queue.account_sid == client.account_sid
    assert queue.workspace_sid == workspace.sid
    assert_datetime(queue.date_created)
    assert_datetime(queue.date_updated)
    assert queue.url == f"{ws_url}/TaskQueues/{queue.sid}"


def test_create_defaults(ws):
    queue = ws.task_queues.create(friendly_name="Defaults")
    assert queue.target_workers == "1==1"
    assert queue.max_reserved_workers == 1
    assert queue.task_order == "FIFO"


def test_links(ws, ws_url):
    acts = activities_by_name(ws)
    queue = ws.task_queues.create(
        friendly_name="Linked",
        reservation_activity_sid=acts["Unavailable"].sid,
        assignment_activity_sid=acts["Offline"].sid,
    )
    q = f"{ws_url}/TaskQueues/{queue.sid}"
    assert queue.links == {
        "assignment_activity": f"{ws_url}/Activities/{acts['Offline'].sid}",
        "reservation_activity": f"{ws_url}/Activities/{acts['Unavailable'].sid}",
        "workspace": ws_url,
        "statistics": f"{q}/Statistics",
        "real_time_statistics": f"{q}/RealTimeStatistics",
        "cumulative_statistics": f"{q}/CumulativeStatistics",
        "list_statistics": f"{ws_url}/TaskQueues/Statistics",
        "bulk_real_time_statistics": f"{ws_url}/TaskQueues/RealTimeStatistics",
    }


def test_create_with_all_parameters(ws):
    acts = activities_by_name(ws)
    queue = ws.task_queues.create(
        friendly_name="Spanish",
        target_workers='languages HAS "es"',
        max_reserved_workers=50,
        task_order="LIFO",
        reservation_activity_sid=acts["Unavailable"].sid,
        assignment_activity_sid=acts["Offline"].sid,
    )
    for q in (queue, ws.task_queues(queue.sid).fetch()):
        assert q.target_workers == 'languages HAS "es"'
        assert q.max_reserved_workers == 50
        assert q.task_order == "LIFO"
        assert q.reservation_activity_sid == acts["Unavailable"].sid
        assert q.reservation_activity_name == "Unavailable"
        assert q.assignment_activity_sid == acts["Offline"].sid
        assert q.assignment_activity_name == "Offline"


def test_max_reserved_workers_bounds(ws):
    assert ws.task_queues.create(friendly_name="one", max_reserved_workers=1).max_reserved_workers == 1
    with expect_error(400):
        ws.task_queues.create(friendly_name="zero", max_reserved_workers=0)
    with expect_error(400):
        ws.task_queues.create(friendly_name="fifty-one", max_reserved_workers=51)
    assert {q.friendly_name for q in ws.task_queues.list()} == {"one"}


def test_invalid_task_order_rejected(ws):
    with expect_error(400):
        ws.task_queues.create(friendly_name="random", task_order="RANDOM")
    assert ws.task_queues.list() == []


def test_unknown_reservation_activity_rejected(ws):
    with expect_error(400):
        ws.task_queues.create(friendly_name="bad res", reservation_activity_sid=missing_sid("WA"))
    assert ws.task_queues.list() == []


def test_unknown_assignment_activity_rejected(ws):
    with expect_error(400):
        ws.task_queues.create(friendly_name="bad asg", assignment_activity_sid=missing_sid("WA"))
    assert ws.task_queues.list() == []


def test_fetch_matches_create(ws):
    created = ws.task_queues.create(friendly_name="Fetchable", target_workers="skill > 3")
    fetched = ws.task_queues(created.sid).fetch()
    for attr in (
        "sid",
        "friendly_name",
        "target_workers",
        "max_reserved_workers",
        "task_order",
        "account_sid",
        "workspace_sid",
        "date_created",
        "url",
        "links",
    ):
        assert getattr(fetched, attr) == getattr(created, attr), attr


def test_update_every_parameter(ws):
    acts = activities_by_name(ws)
    queue = ws.task_queues.create(friendly_name="Before")
    updated = ws.task_queues(queue.sid).update(
        friendly_name="After",
        target_workers='languages HAS "en"',
        reservation_activity_sid=acts["Unavailable"].sid,
        assignment_activity_sid=acts["Unavailable"].sid,
        max_reserved_workers=5,
        task_order="LIFO",
    )
    for q in (updated, ws.task_queues(queue.sid).fetch()):
        assert q.friendly_name == "After"
        assert q.target_workers == 'languages HAS "en"'
        assert q.reservation_activity_sid == acts["Unavailable"].sid
        assert q.assignment_activity_sid == acts["Unavailable"].sid
        assert q.max_reserved_workers == 5
        assert q.task_order == "LIFO"


def test_update_is_partial(ws):
    queue = ws.task_queues.create(friendly_name="Partial", target_workers="x == 1", max_reserved_workers=3)
    ws.task_queues(queue.sid).update(friendly_name="Partial 2")
    fetched = ws.task_queues(queue.sid).fetch()
    assert (fetched.target_workers, fetched.max_reserved_workers) == ("x == 1", 3)


def test_failed_update_changes_nothing(ws):
    queue = ws.task_queues.create(friendly_name="Stable", max_reserved_workers=2)
    with expect_error(400):
        ws.task_queues(queue.sid).update(friendly_name="Renamed", max_reserved_workers=51)
    with expect_error(400):
        ws.task_queues(queue.sid).update(friendly_name="Renamed", task_order="SIDEWAYS")
    fetched = ws.task_queues(queue.sid).fetch()
    assert (fetched.friendly_name, fetched.max_reserved_workers, fetched.task_order) == ("Stable", 2, "FIFO")


def test_list_and_filter_friendly_name(ws):
    a = ws.task_queues.create(friendly_name="Sales")
    b = ws.task_queues.create(friendly_name="Billing")
    assert {q.sid for q in ws.task_queues.list()} == {a.sid, b.sid}
    assert [q.sid for q in ws.task_queues.list(friendly_name="Billing")] == [b.sid]
    assert ws.task_queues.list(friendly_name="Nope") == []


def test_stream_and_page(ws):
    created = [ws.task_queues.create(friendly_name=f"Q{i}").sid for i in range(3)]
    assert {q.sid for q in ws.task_queues.stream(page_size=2)} == set(created)
    page = ws.task_queues.page(page_size=2)
    assert len(list(page)) == 2
    assert page.next_page_url is not None


def test_delete_queue(ws):
    queue = ws.task_queues.create(friendly_name="Temp")
    assert ws.task_queues(queue.sid).delete() is True
    with expect_error(404, 20404):
        ws.task_queues(queue.sid).fetch()
    assert ws.task_queues.list() == []


def test_cannot_delete_queue_referenced_by_workflow(ws):
    queue = ws.task_queues.create(friendly_name="Routed")
    ws.workflows.create(friendly_name="Router", configuration=routing_config(default_queue=queue.sid))
    with expect_error(400):
        ws.task_queues(queue.sid).delete()
    assert ws.task_queues(queue.sid).fetch().friendly_name == "Routed"


def test_queue_deletable_after_workflow_deleted(ws):
    queue = ws.task_queues.create(friendly_name="Freed")
    workflow = ws.workflows.create(
        friendly_name="Router", configuration=routing_config([("f", "1==1", queue.sid)])
    )
    ws.workflows(workflow.sid).delete()
    assert ws.task_queues(queue.sid).delete() is True


def test_create_requires_friendly_name(ws):
    with expect_error(400, 20001):
        ws.task_queues.create(friendly_name=values.unset)


def test_fetch_missing_queue(ws):
    with expect_error(404, 20404):
        ws.task_queues(missing_sid("WQ")).fetch()
    with expect_error(404):
        ws.task_queues("WQnothex").fetch()
