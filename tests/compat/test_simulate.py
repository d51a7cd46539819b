"""`taskyard simulate` (docs/simulator.md): the what-if simulator from the command line, on the
example in examples/simulator/ cut to a short day: a summary per queue, the HTML report (one
file, nothing fetched), the JSON and CSV, the same report for the same seed, and clear errors."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT, taskyard_binary

EXAMPLE = REPO_ROOT / "examples" / "simulator"


def simulate(*args, cwd=None):
    return subprocess.run([str(taskyard_binary()), "simulate", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.fixture
def short_day(tmp_path):
    """The example's arrivals, two busy hours of them only (the test stays quick)."""
    arrivals = json.loads((EXAMPLE / "arrivals.json").read_text())
    rates = arrivals["model"]["per_hour"]
    busy = max(range(len(rates)), key=lambda i: rates[i])
    arrivals["model"]["per_hour"] = [r if busy - 4 <= i < busy + 4 else 0 for i, r in enumerate(rates)]
    path = tmp_path / "arrivals.json"
    path.write_text(json.dumps(arrivals))
    return path


def test_simulate_compares_two_workflows_and_writes_every_report(tmp_path, short_day):
    out = simulate("--definition", EXAMPLE / "definition.json", "--arrivals", short_day,
                   "--compare-workflow", "Billing overflows to support", "--seed", "7",
                   "--html", tmp_path / "r.html", "--json", tmp_path / "r.json", "--csv", tmp_path / "r.csv")
    assert out.returncode == 0, out.stderr
    assert "Skills only" in out.stdout and "Billing overflows to support" in out.stdout
    assert re.search(r"simulated [\d.]+ h in [\d.]+ s \(\d+x real time\)", out.stdout), out.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    a, b = report["a"], report["b"]
    assert a["all"]["total"]["offered"] == b["all"]["total"]["offered"] > 100, "the same arrivals for both"
    for r in (a, b):
        t = r["all"]["total"]
        assert t["offered"] == t["handled"] + t["abandoned"] + t["canceled"] + t["unanswered"], t
    html = (tmp_path / "r.html").read_text()
    assert html.startswith("<!DOCTYPE html>") or html.lower().startswith("<!doctype html>")
    assert "<svg" in html and "Skills only" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the report fetches something"
    csv = (tmp_path / "r.csv").read_text().splitlines()
    assert csv[0].startswith("run,") and len(csv) > 10


def test_the_same_seed_gives_the_same_report(tmp_path, short_day):
    for name in ("one", "two"):
        out = simulate("--definition", EXAMPLE / "definition.json", "--arrivals", short_day, "--seed", "3",
                       "--json", tmp_path / f"{name}.json")
        assert out.returncode == 0, out.stderr
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert one == two
    out = simulate("--definition", EXAMPLE / "definition.json", "--arrivals", short_day, "--seed", "4",
                   "--json", tmp_path / "three.json")
    assert json.loads((tmp_path / "three.json").read_text()) != one, "another seed, another day"


def test_bad_input_is_a_clear_error(tmp_path, short_day):
    bad = tmp_path / "bad.json"
    bad.write_text('{"task_queues": [{"friendly_name": "Q", "target_workers": "skills HAS"}], "workflows": []}')
    out = simulate("--definition", bad, "--arrivals", short_day)
    assert out.returncode != 0 and "bad.json" in out.stderr, out.stderr
    out = simulate("--definition", EXAMPLE / "definition.json", "--arrivals", short_day, "--workflow", "Nope")
    assert out.returncode != 0 and "Nope" in out.stderr, out.stderr
    out = simulate("--definition", tmp_path / "missing.json", "--arrivals", short_day)
    assert out.returncode != 0 and "missing.json" in out.stderr, out.stderr


def test_recorded_arrivals_from_csv_with_a_behaviour_file(tmp_path):
    csv = tmp_path / "day.csv"
    csv.write_text('created_seconds,attributes_json,handle_seconds,patience_seconds\n'
                   + "".join(f'{30000 + i * 20},"{{""topic"":""sales"",""language"":""en""}}",300,\n' for i in range(200)))
    behaviour = tmp_path / "behaviour.json"
    behaviour.write_text('{"accept_delay": {"fixed": 5}}')
    out = simulate("--definition", EXAMPLE / "definition.json", "--arrivals", csv, "--behaviour", behaviour,
                   "--json", tmp_path / "r.json")
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    sales = next(q for q in report["queues"] if q["name"] == "Sales")["total"]
    assert sales["offered"] == 200 and sales["abandoned"] == 0
    # Every accept takes the behaviour's 5 s: no wait is shorter.
    assert sales["wait_p50"] >= 5
    # A model's behaviour lives in its own file: --behaviour beside one is refused.
    out = simulate("--definition", EXAMPLE / "definition.json", "--arrivals", EXAMPLE / "arrivals.json",
                   "--behaviour", behaviour)
    assert out.returncode != 0 and "--behaviour" in out.stderr


def test_export_a_live_workspace_and_simulate_its_recorded_day(server, tr, tmp_path):
    """`taskyard export` reads a running workspace through the REST API as a definition (and
    its events as arrivals) that `taskyard simulate` runs as it is."""
    from helpers import build_quickstart

    q = build_quickstart(tr)
    available = next(a for a in q.ws.activities.list() if a.friendly_name == "Available")
    q.ws.workers(q.alice.sid).update(activity_sid=available.sid)
    for lang in ["es", "en", "es", "en", "es"]:
        q.ws.tasks.create(workflow_sid=q.workflow.sid, attributes=json.dumps({"selected_language": lang}))
    env = {"PATH": "/usr/bin:/bin", "TASKYARD_URL": server.base_url,
           "TASKYARD_ACCOUNT_SID": server.account_sid, "TASKYARD_AUTH_TOKEN": server.auth_token}
    out = subprocess.run([str(taskyard_binary()), "export", "--workspace", q.workspace.sid,
                          "--out", str(tmp_path / "def.json"), "--events", str(tmp_path / "events.json")],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "2 workers, 2 task queues, 1 workflows" in out.stderr, out.stderr
    assert server.auth_token not in out.stdout + out.stderr
    definition = json.loads((tmp_path / "def.json").read_text())
    alice = next(w for w in definition["workers"] if w["friendly_name"] == "Alice")
    assert json.loads(alice["attributes"]) == json.loads(q.alice.fetch().attributes), "attributes kept"
    assert alice["activity_sid"] == available.sid
    assert {t["friendly_name"] for t in definition["task_queues"]} == {q.spanish.friendly_name, q.english.friendly_name}
    events = json.loads((tmp_path / "events.json").read_text())["events"]
    assert sum(e["event_type"] == "task.created" for e in events) == 5
    # The recording shows no task completed: their handle time comes from --handle.
    sim = simulate("--definition", tmp_path / "def.json", "--arrivals", tmp_path / "events.json")
    assert sim.returncode == 1 and "no handle time" in sim.stderr, sim.stderr
    sim = simulate("--definition", tmp_path / "def.json", "--arrivals", tmp_path / "events.json",
                   "--handle", '{"fixed": 120}', "--json", tmp_path / "r.json")
    assert sim.returncode == 0, sim.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["all"]["total"]["offered"] == 5
    # Wrong credentials: a clear error, nothing written.
    env["TASKYARD_AUTH_TOKEN"] = "wrong"
    out = subprocess.run([str(taskyard_binary()), "export", "--workspace", q.workspace.sid,
                          "--out", str(tmp_path / "no.json")], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 1 and "401" in out.stderr and not (tmp_path / "no.json").exists()
