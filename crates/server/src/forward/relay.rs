//! Agents' websockets for a workspace another node runs: the connection is opened to the
//! owner first, and only once the owner has accepted it is the agent's upgraded, so a
//! refusal (a bad token, an unknown worker) reaches the SDK as the owner's own HTTP answer.
//! Then frames are passed both ways unchanged until either side closes.
//!
//! When the owner goes away (it died, or handed the workspace over and closed the session
//! with its "moved" code), the agent's connection is closed; the SDK reconnects about a
//! second later, and its new connection is relayed to whichever node runs the workspace
//! then. Nothing is lost across that: the SDK reloads its worker and reservations on every
//! `init`. Pings and pongs are answered by each hop, not passed on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::Request;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt as _, StreamExt as _};
use taskyard_api::error::MOVED_HEADER;
use taskyard_engine::Sid;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self as tg, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{FORWARDED_BY, Forwarder, Whose, hop_by_hop, moved, no_owner};

type Upstream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long opening the owner's side may take before the owner is looked up again.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The close code an agent gets when the node its connection was relayed to went away
/// (any close makes the SDK reconnect).
const OWNER_GONE: (u16, &str) = (4006, "The node running this workspace went away; reconnect");
/// The close code an agent gets when this node shuts down.
const LEAVING: (u16, &str) = (1001, "This node is shutting down; reconnect");

enum Opened {
    Up(Box<Upstream>),
    /// Nothing listens there, or it no longer runs the workspace: look again.
    NotThere,
    /// The owner answered the upgrade with this (a refusal).
    Answer(Response),
}

/// Serves `req`, a websocket upgrade for `ws`, here or through its owner.
pub(super) async fn socket(f: Arc<Forwarder>, ws: Sid, req: Request, next: Next) -> Response {
    let Some(node) = f.hub.node().cloned() else {
        return next.run(req).await;
    };
    let forwarded = req.headers().contains_key(FORWARDED_BY);
    let deadline = Instant::now() + f.patience;
    let mut pause = Duration::from_millis(20);
    loop {
        match f.whose(ws, &node.node_id).await {
            Whose::Local | Whose::NoSuch => return next.run(req).await,
            _ if forwarded => return moved(ws),
            Whose::Between => {}
            Whose::Remote(_, url) => {
                match open(&url, req.uri(), req.headers(), &node.node_id).await {
                    Opened::Up(upstream) => return upgrade(f, req, *upstream).await,
                    Opened::Answer(resp) => return resp,
                    Opened::NotThere => f.remember(ws, None),
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

/// Opens the owner's side, with the agent's path, query and headers.
async fn open(owner: &str, uri: &Uri, headers: &HeaderMap, node_id: &str) -> Opened {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let base = owner.trim_end_matches('/');
    let url = match base.split_once("://") {
        Some(("http", rest)) => format!("ws://{rest}{path}"),
        Some(("https", rest)) => format!("wss://{rest}{path}"),
        _ => format!("ws://{base}{path}"),
    };
    let mut up = match url.as_str().into_client_request() {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(owner, error = %e, "cannot relay an agent's connection to this URL");
            return Opened::NotThere;
        }
    };
    for (k, v) in headers {
        // The handshake's own headers are the client library's to make.
        if !hop_by_hop(k) && !k.as_str().starts_with("sec-websocket-") {
            up.headers_mut().append(k.clone(), v.clone());
        }
    }
    if let Ok(v) = HeaderValue::from_str(node_id) {
        up.headers_mut().insert(FORWARDED_BY, v);
    }
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(up));
    match connected.await {
        Ok(Ok((stream, _))) => Opened::Up(Box::new(stream)),
        Ok(Err(tg::Error::Http(answer))) => {
            if answer.headers().contains_key(MOVED_HEADER) {
                return Opened::NotThere;
            }
            let (parts, body) = answer.into_parts();
            let mut resp = Response::new(Body::from(body.unwrap_or_default()));
            *resp.status_mut() = parts.status;
            for (k, v) in &parts.headers {
                if !hop_by_hop(k) {
                    resp.headers_mut().append(k.clone(), v.clone());
                }
            }
            Opened::Answer(resp)
        }
        // A websocket that did not open changed nothing: safe to try again.
        Ok(Err(e)) => {
            tracing::debug!(owner, error = %e, "could not open an agent's connection on the owner");
            Opened::NotThere
        }
        Err(_) => Opened::NotThere,
    }
}

/// Upgrades the agent's connection and relays it to `upstream`.
async fn upgrade(f: Arc<Forwarder>, req: Request, mut upstream: Upstream) -> Response {
    let (mut parts, _) = req.into_parts();
    let Ok(upgrade) = WebSocketUpgrade::from_request_parts(&mut parts, &()).await else {
        let _ = upstream.close(None).await;
        return (
            StatusCode::BAD_REQUEST,
            "The event bridge needs a websocket upgrade",
        )
            .into_response();
    };
    let leaving = f.leaving.subscribe();
    upgrade
        .write_buffer_size(0)
        .on_upgrade(move |agent| async move {
            let _open = taskyard_metrics::Open::new(&taskyard_metrics::metrics().websockets);
            pump(agent, upstream, leaving).await
        })
}

async fn pump(
    mut agent: WebSocket,
    mut upstream: Upstream,
    mut leaving: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            from_owner = upstream.next() => match from_owner {
                Some(Ok(msg)) => {
                    let Some(msg) = to_agent(msg) else { continue };
                    let closing = matches!(msg, ws::Message::Close(_));
                    if agent.send(msg).await.is_err() || closing {
                        break;
                    }
                }
                Some(Err(_)) | None => {
                    let _ = agent.send(close_agent(OWNER_GONE)).await;
                    break;
                }
            },
            from_agent = agent.recv() => match from_agent {
                Some(Ok(msg)) => {
                    let Some(msg) = to_owner(msg) else { continue };
                    let closing = matches!(msg, Message::Close(_));
                    if upstream.send(msg).await.is_err() || closing {
                        break;
                    }
                }
                Some(Err(_)) | None => {
                    let _ = upstream.close(None).await;
                    break;
                }
            },
            _ = leaving.changed() => {
                let _ = agent.send(close_agent(LEAVING)).await;
                let _ = upstream.close(None).await;
                break;
            }
        }
    }
}

fn close_agent((code, reason): (u16, &str)) -> ws::Message {
    ws::Message::Close(Some(ws::CloseFrame {
        code,
        reason: reason.into(),
    }))
}

fn to_agent(msg: Message) -> Option<ws::Message> {
    Some(match msg {
        Message::Text(t) => ws::Message::Text(t.as_str().into()),
        Message::Binary(b) => ws::Message::Binary(b),
        Message::Close(frame) => ws::Message::Close(frame.map(|f| ws::CloseFrame {
            code: f.code.into(),
            reason: f.reason.as_str().into(),
        })),
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return None,
    })
}

fn to_owner(msg: ws::Message) -> Option<Message> {
    Some(match msg {
        ws::Message::Text(t) => Message::Text(t.as_str().into()),
        ws::Message::Binary(b) => Message::Binary(b),
        ws::Message::Close(frame) => Message::Close(frame.map(|f| CloseFrame {
            code: CloseCode::from(f.code),
            reason: f.reason.as_str().into(),
        })),
        ws::Message::Ping(_) | ws::Message::Pong(_) => return None,
    })
}
