//! `GET /metrics`: the process's metrics in Prometheus's (OpenMetrics) text format.
//!
//! Counts come from [`taskyard_metrics`]; the per-workspace figures (tasks waiting, the
//! longest wait, workers, available workers) are read from each workspace this node runs at
//! scrape time, one message to each workspace's actor. With `TASKYARD_METRICS_TOKEN` set, a
//! scrape must send it as `Authorization: Bearer <token>` (Prometheus's `authorization`
//! setting); without it `/metrics` is open, like `/healthz`. The figures name no tenant data
//! beyond workspace SIDs.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use taskyard_hub::{Hub, now_ms};
use taskyard_metrics::Snapshot;

pub struct Scrape {
    pub hub: Hub,
    pub token: Option<String>,
    /// Whether per-workspace series are written (one series per workspace and figure).
    pub per_workspace: bool,
}

pub async fn metrics(State(s): State<Arc<Scrape>>, headers: HeaderMap) -> Response {
    if let Some(token) = &s.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !taskyard_auth::constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return taskyard_api::ApiError::unauthorized().into_response();
        }
    }
    let heads = s.hub.event_callback_heads();
    let age = |committed_ms: i64| ((now_ms() - committed_ms).max(0) as f64) / 1000.0;
    let lag = heads.iter().map(|(_, ms)| age(*ms)).fold(0.0, f64::max);
    let snapshots = if s.per_workspace {
        let lags = heads.into_iter().map(|(ws, ms)| (ws, age(ms))).collect();
        gather(&s.hub, &lags).await
    } else {
        Vec::new()
    };
    let mut resp = taskyard_metrics::encode(&snapshots, lag).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(taskyard_metrics::CONTENT_TYPE),
    );
    resp
}

/// Each workspace's figures; `lags` has the event-callback lag of those that have one.
async fn gather(
    hub: &Hub,
    lags: &std::collections::HashMap<taskyard_engine::Sid, f64>,
) -> Vec<Snapshot> {
    let mut out = Vec::new();
    for account in hub.accounts() {
        for h in hub.workspaces(account.sid) {
            let event_callback_lag_seconds = lags.get(&h.sid).copied().unwrap_or(0.0);
            let read = h
                .read(move |w| {
                    let s = w.waiting_summary();
                    Snapshot {
                        workspace_sid: w.sid().to_string(),
                        tasks_waiting: s.pending as i64,
                        longest_wait_seconds: s
                            .oldest_created
                            .map_or(0.0, |c| ((now_ms() - c).max(0) / 1000) as f64),
                        workers: s.workers as i64,
                        workers_available: s.workers_available as i64,
                        event_callback_lag_seconds,
                    }
                })
                .await;
            // A workspace that stopped or moved meanwhile is simply not in this scrape.
            if let Ok(s) = read {
                out.push(s);
            }
        }
    }
    out
}
