#!/usr/bin/env python3
"""Twilio's TaskRouter quickstart, replayed against a running Taskyard.

Uses Twilio's own helper library (``pip install twilio``); the only change
from talking to Twilio is the base URL of the TaskRouter API.

Part 1 — set-up: a workspace, workers Alice and Bob, a Spanish and an English
queue, and the "Incoming Customer Care Requests" workflow whose assignment
callback is the small server of ``assignment_callback.py`` (started here, in a
thread).

Part 2 — tasks and reservations: a Spanish task waits for Alice; when she
becomes available Taskyard reserves her and calls the assignment callback,
which answers ``{}``, so the reservation is accepted through the REST API.
Then the callback answers ``{"instruction": "accept"}`` and a second task is
accepted without any REST call.

    python3 quickstart.py                                   # a server started in ./ with no credentials
    python3 quickstart.py --data-dir /var/lib/taskyard
    TASKYARD_URL=http://127.0.0.1:8700 TASKYARD_ACCOUNT_SID=AC… TASKYARD_AUTH_TOKEN=… python3 quickstart.py

Credentials: ``--account-sid``/``--auth-token``, else ``TASKYARD_ACCOUNT_SID``/
``TASKYARD_AUTH_TOKEN``, else ``<data-dir>/development-account.env`` (written by
``taskyard serve`` when it creates its development account).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

from twilio.base.exceptions import TwilioException
from twilio.rest import Client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from assignment_callback import AssignmentCallbackServer  # noqa: E402

SPANISH = {"selected_language": "es"}


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def say(text: str) -> None:
    print(f"   {text}", flush=True)


def wait_for(what: str, probe: Callable, done: Callable, timeout: float):
    """Poll ``probe()`` until ``done(value)``; Taskyard routes in the
    background, so a change may show up a moment after the request."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"FAILED: timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def read_env_file(path: Path) -> Dict[str, str]:
    """``KEY=value`` lines (the format of development-account.env)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def credentials(args) -> Tuple[str, str]:
    sid = args.account_sid or os.environ.get("TASKYARD_ACCOUNT_SID")
    token = args.auth_token or os.environ.get("TASKYARD_AUTH_TOKEN")
    if sid and token:
        return sid, token
    env_file = Path(args.data_dir) / "development-account.env"
    if env_file.exists():
        saved = read_env_file(env_file)
        sid, token = saved.get("TASKYARD_ACCOUNT_SID"), saved.get("TASKYARD_AUTH_TOKEN")
        if sid and token:
            return sid, token
    raise SystemExit(
        "No credentials: pass --account-sid and --auth-token, set TASKYARD_ACCOUNT_SID and "
        f"TASKYARD_AUTH_TOKEN, or point --data-dir at the server's data directory ({env_file} not found)"
    )


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description="Replay Twilio's TaskRouter quickstart against Taskyard.")
    parser.add_argument("--url", default=os.environ.get("TASKYARD_URL", "http://127.0.0.1:8700"),
                        help="Taskyard's base URL (default $TASKYARD_URL or http://127.0.0.1:8700)")
    parser.add_argument("--account-sid", help="default $TASKYARD_ACCOUNT_SID")
    parser.add_argument("--auth-token", help="default $TASKYARD_AUTH_TOKEN")
    parser.add_argument("--data-dir", default=os.environ.get("TASKYARD_DATA_DIR", "./taskyard-data"),
                        help="where to find development-account.env when no credentials are given")
    parser.add_argument("--callback-host", default="127.0.0.1",
                        help="address of the assignment callback server, as Taskyard reaches it")
    parser.add_argument("--callback-port", type=int, default=0, help="its port (default: any free port)")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for each step")
    parser.add_argument("--cleanup", action="store_true", help="delete the workspace at the end")
    args = parser.parse_args(argv)

    account_sid, auth_token = credentials(args)
    client = Client(account_sid, auth_token)
    client.taskrouter.base_url = args.url.rstrip("/")  # the only change from talking to Twilio
    tr = client.taskrouter.v1

    callbacks = AssignmentCallbackServer(args.callback_host, args.callback_port, auth_token=auth_token,
                                         log=lambda line: say(f"[callback server] {line}")).start()
    print(f"Taskyard at {args.url}, account {account_sid}")
    print(f"Assignment callback server at {callbacks.url}")

    workspace = None
    try:
        # ------------------------------------------------------------- Part 1
        step("Step 1: create a workspace")
        workspace = tr.workspaces.create(friendly_name=f"TaskRouter Quickstart {uuid.uuid4().hex[:6]}")
        ws = tr.workspaces(workspace.sid)
        activities = {a.friendly_name: a.sid for a in ws.activities.list()}
        say(f"Workspace {workspace.sid} ({workspace.friendly_name})")
        say(f"Activities: {', '.join(activities)}")

        step("Step 2: create workers Alice and Bob")
        alice = ws.workers.create(friendly_name="Alice", attributes=json.dumps({"languages": ["en", "es"]}))
        bob = ws.workers.create(friendly_name="Bob", attributes=json.dumps({"languages": ["en"]}))
        for w in (alice, bob):
            say(f"Worker {w.sid} {w.friendly_name} {w.attributes} ({w.activity_name})")

        step("Step 3: create the Spanish and English task queues")
        spanish = ws.task_queues.create(friendly_name="Customer Care Requests - Spanish",
                                        target_workers='languages HAS "es"')
        english = ws.task_queues.create(friendly_name="Customer Care Requests - English",
                                        target_workers='languages HAS "en"')
        for q in (spanish, english):
            try:
                members = ", ".join(w.friendly_name for w in ws.workers.list(task_queue_sid=q.sid))
            except TwilioException:
                members = "(membership listing not available)"
            say(f"TaskQueue {q.sid} {q.friendly_name!r} target {q.target_workers!r}: {members}")

        step("Step 4: create the workflow, with the assignment callback")
        config = {
            "task_routing": {
                "filters": [
                    {"filter_friendly_name": "Language - Spanish", "expression": 'selected_language == "es"',
                     "targets": [{"queue": spanish.sid}]},
                    {"filter_friendly_name": "Language - English", "expression": 'selected_language == "en"',
                     "targets": [{"queue": english.sid}]},
                ]
            }
        }
        workflow = ws.workflows.create(
            friendly_name="Incoming Customer Care Requests",
            configuration=json.dumps(config),
            assignment_callback_url=callbacks.url,
            task_reservation_timeout=1200,
        )
        say(f"Workflow {workflow.sid} calls {workflow.assignment_callback_url}, "
            f"reservation timeout {workflow.task_reservation_timeout}s")

        # ------------------------------------------------------------- Part 2
        step("Step 5: a Spanish task, while Alice is Offline")
        task = ws.tasks.create(attributes=json.dumps(SPANISH), workflow_sid=workflow.sid)
        say(f"Task {task.sid} is {task.assignment_status} in {task.task_queue_friendly_name!r}")
        if task.assignment_status != "pending":
            raise SystemExit(f"FAILED: expected the task to be pending, got {task.assignment_status}")

        step("Step 6: Alice becomes available; Taskyard reserves her and calls back")
        ws.workers(alice.sid).update(activity_sid=activities["Available"])
        (params,) = callbacks.wait_for_callbacks(1, args.timeout)
        for name in sorted(params):
            say(f"  {name} = {params[name]}")
        reservation = wait_for(
            "Alice's reservation",
            lambda: ws.tasks(task.sid).reservations.list(),
            lambda rs: len(rs) == 1,
            args.timeout,
        )[0]
        say(f"Reservation {reservation.sid} for {reservation.worker_name} is {reservation.reservation_status} "
            "(the callback answered {})")

        step("Step 7: accept the reservation through the REST API")
        accepted = ws.tasks(task.sid).reservations(reservation.sid).update(reservation_status="accepted")
        say(f"Reservation {accepted.sid} is {accepted.reservation_status}, worker {accepted.worker_name}")
        assigned = ws.tasks(task.sid).fetch()
        say(f"Task {task.sid} is {assigned.assignment_status}")
        if assigned.assignment_status != "assigned":
            raise SystemExit(f"FAILED: expected the task to be assigned, got {assigned.assignment_status}")
        ws.tasks(task.sid).update(assignment_status="completed", reason="resolved")
        say("Alice completes it")

        step('Step 8: the callback answers {"instruction": "accept"}')
        callbacks.accept = True
        second = ws.tasks.create(attributes=json.dumps(SPANISH), workflow_sid=workflow.sid)
        callbacks.wait_for_callbacks(2, args.timeout)
        done = wait_for(
            f"task {second.sid} to be assigned",
            lambda: ws.tasks(second.sid).fetch(),
            lambda t: t.assignment_status == "assigned",
            args.timeout,
        )
        (r2,) = ws.tasks(second.sid).reservations.list()
        say(f"Task {second.sid} is {done.assignment_status}: reservation {r2.sid} "
            f"{r2.reservation_status} by {r2.worker_name}, without any REST call")
        ws.tasks(second.sid).update(assignment_status="completed", reason="resolved")

        print("\nQuickstart complete.", flush=True)
        return 0
    finally:
        callbacks.shutdown()
        if workspace is not None and args.cleanup:
            tr.workspaces(workspace.sid).delete()
            print(f"Deleted workspace {workspace.sid}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
