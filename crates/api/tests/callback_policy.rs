//! The callback policy when a callback URL is saved: refused URLs answer 400 / 20001 naming
//! the parameter and why, and change nothing; ordinary URLs (loopback included) are saved.
//!
//! The in-process harness of `http.rs`, cut down: the real router, actors and SQLite store,
//! driven through `tower::ServiceExt::oneshot`. Nothing here connects to a callback URL.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use serde_json::Value;
use taskyard_api::{App, router};
use taskyard_hub::{CallbackOptions, Cidr, Hub, Policy};
use taskyard_store::sqlite::{Durability, SqliteStore};
use tower::ServiceExt;

const METADATA: &str = "http://169.254.169.254/latest/meta-data/";

struct Server {
    router: Router,
    auth: String,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(policy: Policy) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), Durability::Normal).expect("store");
        let options = CallbackOptions {
            policy,
            ..Default::default()
        };
        let hub = Hub::start_with(Box::new(store), options).expect("hub");
        let account = hub
            .create_account("Main".into(), None)
            .await
            .expect("account");
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", account.sid, account.auth_token));
        Server {
            router: router(App::new(hub, "http://taskyard.test", false)),
            auth: format!("Basic {auth}"),
            _dir: dir,
        }
    }

    async fn send(&self, method: &str, uri: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, &self.auth)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("request");
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body)
    }

    async fn post(&self, uri: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        self.send("POST", uri, form).await
    }

    async fn get(&self, uri: &str) -> Value {
        let (status, body) = self.send("GET", uri, &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// A workspace and a queue; returns the workspace's path and a workflow configuration.
    async fn workspace(&self) -> (String, String) {
        let (status, ws) = self
            .post("/v1/Workspaces", &[("FriendlyName", "Support")])
            .await;
        assert_eq!(status, StatusCode::CREATED, "{ws}");
        let path = format!("/v1/Workspaces/{}", ws["sid"].as_str().expect("sid"));
        let (status, q) = self
            .post(&format!("{path}/TaskQueues"), &[("FriendlyName", "Q")])
            .await;
        assert_eq!(status, StatusCode::CREATED, "{q}");
        let config = format!(
            r#"{{"task_routing":{{"default_filter":{{"queue":"{}"}}}}}}"#,
            q["sid"].as_str().expect("queue sid")
        );
        (path, config)
    }
}

/// Asserts a Twilio 400 / 20001 and returns its message.
#[track_caller]
fn invalid(reply: (StatusCode, Value)) -> String {
    let (status, body) = reply;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 20001, "{body}");
    assert_eq!(body["status"], 400, "{body}");
    body["message"].as_str().expect("message").to_owned()
}

#[tokio::test]
async fn a_workflow_calling_the_metadata_address_is_refused_and_not_created() {
    let s = Server::start(Policy::default()).await;
    let (ws, config) = s.workspace().await;
    let flows = format!("{ws}/Workflows");
    for (param, url) in [
        ("AssignmentCallbackUrl", METADATA),
        ("FallbackAssignmentCallbackUrl", METADATA),
        (
            "AssignmentCallbackUrl",
            "http://[fd00:ec2::254]/latest/meta-data/",
        ),
        ("AssignmentCallbackUrl", "http://[::ffff:169.254.169.254]/"),
        ("AssignmentCallbackUrl", "http://2852039166/"),
        ("AssignmentCallbackUrl", "http://0.0.0.0:8080/assign"),
    ] {
        let message = invalid(
            s.post(
                &flows,
                &[
                    ("FriendlyName", "Exfiltrate"),
                    ("Configuration", &config),
                    (param, url),
                ],
            )
            .await,
        );
        assert!(
            message.starts_with(&format!("{param} points to ")),
            "{url}: {message}"
        );
        assert!(
            message.contains("an address callbacks may not reach"),
            "{url}: {message}"
        );
    }
    let message = invalid(
        s.post(
            &flows,
            &[
                ("FriendlyName", "Exfiltrate"),
                ("Configuration", &config),
                ("AssignmentCallbackUrl", METADATA),
            ],
        )
        .await,
    );
    assert_eq!(
        message,
        "AssignmentCallbackUrl points to 169.254.169.254, an address callbacks may not reach (link-local / cloud metadata)"
    );
    let list = s.get(&flows).await;
    assert_eq!(
        list["workflows"],
        Value::Array(vec![]),
        "nothing was created"
    );

    // Loopback stays allowed by default: self-hosted applications run next to the server.
    let (status, wf) = s
        .post(
            &flows,
            &[
                ("FriendlyName", "Local"),
                ("Configuration", &config),
                ("AssignmentCallbackUrl", "http://127.0.0.1:8080/assignment"),
                (
                    "FallbackAssignmentCallbackUrl",
                    "http://[::1]:8080/fallback",
                ),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{wf}");
    assert_eq!(
        wf["assignment_callback_url"],
        "http://127.0.0.1:8080/assignment"
    );

    // Updating it to a refused URL changes nothing, not even the other parameters.
    let one = format!("{flows}/{}", wf["sid"].as_str().expect("sid"));
    invalid(
        s.post(
            &one,
            &[
                ("FriendlyName", "Renamed"),
                ("FallbackAssignmentCallbackUrl", METADATA),
            ],
        )
        .await,
    );
    let now = s.get(&one).await;
    assert_eq!(now["friendly_name"], "Local");
    assert_eq!(
        now["fallback_assignment_callback_url"],
        "http://[::1]:8080/fallback"
    );
    // An empty value still clears a URL.
    let (status, cleared) = s.post(&one, &[("FallbackAssignmentCallbackUrl", "")]).await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert_eq!(cleared["fallback_assignment_callback_url"], Value::Null);
}

#[tokio::test]
async fn a_workspace_event_callback_must_be_http_and_reachable() {
    let s = Server::start(Policy::default()).await;
    let message = invalid(
        s.post(
            "/v1/Workspaces",
            &[("FriendlyName", "W"), ("EventCallbackUrl", METADATA)],
        )
        .await,
    );
    assert!(
        message.starts_with("EventCallbackUrl points to 169.254.169.254"),
        "{message}"
    );
    assert_eq!(
        s.get("/v1/Workspaces").await["workspaces"],
        Value::Array(vec![]),
        "nothing was created"
    );

    let (ws, _) = s.workspace().await;
    for url in [
        "ftp://files.example.com/events",
        "file:///etc/passwd",
        "gopher://x/",
    ] {
        let message = invalid(s.post(&ws, &[("EventCallbackUrl", url)]).await);
        assert!(message.starts_with("EventCallbackUrl "), "{url}: {message}");
    }
    let message = invalid(
        s.post(
            &ws,
            &[("EventCallbackUrl", "ftp://files.example.com/events")],
        )
        .await,
    );
    assert_eq!(
        message,
        r#"EventCallbackUrl uses the scheme "ftp"; callbacks must be http:// or https:// URLs"#
    );
    assert_eq!(s.get(&ws).await["event_callback_url"], Value::Null);

    let (status, updated) = s
        .post(&ws, &[("EventCallbackUrl", "http://127.0.0.1:9000/events")])
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        updated["event_callback_url"],
        "http://127.0.0.1:9000/events"
    );
}

#[tokio::test]
async fn the_operators_deny_list_applies_to_names_as_they_resolve() {
    let deny = Cidr::parse_list("127.0.0.0/8,::1/128").expect("deny list");
    let s = Server::start(Policy::new(Vec::new(), deny)).await;
    let (ws, config) = s.workspace().await;

    let message = invalid(
        s.post(&ws, &[("EventCallbackUrl", "http://localhost:9000/events")])
            .await,
    );
    assert!(
        message.starts_with("EventCallbackUrl resolves to "),
        "{message}"
    );
    assert!(
        message.contains("(in the callback deny list as "),
        "{message}"
    );
    let message = invalid(
        s.post(
            &format!("{ws}/Workflows"),
            &[
                ("FriendlyName", "Local"),
                ("Configuration", &config),
                ("AssignmentCallbackUrl", "http://127.0.0.1:8080/assignment"),
            ],
        )
        .await,
    );
    assert_eq!(
        message,
        "AssignmentCallbackUrl points to 127.0.0.1, an address callbacks may not reach (in the callback deny list as 127.0.0.0/8)"
    );

    // A name that does not resolve (now) is accepted: every connection is checked anyway.
    let (status, updated) = s
        .post(&ws, &[("EventCallbackUrl", "https://hooks.invalid/events")])
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
}
