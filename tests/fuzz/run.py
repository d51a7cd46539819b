"""Spec-driven fuzzing of a live ``taskyard serve`` with schemathesis.

Starts a server (``$TASKYARD_BIN``, as the compatibility suite does), gives it a workspace
with workers, queues, a workflow, a task with a pending reservation and an API key (so the
operations reach real objects: see hooks.py), then runs ``st run`` over every operation of
the server's own ``/openapi.json`` with the account's HTTP Basic credentials, checking that:

* no answer is a 5xx (``not_a_server_error``);
* every answer with a documented schema conforms to it, media type and headers included,
  except the documented differences in exclusions.toml;
* an operation that needs credentials answers 401 without them, and an undocumented method
  answers 405;
* the server neither panicked (its log) nor died.

    target/compat-venv/bin/python tests/fuzz/run.py                 # short form (CI)
    target/compat-venv/bin/python tests/fuzz/run.py --long          # long form
    target/compat-venv/bin/python tests/fuzz/run.py -- --include-path-regex Tasks

Arguments after ``--`` go to ``st run`` as they are. Exit status: schemathesis's, or 1 when
the server panicked or died.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from base64 import b64encode
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "compat"))

from conftest import TaskyardServer  # noqa: E402
from helpers import activities_by_name, build_quickstart  # noqa: E402

# What every answer is held to (schemathesis's names).
CHECKS = [
    "not_a_server_error",  # no 5xx
    "response_schema_conformance",  # the body matches the documented schema
    "content_type_conformance",  # and the documented media type
    "response_headers_conformance",  # documented headers present and well-formed
    "ignored_auth",  # without credentials (or with wrong ones): 401, never the data
    "unsupported_method",  # an undocumented method on a documented path: 405
]

# Short form: a few minutes in CI. Long form: an order of magnitude more cases.
SHORT_EXAMPLES = 50
LONG_EXAMPLES = 1000


def request(server: TaskyardServer, method: str, path: str, form=None) -> dict:
    body = urllib.parse.urlencode(form or {}).encode() if method != "GET" else None
    req = urllib.request.Request(f"{server.base_url}{path}", data=body, method=method)
    token = b64encode(f"{server.account_sid}:{server.auth_token}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


def seed(server: TaskyardServer) -> dict:
    """One object of every kind, by the names hooks.py looks them up by."""
    tr = server.client().taskrouter.v1
    q = build_quickstart(tr, "Fuzzing")
    ws = q.ws
    available = activities_by_name(ws)["Available"]
    ws.workers(q.alice.sid).update(activity_sid=available.sid)
    task = ws.tasks.create(workflow_sid=q.workflow.sid, attributes=json.dumps({"selected_language": "es"}))
    deadline = time.monotonic() + 10
    reservations = []
    while not reservations and time.monotonic() < deadline:
        reservations = ws.tasks(task.sid).reservations.list()
        time.sleep(0.05)
    if not reservations:
        raise RuntimeError("the seeded task got no reservation")
    channel = ws.task_channels.list()[0]
    worker_channel = ws.workers(q.alice.sid).worker_channels.list()[0]
    events = ws.events.list(limit=1)
    keys = f"/2010-04-01/Accounts/{server.account_sid}/Keys.json"
    key = request(server, "POST", keys, {"FriendlyName": "fuzz"})
    return {
        "account": server.account_sid,
        "workspace": q.workspace.sid,
        "activity": available.sid,
        "task_channel": channel.sid,
        "task_queue": q.spanish.sid,
        "workflow": q.workflow.sid,
        "worker": q.alice.sid,
        "task": task.sid,
        "reservation": reservations[0].sid,
        "event": events[0].sid,
        "worker_channel": worker_channel.sid,
        "key": key["sid"],
        "spares": spares(server, tr, q, keys),
    }


def spares(server: TaskyardServer, tr, q, keys: str, n: int = 3) -> dict:
    """Objects for DELETEs to delete: nothing else refers to them (a queue no workflow
    routes to, a worker with no reservation, a task waiting in a queue nobody serves)."""
    ws = q.ws
    out: dict = {kind: [] for kind in ("workspace", "activity", "task_channel", "task_queue", "workflow", "worker", "task", "key")}
    for i in range(n):
        out["workspace"].append(tr.workspaces.create(friendly_name=f"Spare {i}").sid)
        out["activity"].append(ws.activities.create(friendly_name=f"Spare {i}").sid)
        out["task_channel"].append(ws.task_channels.create(friendly_name=f"Spare {i}", unique_name=f"spare{i}").sid)
        out["task_queue"].append(ws.task_queues.create(friendly_name=f"Spare {i}", target_workers="1==2").sid)
        out["workflow"].append(ws.workflows.create(friendly_name=f"Spare {i}", configuration=json.dumps(q.config)).sid)
        out["worker"].append(ws.workers.create(friendly_name=f"Spare {i}").sid)
        out["task"].append(ws.tasks.create(task_queue_sid=out["task_queue"][0], attributes="{}").sid)
        out["key"].append(request(server, "POST", keys, {"FriendlyName": f"spare {i}"})["sid"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long", action="store_true", help=f"{LONG_EXAMPLES} cases per operation")
    parser.add_argument("--max-examples", type=int, help=f"cases per operation (short: {SHORT_EXAMPLES})")
    parser.add_argument("--seed", type=int, default=None, help="schemathesis's random seed (a run is repeatable with the same one)")
    parser.add_argument("--keep", action="store_true", help="keep the server's data directory and log")
    parser.add_argument("st_args", nargs="*", help="more arguments for `st run` (after --)")
    args = parser.parse_args()
    examples = args.max_examples or (LONG_EXAMPLES if args.long else SHORT_EXAMPLES)

    # Always the embedded database: the run leaves nothing behind but its temporary directory
    # (a PostgreSQL schema would outlive it; the compatibility suite's runs drop theirs).
    os.environ.pop("TASKYARD_COMPAT_DATABASE_URL", None)
    tmp = Path(tempfile.mkdtemp(prefix="taskyard-fuzz-"))
    server = TaskyardServer(tmp / "data", log_path=tmp / "taskyard.log")
    server.start()
    started = time.monotonic()
    status = 1
    try:
        fixtures = tmp / "fixtures.json"
        fixtures.write_text(json.dumps(seed(server), indent=1))
        env = dict(os.environ)
        env.update(
            {
                "SCHEMATHESIS_HOOKS": "hooks",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")])),
                "TASKYARD_FUZZ_FIXTURES": str(fixtures),
            }
        )
        st = Path(sys.executable).with_name("st")
        cmd = [
            str(st),
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "run",
            f"{server.base_url}/openapi.json",
            "--url",
            server.base_url,
            "--auth",
            f"{server.account_sid}:{server.auth_token}",
            "--checks",
            ",".join(CHECKS),
            "--max-examples",
            str(examples),
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            "--workers",
            "2",
            "--no-color",
        ]
        if args.seed is not None:
            cmd += ["--seed", str(args.seed)]
        cmd += args.st_args
        shown = ["<account>:<auth token>" if c.startswith(server.account_sid) else c for c in cmd]
        print("$", " ".join(shown), flush=True)
        # In the temporary directory: schemathesis and hypothesis write their files where
        # they run, which must not be the checkout.
        status = subprocess.run(cmd, env=env, cwd=tmp).returncode
        alive = server.is_running()
        server.stop()
        log = server.log_path.read_text(errors="replace")
        panics = [line for line in log.splitlines() if "panicked" in line]
        print(f"\nfuzzing took {time.monotonic() - started:.0f} s; server log: {server.log_path}")
        if panics:
            print("the server panicked:\n" + "\n".join(panics[:20]), file=sys.stderr)
            status = status or 1
        if not alive:
            print("the server died during the run:\n" + server.log_tail(), file=sys.stderr)
            status = status or 1
        return status
    finally:
        server.kill()
        if args.keep or status != 0:
            print(f"kept the server's data and log in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
