//! The SDK's HTTP side: every call is a `POST` of one JSON envelope
//! `{"url", "method", "params", "token"}` to the bridge URL, answered `{"payload": …}` in the
//! gateway format (`taskrouter-js-protocol.md` §4).
//!
//! Reads are served from the workspace's actor and rendered by [`crate::gateway`]. Changes
//! are carried to the REST handlers themselves (as a request authenticated by the token's
//! account, see [`taskyard_api::Authenticated`]), so an agent's `accept()` validates,
//! commits and fails exactly like the REST call; the changed resource is then read back in
//! the gateway format. The token decides what may be touched ([`Role`]): a worker acts only
//! on itself, its reservations and the tasks it holds.
//!
//! The SDK ignores `Content-Type` (axios sends `application/x-www-form-urlencoded` over a
//! JSON body), and so does this endpoint.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value};
use taskyard_api::{ApiError, Authenticated};
use taskyard_engine::{ReservationStatus, Sid, Workspace, sid::prefix};
use taskyard_hub::{WorkspaceHandle, now_ms};
use tower::ServiceExt as _;

use crate::session::Loaded;
use crate::token::{Grant, Role};
use crate::{Bridge, gateway, push::to_json};

#[derive(Deserialize)]
struct Envelope {
    url: String,
    method: String,
    #[serde(default)]
    params: Map<String, Value>,
    token: String,
}

fn forbidden(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        taskyard_api::error::code::FORBIDDEN,
        format!("The Access Token does not allow this: {what}"),
    )
}

/// Voice features the SDK offers, which need a telephony provider Taskyard does not have.
fn no_telephony(what: &str) -> ApiError {
    ApiError::invalid(format!(
        "{what} needs a telephony provider; Taskyard routes tasks but places no calls. \
         Connect the work yourself and set ReservationStatus=accepted"
    ))
}

/// `POST <ebServer>`.
pub async fn handle(bridge: Bridge, headers: HeaderMap, body: Bytes) -> Response {
    match serve(&bridge, &headers, &body).await {
        Ok(payload) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            format!("{{\"payload\":{payload}}}"),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn serve(b: &Bridge, headers: &HeaderMap, body: &[u8]) -> Result<String, ApiError> {
    let env: Envelope = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(format!(
            "The request body must be the SDK's JSON envelope {{url, method, params, token}}: {e}"
        ))
    })?;
    let grant = crate::token::check(&b.hub, &env.token, now_ms().div_euclid(1000)).await?;
    let path = env.url.replace('\\', "/");
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (ws_sid, rest) = match segs.as_slice() {
        ["Workspaces", ws, rest @ ..] => (*ws, rest),
        _ => return Err(ApiError::not_found(&format!("/{path}"))),
    };
    if ws_sid != grant.workspace.to_string() {
        return Err(forbidden("the token is for another workspace"));
    }
    let h = b
        .hub
        .workspace(grant.account, grant.workspace)
        .map_err(|_| ApiError::not_found(&format!("/{path}")))?;
    let req = Req {
        b,
        grant: &grant,
        h: &h,
        token: &env.token,
        path: &path,
        params: &env.params,
        if_match: headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()),
    };
    let method = env.method.to_ascii_uppercase();
    match (method.as_str(), rest) {
        ("GET", ["Workers", wk]) => req.worker(req.own_or_supervised(wk)?).await,
        ("GET", ["Activities"]) => req.activities().await,
        ("GET", ["Workers", wk, "WorkerChannels" | "Channels"]) => {
            req.channels(req.own_or_supervised(wk)?).await
        }
        ("GET", ["Workers", wk, "Reservations"]) => {
            req.reservations(req.own_or_supervised(wk)?).await
        }
        ("GET", ["Workers", wk, "Reservations", wr]) => {
            let wk = req.own_or_supervised(wk)?;
            req.reservation(wk, req.sid(wr, prefix::RESERVATION)?).await
        }
        ("POST", ["Workers", wk]) => {
            let wk = req.own_or_supervised(wk)?;
            let allowed: &[&str] = match grant.role {
                Role::Admin => &[],
                _ => &["ActivitySid", "Attributes", "RejectPendingReservations"],
            };
            req.forward(allowed).await?;
            req.worker(wk).await
        }
        ("POST", ["Workers", wk, "Reservations", wr]) => {
            let wk = req.own_or_supervised(wk)?;
            let wr = req.sid(wr, prefix::RESERVATION)?;
            if let Some(i) = req.params.get("Instruction").and_then(Value::as_str)
                && !matches!(i.to_ascii_lowercase().as_str(), "accept" | "reject")
            {
                return Err(no_telephony(&format!("reservation.{i}()")));
            }
            req.forward(&[]).await?;
            req.reservation(wk, wr).await
        }
        ("POST", ["Tasks", _, "Reservations", wr]) => {
            if let Some(i) = req.params.get("Instruction").and_then(Value::as_str)
                && !matches!(i.to_ascii_lowercase().as_str(), "accept" | "reject")
            {
                return Err(no_telephony(&format!("Instruction={i}")));
            }
            if grant.role != Role::Admin {
                return Err(forbidden(
                    "only an admin token updates reservations through their task",
                ));
            }
            let wr = req.sid(wr, prefix::RESERVATION)?;
            req.forward(&[]).await?;
            let wk = req
                .read(move |ws| ws.reservations().get(&wr).map(|r| r.worker_sid))
                .await?
                .ok_or_else(|| req.not_found())?;
            req.reservation(wk, wr).await
        }
        ("GET", ["Tasks", wt]) => {
            let wt = req.sid(wt, prefix::TASK)?;
            req.holds_task(wt).await?;
            req.task(wt).await
        }
        ("POST", ["Tasks", wt]) => {
            let wt = req.sid(wt, prefix::TASK)?;
            req.holds_task(wt).await?;
            req.forward(&[]).await?;
            req.task(wt).await
        }
        ("POST", ["Tasks"]) => {
            if grant.role == Role::Worker {
                let target = req.params.get("RoutingTarget").and_then(Value::as_str);
                if target.is_none_or(|t| Some(t) != grant.worker.map(|w| w.to_string()).as_deref())
                {
                    return Err(forbidden(
                        "a worker token creates only tasks routed to its own worker (RoutingTarget)",
                    ));
                }
            }
            let body = req.forward(&[]).await?;
            let sid = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("sid")?.as_str()?.parse::<Sid>().ok())
                .ok_or_else(|| ApiError::invalid("the task was created but cannot be read"))?;
            req.task(sid).await
        }
        (
            "POST",
            [
                "Workers",
                _,
                "Transfers"
                | "WorkerParticipant"
                | "CustomerParticipant"
                | "KickWorkerParticipant"
                | "HoldWorkerParticipant",
                ..,
            ],
        ) => Err(no_telephony(&format!(
            "{} ({})",
            rest[2], "transfers, hold, kick and conference participants"
        ))),
        ("GET" | "POST", _) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            taskyard_api::error::code::NOT_FOUND,
            format!("The event bridge does not serve {method} {path}"),
        )),
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// One envelope being served.
struct Req<'a> {
    b: &'a Bridge,
    grant: &'a Grant,
    h: &'a WorkspaceHandle,
    token: &'a str,
    path: &'a str,
    params: &'a Map<String, Value>,
    if_match: Option<&'a str>,
}

impl Req<'_> {
    fn not_found(&self) -> ApiError {
        ApiError::not_found(&format!("/{}", self.path))
    }

    fn sid(&self, s: &str, prefix: &'static str) -> Result<Sid, ApiError> {
        Sid::parse_with(s, prefix).map_err(|_| self.not_found())
    }

    /// The worker in the path, if the token may act on it.
    fn own_or_supervised(&self, s: &str) -> Result<Sid, ApiError> {
        let wk = self.sid(s, prefix::WORKER)?;
        match self.grant.role {
            Role::Worker if self.grant.worker != Some(wk) => {
                Err(forbidden("a worker token acts only on its own worker"))
            }
            _ => Ok(wk),
        }
    }

    /// For a worker token: the task must be one its worker holds (or held) a reservation of.
    async fn holds_task(&self, wt: Sid) -> Result<(), ApiError> {
        let Some(me) = self
            .grant
            .worker
            .filter(|_| self.grant.role == Role::Worker)
        else {
            return Ok(());
        };
        let holds = self
            .read(move |ws| ws.task_reservations(wt).any(|r| r.worker_sid == me))
            .await?;
        if holds {
            Ok(())
        } else {
            Err(forbidden(
                "a worker token acts only on tasks its worker has a reservation of",
            ))
        }
    }

    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Workspace) -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        Ok(self.read_marked(f).await?.0)
    }

    async fn read_marked<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Workspace) -> R + Send + 'static,
    ) -> Result<(R, Option<Sid>), ApiError> {
        let path = format!("/{}", self.path);
        self.h
            .read_watermarked(f)
            .await
            .map_err(|e| ApiError::from_hub(e, &path))
    }

    /// Tells this worker's starting connections what a start-up read showed.
    fn loaded(&self, worker: Sid, what: impl Fn() -> Loaded) {
        if self.grant.worker == Some(worker) {
            self.b
                .sessions
                .loaded((self.grant.workspace, worker), self.token, what);
        }
    }

    async fn worker(&self, wk: Sid) -> Result<String, ApiError> {
        let (json, upto) = self
            .read_marked(move |ws| {
                ws.workers()
                    .get(&wk)
                    .map(|w| to_json(&gateway::worker(ws, w)))
            })
            .await?;
        let json = json.ok_or_else(|| self.not_found())?;
        self.loaded(wk, || Loaded::Worker { upto });
        Ok(json)
    }

    async fn activities(&self) -> Result<String, ApiError> {
        let ((items, sids), upto) = self
            .read_marked(|ws| {
                let items: Vec<_> = ws
                    .activities()
                    .values()
                    .map(|a| gateway::activity(ws, a))
                    .collect();
                (
                    to_json(&items),
                    ws.activities().keys().copied().collect::<Vec<_>>(),
                )
            })
            .await?;
        if let Some(wk) = self.grant.worker {
            self.loaded(wk, || Loaded::Activities {
                upto,
                sids: sids.clone(),
            });
        }
        Ok(list(&items))
    }

    async fn channels(&self, wk: Sid) -> Result<String, ApiError> {
        let (found, upto) = self
            .read_marked(move |ws| {
                let w = ws.workers().get(&wk)?;
                let items: Vec<_> = w
                    .channels
                    .iter()
                    .map(|c| gateway::worker_channel(ws, w, c))
                    .collect();
                Some((
                    to_json(&items),
                    w.channels.iter().map(|c| c.sid).collect::<Vec<_>>(),
                ))
            })
            .await?;
        let (items, sids) = found.ok_or_else(|| self.not_found())?;
        self.loaded(wk, || Loaded::Channels {
            upto,
            sids: sids.clone(),
        });
        Ok(list(&items))
    }

    /// A worker's reservations with their tasks: with `Active=true` (what the SDK 2.1.1 asks
    /// for when it starts) only pending, accepted and wrapping ones; with
    /// `ReservationStatus=accepted,pending` (other SDK versions) those statuses.
    async fn reservations(&self, wk: Sid) -> Result<String, ApiError> {
        let active = self
            .params
            .get("Active")
            .is_some_and(|v| v.as_str() == Some("true") || v.as_bool() == Some(true));
        let statuses: Option<Vec<ReservationStatus>> = self
            .params
            .get("ReservationStatus")
            .and_then(Value::as_str)
            .map(|s| {
                s.split(',')
                    .filter_map(|x| ReservationStatus::parse(x.trim()))
                    .collect()
            });
        let start_up = active || statuses.is_some();
        let (found, upto) = self
            .read_marked(move |ws| {
                ws.workers().get(&wk)?;
                let now = now_ms();
                let (sids, items): (Vec<Sid>, Vec<_>) = ws
                    .reservations()
                    .values()
                    .filter(|r| r.worker_sid == wk)
                    .filter(|r| !active || gateway::is_active(r, ws.tasks().get(&r.task_sid)))
                    .filter(|r| statuses.as_ref().is_none_or(|s| s.contains(&r.status)))
                    .filter_map(|r| Some((r.sid, gateway::reservation(ws, r, now)?)))
                    .unzip();
                Some((to_json(&items), sids))
            })
            .await?;
        let (items, sids) = found.ok_or_else(|| self.not_found())?;
        if start_up {
            self.loaded(wk, || Loaded::Reservations {
                upto,
                sids: sids.clone(),
            });
        }
        Ok(list(&items))
    }

    async fn reservation(&self, wk: Sid, wr: Sid) -> Result<String, ApiError> {
        self.read(move |ws| {
            let r = ws.reservations().get(&wr).filter(|r| r.worker_sid == wk)?;
            gateway::reservation(ws, r, now_ms()).map(|j| to_json(&j))
        })
        .await?
        .ok_or_else(|| self.not_found())
    }

    async fn task(&self, wt: Sid) -> Result<String, ApiError> {
        self.read(move |ws| {
            ws.tasks()
                .get(&wt)
                .map(|t| to_json(&gateway::task(ws, t, now_ms())))
        })
        .await?
        .ok_or_else(|| self.not_found())
    }

    /// Carries the envelope to the REST handler of the same path as a form POST; returns the
    /// REST body, or the REST error as it is. `allowed` limits which parameters pass (empty:
    /// all of them).
    async fn forward(&self, allowed: &[&str]) -> Result<Bytes, ApiError> {
        let form = form(self.params, allowed);
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("/v1/{}", self.path.trim_matches('/')))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(v) = self.if_match {
            req = req.header(header::IF_MATCH, v);
        }
        let req = req
            .extension(Authenticated(self.grant.account))
            .body(Body::from(form))
            .map_err(|e| ApiError::invalid(format!("unusable request: {e}")))?;
        let resp = match self.b.rest.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 4 * 1024 * 1024)
            .await
            .map_err(|e| ApiError::invalid(format!("unreadable answer: {e}")))?;
        if status.is_success() {
            return Ok(body);
        }
        // The REST error document, as REST gave it.
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Err(ApiError::new(
            status,
            v.get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u32::try_from(c).ok())
                .unwrap_or(taskyard_api::error::code::INVALID),
            v.get("message")
                .and_then(Value::as_str)
                .unwrap_or("The request was refused")
                .to_string(),
        ))
    }
}

/// A gateway list: everything on one page (a worker's activities, channels and active
/// reservations are few; the SDK asks for pages of 1,000).
fn list(items: &str) -> String {
    format!("{{\"contents\":{items},\"after_sid\":null,\"meta\":{{\"list_key\":\"contents\"}}}}")
}

/// The envelope's `params` as a form: strings as they are, numbers and booleans as text,
/// objects (`Attributes`) as JSON text, arrays as repeated keys.
fn form(params: &Map<String, Value>, allowed: &[&str]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        if !allowed.is_empty() && !allowed.contains(&k.as_str()) {
            continue;
        }
        let mut one = |v: &Value| match v {
            Value::Null => {}
            Value::String(s) => {
                out.append_pair(k, s);
            }
            Value::Bool(_) | Value::Number(_) | Value::Object(_) | Value::Array(_) => {
                out.append_pair(k, &v.to_string());
            }
        };
        match v {
            Value::Array(items) => items.iter().for_each(&mut one),
            other => one(other),
        }
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_become_the_form_rest_expects() {
        let p: Map<String, Value> = serde_json::from_str(
            r#"{"Attributes":{"a":[1,"x"]},"PageSize":1000,"Active":"true","RejectPendingReservations":true,"Skip":null,"E":["a","b"]}"#,
        )
        .expect("json");
        let f = form(&p, &[]);
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(f.as_bytes()).into_owned().collect();
        let get = |k: &str| {
            pairs
                .iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("Attributes"), [r#"{"a":[1,"x"]}"#]);
        assert_eq!(get("PageSize"), ["1000"]);
        assert_eq!(get("Active"), ["true"]);
        assert_eq!(get("RejectPendingReservations"), ["true"]);
        assert!(get("Skip").is_empty());
        assert_eq!(get("E"), ["a", "b"]);
        let only = form(&p, &["Active"]);
        assert_eq!(only, "Active=true");
    }
}
