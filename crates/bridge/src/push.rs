//! Which events reach which agent, and as what (the [`taskyard_hub::Renderer`] the bridge
//! installs). Runs in the workspace's actor right after each command, so the payloads show
//! the state that command left.
//!
//! * `reservation.*` go to the reservation's worker, the reservation with its task embedded,
//!   status and task as the event recorded them;
//! * `task.updated` / `.canceled` / `.completed` / `.wrapup` go to every worker holding a
//!   reservation of the task (the SDK updates each copy it has);
//! * `worker.activity.update` and `worker.attributes.update` go to the worker (the SDK echoes
//!   them as `activityUpdated` / `attributesUpdated`, also for its own changes);
//! * `worker.capacity.update` and `worker.channel.availability.update` carry the channel;
//! * `worker.deleted` carries nothing: it ends the worker's connections.
//!
//! Other events (queues, workflows, the assignment-callback record) mean nothing to the SDK.

use taskyard_engine::{Event, EventType as E, Sid, Workspace};
use taskyard_hub::Push;

use crate::gateway;

/// The bridge's renderer: pushes of `events` for the workers `watched` accepts.
pub fn render(
    ws: &Workspace,
    events: &[Event],
    watched: &dyn Fn(Sid) -> bool,
    out: &mut Vec<Push>,
) {
    for e in events {
        let push = |worker: Sid, subject: Option<Sid>, payload: String| Push {
            worker,
            event: e.sid,
            event_type: e.event_type,
            subject,
            payload,
        };
        match e.event_type {
            E::ReservationCreated
            | E::ReservationAccepted
            | E::ReservationRejected
            | E::ReservationTimeout
            | E::ReservationCanceled
            | E::ReservationRescinded
            | E::ReservationCompleted
            | E::ReservationWrapup => {
                let (Some((sid, status)), Some(worker)) = (e.reservation, e.worker.as_deref())
                else {
                    continue;
                };
                if !watched(worker.sid) {
                    continue;
                }
                if let Some(json) = gateway::reservation_as_of(ws, e, status) {
                    out.push(push(worker.sid, Some(sid), to_json(&json)));
                }
            }
            E::TaskUpdated | E::TaskCanceled | E::TaskCompleted | E::TaskWrapup => {
                let Some(facts) = e.task.as_deref() else {
                    continue;
                };
                let mut workers: Vec<Sid> = ws
                    .task_reservations(facts.sid)
                    .map(|r| r.worker_sid)
                    .filter(|w| watched(*w))
                    .collect();
                workers.sort();
                workers.dedup();
                if workers.is_empty() {
                    continue;
                }
                let payload = to_json(&gateway::task_as_of(ws, e, facts));
                for w in workers {
                    out.push(push(w, None, payload.clone()));
                }
            }
            E::WorkerActivityUpdate | E::WorkerAttributesUpdate => {
                let sid = e.resource_sid;
                if !watched(sid) {
                    continue;
                }
                let Some(w) = ws.workers().get(&sid) else {
                    continue;
                };
                let subject = (e.event_type == E::WorkerActivityUpdate).then_some(w.activity_sid);
                out.push(push(sid, subject, to_json(&gateway::worker(ws, w))));
            }
            E::WorkerCapacityUpdate | E::WorkerChannelAvailabilityUpdate => {
                let sid = e.resource_sid;
                let Some(channel) = e.sid_of("worker_channel_sid") else {
                    continue;
                };
                if !watched(sid) {
                    continue;
                }
                let Some(w) = ws.workers().get(&sid) else {
                    continue;
                };
                let Some(c) = w.channels.iter().find(|c| c.sid == channel) else {
                    continue;
                };
                let json = to_json(&gateway::worker_channel(ws, w, c));
                out.push(push(sid, Some(channel), json));
            }
            E::WorkerDeleted if watched(e.resource_sid) => {
                out.push(push(e.resource_sid, None, String::new()));
            }
            _ => {}
        }
    }
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
