//! The route table and the pieces every handler shares.

mod accounts;
mod combined;
mod cumulative;
mod events;
mod keys;
mod preview;
mod resources;
mod statistics;
mod tasks;
mod workers;
mod workspaces;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use base64::Engine as _;
use taskyard_engine::{Applied, Command, Sid, Workspace, sid::prefix};
use taskyard_hub::{Hub, WorkspaceHandle};

use crate::error::ApiError;
use crate::paging::PageRequest;
use crate::params::Params;
use crate::render::Urls;

/// Largest request body accepted by default (a workflow configuration may be 1 MB before
/// form encoding, three times that after).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// Most form fields a request body may have by default (Twilio's largest forms have a few
/// dozen).
pub const MAX_FORM_FIELDS: usize = 1000;

/// Limits on what one request may send, and how often an account may send one.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes of request body; more answers 413.
    pub max_body: usize,
    /// Fields of a form-encoded body; more answers 400.
    pub max_form_fields: usize,
    /// Requests per account, when limited.
    pub rate: Option<Arc<crate::rate::RateLimiter>>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: MAX_BODY,
            max_form_fields: MAX_FORM_FIELDS,
            rate: None,
        }
    }
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct App {
    pub hub: Hub,
    pub urls: Arc<Urls>,
    /// Show worker attributes in lists too (Twilio hides them outside single fetches).
    pub list_attributes: bool,
    /// The served OpenAPI document, once built (or why it could not be).
    openapi: Arc<OnceLock<Result<Bytes, String>>>,
    pub limits: Limits,
}

impl App {
    pub fn new(hub: Hub, public_url: &str, list_attributes: bool) -> App {
        App {
            hub,
            urls: Arc::new(Urls {
                base: public_url.trim_end_matches('/').to_string(),
            }),
            list_attributes,
            openapi: Arc::default(),
            limits: Limits::default(),
        }
    }

    /// The same app with these input limits.
    pub fn with_limits(self, limits: Limits) -> App {
        App { limits, ..self }
    }
}

/// The whole HTTP surface: `/healthz`, `/openapi.json`, the TaskRouter v1 routes and the
/// account routes.
pub fn router(app: App) -> Router {
    let max_body = app.limits.max_body;
    table()
        .router
        .fallback(fallback)
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(wire))
        .with_state(app)
}

/// The path template of every route the router serves (axum's syntax:
/// `/v1/Workspaces/{ws}/Tasks/{sid}`), in the order registered. `tests/openapi.rs` holds them
/// to the served OpenAPI document, so a route added to the table without a path in
/// `openapi/` fails there.
pub fn templates() -> Vec<String> {
    table().templates
}

/// Every route. Each goes through [`Table::route`], which records its template, so the list
/// [`templates`] gives cannot drift from what is served.
fn table() -> Table {
    let ws = "/v1/Workspaces/{ws}";
    Table::default()
        .route("/healthz", get(|| async { "ok" }))
        .route("/openapi.json", get(openapi))
        .route(
            "/v1/Workspaces",
            methods(get(workspaces::list).post(workspaces::create)),
        )
        .route(
            ws,
            methods(
                get(workspaces::fetch)
                    .post(workspaces::update)
                    .delete(workspaces::delete),
            ),
        )
        .route(
            &format!("{ws}/Activities"),
            methods(get(resources::list_activities).post(resources::create_activity)),
        )
        .route(
            &format!("{ws}/Activities/{{sid}}"),
            methods(
                get(resources::fetch_activity)
                    .post(resources::update_activity)
                    .delete(resources::delete_activity),
            ),
        )
        .route(
            &format!("{ws}/TaskChannels"),
            methods(get(resources::list_task_channels).post(resources::create_task_channel)),
        )
        .route(
            &format!("{ws}/TaskChannels/{{sid}}"),
            methods(
                get(resources::fetch_task_channel)
                    .post(resources::update_task_channel)
                    .delete(resources::delete_task_channel),
            ),
        )
        .route(
            &format!("{ws}/TaskQueues"),
            methods(get(resources::list_task_queues).post(resources::create_task_queue)),
        )
        .route(
            &format!("{ws}/TaskQueues/{{sid}}"),
            methods(
                get(resources::fetch_task_queue)
                    .post(resources::update_task_queue)
                    .delete(resources::delete_task_queue),
            ),
        )
        .route(
            &format!("{ws}/Workflows"),
            methods(get(resources::list_workflows).post(resources::create_workflow)),
        )
        .route(
            &format!("{ws}/Workflows/{{sid}}"),
            methods(
                get(resources::fetch_workflow)
                    .post(resources::update_workflow)
                    .delete(resources::delete_workflow),
            ),
        )
        .route(
            &format!("{ws}/Workers"),
            methods(get(workers::list).post(workers::create)),
        )
        .route(
            &format!("{ws}/Workers/{{sid}}"),
            methods(
                get(workers::fetch)
                    .post(workers::update)
                    .delete(workers::delete),
            ),
        )
        .route(
            &format!("{ws}/Workers/{{sid}}/Channels"),
            methods(get(workers::list_channels)),
        )
        .route(
            &format!("{ws}/Workers/{{sid}}/Channels/{{channel}}"),
            methods(get(workers::fetch_channel).post(workers::update_channel)),
        )
        .route(
            &format!("{ws}/Tasks"),
            methods(get(tasks::list).post(tasks::create)),
        )
        .route(
            &format!("{ws}/Tasks/{{sid}}"),
            methods(get(tasks::fetch).post(tasks::update).delete(tasks::delete)),
        )
        .route(
            &format!("{ws}/Tasks/{{sid}}/Reservations"),
            methods(get(tasks::list_task_reservations)),
        )
        .route(
            &format!("{ws}/Tasks/{{sid}}/Reservations/{{rid}}"),
            methods(get(tasks::fetch_task_reservation).post(tasks::update_task_reservation)),
        )
        .route(
            &format!("{ws}/Workers/{{sid}}/Reservations"),
            methods(get(tasks::list_worker_reservations)),
        )
        .route(
            &format!("{ws}/Workers/{{sid}}/Reservations/{{rid}}"),
            methods(get(tasks::fetch_worker_reservation).post(tasks::update_worker_reservation)),
        )
        .route(
            "/2010-04-01/Accounts.json",
            methods(get(accounts::list).post(accounts::create)),
        )
        .route("/2010-04-01/Accounts/{file}", methods(get(accounts::fetch)))
        .route(
            "/2010-04-01/Accounts/{ac}/Keys.json",
            methods(get(keys::list).post(keys::create)),
        )
        .route(
            "/2010-04-01/Accounts/{ac}/Keys/{file}",
            methods(get(keys::fetch).post(keys::update).delete(keys::delete)),
        )
        .route(
            &format!("{ws}/CumulativeStatistics"),
            methods(get(cumulative::workspace)),
        )
        .route(
            &format!("{ws}/TaskQueues/{{sid}}/CumulativeStatistics"),
            methods(get(cumulative::task_queue)),
        )
        .route(
            &format!("{ws}/Workflows/{{sid}}/CumulativeStatistics"),
            methods(get(cumulative::workflow)),
        )
        .route(
            &format!("{ws}/Workers/CumulativeStatistics"),
            methods(get(cumulative::workers)),
        )
        .route(
            &format!("{ws}/Workers/{{sid}}/Statistics"),
            methods(get(cumulative::worker)),
        )
        .route(
            &format!("{ws}/RealTimeStatistics"),
            methods(get(statistics::workspace)),
        )
        .route(
            &format!("{ws}/TaskQueues/RealTimeStatistics"),
            methods(post(statistics::bulk)),
        )
        .route(
            &format!("{ws}/TaskQueues/{{sid}}/RealTimeStatistics"),
            methods(get(statistics::task_queue)),
        )
        .route(
            &format!("{ws}/Workflows/{{sid}}/RealTimeStatistics"),
            methods(get(statistics::workflow)),
        )
        .route(
            &format!("{ws}/Workers/RealTimeStatistics"),
            methods(get(statistics::workers)),
        )
        .route(
            &format!("{ws}/Statistics"),
            methods(get(combined::workspace)),
        )
        .route(
            &format!("{ws}/TaskQueues/Statistics"),
            methods(get(combined::task_queues)),
        )
        .route(
            &format!("{ws}/TaskQueues/{{sid}}/Statistics"),
            methods(get(combined::task_queue)),
        )
        .route(
            &format!("{ws}/Workflows/{{sid}}/Statistics"),
            methods(get(combined::workflow)),
        )
        .route(
            &format!("{ws}/Workers/Statistics"),
            methods(get(combined::workers)),
        )
        .route(
            &format!("{ws}/RoutePreview"),
            methods(post(preview::preview)),
        )
        .route(&format!("{ws}/Events"), methods(get(events::list)))
        .route(&format!("{ws}/Events/Stream"), methods(get(events::stream)))
        .route(&format!("{ws}/Events/{{sid}}"), methods(get(events::fetch)))
}

/// The routes, and their templates in the order registered.
#[derive(Default)]
struct Table {
    router: Router<App>,
    templates: Vec<String>,
}

impl Table {
    fn route(mut self, path: &str, handlers: MethodRouter<App>) -> Table {
        self.templates.push(path.to_string());
        self.router = self.router.route(path, handlers);
        self
    }
}

/// `GET /openapi.json`, unauthenticated like `/healthz`: the document is public (Twilio
/// publishes it) and says nothing about this server's data. Built on the first request.
async fn openapi(State(app): State<App>) -> Response {
    let doc = app.openapi.get_or_init(|| {
        crate::openapi::document(&app.urls.base)
            .map(|d| Bytes::from(d.to_string()))
            .map_err(|e| e.to_string())
    });
    match doc {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "the OpenAPI document could not be built");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                crate::error::code::INTERNAL,
                "The OpenAPI document could not be built",
            )
            .into_response()
        }
    }
}

/// Wrong methods on a known path answer Twilio's 405.
fn methods(m: MethodRouter<App>) -> MethodRouter<App> {
    m.fallback(|| async { ApiError::method_not_allowed() })
}

/// What every response goes through: CORS preflights are answered here, every error that
/// did not come from a handler (body too large, undecodable path, …) is rewritten into
/// Twilio's error document, and the CORS headers are added.
async fn wire(req: Request, next: axum::middleware::Next) -> Response {
    let mut resp = if req.method() == axum::http::Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let code = match status.as_u16() {
            401 => crate::error::code::AUTH,
            404 => crate::error::code::NOT_FOUND,
            405 => crate::error::code::METHOD,
            400..=499 => crate::error::code::INVALID,
            _ => crate::error::code::INTERNAL,
        };
        let reason = status.canonical_reason().unwrap_or("Error");
        resp = ApiError::new(status, code, reason).into_response();
    }
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Authorization, If-Match"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("ETag"),
    );
    resp
}

async fn fallback(ctx: Result<Ctx, ApiError>, req: Request) -> ApiError {
    match ctx {
        Ok(_) => ApiError::not_found(req.uri().path()),
        Err(e) => e,
    }
}

/// A request already authenticated by the server itself (the event bridge carries an agent's
/// action to these handlers after checking the agent's Access Token): the account it acts
/// as. Only server code can attach a request extension, so no client can claim one.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub Sid);

/// What every authenticated handler starts from: the caller's account, the request path and
/// query, and the `If-Match` header.
pub struct Ctx {
    pub app: App,
    pub account: Sid,
    /// The API key the caller authenticated with, if not the account's auth token.
    pub api_key: Option<Sid>,
    pub path: String,
    pub query: Params,
    pub if_match: Option<String>,
}

impl FromRequestParts<App> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Ctx, ApiError> {
        let principal = match parts.extensions.get::<Authenticated>() {
            Some(a) => taskyard_hub::Principal {
                account: a.0,
                api_key: None,
            },
            None => {
                let (user, token) = basic_credentials(parts).ok_or_else(ApiError::unauthorized)?;
                // On a cluster, credentials stored by another node a moment ago.
                app.hub.learn_credentials(&user).await;
                app.hub
                    .authenticate(&user, &token)
                    .ok_or_else(ApiError::unauthorized)?
            }
        };
        if let Some(rate) = &app.limits.rate {
            rate.take(principal.account, std::time::Instant::now())
                .map_err(ApiError::too_many_requests)?;
        }
        Ok(Ctx {
            app: app.clone(),
            account: principal.account,
            api_key: principal.api_key,
            path: parts.uri.path().to_string(),
            query: Params::parse(parts.uri.query().unwrap_or("").as_bytes()),
            if_match: parts
                .headers
                .get(header::IF_MATCH)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        })
    }
}

/// The user and password of HTTP Basic credentials.
fn basic_credentials(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, token) = decoded.split_once(':')?;
    Some((user.to_string(), token.to_string()))
}

/// The form-encoded request body.
pub struct Form(pub Params);

impl FromRequest<App> for Form {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &App) -> Result<Form, ApiError> {
        let bytes = Bytes::from_request(req, app).await.map_err(|e| {
            let max = app.limits.max_body;
            match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    crate::error::code::INVALID,
                    format!("The request body is larger than {max} bytes"),
                ),
                _ => ApiError::invalid(format!("Unreadable request body: {e}")),
            }
        })?;
        // Counted before parsing: a body of a million `&`s should cost a scan, not a million
        // allocations.
        let max = app.limits.max_form_fields;
        let fields = bytes
            .split(|b| *b == b'&')
            .filter(|f| !f.is_empty())
            .count();
        if fields > max {
            return Err(ApiError::invalid(format!(
                "The request has {fields} form fields; at most {max} are accepted"
            )));
        }
        Ok(Form(Params::parse(&bytes)))
    }
}

impl Ctx {
    /// The workspace in the path, if it exists and belongs to the caller.
    pub fn workspace(&self, ws: &str) -> Result<WorkspaceHandle, ApiError> {
        let sid = Sid::parse_with(ws, prefix::WORKSPACE).map_err(|_| self.not_found())?;
        self.app
            .hub
            .workspace(self.account, sid)
            .map_err(|_| self.not_found())
    }

    pub fn not_found(&self) -> ApiError {
        ApiError::not_found(&self.path)
    }

    /// Refuses callers that authenticated with an API key: like Twilio's standard keys, they
    /// may not manage keys or accounts (only the auth token can).
    pub fn require_auth_token(&self) -> Result<(), ApiError> {
        match self.api_key {
            None => Ok(()),
            Some(_) => Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                crate::error::code::FORBIDDEN,
                "API keys cannot manage API keys or accounts; use the account's auth token",
            )),
        }
    }

    /// A path SID of the given kind, or 404 naming the path.
    pub fn path_sid(&self, s: &str, prefix: &'static str) -> Result<Sid, ApiError> {
        Sid::parse_with(s, prefix).map_err(|_| self.not_found())
    }

    pub fn page(&self) -> Result<PageRequest, ApiError> {
        PageRequest::parse(&self.query, format!("{}{}", self.app.urls.base, self.path))
    }

    pub async fn read<R: Send + 'static>(
        &self,
        h: &WorkspaceHandle,
        f: impl FnOnce(&Workspace) -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        h.read(f)
            .await
            .map_err(|e| ApiError::from_hub(e, &self.path))
    }

    pub async fn apply<R: Send + 'static>(
        &self,
        h: &WorkspaceHandle,
        cmd: Command,
        render: impl FnOnce(&Workspace, &Applied) -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        h.apply(cmd, render)
            .await
            .map_err(|e| ApiError::from_hub(e, &self.path))
    }
}

/// A JSON response.
pub fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A JSON response that also carries the resource's version as `ETag`.
pub fn json_with_etag(status: StatusCode, body: String, version: u64) -> Response {
    let mut resp = json(status, body);
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// Renders one resource of a workspace with its version (the `ETag`), if it exists.
pub type RenderOne = fn(&Workspace, &Urls, Sid) -> Option<(String, u64)>;

/// Applies `cmd` and answers `status` with the affected resource and its `ETag`.
pub async fn apply_versioned(
    ctx: &Ctx,
    ws: &str,
    status: StatusCode,
    cmd: Command,
    one: RenderOne,
) -> Result<Response, ApiError> {
    let h = ctx.workspace(ws)?;
    let urls = ctx.app.urls.clone();
    let (body, version) = ctx
        .apply(&h, cmd, move |ws, a| one(ws, &urls, a.sid))
        .await?
        .unwrap_or_default();
    Ok(json_with_etag(status, body, version))
}

/// Answers with resource `sid` and its `ETag`, or 404.
pub async fn fetch_versioned(
    ctx: &Ctx,
    ws: &str,
    sid: Sid,
    one: RenderOne,
) -> Result<Response, ApiError> {
    let h = ctx.workspace(ws)?;
    let urls = ctx.app.urls.clone();
    let (body, version) = ctx
        .read(&h, move |ws| one(ws, &urls, sid))
        .await?
        .ok_or_else(|| ctx.not_found())?;
    Ok(json_with_etag(StatusCode::OK, body, version))
}

/// The `ETag` of a list page: changes whenever any listed resource changes (a hash of the
/// SIDs and versions on the page).
pub fn list_etag(items: impl Iterator<Item = (Sid, u64)>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut tag = std::collections::hash_map::DefaultHasher::new();
    for item in items {
        item.hash(&mut tag);
    }
    tag.finish()
}

pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Shorthand for handlers: the shared state extractor.
pub type AppState = State<App>;

/// `Ordering` on lists: Taskyard lists in creation order and accepts only that order.
pub fn check_ordering(q: &Params) -> Result<(), ApiError> {
    match q.str("Ordering") {
        None => Ok(()),
        Some(o) if o.eq_ignore_ascii_case("DateCreated:asc") => Ok(()),
        Some(o) => Err(ApiError::invalid(format!(
            "Ordering '{o}' is not supported; lists are returned in creation order (DateCreated:asc)"
        ))),
    }
}
