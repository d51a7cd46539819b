"""TaskRouter quickstart, Part 1 (taskrouter-semantics.md §11 steps 1-4):
workspace, workers Alice and Bob, two language queues and a language workflow."""

import json

import pytest

from helpers import (
    ALICE_ATTRS,
    BOB_ATTRS,
    ENGLISH_QUEUE,
    QUICKSTART_WORKFLOW,
    SPANISH_QUEUE,
    activities_by_name,
    assert_datetime,
    assert_json_equal,
    assert_sid,
    build_quickstart,
    call_or_xfail_if_501,
)


@pytest.fixture
def qs(tr):
    setup = build_quickstart(tr)
    yield setup
    try:
        setup.ws.delete()
    except Exception:
        pass


def test_workspace_and_default_activities(qs, client, base_url):
    ws = qs.workspace
    assert_sid(ws.sid, "WS")
    assert ws.account_sid == client.account_sid
    assert ws.url == f"{base_url}/v1/Workspaces/{ws.sid}"
    acts = activities_by_name(qs.ws)
    assert {n: a.available for n, a in acts.items()} == {"Offline": False, "Available": True, "Unavailable": False}
    assert ws.default_activity_sid == ws.timeout_activity_sid == acts["Offline"].sid


def test_workers(qs, base_url):
    ws_url = f"{base_url}/v1/Workspaces/{qs.workspace.sid}"
    for created, name, attrs in ((qs.alice, "Alice", ALICE_ATTRS), (qs.bob, "Bob", BOB_ATTRS)):
        fetched = qs.ws.workers(created.sid).fetch()
        for w in (created, fetched):
            assert_sid(w.sid, "WK")
            assert w.friendly_name == name
            assert_json_equal(w.attributes, attrs)
            assert w.activity_name == "Offline"
            assert w.activity_sid == qs.workspace.default_activity_sid
            assert w.available is False
            assert w.workspace_sid == qs.workspace.sid
            assert w.url == f"{ws_url}/Workers/{created.sid}"
            assert_datetime(w.date_created)
    assert [w.friendly_name for w in qs.ws.workers.list()] == ["Alice", "Bob"]


def test_worker_channels(qs):
    for worker in (qs.alice, qs.bob):
        channels = qs.ws.workers(worker.sid).worker_channels.list()
        assert sorted(c.task_channel_unique_name for c in channels) == sorted(
            ["default", "voice", "sms", "chat", "video"]
        )
        assert all(c.configured_capacity == 1 and c.available for c in channels)


def test_task_queues(qs, base_url):
    ws_url = f"{base_url}/v1/Workspaces/{qs.workspace.sid}"
    expected = {
        qs.spanish.sid: (SPANISH_QUEUE, 'languages HAS "es"'),
        qs.english.sid: (ENGLISH_QUEUE, 'languages HAS "en"'),
    }
    for sid, (name, target) in expected.items():
        q = qs.ws.task_queues(sid).fetch()
        assert_sid(q.sid, "WQ")
        assert q.friendly_name == name
        assert q.target_workers == target
        assert q.max_reserved_workers == 1
        assert q.task_order == "FIFO"
        assert q.url == f"{ws_url}/TaskQueues/{sid}"
    assert {q.sid for q in qs.ws.task_queues.list()} == set(expected)
    assert [q.sid for q in qs.ws.task_queues.list(friendly_name=SPANISH_QUEUE)] == [qs.spanish.sid]


def test_workflow(qs, base_url):
    ws_url = f"{base_url}/v1/Workspaces/{qs.workspace.sid}"
    wf = qs.ws.workflows(qs.workflow.sid).fetch()
    assert_sid(wf.sid, "WW")
    assert wf.friendly_name == QUICKSTART_WORKFLOW
    assert wf.task_reservation_timeout == 1200
    assert wf.assignment_callback_url is None
    assert wf.fallback_assignment_callback_url is None
    assert wf.document_content_type == "application/json"
    assert wf.url == f"{ws_url}/Workflows/{wf.sid}"
    assert_json_equal(wf.configuration, qs.config)
    filters = json.loads(wf.configuration)["task_routing"]["filters"]
    assert [f["filter_friendly_name"] for f in filters] == ["Language - Spanish", "Language - English"]
    assert [f["targets"][0]["queue"] for f in filters] == [qs.spanish.sid, qs.english.sid]
    assert [w.sid for w in qs.ws.workflows.list()] == [wf.sid]


def test_set_assignment_callback_later(qs):
    """Part 2 fills in the assignment callback URL that Part 1 left blank."""
    updated = qs.ws.workflows(qs.workflow.sid).update(
        assignment_callback_url="https://example.com/assignment_callback"
    )
    assert updated.assignment_callback_url == "https://example.com/assignment_callback"
    assert updated.task_reservation_timeout == 1200
    assert_json_equal(updated.configuration, qs.config)


def test_queue_membership(qs):
    """Step 3: "Validate via GET …/Workers?TaskQueueSid=…" — Spanish: Alice;
    English: Alice and Bob."""
    spanish = call_or_xfail_if_501(lambda: qs.ws.workers.list(task_queue_sid=qs.spanish.sid))
    assert [w.friendly_name for w in spanish] == ["Alice"]
    assert [w.friendly_name for w in qs.ws.workers.list(task_queue_sid=qs.english.sid)] == ["Alice", "Bob"]


def test_queue_membership_by_queue_name(qs):
    spanish = call_or_xfail_if_501(lambda: qs.ws.workers.list(task_queue_name=SPANISH_QUEUE))
    assert [w.friendly_name for w in spanish] == ["Alice"]
    assert [w.friendly_name for w in qs.ws.workers.list(task_queue_name=ENGLISH_QUEUE)] == ["Alice", "Bob"]


def test_workers_matching_target_expression(qs):
    spanish = call_or_xfail_if_501(
        lambda: qs.ws.workers.list(target_workers_expression='languages HAS "es"')
    )
    assert [w.friendly_name for w in spanish] == ["Alice"]


def test_queues_for_worker(qs):
    """TaskQueues?WorkerSid= lists the queues a worker is eligible for."""
    bobs = call_or_xfail_if_501(lambda: qs.ws.task_queues.list(worker_sid=qs.bob.sid))
    assert [q.sid for q in bobs] == [qs.english.sid]
    assert {q.sid for q in qs.ws.task_queues.list(worker_sid=qs.alice.sid)} == {qs.spanish.sid, qs.english.sid}


def test_queues_matching_worker_attributes(qs):
    """TaskQueues?EvaluateWorkerAttributes= lists queues whose target_workers
    match the given attributes."""
    queues = call_or_xfail_if_501(
        lambda: qs.ws.task_queues.list(evaluate_worker_attributes=json.dumps({"languages": ["es"]}))
    )
    assert [q.sid for q in queues] == [qs.spanish.sid]
