"""Workflow evaluation of tasks (taskrouter-semantics.md §5.1-§5.3, §6.3):
filters in order, default filter, step timeouts measured against the task's
age, skip_if, target expressions, known workers, order_by and re-evaluation."""

import json
import time

import pytest

from helpers import (
    activities_by_name,
    wait_reservations,
    wait_task_status,
    wait_until,
)


@pytest.fixture
def acts(ws):
    return activities_by_name(ws)


@pytest.fixture
def queues(ws):
    """Three queues: `a` (skill a), `b` (skill b) and `everyone` (1==1)."""
    return {
        "a": ws.task_queues.create(friendly_name="Q a", target_workers='skills HAS "a"'),
        "b": ws.task_queues.create(friendly_name="Q b", target_workers='skills HAS "b"'),
        "everyone": ws.task_queues.create(friendly_name="Q everyone", target_workers="1==1"),
    }


def workflow(ws, filters, default_queue=None, **kwargs):
    doc = {"task_routing": {"filters": filters}}
    if default_queue is not None:
        doc["task_routing"]["default_filter"] = {"queue": default_queue}
    return ws.workflows.create(friendly_name=f"WF {time.monotonic_ns()}", configuration=json.dumps(doc), **kwargs)


def queue_of(ws, task_sid):
    return ws.tasks(task_sid).fetch().task_queue_sid


def wait_queue(ws, task_sid, queue_sid, timeout=8.0):
    return wait_until(
        lambda: ws.tasks(task_sid).fetch(),
        lambda t: t.task_queue_sid == queue_sid,
        timeout=timeout,
        what=f"task {task_sid} to enter queue {queue_sid}",
    )


def test_first_matching_filter_wins(ws, queues):
    wf = workflow(
        ws,
        [
            {"filter_friendly_name": "one", "expression": "n > 5", "targets": [{"queue": queues["a"].sid}]},
            {"filter_friendly_name": "two", "expression": "n > 1", "targets": [{"queue": queues["b"].sid}]},
        ],
        default_queue=queues["everyone"].sid,
    )
    assert ws.tasks.create(workflow_sid=wf.sid, attributes='{"n": 10}').task_queue_sid == queues["a"].sid
    assert ws.tasks.create(workflow_sid=wf.sid, attributes='{"n": 3}').task_queue_sid == queues["b"].sid
    # no filter matches → default_filter
    assert ws.tasks.create(workflow_sid=wf.sid, attributes='{"n": 0}').task_queue_sid == queues["everyone"].sid
    assert ws.tasks.create(workflow_sid=wf.sid, attributes="{}").task_queue_sid == queues["everyone"].sid


def test_step_timeout_moves_task_to_next_target(ws, queues):
    """§5.2 items 4-5: on step timeout the task goes to the next target."""
    wf = workflow(
        ws,
        [{"filter_friendly_name": "esc", "expression": "1==1",
          "targets": [{"queue": queues["a"].sid, "timeout": 2}, {"queue": queues["b"].sid}]}],
    )
    task = ws.tasks.create(workflow_sid=wf.sid)
    assert task.task_queue_sid == queues["a"].sid
    moved = wait_queue(ws, task.sid, queues["b"].sid)
    assert moved.assignment_status == "pending"
    assert moved.task_queue_friendly_name == "Q b"
    assert moved.age >= 2


def test_step_timeouts_are_cumulative_task_age(ws, queues):
    """Targets of 1 s and 2 s: the second step ends at task age 3 s, not 2 s
    after entering it (§5.2 item 4, "cumulatively")."""
    wf = workflow(
        ws,
        [{"filter_friendly_name": "esc", "expression": "1==1",
          "targets": [{"queue": queues["a"].sid, "timeout": 1},
                      {"queue": queues["b"].sid, "timeout": 2},
                      {"queue": queues["everyone"].sid}]}],
    )
    created = time.monotonic()
    task = ws.tasks.create(workflow_sid=wf.sid)
    wait_queue(ws, task.sid, queues["b"].sid)
    wait_queue(ws, task.sid, queues["everyone"].sid)
    elapsed = time.monotonic() - created
    assert 2.5 <= elapsed < 5.5, f"third step reached after {elapsed:.2f}s (expected at task age 3s)"


def test_later_target_inherits_queue_and_sets_priority(ws, queues):
    """"queue … required on the first target, inherited by later ones";
    `priority` sets the task's priority (§5.1)."""
    wf = workflow(
        ws,
        [{"filter_friendly_name": "esc", "expression": "1==1",
          "targets": [{"queue": queues["a"].sid, "timeout": 1}, {"priority": 20}]}],
    )
    task = ws.tasks.create(workflow_sid=wf.sid, priority=1)
    assert task.priority == 1
    escalated = wait_until(lambda: ws.tasks(task.sid).fetch(), lambda t: t.priority == 20, timeout=8,
                           what="priority 20 after the first step")
    assert escalated.task_queue_sid == queues["a"].sid
    assert escalated.assignment_status == "pending"


def test_falling_off_the_last_step_cancels_the_task(ws, queues):
    """After the last target times out and no other filter matches, the task
    leaves the workflow and is canceled (§2, §5.2 item 5)."""
    wf = workflow(
        ws,
        [{"filter_friendly_name": "short", "expression": "1==1",
          "targets": [{"queue": queues["a"].sid, "timeout": 1}]}],
    )
    task = ws.tasks.create(workflow_sid=wf.sid)
    wait_task_status(ws, task.sid, "canceled", timeout=8)


def test_timed_out_filter_continues_with_next_matching_filter(ws, queues):
    """"after the last target, try the next filter whose expression matches"
    (§5.2 item 5)."""
    wf = workflow(
        ws,
        [
            {"filter_friendly_name": "first", "expression": "vip == true",
             "targets": [{"queue": queues["a"].sid, "timeout": 1}]},
            {"filter_friendly_name": "second", "expression": "1==1",
             "targets": [{"queue": queues["b"].sid}]},
        ],
    )
    task = ws.tasks.create(workflow_sid=wf.sid, attributes='{"vip": true}')
    assert task.task_queue_sid == queues["a"].sid
    moved = wait_queue(ws, task.sid, queues["b"].sid)
    assert moved.assignment_status == "pending"


def test_skip_if_moves_on_when_nobody_is_available(ws, queues):
    """`skip_if: workers.available == 0` on a step nobody can take → the next
    step at once (§5.2 item 3: "evaluated only if no reservation could be
    created immediately on entering the step; if true, move on at once").
    The skipped step has no `timeout`; it is not the filter's last target."""
    wf = workflow(
        ws,
        [{"filter_friendly_name": "skip", "expression": "1==1",
          "targets": [{"queue": queues["a"].sid, "skip_if": "workers.available == 0"},
                      {"queue": queues["b"].sid}]}],
    )
    task = ws.tasks.create(workflow_sid=wf.sid)
    moved = wait_queue(ws, task.sid, queues["b"].sid, timeout=3)
    assert moved.assignment_status == "pending"


def test_skip_if_on_step_with_timeout(ws, queues, acts):
    wf = workflow(
        ws,
        [{"filter_friendly_name": "skip", "expression": "1==1",
          "targets": [{"queue": queues["a"].sid, "timeout": 600, "skip_if": "workers.available == 0"},
                      {"queue": queues["b"].sid}]}],
    )
    task = ws.tasks.create(workflow_sid=wf.sid)
    moved = wait_queue(ws, task.sid, queues["b"].sid, timeout=3)
    assert moved.assignment_status == "pending"
    # With an available member in queue a, the first step is not skipped.
    ws.workers.create(friendly_name="A-skilled", attributes='{"skills": ["a"]}', activity_sid=acts["Available"].sid)
    kept = ws.tasks.create(workflow_sid=wf.sid)
    assert queue_of(ws, kept.sid) == queues["a"].sid
    (r,) = wait_reservations(ws, kept.sid, 1, "pending")
    assert r.worker_name == "A-skilled"


def test_skipping_every_step_falls_to_default_filter(ws, queues):
    """"skipping everything falls to default_filter" (§5.2 item 3)."""
    wf = workflow(
        ws,
        [{"filter_friendly_name": "skip", "expression": "1==1",
          "targets": [{"queue": queues["a"].sid, "timeout": 600, "skip_if": "1==1"}]}],
        default_queue=queues["everyone"].sid,
    )
    task = ws.tasks.create(workflow_sid=wf.sid)
    wait_queue(ws, task.sid, queues["everyone"].sid, timeout=3)


def test_skipping_final_step_without_default_cancels(ws, queues):
    """"skipping the final step of the workflow emits workflow.skipped and
    cancels the task" (§5.2 item 3)."""
    wf = workflow(
        ws,
        [{"filter_friendly_name": "skip", "expression": "1==1",
          "targets": [{"queue": queues["a"].sid, "skip_if": "workers.available == 0"}]}],
    )
    task = ws.tasks.create(workflow_sid=wf.sid)
    wait_task_status(ws, task.sid, "canceled", timeout=3)


def test_target_expression_restricts_workers(ws, queues, acts):
    """Target `expression` joins task and worker attributes (§5.1, §6.2)."""
    available = acts["Available"].sid
    ws.workers.create(friendly_name="Agent 7", attributes='{"agent_id": "a7"}', activity_sid=available)
    ws.workers.create(friendly_name="Agent 8", attributes='{"agent_id": "a8"}', activity_sid=available)
    wf = workflow(
        ws,
        [{"filter_friendly_name": "requested", "expression": "1==1",
          "targets": [{"queue": queues["everyone"].sid,
                       "expression": "task.requested_agent == worker.agent_id"}]}],
    )
    for wanted, name in (("a8", "Agent 8"), ("a7", "Agent 7")):
        task = ws.tasks.create(workflow_sid=wf.sid, attributes=json.dumps({"requested_agent": wanted}))
        (r,) = wait_reservations(ws, task.sid, 1, "pending")
        assert r.worker_name == name
    nobody = ws.tasks.create(workflow_sid=wf.sid, attributes='{"requested_agent": "a9"}')
    time.sleep(0.3)  # a negative check
    assert ws.tasks(nobody.sid).fetch().assignment_status == "pending"


def test_known_worker_sid(ws, queues, acts):
    """`known_worker_sid: task.<attr>` targets exactly that worker (§5.2 item 7)."""
    available = acts["Available"].sid
    workers = [ws.workers.create(friendly_name=f"KW {i}", activity_sid=available) for i in range(3)]
    wf = workflow(
        ws,
        [{"filter_friendly_name": "known", "expression": "1==1",
          "targets": [{"queue": queues["everyone"].sid, "known_worker_sid": "task.last_agent"}]}],
    )
    task = ws.tasks.create(workflow_sid=wf.sid, attributes=json.dumps({"last_agent": workers[2].sid}))
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    assert r.worker_sid == workers[2].sid


def test_known_worker_friendly_name(ws, queues, acts):
    available = acts["Available"].sid
    ws.workers.create(friendly_name="Dana", activity_sid=available)
    ws.workers.create(friendly_name="Eli", activity_sid=available)
    wf = workflow(
        ws,
        [{"filter_friendly_name": "known", "expression": "1==1",
          "targets": [{"queue": queues["everyone"].sid, "known_worker_friendly_name": "task.agent_name"}]}],
    )
    task = ws.tasks.create(workflow_sid=wf.sid, attributes='{"agent_name": "Eli"}')
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    assert r.worker_name == "Eli"


def test_order_by_integer_attributes(ws, queues, acts):
    """§6.3 example: `worker.finance ASC, worker.support ASC`, Alice
    {finance:10, support:8}, Bob {finance:10, support:5} → Bob first."""
    available = acts["Available"].sid
    ws.workers.create(friendly_name="Alice", attributes='{"finance": 10, "support": 8}', activity_sid=available)
    ws.workers.create(friendly_name="Bob", attributes='{"finance": 10, "support": 5}', activity_sid=available)
    wf = workflow(
        ws,
        [{"filter_friendly_name": "ordered", "expression": "1==1",
          "targets": [{"queue": queues["everyone"].sid, "order_by": "worker.finance ASC, worker.support ASC"}]}],
    )
    task = ws.tasks.create(workflow_sid=wf.sid)
    (r,) = wait_reservations(ws, task.sid, 1, "pending")
    assert r.worker_name == "Bob"


def test_order_by_missing_attribute_sorts_last(ws, queues, acts):
    """"a worker missing the attribute sorts after those who have it (for both
    ASC and DESC)": Bob lacks `support` → Alice first (§6.3)."""
    available = acts["Available"].sid
    ws.workers.create(friendly_name="Alice", attributes='{"finance": 10, "support": 8}', activity_sid=available)
    ws.workers.create(friendly_name="Bob", attributes='{"finance": 10}', activity_sid=available)
    for direction in ("ASC", "DESC"):
        wf = workflow(
            ws,
            [{"filter_friendly_name": "ordered", "expression": "1==1",
              "targets": [{"queue": queues["everyone"].sid,
                           "order_by": f"worker.finance ASC, worker.support {direction}"}]}],
        )
        task = ws.tasks.create(workflow_sid=wf.sid)
        (r,) = wait_reservations(ws, task.sid, 1, "pending")
        assert r.worker_name == "Alice", direction
        ws.tasks(task.sid).update(assignment_status="canceled", reason="next direction")


def test_workflow_update_with_re_evaluate_tasks(ws, queues):
    """`ReEvaluateTasks=true` re-runs pending tasks through the new
    configuration (api notes Workflow, §5.2 item 6)."""
    wf = workflow(ws, [], default_queue=queues["a"].sid)
    task = ws.tasks.create(workflow_sid=wf.sid)
    assert task.task_queue_sid == queues["a"].sid
    doc = json.dumps({"task_routing": {"filters": [], "default_filter": {"queue": queues["b"].sid}}})
    ws.workflows(wf.sid).update(configuration=doc, re_evaluate_tasks="true")
    wait_queue(ws, task.sid, queues["b"].sid, timeout=3)


def test_task_queue_entered_date_resets_on_queue_move(ws, queues):
    """`task_queue_entered_date` resets when the task moves queue (§2)."""
    wf = workflow(
        ws,
        [{"filter_friendly_name": "esc", "expression": "1==1",
          "targets": [{"queue": queues["a"].sid, "timeout": 2}, {"queue": queues["b"].sid}]}],
    )
    task = ws.tasks.create(workflow_sid=wf.sid)
    moved = wait_queue(ws, task.sid, queues["b"].sid)
    assert moved.task_queue_entered_date > task.task_queue_entered_date
    assert moved.date_created == task.date_created
