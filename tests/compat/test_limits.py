"""Limits on input (docs/operations.md, "Limits"): each over-the-limit request is answered
with Twilio's error document and changes nothing; slow clients are cut off without holding
the server; the per-account rate limit is off unless configured.

Each group runs its own server with small limits, so the tests stay quick."""

import base64
import json
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest
import requests

from conftest import TaskyardServer
from helpers import api_message, expect_rest_exception, unique_name

LIMITS = {
    "TASKYARD_MAX_BODY_BYTES": "8192",
    "TASKYARD_MAX_FORM_FIELDS": "20",
    "TASKYARD_MAX_CONNECTIONS": "6",
    "TASKYARD_HEADER_TIMEOUT": "1",
    "TASKYARD_BODY_TIMEOUT": "1",
}


def _server(env):
    tmp = Path(tempfile.mkdtemp(prefix="taskyard-limits-"))
    srv = TaskyardServer(tmp / "data", log_path=tmp / "taskyard.log", env=env)
    srv.start()
    return srv, tmp


@pytest.fixture(scope="module")
def limited():
    srv, tmp = _server(LIMITS)
    yield srv
    srv.kill()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def lws(limited):
    tr = limited.client().taskrouter.v1
    ws = tr.workspaces.create(friendly_name=unique_name("limits"))
    yield tr.workspaces(ws.sid)
    tr.workspaces(ws.sid).delete()


def _auth(srv):
    return (srv.account_sid, srv.auth_token)


def _twilio_error(resp, status, code):
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"code", "message", "more_info", "status"}, body
    assert body["code"] == code and body["status"] == status, body
    return body


def _connect(srv):
    return socket.create_connection(("127.0.0.1", srv.port), timeout=10)


def _quiet():
    """Let the connections earlier tests left open time out (header timeout 1 s), so every
    one of the six slots is free."""
    time.sleep(1.5)


def _http_get(sock, path="/healthz"):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock.recv(4096)


# -- bodies and forms ---------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_and_creates_nothing(limited, lws):
    config = json.dumps({"task_routing": {"filters": [], "default_filter": {"queue": "WQ" + "0" * 32}},
                         "padding": "x" * 9000})
    with expect_rest_exception(413, 20001) as err:
        lws.workflows.create(friendly_name="too big", configuration=config)
    assert "8192" in api_message(err)
    assert lws.workflows.list() == []
    # Just under the limit is fine (the limit counts the encoded body, not one field).
    queue = lws.task_queues.create(friendly_name="q")
    config = json.dumps({"task_routing": {"filters": [], "default_filter": {"queue": queue.sid}}})
    assert lws.workflows.create(friendly_name="small", configuration=config).sid.startswith("WW")


def test_too_many_form_fields_is_400_and_creates_nothing(limited, lws):
    url = f"{limited.base_url}/v1/Workspaces/{lws._solution['sid']}/Workers"
    fields = {"FriendlyName": "many"} | {f"X{i}": "1" for i in range(20)}
    body = _twilio_error(requests.post(url, data=fields, auth=_auth(limited)), 400, 20001)
    assert "21 form fields" in body["message"] and "20" in body["message"]
    assert lws.workers.list() == []
    # Twenty are accepted (unknown parameters are ignored, as by Twilio).
    fields = {"FriendlyName": "twenty"} | {f"X{i}": "1" for i in range(19)}
    assert requests.post(url, data=fields, auth=_auth(limited)).status_code == 201


def test_expression_length_and_depth_are_limited(ws):
    """Twilio publishes no expression limit; Taskyard takes 16 KiB and 64 nested
    parentheses (crates/expr), answered 400 / 20001 naming the limit. (On the shared server:
    this one's body limit is smaller than the expression limit.)"""
    lws = ws
    long_expr = " OR ".join(f'skill == "s{i}"' for i in range(1200))
    assert len(long_expr) > 16 * 1024
    with expect_rest_exception(400, 20001) as err:
        lws.task_queues.create(friendly_name="long", target_workers=long_expr)
    assert "16384 bytes" in api_message(err)
    deep = "(" * 65 + "a == 1" + ")" * 65
    with expect_rest_exception(400, 20001) as err:
        lws.task_queues.create(friendly_name="deep", target_workers=deep)
    assert "64 nested" in api_message(err)
    assert [q.friendly_name for q in lws.task_queues.list()] == []
    ok = "(" * 64 + "a == 1" + ")" * 64
    assert lws.task_queues.create(friendly_name="deep enough", target_workers=ok).sid.startswith("WQ")


# -- slow clients -------------------------------------------------------------------------


def test_headers_sent_slowly_are_cut_off_without_holding_the_server(limited):
    _quiet()
    # Five clients (of six connections allowed) send half a request and stop.
    slow = [_connect(limited) for _ in range(5)]
    for s in slow:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    # Meanwhile the server answers others at once.
    assert requests.get(f"{limited.base_url}/healthz", timeout=5).text == "ok"
    for s in slow:
        s.settimeout(5)
        assert s.recv(4096) == b"", "the slow client got an answer instead of being cut off"
        s.close()
    waited = time.monotonic() - started
    assert 0.5 < waited < 4, f"cut off after {waited:.2f} s (header timeout 1 s)"


def test_a_body_sent_slowly_is_408_and_creates_nothing(limited, lws):
    path = f"/v1/Workspaces/{lws._solution['sid']}/Workers"
    body = b"FriendlyName=slow"
    auth = base64.b64encode(f"{limited.account_sid}:{limited.auth_token}".encode()).decode()
    s = _connect(limited)
    s.sendall(
        (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
         f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body) + 10}\r\n\r\n").encode()
        + body
    )
    started = time.monotonic()
    answer = s.recv(4096).decode()
    s.close()
    assert answer.startswith("HTTP/1.1 408"), answer
    assert '"code":20001' in answer and '"status":408' in answer, answer
    assert 0.5 < time.monotonic() - started < 4
    assert lws.workers.list() == []


# -- connections --------------------------------------------------------------------------


def test_connections_over_the_limit_are_answered_429_and_closed(limited):
    _quiet()
    held = []
    try:
        # Fill every slot with a live keep-alive connection (each has had an answer, so the
        # server has surely accepted it).
        for _ in range(6):
            s = _connect(limited)
            assert _http_get(s).endswith(b"ok")
            held.append(s)
        extra = _connect(limited)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := extra.recv(4096):
            answer += chunk
        extra.close()
        head, _, body = answer.decode().partition("\r\n\r\n")
        assert head.startswith("HTTP/1.1 429"), head
        assert json.loads(body) == {
            "code": 20429,
            "message": "Too many open connections (at most 6); try again later",
            "more_info": "https://www.twilio.com/docs/errors/20429",
            "status": 429,
        }
    finally:
        for s in held:
            s.close()
    # The slots come back when the connections close.
    deadline = time.monotonic() + 5
    while True:
        try:
            assert requests.get(f"{limited.base_url}/healthz", timeout=5).text == "ok"
            break
        except (requests.ConnectionError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# -- the per-account rate -----------------------------------------------------------------


@pytest.fixture
def rated():
    srv, tmp = _server({"TASKYARD_RATE_LIMIT": "2", "TASKYARD_RATE_BURST": "3"})
    yield srv
    srv.kill()
    shutil.rmtree(tmp, ignore_errors=True)


def test_the_rate_limit_answers_429_with_retry_after_and_changes_nothing(rated):
    tr = rated.client().taskrouter.v1
    for _ in range(3):
        tr.workspaces.list()
    name = unique_name("limited")
    with expect_rest_exception(429, 20429):
        tr.workspaces.create(friendly_name=name)
    resp = requests.get(f"{rated.base_url}/v1/Workspaces", auth=_auth(rated))
    _twilio_error(resp, 429, 20429)
    assert int(resp.headers["retry-after"]) >= 1
    # Unauthenticated requests are refused as before, without touching anyone's bucket.
    assert requests.get(f"{rated.base_url}/v1/Workspaces", auth=("AC" + "0" * 32, "x")).status_code == 401
    time.sleep(1.6)  # three tokens back at two a second
    assert [w.friendly_name for w in tr.workspaces.list()] == [], "the refused create changed something"


def test_no_rate_limit_by_default(limited):
    tr = limited.client().taskrouter.v1
    for _ in range(50):
        tr.workspaces.list(limit=1)
