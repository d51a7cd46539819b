//! After the commit: assignment callbacks, event callbacks and the live feed.
//!
//! The writer hands every batch of committed events to one dispatcher task, which
//!
//! * publishes them on the live feed (a broadcast channel the SSE endpoint reads);
//! * wakes the workspace's **event-callback deliverer**, which POSTs the workspace's
//!   callback events in order, at least once: it reads them from the store after its
//!   durable cursor, retries a failing receiver with backoff without ever skipping an event,
//!   and stores its cursor after each batch, so a restart resumes where it stopped;
//! * starts the **assignment callback** of every new reservation whose workflow has a URL:
//!   POST, then (on timeout, connection error, non-2xx status or unusable body) one POST to
//!   the fallback URL, and reports what happened to the workspace's actor as a command, which
//!   records it as events and carries out the instruction.
//!
//! None of this runs on a workspace's actor, so a slow or dead application never delays
//! routing: its reservation simply waits for a REST answer or its timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use taskyard_engine::{
    AssignmentCallback, CallbackAttempt, CallbackInstruction, CallbackKind, Command, Event, Sid,
};
use taskyard_store::{EventLog, StoredEvent, Write};
use taskyard_webhook::{Answer, Attempt, AttemptError, Client, Policy, camel_case, parse_answer};
use tokio::sync::{Notify, Semaphore, broadcast, mpsc};

use crate::writer::Committed;
use crate::{Hub, now_ms};

/// Settings of outbound callbacks.
#[derive(Debug, Clone)]
pub struct CallbackOptions {
    /// How long an application has to answer an assignment callback (Twilio: 5 s).
    pub assignment_timeout: Duration,
    /// How long an event-callback receiver has to answer (Twilio: 15 s).
    pub event_timeout: Duration,
    /// Where telephony instructions (`dequeue`, `call`, …) are handed, if anywhere. The
    /// operator configures it, so the callback [`policy`](Self::policy) does not apply to it.
    pub media_connector_url: Option<String>,
    /// Longest wait between two deliveries of an event a receiver keeps refusing.
    pub max_backoff: Duration,
    /// Which addresses assignment, fallback and event callbacks may reach, checked on every
    /// connection (the API checks URLs against the same policy when they are saved).
    pub policy: Policy,
}

impl Default for CallbackOptions {
    fn default() -> Self {
        CallbackOptions {
            assignment_timeout: Duration::from_secs(5),
            event_timeout: Duration::from_secs(15),
            media_connector_url: None,
            max_backoff: Duration::from_secs(60),
            policy: Policy::default(),
        }
    }
}

/// A committed event, as the live feed carries it.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    pub workspace: Sid,
    pub event: StoredEvent,
}

/// At most this many assignment callbacks are in flight at once; more wait their turn.
const MAX_IN_FLIGHT: usize = 512;
/// Events read from the outbox per round.
const DELIVERY_BATCH: usize = 100;

/// The dispatcher's shared parts.
pub(crate) struct Dispatch {
    pub(crate) options: CallbackOptions,
    /// For the URLs accounts set: connects only where the policy allows.
    pub(crate) client: Client,
    /// For the media connector, which the operator set: connects anywhere.
    media_client: Option<Client>,
    pub(crate) log: Arc<dyn EventLog>,
    pub(crate) live: broadcast::Sender<Arc<LiveEvent>>,
    slots: Arc<Semaphore>,
    /// Workspace → wakes its event-callback deliverer.
    deliverers: Mutex<HashMap<Sid, Arc<Notify>>>,
    /// Workspace → when its oldest event not yet delivered was committed (ms), while its
    /// deliverer holds one: the event-callback backlog, as the age of its head.
    heads: Mutex<HashMap<Sid, i64>>,
}

impl Dispatch {
    pub(crate) fn new(options: CallbackOptions, log: Arc<dyn EventLog>) -> Dispatch {
        let media_client = options
            .media_connector_url
            .as_ref()
            .map(|_| Client::with_policy(Policy::unrestricted()));
        Dispatch {
            client: Client::with_policy(options.policy.clone()),
            media_client,
            options,
            log,
            live: broadcast::channel(16_384).0,
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            deliverers: Mutex::new(HashMap::new()),
            heads: Mutex::new(HashMap::new()),
        }
    }
}

/// Runs the dispatcher until the writer stops.
pub(crate) async fn run(hub: Hub, mut rx: mpsc::UnboundedReceiver<Committed>) {
    while let Some(mut c) = rx.recv().await {
        if !c.pushes.is_empty() {
            hub.forward_pushes(c.workspace, std::mem::take(&mut c.pushes));
        }
        let d = &hub.inner.dispatch;
        if d.live.receiver_count() > 0 {
            for s in &c.stored {
                let _ = d.live.send(Arc::new(LiveEvent {
                    workspace: c.workspace,
                    event: s.clone(),
                }));
            }
        }
        if c.stored.iter().any(|s| s.callback) {
            wake_deliverer(&hub, c.workspace, None);
        }
        for e in c.events {
            if e.assignment.is_some() {
                tokio::spawn(assignment_callback(hub.clone(), c.workspace, e));
            }
        }
    }
}

// ----- assignment callbacks ----------------------------------------------------------------

/// Twilio's documented assignment-callback parameters, from a `reservation.created` event.
fn assignment_params(e: &Event) -> Vec<(String, String)> {
    const NAMES: [&str; 12] = [
        "account_sid",
        "workspace_sid",
        "workflow_sid",
        "task_queue_sid",
        "worker_sid",
        "worker_attributes",
        "task_sid",
        "task_attributes",
        "task_age",
        "task_priority",
        "reservation_sid",
        "timestamp",
    ];
    NAMES
        .iter()
        .filter_map(|&k| {
            let v = match k {
                "timestamp" => (e.at.div_euclid(1000)).to_string(),
                _ => e.get(k).map(|f| f.text())?,
            };
            Some((camel_case(k), v))
        })
        .collect()
}

/// Sends a reservation's assignment callback (and fallback, if needed) and reports the
/// outcome to the workspace's actor.
pub(crate) async fn assignment_callback(hub: Hub, workspace: Sid, e: Event) {
    let Some(target) = e.assignment.clone() else {
        return;
    };
    let d = &hub.inner.dispatch;
    let Ok(_slot) = d.slots.clone().acquire_owned().await else {
        return;
    };
    let Some(token) = e
        .sid_of("account_sid")
        .and_then(|a| hub.account(a))
        .map(|a| a.auth_token)
    else {
        return;
    };
    let reservation = e.resource_sid;
    let params = assignment_params(&e);
    let timeout = d.options.assignment_timeout;
    let idempotency = reservation.to_string();

    let mut attempts = Vec::new();
    let first = d
        .client
        .post_form(&target.url, &params, &token, timeout, Some(&idempotency))
        .await;
    counted("assignment", &first);
    let mut answer = parse_answer(&first);
    attempts.push(record(&first, CallbackKind::Assignment, &answer));
    if let (Answer::Failed { .. }, Some(fallback)) = (&answer, &target.fallback_url) {
        let second = d
            .client
            .post_form(fallback, &params, &token, timeout, Some(&idempotency))
            .await;
        counted("fallback", &second);
        answer = parse_answer(&second);
        attempts.push(record(&second, CallbackKind::Fallback, &answer));
    }
    let instruction = match answer {
        Answer::Accept => Some(CallbackInstruction::Accept),
        Answer::Reject { activity_sid } => Some(CallbackInstruction::Reject { activity_sid }),
        Answer::Telephony { instruction, body } => {
            telephony(&hub, &e, &token, &instruction, &body, &mut attempts).await
        }
        _ => None,
    };
    for a in &attempts {
        log_attempt(reservation, a);
    }
    let Ok(handle) = hub.workspace_by_sid(workspace) else {
        return;
    };
    let report = Command::AssignmentCallback(AssignmentCallback {
        reservation,
        attempts,
        instruction,
    });
    if let Err(err) = handle.apply(report, |_, _| ()).await {
        tracing::warn!(%reservation, error = %err, "could not record an assignment callback");
    }
}

/// Counts a callback attempt in the process's metrics.
fn counted(kind: &'static str, a: &Attempt) {
    if refused(a) {
        taskyard_metrics::callback_refused(kind);
    } else {
        taskyard_metrics::callback(kind, a.status, a.duration_ms as f64 / 1000.0);
    }
}

/// Whether the callback policy refused the attempt's address (nothing was sent).
fn refused(a: &Attempt) -> bool {
    matches!(a.error, Some(AttemptError::Refused(_)))
}

/// An attempt as the engine records it. (For an instruction the engine carries out, it
/// replaces the outcome with what the instruction did.)
fn record(a: &Attempt, kind: CallbackKind, answer: &Answer) -> CallbackAttempt {
    let (outcome, error_code, message) = match answer {
        Answer::Defer => ("deferred", None, String::new()),
        Answer::DeferWithWarning { code, message } => ("deferred", Some(*code), message.clone()),
        Answer::Accept => ("accept", None, String::new()),
        Answer::Reject { .. } => ("reject", None, String::new()),
        Answer::Telephony { instruction, .. } => (
            "unsupported",
            None,
            format!(
                "Taskyard places no calls: '{instruction}' needs a media connector (TASKYARD_MEDIA_CONNECTOR_URL); the reservation stays pending"
            ),
        ),
        Answer::Invalid { code, message } => ("invalid", Some(*code), message.clone()),
        // Still a failure (the fallback is tried), but named apart: it is the URL, not the
        // application, that needs fixing.
        Answer::Failed { code, message } if refused(a) => ("refused", *code, message.clone()),
        Answer::Failed { code, message } => ("failed", *code, message.clone()),
    };
    CallbackAttempt {
        url: a.url.clone(),
        kind,
        status: a.status,
        duration_ms: a.duration_ms,
        outcome: outcome.to_string(),
        error_code,
        message,
    }
}

/// Hands a telephony instruction to the media connector, if one is configured. Returns an
/// accept when the connector took a `call` or `redirect` marked `"accept": true` (Twilio
/// accepts those at once; `dequeue` and `conference` are accepted by the connector through
/// the REST API once the call is bridged).
async fn telephony(
    hub: &Hub,
    e: &Event,
    token: &str,
    instruction: &str,
    body: &serde_json::Map<String, Value>,
    attempts: &mut Vec<CallbackAttempt>,
) -> Option<CallbackInstruction> {
    let d = &hub.inner.dispatch;
    let url = d.options.media_connector_url.as_deref()?;
    let client = d.media_client.as_ref()?;
    let mut params = vec![
        ("Instruction".to_string(), instruction.to_string()),
        (
            "InstructionJson".to_string(),
            Value::Object(body.clone()).to_string(),
        ),
    ];
    for k in [
        "reservation_sid",
        "task_sid",
        "worker_sid",
        "workspace_sid",
        "account_sid",
        "task_attributes",
        "worker_attributes",
    ] {
        if let Some(v) = e.get(k) {
            params.push((camel_case(k), v.text()));
        }
    }
    if let Some(last) = attempts.last_mut() {
        last.outcome = "forwarded".into();
        last.message = format!("'{instruction}' handed to the media connector");
    }
    let a = client
        .post_form(url, &params, token, d.options.assignment_timeout, None)
        .await;
    counted("media_connector", &a);
    let ok = a.succeeded();
    attempts.push(CallbackAttempt {
        url: a.url.clone(),
        kind: CallbackKind::MediaConnector,
        status: a.status,
        duration_ms: a.duration_ms,
        outcome: if ok { "forwarded" } else { "failed" }.into(),
        error_code: None,
        message: a.error.map(|e| e.to_string()).unwrap_or_default(),
    });
    let accept = body.get("accept").and_then(Value::as_bool) == Some(true)
        && matches!(instruction, "call" | "redirect");
    (ok && accept).then_some(CallbackInstruction::Accept)
}

fn log_attempt(reservation: Sid, a: &CallbackAttempt) {
    let status = a
        .status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "-".into());
    let code = a.error_code.map(|c| c.to_string()).unwrap_or_default();
    if matches!(
        a.outcome.as_str(),
        "failed" | "refused" | "invalid" | "unsupported"
    ) {
        tracing::warn!(
            %reservation, kind = a.kind.as_str(), url = %a.url, status, ms = a.duration_ms,
            outcome = %a.outcome, code, message = %a.message, "assignment callback"
        );
    } else {
        tracing::info!(
            %reservation, kind = a.kind.as_str(), url = %a.url, status, ms = a.duration_ms,
            outcome = %a.outcome, "assignment callback"
        );
    }
}

// ----- event callbacks ---------------------------------------------------------------------

/// Wakes (starting it if needed) the workspace's event-callback deliverer.
pub(crate) fn wake_deliverer(hub: &Hub, workspace: Sid, cursor: Option<Sid>) {
    let d = &hub.inner.dispatch;
    let mut map = d.deliverers.lock().unwrap_or_else(|p| p.into_inner());
    match map.get(&workspace) {
        Some(n) => n.notify_one(),
        None => {
            let notify = Arc::new(Notify::new());
            map.insert(workspace, notify.clone());
            tokio::spawn(deliver(hub.clone(), workspace, notify, cursor));
        }
    }
}

/// The form parameters of an event callback, from the stored event: the always-present
/// ones, then every `event_data` key in CamelCase.
pub fn event_params(json: &str) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    let text = |k: &str| match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let ms = v.get("event_date_ms").and_then(Value::as_i64).unwrap_or(0);
    let mut p = vec![
        ("EventType".to_string(), text("event_type")),
        ("EventDescription".to_string(), text("description")),
        (
            "ResourceType".to_string(),
            taskyard_engine::EventType::parse(&text("event_type"))
                .map_or("workspace", taskyard_engine::EventType::resource_type)
                .to_string(),
        ),
        ("ResourceSid".to_string(), text("resource_sid")),
        ("Sid".to_string(), text("sid")),
        ("Timestamp".to_string(), ms.div_euclid(1000).to_string()),
        ("TimestampMs".to_string(), ms.to_string()),
    ];
    if let Some(Value::Object(data)) = v.get("event_data") {
        for (k, val) in data {
            let val = match val {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            p.push((camel_case(k), val));
        }
    }
    p
}

/// Delivers a workspace's callback events in order, at least once, forever.
async fn deliver(hub: Hub, workspace: Sid, notify: Arc<Notify>, mut cursor: Option<Sid>) {
    let d = &hub.inner.dispatch;
    let mut stored_cursor = cursor;
    loop {
        let log = d.log.clone();
        let after = cursor;
        let batch =
            tokio::task::spawn_blocking(move || log.to_deliver(workspace, after, DELIVERY_BATCH))
                .await;
        let batch: Vec<StoredEvent> = match batch {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::error!(%workspace, error = %e, "cannot read events to deliver");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(_) => return,
        };
        if batch.is_empty() {
            set_head(d, workspace, None);
            // Woken by new events; the timeout only guards against a lost wake-up.
            let _ = tokio::time::timeout(Duration::from_secs(30), notify.notified()).await;
            if hub.workspace_by_sid(workspace).is_err() {
                forget(&hub, workspace);
                return;
            }
            continue;
        }
        // The URL now (it may have been changed, or cleared to stop deliveries); asked
        // again only after a failure.
        let Some(mut dest) = target(&hub, workspace).await else {
            forget(&hub, workspace);
            return;
        };
        for ev in batch {
            set_head(d, workspace, Some(ev.date_ms));
            let mut backoff = Duration::from_secs(1).min(d.options.max_backoff);
            loop {
                let (Some(url), token) = &dest else {
                    tracing::info!(%workspace, event = %ev.sid, "event callback URL cleared; event not delivered");
                    break;
                };
                let params = event_params(&ev.json);
                let id = ev.sid.to_string();
                let a = d
                    .client
                    .post_form(url, &params, token, d.options.event_timeout, Some(&id))
                    .await;
                counted("event", &a);
                if a.succeeded() {
                    break;
                }
                let why = a
                    .error
                    .map(|e| e.to_string())
                    .or(a.status.map(|s| format!("HTTP {s}")))
                    .unwrap_or_default();
                tracing::warn!(%workspace, event = %ev.sid, %url, %why, retry_in_ms = backoff.as_millis() as u64, "event callback failed; retrying");
                // Keep what was delivered so far: a restart resumes right here.
                if cursor != stored_cursor
                    && let Some(delivered) = cursor
                {
                    save_cursor(&hub, workspace, delivered).await;
                    stored_cursor = cursor;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(d.options.max_backoff);
                let Some(now) = target(&hub, workspace).await else {
                    forget(&hub, workspace);
                    return;
                };
                dest = now;
            }
            cursor = Some(ev.sid);
        }
        if cursor != stored_cursor
            && let Some(delivered) = cursor
        {
            save_cursor(&hub, workspace, delivered).await;
            stored_cursor = cursor;
        }
    }
}

async fn save_cursor(hub: &Hub, workspace: Sid, delivered: Sid) {
    let write = Write::EventCursor {
        workspace,
        delivered,
    };
    if let Err(e) = hub.inner.writer.submit(write).await {
        tracing::error!(%workspace, error = %e, "cannot store the delivery cursor");
    }
}

/// The workspace's event callback URL now and its account's token; `None` once the
/// workspace is gone.
async fn target(hub: &Hub, workspace: Sid) -> Option<(Option<String>, String)> {
    let h = hub.workspace_by_sid(workspace).ok()?;
    let url = h
        .read(|ws| ws.info().event_callback_url.clone())
        .await
        .ok()?;
    let token = hub.account(h.account_sid)?.auth_token;
    Some((url, token))
}

fn set_head(d: &Dispatch, workspace: Sid, committed_ms: Option<i64>) {
    let mut heads = d.heads.lock().unwrap_or_else(|p| p.into_inner());
    match committed_ms {
        Some(ms) => heads.insert(workspace, ms),
        None => heads.remove(&workspace),
    };
}

/// Workspace → commit time (ms) of its oldest event not yet delivered to its event
/// callback URL, for the workspaces that have one waiting.
pub(crate) fn callback_heads(d: &Dispatch) -> Vec<(Sid, i64)> {
    let heads = d.heads.lock().unwrap_or_else(|p| p.into_inner());
    heads.iter().map(|(w, ms)| (*w, *ms)).collect()
}

fn forget(hub: &Hub, workspace: Sid) {
    set_head(&hub.inner.dispatch, workspace, None);
    hub.inner
        .dispatch
        .deliverers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&workspace);
}

/// Resends the assignment callbacks of reservations still pending after a restart (the
/// server cannot know whether they were answered).
pub(crate) async fn resend_pending_assignments(hub: Hub, workspaces: Vec<Sid>) {
    for ws in workspaces {
        let Ok(h) = hub.workspace_by_sid(ws) else {
            continue;
        };
        if let Ok(pending) = h.read(|w| w.pending_assignments(now_ms())).await {
            for e in pending {
                tokio::spawn(assignment_callback(hub.clone(), ws, e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_params_are_the_documented_names() {
        let json = r#"{"sid":"EV1","event_type":"task.created","event_date_ms":1700000000123,
            "resource_sid":"WT1","description":"Task WT1 created",
            "event_data":{"task_sid":"WT1","task_queue_sid":"WQ1","workspace_name":"W"}}"#;
        let p = event_params(json);
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("EventType"), Some("task.created"));
        assert_eq!(get("Timestamp"), Some("1700000000"));
        assert_eq!(get("TimestampMs"), Some("1700000000123"));
        assert_eq!(get("TaskQueueSid"), Some("WQ1"));
        assert_eq!(get("WorkspaceName"), Some("W"));
        assert_eq!(get("Sid"), Some("EV1"));
        // Not stored; follows from the event type.
        assert_eq!(get("ResourceType"), Some("task"));
    }

    #[tokio::test]
    async fn a_refused_callback_is_recorded_as_refused_and_still_fails_over() {
        let client = Client::new();
        let a = client
            .post_form(
                "http://169.254.169.254/latest/meta-data/",
                &[],
                "token",
                Duration::from_secs(5),
                None,
            )
            .await;
        assert!(refused(&a), "{a:?}");
        let answer = parse_answer(&a);
        // A failure, so the fallback URL is tried.
        assert!(matches!(answer, Answer::Failed { .. }), "{answer:?}");
        let recorded = record(&a, CallbackKind::Assignment, &answer);
        assert_eq!(recorded.outcome, "refused");
        assert_eq!(recorded.status, None);
        assert!(
            recorded
                .message
                .contains("169.254.169.254, an address callbacks may not reach"),
            "{}",
            recorded.message
        );

        let timed_out = Attempt {
            error: Some(AttemptError::Timeout),
            ..a
        };
        let answer = parse_answer(&timed_out);
        assert_eq!(
            record(&timed_out, CallbackKind::Assignment, &answer).outcome,
            "failed"
        );
    }
}
