//! # taskyard-bridge
//!
//! The event bridge: what Twilio's worker SDK (npm `twilio-taskrouter`, TaskRouter.js 2.x)
//! talks to, served by `taskyard serve` itself at [`PATH`] for both of the SDK's servers —
//! `new Worker(token, { ebServer: "http://HOST/v1/wschannels", wsServer: "ws://HOST/v1/wschannels" })`.
//! The protocol is written down in `taskrouter-js-protocol.md`; this crate implements it.
//!
//! * [`token`] — the Access Token check (API key, signature, time, TaskRouter grant, role).
//! * [`session`] — one task per websocket: `init`, held-back start, heartbeats, expiry, the
//!   registry pushes are routed through.
//! * [`push`] — which committed events reach which agent, rendered in the workspace's actor.
//! * [`envelope`] — the SDK's JSON envelopes: reads rendered here, changes carried to the
//!   REST handlers so that they behave exactly like REST calls.
//! * [`gateway`] — the gateway data format (epoch-second dates, JSON-string attributes,
//!   reservations with their task).
//!
//! Nothing reaches an agent before it is committed: pushes are made by the actor with the
//! command that caused them and released by the store writer after the commit
//! ([`taskyard_hub::push`]).

pub mod envelope;
pub mod gateway;
pub mod push;
pub mod session;
pub mod token;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use taskyard_api::ApiError;
use taskyard_hub::Hub;

use crate::session::{Opened, Sessions};

/// Where the bridge listens (Twilio's own path on `event-bridge.twilio.com`).
pub const PATH: &str = "/v1/wschannels";

/// The largest websocket message the bridge accepts (the SDK sends none).
const MAX_INCOMING: usize = 64 * 1024;

/// The bridge's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long after a worker's last connection ends it is set Offline (when the SDK did
    /// not opt out with `setWorkerOfflineIfDisconnected=false`).
    pub offline_after: std::time::Duration,
    /// A browser build (an ES module) of Twilio's worker SDK for the agent page to load from
    /// `/agent/sdk.js`; without one the page loads it from [`SDK_CDN`].
    pub agent_sdk: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            offline_after: std::time::Duration::from_secs(30),
            agent_sdk: None,
        }
    }
}

/// Where the agent page loads the SDK from when no local build is configured: a public CDN
/// that serves npm packages as browser modules (Twilio publishes no browser build of 2.x).
pub const SDK_CDN: &str = "https://esm.sh/twilio-taskrouter@2.1.1?bundle";

/// The agent page (`/agent`): a static page that runs the SDK against this server.
const AGENT_PAGE: &str = include_str!("../assets/agent.html");

/// The bridge's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Bridge {
    hub: Hub,
    options: Arc<Options>,
    /// The REST API, which changes requested through envelopes are carried to.
    rest: Router,
    sessions: Arc<Sessions>,
}

impl Bridge {
    /// Starts the bridge over `hub`: installs its push renderer and the task that routes
    /// committed pushes to connections. `rest` is the REST router (`taskyard_api::router`).
    /// Must be called inside a tokio runtime, once per hub.
    pub fn start(hub: Hub, rest: Router, options: Options) -> Bridge {
        let sessions = Arc::new(Sessions::default());
        match hub.push_to(Arc::new(push::render)) {
            Some(mut rx) => {
                let s = sessions.clone();
                tokio::spawn(async move {
                    while let Some(batch) = rx.recv().await {
                        s.deliver(batch);
                    }
                });
            }
            None => {
                tracing::error!("a second event bridge was started on one hub; it pushes nothing")
            }
        }
        Bridge {
            hub,
            options: Arc::new(options),
            rest,
            sessions,
        }
    }

    /// How many agent connections are open.
    pub fn connections(&self) -> usize {
        self.sessions.count()
    }

    /// The bridge's routes; merge them with the REST router.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                PATH,
                get(upgrade)
                    .post(|State(b): State<Bridge>, headers: HeaderMap, body: Bytes| {
                        envelope::handle(b, headers, body)
                    })
                    .options(|| async { StatusCode::NO_CONTENT })
                    .fallback(|| async { ApiError::method_not_allowed() }),
            )
            .layer(axum::middleware::map_response(cors))
            .route("/agent", get(|| async { axum::response::Html(AGENT_PAGE) }))
            .route("/agent/sdk.js", get(agent_sdk))
            .with_state(self.clone())
    }
}

/// The SDK for the agent page: the configured build, or a redirect to [`SDK_CDN`].
async fn agent_sdk(State(b): State<Bridge>) -> Response {
    let Some(path) = &b.options.agent_sdk else {
        return axum::response::Redirect::temporary(SDK_CDN).into_response();
    };
    let path = path.clone();
    let read = tokio::task::spawn_blocking({
        let path = path.clone();
        move || std::fs::read(path)
    })
    .await;
    match read.unwrap_or_else(|e| Err(std::io::Error::other(e))) {
        Ok(bytes) => (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read the agent SDK");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                taskyard_api::error::code::INTERNAL,
                "The agent SDK file configured with TASKYARD_AGENT_SDK cannot be read",
            )
            .into_response()
        }
    }
}

/// A page of another origin (an agent console) may call the bridge: the SDK's requests are
/// preflighted for its `apiVersion`, `clientVersion` and `If-Match` headers.
async fn cors(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, apiVersion, clientVersion, If-Match"),
    );
    resp
}

/// The websocket upgrade: the token in the query is checked before anything is upgraded, so
/// a refused agent gets a Twilio error document (and the SDK its `error` event).
async fn upgrade(
    State(b): State<Bridge>,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(_) => {
            return ApiError::invalid(format!(
                "{PATH} is the event bridge: open a websocket here, or POST the SDK's envelopes"
            ))
            .into_response();
        }
    };
    let q: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| {
        q.iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let Some(token) = get("token") else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            token::code::INVALID,
            "The websocket needs an Access Token (?token=…)",
        )
        .into_response();
    };
    let grant = match token::check(&b.hub, token, taskyard_hub::now_ms().div_euclid(1000)).await {
        Ok(g) => g,
        Err(e) => return e.into_response(),
    };
    let Some(worker) = grant.worker else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            token::code::GRANTS,
            "Invalid Access Token grants: a worker's connection needs task_router.worker_sid",
        )
        .into_response();
    };
    let Ok(h) = b.hub.workspace(grant.account, grant.workspace) else {
        return ApiError::not_found(&format!("/Workspaces/{}", grant.workspace)).into_response();
    };
    match h.read(move |ws| ws.workers().contains_key(&worker)).await {
        Ok(true) => {}
        _ => {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                token::code::GRANTS,
                format!("Invalid Access Token grants: worker {worker} is not in the workspace"),
            )
            .into_response();
        }
    }
    // From now on every push for this worker is rendered; the start-up reads the SDK makes
    // after `init` reflect everything before.
    let watch = h.watch(worker);
    let opened = Opened {
        token: token.into(),
        worker,
        grant,
        close_existing: get("closeExistingSessions") == Some("true"),
        // Twilio's default is true; the SDK sends the parameter only when it is set.
        offline_after: (get("setWorkerOfflineIfDisconnected") != Some("false"))
            .then_some(b.options.offline_after),
    };
    let hub = b.hub.clone();
    let sessions = b.sessions.clone();
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(MAX_INCOMING)
        .max_frame_size(MAX_INCOMING)
        .on_upgrade(move |socket| async move {
            let _open = taskyard_metrics::Open::new(&taskyard_metrics::metrics().websockets);
            session::run(socket, hub, sessions, opened, h, watch).await
        })
}
