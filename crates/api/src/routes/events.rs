//! `/v1/Workspaces/{Sid}/Events`, `…/Events/{Sid}` and the live stream `…/Events/Stream`.
//!
//! Events are read from the store (only committed events exist), never from a workspace's
//! actor, so listing 30 days of them does not stall routing. The live stream pushes the
//! same documents as server-sent events the moment they are committed.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use taskyard_engine::{EventType, Millis, Sid, sid::prefix};
use taskyard_hub::{EventLog, EventQuery, LiveEvent, StoredEvent, now_ms};
use tokio::sync::broadcast;

use super::{Ctx, json};
use crate::error::ApiError;
use crate::paging::{Cursor, envelope};
use crate::render::{Urls, iso, parse_iso};

/// The list's default window (Twilio's `Minutes` default).
const DEFAULT_MINUTES: i64 = 15;
/// Events are kept this long; older ones cannot be asked for.
const MAX_MINUTES: i64 = 30 * 24 * 60;

pub async fn list(ctx: Ctx, Path(ws): Path<String>) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let page = ctx.page()?;
    let q = &ctx.query;
    let end = match q.str("EndDate") {
        None => None,
        Some(s) => Some(parse_iso(s).ok_or_else(|| bad_date("EndDate", s))?),
    };
    let start = match q.str("StartDate") {
        Some(s) => parse_iso(s).ok_or_else(|| bad_date("StartDate", s))?,
        None => {
            let minutes = match q.int::<i64>("Minutes")? {
                None => DEFAULT_MINUTES,
                Some(m) if (1..=MAX_MINUTES).contains(&m) => m,
                Some(_) => {
                    return Err(ApiError::invalid(format!(
                        "Minutes must be between 1 and {MAX_MINUTES}"
                    )));
                }
            };
            end.unwrap_or_else(now_ms) - minutes * 60_000
        }
    };
    let channel = match q.str("TaskChannel") {
        None => None,
        Some(key) => {
            let key = key.to_string();
            // An unknown channel matches nothing (a SID that never existed).
            let found = ctx
                .read(&h, move |w| w.find_task_channel(&key).map(|c| c.sid))
                .await?;
            Some(found.unwrap_or(Sid::new(prefix::TASK_CHANNEL, 0)))
        }
    };
    let mut query = EventQuery::new(h.sid);
    query.start_ms = Some(start);
    query.end_ms = end;
    query.event_type = q.string("EventType");
    query.task_sid = q.sid("TaskSid", prefix::TASK)?;
    query.worker_sid = q.sid("WorkerSid", prefix::WORKER)?;
    query.reservation_sid = q.sid("ReservationSid", prefix::RESERVATION)?;
    query.task_queue_sid = q.sid("TaskQueueSid", prefix::TASK_QUEUE)?;
    query.workflow_sid = q.sid("WorkflowSid", prefix::WORKFLOW)?;
    query.task_channel_sid = channel;
    query.sid = q.sid("Sid", prefix::EVENT)?;
    match page.cursor {
        Cursor::After(s) => query.after = Some(s),
        Cursor::Before(s) => query.before = Some(s),
        Cursor::Start | Cursor::Offset(_) => {}
    }
    // One more than the page, to know whether there is a next (or previous) page.
    query.limit = page.size + 1;
    let log = ctx.app.hub.events();
    let mut found = blocking(move || log.query(&query)).await?;
    let more = found.len() > page.size;
    let (more_before, more_after) = match page.cursor {
        Cursor::Before(_) => {
            if more {
                found.remove(0);
            }
            (more && page.page > 0, true)
        }
        _ => {
            found.truncate(page.size);
            (page.page > 0, more)
        }
    };
    let meta = page.keyset_meta(
        found.first().map(|e| e.sid),
        found.last().map(|e| e.sid),
        more_before,
        more_after,
    );
    let urls = &ctx.app.urls;
    let items: Vec<Value> = found.iter().map(|e| render(urls, h.sid, e)).collect();
    Ok(json(StatusCode::OK, envelope("events", items, meta)))
}

pub async fn fetch(
    ctx: Ctx,
    Path((ws, sid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let sid = ctx.path_sid(&sid, prefix::EVENT)?;
    let log = ctx.app.hub.events();
    let ws_sid = h.sid;
    let found = blocking(move || log.fetch(ws_sid, sid))
        .await?
        .ok_or_else(|| ctx.not_found())?;
    let body = serde_json::to_string(&render(&ctx.app.urls, h.sid, &found)).unwrap_or_default();
    Ok(json(StatusCode::OK, body))
}

/// `GET …/Events/Stream`: server-sent events, one per committed event of the workspace
/// (`id:` the event SID, `event:` its type, `data:` the Event resource). `EventType=a,b`
/// filters; a `Last-Event-ID` header first replays what was stored after that event.
pub async fn stream(
    ctx: Ctx,
    Path(ws): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let h = ctx.workspace(&ws)?;
    let types: Vec<String> = ctx
        .query
        .list("EventType")
        .iter()
        .flat_map(|t| t.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    let last =
        match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
            None | Some("") => None,
            Some(id) => Some(Sid::parse_with(id.trim(), prefix::EVENT).map_err(|_| {
                ApiError::invalid(format!("Last-Event-ID '{id}' is not an Event SID"))
            })?),
        };
    // Subscribe before reading the backlog, so nothing committed in between is missed
    // (duplicates are dropped by SID).
    let live = ctx.app.hub.live();
    let mut feed = Feed {
        workspace: h.sid,
        types,
        urls: ctx.app.urls.clone(),
        log: ctx.app.hub.events(),
        live,
        backlog: VecDeque::new(),
        last,
        replay: last.is_some(),
        _open: taskyard_metrics::Open::new(&taskyard_metrics::metrics().event_streams),
    };
    if feed.replay {
        feed.refill().await;
    }
    // The stream ends when the server starts to stop (a graceful shutdown waits for every
    // response to end); the client reconnects with Last-Event-ID and misses nothing.
    let stopping = Box::pin(ctx.app.hub.stopping());
    let events =
        futures_util::stream::unfold((feed, stopping), |(mut feed, mut stopping)| async move {
            let event = tokio::select! {
                e = feed.next() => e?,
                () = &mut stopping => return None,
            };
            Some((Ok::<_, Infallible>(event), (feed, stopping)))
        });
    Ok(axum::response::Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// One live stream's state.
struct Feed {
    workspace: Sid,
    types: Vec<String>,
    urls: Arc<Urls>,
    log: Arc<dyn EventLog>,
    live: broadcast::Receiver<Arc<LiveEvent>>,
    /// Stored events still to send (a replay, or what a slow client missed live).
    backlog: VecDeque<StoredEvent>,
    /// The last event sent (or asked to resume after).
    last: Option<Sid>,
    /// The backlog has been read up to the present; refill when it runs out.
    replay: bool,
    /// Counts the stream as open while it lives.
    _open: taskyard_metrics::Open,
}

impl Feed {
    fn wanted(&self, event_type: &str) -> bool {
        self.types.is_empty() || self.types.iter().any(|t| t == event_type)
    }

    /// Reads the next stored events after `last` into the backlog.
    async fn refill(&mut self) {
        let mut q = EventQuery::new(self.workspace);
        q.after = self.last;
        q.limit = 500;
        let log = self.log.clone();
        match tokio::task::spawn_blocking(move || log.query(&q)).await {
            Ok(Ok(found)) => {
                self.replay = found.len() == 500;
                self.backlog.extend(found);
            }
            _ => self.replay = false,
        }
    }

    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                if self.backlog.is_empty() && self.replay {
                    self.refill().await;
                }
                self.last = Some(e.sid);
                if self.wanted(&e.event_type) {
                    return Some(sse(&self.urls, self.workspace, &e));
                }
                continue;
            }
            match self.live.recv().await {
                Ok(e) => {
                    if e.workspace != self.workspace || self.last.is_some_and(|l| e.event.sid <= l)
                    {
                        continue;
                    }
                    self.last = Some(e.event.sid);
                    if self.wanted(&e.event.event_type) {
                        return Some(sse(&self.urls, self.workspace, &e.event));
                    }
                }
                // Too slow a reader: catch up from the store, then go on live.
                Err(broadcast::error::RecvError::Lagged(_)) => self.refill().await,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

fn sse(urls: &Urls, ws: Sid, e: &StoredEvent) -> Sse {
    Sse::default()
        .id(e.sid.to_string())
        .event(e.event_type.clone())
        .data(serde_json::to_string(&render(urls, ws, e)).unwrap_or_default())
}

/// The Event resource: the stored document plus what follows from it (URLs, ISO date,
/// account, workspace, resource type, actor).
pub fn render(urls: &Urls, ws: Sid, e: &StoredEvent) -> Value {
    let mut v: Value = serde_json::from_str(&e.json).unwrap_or(Value::Null);
    let Some(obj) = v.as_object_mut() else {
        return v;
    };
    let base = urls.workspace(ws);
    let resource = obj
        .get("resource_sid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    // What the store leaves out because it follows from the rest.
    let resource_type = obj
        .get("event_type")
        .and_then(Value::as_str)
        .and_then(EventType::parse)
        .map_or("workspace", EventType::resource_type);
    let account = obj
        .get("event_data")
        .and_then(|d| d.get("account_sid"))
        .cloned()
        .unwrap_or(Value::Null);
    obj.insert("account_sid".into(), account);
    obj.insert("workspace_sid".into(), Value::String(ws.to_string()));
    obj.insert("resource_type".into(), Value::String(resource_type.into()));
    obj.insert("actor_type".into(), Value::String("workspace".into()));
    obj.insert("actor_sid".into(), Value::String(ws.to_string()));
    let resource_url = match Some(resource_type) {
        Some("task") => format!("{base}/Tasks/{resource}"),
        Some("reservation") => {
            let task = obj
                .get("event_data")
                .and_then(|d| d.get("task_sid"))
                .and_then(Value::as_str)
                .unwrap_or("");
            format!("{base}/Tasks/{task}/Reservations/{resource}")
        }
        Some("worker") => format!("{base}/Workers/{resource}"),
        Some("activity") => format!("{base}/Activities/{resource}"),
        Some("taskqueue") => format!("{base}/TaskQueues/{resource}"),
        Some("taskchannel") => format!("{base}/TaskChannels/{resource}"),
        Some("workflow") => format!("{base}/Workflows/{resource}"),
        _ => base.clone(),
    };
    let date: Millis = obj
        .get("event_date_ms")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    obj.insert("event_date".into(), Value::String(iso(date)));
    obj.insert("resource_url".into(), Value::String(resource_url));
    obj.insert("actor_url".into(), Value::String(base.clone()));
    obj.insert("source".into(), Value::String("taskyard".into()));
    obj.insert("source_ip_address".into(), Value::Null);
    obj.insert(
        "url".into(),
        Value::String(format!("{base}/Events/{}", e.sid)),
    );
    v
}

fn bad_date(param: &str, value: &str) -> ApiError {
    ApiError::invalid(format!(
        "{param} '{value}' is not an ISO 8601 date-time (for example 2024-01-02T03:04:05Z)"
    ))
}

/// Runs a store read off the async threads.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, taskyard_hub::StoreError> + Send + 'static,
) -> Result<R, ApiError> {
    let failed = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "reading events failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            crate::error::code::INTERNAL,
            "Internal error: events could not be read",
        )
    };
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(failed(&e)),
        Err(e) => Err(failed(&e)),
    }
}
