//! # taskyard-metrics
//!
//! What the process counts about itself, for `GET /metrics` (Prometheus / OpenMetrics text,
//! written by the Prometheus project's `prometheus-client` crate, not by hand).
//!
//! One process-wide [`Metrics`] value ([`metrics()`]): the parts that count (the HTTP edge,
//! the store writer, the callback dispatcher, the event bridge) update it where things
//! happen, with atomic adds only, so counting costs routing nothing measurable. Figures that
//! are a state rather than a count (tasks waiting and the longest wait, per workspace) are
//! read when scraped and passed to [`encode`] as [`Snapshot`]s.
//!
//! Every name starts with `taskyard_`. Labels are bounded: HTTP routes are the router's route
//! templates (`/v1/Workspaces/{ws}/Tasks/{sid}`, about 60), never paths; statuses are the
//! HTTP status codes; event types are TaskRouter's (about 40); per-workspace gauges have one
//! series per workspace the node runs (documented: a node with very many workspaces can turn
//! them off).

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The route template, `unmatched` or `forwarded` (answered by another node).
    pub route: String,
    pub status: u16,
}

/// Labels of a latency: the route only (statuses would multiply the buckets).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub r#type: &'static str,
}

/// Labels of a callback attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallbackLabels {
    /// `assignment`, `fallback`, `media_connector` or `event`.
    pub kind: &'static str,
    /// `ok` (2xx), `http_error` (another status), `failed` (no answer: connection, timeout),
    /// `refused` (the callback policy refused the address; nothing was sent).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkspaceLabels {
    pub workspace_sid: String,
}

fn seconds_histogram() -> Histogram {
    // 0.1 ms to ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Everything the process counts.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub events: Family<EventLabels, Counter>,
    pub commits: Counter,
    pub commit_seconds: Histogram,
    /// Writes (commands' changes) per commit.
    pub commit_writes: Histogram,
    /// Events per commit.
    pub commit_events: Histogram,
    pub callbacks: Family<CallbackLabels, Counter>,
    pub callback_seconds: Family<KindLabels, Histogram, fn() -> Histogram>,
    /// Open websockets of agents' SDKs (on this node: sessions here, relays to other nodes).
    pub websockets: Gauge,
    /// Open live event streams (`…/Events/Stream`, the console among them).
    pub event_streams: Gauge,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("taskyard");
        let m = Metrics {
            registry: Registry::default(),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(seconds_histogram),
            events: Family::default(),
            commits: Counter::default(),
            commit_seconds: seconds_histogram(),
            commit_writes: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            commit_events: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            callbacks: Family::default(),
            callback_seconds: Family::new_with_constructor(seconds_histogram),
            websockets: Gauge::default(),
            event_streams: Gauge::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            m.http_requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its response's head, by method and route",
            Unit::Seconds,
            m.http_seconds.clone(),
        );
        registry.register(
            "events",
            "Events committed, by TaskRouter event type (task.created, reservation.accepted, ...)",
            m.events.clone(),
        );
        registry.register("store_commits", "Store commits", m.commits.clone());
        registry.register_with_unit(
            "store_commit_duration",
            "Time one group commit takes in the store",
            Unit::Seconds,
            m.commit_seconds.clone(),
        );
        registry.register(
            "store_commit_writes",
            "Writes (one per command) in each group commit",
            m.commit_writes.clone(),
        );
        registry.register(
            "store_commit_events",
            "Events in each group commit",
            m.commit_events.clone(),
        );
        registry.register(
            "callbacks",
            "Callback attempts, by kind (assignment, fallback, media_connector, event) and outcome (ok, http_error, failed, refused)",
            m.callbacks.clone(),
        );
        registry.register_with_unit(
            "callback_duration",
            "Time from a callback's request to its answer (or failure), by kind",
            Unit::Seconds,
            m.callback_seconds.clone(),
        );
        registry.register(
            "websockets",
            "Open websockets of agents' SDKs",
            m.websockets.clone(),
        );
        registry.register(
            "event_streams",
            "Open live event streams",
            m.event_streams.clone(),
        );
        Metrics { registry, ..m }
    }
}

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns counting on or off for the whole process (`TASKYARD_METRICS=false`): off, the parts
/// that count skip it, and `/metrics` is not served.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether counting is on (the default).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// A workspace's state, read when scraped.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub workspace_sid: String,
    pub tasks_waiting: i64,
    pub longest_wait_seconds: f64,
    pub workers: i64,
    pub workers_available: i64,
    /// Age of the oldest event not yet delivered to the event callback URL (0: none).
    pub event_callback_lag_seconds: f64,
}

/// The OpenMetrics text of everything counted, with `snapshots` as per-workspace gauges and
/// `callback_lag_seconds` the oldest undelivered event callback's age across the node.
pub fn encode(snapshots: &[Snapshot], callback_lag_seconds: f64) -> String {
    use prometheus_client::metrics::gauge::Gauge as G;
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &metrics().registry);
    let mut now = Registry::with_prefix("taskyard");
    let waiting = Family::<WorkspaceLabels, G>::default();
    let longest = Family::<WorkspaceLabels, G<f64, std::sync::atomic::AtomicU64>>::default();
    let workers = Family::<WorkspaceLabels, G>::default();
    let available = Family::<WorkspaceLabels, G>::default();
    let lag = Family::<WorkspaceLabels, G<f64, std::sync::atomic::AtomicU64>>::default();
    for s in snapshots {
        let l = WorkspaceLabels {
            workspace_sid: s.workspace_sid.clone(),
        };
        waiting.get_or_create(&l).set(s.tasks_waiting);
        longest.get_or_create(&l).set(s.longest_wait_seconds);
        workers.get_or_create(&l).set(s.workers);
        available.get_or_create(&l).set(s.workers_available);
        lag.get_or_create(&l).set(s.event_callback_lag_seconds);
    }
    now.register(
        "tasks_waiting",
        "Tasks pending (waiting for a worker) in each workspace this node runs",
        waiting,
    );
    now.register_with_unit(
        "longest_task_wait",
        "Age of the oldest pending task in each workspace this node runs",
        Unit::Seconds,
        longest,
    );
    now.register(
        "workers",
        "Workers in each workspace this node runs",
        workers,
    );
    now.register(
        "workers_available",
        "Workers in an available activity in each workspace this node runs",
        available,
    );
    now.register_with_unit(
        "workspace_event_callback_lag",
        "Age of the oldest event not yet delivered to each workspace's event callback URL (0 when none waits)",
        Unit::Seconds,
        lag,
    );
    let node_lag = G::<f64, std::sync::atomic::AtomicU64>::default();
    node_lag.set(callback_lag_seconds);
    now.register_with_unit(
        "event_callback_lag",
        "Age of the oldest event not yet delivered to an event callback URL, across the workspaces this node runs (0 when none waits): the event-callback backlog",
        Unit::Seconds,
        node_lag,
    );
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &now);
    let _ = prometheus_client::encoding::text::encode_eof(&mut out);
    out
}

/// Counts one callback attempt: `status` is the HTTP status (`None`: no answer arrived).
pub fn callback(kind: &'static str, status: Option<u16>, seconds: f64) {
    if !enabled() {
        return;
    }
    let m = metrics();
    let outcome = match status {
        Some(200..=299) => "ok",
        Some(_) => "http_error",
        None => "failed",
    };
    m.callbacks
        .get_or_create(&CallbackLabels { kind, outcome })
        .inc();
    m.callback_seconds
        .get_or_create(&KindLabels { kind })
        .observe(seconds);
}

/// Counts one callback attempt the callback policy refused. Its duration is not observed:
/// nothing was sent, so it would only pull the latencies of real answers down.
pub fn callback_refused(kind: &'static str) {
    if !enabled() {
        return;
    }
    metrics()
        .callbacks
        .get_or_create(&CallbackLabels {
            kind,
            outcome: "refused",
        })
        .inc();
}

/// Holds a gauge up while it lives (an open websocket, an open stream).
pub struct Open(Option<&'static Gauge>);

impl Open {
    pub fn new(gauge: &'static Gauge) -> Open {
        if !enabled() {
            return Open(None);
        }
        gauge.inc();
        Open(Some(gauge))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(g) = self.0 {
            g.dec();
        }
    }
}

/// The content type of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_snapshots_are_in_the_text() {
        let m = metrics();
        m.http_requests
            .get_or_create(&HttpLabels {
                method: "GET".into(),
                route: "/v1/Workspaces/{ws}".into(),
                status: 200,
            })
            .inc();
        m.commit_seconds.observe(0.002);
        m.events
            .get_or_create(&EventLabels {
                r#type: "task.created",
            })
            .inc_by(3);
        let text = encode(
            &[Snapshot {
                workspace_sid: "WS1".into(),
                tasks_waiting: 7,
                longest_wait_seconds: 12.5,
                workers: 3,
                workers_available: 1,
                event_callback_lag_seconds: 4.0,
            }],
            4.0,
        );
        for want in [
            r#"taskyard_http_requests_total{method="GET",route="/v1/Workspaces/{ws}",status="200"} 1"#,
            r#"taskyard_events_total{type="task.created"} 3"#,
            "taskyard_store_commit_duration_seconds_count 1",
            r#"taskyard_tasks_waiting{workspace_sid="WS1"} 7"#,
            r#"taskyard_longest_task_wait_seconds{workspace_sid="WS1"} 12.5"#,
            r#"taskyard_workers_available{workspace_sid="WS1"} 1"#,
            r#"taskyard_workspace_event_callback_lag_seconds{workspace_sid="WS1"} 4.0"#,
            "taskyard_event_callback_lag_seconds 4.0",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(text.matches("# EOF").count(), 1, "one end marker");
    }
}
