"""Error envelope, authentication and not-yet-implemented endpoints
(taskrouter-api.md §0, §3)."""

import json

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException

from conftest import make_client, new_account_sid, new_auth_token
from helpers import describe_error, expect_error, expect_rest_exception, missing_sid


def test_missing_workspace_is_404_20404(tr):
    with expect_rest_exception(404, 20404) as err:
        tr.workspaces(missing_sid("WS")).fetch()
    assert isinstance(err.message, str) and err.message


@pytest.mark.parametrize(
    "fetch",
    [
        lambda ws: ws.activities(missing_sid("WA")).fetch(),
        lambda ws: ws.task_channels(missing_sid("TC")).fetch(),
        lambda ws: ws.workers(missing_sid("WK")).fetch(),
        lambda ws: ws.task_queues(missing_sid("WQ")).fetch(),
        lambda ws: ws.workflows(missing_sid("WW")).fetch(),
    ],
    ids=["activity", "task_channel", "worker", "task_queue", "workflow"],
)
def test_missing_sub_resource_is_404_20404(ws, fetch):
    with expect_rest_exception(404, 20404):
        fetch(ws)


@pytest.mark.parametrize(
    "call",
    [
        lambda ws: ws.activities(missing_sid("WA")).update(friendly_name="x"),
        lambda ws: ws.activities(missing_sid("WA")).delete(),
        lambda ws: ws.workers(missing_sid("WK")).update(friendly_name="x"),
        lambda ws: ws.workers(missing_sid("WK")).delete(),
        lambda ws: ws.task_queues(missing_sid("WQ")).update(friendly_name="x"),
        lambda ws: ws.workflows(missing_sid("WW")).delete(),
        lambda ws: ws.task_channels(missing_sid("TC")).delete(),
    ],
    ids=["update-activity", "delete-activity", "update-worker", "delete-worker", "update-queue",
         "delete-workflow", "delete-channel"],
)
def test_update_or_delete_missing_is_404(ws, call):
    with expect_rest_exception(404, 20404):
        call(ws)


def test_sub_resource_of_missing_workspace_is_404(tr):
    ws = tr.workspaces(missing_sid("WS"))
    with expect_rest_exception(404):
        ws.workers.create(friendly_name="orphan")
    with expect_error(404):
        ws.workers.list()


def test_invalid_sids_in_path_are_404(tr, ws):
    with expect_rest_exception(404):
        tr.workspaces("WSnothex").fetch()
    with expect_rest_exception(404):
        ws.workers("WKnothex").fetch()
    with expect_rest_exception(404):
        ws.activities("WAnothex").fetch()
    with expect_rest_exception(404):
        ws.workflows("WW" + "0" * 31).fetch()


def test_wrong_token_is_401_20003(server, workspace):
    bad = make_client(server.base_url, server.account_sid, new_auth_token())
    with expect_rest_exception(401, 20003):
        bad.taskrouter.v1.workspaces(workspace.sid).fetch()
    with expect_rest_exception(401, 20003):
        bad.taskrouter.v1.workspaces.create(friendly_name="intruder")


def test_unknown_account_is_401(server, workspace):
    stranger = make_client(server.base_url, new_account_sid(), server.auth_token)
    with expect_rest_exception(401, 20003):
        stranger.taskrouter.v1.workspaces(workspace.sid).fetch()


def test_wrong_token_on_list_is_401(server):
    bad = make_client(server.base_url, server.account_sid, new_auth_token())
    with expect_error(401, 20003):
        bad.taskrouter.v1.workspaces.list()


def test_missing_credentials_is_401(client, base_url):
    response = client.http_client.request("GET", f"{base_url}/v1/Workspaces")
    assert response.status_code == 401


def test_error_body_shape(client, base_url):
    response = client.request("GET", f"{base_url}/v1/Workspaces/{missing_sid('WS')}")
    assert response.status_code == 404
    body = json.loads(response.text)
    assert body["status"] == 404
    assert body["code"] == 20404
    assert isinstance(body["message"], str) and body["message"]
    assert body["more_info"] == "https://www.twilio.com/docs/errors/20404"


def test_bad_request_code_20001(ws):
    with expect_rest_exception(400, 20001) as err:
        ws.workers.create(friendly_name="bad attrs", attributes="{bad")
    assert err.message


def test_failed_create_creates_nothing(ws):
    before = len(ws.workers.list())
    for attrs in ("{bad", "[", '{"a": ' + '"x"' * 3000 + "}"):
        with pytest.raises(TwilioRestException):
            ws.workers.create(friendly_name="never", attributes=attrs)
    assert len(ws.workers.list()) == before


def test_unknown_collection_path_is_404(client, base_url):
    response = client.request("GET", f"{base_url}/v1/Nope")
    assert response.status_code == 404


# ---------------------------------------------------------------------------
# Errors of the statistics and events resources must fail like any other Twilio
# API error (TwilioRestException with the right status, a numeric code and a
# message), not hang or return garbage.
# ---------------------------------------------------------------------------

INSTANCE_CALLS = {
    "statistics-bad-minutes": (400, lambda ws: ws.statistics().fetch(minutes=0)),
    "cumulative-bad-split": (400, lambda ws: ws.cumulative_statistics().fetch(split_by_wait_time="soon")),
    "real-time-unknown-channel": (400, lambda ws: ws.real_time_statistics().fetch(task_channel="nope")),
    "workers-statistics-bad-queue-sid": (400, lambda ws: ws.workers.statistics().fetch(task_queue_sid="WQnope")),
    "missing-queue-statistics": (404, lambda ws: ws.task_queues(missing_sid("WQ")).statistics().fetch()),
    "missing-queue-real-time": (404, lambda ws: ws.task_queues(missing_sid("WQ")).real_time_statistics().fetch()),
    "missing-queue-cumulative": (404, lambda ws: ws.task_queues(missing_sid("WQ")).cumulative_statistics().fetch()),
    "missing-worker-statistics": (404, lambda ws: ws.workers(missing_sid("WK")).statistics().fetch()),
    "missing-workflow-statistics": (404, lambda ws: ws.workflows(missing_sid("WW")).statistics().fetch()),
    "missing-workflow-real-time": (404, lambda ws: ws.workflows(missing_sid("WW")).real_time_statistics().fetch()),
    "event-fetch": (404, lambda ws: ws.events(missing_sid("EV")).fetch()),
}

LIST_CALLS = {
    "task-queues-statistics-bad-minutes": lambda ws: ws.task_queues.statistics.list(minutes=-1),
}


@pytest.mark.parametrize("status, call", INSTANCE_CALLS.values(), ids=INSTANCE_CALLS.keys())
def test_statistics_and_event_errors_raise_rest_exceptions(ws, status, call):
    with pytest.raises(TwilioRestException) as info:
        call(ws)
    assert info.value.status == status
    assert isinstance(info.value.code, int)
    assert isinstance(info.value.msg, str) and info.value.msg


@pytest.mark.parametrize("call", LIST_CALLS.values(), ids=LIST_CALLS.keys())
def test_statistics_list_errors_raise_twilio_exceptions(ws, call):
    """twilio-python raises a bare TwilioException for list() errors; the
    response still has to be a Twilio error envelope."""
    with pytest.raises(TwilioException) as info:
        call(ws)
    err = describe_error(info.value)
    assert err.status == 400
    assert isinstance(err.code, int)
    assert isinstance(err.message, str) and err.message
