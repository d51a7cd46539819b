"""Workflows (taskrouter-api.md §6 Workflows, §9 Workflow example; semantics §5.1)."""

import json

import pytest
from twilio.base import values

from helpers import (
    assert_datetime,
    assert_json_equal,
    assert_sid,
    expect_error,
    missing_sid,
    routing_config,
    unique_name,
)


@pytest.fixture
def queues(ws):
    return (
        ws.task_queues.create(friendly_name="Gold", target_workers='tier == "gold"'),
        ws.task_queues.create(friendly_name="Everyone"),
    )


def config_for(queues):
    gold, everyone = queues
    return {
        "task_routing": {
            "filters": [
                {
                    "filter_friendly_name": "Gold Tickets",
                    "expression": "type == 'ticket' AND customer_value == 'Gold'",
                    "targets": [{"queue": gold.sid, "priority": 10, "timeout": 300}, {"queue": everyone.sid}],
                }
            ],
            "default_filter": {"queue": everyone.sid},
        }
    }


def test_create_returns_workflow_fields(ws, workspace, ws_url, client, queues):
    config = config_for(queues)
    workflow = ws.workflows.create(friendly_name="Support", configuration=json.dumps(config))
    assert_sid(workflow.sid, "WW")
    assert workflow.friendly_name == "Support"
    assert workflow.account_sid == client.account_sid
    assert workflow.workspace_sid == workspace.sid
    assert_datetime(workflow.date_created)
    assert_datetime(workflow.date_updated)
    assert_json_equal(workflow.configuration, config)
    assert workflow.document_content_type == "application/json"
    assert workflow.url == f"{ws_url}/Workflows/{workflow.sid}"


def test_create_defaults(ws, queues):
    workflow = ws.workflows.create(friendly_name="Defaults", configuration=json.dumps(config_for(queues)))
    assert workflow.task_reservation_timeout == 120
    assert workflow.assignment_callback_url is None
    assert workflow.fallback_assignment_callback_url is None


def test_links(ws, ws_url, queues):
    workflow = ws.workflows.create(friendly_name="Linked", configuration=json.dumps(config_for(queues)))
    w = f"{ws_url}/Workflows/{workflow.sid}"
    assert workflow.links == {
        "statistics": f"{w}/Statistics",
        "real_time_statistics": f"{w}/RealTimeStatistics",
        "cumulative_statistics": f"{w}/CumulativeStatistics",
    }


def test_create_with_all_parameters(ws, queues):
    workflow = ws.workflows.create(
        friendly_name="Full",
        configuration=json.dumps(config_for(queues)),
        assignment_callback_url="https://example.com/assignment",
        fallback_assignment_callback_url="https://example.com/fallback",
        task_reservation_timeout=1200,
    )
    for wf in (workflow, ws.workflows(workflow.sid).fetch()):
        assert wf.assignment_callback_url == "https://example.com/assignment"
        assert wf.fallback_assignment_callback_url == "https://example.com/fallback"
        assert wf.task_reservation_timeout == 1200
        assert_json_equal(wf.configuration, config_for(queues))


def test_task_reservation_timeout_bounds(ws, queues):
    config = json.dumps(config_for(queues))
    assert ws.workflows.create(friendly_name="max", configuration=config, task_reservation_timeout=86400).task_reservation_timeout == 86400
    with expect_error(400):
        ws.workflows.create(friendly_name="too long", configuration=config, task_reservation_timeout=86401)
    assert {w.friendly_name for w in ws.workflows.list()} == {"max"}


def test_invalid_json_configuration_rejected(ws):
    with expect_error(400, 20001):
        ws.workflows.create(friendly_name="Broken", configuration='{"task_routing": ')
    assert ws.workflows.list() == []


def test_filter_target_must_reference_existing_queue(ws):
    config = routing_config([("ghost", "1==1", missing_sid("WQ"))])
    with expect_error(400):
        ws.workflows.create(friendly_name="Ghost", configuration=config)
    assert ws.workflows.list() == []


def test_default_filter_must_reference_existing_queue(ws):
    with expect_error(400):
        ws.workflows.create(friendly_name="Ghost", configuration=routing_config(default_queue=missing_sid("WQ")))


def test_queue_from_other_workspace_rejected(tr, ws, queues):
    other = tr.workspaces.create(friendly_name=unique_name("other"))
    try:
        with expect_error(400):
            tr.workspaces(other.sid).workflows.create(
                friendly_name="Cross", configuration=routing_config(default_queue=queues[0].sid)
            )
    finally:
        tr.workspaces(other.sid).delete()


def test_create_requires_configuration(ws):
    with expect_error(400, 20001):
        ws.workflows.create(friendly_name="No config", configuration=values.unset)


def test_fetch_matches_create(ws, queues):
    created = ws.workflows.create(
        friendly_name="Fetched",
        configuration=json.dumps(config_for(queues)),
        assignment_callback_url="https://example.com/a",
    )
    fetched = ws.workflows(created.sid).fetch()
    for attr in (
        "sid",
        "friendly_name",
        "configuration",
        "assignment_callback_url",
        "fallback_assignment_callback_url",
        "task_reservation_timeout",
        "document_content_type",
        "account_sid",
        "workspace_sid",
        "date_created",
        "url",
        "links",
    ):
        assert getattr(fetched, attr) == getattr(created, attr), attr


def test_update_every_parameter(ws, queues):
    gold, everyone = queues
    workflow = ws.workflows.create(friendly_name="Before", configuration=json.dumps(config_for(queues)))
    new_config = json.loads(routing_config([("Only Gold", 'tier == "gold"', gold.sid)], default_queue=gold.sid))
    updated = ws.workflows(workflow.sid).update(
        friendly_name="After",
        assignment_callback_url="https://example.com/a2",
        fallback_assignment_callback_url="https://example.com/f2",
        configuration=json.dumps(new_config),
        task_reservation_timeout=60,
        re_evaluate_tasks="true",
    )
    for wf in (updated, ws.workflows(workflow.sid).fetch()):
        assert wf.friendly_name == "After"
        assert wf.assignment_callback_url == "https://example.com/a2"
        assert wf.fallback_assignment_callback_url == "https://example.com/f2"
        assert_json_equal(wf.configuration, new_config)
        assert wf.task_reservation_timeout == 60


def test_update_is_partial(ws, queues):
    workflow = ws.workflows.create(
        friendly_name="Partial", configuration=json.dumps(config_for(queues)), task_reservation_timeout=300
    )
    ws.workflows(workflow.sid).update(friendly_name="Partial 2")
    fetched = ws.workflows(workflow.sid).fetch()
    assert fetched.task_reservation_timeout == 300
    assert_json_equal(fetched.configuration, config_for(queues))


def test_failed_update_changes_nothing(ws, queues):
    workflow = ws.workflows.create(friendly_name="Stable", configuration=json.dumps(config_for(queues)))
    with expect_error(400):
        ws.workflows(workflow.sid).update(friendly_name="Renamed", configuration="not json")
    with expect_error(400):
        ws.workflows(workflow.sid).update(friendly_name="Renamed", task_reservation_timeout=86401)
    with expect_error(400):
        ws.workflows(workflow.sid).update(
            friendly_name="Renamed", configuration=routing_config(default_queue=missing_sid("WQ"))
        )
    fetched = ws.workflows(workflow.sid).fetch()
    assert fetched.friendly_name == "Stable"
    assert fetched.task_reservation_timeout == 120
    assert_json_equal(fetched.configuration, config_for(queues))


def test_list_and_filter_friendly_name(ws, queues):
    config = json.dumps(config_for(queues))
    a = ws.workflows.create(friendly_name="Inbound", configuration=config)
    b = ws.workflows.create(friendly_name="Outbound", configuration=config)
    assert {w.sid for w in ws.workflows.list()} == {a.sid, b.sid}
    assert [w.sid for w in ws.workflows.list(friendly_name="Outbound")] == [b.sid]
    assert [w.sid for w in ws.workflows.stream(friendly_name="Inbound")] == [a.sid]
    assert ws.workflows.list(friendly_name="Sideways") == []


def test_page(ws, queues):
    config = json.dumps(config_for(queues))
    for i in range(3):
        ws.workflows.create(friendly_name=f"WF{i}", configuration=config)
    page = ws.workflows.page(page_size=2)
    assert len(list(page)) == 2
    assert len(list(page.next_page())) == 1


def test_delete_workflow(ws, queues):
    workflow = ws.workflows.create(friendly_name="Temp", configuration=json.dumps(config_for(queues)))
    assert ws.workflows(workflow.sid).delete() is True
    with expect_error(404, 20404):
        ws.workflows(workflow.sid).fetch()
    assert ws.workflows.list() == []


def test_fetch_missing_workflow(ws):
    with expect_error(404, 20404):
        ws.workflows(missing_sid("WW")).fetch()
