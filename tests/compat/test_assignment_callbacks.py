"""Assignment callbacks (taskrouter-semantics.md §3.3, §8, §11 steps 6-9).

For every reservation, Taskyard POSTs the workflow's ``AssignmentCallbackUrl``
(form-encoded, signed with ``X-Twilio-Signature``) and acts on the answer:
``{}``/empty → the reservation waits for REST; ``accept``/``reject`` are
carried out; no answer in 5 s, a connection error, a non-2xx status or an
unusable body → one POST of the same parameters to
``FallbackAssignmentCallbackUrl``.  Every attempt is recorded as a
``reservation.assignment-callback`` Event.

A real HTTP receiver (``callbacks.CallbackReceiver``) plays the application.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator

from callbacks import ACCEPT, DEFER, EMPTY_200, Reply, assert_signed
from conftest import TaskyardServer, free_port, new_auth_token
from helpers import (
    ALICE_ATTRS,
    ASSIGNMENT_CALLBACK_EVENT,
    assert_sid,
    build_routing,
    callback_attempts,
    event_types,
    reservations_of,
    wait_callback_attempts,
    wait_reservations,
    wait_task_status,
    wait_until,
)

CALLBACK = "/assignment_callback"
FALLBACK = "/fallback_assignment_callback"

# The parameters Twilio documents for the assignment callback — exactly these.
DOCUMENTED_PARAMS = {
    "AccountSid",
    "WorkspaceSid",
    "WorkflowSid",
    "TaskQueueSid",
    "WorkerSid",
    "WorkerAttributes",
    "TaskSid",
    "TaskAttributes",
    "TaskAge",
    "TaskPriority",
    "ReservationSid",
    "Timestamp",
}

SPANISH_TASK = {"selected_language": "es"}


# ---------------------------------------------------------------------------
# Set-up and checks
# ---------------------------------------------------------------------------


def callback_routing(ws, receiver, *, workers=1, fallback=True, callback_url=None, **kwargs):
    """``build_routing`` whose workflow calls the receiver back (``CALLBACK``,
    and ``FALLBACK`` as fallback unless ``fallback=False``)."""
    setup = build_routing(ws, workers=workers, **kwargs)
    setup.url = callback_url or receiver.url(CALLBACK)
    setup.fallback_url = receiver.url(FALLBACK) if fallback else None
    update = {"assignment_callback_url": setup.url}
    if fallback:
        update["fallback_assignment_callback_url"] = setup.fallback_url
    wf = ws.workflows(setup.workflow.sid).update(**update)
    assert wf.assignment_callback_url == setup.url
    assert wf.fallback_assignment_callback_url == setup.fallback_url
    return setup


def first_reservation(ws, setup, receiver, *, attributes=None, priority=None):
    """Create a task on the setup's workflow; wait for its reservation and
    return (task, reservation)."""
    kwargs = {"workflow_sid": setup.workflow.sid, "attributes": json.dumps(attributes or {"type": "support"})}
    if priority is not None:
        kwargs["priority"] = priority
    task = ws.tasks.create(**kwargs)
    (reservation,) = wait_reservations(ws, task.sid, 1, "pending")
    return task, reservation


def check_attempt(event, *, reservation, url, kind, outcome, status=None, error_code=None):
    """One ``reservation.assignment-callback`` event (string values throughout)."""
    assert event.event_type == ASSIGNMENT_CALLBACK_EVENT
    assert_sid(event.sid, "EV")
    assert event.resource_type == "reservation"
    assert event.resource_sid == reservation.sid
    data = event.event_data
    assert isinstance(data, dict)
    assert all(isinstance(v, str) for v in data.values()), data
    assert data["reservation_sid"] == reservation.sid
    assert data["task_sid"] == reservation.task_sid
    assert data["worker_sid"] == reservation.worker_sid
    assert data["callback_url"] == url
    assert data["callback_kind"] == kind
    assert data["callback_outcome"] == outcome, data
    if status is None:
        assert "callback_status_code" not in data, data
    else:
        assert data["callback_status_code"] == str(status), data
    assert int(data["callback_duration_ms"]) >= 0
    if error_code is None:
        assert "callback_error_code" not in data, data
    else:
        assert data["callback_error_code"] == str(error_code), data
    if outcome in ("failed", "invalid", "error"):
        assert data.get("callback_message"), f"a {outcome} attempt should say why: {data}"
    return data


def reservation_status(ws, task_sid, reservation_sid):
    return ws.tasks(task_sid).reservations(reservation_sid).fetch().reservation_status


def assert_still_pending(ws, task, reservation):
    assert reservation_status(ws, task.sid, reservation.sid) == "pending"
    assert ws.tasks(task.sid).fetch().assignment_status == "reserved"


# ---------------------------------------------------------------------------
# The request
# ---------------------------------------------------------------------------


def test_quickstart_callback_request_and_deferred_answer(quickstart, server, receiver):
    """Quickstart steps 5-7 with the callback: Alice becomes available, the
    server POSTs exactly the documented parameters, signed so that Twilio's
    RequestValidator accepts them; the app answers ``{}`` so the reservation
    waits, and it is then accepted through the REST API."""
    qs = quickstart
    url = receiver.url(CALLBACK)
    receiver.answer(CALLBACK, DEFER)
    qs.ws.workflows(qs.workflow.sid).update(assignment_callback_url=url)

    created = time.time()
    task = qs.ws.tasks.create(attributes=json.dumps(SPANISH_TASK), workflow_sid=qs.workflow.sid)
    time.sleep(1.2)  # let the task age, so that TaskAge says something
    assert receiver.requests() == [], "nobody is available yet: no reservation, no callback"

    before = time.time()
    qs.ws.workers(qs.alice.sid).update(activity_sid=qs.acts["Available"].sid)
    (req,) = receiver.wait_count(CALLBACK, 1)
    after = time.time()
    (reservation,) = wait_reservations(qs.ws, task.sid, 1, "pending")

    assert req.method == "POST"
    assert req.header("Content-Type").startswith("application/x-www-form-urlencoded")
    params = req.params
    assert set(params) == DOCUMENTED_PARAMS
    assert params["AccountSid"] == server.account_sid
    assert params["WorkspaceSid"] == qs.workspace.sid
    assert params["WorkflowSid"] == qs.workflow.sid
    assert params["TaskQueueSid"] == qs.spanish.sid
    assert params["WorkerSid"] == qs.alice.sid
    assert json.loads(params["WorkerAttributes"]) == ALICE_ATTRS
    assert params["TaskSid"] == task.sid
    assert json.loads(params["TaskAttributes"]) == SPANISH_TASK
    assert params["TaskPriority"] == "0"
    assert params["ReservationSid"] == reservation.sid
    age = int(params["TaskAge"])
    assert 1 <= age <= int(after - created) + 1, f"TaskAge {age}"
    timestamp = int(params["Timestamp"])
    assert int(before) - 1 <= timestamp <= after + 1, f"Timestamp {timestamp} not in [{before}, {after}]"

    assert req.header("User-Agent") == "TwilioProxy/1.1"
    assert req.header("I-Twilio-Idempotency-Token")
    assert_signed(server.auth_token, url, req)
    signature = req.header("X-Twilio-Signature")
    validator = RequestValidator(server.auth_token)
    assert not validator.validate(url, {**params, "TaskPriority": "1"}, signature)
    assert not validator.validate(url + "?x=1", params, signature)
    assert not RequestValidator(new_auth_token()).validate(url, params, signature)

    # Step 6: `{}` → the reservation waits.
    (attempt,) = wait_callback_attempts(qs.ws, reservation.sid)
    check_attempt(attempt, reservation=reservation, url=url, kind="assignment", outcome="deferred", status=200)
    assert_still_pending(qs.ws, task, reservation)

    # Step 7: accept through the REST API.
    accepted = qs.ws.tasks(task.sid).reservations(reservation.sid).update(reservation_status="accepted")
    assert (accepted.reservation_status, accepted.worker_name) == ("accepted", "Alice")
    assert qs.ws.tasks(task.sid).fetch().assignment_status == "assigned"
    assert len(receiver.requests(CALLBACK)) == 1


def test_signature_covers_query_string(ws, server, receiver):
    """The signed URL is the configured one, query string included (§8 step 1)."""
    setup = callback_routing(ws, receiver, fallback=False,
                             callback_url=receiver.url(CALLBACK + "?team=support&tier=2"))
    receiver.answer(CALLBACK, DEFER)
    first_reservation(ws, setup, receiver)
    (req,) = receiver.wait_count(CALLBACK, 1)
    assert req.path == CALLBACK + "?team=support&tier=2"
    assert set(req.params) == DOCUMENTED_PARAMS
    assert_signed(server.auth_token, setup.url, req)
    assert not RequestValidator(server.auth_token).validate(
        receiver.url(CALLBACK), req.params, req.header("X-Twilio-Signature")
    )


def test_one_callback_per_reservation(ws, receiver):
    """MaxReservedWorkers=2 and two free workers: two reservations, two
    callbacks, each naming its own reservation and worker (§3.3)."""
    setup = callback_routing(ws, receiver, workers=2, max_reserved_workers=2)
    receiver.answer(CALLBACK, DEFER)
    task = ws.tasks.create(workflow_sid=setup.workflow.sid, attributes="{}")
    reservations = wait_reservations(ws, task.sid, 2, "pending")
    reqs = receiver.wait_count(CALLBACK, 2)
    assert len(reqs) == 2
    assert {r.params["ReservationSid"] for r in reqs} == {r.sid for r in reservations}
    assert {r.params["WorkerSid"] for r in reqs} == {w.sid for w in setup.workers}
    assert {r.params["TaskSid"] for r in reqs} == {task.sid}
    by_worker = {r.params["WorkerSid"]: r.params["ReservationSid"] for r in reqs}
    assert by_worker == {r.worker_sid: r.sid for r in reservations}
    assert receiver.requests(FALLBACK) == []


# ---------------------------------------------------------------------------
# Answers that are carried out
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [EMPTY_200, Reply(200, "", "text/html"), DEFER, Reply.json({}, content_type="application/json; charset=utf-8")],
    ids=["empty-no-type", "empty-text-html", "json-{}", "json-{}-charset"],
)
def test_empty_answer_defers(ws, receiver, reply):
    """200 with an empty body, or ``{}`` as application/json: the reservation
    stays pending, the fallback URL is not called."""
    setup = callback_routing(ws, receiver)
    receiver.answer(CALLBACK, reply)
    task, reservation = first_reservation(ws, setup, receiver)
    (attempt,) = wait_callback_attempts(ws, reservation.sid)
    check_attempt(attempt, reservation=reservation, url=setup.url, kind="assignment", outcome="deferred", status=200)
    assert_still_pending(ws, task, reservation)
    receiver.assert_quiet(FALLBACK, 0, 0.3)
    assert len(callback_attempts(ws, reservation.sid)) == 1


def test_json_without_instruction_defers_with_warning_40005(ws, receiver):
    """A JSON object without ``instruction``: warning 40005, the reservation
    stays pending, no fallback (§3.3)."""
    setup = callback_routing(ws, receiver)
    receiver.answer(CALLBACK, Reply.json({"note": "no instruction here"}))
    task, reservation = first_reservation(ws, setup, receiver)
    (attempt,) = wait_callback_attempts(ws, reservation.sid)
    check_attempt(attempt, reservation=reservation, url=setup.url, kind="assignment", outcome="deferred",
                  status=200, error_code=40005)
    assert_still_pending(ws, task, reservation)
    receiver.assert_quiet(FALLBACK, 0, 0.3)


def test_accept_instruction(ws, receiver):
    """Quickstart step 8: ``{"instruction": "accept"}`` → reservation accepted,
    task assigned, without any REST call; TaskPriority is the task's."""
    setup = callback_routing(ws, receiver)
    receiver.answer(CALLBACK, ACCEPT)
    task = ws.tasks.create(workflow_sid=setup.workflow.sid, attributes=json.dumps({"vip": True}), priority=7)
    (req,) = receiver.wait_count(CALLBACK, 1)
    assert req.params["TaskPriority"] == "7"
    assert json.loads(req.params["TaskAttributes"]) == {"vip": True}
    assigned = wait_task_status(ws, task.sid, "assigned")
    assert assigned.assignment_status == "assigned"
    (reservation,) = ws.tasks(task.sid).reservations.list()
    assert reservation.sid == req.params["ReservationSid"]
    assert reservation.reservation_status == "accepted"
    (attempt,) = wait_callback_attempts(ws, reservation.sid)
    check_attempt(attempt, reservation=reservation, url=setup.url, kind="assignment", outcome="accepted", status=200)
    # the attempt is recorded before what the instruction caused
    types = event_types(ws.events.list(reservation_sid=reservation.sid))
    assert types.index("reservation.created") < types.index(ASSIGNMENT_CALLBACK_EVENT) < types.index(
        "reservation.accepted"
    ), types
    receiver.assert_quiet(FALLBACK, 0, 0.2)


def test_reject_instruction_moves_worker_and_reroutes(ws, receiver):
    """Quickstart step 9: ``{"instruction":"reject","activity_sid":"<Offline>"}``
    → reservation rejected, worker Offline, task offered to the other worker.
    When that one rejects too (no activity_sid: keeps its activity) the task
    waits, and is never offered again to a worker who rejected it."""
    setup = callback_routing(ws, receiver, workers=2)
    offline = setup.acts["Offline"].sid
    receiver.answer(
        CALLBACK,
        Reply.json({"instruction": "reject", "activity_sid": offline}),
        Reply.json({"instruction": "reject"}),
    )
    task = ws.tasks.create(workflow_sid=setup.workflow.sid, attributes="{}")
    first, second = receiver.wait_count(CALLBACK, 2)
    rejecter, other = first.params["WorkerSid"], second.params["WorkerSid"]
    assert {rejecter, other} == {w.sid for w in setup.workers}
    assert first.params["ReservationSid"] != second.params["ReservationSid"]
    assert first.params["TaskSid"] == second.params["TaskSid"] == task.sid

    moved = ws.workers(rejecter).fetch()
    assert (moved.activity_sid, moved.activity_name, moved.available) == (offline, "Offline", False)
    r1 = ws.tasks(task.sid).reservations(first.params["ReservationSid"]).fetch()
    assert r1.reservation_status == "rejected"
    (attempt,) = wait_callback_attempts(ws, r1.sid)
    check_attempt(attempt, reservation=r1, url=setup.url, kind="assignment", outcome="rejected", status=200)
    rejected_types = event_types(ws.events.list(reservation_sid=r1.sid))
    assert "reservation.rejected" in rejected_types
    activity_updates = ws.events.list(event_type="worker.activity.update", worker_sid=rejecter)
    assert [e.event_data["worker_activity_name"] for e in activity_updates][-1:] == ["Offline"]

    # the second worker rejects without activity_sid: keeps "Available"
    pending = wait_task_status(ws, task.sid, "pending")
    assert pending.assignment_status == "pending"
    r2 = ws.tasks(task.sid).reservations(second.params["ReservationSid"]).fetch()
    assert r2.reservation_status == "rejected"
    assert ws.workers(other).fetch().activity_name == "Available"
    receiver.assert_quiet(CALLBACK, 2, 0.7)  # not offered to `other` again although it is available
    assert [r.reservation_status for r in ws.tasks(task.sid).reservations.list()] == ["rejected", "rejected"]
    assert ws.tasks(task.sid).fetch().assignment_status == "pending"
    assert receiver.requests(FALLBACK) == []


def test_reject_with_unknown_activity_is_error_40100(ws, receiver):
    """``reject`` naming an Activity that does not exist: recorded with 40100,
    the reservation stays pending (it is not rejected without the move)."""
    setup = callback_routing(ws, receiver)
    receiver.answer(CALLBACK, Reply.json({"instruction": "reject", "activity_sid": "WA" + "0" * 32}))
    task, reservation = first_reservation(ws, setup, receiver)
    (attempt,) = wait_callback_attempts(ws, reservation.sid)
    assert attempt.event_data["callback_error_code"] == "40100"
    assert attempt.event_data["callback_outcome"] in ("error", "invalid")
    assert_still_pending(ws, task, reservation)


# ---------------------------------------------------------------------------
# Fallback
# ---------------------------------------------------------------------------

FAILURES = {
    # name: (reply of the assignment callback URL, recorded status, recorded error code)
    "http-500": (Reply(500, "Internal Server Error", "text/plain"), 500, None),
    "http-404": (Reply(404, '{"instruction":"accept"}', "application/json"), 404, None),
    "text-plain-body": (Reply(200, '{"instruction":"accept"}', "text/plain"), 200, 40000),
    "unparsable-json": (Reply(200, '{"instruction": accept', "application/json"), 200, 40001),
    "hang-up": (Reply.hang_up(), None, None),
}


@pytest.mark.parametrize("name", list(FAILURES))
def test_unusable_answer_goes_to_fallback(ws, server, receiver, name):
    """A non-2xx status, a body that is not application/json (40000), JSON
    that does not parse (40001) or a connection closed without answer: ONE
    POST of the same parameters to FallbackAssignmentCallbackUrl, whose
    ``accept`` is carried out."""
    reply, status, code = FAILURES[name]
    setup = callback_routing(ws, receiver)
    receiver.answer(CALLBACK, reply)
    receiver.answer(FALLBACK, ACCEPT)
    task = ws.tasks.create(workflow_sid=setup.workflow.sid, attributes=json.dumps({"case": name}))
    (primary,) = receiver.wait_count(CALLBACK, 1)
    (fallback,) = receiver.wait_count(FALLBACK, 1)
    assert set(primary.params) == DOCUMENTED_PARAMS
    assert fallback.params == primary.params
    assert_signed(server.auth_token, setup.url, primary)
    assert_signed(server.auth_token, setup.fallback_url, fallback)
    assert fallback.header("User-Agent") == "TwilioProxy/1.1"

    wait_task_status(ws, task.sid, "assigned")
    (reservation,) = ws.tasks(task.sid).reservations.list()
    assert reservation.reservation_status == "accepted"
    first, second = wait_callback_attempts(ws, reservation.sid, 2)
    check_attempt(first, reservation=reservation, url=setup.url, kind="assignment", outcome="failed",
                  status=status, error_code=code)
    check_attempt(second, reservation=reservation, url=setup.fallback_url, kind="fallback",
                  outcome="accepted", status=200)
    receiver.assert_quiet(FALLBACK, 1, 0.3)
    assert len(receiver.requests(CALLBACK)) == 1


def test_connection_refused_goes_to_fallback(ws, server, receiver):
    """Nothing listens at AssignmentCallbackUrl: the fallback gets the
    documented parameters; its ``{}`` leaves the reservation pending."""
    refused = f"http://127.0.0.1:{free_port()}{CALLBACK}"
    setup = callback_routing(ws, receiver, callback_url=refused)
    receiver.answer(FALLBACK, DEFER)
    task, reservation = first_reservation(ws, setup, receiver)
    (fallback,) = receiver.wait_count(FALLBACK, 1)
    assert set(fallback.params) == DOCUMENTED_PARAMS
    assert fallback.params["ReservationSid"] == reservation.sid
    assert fallback.params["TaskSid"] == task.sid
    assert_signed(server.auth_token, setup.fallback_url, fallback)
    first, second = wait_callback_attempts(ws, reservation.sid, 2)
    check_attempt(first, reservation=reservation, url=refused, kind="assignment", outcome="failed")
    check_attempt(second, reservation=reservation, url=setup.fallback_url, kind="fallback",
                  outcome="deferred", status=200)
    assert_still_pending(ws, task, reservation)
    assert receiver.requests(CALLBACK) == []


def test_no_answer_within_5_seconds_goes_to_fallback(ws, receiver):
    """The one slow test: the application answers ``accept`` after 6 s.  The
    server gives up after 5 s, POSTs the fallback (which defers), and the late
    ``accept`` is never carried out."""
    setup = callback_routing(ws, receiver)
    receiver.answer(CALLBACK, Reply.json({"instruction": "accept"}, delay=6.0))
    receiver.answer(FALLBACK, DEFER)
    task, reservation = first_reservation(ws, setup, receiver)
    (primary,) = receiver.wait_count(CALLBACK, 1)
    (fallback,) = receiver.wait_count(FALLBACK, 1, timeout=10)
    waited = fallback.at - primary.at
    assert 4.5 <= waited < 6.0, f"fallback came {waited:.2f}s after the callback (timeout is 5 s)"
    assert fallback.params == primary.params
    first, second = wait_callback_attempts(ws, reservation.sid, 2)
    data = check_attempt(first, reservation=reservation, url=setup.url, kind="assignment", outcome="failed")
    assert 4500 <= int(data["callback_duration_ms"]) < 6000, data
    check_attempt(second, reservation=reservation, url=setup.fallback_url, kind="fallback",
                  outcome="deferred", status=200)
    # past the moment the late answer was sent: still pending
    time.sleep(max(0.0, primary.at + 6.5 - time.monotonic()))
    assert_still_pending(ws, task, reservation)
    assert len(callback_attempts(ws, reservation.sid)) == 2


def test_fallback_failing_too_leaves_reservation_to_time_out(ws, receiver):
    """Both URLs fail (500, then 503): nothing else is tried, the reservation
    stays pending until TaskReservationTimeout, then times out."""
    setup = callback_routing(ws, receiver, task_reservation_timeout=3)
    receiver.answer(CALLBACK, Reply(500))
    receiver.answer(FALLBACK, Reply(503))
    task, reservation = first_reservation(ws, setup, receiver)
    first, second = wait_callback_attempts(ws, reservation.sid, 2)
    check_attempt(first, reservation=reservation, url=setup.url, kind="assignment", outcome="failed", status=500)
    check_attempt(second, reservation=reservation, url=setup.fallback_url, kind="fallback", outcome="failed",
                  status=503)
    assert_still_pending(ws, task, reservation)
    timed_out = wait_until(
        lambda: ws.tasks(task.sid).reservations(reservation.sid).fetch(),
        lambda r: r.reservation_status == "timeout",
        timeout=8,
        what="reservation timeout",
    )
    assert timed_out.reservation_status == "timeout"
    assert "reservation.timeout" in event_types(ws.events.list(reservation_sid=reservation.sid))
    assert len(receiver.requests(CALLBACK)) == 1
    assert len(receiver.requests(FALLBACK)) == 1
    assert len(callback_attempts(ws, reservation.sid)) == 2


def test_failure_without_fallback_url(ws, receiver):
    """No FallbackAssignmentCallbackUrl: a failed callback is recorded and the
    reservation simply waits."""
    setup = callback_routing(ws, receiver, fallback=False)
    receiver.answer(CALLBACK, Reply(502))
    task, reservation = first_reservation(ws, setup, receiver)
    (attempt,) = wait_callback_attempts(ws, reservation.sid)
    check_attempt(attempt, reservation=reservation, url=setup.url, kind="assignment", outcome="failed", status=502)
    assert_still_pending(ws, task, reservation)
    receiver.assert_quiet(CALLBACK, 1, 0.3)


# ---------------------------------------------------------------------------
# Instructions that are not carried out
# ---------------------------------------------------------------------------


def test_unknown_instruction_is_55555_without_fallback(ws, receiver):
    """A valid JSON answer with an unknown instruction: error 55555 recorded,
    the reservation stays pending, the fallback is NOT called."""
    setup = callback_routing(ws, receiver)
    receiver.answer(CALLBACK, Reply.json({"instruction": "teleport"}))
    task, reservation = first_reservation(ws, setup, receiver)
    (attempt,) = wait_callback_attempts(ws, reservation.sid)
    check_attempt(attempt, reservation=reservation, url=setup.url, kind="assignment", outcome="invalid",
                  status=200, error_code=55555)
    receiver.assert_quiet(FALLBACK, 0, 0.5)
    assert_still_pending(ws, task, reservation)


@pytest.mark.parametrize(
    "answer, code",
    [
        ({"instruction": "call", "url": "https://example.com/agent_answer"}, 40111),
        ({"instruction": "call", "from": "+15005550006"}, 40112),
    ],
    ids=["call-without-from", "call-without-url"],
)
def test_call_without_required_field(ws, receiver, answer, code):
    """``call`` needs ``from`` (40111) and ``url`` (40112)."""
    setup = callback_routing(ws, receiver)
    receiver.answer(CALLBACK, Reply.json(answer))
    task, reservation = first_reservation(ws, setup, receiver)
    (attempt,) = wait_callback_attempts(ws, reservation.sid)
    check_attempt(attempt, reservation=reservation, url=setup.url, kind="assignment", outcome="invalid",
                  status=200, error_code=code)
    assert_still_pending(ws, task, reservation)
    receiver.assert_quiet(FALLBACK, 0, 0.2)


TELEPHONY_ANSWERS = {
    "dequeue": {"instruction": "dequeue", "from": "+18005550100", "timeout": 30},
    "call": {"instruction": "call", "from": "+15005550006", "url": "https://example.com/agent_answer",
             "accept": True},
    "redirect": {"instruction": "redirect", "call_sid": "CA" + "1" * 32, "url": "https://example.com/twiml",
                 "accept": True},
    "conference": {"instruction": "conference", "from": "+18005550100", "to": "client:alice"},
    "supervise": {"instruction": "supervise", "from": "+18005550100", "contact_uri": "client:supervisor"},
}


@pytest.mark.parametrize("instruction", list(TELEPHONY_ANSWERS))
def test_telephony_instruction_unsupported_without_media_connector(ws, receiver, instruction):
    """Taskyard has no telephony: without a media connector these answers are
    recorded as ``unsupported`` and the reservation stays pending (even with
    ``accept: true``); they are valid answers, so no fallback."""
    setup = callback_routing(ws, receiver)
    receiver.answer(CALLBACK, Reply.json(TELEPHONY_ANSWERS[instruction]))
    task, reservation = first_reservation(ws, setup, receiver)
    (attempt,) = wait_callback_attempts(ws, reservation.sid)
    check_attempt(attempt, reservation=reservation, url=setup.url, kind="assignment", outcome="unsupported",
                  status=200)
    assert_still_pending(ws, task, reservation)
    receiver.assert_quiet(FALLBACK, 0, 0.2)


MEDIA = "/media-connector"
# docs/events.md: the SIDs, the instruction, and the attributes a connector needs to place the call.
CONNECTOR_PARAMS = {"Instruction", "InstructionJson", "ReservationSid", "TaskSid", "WorkerSid", "WorkspaceSid",
                    "AccountSid", "TaskAttributes", "WorkerAttributes"}


@pytest.fixture
def media_server(receiver):
    """A server of its own, started with TASKYARD_MEDIA_CONNECTOR_URL pointing
    at the receiver."""
    tmp = Path(tempfile.mkdtemp(prefix="taskyard-media-"))
    srv = TaskyardServer(tmp / "data", log_path=tmp / "taskyard.log",
                         env={"TASKYARD_MEDIA_CONNECTOR_URL": receiver.url(MEDIA)})
    srv.start()
    yield srv
    srv.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("instruction", ["dequeue", "call"])
def test_telephony_instruction_forwarded_to_media_connector(media_server, receiver, instruction):
    """With TASKYARD_MEDIA_CONNECTOR_URL set, a telephony answer is forwarded
    there as a signed POST (Instruction, InstructionJson and the SIDs) and
    recorded as ``forwarded``."""
    tr = media_server.client().taskrouter.v1
    workspace = tr.workspaces.create(friendly_name="media")
    ws = tr.workspaces(workspace.sid)
    setup = callback_routing(ws, receiver)
    answer = TELEPHONY_ANSWERS[instruction]
    receiver.answer(CALLBACK, Reply.json(answer))
    receiver.answer(MEDIA, EMPTY_200)
    task = ws.tasks.create(workflow_sid=setup.workflow.sid, attributes=json.dumps({"type": "support"}))
    # Its one reservation, whatever its status: `call` with "accept": true may have accepted
    # it before the first look (the callback and the connector answer in a millisecond).
    (reservation,) = wait_until(lambda: reservations_of(ws, task.sid), lambda rs: len(rs) == 1,
                                what=f"the reservation of {task.sid}")
    (forwarded,) = receiver.wait_count(MEDIA, 1)
    params = forwarded.params
    assert CONNECTOR_PARAMS <= set(params)
    assert params["Instruction"] == instruction
    assert json.loads(params["InstructionJson"]) == answer
    assert params["ReservationSid"] == reservation.sid
    assert params["TaskSid"] == task.sid
    assert params["WorkerSid"] == reservation.worker_sid
    assert params["WorkspaceSid"] == workspace.sid
    assert params["AccountSid"] == media_server.account_sid
    assert_signed(media_server.auth_token, receiver.url(MEDIA), forwarded)
    attempts = wait_callback_attempts(ws, reservation.sid)
    check_attempt(attempts[0], reservation=reservation, url=setup.url, kind="assignment", outcome="forwarded",
                  status=200)
    # Taskyard also records the POST to the connector (kind "media-connector");
    # `call` with "accept": true accepts the reservation once the connector took it.
    accepts = answer.get("accept") is True
    for extra in callback_attempts(ws, reservation.sid)[1:]:
        check_attempt(extra, reservation=reservation, url=receiver.url(MEDIA), kind="media-connector",
                      outcome="accepted" if accepts else "forwarded", status=200)
    expected_status = "accepted" if accepts else "pending"
    assert reservation_status(ws, task.sid, reservation.sid) == expected_status
    receiver.assert_quiet(FALLBACK, 0, 0.2)
    receiver.assert_quiet(MEDIA, 1, 0.2)
    assert set(params) == CONNECTOR_PARAMS, f"unexpected parameters: {sorted(set(params) - CONNECTOR_PARAMS)}"
