//! On a cluster, any node answers any request: a request for a workspace another node runs
//! is forwarded there, and its answer passed back unchanged.
//!
//! Whose a workspace is comes from its lease (the database), asked again whenever it is not
//! known or a forward did not reach its owner. While a workspace is between owners (its
//! owner died and the lease has not run out yet, or a new owner is loading it), requests
//! wait and try again, for up to a lease and a few seconds: a client sees a slow answer
//! rather than an error across a failover. A request is sent again only when it surely
//! changed nothing: the owner could not be reached at all, or answered that the workspace
//! moved (`x-taskyard-moved`). If an owner fails mid-answer, the client gets a 502 and, as
//! with any lost answer, should check before retrying a create.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use taskyard_api::error::{ApiError, MOVED_HEADER, code};
use taskyard_engine::{Sid, sid::prefix};
use taskyard_hub::Hub;
use taskyard_store::cluster::Owner;

mod relay;

/// Marks a request one node sent another; it names the sender.
const FORWARDED_BY: &str = "x-taskyard-forwarded-by";

pub struct Forwarder {
    hub: Hub,
    /// The largest request body (`--max-body-bytes`): the body has been read within it
    /// already, before it reaches the forwarder.
    max_body: usize,
    client: reqwest::Client,
    /// Owners (node id, URL) seen lately, by workspace.
    owners: Mutex<HashMap<Sid, (String, String)>>,
    /// Lease lookups of the last moment, by workspace: the requests waiting on one
    /// workspace share one query every [`LOOKUP_TTL`] instead of each making its own.
    recent: Mutex<HashMap<Sid, (Instant, Option<Owner>)>>,
    /// How long a request waits for its workspace to have a reachable owner.
    patience: Duration,
    /// Set when this node shuts down: relayed agent connections close (and reconnect
    /// elsewhere) instead of holding the node up.
    leaving: tokio::sync::watch::Sender<bool>,
}

/// How long a lease lookup is reused.
const LOOKUP_TTL: Duration = Duration::from_millis(200);

impl Forwarder {
    pub fn new(hub: Hub, lease: Duration, max_body: usize) -> anyhow::Result<Forwarder> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Forwarder {
            hub,
            max_body,
            client,
            owners: Mutex::new(HashMap::new()),
            recent: Mutex::new(HashMap::new()),
            patience: lease + Duration::from_secs(3),
            leaving: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Closes the agents' connections relayed through this node (it is shutting down).
    pub fn leave(&self) {
        self.leaving.send_replace(true);
    }

    /// Who holds `ws`'s lease, looked up at most [`LOOKUP_TTL`] ago.
    async fn lookup(&self, ws: Sid) -> Result<Option<Owner>, taskyard_hub::HubError> {
        {
            let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, o)) = recent.get(&ws)
                && at.elapsed() < LOOKUP_TTL
            {
                return Ok(o.clone());
            }
        }
        let o = self.hub.owner(ws).await?;
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() > 10_000 {
            recent.retain(|_, (at, _)| at.elapsed() < LOOKUP_TTL);
        }
        recent.insert(ws, (Instant::now(), o.clone()));
        Ok(o)
    }

    fn cached(&self, ws: Sid) -> Option<(String, String)> {
        self.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ws)
            .cloned()
    }

    fn remember(&self, ws: Sid, owner: Option<(String, String)>) {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        match owner {
            Some(u) => {
                if owners.len() > 100_000 {
                    owners.clear();
                }
                owners.insert(ws, u);
            }
            None => {
                owners.remove(&ws);
            }
        }
    }
}

/// The workspace a request path is about, if it names one.
fn workspace_of(path: &str) -> Option<Sid> {
    let rest = path.strip_prefix("/v1/Workspaces/")?;
    let sid = rest.split('/').next()?;
    Sid::parse_with(sid, prefix::WORKSPACE).ok()
}

fn unavailable(message: &str) -> Response {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE, message).into_response()
}

/// Where a workspace's requests go, as far as this node knows now.
enum Whose {
    /// This node runs it.
    Local,
    /// Another node (id, URL) holds its lease.
    Remote(String, String),
    /// No lease: no such workspace (the handlers answer 404).
    NoSuch,
    /// Between owners, or this node's own lease while it is not serving yet.
    Between,
}

impl Forwarder {
    async fn whose(&self, ws: Sid, node_id: &str) -> Whose {
        if self.hub.is_local(ws) {
            return Whose::Local;
        }
        if let Some((id, url)) = self.cached(ws) {
            return Whose::Remote(id, url);
        }
        match self.lookup(ws).await {
            Ok(None) => Whose::NoSuch,
            Ok(Some(o)) if o.node_id != node_id && !o.expired => match o.url {
                Some(url) => {
                    self.remember(ws, Some((o.node_id.clone(), url.clone())));
                    Whose::Remote(o.node_id, url)
                }
                None => Whose::Between,
            },
            Ok(Some(_)) => Whose::Between,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look up a workspace's owner");
                Whose::Between
            }
        }
    }
}

/// The middleware of the REST API.
pub async fn route(State(f): State<Arc<Forwarder>>, req: Request, next: Next) -> Response {
    let Some(ws) = workspace_of(req.uri().path()) else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, f.max_body).await else {
        return ApiError::invalid("The request body is too large").into_response();
    };
    forward(&f, ws, parts, body, next).await
}

/// The middleware of the event bridge: an agent's envelope or websocket for a workspace
/// another node runs goes there. The workspace is the one the Access Token's grant names
/// (read here without verifying it: the owner checks the token).
pub async fn route_bridge(State(f): State<Arc<Forwarder>>, req: Request, next: Next) -> Response {
    if req.uri().path() != taskyard_bridge::PATH {
        return next.run(req).await;
    }
    if req.method() == Method::GET {
        let Some(ws) = token_in_query(req.uri().query()).and_then(|t| granted_workspace(&t)) else {
            return next.run(req).await;
        };
        return relay::socket(f, ws, req, next).await;
    }
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, f.max_body).await else {
        return ApiError::invalid("The request body is too large").into_response();
    };
    let token = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("token")?.as_str().and_then(granted_workspace));
    match token {
        Some(ws) => forward(&f, ws, parts, body, next).await,
        None => next.run(Request::from_parts(parts, Body::from(body))).await,
    }
}

/// The `token` query parameter (the last one, as the bridge reads it).
fn token_in_query(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .filter(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .last()
}

/// The workspace an Access Token's TaskRouter grant names, unverified.
fn granted_workspace(token: &str) -> Option<Sid> {
    let unverified = taskyard_auth::parse(token).ok()?;
    let ws = unverified
        .claims()
        .task_router
        .as_ref()?
        .workspace_sid
        .as_deref()?;
    Sid::parse_with(ws, prefix::WORKSPACE).ok()
}

/// Answers a buffered request for `ws` here or on its owner.
async fn forward(
    f: &Forwarder,
    ws: Sid,
    parts: axum::http::request::Parts,
    body: Bytes,
    next: Next,
) -> Response {
    let Some(node) = f.hub.node().cloned() else {
        return next.run(Request::from_parts(parts, Body::from(body))).await;
    };
    let forwarded = parts.headers.contains_key(FORWARDED_BY);
    let deadline = Instant::now() + f.patience;
    let mut pause = Duration::from_millis(20);
    loop {
        match f.whose(ws, &node.node_id).await {
            Whose::Local => {
                let local = Request::from_parts(parts.clone(), Body::from(body.clone()));
                let resp = next.clone().run(local).await;
                if !resp.headers().contains_key(MOVED_HEADER) || forwarded {
                    return resp;
                }
            }
            // The sender thought this node runs it; let the sender look again.
            _ if forwarded => return moved(ws),
            Whose::NoSuch => return next.run(Request::from_parts(parts, Body::from(body))).await,
            Whose::Between => {}
            Whose::Remote(owner_id, url) => {
                // An owner that is paused or cut off accepts the connection and never
                // answers; once its lease has moved, its commit will be refused (or it made
                // it before pausing): either way, waiting longer tells nothing more.
                let sent = tokio::select! {
                    sent = send(&f.client, &url, &parts, &body, &node.node_id) => sent,
                    () = lease_moves(f, ws, &owner_id) => {
                        Sent::Failed(format!("{owner_id} stopped answering and lost the lease"))
                    }
                };
                match sent {
                    Sent::Answer(resp) => return resp,
                    Sent::NotThere => f.remember(ws, None),
                    Sent::Failed(e) => {
                        f.remember(ws, None);
                        tracing::warn!(workspace = %ws, owner = %url, error = %e, "the owner failed while answering a forwarded request");
                        return ApiError::new(
                            StatusCode::BAD_GATEWAY,
                            code::UNAVAILABLE,
                            "The node running this workspace failed while answering; the request may or may not have been applied",
                        )
                        .into_response();
                    }
                }
            }
        }
        if Instant::now() > deadline {
            return no_owner();
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

fn no_owner() -> Response {
    unavailable("No node runs this workspace at the moment (failover in progress); try again")
}

fn moved(ws: Sid) -> Response {
    ApiError::from_hub(taskyard_hub::HubError::Moved(ws), "").into_response()
}

enum Sent {
    Answer(Response),
    /// Not delivered (nothing listening there) or the owner had moved on: nothing changed.
    NotThere,
    /// Sent, but no answer came back.
    Failed(String),
}

/// Resolves once `ws`'s lease is no longer `owner`'s.
async fn lease_moves(f: &Forwarder, ws: Sid, owner: &str) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Ok(now) = f.lookup(ws).await
            && now.is_none_or(|o| o.node_id != owner)
        {
            return;
        }
    }
}

/// An error and its causes, for the log.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Headers that describe one hop, not the message.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
            | "host"
            | "content-length"
    )
}

async fn send(
    client: &reqwest::Client,
    owner: &str,
    parts: &axum::http::request::Parts,
    body: &Bytes,
    node_id: &str,
) -> Sent {
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut headers = HeaderMap::new();
    for (k, v) in &parts.headers {
        if !hop_by_hop(k) {
            headers.append(k.clone(), v.clone());
        }
    }
    if let Ok(v) = HeaderValue::from_str(node_id) {
        headers.insert(FORWARDED_BY, v);
    }
    let sent = client
        .request(
            parts.method.clone(),
            format!("{}{path}", owner.trim_end_matches('/')),
        )
        .headers(headers)
        .body(body.clone())
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Sent::NotThere,
        Err(e) => return Sent::Failed(chain(&e)),
    };
    if resp.headers().contains_key(MOVED_HEADER) {
        return Sent::NotThere;
    }
    let status = resp.status();
    let mut headers = HeaderMap::new();
    for (k, v) in resp.headers() {
        if !hop_by_hop(k) {
            headers.append(k.clone(), v.clone());
        }
    }
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return Sent::Failed(chain(&e)),
    };
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out.extensions_mut().insert(crate::requests::Forwarded);
    if !out.headers().contains_key(header::CONTENT_TYPE) {
        out.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    Sent::Answer(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_workspace_paths_are_routed() {
        let ws = "WS0123456789abcdef0123456789abcdef";
        assert_eq!(
            workspace_of(&format!("/v1/Workspaces/{ws}/Tasks")).map(|s| s.to_string()),
            Some(ws.to_string())
        );
        assert!(workspace_of(&format!("/v1/Workspaces/{ws}")).is_some());
        assert!(workspace_of("/v1/Workspaces").is_none());
        assert!(workspace_of("/v1/Workspaces/WSnot-a-sid/Tasks").is_none());
        assert!(workspace_of("/2010-04-01/Accounts").is_none());
    }
}
