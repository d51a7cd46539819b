//! The served OpenAPI document against the router that serves it, in process.
//!
//! * Every path and method in `/openapi.json` is answered by a real route: with its path
//!   parameters filled with well-formed SIDs, the request reaches a route (not the fallback
//!   of an unknown path) and its method (not the 405 of a known path).
//! * Every route the router has ([`taskyard_api::routes::templates`]), with every method it
//!   answers, is in the document.
//!
//! So a route added without documenting it, or a documented operation that nothing serves,
//! fails here. Which route answered is read from axum's `MatchedPath`, which a route layer
//! copies into a response header (the router's own "no such route" 404 has none, and its 404
//! is otherwise the same as a handler's).

use std::collections::BTreeSet;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use serde_json::Value;
use taskyard_api::{App, router};
use taskyard_hub::Hub;
use taskyard_store::sqlite::{Durability, SqliteStore};
use tower::ServiceExt;

const BASE: &str = "http://taskyard.test";

/// Documented, but served by another crate of the server (`taskyard-server`'s `/metrics`).
const SERVED_ELSEWHERE: &[&str] = &["/metrics"];

/// Methods probed on every route (HEAD and OPTIONS are answered for every path by axum and
/// by the CORS layer, and are not operations of the document).
const METHODS: &[&str] = &["GET", "POST", "DELETE", "PUT", "PATCH"];

const MATCHED: &str = "x-test-matched-route";

struct Server {
    router: Router,
    auth: String,
    _dir: tempfile::TempDir,
}

async fn mark(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = next.run(req).await;
    if let Some(r) = route.and_then(|r| HeaderValue::from_str(r.as_str()).ok()) {
        resp.headers_mut().insert(MATCHED, r);
    }
    resp
}

impl Server {
    async fn new() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), Durability::Normal).expect("store");
        let hub = Hub::start(Box::new(store)).expect("hub");
        let account = hub
            .create_account("Main".into(), None)
            .await
            .expect("account");
        let credentials = format!("{}:{}", account.sid, account.auth_token);
        Server {
            router: router(App::new(hub, BASE, false)).route_layer(axum::middleware::from_fn(mark)),
            auth: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(credentials)
            ),
            _dir: dir,
        }
    }

    /// The status and the template of the route that answered (None: no route did).
    async fn probe(&self, method: &str, path: &str) -> (StatusCode, Option<String>) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, &self.auth)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::empty())
            .expect("request");
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let route = resp
            .headers()
            .get(MATCHED)
            .map(|v| v.to_str().expect("ascii").to_string());
        (resp.status(), route)
    }

    async fn document(&self) -> Value {
        let req = Request::builder()
            .uri("/openapi.json")
            .body(Body::empty())
            .expect("request");
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::OK, "served without credentials");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("JSON")
    }
}

/// A value for a path parameter: a SID of the kind its pattern asks for (`^WS[0-9a-fA-F]{32}$`
/// gives `WS` and 32 hex digits), else a plain word (a worker channel's unique name).
fn fill(param: &Value) -> String {
    let pattern = param["schema"]["pattern"].as_str().unwrap_or("");
    match pattern.strip_prefix('^').and_then(|p| p.get(..2)) {
        Some(prefix) if prefix.chars().all(|c| c.is_ascii_uppercase()) => {
            format!("{prefix}0123456789abcdef0123456789abcdef")
        }
        _ => "default".to_string(),
    }
}

/// The operation's path parameters: the path item's and the operation's, references resolved.
fn path_params<'a>(doc: &'a Value, item: &'a Value, op: &'a Value) -> Vec<&'a Value> {
    let all = item["parameters"]
        .as_array()
        .into_iter()
        .chain(op["parameters"].as_array())
        .flatten();
    all.map(|p| match p["$ref"].as_str() {
        Some(r) => {
            let name = r
                .strip_prefix("#/components/parameters/")
                .expect("a parameter reference");
            &doc["components"]["parameters"][name]
        }
        None => p,
    })
    .filter(|p| p["in"] == "path")
    .collect()
}

/// Every documented operation, its path filled in: (documented path, method, concrete path).
fn operations(doc: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "delete", "put", "patch"] {
            let Some(op) = item.get(method) else { continue };
            let mut concrete = path.clone();
            for p in path_params(doc, item, op) {
                let name = p["name"].as_str().expect("parameter name");
                let placeholder = format!("{{{name}}}");
                assert!(
                    concrete.contains(&placeholder),
                    "{method} {path}: path parameter {name} is not in the path"
                );
                concrete = concrete.replace(&placeholder, &fill(p));
            }
            assert!(
                !concrete.contains('{'),
                "{method} {path}: a path parameter is not declared"
            );
            out.push((path.clone(), method.to_uppercase(), concrete));
        }
    }
    out
}

#[tokio::test]
async fn the_document_is_taskyards() {
    let server = Server::new().await;
    let doc = server.document().await;
    assert_eq!(doc["openapi"], "3.0.1");
    assert_eq!(doc["servers"], serde_json::json!([{ "url": BASE }]));
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let ops = operations(&doc);
    // Twilio's 37 TaskRouter paths are all there, and so are Taskyard's own.
    for path in [
        "/v1/Workspaces",
        "/v1/Workspaces/{WorkspaceSid}/Tasks/{TaskSid}/Reservations/{Sid}",
        "/v1/Workspaces/{WorkspaceSid}/TaskQueues/RealTimeStatistics",
        "/v1/Workspaces/{WorkspaceSid}/Events/Stream",
        "/v1/Workspaces/{WorkspaceSid}/RoutePreview",
        "/2010-04-01/Accounts/{AccountSid}/Keys/{Sid}.json",
        "/healthz",
        "/openapi.json",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is missing");
    }
    // Operation ids are unique (clients generated from the document name methods by them).
    let ids: Vec<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().expect("path item").values())
        .filter_map(|op| op.get("operationId").and_then(Value::as_str))
        .collect();
    assert_eq!(ids.len(), ops.len(), "every operation has an operationId");
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "operationIds are unique"
    );
    // Every reference points at something.
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/").skip(1) {
        let target = &r[..r.find('"').expect("closing quote")];
        let found = target.split('/').try_fold(&doc, |at, key| at.get(key));
        assert!(found.is_some(), "dangling reference #/{target}");
    }
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_every_route_is_documented() {
    let server = Server::new().await;
    let doc = server.document().await;

    // (route template, method) of every documented operation.
    let mut documented = BTreeSet::new();
    for (path, method, concrete) in operations(&doc) {
        if SERVED_ELSEWHERE.contains(&path.as_str()) {
            continue;
        }
        let (status, route) = server.probe(&method, &concrete).await;
        let route = route.unwrap_or_else(|| {
            panic!("{method} {path} ({concrete}): no route answers it (status {status})")
        });
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: route {route} has no such method"
        );
        documented.insert((route, method));
    }

    // Every route, probed with every method: what it answers must be documented.
    let templates = taskyard_api::routes::templates();
    assert!(templates.len() > 40, "the route table: {templates:?}");
    let mut routed = BTreeSet::new();
    for template in &templates {
        let concrete = template
            .split('/')
            .map(|segment| match segment.starts_with('{') {
                true => "ZZ0123456789abcdef0123456789abcdef",
                false => segment,
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in METHODS {
            let (status, route) = server.probe(method, &concrete).await;
            assert_eq!(
                route.as_deref(),
                Some(template.as_str()),
                "{method} {concrete} reaches its own route"
            );
            if status != StatusCode::METHOD_NOT_ALLOWED {
                routed.insert((template.clone(), method.to_string()));
            }
        }
    }
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI document (crates/api/openapi/taskyard.json): {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unserved.is_empty(),
        "documented but not routed: {unserved:?}"
    );
}
