"""The runnable quickstart in examples/quickstart/ (README, quickstart.py,
assignment_callback.py) works against a real server, as a user would run it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from twilio.request_validator import RequestValidator

from conftest import REPO_ROOT, free_port, new_auth_token

EXAMPLE = REPO_ROOT / "examples" / "quickstart"


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKYARD_")}
    env["NO_PROXY"] = ",".join(filter(None, [env.get("NO_PROXY"), "127.0.0.1", "localhost"]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_quickstart(args, env, timeout=90):
    return subprocess.run(
        [sys.executable, str(EXAMPLE / "quickstart.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def check_transcript(result, tr) -> None:
    out = result.stdout
    assert result.returncode == 0, f"exit {result.returncode}\n--- stdout\n{out}\n--- stderr\n{result.stderr}"
    for n in range(1, 9):
        assert f"Step {n}:" in out, f"step {n} missing from\n{out}"
    assert re.search(r"Reservation WR[0-9a-f]{32} for Alice is pending", out), out
    assert re.search(r"Reservation WR[0-9a-f]{32} is accepted, worker Alice", out), out
    assert re.search(r"Task WT[0-9a-f]{32} is assigned: reservation WR[0-9a-f]{32} accepted by Alice", out), out
    assert out.count("[callback server] assignment callback:") == 2, out
    assert "Quickstart complete." in out
    (workspace_sid,) = re.findall(r"Deleted workspace (WS[0-9a-f]{32})", out)
    assert workspace_sid not in {w.sid for w in tr.workspaces.list()}


def test_quickstart_script_with_arguments(server, tr):
    """quickstart.py --url --account-sid --auth-token: every step succeeds."""
    result = run_quickstart(
        ["--url", server.base_url, "--account-sid", server.account_sid, "--auth-token", server.auth_token,
         "--cleanup"],
        clean_env(),
    )
    check_transcript(result, tr)


def test_quickstart_script_with_environment_and_data_dir(server, tr, tmp_path):
    """TASKYARD_URL from the environment, credentials from
    <data-dir>/development-account.env (the file the server writes)."""
    (tmp_path / "development-account.env").write_text(
        f"TASKYARD_ACCOUNT_SID={server.account_sid}\nTASKYARD_AUTH_TOKEN={server.auth_token}\n"
    )
    result = run_quickstart(["--data-dir", str(tmp_path), "--cleanup"], clean_env(TASKYARD_URL=server.base_url))
    check_transcript(result, tr)


def test_quickstart_script_without_credentials_fails_clearly(tmp_path):
    result = run_quickstart(["--data-dir", str(tmp_path)], clean_env(TASKYARD_URL="http://127.0.0.1:9"), timeout=30)
    assert result.returncode != 0
    assert "No credentials" in result.stderr


@pytest.fixture
def callback_app():
    """Runs assignment_callback.py as a process; yields a starter."""
    procs = []

    def start(*args):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE / "assignment_callback.py"), "--port", str(port), *args],
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}/assignment_callback"
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=1)
                break
            except urllib.error.HTTPError:
                break  # it answers (403 without a signature)
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"assignment_callback.py did not start: {proc.stdout.read()}")
                time.sleep(0.05)
        return url

    yield start
    for p in procs:
        p.terminate()
        p.wait(5)


def post_form(url, params, signature=None):
    data = urllib.parse.urlencode(params).encode()
    req = urllib.request.Request(url, data=data, method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    if signature:
        req.add_header("X-Twilio-Signature", signature)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


PARAMS = {"AccountSid": "AC" + "a" * 32, "ReservationSid": "WR" + "b" * 32, "TaskAge": "3",
          "TaskAttributes": json.dumps({"selected_language": "es"})}


@pytest.mark.parametrize("accept, expected", [(False, {}), (True, {"instruction": "accept"})],
                         ids=["default", "--accept"])
def test_assignment_callback_app_answers_and_checks_signature(callback_app, accept, expected):
    """The stand-alone seed app: answers ``{}`` (or accept with --accept) as
    application/json to a correctly signed callback, 403 to a forged one."""
    token = new_auth_token()
    url = callback_app("--auth-token", token, *(["--accept"] if accept else []))
    signature = RequestValidator(token).compute_signature(url, PARAMS)
    status, content_type, body = post_form(url, PARAMS, signature)
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == expected
    forged = RequestValidator(new_auth_token()).compute_signature(url, PARAMS)
    assert post_form(url, PARAMS, forged)[0] == 403
    assert post_form(url, {**PARAMS, "TaskAge": "4"}, signature)[0] == 403
