"""Schemathesis hooks for fuzzing Taskyard (loaded by run.py through SCHEMATHESIS_HOOKS).

* Path parameters: a generated SID of a workspace, task, worker, … almost always names
  nothing, so every workspace-scoped operation would only ever answer 404. Just before each
  request, in every phase, a well-formed SID in the path is replaced by the real object of
  that kind that run.py created (its fixtures file), so the operations' parameters and
  bodies are tried against live resources. A DELETE gets one of a few spare objects instead
  (deleting the fixtures would leave the rest of the run nothing to work on), and SIDs the
  server itself answered with are kept. Malformed values (`null`, `0.5`, …, from the
  coverage phase) are sent as they are: those exercise the not-found paths.
* Failures listed in exclusions.toml (documented differences from Twilio's description) are
  dropped, and counted; anything else fails the run.
"""

from __future__ import annotations

import atexit
import fnmatch
import hashlib
import json
import os
import re
import sys
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Optional, Set

import schemathesis

HERE = Path(__file__).resolve().parent
FIXTURES: Dict[str, str] = json.loads(Path(os.environ["TASKYARD_FUZZ_FIXTURES"]).read_text())
EXCLUSIONS = tomllib.loads((HERE / "exclusions.toml").read_text()).get("exclusion", [])
EXCLUDED: Counter = Counter()

# The collection a `{Sid}` follows in a path, and the fixture that is such an object.
BY_COLLECTION = {
    "Workspaces": "workspace",
    "Activities": "activity",
    "TaskChannels": "task_channel",
    "TaskQueues": "task_queue",
    "Workflows": "workflow",
    "Workers": "worker",
    "Tasks": "task",
    "Reservations": "reservation",
    "Events": "event",
    "Channels": "worker_channel",
    "Accounts": "account",
    "Keys": "key",
}
BY_NAME = {
    "WorkspaceSid": "workspace",
    "AccountSid": "account",
    "TaskSid": "task",
    "WorkerSid": "worker",
    "TaskQueueSid": "task_queue",
    "WorkflowSid": "workflow",
}
STREAM = "/v1/Workspaces/{WorkspaceSid}/Events/Stream"
NAMED = {"task_channel", "worker_channel"}


SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
# A SID the server answered as a field (`"sid": …`, `"task_sid": …`), not one it echoes back
# from the request (`meta.url` repeats the query's `TaskSid=…`).
SID_FIELD = re.compile(r'"[a-z_]*sid"\s*:\s*"([A-Z]{2}[0-9a-fA-F]{32})"')
# SIDs the server has answered with (objects the run created): used as they are.
SEEN: Set[str] = set()


def _spare(kind: str, value: str) -> Optional[str]:
    spares = FIXTURES["spares"].get(kind) or []
    if not spares:
        return None
    # The same generated value picks the same spare (hashlib: stable across processes).
    return spares[hashlib.sha256(value.encode()).digest()[0] % len(spares)]


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    op = case.operation
    # A generated If-Match never matches, and a 412 comes before anything else is looked
    # at: three cases in four go without one, so their bodies are tried too.
    headers = case.headers or {}
    tag = headers.get("If-Match")
    if isinstance(tag, str) and tag != "*" and hashlib.sha256(tag.encode()).digest()[0] % 4:
        del headers["If-Match"]
    params = case.path_parameters
    if not params:
        return
    segments = op.path.split("/")
    for i, segment in enumerate(segments):
        if not segment.startswith("{"):
            continue
        name = segment[1 : segment.index("}")]
        value = params.get(name)
        kind = BY_NAME.get(name) or BY_COLLECTION.get(segments[i - 1])
        if kind is None or not isinstance(value, str) or value in SEEN:
            continue
        # A channel is named by SID or by unique name, so Twilio's description gives no SID
        # pattern and its values are arbitrary strings: three in four become the real one.
        by_name = kind in NAMED and hashlib.sha256(value.encode()).digest()[0] % 4
        if not (SID.fullmatch(value) or by_name):
            continue
        if op.method.upper() == "DELETE" and i == len(segments) - 1:
            replacement = _spare(kind, value)
        else:
            replacement = FIXTURES.get(kind)
        if replacement:
            params[name] = replacement


@schemathesis.hook
def after_call(context, case, response) -> None:
    # Successes only: an error's message names the (unknown) SIDs of the path.
    if 200 <= response.status_code < 300 and "json" in (response.headers.get("content-type") or [""])[0]:
        SEEN.update(SID_FIELD.findall(response.text))


@schemathesis.hook
def before_load_schema(context, raw_schema: Dict[str, Any]) -> None:
    """Each event of the live stream carries an Event resource in `data`: have it checked
    against Twilio's schema of the resource too. (The served document says so in words:
    `contentMediaType` and `contentSchema` are not keywords of OpenAPI 3.0's schemas.)"""
    stream = raw_schema["paths"][STREAM]["get"]["responses"]["200"]["content"]["text/event-stream"]
    stream["schema"]["properties"]["data"].update(
        {
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/taskrouter.v1.workspace.event"},
        }
    )


def _field(failure) -> str:
    return "/".join(str(p) for p in getattr(failure, "instance_path", []) or [])


def _keyword(failure) -> str:
    path = getattr(failure, "schema_path", None) or []
    return str(path[-1]) if path else ""


def _matches(rule: Dict[str, Any], failure, response) -> bool:
    return (
        fnmatch.fnmatchcase(failure.operation or "", rule.get("operation", "*"))
        and failure.code == rule.get("failure", failure.code)
        and fnmatch.fnmatchcase(_field(failure), rule.get("field", "*"))
        and fnmatch.fnmatchcase(_keyword(failure), rule.get("keyword", "*"))
        and fnmatch.fnmatchcase(str(response.status_code), rule.get("status", "*"))
    )


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    for rule in EXCLUSIONS:
        if _matches(rule, failure, response):
            EXCLUDED[rule["id"]] += 1
            return False
    return True


@atexit.register
def _report() -> None:
    if EXCLUDED:
        print("\nDocumented differences seen (tests/fuzz/exclusions.toml):", file=sys.stderr)
        for rule, n in sorted(EXCLUDED.items()):
            print(f"  {rule}: {n}", file=sys.stderr)
