//! What the engine benches set up alike: skill queues and a workflow that routes by skill.

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
