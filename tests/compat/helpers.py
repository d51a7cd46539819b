"""Assertion and setup helpers shared by the compatibility tests."""

from __future__ import annotations

import json
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any, Dict, Iterator, Optional

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException

# ---------------------------------------------------------------------------
# Field assertions
# ---------------------------------------------------------------------------


def assert_sid(value: Any, prefix: str) -> None:
    """A Twilio SID: 2-letter prefix + 32 lowercase hex characters."""
    assert isinstance(value, str) and re.fullmatch(prefix + "[0-9a-f]{32}", value), (
        f"expected a {prefix} SID ({prefix} + 32 hex), got {value!r}"
    )


def assert_datetime(value: Any) -> None:
    """The helper library parses ISO-8601 `...Z` timestamps into aware datetimes
    and leaves the raw string in place when the format is wrong."""
    assert isinstance(value, datetime), f"expected an ISO-8601 UTC timestamp, got {value!r}"
    assert value.tzinfo is not None


def assert_json_equal(json_text: Any, expected: Any) -> None:
    """`attributes` / `configuration` are JSON documents carried in a string."""
    assert isinstance(json_text, str), f"expected a JSON string, got {type(json_text).__name__}: {json_text!r}"
    assert json.loads(json_text) == expected


def unique_name(prefix: str = "yard") -> str:
    return f"{prefix} {uuid.uuid4().hex[:10]}"


def fields(instance: Any, base_url: Optional[str] = None) -> Dict[str, Any]:
    """Public fields of a helper-library resource instance as a plain dict.

    With ``base_url`` the absolute ``url`` and ``links`` are made relative, so a
    snapshot taken before a restart on another port compares equal.
    """
    out = {k: v for k, v in vars(instance).items() if not k.startswith("_")}
    if base_url:
        out = _strip_base(out, base_url.rstrip("/"))
    return out


def _strip_base(value: Any, base: str) -> Any:
    if isinstance(value, str) and value.startswith(base + "/"):
        return value[len(base):]
    if isinstance(value, dict):
        return {k: _strip_base(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_base(v, base) for v in value]
    return value


def header(headers: Dict[str, str], name: str) -> Optional[str]:
    """Case-insensitive header lookup (the library hands back a plain dict)."""
    for k, v in (headers or {}).items():
        if k.lower() == name.lower():
            return v
    return None


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


@dataclass
class Caught:
    """Normalised view of an API error raised by the helper library."""

    status: Optional[int] = None
    code: Any = None
    message: Any = None
    exception: Optional[BaseException] = None
    body: Dict[str, Any] = field(default_factory=dict)


def describe_error(exc: TwilioException) -> Caught:
    """Instance operations (create/fetch/update/delete) raise TwilioRestException
    with .status/.code/.msg.  List operations (list/stream/page) in twilio-python
    9.x raise a bare ``TwilioException("Unable to fetch page", response)`` – the
    HTTP response is the second argument, so decode it ourselves."""
    if isinstance(exc, TwilioRestException):
        return Caught(status=exc.status, code=exc.code, message=exc.msg, exception=exc)
    response = exc.args[1] if len(exc.args) > 1 else None
    if response is None or not hasattr(response, "status_code"):
        return Caught(exception=exc)
    try:
        body = json.loads(response.text)
    except (TypeError, ValueError):
        body = {}
    if not isinstance(body, dict):
        body = {}
    return Caught(
        status=response.status_code,
        code=body.get("code"),
        message=body.get("message"),
        exception=exc,
        body=body,
    )


@contextmanager
def expect_error(status: int, code: Optional[int] = None) -> Iterator[Caught]:
    """Expect the helper library to raise for an HTTP ``status`` (and Twilio ``code``)."""
    caught = Caught()
    with pytest.raises(TwilioException) as info:
        yield caught
    got = describe_error(info.value)
    caught.status, caught.code, caught.message = got.status, got.code, got.message
    caught.exception, caught.body = got.exception, got.body
    assert got.status == status, (
        f"expected HTTP {status}, got {got.status} (code {got.code!r}): {got.message!r}"
    )
    if code is not None:
        assert got.code == code, f"expected error code {code}, got {got.code!r}: {got.message!r}"


@contextmanager
def expect_rest_exception(status: int, code: Optional[int] = None) -> Iterator[Caught]:
    """Like expect_error, but the exception must be a TwilioRestException
    (what create/fetch/update/delete raise for any non-2xx answer)."""
    caught = Caught()
    with pytest.raises(TwilioRestException) as info:
        yield caught
    err = info.value
    caught.status, caught.code, caught.message, caught.exception = err.status, err.code, err.msg, err
    assert err.status == status, f"expected HTTP {status}, got {err.status} (code {err.code!r}): {err.msg!r}"
    if code is not None:
        assert err.code == code, f"expected error code {code}, got {err.code!r}: {err.msg!r}"


def api_message(caught: "Caught") -> str:
    """The server's own ``message``: twilio-python prefixes the body's message
    with its own text ("Unable to update record: …") in TwilioRestException.msg."""
    msg = caught.message or ""
    for prefix in ("Unable to create record: ", "Unable to update record: ", "Unable to fetch record: ",
                   "Unable to delete record: "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


def call_or_xfail_if_501(call):
    """Run ``call``; if Taskyard answers 501 (a feature it documents as not
    implemented yet), report the test as xfail instead of failing."""
    try:
        return call()
    except TwilioException as e:
        err = describe_error(e)
        if err.status == 501:
            pytest.xfail(f"not implemented by Taskyard yet (501): {err.message}")
        raise


def missing_sid(prefix: str) -> str:
    """A well-formed SID that does not exist."""
    return prefix + uuid.uuid4().hex


def race(n: int, action) -> list:
    """Run ``action()`` in ``n`` threads released at the same instant.
    Returns each result, or the HTTP status of the TwilioRestException raised."""
    import threading

    results: list = []
    barrier = threading.Barrier(n)

    def run():
        barrier.wait()
        try:
            results.append(action())
        except TwilioRestException as e:
            results.append(e.status)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


# ---------------------------------------------------------------------------
# Setup helpers
# ---------------------------------------------------------------------------


def activities_by_name(ws) -> Dict[str, Any]:
    return {a.friendly_name: a for a in ws.activities.list()}


def routing_config(filters=(), default_queue: Optional[str] = None) -> str:
    """Build a Workflow configuration document (JSON string).

    ``filters``: iterable of (filter_friendly_name, expression, queue_sid).
    """
    doc: Dict[str, Any] = {
        "task_routing": {
            "filters": [
                {"filter_friendly_name": name, "expression": expr, "targets": [{"queue": queue}]}
                for name, expr, queue in filters
            ]
        }
    }
    if default_queue is not None:
        doc["task_routing"]["default_filter"] = {"queue": default_queue}
    return json.dumps(doc)


ALICE_ATTRS = {"languages": ["en", "es"]}
BOB_ATTRS = {"languages": ["en"]}
SPANISH_QUEUE = "Customer Care Requests - Spanish"
ENGLISH_QUEUE = "Customer Care Requests - English"
QUICKSTART_WORKFLOW = "Incoming Customer Care Requests"


def quickstart_config(spanish_sid: str, english_sid: str) -> Dict[str, Any]:
    """Workflow document of taskrouter-semantics.md §11 step 4 (default queue "None")."""
    return {
        "task_routing": {
            "filters": [
                {
                    "filter_friendly_name": "Language - Spanish",
                    "expression": 'selected_language == "es"',
                    "targets": [{"queue": spanish_sid}],
                },
                {
                    "filter_friendly_name": "Language - English",
                    "expression": 'selected_language == "en"',
                    "targets": [{"queue": english_sid}],
                },
            ]
        }
    }


def build_quickstart(tr, friendly_name: Optional[str] = None) -> SimpleNamespace:
    """TaskRouter quickstart Part 1 (taskrouter-semantics.md §11): workspace,
    workers Alice and Bob, Spanish/English queues and the language workflow."""
    workspace = tr.workspaces.create(friendly_name=friendly_name or unique_name("Quickstart"))
    ws = tr.workspaces(workspace.sid)
    alice = ws.workers.create(friendly_name="Alice", attributes=json.dumps(ALICE_ATTRS))
    bob = ws.workers.create(friendly_name="Bob", attributes=json.dumps(BOB_ATTRS))
    spanish = ws.task_queues.create(friendly_name=SPANISH_QUEUE, target_workers='languages HAS "es"')
    english = ws.task_queues.create(friendly_name=ENGLISH_QUEUE, target_workers='languages HAS "en"')
    config = quickstart_config(spanish.sid, english.sid)
    workflow = ws.workflows.create(
        friendly_name=QUICKSTART_WORKFLOW,
        configuration=json.dumps(config),
        task_reservation_timeout=1200,
    )
    return SimpleNamespace(
        workspace=workspace,
        ws=ws,
        alice=alice,
        bob=bob,
        spanish=spanish,
        english=english,
        workflow=workflow,
        config=config,
    )


def snapshot_workspace(tr, workspace_sid: str, base_url: str) -> Dict[str, Any]:
    """Everything a user can read about a workspace's configuration, as plain
    dicts keyed by SID (single-resource fetches, so attributes are included)."""
    ws = tr.workspaces(workspace_sid)
    snap: Dict[str, Any] = {"workspace": fields(ws.fetch(), base_url)}
    snap["activities"] = {a.sid: fields(ws.activities(a.sid).fetch(), base_url) for a in ws.activities.list()}
    snap["task_channels"] = {
        c.sid: fields(ws.task_channels(c.sid).fetch(), base_url) for c in ws.task_channels.list()
    }
    snap["workers"] = {}
    snap["worker_channels"] = {}
    for w in ws.workers.list():
        snap["workers"][w.sid] = fields(ws.workers(w.sid).fetch(), base_url)
        snap["worker_channels"][w.sid] = {
            c.sid: fields(c, base_url) for c in ws.workers(w.sid).worker_channels.list()
        }
    snap["task_queues"] = {q.sid: fields(ws.task_queues(q.sid).fetch(), base_url) for q in ws.task_queues.list()}
    snap["workflows"] = {f.sid: fields(ws.workflows(f.sid).fetch(), base_url) for f in ws.workflows.list()}
    return snap


# ---------------------------------------------------------------------------
# Tasks and reservations
# ---------------------------------------------------------------------------

# A reservation that still occupies a worker (taskrouter-semantics.md §4:
# "Pending, accepted and wrapping reservations count against capacity").
HOLDING_STATUSES = ("pending", "accepted", "wrapping")
# A reservation that won the task (accept, then possibly wrap-up/complete).
WON_STATUSES = ("accepted", "wrapping", "completed")


def describe(value: Any) -> str:
    """A readable form of a helper-library instance (or a list of them) for
    failure messages."""
    if isinstance(value, list):
        return "[" + ", ".join(describe(v) for v in value) + "]"
    if hasattr(value, "_version") and hasattr(value, "sid"):
        keep = ("sid", "event_type", "assignment_status", "reason", "task_queue_friendly_name", "priority",
                "reservation_status", "worker_name", "activity_name")
        return "{" + ", ".join(f"{k}={getattr(value, k)!r}" for k in keep if hasattr(value, k)) + "}"
    return repr(value)


def wait_until(probe, predicate, *, timeout: float = 5.0, interval: float = 0.05, what: str = "condition"):
    """Call ``probe()`` until ``predicate(value)`` holds; return that value.

    Routing and timers run inside the server, so a state change may show up a
    moment after the request that caused it (Twilio's own docs say real-time
    numbers "may take a few seconds").  Poll instead of sleeping blindly."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if predicate(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {describe(value)}")
        time.sleep(interval)


def task_status(ws, task_sid: str) -> str:
    return ws.tasks(task_sid).fetch().assignment_status


def wait_task_status(ws, task_sid: str, status: str, timeout: float = 5.0):
    """Poll until the task is in ``status``; returns the fetched task."""
    return wait_until(
        lambda: ws.tasks(task_sid).fetch(),
        lambda t: t.assignment_status == status,
        timeout=timeout,
        what=f"task {task_sid} to become {status!r}",
    )


def reservations_of(ws, task_sid: str, status: Optional[str] = None) -> list:
    kwargs = {} if status is None else {"reservation_status": status}
    return ws.tasks(task_sid).reservations.list(**kwargs)


def wait_reservations(ws, task_sid: str, count: int = 1, status: str = "pending", timeout: float = 5.0) -> list:
    """Poll until the task has exactly ``count`` reservations in ``status``."""
    return wait_until(
        lambda: [r for r in reservations_of(ws, task_sid) if r.reservation_status == status],
        lambda rs: len(rs) == count,
        timeout=timeout,
        what=f"{count} {status} reservation(s) on task {task_sid}",
    )


def build_routing(
    ws,
    *,
    workers: int = 0,
    target_workers: str = "1==1",
    max_reserved_workers: int = 1,
    task_order: str = "FIFO",
    task_reservation_timeout: int = 1200,
    worker_attributes: Optional[Dict[str, Any]] = None,
    available: bool = True,
    name: str = "Routing",
) -> SimpleNamespace:
    """One queue, one workflow that routes every task to it (default filter),
    and ``workers`` workers (created in order, in the Available activity unless
    ``available=False``)."""
    acts = activities_by_name(ws)
    queue = ws.task_queues.create(
        friendly_name=f"{name} queue",
        target_workers=target_workers,
        max_reserved_workers=max_reserved_workers,
        task_order=task_order,
    )
    workflow = ws.workflows.create(
        friendly_name=f"{name} workflow",
        configuration=routing_config(default_queue=queue.sid),
        task_reservation_timeout=task_reservation_timeout,
    )
    created = [
        ws.workers.create(
            friendly_name=f"{name} worker {i}",
            attributes=json.dumps(worker_attributes or {}),
            activity_sid=(acts["Available"] if available else acts["Offline"]).sid,
        )
        for i in range(workers)
    ]
    return SimpleNamespace(acts=acts, queue=queue, workflow=workflow, workers=created)


# ---------------------------------------------------------------------------
# Events (taskrouter-semantics.md §7)
# ---------------------------------------------------------------------------

# Taskyard's own record of one assignment-callback attempt.
ASSIGNMENT_CALLBACK_EVENT = "reservation.assignment-callback"


def events_of(ws, **filters) -> list:
    """``ws.events.list(**filters)``, oldest first (as the server returns them)."""
    return ws.events.list(**filters)


def event_types(events) -> list:
    return [e.event_type for e in events]


def wait_events(ws, predicate=lambda evs: bool(evs), *, timeout: float = 10.0, what: str = "events",
                **filters) -> list:
    """Poll ``ws.events.list(**filters)`` until ``predicate(events)`` holds."""
    return wait_until(lambda: ws.events.list(**filters), predicate, timeout=timeout, interval=0.1, what=what)


def wait_event_types(ws, wanted, *, timeout: float = 10.0, **filters) -> list:
    """Poll until every type in ``wanted`` appears among the listed events."""
    wanted = list(wanted)
    return wait_events(
        ws,
        lambda evs: all(t in event_types(evs) for t in wanted),
        timeout=timeout,
        what=f"events {wanted}",
        **filters,
    )


def callback_attempts(ws, reservation_sid: str) -> list:
    """The ``reservation.assignment-callback`` events of one reservation, oldest first."""
    return ws.events.list(event_type=ASSIGNMENT_CALLBACK_EVENT, reservation_sid=reservation_sid)


def wait_callback_attempts(ws, reservation_sid: str, count: int = 1, timeout: float = 10.0) -> list:
    """Poll until the reservation has ``count`` recorded callback attempts."""
    return wait_until(
        lambda: callback_attempts(ws, reservation_sid),
        lambda evs: len(evs) >= count,
        timeout=timeout,
        interval=0.05,
        what=f"{count} {ASSIGNMENT_CALLBACK_EVENT} event(s) for {reservation_sid}",
    )
