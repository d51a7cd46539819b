//! What the engine benches set up alike: skill queues, a workflow that routes by skill, and
//! available workers with a skill each.

use serde_json::json;
use taskyard_engine::*;

/// `queues` queues (`skill == N`) and one workflow of one filter per queue, in `ws`.
pub fn skill_queues_and_workflow(
    ws: &mut Workspace,
    queues: usize,
    now: Millis,
    ids: &mut CountingSids,
) {
    let mut sids = Vec::new();
    for q in 0..queues {
        let cmd = Command::CreateTaskQueue(TaskQueueParams {
            friendly_name: Some(format!("Skill {q}")),
            target_workers: Some(format!("skill == {q}")),
            ..Default::default()
        });
        sids.push(ws.apply(cmd, now, ids).expect("queue").sid);
    }
    let filters: Vec<_> = sids
        .iter()
        .enumerate()
        .map(|(q, sid)| json!({"expression": format!("skill == {q}"), "targets": [{"queue": sid.to_string()}]}))
        .collect();
    let config = json!({"task_routing": {"filters": filters}});
    ws.apply(
        Command::CreateWorkflow(WorkflowParams {
            friendly_name: Some("By skill".into()),
            configuration: Some(config.to_string()),
            ..Default::default()
        }),
        now,
        ids,
    )
    .expect("workflow");
}

/// An empty workspace, its SID source and the time it was made.
pub fn workspace() -> (Workspace, CountingSids, Millis) {
    let mut ids = CountingSids(0);
    let now: Millis = 1_700_000_000_000;
    let (ws, _) = Workspace::create(
        Sid::new("AC", 1),
        NewWorkspace {
            friendly_name: "Bench".into(),
            ..Default::default()
        },
        now,
        &mut ids,
    )
    .expect("workspace");
    (ws, ids, now)
}

// Each bench compiles this module on its own, and the statistics bench has workers of
// every activity instead.
#[allow(dead_code)]
/// A workspace with `workers` available workers (`skill` = worker number mod `queues`, room
/// for `capacity` tasks each on the default channel) in `queues` skill queues, and the
/// workflow that routes by skill.
pub fn available_workers(
    workers: usize,
    queues: usize,
    capacity: u32,
) -> (Workspace, CountingSids, Millis) {
    let (mut ws, mut ids, now) = workspace();
    let available = ws
        .activities()
        .values()
        .find(|a| a.available)
        .expect("available")
        .sid;
    skill_queues_and_workflow(&mut ws, queues, now, &mut ids);
    for w in 0..workers {
        let cmd = Command::CreateWorker(CreateWorker {
            friendly_name: format!("worker {w}"),
            activity_sid: Some(available),
            attributes: Some(json!({"skill": w % queues, "languages": ["en", "es"]}).to_string()),
        });
        let sid = ws.apply(cmd, now, &mut ids).expect("worker").sid;
        let cmd = Command::UpdateWorkerChannel {
            worker: sid,
            channel: "default".into(),
            capacity: Some(capacity),
            available: None,
        };
        ws.apply(cmd, now, &mut ids).expect("capacity");
    }
    (ws, ids, now)
}
