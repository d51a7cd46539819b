//! The SDK's JSON envelopes, in process: the Access Token check (every refusal with its
//! Twilio code), what each role may touch, and that changes go through the REST rules and
//! are visible over REST.

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use serde_json::{Value, json};
use taskyard_auth::{Alg, SecretHash};
use taskyard_engine::{
    Command, CreateTask, CreateWorker, NewWorkspace, Sid, TaskQueueParams, WorkflowParams,
};
use taskyard_hub::{Hub, WorkspaceHandle, now_ms};
use taskyard_store::sqlite::{Durability, SqliteStore};
use tower::ServiceExt as _;

struct World {
    _dir: tempfile::TempDir,
    hub: Hub,
    app: Router,
    account: Sid,
    key: Sid,
    secret: String,
    ws: Sid,
    h: WorkspaceHandle,
    alice: Sid,
    bob: Sid,
}

async fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path(), Durability::Normal).expect("store");
    let hub = Hub::start(Box::new(store)).expect("hub");
    let account = hub.create_account("A".into(), None).await.expect("a").sid;
    let (key, secret) = hub
        .create_api_key(account, "agents".into())
        .await
        .expect("key");
    let ws = hub
        .create_workspace(
            account,
            NewWorkspace {
                friendly_name: "W".into(),
                ..Default::default()
            },
            |ws| ws.sid(),
        )
        .await
        .expect("ws");
    let h = hub.workspace(account, ws).expect("handle");
    let worker = |name: &str| {
        Command::CreateWorker(CreateWorker {
            friendly_name: name.into(),
            activity_sid: None,
            attributes: Some("{}".into()),
        })
    };
    let alice = h.apply(worker("Alice"), |_, a| a.sid).await.expect("alice");
    let bob = h.apply(worker("Bob"), |_, a| a.sid).await.expect("bob");
    let rest = taskyard_api::router(taskyard_api::App::new(hub.clone(), "http://t", false));
    let bridge = taskyard_bridge::Bridge::start(hub.clone(), rest.clone(), Default::default());
    World {
        _dir: dir,
        app: bridge.router().merge(rest),
        hub,
        account,
        key: key.sid,
        secret,
        ws,
        h,
        alice,
        bob,
    }
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A token shaped like twilio's `AccessToken` + `TaskRouterGrant`.
fn jwt(secret: &str, payload: Value) -> String {
    let head = b64(&json!({"alg": "HS256", "typ": "JWT", "cty": "twilio-fpa;v=1"}));
    let input = format!("{head}.{}", b64(&payload));
    let sig = SecretHash::derive(secret).hmac(Alg::Hs256, input.as_bytes());
    format!(
        "{input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
    )
}

impl World {
    fn claims(&self, worker: Sid, role: &str) -> Value {
        let now = now_ms() / 1000;
        json!({
            "jti": format!("{}-{now}", self.key), "iss": self.key.to_string(),
            "sub": self.account.to_string(), "iat": now, "exp": now + 3600,
            "grants": {"identity": "alice", "task_router": {
                "workspace_sid": self.ws.to_string(), "worker_sid": worker.to_string(), "role": role}}
        })
    }

    fn token(&self, worker: Sid, role: &str) -> String {
        jwt(&self.secret, self.claims(worker, role))
    }

    async fn envelope(&self, token: &str, method: &str, url: &str, params: Value) -> (u16, Value) {
        let body = json!({"url": url, "method": method, "params": params, "token": token});
        let req = Request::post("/v1/wschannels")
            // What axios sends over a JSON body.
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body.to_string()))
            .expect("request");
        self.send(req).await
    }

    async fn send(&self, req: Request<Body>) -> (u16, Value) {
        let resp = self.app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn url(&self, rest: &str) -> String {
        format!("Workspaces/{}/{rest}", self.ws)
    }

    async fn attributes(&self, worker: Sid) -> String {
        self.h
            .read(move |ws| ws.workers()[&worker].attributes.to_string())
            .await
            .expect("read")
    }
}

#[track_caller]
fn refused(got: (u16, Value), status: u16, code: u64) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    assert_eq!(got.1["status"], status, "{}", got.1);
    assert!(got.1["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(got.1["more_info"].is_string());
}

#[tokio::test]
async fn a_worker_token_reads_and_changes_its_own_worker() {
    let w = world().await;
    let t = w.token(w.alice, "worker");
    let (status, body) = w
        .envelope(
            &t,
            "GET",
            &w.url(&format!("Workers/{}", w.alice)),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let p = &body["payload"];
    assert_eq!(p["sid"], w.alice.to_string());
    assert_eq!(p["activity_name"], "Offline");
    assert!(
        p["date_created"].is_i64(),
        "gateway dates are epoch seconds"
    );

    let (status, body) = w
        .envelope(
            &t,
            "POST",
            &w.url(&format!("Workers/{}", w.alice)),
            json!({"Attributes": {"languages": ["en"]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payload"]["attributes"], r#"{"languages":["en"]}"#);
    assert_eq!(w.attributes(w.alice).await, r#"{"languages":["en"]}"#);

    let (status, body) = w
        .envelope(&t, "GET", &w.url("Activities"), json!({"PageSize": 1000}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["payload"]["contents"].as_array().map(Vec::len),
        Some(3)
    );
    assert!(body["payload"]["after_sid"].is_null());

    // REST's own validation applies: an attribute document that is not JSON.
    let (status, body) = w
        .envelope(
            &t,
            "POST",
            &w.url(&format!("Workers/{}", w.alice)),
            json!({"Attributes": "{not json"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], 20001);
}

#[tokio::test]
async fn a_worker_token_cannot_touch_another_worker_but_a_supervisor_can() {
    let w = world().await;
    let url = w.url(&format!("Workers/{}", w.bob));
    let change = json!({"Attributes": {"hacked": true}});
    let t = w.token(w.alice, "worker");
    refused(
        w.envelope(&t, "POST", &url, change.clone()).await,
        403,
        20403,
    );
    refused(w.envelope(&t, "GET", &url, json!({})).await, 403, 20403);
    assert_eq!(w.attributes(w.bob).await, "{}", "nothing changed");

    let s = w.token(w.alice, "supervisor");
    let (status, body) = w.envelope(&s, "POST", &url, change).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(w.attributes(w.bob).await, r#"{"hacked":true}"#);
    // Even a supervisor changes only activity and attributes, not the name.
    let (status, _) = w
        .envelope(&s, "POST", &url, json!({"FriendlyName": "Robert"}))
        .await;
    assert_eq!(status, 200);
    let name =
        w.h.read({
            let bob = w.bob;
            move |ws| ws.workers()[&bob].friendly_name.to_string()
        })
        .await
        .expect("read");
    assert_eq!(name, "Bob");
}

#[tokio::test]
async fn bad_tokens_are_refused_with_twilio_codes() {
    let w = world().await;
    let url = w.url(&format!("Workers/{}", w.alice));
    let get = |t: String| {
        let w = &w;
        let url = url.clone();
        async move { w.envelope(&t, "GET", &url, json!({})).await }
    };
    refused(get("not a token".into()).await, 401, 20101);
    refused(
        get(jwt(&"x".repeat(32), w.claims(w.alice, "worker"))).await,
        401,
        20107,
    );

    let mut expired = w.claims(w.alice, "worker");
    expired["exp"] = json!(now_ms() / 1000 - 120);
    refused(get(jwt(&w.secret, expired)).await, 401, 20104);

    let mut early = w.claims(w.alice, "worker");
    early["nbf"] = json!(now_ms() / 1000 + 600);
    refused(get(jwt(&w.secret, early)).await, 401, 20105);

    // A key used for another account than its own.
    let other = w.hub.create_account("B".into(), None).await.expect("b").sid;
    let mut foreign = w.claims(w.alice, "worker");
    foreign["sub"] = json!(other.to_string());
    refused(get(jwt(&w.secret, foreign)).await, 401, 20103);

    // A workspace the account does not own.
    let theirs = w
        .hub
        .create_workspace(
            other,
            NewWorkspace {
                friendly_name: "Theirs".into(),
                ..Default::default()
            },
            |ws| ws.sid(),
        )
        .await
        .expect("ws");
    let mut elsewhere = w.claims(w.alice, "worker");
    elsewhere["grants"]["task_router"]["workspace_sid"] = json!(theirs.to_string());
    refused(get(jwt(&w.secret, elsewhere)).await, 401, 20106);

    let mut no_worker = w.claims(w.alice, "worker");
    no_worker["grants"]["task_router"]
        .as_object_mut()
        .expect("grant")
        .remove("worker_sid");
    refused(get(jwt(&w.secret, no_worker)).await, 401, 20106);

    let mut odd_role = w.claims(w.alice, "worker");
    odd_role["grants"]["task_router"]["role"] = json!("root");
    refused(get(jwt(&w.secret, odd_role)).await, 401, 20106);

    // The token's workspace is the only one its envelopes reach.
    let t = w.token(w.alice, "admin");
    let (status, _) = w
        .envelope(
            &t,
            "GET",
            &format!("Workspaces/{theirs}/Activities"),
            json!({}),
        )
        .await;
    assert_eq!(status, 403);

    // A deleted key signs nothing any more.
    assert!(
        w.hub
            .delete_api_key(w.account, w.key)
            .await
            .expect("delete")
    );
    refused(get(w.token(w.alice, "worker")).await, 401, 20103);
}

#[tokio::test]
async fn malformed_envelopes_and_voice_calls_get_clear_errors() {
    let w = world().await;
    let req = Request::post("/v1/wschannels")
        .body(Body::from("{\"url\": 1"))
        .expect("request");
    refused(w.send(req).await, 400, 20001);
    let t = w.token(w.alice, "worker");
    let (status, body) = w
        .envelope(
            &t,
            "POST",
            &w.url(&format!(
                "Workers/{}/Reservations/WR0123456789abcdef0123456789abcdef",
                w.alice
            )),
            json!({"Instruction": "conference", "To": "client:x"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("telephony")),
        "{body}"
    );
    let (status, _) = w
        .envelope(
            &t,
            "POST",
            &w.url(&format!("Workers/{}/Transfers", w.alice)),
            json!({"TaskSid": "WT0123456789abcdef0123456789abcdef"}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = w.envelope(&t, "GET", &w.url("Workflows"), json!({})).await;
    assert_eq!(status, 404, "routes the SDK does not use are not served");
    let (status, _) = w
        .envelope(&t, "DELETE", &w.url("Activities"), json!({}))
        .await;
    assert_eq!(status, 405);
    let plain = Request::get("/v1/wschannels")
        .body(Body::empty())
        .expect("req");
    let (status, body) = w.send(plain).await;
    assert_eq!(status, 400, "a GET that is not a websocket upgrade: {body}");
}

#[tokio::test]
async fn tasks_are_reachable_only_through_the_worker_holding_them() {
    let w = world().await;
    let t = w.token(w.alice, "worker");
    let available =
        w.h.read(|ws| {
            ws.activities()
                .values()
                .find(|a| a.available)
                .expect("available")
                .sid
        })
        .await
        .expect("read");
    // A task routed straight at Alice (what worker.createTask does for outbound work).
    let (status, body) = w
        .envelope(
            &t,
            "POST",
            &w.url("Tasks"),
            json!({"RoutingTarget": w.bob.to_string(), "Attributes": {"to": "x"}}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = w
        .envelope(
            &t,
            "POST",
            &w.url(&format!("Workers/{}", w.alice)),
            json!({"ActivitySid": available.to_string()}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Creating one aimed at Alice is allowed to her token; the router's own answer (Taskyard
    // does not route a task straight to a worker yet) comes back as REST gives it.
    let (status, body) = w
        .envelope(
            &t,
            "POST",
            &w.url("Tasks"),
            json!({"RoutingTarget": w.alice.to_string(), "Attributes": {"to": "x"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], 20001);
    // A task routed by a workflow reaches Alice, the only available worker.
    let queue =
        w.h.apply(
            Command::CreateTaskQueue(TaskQueueParams {
                friendly_name: Some("Everyone".into()),
                target_workers: Some("1 == 1".into()),
                ..Default::default()
            }),
            |_, a| a.sid,
        )
        .await
        .expect("queue");
    let config =
        json!({"task_routing": {"filters": [], "default_filter": {"queue": queue.to_string()}}});
    let workflow =
        w.h.apply(
            Command::CreateWorkflow(WorkflowParams {
                friendly_name: Some("Incoming".into()),
                configuration: Some(config.to_string()),
                assignment_callback_url: None,
                fallback_assignment_callback_url: None,
                task_reservation_timeout: Some(120),
            }),
            |_, a| a.sid,
        )
        .await
        .expect("workflow");
    let task =
        w.h.apply(
            Command::CreateTask(CreateTask {
                attributes: Some(r#"{"to":"x"}"#.into()),
                workflow_sid: Some(workflow),
                ..Default::default()
            }),
            |_, a| a.sid,
        )
        .await
        .expect("task")
        .to_string();

    let (status, body) = w
        .envelope(
            &t,
            "GET",
            &w.url(&format!("Workers/{}/Reservations", w.alice)),
            json!({"Active": "true", "PageSize": 1000}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let list = body["payload"]["contents"]
        .as_array()
        .expect("list")
        .clone();
    assert_eq!(list.len(), 1, "{body}");
    assert_eq!(list[0]["task"]["sid"], task.as_str());
    assert_eq!(list[0]["reservation_status"], "pending");
    let res = list[0]["sid"].as_str().expect("sid").to_string();

    // Bob holds nothing of it.
    let bob = w.token(w.bob, "worker");
    refused(
        w.envelope(
            &bob,
            "POST",
            &w.url(&format!("Tasks/{task}")),
            json!({"AssignmentStatus": "completed", "Reason": "x"}),
        )
        .await,
        403,
        20403,
    );
    refused(
        w.envelope(
            &bob,
            "GET",
            &w.url(&format!("Workers/{}/Reservations/{res}", w.alice)),
            json!({}),
        )
        .await,
        403,
        20403,
    );

    let (status, body) = w
        .envelope(
            &t,
            "POST",
            &w.url(&format!("Workers/{}/Reservations/{res}", w.alice)),
            json!({"ReservationStatus": "accepted"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payload"]["reservation_status"], "accepted");
    assert_eq!(body["payload"]["task"]["assignment_status"], "assigned");

    let (status, body) = w
        .envelope(
            &t,
            "POST",
            &w.url(&format!("Tasks/{task}")),
            json!({"AssignmentStatus": "completed", "Reason": "done"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payload"]["assignment_status"], "completed");
    assert_eq!(body["payload"]["reason"], "done");
    // And REST agrees.
    let task_sid: Sid = task.parse().expect("sid");
    let status =
        w.h.read(move |ws| ws.tasks()[&task_sid].assignment_status)
            .await
            .expect("read");
    assert_eq!(status.as_str(), "completed");
    // A state change REST refuses is refused here too, with REST's answer.
    let (status, body) = w
        .envelope(
            &t,
            "POST",
            &w.url(&format!("Workers/{}/Reservations/{res}", w.alice)),
            json!({"ReservationStatus": "accepted"}),
        )
        .await;
    assert!(status >= 400, "{body}");
    assert!(body["code"].is_u64());
}
