"""Wire details the helper library tolerates but other clients rely on
(taskrouter-api.md §0 wire conventions, §7 response schemas).

The helper library reads fields with ``payload.get`` and accepts any 2xx, so a
missing key or a 200-instead-of-201 is invisible to it; these tests look at
the raw responses (``client.request`` / ``*_with_http_info``)."""

import json
import re

import pytest

from helpers import header, routing_config

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

# Property names of the response schemas in twilio_taskrouter_v1.json.
SCHEMA_KEYS = {
    "workspace": {
        "account_sid", "date_created", "date_updated", "default_activity_name", "default_activity_sid",
        "event_callback_url", "events_filter", "friendly_name", "links", "multi_task_enabled",
        "prioritize_queue_order", "sid", "timeout_activity_name", "timeout_activity_sid", "url",
    },
    "activity": {"account_sid", "available", "date_created", "date_updated", "friendly_name", "links", "sid", "url",
                 "workspace_sid"},
    "task_channel": {"account_sid", "channel_optimized_routing", "date_created", "date_updated", "friendly_name",
                     "links", "sid", "unique_name", "url", "workspace_sid"},
    "worker": {"account_sid", "activity_name", "activity_sid", "attributes", "available", "date_created",
               "date_status_changed", "date_updated", "friendly_name", "links", "sid", "url", "workspace_sid"},
    "worker_channel": {"account_sid", "assigned_tasks", "available", "available_capacity_percentage",
                       "configured_capacity", "date_created", "date_updated", "sid", "task_channel_sid",
                       "task_channel_unique_name", "url", "worker_sid", "workspace_sid"},
    "task_queue": {"account_sid", "assignment_activity_name", "assignment_activity_sid", "date_created",
                   "date_updated", "friendly_name", "links", "max_reserved_workers", "reservation_activity_name",
                   "reservation_activity_sid", "sid", "target_workers", "task_order", "url", "workspace_sid"},
    "workflow": {"account_sid", "assignment_callback_url", "configuration", "date_created", "date_updated",
                 "document_content_type", "fallback_assignment_callback_url", "friendly_name", "links", "sid",
                 "task_reservation_timeout", "url", "workspace_sid"},
}


@pytest.fixture
def resources(ws, workspace, base_url):
    """One of each configuration resource, with its absolute URL."""
    queue = ws.task_queues.create(friendly_name="Wire")
    workflow = ws.workflows.create(friendly_name="Wire", configuration=routing_config(default_queue=queue.sid))
    worker = ws.workers.create(friendly_name="Wire")
    activity = ws.activities.list()[0]
    channel = ws.task_channels.list()[0]
    worker_channel = ws.workers(worker.sid).worker_channels.list()[0]
    return {
        "workspace": workspace.url,
        "activity": activity.url,
        "task_channel": channel.url,
        "worker": worker.url,
        "worker_channel": worker_channel.url,
        "task_queue": queue.url,
        "workflow": workflow.url,
    }


def get_json(client, url):
    response = client.request("GET", url)
    assert response.status_code == 200, response.text
    return json.loads(response.text), response


@pytest.mark.parametrize("kind", sorted(SCHEMA_KEYS))
def test_every_schema_field_present(client, resources, kind):
    """Unset values are null, not omitted (§0 "Response bodies")."""
    body, _ = get_json(client, resources[kind])
    assert set(body) == SCHEMA_KEYS[kind]


@pytest.mark.parametrize("kind", sorted(SCHEMA_KEYS))
def test_timestamps_are_iso8601_utc_seconds(client, resources, kind):
    body, _ = get_json(client, resources[kind])
    for key in ("date_created", "date_updated", "date_status_changed"):
        if key in body:
            assert TIMESTAMP.match(body[key]), f"{key}={body[key]!r}"


def test_json_content_type(client, resources):
    _, response = get_json(client, resources["worker"])
    assert header(response.headers, "Content-Type").startswith("application/json")


def test_links_are_json_objects_and_documents_are_strings(client, resources):
    worker, _ = get_json(client, resources["worker"])
    workflow, _ = get_json(client, resources["workflow"])
    assert isinstance(worker["links"], dict)
    assert isinstance(worker["attributes"], str)
    assert isinstance(workflow["configuration"], str)
    assert isinstance(json.loads(workflow["configuration"]), dict)


def test_status_codes_create_201_update_200_delete_204(ws):
    created = ws.activities.create_with_http_info(friendly_name="Codes")
    assert created.status_code == 201
    updated = ws.activities(created.data.sid).update_with_http_info(friendly_name="Codes 2")
    assert updated.status_code == 200
    fetched = ws.activities(created.data.sid).fetch_with_http_info()
    assert fetched.status_code == 200
    deleted = ws.activities(created.data.sid).delete_with_http_info()
    assert deleted.status_code == 204


def test_delete_has_empty_body(client, ws):
    activity = ws.activities.create(friendly_name="Empty")
    response = client.request("DELETE", activity.url)
    assert response.status_code == 204
    assert response.text == ""


def test_worker_etag_on_create_and_update(ws):
    created = ws.workers.create_with_http_info(friendly_name="Etag")
    assert header(created.headers, "ETag")
    updated = ws.workers(created.data.sid).update_with_http_info(attributes='{"v": 2}')
    assert header(updated.headers, "ETag")
    assert header(updated.headers, "ETag") != header(created.headers, "ETag")
    fetched = ws.workers(created.data.sid).fetch_with_http_info()
    assert header(fetched.headers, "ETag") == header(updated.headers, "ETag")


def test_worker_list_sends_etag(ws):
    """ListWorker declares an `ETag` response header (taskrouter-api.md §6 Workers)."""
    ws.workers.create(friendly_name="Etag")
    listed = ws.workers.list_with_http_info()
    assert header(listed.headers, "ETag")


def test_method_not_allowed_is_405_20004(client, resources):
    response = client.request("PUT", resources["worker"])
    assert response.status_code == 405
    assert json.loads(response.text)["code"] == 20004


def test_workflow_configuration_returned_verbatim(ws):
    """`configuration` is opaque text on output (§9 Workflow note)."""
    queue = ws.task_queues.create(friendly_name="Verbatim")
    text = '{\n  "task_routing" : {\n    "default_filter": {"queue": "%s"}\n  }\n}' % queue.sid
    workflow = ws.workflows.create(friendly_name="Verbatim", configuration=text)
    assert workflow.configuration == text
    assert ws.workflows(workflow.sid).fetch().configuration == text


@pytest.mark.parametrize("value", ["true", "1", "yes", "True"])
def test_activity_available_accepts_truthy_forms(client, ws_url, value):
    """Activity `Available`: "true, 1, or yes" mean true (§0 Booleans in forms)."""
    response = client.request("POST", f"{ws_url}/Activities", data={"FriendlyName": f"a {value}", "Available": value})
    assert response.status_code == 201, response.text
    assert json.loads(response.text)["available"] is True


@pytest.mark.parametrize(
    "path,data",
    [
        ("/TaskQueues", {"FriendlyName": "q", "MaxReservedWorkers": "abc"}),
        ("/Workflows", {"FriendlyName": "w", "Configuration": "{}", "TaskReservationTimeout": "abc"}),
    ],
    ids=["max_reserved_workers", "task_reservation_timeout"],
)
def test_non_integer_parameters_are_400(client, ws_url, path, data):
    response = client.request("POST", f"{ws_url}{path}", data=data)
    assert response.status_code == 400, response.text
    assert json.loads(response.text)["code"] == 20001


def test_non_integer_capacity_is_400(client, ws, ws_url):
    worker = ws.workers.create(friendly_name="Cap")
    response = client.request("POST", f"{ws_url}/Workers/{worker.sid}/Channels/voice", data={"Capacity": "abc"})
    assert response.status_code == 400, response.text
    assert ws.workers(worker.sid).worker_channels("voice").fetch().configured_capacity == 1


# ---------------------------------------------------------------------------
# Tasks and Reservations
# ---------------------------------------------------------------------------

TASK_SCHEMA_KEYS = {
    "task": {
        "account_sid", "addons", "age", "assignment_status", "attributes", "date_created", "date_updated",
        "ignore_capacity", "links", "priority", "reason", "routing_target", "sid", "task_channel_sid",
        "task_channel_unique_name", "task_queue_entered_date", "task_queue_friendly_name", "task_queue_sid",
        "timeout", "url", "virtual_start_time", "workflow_friendly_name", "workflow_sid", "workspace_sid",
    },
    "task_reservation": {"account_sid", "date_created", "date_updated", "links", "reservation_status", "sid",
                         "task_sid", "url", "worker_name", "worker_sid", "workspace_sid"},
    "worker_reservation": {"account_sid", "date_created", "date_updated", "links", "reservation_status", "sid",
                           "task_sid", "url", "worker_name", "worker_sid", "workspace_sid"},
}


@pytest.fixture
def reserved(ws):
    """A task reserved to a worker: URLs of the task and both reservation views."""
    from helpers import build_routing, wait_reservations

    routing = build_routing(ws, workers=1, name="Wire")
    task = ws.tasks.create(workflow_sid=routing.workflow.sid, attributes='{"k": "v"}')
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    return {
        "task": task.url,
        "task_reservation": r.url,
        "worker_reservation": ws.workers(r.worker_sid).reservations(r.sid).fetch().url,
    }


@pytest.mark.parametrize("kind", sorted(TASK_SCHEMA_KEYS))
def test_task_and_reservation_schema_fields_present(client, reserved, kind):
    body, _ = get_json(client, reserved[kind])
    assert set(body) == TASK_SCHEMA_KEYS[kind]


@pytest.mark.parametrize("kind", sorted(TASK_SCHEMA_KEYS))
def test_task_and_reservation_timestamps(client, reserved, kind):
    body, _ = get_json(client, reserved[kind])
    for key in ("date_created", "date_updated", "task_queue_entered_date", "virtual_start_time"):
        if key in body:
            assert TIMESTAMP.match(body[key]), f"{key}={body[key]!r}"


def test_task_json_types(client, reserved):
    """`attributes` and `addons` are JSON strings; `links` an object; `age`,
    `priority`, `timeout` integers (§0 JSON-in-JSON, §7 workspace.task)."""
    body, _ = get_json(client, reserved["task"])
    assert isinstance(body["attributes"], str) and json.loads(body["attributes"]) == {"k": "v"}
    assert body["addons"] is None or isinstance(json.loads(body["addons"]), dict)
    assert isinstance(body["links"], dict)
    for key in ("age", "priority", "timeout"):
        assert isinstance(body[key], int) and not isinstance(body[key], bool), key
    assert body["assignment_status"] == "reserved"


@pytest.mark.parametrize(
    "data",
    [{"Priority": "abc"}, {"Timeout": "abc"}, {"Attributes": "[1, 2]"}],
    ids=["priority", "timeout", "attributes-not-object"],
)
def test_task_create_bad_parameters_are_400(client, ws, ws_url, data):
    from helpers import build_routing

    routing = build_routing(ws, name="Bad")
    response = client.request("POST", f"{ws_url}/Tasks", data={"WorkflowSid": routing.workflow.sid, **data})
    assert response.status_code == 400, response.text
    assert json.loads(response.text)["code"] == 20001


def test_task_update_unknown_assignment_status_is_400(client, ws, ws_url):
    from helpers import build_routing

    routing = build_routing(ws, name="Enum")
    task = ws.tasks.create(workflow_sid=routing.workflow.sid)
    response = client.request("POST", f"{ws_url}/Tasks/{task.sid}", data={"AssignmentStatus": "finished"})
    assert response.status_code == 400, response.text
    assert json.loads(response.text)["code"] == 20001
    assert ws.tasks(task.sid).fetch().assignment_status == "pending"


def test_reservation_update_unknown_status_is_400(client, reserved, ws):
    response = client.request("POST", reserved["task_reservation"], data={"ReservationStatus": "maybe"})
    assert response.status_code == 400, response.text
    assert json.loads(response.text)["code"] == 20001
    body, _ = get_json(client, reserved["task_reservation"])
    assert body["reservation_status"] == "pending"
