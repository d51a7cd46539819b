//! In-process HTTP tests: the real router, real workspace actors and a real SQLite store in a
//! temporary directory, driven through `tower::ServiceExt::oneshot` with Twilio-style
//! requests (HTTP Basic auth, form bodies) and checked field by field.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use serde_json::Value;
use taskyard_api::{App, router};
use taskyard_hub::Hub;
use taskyard_store::sqlite::{Durability, SqliteStore};
use tower::ServiceExt;

const BASE: &str = "http://taskyard.test";

struct Client {
    router: Router,
    auth: String,
    _dir: tempfile::TempDir,
    hub: Hub,
}

struct Reply {
    status: StatusCode,
    body: Value,
    etag: Option<String>,
}

impl Reply {
    #[track_caller]
    fn ok(self, want: StatusCode) -> Value {
        assert_eq!(self.status, want, "unexpected status; body: {}", self.body);
        self.body
    }

    /// Asserts a Twilio error document with this status and code.
    #[track_caller]
    fn error(self, status: u16, code: u64) -> String {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["code"], code, "body: {}", self.body);
        assert_eq!(self.body["status"], status);
        assert_eq!(
            self.body["more_info"],
            format!("https://www.twilio.com/docs/errors/{code}")
        );
        self.body["message"].as_str().expect("message").to_string()
    }
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

impl Client {
    async fn new() -> Client {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), Durability::Normal).expect("store");
        let hub = Hub::start(Box::new(store)).expect("hub");
        let account = hub
            .create_account("Main".into(), None)
            .await
            .expect("account");
        Client {
            router: router(App::new(hub.clone(), BASE, false)),
            auth: basic(&account.sid.to_string(), &account.auth_token),
            _dir: dir,
            hub,
        }
    }

    /// The same server, seen by another account.
    async fn other_account(&self) -> Client {
        let account = self
            .hub
            .create_account("Other".into(), None)
            .await
            .expect("account");
        Client {
            router: self.router.clone(),
            auth: basic(&account.sid.to_string(), &account.auth_token),
            _dir: tempfile::tempdir().expect("tempdir"),
            hub: self.hub.clone(),
        }
    }

    async fn send(
        &self,
        method: &str,
        uri: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Reply {
        let uri = uri.strip_prefix(BASE).unwrap_or(uri);
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, &self.auth)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .router
            .clone()
            .oneshot(req.body(Body::from(body)).expect("request"))
            .await
            .expect("infallible");
        let status = resp.status();
        let etag = resp
            .headers()
            .get(header::ETAG)
            .map(|v| v.to_str().expect("ascii").to_string());
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        Reply { status, body, etag }
    }

    async fn get(&self, uri: &str) -> Reply {
        self.send("GET", uri, &[], &[]).await
    }
    async fn post(&self, uri: &str, form: &[(&str, &str)]) -> Reply {
        self.send("POST", uri, form, &[]).await
    }
    async fn delete(&self, uri: &str) -> Reply {
        self.send("DELETE", uri, &[], &[]).await
    }

    /// Creates a workspace and returns its path (`/v1/Workspaces/WS…`).
    async fn workspace(&self, name: &str) -> String {
        let ws = self
            .post("/v1/Workspaces", &[("FriendlyName", name)])
            .await
            .ok(StatusCode::CREATED);
        format!("/v1/Workspaces/{}", ws["sid"].as_str().expect("sid"))
    }

    /// Every item of a list, following `next_page_url` like the helper libraries do.
    async fn list_all(&self, uri: &str, key: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut next = Some(uri.to_string());
        while let Some(uri) = next {
            let page = self.get(&uri).await.ok(StatusCode::OK);
            assert_eq!(page["meta"]["key"], key);
            out.extend(page[key].as_array().expect("items").iter().cloned());
            next = page["meta"]["next_page_url"].as_str().map(str::to_string);
        }
        out
    }
}

fn sid(v: &Value) -> String {
    v["sid"].as_str().expect("sid").to_string()
}

fn names(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|i| i["friendly_name"].as_str().expect("name"))
        .collect()
}

#[tokio::test]
async fn workspace_lifecycle_with_twilio_defaults() {
    let c = Client::new().await;
    let ws = c
        .post(
            "/v1/Workspaces",
            &[
                ("FriendlyName", "Support"),
                ("EventCallbackUrl", "https://example.com/events"),
                ("EventsFilter", "task.created,worker.activity.update"),
                ("PrioritizeQueueOrder", "LIFO"),
            ],
        )
        .await
        .ok(StatusCode::CREATED);
    let path = format!("/v1/Workspaces/{}", sid(&ws));
    assert!(sid(&ws).starts_with("WS") && sid(&ws).len() == 34);
    assert_eq!(ws["url"], format!("{BASE}{path}"));
    assert_eq!(ws["links"]["workers"], format!("{BASE}{path}/Workers"));
    assert_eq!(ws["multi_task_enabled"], true);
    assert_eq!(ws["prioritize_queue_order"], "LIFO");
    assert_eq!(ws["default_activity_name"], "Offline");
    assert_eq!(ws["timeout_activity_name"], "Offline");
    assert_eq!(ws["event_callback_url"], "https://example.com/events");
    assert!(ws["date_created"].as_str().expect("date").ends_with('Z'));

    let activities = c
        .list_all(&format!("{path}/Activities"), "activities")
        .await;
    assert_eq!(
        names(&activities),
        vec!["Offline", "Available", "Unavailable"]
    );
    let avail: Vec<_> = activities
        .iter()
        .map(|a| a["available"].as_bool().expect("bool"))
        .collect();
    assert_eq!(avail, vec![false, true, false]);
    let channels = c
        .list_all(&format!("{path}/TaskChannels"), "channels")
        .await;
    let uniques: Vec<_> = channels
        .iter()
        .map(|c| c["unique_name"].as_str().expect("u"))
        .collect();
    assert_eq!(uniques, vec!["default", "voice", "sms", "chat", "video"]);

    let available = sid(&activities[1]);
    let updated = c
        .post(
            &path,
            &[
                ("FriendlyName", "Renamed"),
                ("DefaultActivitySid", &available),
                ("EventCallbackUrl", ""),
            ],
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(updated["friendly_name"], "Renamed");
    assert_eq!(updated["default_activity_name"], "Available");
    assert_eq!(
        updated["event_callback_url"],
        Value::Null,
        "an empty URL clears it"
    );
    assert_eq!(
        c.get(&path).await.ok(StatusCode::OK)["friendly_name"],
        "Renamed"
    );

    let listed = c
        .list_all("/v1/Workspaces?FriendlyName=Renamed", "workspaces")
        .await;
    assert_eq!(listed.len(), 1);
    assert!(
        c.list_all("/v1/Workspaces?FriendlyName=Nope", "workspaces")
            .await
            .is_empty()
    );

    assert_eq!(c.delete(&path).await.status, StatusCode::NO_CONTENT);
    c.get(&path).await.error(404, 20404);
    c.get(&format!("{path}/Activities")).await.error(404, 20404);
    assert!(c.list_all("/v1/Workspaces", "workspaces").await.is_empty());
}

#[tokio::test]
async fn fifo_template_creates_a_queue_and_a_workflow() {
    let c = Client::new().await;
    let ws = c
        .post(
            "/v1/Workspaces",
            &[("FriendlyName", "T"), ("Template", "FIFO")],
        )
        .await
        .ok(StatusCode::CREATED);
    let path = format!("/v1/Workspaces/{}", sid(&ws));
    let queues = c
        .list_all(&format!("{path}/TaskQueues"), "task_queues")
        .await;
    assert_eq!(queues.len(), 1);
    assert_eq!(queues[0]["target_workers"], "1==1");
    let flows = c.list_all(&format!("{path}/Workflows"), "workflows").await;
    assert_eq!(flows.len(), 1);
    let config: Value =
        serde_json::from_str(flows[0]["configuration"].as_str().expect("text")).expect("json");
    assert_eq!(
        config["task_routing"]["default_filter"]["queue"],
        queues[0]["sid"]
    );
    c.post(
        "/v1/Workspaces",
        &[("FriendlyName", "T"), ("Template", "LIFO")],
    )
    .await
    .error(400, 20001);
}

#[tokio::test]
async fn authentication_and_account_isolation() {
    let c = Client::new().await;
    let path = c.workspace("Mine").await;
    let no_auth = c
        .router
        .clone()
        .oneshot(
            Request::builder()
                .uri(&path)
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("resp");
    assert_eq!(no_auth.status(), StatusCode::UNAUTHORIZED);
    assert!(no_auth.headers().contains_key(header::WWW_AUTHENTICATE));

    let mut wrong = Client::new().await;
    wrong.router = c.router.clone();
    wrong.get(&path).await.error(401, 20003);

    let other = c.other_account().await;
    other.get(&path).await.error(404, 20404);
    other
        .post(&format!("{path}/Activities"), &[("FriendlyName", "x")])
        .await
        .error(404, 20404);
    assert!(
        other
            .list_all("/v1/Workspaces", "workspaces")
            .await
            .is_empty()
    );

    // Subaccounts through the 2010-04-01 API get their own credentials and workspaces.
    let sub = c
        .post("/2010-04-01/Accounts.json", &[("FriendlyName", "Team B")])
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(sub["friendly_name"], "Team B");
    assert!(sub["sid"].as_str().expect("sid").starts_with("AC"));
    let fetched = c
        .get(&format!("/2010-04-01/Accounts/{}.json", sid(&sub)))
        .await
        .ok(StatusCode::OK);
    assert_eq!(fetched["auth_token"], sub["auth_token"]);
    let mut as_sub = Client::new().await;
    as_sub.router = c.router.clone();
    as_sub.auth = basic(&sid(&sub), sub["auth_token"].as_str().expect("token"));
    as_sub.get(&path).await.error(404, 20404);
    let theirs = as_sub.workspace("Theirs").await;
    c.get(&theirs).await.error(404, 20404);
}

#[tokio::test]
async fn activities_crud_filters_and_refusals() {
    let c = Client::new().await;
    let ws = c.workspace("W").await;
    let acts = format!("{ws}/Activities");
    let lunch = c
        .post(&acts, &[("FriendlyName", "Lunch"), ("Available", "yes")])
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(lunch["available"], true);
    assert_eq!(lunch["links"]["workspace"], format!("{BASE}{ws}"));
    let quiet = c
        .post(&acts, &[("FriendlyName", "Quiet")])
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(quiet["available"], false, "Available defaults to false");

    let filtered = c
        .list_all(&format!("{acts}?Available=true"), "activities")
        .await;
    assert_eq!(names(&filtered), vec!["Available", "Lunch"]);
    let filtered = c
        .list_all(&format!("{acts}?FriendlyName=Quiet"), "activities")
        .await;
    assert_eq!(names(&filtered), vec!["Quiet"]);

    let one = format!("{acts}/{}", sid(&lunch));
    let renamed = c
        .post(&one, &[("FriendlyName", "Break"), ("Available", "false")])
        .await;
    let renamed = renamed.ok(StatusCode::OK);
    assert_eq!(renamed["friendly_name"], "Break");
    assert_eq!(
        renamed["available"], true,
        "availability cannot change after creation"
    );

    let default = c.get(&ws).await.ok(StatusCode::OK)["default_activity_sid"]
        .as_str()
        .expect("sid")
        .to_string();
    let msg = c
        .delete(&format!("{acts}/{default}"))
        .await
        .error(400, 20001);
    assert!(msg.contains("default activity"), "{msg}");

    c.post(
        &format!("{ws}/Workers"),
        &[("FriendlyName", "Ann"), ("ActivitySid", &sid(&quiet))],
    )
    .await
    .ok(StatusCode::CREATED);
    let msg = c
        .delete(&format!("{acts}/{}", sid(&quiet)))
        .await
        .error(400, 20001);
    assert!(msg.contains("worker"), "{msg}");

    assert_eq!(c.delete(&one).await.status, StatusCode::NO_CONTENT);
    c.get(&one).await.error(404, 20404);
    c.delete(&one).await.error(404, 20404);
    c.post(&acts, &[]).await.error(400, 20001);
    c.post(&acts, &[("FriendlyName", &"x".repeat(65))])
        .await
        .error(400, 20001);
}

#[tokio::test]
async fn task_channels_by_sid_or_unique_name() {
    let c = Client::new().await;
    let ws = c.workspace("W").await;
    let worker = c
        .post(&format!("{ws}/Workers"), &[("FriendlyName", "Ann")])
        .await
        .ok(StatusCode::CREATED);
    let chans = format!("{ws}/TaskChannels");
    let email = c
        .post(
            &chans,
            &[
                ("FriendlyName", "Email"),
                ("UniqueName", "email"),
                ("ChannelOptimizedRouting", "true"),
            ],
        )
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(email["channel_optimized_routing"], true);
    c.post(
        &chans,
        &[("FriendlyName", "Again"), ("UniqueName", "email")],
    )
    .await
    .error(409, 20409);
    c.post(
        &chans,
        &[("FriendlyName", "Bad"), ("UniqueName", "has-hyphen")],
    )
    .await
    .error(400, 20001);
    c.post(&chans, &[("FriendlyName", "Bad"), ("UniqueName", "9lives")])
        .await
        .error(400, 20001);

    let by_name = c.get(&format!("{chans}/email")).await.ok(StatusCode::OK);
    assert_eq!(sid(&by_name), sid(&email));
    let upd = c
        .post(&format!("{chans}/email"), &[("FriendlyName", "E-mail")])
        .await
        .ok(StatusCode::OK);
    assert_eq!(upd["friendly_name"], "E-mail");

    // Existing workers gained a channel for it, and lose it when it is deleted.
    let wc = format!("{ws}/Workers/{}/Channels", sid(&worker));
    assert_eq!(c.list_all(&wc, "channels").await.len(), 6);
    assert_eq!(
        c.delete(&format!("{chans}/{}", sid(&email))).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(c.list_all(&wc, "channels").await.len(), 5);
    c.get(&format!("{chans}/email")).await.error(404, 20404);
}

#[tokio::test]
async fn workers_crud_filters_etags_and_errors() {
    let c = Client::new().await;
    let ws = c.workspace("W").await;
    let workers = format!("{ws}/Workers");
    let acts = c.list_all(&format!("{ws}/Activities"), "activities").await;
    let available = sid(&acts[1]);

    let created = c
        .post(
            &workers,
            &[
                ("FriendlyName", "Alice"),
                ("Attributes", r#"{"languages": ["en", "es"]}"#),
            ],
        )
        .await;
    assert_eq!(created.etag.as_deref(), Some("\"0\""));
    let alice = created.ok(StatusCode::CREATED);
    assert_eq!(alice["activity_name"], "Offline");
    assert_eq!(alice["available"], false);
    assert_eq!(
        alice["attributes"], r#"{"languages": ["en", "es"]}"#,
        "attributes come back verbatim"
    );
    assert_eq!(
        alice["links"]["channels"],
        format!("{BASE}{workers}/{}/Channels", sid(&alice))
    );
    assert_eq!(
        alice["links"]["statistics"],
        format!("{BASE}{workers}/Statistics")
    );
    let bob = c
        .post(
            &workers,
            &[("FriendlyName", "Bob"), ("ActivitySid", &available)],
        )
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(bob["attributes"], "{}");
    assert_eq!(bob["available"], true);

    c.post(&workers, &[("FriendlyName", "ALICE")])
        .await
        .error(409, 20409);
    let before = c
        .get(&format!("{workers}/{}", sid(&alice)))
        .await
        .ok(StatusCode::OK);
    for bad in [
        vec![("Attributes", "{bad")],
        vec![("Attributes", "[1,2]")],
        vec![("Attributes", "x".repeat(4100).leak() as &str)],
        vec![("ActivitySid", "WA00000000000000000000000000000000")],
        vec![("ActivitySid", "nope")],
        vec![("FriendlyName", "Bob")],
        vec![
            ("RejectPendingReservations", "true"),
            ("ActivitySid", available.as_str()),
        ],
    ] {
        let r = c.post(&format!("{workers}/{}", sid(&alice)), &bad).await;
        assert!(
            r.status.is_client_error(),
            "{bad:?} should fail: {}",
            r.body
        );
    }
    let after = c
        .get(&format!("{workers}/{}", sid(&alice)))
        .await
        .ok(StatusCode::OK);
    assert_eq!(before, after, "failed updates change nothing");

    let listed = c.list_all(&workers, "workers").await;
    assert_eq!(names(&listed), vec!["Alice", "Bob"]);
    assert_eq!(
        listed[0]["attributes"],
        Value::Null,
        "lists hide attributes"
    );
    assert_eq!(
        names(
            &c.list_all(&format!("{workers}?Available=1"), "workers")
                .await
        ),
        vec!["Bob"]
    );
    assert_eq!(
        names(
            &c.list_all(&format!("{workers}?ActivityName=Offline"), "workers")
                .await
        ),
        vec!["Alice"]
    );
    assert_eq!(
        names(
            &c.list_all(&format!("{workers}?ActivitySid={available}"), "workers")
                .await
        ),
        vec!["Bob"]
    );
    assert_eq!(
        names(
            &c.list_all(&format!("{workers}?FriendlyName=bob"), "workers")
                .await
        ),
        vec!["Bob"]
    );

    // If-Match: a stale version is refused with 412, the current one accepted.
    let one = format!("{workers}/{}", sid(&alice));
    c.send(
        "POST",
        &one,
        &[("FriendlyName", "Al")],
        &[("If-Match", "\"7\"")],
    )
    .await
    .error(412, 20412);
    let moved = c
        .send(
            "POST",
            &one,
            &[("ActivitySid", &available)],
            &[("If-Match", "\"0\"")],
        )
        .await;
    assert_eq!(moved.etag.as_deref(), Some("\"1\""));
    let moved = moved.ok(StatusCode::OK);
    assert_eq!(moved["activity_name"], "Available");
    assert_eq!(moved["available"], true);
    c.send("DELETE", &one, &[], &[("If-Match", "\"0\"")])
        .await
        .error(412, 20412);
    assert_eq!(c.delete(&one).await.status, StatusCode::NO_CONTENT);
    c.get(&one).await.error(404, 20404);
    c.get(&format!("{workers}/WKnothex"))
        .await
        .error(404, 20404);
    // The name is free again.
    c.post(&workers, &[("FriendlyName", "alice")])
        .await
        .ok(StatusCode::CREATED);
}

#[tokio::test]
async fn worker_channels_list_fetch_update() {
    let c = Client::new().await;
    let ws = c.workspace("W").await;
    let w = c
        .post(&format!("{ws}/Workers"), &[("FriendlyName", "Ann")])
        .await
        .ok(StatusCode::CREATED);
    let base = format!("{ws}/Workers/{}/Channels", sid(&w));
    let all = c.list_all(&base, "channels").await;
    assert_eq!(all.len(), 5);
    for ch in &all {
        assert_eq!(ch["configured_capacity"], 1);
        assert_eq!(ch["available"], true);
        assert_eq!(ch["assigned_tasks"], 0);
        assert_eq!(ch["available_capacity_percentage"], 100);
        assert_eq!(ch["worker_sid"], w["sid"]);
    }
    let voice = c.get(&format!("{base}/voice")).await.ok(StatusCode::OK);
    assert_eq!(voice["task_channel_unique_name"], "voice");
    let by_sid = c
        .get(&format!("{base}/{}", sid(&voice)))
        .await
        .ok(StatusCode::OK);
    assert_eq!(by_sid, voice);
    let upd = c
        .post(
            &format!("{base}/voice"),
            &[("Capacity", "3"), ("Available", "false")],
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(upd["configured_capacity"], 3);
    assert_eq!(upd["available"], false);
    let zero = c
        .post(&format!("{base}/sms"), &[("Capacity", "0")])
        .await
        .ok(StatusCode::OK);
    assert_eq!(zero["available_capacity_percentage"], 0);
    c.post(&format!("{base}/voice"), &[("Capacity", "-1")])
        .await
        .error(400, 20001);
    c.post(&format!("{base}/voice"), &[("Available", "maybe")])
        .await
        .error(400, 20001);
    c.get(&format!("{base}/fax")).await.error(404, 20404);
}

#[tokio::test]
async fn task_queues_validate_and_refuse_deletion_while_routed_to() {
    let c = Client::new().await;
    let ws = c.workspace("W").await;
    let queues = format!("{ws}/TaskQueues");
    let acts = c.list_all(&format!("{ws}/Activities"), "activities").await;
    let q = c
        .post(&queues, &[("FriendlyName", "Sales")])
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(q["target_workers"], "1==1");
    assert_eq!(q["max_reserved_workers"], 1);
    assert_eq!(q["task_order"], "FIFO");
    assert_eq!(q["reservation_activity_sid"], Value::Null);
    assert_eq!(
        q["links"]["statistics"],
        format!("{BASE}{queues}/{}/Statistics", sid(&q))
    );

    let full = c
        .post(
            &queues,
            &[
                ("FriendlyName", "Spanish"),
                ("TargetWorkers", r#"languages HAS "es""#),
                ("MaxReservedWorkers", "50"),
                ("TaskOrder", "LIFO"),
                ("ReservationActivitySid", &sid(&acts[2])),
                ("AssignmentActivitySid", &sid(&acts[2])),
            ],
        )
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(full["reservation_activity_name"], "Unavailable");
    assert_eq!(full["assignment_activity_name"], "Unavailable");
    for bad in [
        vec![("FriendlyName", "x"), ("MaxReservedWorkers", "51")],
        vec![("FriendlyName", "x"), ("MaxReservedWorkers", "0")],
        vec![("FriendlyName", "x"), ("TaskOrder", "RANDOM")],
        vec![
            ("FriendlyName", "x"),
            (
                "ReservationActivitySid",
                "WA00000000000000000000000000000000",
            ),
        ],
        vec![("TargetWorkers", "1==1")],
    ] {
        c.post(&queues, &bad).await.error(400, 20001);
    }
    let one = format!("{queues}/{}", sid(&q));
    let upd = c
        .post(
            &one,
            &[
                ("TargetWorkers", "skills HAS 'sales'"),
                ("FriendlyName", "Sales 2"),
            ],
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(upd["target_workers"], "skills HAS 'sales'");
    assert_eq!(upd["max_reserved_workers"], 1, "untouched fields stay");
    assert_eq!(
        names(
            &c.list_all(&format!("{queues}?FriendlyName=Spanish"), "task_queues")
                .await
        ),
        vec!["Spanish"]
    );

    let config = format!(
        r#"{{"task_routing":{{"filters":[{{"expression":"1==1","targets":[{{"queue":"{}"}}]}}]}}}}"#,
        sid(&q)
    );
    c.post(
        &format!("{ws}/Workflows"),
        &[("FriendlyName", "F"), ("Configuration", &config)],
    )
    .await
    .ok(StatusCode::CREATED);
    let msg = c.delete(&one).await.error(400, 20001);
    assert!(msg.contains("Workflow"), "{msg}");
    assert_eq!(
        c.delete(&format!("{queues}/{}", sid(&full))).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn workflows_validate_their_configuration() {
    let c = Client::new().await;
    let ws = c.workspace("W").await;
    let q = c
        .post(&format!("{ws}/TaskQueues"), &[("FriendlyName", "Q")])
        .await
        .ok(StatusCode::CREATED);
    let flows = format!("{ws}/Workflows");
    let config = format!(
        r#"{{"task_routing":{{"filters":[{{"filter_friendly_name":"Spanish","expression":"selected_language == \"es\"","targets":[{{"queue":"{q}","priority":"5","timeout":30}}]}}],"default_filter":{{"queue":"{q}"}}}}}}"#,
        q = sid(&q)
    );
    let wf = c
        .post(
            &flows,
            &[
                ("FriendlyName", "Incoming"),
                ("Configuration", &config),
                ("AssignmentCallbackUrl", "https://example.com/assign"),
                ("TaskReservationTimeout", "1200"),
            ],
        )
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(wf["configuration"], config.as_str());
    assert_eq!(wf["task_reservation_timeout"], 1200);
    assert_eq!(wf["document_content_type"], "application/json");
    assert_eq!(wf["assignment_callback_url"], "https://example.com/assign");
    assert_eq!(wf["fallback_assignment_callback_url"], Value::Null);

    let missing_queue = r#"{"task_routing":{"filters":[{"expression":"1==1","targets":[{"queue":"WQ00000000000000000000000000000000"}]}]}}"#;
    for bad in [
        vec![("FriendlyName", "x"), ("Configuration", "{not json")],
        vec![("FriendlyName", "x"), ("Configuration", missing_queue)],
        vec![("FriendlyName", "x")],
        vec![
            ("FriendlyName", "x"),
            ("Configuration", &config),
            ("TaskReservationTimeout", "86401"),
        ],
        vec![
            ("FriendlyName", "x"),
            ("Configuration", &config),
            ("AssignmentCallbackUrl", "ftp://x"),
        ],
    ] {
        c.post(&flows, &bad).await.error(400, 20001);
    }
    let one = format!("{flows}/{}", sid(&wf));
    c.post(&one, &[("Configuration", "[]")])
        .await
        .error(400, 20001);
    let upd = c
        .post(
            &one,
            &[
                ("FriendlyName", "Renamed"),
                ("ReEvaluateTasks", "true"),
                ("AssignmentCallbackUrl", ""),
            ],
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(upd["friendly_name"], "Renamed");
    assert_eq!(upd["configuration"], config.as_str());
    assert_eq!(upd["assignment_callback_url"], Value::Null);
    assert_eq!(c.delete(&one).await.status, StatusCode::NO_CONTENT);
    c.get(&one).await.error(404, 20404);
}

#[tokio::test]
async fn paging_follows_next_and_previous_urls() {
    let c = Client::new().await;
    let ws = c.workspace("W").await;
    for i in 0..7 {
        c.post(
            &format!("{ws}/Workers"),
            &[("FriendlyName", &format!("w{i}"))],
        )
        .await
        .ok(StatusCode::CREATED);
    }
    let first = c
        .get(&format!("{ws}/Workers?PageSize=3"))
        .await
        .ok(StatusCode::OK);
    let meta = &first["meta"];
    assert_eq!(meta["page_size"], 3);
    assert_eq!(meta["page"], 0);
    assert_eq!(meta["key"], "workers");
    assert_eq!(meta["previous_page_url"], Value::Null);
    assert_eq!(
        meta["first_page_url"],
        format!("{BASE}{ws}/Workers?PageSize=3&Page=0")
    );
    let next = meta["next_page_url"].as_str().expect("next").to_string();
    assert!(next.starts_with(BASE) && next.contains("PageToken="));
    let second = c.get(&next).await.ok(StatusCode::OK);
    assert_eq!(
        names(second["workers"].as_array().expect("items")),
        vec!["w3", "w4", "w5"]
    );
    let back = c
        .get(
            second["meta"]["previous_page_url"]
                .as_str()
                .expect("previous"),
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        names(back["workers"].as_array().expect("items")),
        vec!["w0", "w1", "w2"]
    );
    let all = c
        .list_all(&format!("{ws}/Workers?PageSize=3"), "workers")
        .await;
    assert_eq!(all.len(), 7);
    c.get(&format!("{ws}/Workers?PageSize=1001"))
        .await
        .error(400, 20001);
    c.get(&format!("{ws}/Workers?Page=3"))
        .await
        .error(400, 20001);
    c.get(&format!("{ws}/Workers?Ordering=FriendlyName:desc"))
        .await
        .error(400, 20001);
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_twilio_errors() {
    let c = Client::new().await;
    let ws = c.workspace("W").await;
    c.get("/v1/Nothing").await.error(404, 20404);
    c.get(&format!("{ws}/Gadgets")).await.error(404, 20404);
    c.send("PUT", &format!("{ws}/Workers"), &[], &[])
        .await
        .error(405, 20004);
    c.delete("/v1/Workspaces").await.error(405, 20004);
    c.delete(&format!("{ws}/Statistics"))
        .await
        .error(405, 20004);
    c.get(&format!("{ws}/Events/EV00000000000000000000000000000000"))
        .await
        .error(404, 20404);
}

#[tokio::test]
async fn queue_membership_follows_expressions_workers_and_attributes() {
    let c = Client::new().await;
    let ws = c.workspace("W").await;
    let workers = format!("{ws}/Workers");
    let queues = format!("{ws}/TaskQueues");
    let mut created = Vec::new();
    for (name, attrs) in [
        ("Alice", r#"{"languages": ["en", "es"], "level": 5}"#),
        ("Bob", r#"{"languages": ["en"], "level": "2"}"#),
    ] {
        created.push(
            c.post(&workers, &[("FriendlyName", name), ("Attributes", attrs)])
                .await
                .ok(StatusCode::CREATED),
        );
    }
    let alice = created[0].clone();
    let spanish = c
        .post(
            &queues,
            &[
                ("FriendlyName", "Spanish"),
                ("TargetWorkers", r#"languages HAS "es""#),
            ],
        )
        .await
        .ok(StatusCode::CREATED);
    c.post(
        &queues,
        &[
            ("FriendlyName", "English"),
            ("TargetWorkers", "languages HAS 'en'"),
        ],
    )
    .await
    .ok(StatusCode::CREATED);
    c.post(
        &queues,
        &[("FriendlyName", "Nobody"), ("TargetWorkers", "")],
    )
    .await
    .ok(StatusCode::CREATED);
    let members = |q: &str| format!("{workers}?TaskQueueName={q}");
    assert_eq!(
        names(&c.list_all(&members("Spanish"), "workers").await),
        vec!["Alice"]
    );
    assert_eq!(
        names(&c.list_all(&members("English"), "workers").await),
        vec!["Alice", "Bob"]
    );
    assert!(
        c.list_all(&members("Nobody"), "workers").await.is_empty(),
        "an empty expression matches no one"
    );
    assert!(c.list_all(&members("Missing"), "workers").await.is_empty());
    let by_sid = format!("{workers}?TaskQueueSid={}", sid(&spanish));
    assert_eq!(names(&c.list_all(&by_sid, "workers").await), vec!["Alice"]);

    // A new worker, changed attributes and a changed expression all move membership.
    c.post(
        &workers,
        &[
            ("FriendlyName", "Carla"),
            ("Attributes", r#"{"languages": ["es"]}"#),
        ],
    )
    .await
    .ok(StatusCode::CREATED);
    assert_eq!(
        names(&c.list_all(&by_sid, "workers").await),
        vec!["Alice", "Carla"]
    );
    c.post(
        &format!("{workers}/{}", sid(&alice)),
        &[("Attributes", r#"{"languages": ["fr"]}"#)],
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(names(&c.list_all(&by_sid, "workers").await), vec!["Carla"]);
    c.post(
        &format!("{queues}/{}", sid(&spanish)),
        &[("TargetWorkers", "1==1")],
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(
        names(&c.list_all(&by_sid, "workers").await),
        vec!["Alice", "Bob", "Carla"]
    );

    // Expression filters on the lists.
    let expr = |e: &str| format!("{workers}?TargetWorkersExpression={}", urlencode(e));
    assert!(c.list_all(&expr("level > 5"), "workers").await.is_empty());
    assert_eq!(
        names(&c.list_all(&expr("level >= 2"), "workers").await),
        vec!["Bob"],
        "\"2\" compares as 2; Alice's level went with her old attributes"
    );
    assert_eq!(
        names(
            &c.list_all(&expr("friendly_name == 'Carla'"), "workers")
                .await
        ),
        vec!["Carla"]
    );
    assert_eq!(
        c.list_all(&expr("activity_name == 'Offline'"), "workers")
            .await
            .len(),
        3
    );
    let msg = c.get(&expr("level >")).await.error(400, 20001);
    assert!(msg.contains("position 7"), "{msg}");

    let eval = |a: &str| format!("{queues}?EvaluateWorkerAttributes={}", urlencode(a));
    assert_eq!(
        names(
            &c.list_all(&eval(r#"{"languages": ["en"]}"#), "task_queues")
                .await
        ),
        vec!["Spanish", "English"]
    );
    assert_eq!(
        names(
            &c.list_all(&eval(r#"{"languages": ["de"]}"#), "task_queues")
                .await
        ),
        vec!["Spanish"]
    );
    c.get(&eval("{not json")).await.error(400, 20001);
    let for_worker = format!("{queues}?WorkerSid={}", sid(&alice));
    assert_eq!(
        names(&c.list_all(&for_worker, "task_queues").await),
        vec!["Spanish"]
    );

    // Bad expressions are refused with the position, and change nothing.
    let msg = c
        .post(
            &queues,
            &[("FriendlyName", "Bad"), ("TargetWorkers", "languages HAS")],
        )
        .await
        .error(400, 20001);
    assert!(
        msg.contains("TargetWorkers") && msg.contains("position 13"),
        "{msg}"
    );
    let msg = c
        .post(
            &format!("{queues}/{}", sid(&spanish)),
            &[("TargetWorkers", "(a == 1")],
        )
        .await
        .error(400, 20001);
    assert!(msg.contains("')'"), "{msg}");
    assert_eq!(
        c.get(&format!("{queues}/{}", sid(&spanish)))
            .await
            .ok(StatusCode::OK)["target_workers"],
        "1==1"
    );
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn workflow_expressions_are_checked_when_saved() {
    let c = Client::new().await;
    let ws = c.workspace("W").await;
    let q = c
        .post(&format!("{ws}/TaskQueues"), &[("FriendlyName", "Q")])
        .await
        .ok(StatusCode::CREATED);
    let flows = format!("{ws}/Workflows");
    let doc = |filter: &str, target: &str| {
        format!(
            r#"{{"task_routing":{{"filters":[{{"expression":"{filter}","targets":[{{"queue":"{}"{target}}}]}}]}}}}"#,
            sid(&q)
        )
    };
    let good = doc(
        "type == 'ticket' AND customer_value == 'Gold'",
        r#","expression":"task.requested_agent == worker.agent_id","order_by":"worker.english_level ASC","skip_if":"workers.available == 0","known_worker_sid":"task.last_agent_sid""#,
    );
    c.post(
        &flows,
        &[("FriendlyName", "Gold"), ("Configuration", &good)],
    )
    .await
    .ok(StatusCode::CREATED);
    for (config, mentions) in [
        (doc("type ==", ""), "filters[0].expression"),
        (
            doc("1==1", r#","expression":"agent == 1""#),
            "task. or worker.",
        ),
        (doc("1==1", r#","skip_if":"busy > 1""#), "workers.available"),
        (
            doc("1==1", r#","order_by":"worker.level SIDEWAYS""#),
            "order_by",
        ),
        (
            doc("1==1", r#","known_worker_friendly_name":"worker.name""#),
            "task attribute",
        ),
    ] {
        let msg = c
            .post(
                &flows,
                &[("FriendlyName", "Bad"), ("Configuration", &config)],
            )
            .await
            .error(400, 20001);
        assert!(msg.contains(mentions), "{msg}");
    }
    assert_eq!(
        c.list_all(&flows, "workflows").await.len(),
        1,
        "nothing was created by the bad requests"
    );
}

/// Sets up the quickstart workspace: Alice (offline) and Bob (available), the Spanish and
/// English queues and the workflow. Returns (workspace path, alice, bob, workflow sid).
async fn quickstart(c: &Client) -> (String, Value, Value, String) {
    let ws = c.workspace("Quickstart").await;
    let acts = c.list_all(&format!("{ws}/Activities"), "activities").await;
    let available = sid(&acts[1]);
    let alice = c
        .post(
            &format!("{ws}/Workers"),
            &[
                ("FriendlyName", "Alice"),
                ("Attributes", r#"{"languages": ["en", "es"]}"#),
            ],
        )
        .await
        .ok(StatusCode::CREATED);
    let bob = c
        .post(
            &format!("{ws}/Workers"),
            &[
                ("FriendlyName", "Bob"),
                ("Attributes", r#"{"languages": ["en"]}"#),
                ("ActivitySid", &available),
            ],
        )
        .await
        .ok(StatusCode::CREATED);
    let mut queues = Vec::new();
    for (name, expr) in [
        ("Customer Care Requests - Spanish", r#"languages HAS "es""#),
        ("Customer Care Requests - English", r#"languages HAS "en""#),
    ] {
        let q = c
            .post(
                &format!("{ws}/TaskQueues"),
                &[("FriendlyName", name), ("TargetWorkers", expr)],
            )
            .await
            .ok(StatusCode::CREATED);
        queues.push(sid(&q));
    }
    let config = format!(
        r#"{{"task_routing":{{"filters":[{{"filter_friendly_name":"Language - Spanish","expression":"selected_language == \"es\"","targets":[{{"queue":"{}"}}]}},{{"filter_friendly_name":"Language - English","expression":"selected_language == \"en\"","targets":[{{"queue":"{}"}}]}}]}}}}"#,
        queues[0], queues[1]
    );
    let flow = c
        .post(
            &format!("{ws}/Workflows"),
            &[
                ("FriendlyName", "Incoming Customer Care Requests"),
                ("Configuration", &config),
                ("TaskReservationTimeout", "1200"),
            ],
        )
        .await
        .ok(StatusCode::CREATED);
    (ws, alice, bob, sid(&flow))
}

#[tokio::test]
async fn route_preview_answers_for_attributes_without_creating_a_task() {
    let c = Client::new().await;
    let (ws, alice, bob, flow) = quickstart(&c).await;
    let preview = format!("{ws}/RoutePreview");
    let body = c
        .post(
            &preview,
            &[
                ("Attributes", r#"{"selected_language": "es"}"#),
                ("WorkflowSid", &flow),
            ],
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(body["matched_filter"], true);
    assert_eq!(body["outcome"], "wait", "Alice is offline: {body}");
    assert_eq!(body["stops_at"], 0);
    let steps = body["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["filter_friendly_name"], "Language - Spanish");
    assert_eq!(
        steps[0]["task_queue_friendly_name"],
        "Customer Care Requests - Spanish"
    );
    assert_eq!(steps[0]["eligible_workers"], 1);
    assert_eq!(steps[0]["workers_with_room"], 0);
    assert_eq!(steps[0]["workers"][0]["sid"], alice["sid"]);
    assert_eq!(steps[0]["workers"][0]["activity_name"], "Offline");

    // English: Bob is available, so a task would be reserved at once.
    let body = c
        .post(
            &preview,
            &[
                ("Attributes", r#"{"selected_language": "en"}"#),
                ("WorkflowSid", &flow),
            ],
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(body["outcome"], "reserve");
    let workers = &body["steps"][0]["workers"];
    assert_eq!(
        workers[0]["sid"], bob["sid"],
        "those with room first: {body}"
    );
    assert_eq!(workers[0]["has_room"], true);
    assert_eq!(body["steps"][0]["eligible_workers"], 2);

    // Nothing matches and there is no default filter: the task would wait without a queue.
    let body = c
        .post(
            &preview,
            &[
                ("Attributes", r#"{"selected_language": "fr"}"#),
                ("WorkflowSid", &flow),
            ],
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        (&body["matched_filter"], &body["outcome"], &body["stops_at"]),
        (&Value::Bool(false), &Value::from("no_queue"), &Value::Null)
    );

    // An unsaved configuration, checked as a save checks it.
    let queues = c.list_all(&format!("{ws}/TaskQueues"), "task_queues").await;
    let config = format!(
        r#"{{"task_routing":{{"filters":[],"default_filter":{{"queue":"{}"}}}}}}"#,
        sid(&queues[0])
    );
    let body = c
        .post(
            &preview,
            &[("Attributes", "{}"), ("Configuration", &config)],
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(body["steps"][0]["filter_friendly_name"], "default");
    assert_eq!(body["workflow_sid"], Value::Null);

    // Bad input: Twilio-shaped 400s, and no task was made by any of this.
    for form in [
        vec![("WorkflowSid", flow.as_str())],
        vec![("Attributes", "{}")],
        vec![
            ("Attributes", "{}"),
            ("WorkflowSid", &flow),
            ("Configuration", &config),
        ],
        vec![("Attributes", "[1]"), ("WorkflowSid", &flow)],
        vec![
            ("Attributes", "{}"),
            ("WorkflowSid", "WW00000000000000000000000000000000"),
        ],
        vec![
            ("Attributes", "{}"),
            ("Configuration", "{\"task_routing\": 1}"),
        ],
        vec![
            ("Attributes", "{}"),
            (
                "Configuration",
                r#"{"task_routing":{"default_filter":{"queue":"WQ00000000000000000000000000000000"}}}"#,
            ),
        ],
        vec![
            ("Attributes", "{}"),
            ("WorkflowSid", &flow),
            ("TaskChannel", "fax"),
        ],
    ] {
        c.post(&preview, &form).await.error(400, 20001);
    }
    let tasks = c.get(&format!("{ws}/Tasks")).await.ok(StatusCode::OK);
    assert_eq!(tasks["tasks"].as_array().map(Vec::len), Some(0));
    // Another account's workspace is not found.
    let other = c.other_account().await;
    other
        .post(&preview, &[("Attributes", "{}"), ("WorkflowSid", &flow)])
        .await
        .error(404, 20404);
}

#[tokio::test]
async fn quickstart_task_is_reserved_when_alice_is_available_and_accepted_over_rest() {
    let c = Client::new().await;
    let (ws, alice, _bob, flow) = quickstart(&c).await;
    let created = c
        .post(
            &format!("{ws}/Tasks"),
            &[
                ("Attributes", r#"{"selected_language": "es"}"#),
                ("WorkflowSid", &flow),
            ],
        )
        .await;
    assert_eq!(created.etag.as_deref(), Some("\"0\""));
    let task = created.ok(StatusCode::CREATED);
    assert!(sid(&task).starts_with("WT"));
    assert_eq!(task["assignment_status"], "pending");
    assert_eq!(
        task["task_queue_friendly_name"],
        "Customer Care Requests - Spanish"
    );
    assert_eq!(
        task["workflow_friendly_name"],
        "Incoming Customer Care Requests"
    );
    assert_eq!(task["task_channel_unique_name"], "default");
    assert_eq!(task["priority"], 0);
    assert_eq!(task["timeout"], 86400);
    assert_eq!(task["attributes"], r#"{"selected_language": "es"}"#);
    assert_eq!(
        task["links"]["reservations"],
        format!("{BASE}{ws}/Tasks/{}/Reservations", sid(&task))
    );
    let t = format!("{ws}/Tasks/{}", sid(&task));
    assert!(
        c.list_all(&format!("{t}/Reservations"), "reservations")
            .await
            .is_empty()
    );

    let acts = c.list_all(&format!("{ws}/Activities"), "activities").await;
    c.post(
        &format!("{ws}/Workers/{}", sid(&alice)),
        &[("ActivitySid", &sid(&acts[1]))],
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(
        c.get(&t).await.ok(StatusCode::OK)["assignment_status"],
        "reserved"
    );
    let res = c
        .list_all(&format!("{t}/Reservations"), "reservations")
        .await;
    assert_eq!(res.len(), 1);
    assert_eq!(res[0]["worker_name"], "Alice");
    assert_eq!(res[0]["reservation_status"], "pending");
    let by_worker = c
        .list_all(
            &format!("{ws}/Workers/{}/Reservations", sid(&alice)),
            "reservations",
        )
        .await;
    assert_eq!(sid(&by_worker[0]), sid(&res[0]));
    assert_eq!(
        by_worker[0]["url"],
        format!(
            "{BASE}{ws}/Workers/{}/Reservations/{}",
            sid(&alice),
            sid(&res[0])
        )
    );

    let r = format!("{t}/Reservations/{}", sid(&res[0]));
    c.send(
        "POST",
        &r,
        &[("ReservationStatus", "accepted")],
        &[("If-Match", "\"5\"")],
    )
    .await
    .error(412, 20412);
    let accepted = c
        .post(&r, &[("ReservationStatus", "accepted")])
        .await
        .ok(StatusCode::OK);
    assert_eq!(accepted["reservation_status"], "accepted");
    assert_eq!(accepted["worker_name"], "Alice");
    assert_eq!(
        c.get(&t).await.ok(StatusCode::OK)["assignment_status"],
        "assigned"
    );
    let msg = c
        .post(&r, &[("ReservationStatus", "rejected")])
        .await
        .error(400, 20001);
    assert!(msg.contains("accepted"), "{msg}");
    let msg = c
        .post(&t, &[("AssignmentStatus", "canceled"), ("Reason", "x")])
        .await
        .error(400, 20001);
    assert!(
        msg.starts_with(&format!("Cannot cancel task {}", sid(&task))),
        "{msg}"
    );
    c.post(&t, &[("AssignmentStatus", "wrapping")])
        .await
        .ok(StatusCode::OK);
    let done = c
        .post(
            &t,
            &[("AssignmentStatus", "completed"), ("Reason", "resolved")],
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(done["assignment_status"], "completed");
    assert_eq!(done["reason"], "resolved");
    assert_eq!(
        c.get(&r).await.ok(StatusCode::OK)["reservation_status"],
        "completed"
    );
}

#[tokio::test]
async fn task_lists_filter_order_and_page() {
    let c = Client::new().await;
    let (ws, _alice, _bob, flow) = quickstart(&c).await;
    let tasks = format!("{ws}/Tasks");
    let mut made = Vec::new();
    for (lang, priority) in [("es", "1"), ("es", "5"), ("fr", "3"), ("es", "2")] {
        let t = c
            .post(
                &tasks,
                &[
                    (
                        "Attributes",
                        &format!(r#"{{"selected_language": "{lang}"}}"#),
                    ),
                    ("WorkflowSid", &flow),
                    ("Priority", priority),
                ],
            )
            .await
            .ok(StatusCode::CREATED);
        made.push(sid(&t));
    }
    let all = c.list_all(&tasks, "tasks").await;
    assert_eq!(all.len(), 4);
    assert_eq!(all[0]["attributes"], Value::Null, "lists hide attributes");
    // Nobody can take Spanish tasks and French ones have no queue: all four stay pending.
    for (query, expected) in [
        ("AssignmentStatus=pending".to_string(), 4),
        (
            "AssignmentStatus=pending&AssignmentStatus=reserved".to_string(),
            4,
        ),
        (
            format!(
                "EvaluateTaskAttributes={}",
                urlencode("selected_language == 'es'")
            ),
            3,
        ),
        (
            format!(
                "TaskQueueName={}",
                urlencode("Customer Care Requests - Spanish")
            ),
            3,
        ),
        (format!("WorkflowSid={flow}"), 4),
    ] {
        let found = c.list_all(&format!("{tasks}?{query}"), "tasks").await;
        assert_eq!(found.len(), expected, "{query}");
    }
    let ordered = c
        .list_all(
            &format!("{tasks}?Ordering=Priority:desc&PageSize=3"),
            "tasks",
        )
        .await;
    let priorities: Vec<_> = ordered
        .iter()
        .map(|t| t["priority"].as_i64().expect("int"))
        .collect();
    assert_eq!(priorities, vec![5, 3, 2, 1], "followed across two pages");
    // Newest first (read backwards, without a sort): the reverse of the default order,
    // across pages, with a filter, and the same as the same order combined with another.
    let oldest_first: Vec<String> = c
        .list_all(&format!("{tasks}?PageSize=2"), "tasks")
        .await
        .iter()
        .map(sid)
        .collect();
    let newest_first: Vec<String> = c
        .list_all(
            &format!("{tasks}?Ordering=DateCreated:desc&PageSize=3"),
            "tasks",
        )
        .await
        .iter()
        .map(sid)
        .collect();
    assert_eq!(newest_first.len(), 4);
    assert_eq!(
        newest_first,
        oldest_first.iter().rev().cloned().collect::<Vec<_>>()
    );
    let sorted: Vec<String> = c
        .list_all(
            &format!("{tasks}?Ordering=DateCreated:desc,Priority:asc&PageSize=3"),
            "tasks",
        )
        .await
        .iter()
        .map(sid)
        .collect();
    assert_eq!(sorted, newest_first, "the general sort agrees");
    let spanish: Vec<String> = c
        .list_all(
            &format!(
                "{tasks}?Ordering=DateCreated:desc&PageSize=1&EvaluateTaskAttributes={}",
                urlencode("selected_language == 'es'")
            ),
            "tasks",
        )
        .await
        .iter()
        .map(sid)
        .collect();
    assert_eq!(spanish.len(), 3);
    assert!(spanish.windows(2).all(|w| w[0] > w[1]), "{spanish:?}");
    c.get(&format!("{tasks}?Ordering=Color:asc"))
        .await
        .error(400, 20001);
    c.get(&format!("{tasks}?AssignmentStatus=lost"))
        .await
        .error(400, 20001);
    c.get(&format!("{tasks}?EvaluateTaskAttributes=a%20%3D%3D"))
        .await
        .error(400, 20001);
    assert!(
        c.list_all(&format!("{tasks}?HasAddons=true"), "tasks")
            .await
            .is_empty()
    );

    for bad in [
        vec![("Attributes", "{bad")],
        vec![("Priority", "-1")],
        vec![("Timeout", "0")],
        vec![("Timeout", "1209601")],
        vec![("TaskChannel", "fax")],
        vec![("WorkflowSid", "WW00000000000000000000000000000000")],
        vec![("VirtualStartTime", "2999-01-01T00:00:00Z")],
        vec![("VirtualStartTime", "yesterday")],
    ] {
        c.post(&tasks, &bad).await.error(400, 20001);
    }
    let one = format!("{tasks}/{}", made[0]);
    assert_eq!(c.delete(&one).await.status, StatusCode::NO_CONTENT);
    c.get(&one).await.error(404, 20404);
    assert_eq!(c.list_all(&tasks, "tasks").await.len(), 3);
}

#[tokio::test]
async fn events_are_listed_filtered_paged_and_fetched() {
    let c = Client::new().await;
    let ws = c.workspace("W").await;
    let worker = c
        .post(&format!("{ws}/Workers"), &[("FriendlyName", "Alice")])
        .await
        .ok(StatusCode::CREATED);
    let worker_sid = worker["sid"].as_str().expect("sid").to_string();
    for name in ["Bob", "Carol", "Dan"] {
        c.post(&format!("{ws}/Workers"), &[("FriendlyName", name)])
            .await
            .ok(StatusCode::CREATED);
    }
    // Everything, oldest first, two per page, following next_page_url.
    let all = c
        .list_all(&format!("{ws}/Events?PageSize=2"), "events")
        .await;
    let types: Vec<&str> = all
        .iter()
        .map(|e| e["event_type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "workspace.created",
            "worker.created",
            "worker.created",
            "worker.created",
            "worker.created"
        ]
    );
    let sids: Vec<&str> = all
        .iter()
        .map(|e| e["sid"].as_str().expect("sid"))
        .collect();
    assert!(sids.windows(2).all(|p| p[0] < p[1]), "ascending: {sids:?}");

    // Filters.
    let mine = c
        .list_all(&format!("{ws}/Events?WorkerSid={worker_sid}"), "events")
        .await;
    assert_eq!(mine.len(), 1);
    let e = &mine[0];
    assert_eq!(e["resource_type"], "worker");
    assert_eq!(e["resource_sid"], worker_sid.as_str());
    assert_eq!(e["event_data"]["worker_name"], "Alice");
    assert!(e["event_date"].as_str().expect("date").ends_with('Z'));
    assert!(
        e["resource_url"]
            .as_str()
            .expect("url")
            .ends_with(&format!("{ws}/Workers/{worker_sid}"))
    );
    let by_type = c
        .list_all(
            &format!("{ws}/Events?EventType=workspace.created"),
            "events",
        )
        .await;
    assert_eq!(by_type.len(), 1);
    let none = c
        .list_all(
            &format!("{ws}/Events?StartDate=2000-01-01T00:00:00Z&EndDate=2000-01-02T00:00:00Z"),
            "events",
        )
        .await;
    assert!(none.is_empty());

    // Fetch one; bad input is a Twilio 400 and changes nothing.
    let sid = e["sid"].as_str().expect("sid");
    let one = c
        .get(&format!("{ws}/Events/{sid}"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(one["event_type"], "worker.created");
    assert_eq!(
        one["url"].as_str().expect("url"),
        format!("{BASE}{ws}/Events/{sid}")
    );
    c.get(&format!("{ws}/Events?StartDate=yesterday"))
        .await
        .error(400, 20001);
    c.get(&format!("{ws}/Events?Minutes=0"))
        .await
        .error(400, 20001);
    c.get(&format!("{ws}/Events?TaskSid=nope"))
        .await
        .error(400, 20001);
}

// ----- real-time statistics ------------------------------------------------------------------

/// Sends `body` as is with `content_type` (the bulk statistics endpoint takes JSON).
async fn send_body(c: &Client, uri: &str, content_type: &str, body: &str) -> Reply {
    let req = Request::builder()
        .method("POST")
        .uri(uri)
        .header(header::AUTHORIZATION, &c.auth)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_string()))
        .expect("request");
    let resp = c.router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
    Reply {
        status,
        body,
        etag: None,
    }
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    k.sort();
    k
}

/// `[(friendly_name, workers)]` of an `activity_statistics` list.
fn activity_counts(v: &Value) -> Vec<(String, u64)> {
    v.as_array()
        .expect("activity_statistics")
        .iter()
        .map(|a| {
            assert!(a["sid"].as_str().expect("sid").starts_with("WA"));
            (
                a["friendly_name"].as_str().expect("name").to_string(),
                a["workers"].as_u64().expect("workers"),
            )
        })
        .collect()
}

fn counts(offline: u64, available: u64, unavailable: u64) -> Vec<(String, u64)> {
    vec![
        ("Offline".into(), offline),
        ("Available".into(), available),
        ("Unavailable".into(), unavailable),
    ]
}

/// A waiting age: a whole number of seconds, and small (the tasks were just created).
#[track_caller]
fn young(age: &Value) {
    let a = age.as_i64().unwrap_or_else(|| panic!("age {age}"));
    assert!((0..60).contains(&a), "age {a}");
}

struct StatsWorld {
    ws: String,
    sales: String,
    support: String,
    flow: String,
    /// T1 (assigned), T2 (pending), T3 (reserved), T4 (pending).
    tasks: Vec<String>,
}

/// Alice (sales, Available), Bob (sales, Offline, chat capacity 0), Carol (support,
/// Unavailable); queues Sales and Support; a workflow routing by `dept`; tasks
/// T1 sales/voice/p5 (reserved to Alice, accepted: assigned), T2 sales/voice/p5 (pending),
/// T3 sales/chat/p1 (reserved to Alice), T4 support/voice/p2 (pending).
async fn stats_world(c: &Client) -> StatsWorld {
    let ws = c.workspace("Stats").await;
    let acts = c.list_all(&format!("{ws}/Activities"), "activities").await;
    let act = |name: &str| {
        sid(acts
            .iter()
            .find(|a| a["friendly_name"] == name)
            .expect("activity"))
    };
    let mut workers = Vec::new();
    for (name, team, activity) in [
        ("Alice", "sales", "Available"),
        ("Bob", "sales", "Offline"),
        ("Carol", "support", "Unavailable"),
    ] {
        let w = c
            .post(
                &format!("{ws}/Workers"),
                &[
                    ("FriendlyName", name),
                    ("Attributes", &format!(r#"{{"team": "{team}"}}"#)),
                    ("ActivitySid", &act(activity)),
                ],
            )
            .await
            .ok(StatusCode::CREATED);
        workers.push(sid(&w));
    }
    c.post(
        &format!("{ws}/Workers/{}/Channels/chat", workers[1]),
        &[("Capacity", "0")],
    )
    .await
    .ok(StatusCode::OK);
    let mut queues = Vec::new();
    for (name, expr) in [
        ("Sales", r#"team == "sales""#),
        ("Support", r#"team == "support""#),
    ] {
        let q = c
            .post(
                &format!("{ws}/TaskQueues"),
                &[("FriendlyName", name), ("TargetWorkers", expr)],
            )
            .await
            .ok(StatusCode::CREATED);
        queues.push(sid(&q));
    }
    let config = format!(
        r#"{{"task_routing":{{"filters":[{{"expression":"dept == \"sales\"","targets":[{{"queue":"{}"}}]}},{{"expression":"dept == \"support\"","targets":[{{"queue":"{}"}}]}}]}}}}"#,
        queues[0], queues[1]
    );
    let flow = c
        .post(
            &format!("{ws}/Workflows"),
            &[("FriendlyName", "By dept"), ("Configuration", &config)],
        )
        .await
        .ok(StatusCode::CREATED);
    let flow = sid(&flow);
    let mut tasks = Vec::new();
    for (dept, channel, priority) in [
        ("sales", "voice", "5"),
        ("sales", "voice", "5"),
        ("sales", "chat", "1"),
        ("support", "voice", "2"),
    ] {
        let t = c
            .post(
                &format!("{ws}/Tasks"),
                &[
                    ("Attributes", &format!(r#"{{"dept": "{dept}"}}"#)),
                    ("WorkflowSid", &flow),
                    ("TaskChannel", channel),
                    ("Priority", priority),
                ],
            )
            .await
            .ok(StatusCode::CREATED);
        tasks.push(sid(&t));
    }
    let rs = c
        .list_all(
            &format!("{ws}/Tasks/{}/Reservations", tasks[0]),
            "reservations",
        )
        .await;
    assert_eq!(rs.len(), 1, "T1 is reserved to Alice");
    c.post(
        &format!("{ws}/Tasks/{}/Reservations/{}", tasks[0], sid(&rs[0])),
        &[("ReservationStatus", "accepted")],
    )
    .await
    .ok(StatusCode::OK);
    let statuses: Vec<String> = {
        let mut out = Vec::new();
        for t in &tasks {
            let v = c.get(&format!("{ws}/Tasks/{t}")).await.ok(StatusCode::OK);
            out.push(v["assignment_status"].as_str().expect("status").to_string());
        }
        out
    };
    assert_eq!(statuses, ["assigned", "pending", "reserved", "pending"]);
    StatsWorld {
        ws,
        sales: queues.remove(0),
        support: queues.remove(0),
        flow,
        tasks,
    }
}

#[tokio::test]
async fn workspace_and_workers_real_time_statistics() {
    let c = Client::new().await;
    let s = stats_world(&c).await;
    let ws = &s.ws;
    let ws_sid = ws.trim_start_matches("/v1/Workspaces/");
    let rt = c
        .get(&format!("{ws}/RealTimeStatistics"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        keys(&rt),
        sorted(&[
            "account_sid",
            "workspace_sid",
            "url",
            "activity_statistics",
            "longest_task_waiting_age",
            "longest_task_waiting_sid",
            "tasks_by_priority",
            "tasks_by_status",
            "total_tasks",
            "total_workers",
        ])
    );
    assert!(
        rt["account_sid"]
            .as_str()
            .expect("account")
            .starts_with("AC")
    );
    assert_eq!(rt["workspace_sid"], ws_sid);
    assert_eq!(rt["url"], format!("{BASE}{ws}/RealTimeStatistics"));
    assert_eq!(rt["total_tasks"], 4);
    assert_eq!(
        rt["tasks_by_status"],
        serde_json::json!({"pending": 2, "reserved": 1, "assigned": 1, "wrapping": 0})
    );
    assert_eq!(
        rt["tasks_by_priority"],
        serde_json::json!({"1": 1, "2": 1, "5": 2})
    );
    // T2 was created before T4.
    assert_eq!(rt["longest_task_waiting_sid"], s.tasks[1].as_str());
    young(&rt["longest_task_waiting_age"]);
    assert_eq!(activity_counts(&rt["activity_statistics"]), counts(1, 1, 1));
    assert_eq!(rt["total_workers"], 3);

    // TaskChannel by unique name or SID: chat has T3 only, and Bob cannot take chat.
    let chat = c
        .list_all(&format!("{ws}/TaskChannels"), "channels")
        .await
        .into_iter()
        .find(|ch| ch["unique_name"] == "chat")
        .expect("chat");
    for key in ["chat".to_string(), sid(&chat)] {
        let rt = c
            .get(&format!("{ws}/RealTimeStatistics?TaskChannel={key}"))
            .await
            .ok(StatusCode::OK);
        assert_eq!(rt["total_tasks"], 1);
        assert_eq!(
            rt["tasks_by_status"],
            serde_json::json!({"pending": 0, "reserved": 1, "assigned": 0, "wrapping": 0})
        );
        assert_eq!(rt["tasks_by_priority"], serde_json::json!({"1": 1}));
        assert_eq!(rt["longest_task_waiting_sid"], Value::Null);
        assert_eq!(rt["longest_task_waiting_age"], 0);
        assert_eq!(activity_counts(&rt["activity_statistics"]), counts(0, 1, 1));
        assert_eq!(rt["total_workers"], 2);
    }
    c.get(&format!("{ws}/RealTimeStatistics?TaskChannel=fax"))
        .await
        .error(400, 20001);

    // Workers.
    let wk = c
        .get(&format!("{ws}/Workers/RealTimeStatistics"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        keys(&wk),
        sorted(&[
            "account_sid",
            "workspace_sid",
            "url",
            "total_workers",
            "activity_statistics"
        ])
    );
    assert_eq!(wk["url"], format!("{BASE}{ws}/Workers/RealTimeStatistics"));
    assert_eq!(wk["total_workers"], 3);
    assert_eq!(activity_counts(&wk["activity_statistics"]), counts(1, 1, 1));
    let wk = c
        .get(&format!("{ws}/Workers/RealTimeStatistics?TaskChannel=chat"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(wk["total_workers"], 2);
    assert_eq!(activity_counts(&wk["activity_statistics"]), counts(0, 1, 1));
    c.get(&format!("{ws}/Workers/RealTimeStatistics?TaskChannel=fax"))
        .await
        .error(400, 20001);

    // Statistics follow the state at once: complete T1, cancel T2.
    c.post(
        &format!("{ws}/Tasks/{}", s.tasks[0]),
        &[("AssignmentStatus", "completed"), ("Reason", "done")],
    )
    .await
    .ok(StatusCode::OK);
    c.post(
        &format!("{ws}/Tasks/{}", s.tasks[1]),
        &[("AssignmentStatus", "canceled"), ("Reason", "gone")],
    )
    .await
    .ok(StatusCode::OK);
    let rt = c
        .get(&format!("{ws}/RealTimeStatistics"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(rt["total_tasks"], 2);
    assert_eq!(
        rt["tasks_by_status"],
        serde_json::json!({"pending": 1, "reserved": 1, "assigned": 0, "wrapping": 0})
    );
    assert_eq!(rt["longest_task_waiting_sid"], s.tasks[3].as_str());

    // Unknown workspace; another account's workspace.
    c.get("/v1/Workspaces/WS00000000000000000000000000000000/RealTimeStatistics")
        .await
        .error(404, 20404);
    let other = c.other_account().await;
    other
        .get(&format!("{ws}/RealTimeStatistics"))
        .await
        .error(404, 20404);
    other
        .get(&format!("{ws}/Workers/RealTimeStatistics"))
        .await
        .error(404, 20404);
}

#[tokio::test]
async fn task_queue_and_workflow_real_time_statistics() {
    let c = Client::new().await;
    let s = stats_world(&c).await;
    let ws = &s.ws;
    let ws_sid = ws.trim_start_matches("/v1/Workspaces/");
    let sales = c
        .get(&format!("{ws}/TaskQueues/{}/RealTimeStatistics", s.sales))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        keys(&sales),
        sorted(&[
            "account_sid",
            "workspace_sid",
            "task_queue_sid",
            "url",
            "activity_statistics",
            "longest_task_waiting_age",
            "longest_task_waiting_sid",
            "longest_relative_task_age_in_queue",
            "longest_relative_task_sid_in_queue",
            "tasks_by_priority",
            "tasks_by_status",
            "total_available_workers",
            "total_eligible_workers",
            "total_tasks",
        ])
    );
    assert_eq!(sales["workspace_sid"], ws_sid);
    assert_eq!(sales["task_queue_sid"], s.sales.as_str());
    assert_eq!(
        sales["url"],
        format!("{BASE}{ws}/TaskQueues/{}/RealTimeStatistics", s.sales)
    );
    // T1 (assigned), T2 (pending), T3 (reserved); members Alice (available) and Bob.
    assert_eq!(sales["total_tasks"], 3);
    assert_eq!(
        sales["tasks_by_status"],
        serde_json::json!({"pending": 1, "reserved": 1, "assigned": 1, "wrapping": 0})
    );
    assert_eq!(
        sales["tasks_by_priority"],
        serde_json::json!({"1": 1, "5": 2})
    );
    assert_eq!(sales["longest_task_waiting_sid"], s.tasks[1].as_str());
    assert_eq!(
        sales["longest_relative_task_sid_in_queue"],
        s.tasks[1].as_str()
    );
    young(&sales["longest_task_waiting_age"]);
    young(&sales["longest_relative_task_age_in_queue"]);
    assert_eq!(sales["total_eligible_workers"], 2);
    assert_eq!(sales["total_available_workers"], 1);
    assert_eq!(
        activity_counts(&sales["activity_statistics"]),
        counts(1, 1, 0)
    );

    let chat = c
        .get(&format!(
            "{ws}/TaskQueues/{}/RealTimeStatistics?TaskChannel=chat",
            s.sales
        ))
        .await
        .ok(StatusCode::OK);
    assert_eq!(chat["total_tasks"], 1);
    assert_eq!(chat["longest_task_waiting_sid"], Value::Null);
    assert_eq!(chat["longest_task_waiting_age"], 0);
    assert_eq!(chat["longest_relative_task_sid_in_queue"], Value::Null);
    assert_eq!(chat["longest_relative_task_age_in_queue"], 0);
    assert_eq!(
        chat["total_eligible_workers"], 1,
        "Bob has no chat capacity"
    );
    assert_eq!(chat["total_available_workers"], 1);

    let support = c
        .get(&format!("{ws}/TaskQueues/{}/RealTimeStatistics", s.support))
        .await
        .ok(StatusCode::OK);
    assert_eq!(support["total_tasks"], 1);
    assert_eq!(support["longest_task_waiting_sid"], s.tasks[3].as_str());
    assert_eq!(support["total_eligible_workers"], 1);
    assert_eq!(support["total_available_workers"], 0);
    assert_eq!(
        activity_counts(&support["activity_statistics"]),
        counts(0, 0, 1)
    );

    // Workflow: every task.
    let flow = c
        .get(&format!("{ws}/Workflows/{}/RealTimeStatistics", s.flow))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        keys(&flow),
        sorted(&[
            "account_sid",
            "workspace_sid",
            "workflow_sid",
            "url",
            "longest_task_waiting_age",
            "longest_task_waiting_sid",
            "tasks_by_priority",
            "tasks_by_status",
            "total_tasks",
        ])
    );
    assert_eq!(flow["workflow_sid"], s.flow.as_str());
    assert_eq!(
        flow["url"],
        format!("{BASE}{ws}/Workflows/{}/RealTimeStatistics", s.flow)
    );
    assert_eq!(flow["total_tasks"], 4);
    assert_eq!(
        flow["tasks_by_status"],
        serde_json::json!({"pending": 2, "reserved": 1, "assigned": 1, "wrapping": 0})
    );
    assert_eq!(
        flow["tasks_by_priority"],
        serde_json::json!({"1": 1, "2": 1, "5": 2})
    );
    assert_eq!(flow["longest_task_waiting_sid"], s.tasks[1].as_str());
    let flow_voice = c
        .get(&format!(
            "{ws}/Workflows/{}/RealTimeStatistics?TaskChannel=voice",
            s.flow
        ))
        .await
        .ok(StatusCode::OK);
    assert_eq!(flow_voice["total_tasks"], 3);

    // Unknown, malformed and foreign SIDs in the path; unknown channels.
    let ghost_q = "WQ00000000000000000000000000000000";
    let ghost_w = "WW00000000000000000000000000000000";
    for path in [
        format!("{ws}/TaskQueues/{ghost_q}/RealTimeStatistics"),
        format!("{ws}/TaskQueues/WQnope/RealTimeStatistics"),
        format!("{ws}/TaskQueues/{}/RealTimeStatistics", s.flow),
        format!("{ws}/Workflows/{ghost_w}/RealTimeStatistics"),
        format!("{ws}/Workflows/{}/RealTimeStatistics", s.sales),
    ] {
        c.get(&path).await.error(404, 20404);
    }
    c.get(&format!(
        "{ws}/TaskQueues/{}/RealTimeStatistics?TaskChannel=fax",
        s.sales
    ))
    .await
    .error(400, 20001);
    c.get(&format!(
        "{ws}/Workflows/{}/RealTimeStatistics?TaskChannel=fax",
        s.flow
    ))
    .await
    .error(400, 20001);
    c.post(
        &format!("{ws}/TaskQueues/{}/RealTimeStatistics", s.sales),
        &[],
    )
    .await
    .error(405, 20004);
}

#[tokio::test]
async fn bulk_task_queue_real_time_statistics() {
    let c = Client::new().await;
    let s = stats_world(&c).await;
    let ws = &s.ws;
    let ws_sid = ws.trim_start_matches("/v1/Workspaces/");
    let bulk = format!("{ws}/TaskQueues/RealTimeStatistics");
    // A queue of another account's workspace: a valid SID, answered with zeros.
    let other = c.other_account().await;
    let other_ws = other.workspace("Theirs").await;
    let theirs = other
        .post(
            &format!("{other_ws}/TaskQueues"),
            &[("FriendlyName", "Theirs"), ("TargetWorkers", "1 == 1")],
        )
        .await
        .ok(StatusCode::CREATED);
    let theirs = sid(&theirs);

    let body = serde_json::json!({"QueueSids": [s.support, s.sales, theirs, s.sales]});
    let r = send_body(&c, &bulk, "application/json", &body.to_string())
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        keys(&r),
        sorted(&[
            "account_sid",
            "workspace_sid",
            "url",
            "task_queue_data",
            "task_queue_response_count",
        ])
    );
    assert_eq!(r["workspace_sid"], ws_sid);
    assert_eq!(r["url"], format!("{BASE}{bulk}"));
    assert_eq!(
        r["task_queue_response_count"], 3,
        "a repeated SID counts once"
    );
    let data = r["task_queue_data"].as_array().expect("data");
    let order: Vec<&str> = data
        .iter()
        .map(|d| d["task_queue_sid"].as_str().expect("sid"))
        .collect();
    assert_eq!(
        order,
        [s.support.as_str(), s.sales.as_str(), theirs.as_str()]
    );
    for d in data {
        assert_eq!(
            keys(d),
            sorted(&[
                "task_queue_sid",
                "longest_task_waiting_age",
                "longest_task_waiting_sid",
                "total_tasks",
                "total_eligible_workers",
                "total_available_workers",
                "tasks_by_status",
                "tasks_by_priority",
                "activity_statistics",
            ])
        );
    }
    // The same figures as the single-queue resource.
    let single = c
        .get(&format!("{ws}/TaskQueues/{}/RealTimeStatistics", s.sales))
        .await
        .ok(StatusCode::OK);
    for k in [
        "longest_task_waiting_sid",
        "total_tasks",
        "total_eligible_workers",
        "total_available_workers",
        "tasks_by_status",
        "tasks_by_priority",
        "activity_statistics",
    ] {
        assert_eq!(data[1][k], single[k], "{k}");
    }
    assert_eq!(data[0]["total_tasks"], 1);
    assert_eq!(data[0]["longest_task_waiting_sid"], s.tasks[3].as_str());
    // Not this workspace's queue: zeros.
    let z = &data[2];
    assert_eq!(z["total_tasks"], 0);
    assert_eq!(z["longest_task_waiting_sid"], Value::Null);
    assert_eq!(z["longest_task_waiting_age"], 0);
    assert_eq!(z["total_eligible_workers"], 0);
    assert_eq!(z["total_available_workers"], 0);
    assert_eq!(
        z["tasks_by_status"],
        serde_json::json!({"pending": 0, "reserved": 0, "assigned": 0, "wrapping": 0})
    );
    assert_eq!(z["tasks_by_priority"], serde_json::json!({}));
    assert_eq!(activity_counts(&z["activity_statistics"]), counts(0, 0, 0));

    // `queueSids` (the docs' spelling); a form with QueueSids repeated; TaskChannel.
    let r = send_body(
        &c,
        &bulk,
        "application/json",
        &serde_json::json!({"queueSids": [s.sales]}).to_string(),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(r["task_queue_response_count"], 1);
    assert_eq!(r["task_queue_data"][0]["total_tasks"], 3);
    let r = c
        .post(&bulk, &[("QueueSids", &s.sales), ("QueueSids", &s.support)])
        .await
        .ok(StatusCode::OK);
    assert_eq!(r["task_queue_response_count"], 2);
    assert_eq!(
        r["task_queue_data"][1]["task_queue_sid"],
        s.support.as_str()
    );
    let r = send_body(
        &c,
        &format!("{bulk}?TaskChannel=chat"),
        "application/json",
        &serde_json::json!({"QueueSids": [s.sales]}).to_string(),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(r["task_queue_data"][0]["total_tasks"], 1);
    assert_eq!(r["task_queue_data"][0]["total_eligible_workers"], 1);
    let r = send_body(
        &c,
        &bulk,
        "application/json",
        &serde_json::json!({"QueueSids": [s.sales], "TaskChannel": "voice"}).to_string(),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(r["task_queue_data"][0]["total_tasks"], 2);

    // 1..50 SIDs, well-formed, in a JSON object; a known channel.
    let fifty_one: Vec<String> = (0..51).map(|i| format!("WQ{i:032x}")).collect();
    let fifty: Vec<String> = fifty_one[..50].to_vec();
    let r = send_body(
        &c,
        &bulk,
        "application/json",
        &serde_json::json!({ "QueueSids": fifty }).to_string(),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(r["task_queue_response_count"], 50);
    for bad in [
        serde_json::json!({ "QueueSids": fifty_one }).to_string(),
        serde_json::json!({"QueueSids": []}).to_string(),
        serde_json::json!({}).to_string(),
        serde_json::json!({"QueueSids": ["WQnope"]}).to_string(),
        serde_json::json!({"QueueSids": [s.flow]}).to_string(),
        serde_json::json!({"QueueSids": s.sales}).to_string(),
        serde_json::json!({"QueueSids": [1, 2]}).to_string(),
        serde_json::json!({"QueueSids": [s.sales], "TaskChannel": "fax"}).to_string(),
        "[]".to_string(),
        "{".to_string(),
    ] {
        send_body(&c, &bulk, "application/json", &bad)
            .await
            .error(400, 20001);
    }
    c.post(&bulk, &[]).await.error(400, 20001);
    c.post(&bulk, &[("QueueSids", "WQnope")])
        .await
        .error(400, 20001);
    c.get(&bulk).await.error(405, 20004);
    other
        .post(
            &format!("{ws}/TaskQueues/RealTimeStatistics"),
            &[("QueueSids", &s.sales)],
        )
        .await
        .error(404, 20404);
}

#[tokio::test]
async fn statistics_add_up_what_happened_and_show_what_is() {
    let c = Client::new().await;
    let ws = c.workspace("W").await;
    let get = |v: &Value, k: &str| v[k].as_str().expect(k).to_string();
    let queue = c
        .post(
            &format!("{ws}/TaskQueues"),
            &[("FriendlyName", "Q"), ("TargetWorkers", "1==1")],
        )
        .await
        .ok(StatusCode::CREATED);
    let q = get(&queue, "sid");
    let config =
        format!(r#"{{"task_routing":{{"filters":[],"default_filter":{{"queue":"{q}"}}}}}}"#);
    let flow = c
        .post(
            &format!("{ws}/Workflows"),
            &[("FriendlyName", "F"), ("Configuration", &config)],
        )
        .await
        .ok(StatusCode::CREATED);
    let f = get(&flow, "sid");
    let acts = c
        .get(&format!("{ws}/Activities?FriendlyName=Available"))
        .await
        .ok(StatusCode::OK);
    let available = get(&acts["activities"][0], "sid");
    let alice = c
        .post(
            &format!("{ws}/Workers"),
            &[("FriendlyName", "Alice"), ("ActivitySid", &available)],
        )
        .await
        .ok(StatusCode::CREATED);
    let k = get(&alice, "sid");
    // T1 is reserved to Alice and accepted; T2 waits (her one slot is taken) and is canceled.
    let t1 = c
        .post(&format!("{ws}/Tasks"), &[("WorkflowSid", &f)])
        .await
        .ok(StatusCode::CREATED);
    let t1 = get(&t1, "sid");
    let rs = c
        .get(&format!("{ws}/Tasks/{t1}/Reservations"))
        .await
        .ok(StatusCode::OK);
    let r = get(&rs["reservations"][0], "sid");
    c.post(
        &format!("{ws}/Tasks/{t1}/Reservations/{r}"),
        &[("ReservationStatus", "accepted")],
    )
    .await
    .ok(StatusCode::OK);
    let t2 = c
        .post(&format!("{ws}/Tasks"), &[("WorkflowSid", &f)])
        .await
        .ok(StatusCode::CREATED);
    let t2 = get(&t2, "sid");
    c.post(
        &format!("{ws}/Tasks/{t2}"),
        &[("AssignmentStatus", "canceled"), ("Reason", "test")],
    )
    .await
    .ok(StatusCode::OK);

    let cumulative = c
        .get(&format!("{ws}/CumulativeStatistics?SplitByWaitTime=5"))
        .await
        .ok(StatusCode::OK);
    for (field, want) in [
        ("tasks_created", 2),
        ("tasks_canceled", 1),
        ("tasks_completed", 0),
        ("reservations_created", 1),
        ("reservations_accepted", 1),
        ("reservations_rejected", 0),
    ] {
        assert_eq!(cumulative[field], want, "{field}: {cumulative}");
    }
    assert_eq!(
        cumulative["wait_duration_until_accepted"]["total"], 0,
        "accepted at once"
    );
    assert_eq!(
        cumulative["split_by_wait_time"]["5"]["below"]["tasks_canceled"],
        1
    );
    assert_eq!(
        cumulative["split_by_wait_time"]["5"]["above"]["reservations_accepted"],
        0
    );
    assert!(
        cumulative["url"]
            .as_str()
            .expect("url")
            .ends_with("/CumulativeStatistics")
    );
    let plain = c
        .get(&format!("{ws}/CumulativeStatistics"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(plain["split_by_wait_time"], Value::Null);

    let combined = c.get(&format!("{ws}/Statistics")).await.ok(StatusCode::OK);
    assert_eq!(combined["cumulative"]["tasks_created"], 2);
    assert_eq!(
        combined["realtime"]["total_tasks"], 1,
        "T1 is assigned: {combined}"
    );
    assert_eq!(combined["realtime"]["tasks_by_status"]["assigned"], 1);

    let qs = c
        .get(&format!("{ws}/TaskQueues/{q}/CumulativeStatistics"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(
        (
            qs["tasks_entered"].clone(),
            qs["reservations_accepted"].clone()
        ),
        (serde_json::json!(2), serde_json::json!(1))
    );
    assert_eq!(qs["task_queue_sid"], q.as_str());
    let list = c
        .list_all(
            &format!("{ws}/TaskQueues/Statistics"),
            "task_queues_statistics",
        )
        .await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["task_queue_sid"], q.as_str());
    assert_eq!(list[0]["cumulative"]["tasks_entered"], 2);
    assert_eq!(list[0]["realtime"]["total_eligible_workers"], 1);
    let one = c
        .get(&format!("{ws}/TaskQueues/{q}/Statistics"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(one["cumulative"], list[0]["cumulative"]);
    let wf = c
        .get(&format!("{ws}/Workflows/{f}/Statistics"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(wf["cumulative"]["tasks_entered"], 2);
    assert_eq!(wf["realtime"]["total_tasks"], 1);

    let workers = c
        .get(&format!("{ws}/Workers/CumulativeStatistics"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(workers["reservations_accepted"], 1);
    let durations = workers["activity_durations"].as_array().expect("durations");
    assert_eq!(durations.len(), 3, "every activity: {workers}");
    let named = c
        .get(&format!("{ws}/Workers/Statistics?FriendlyName=Alice"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(named["realtime"]["total_workers"], 1);
    assert_eq!(named["cumulative"]["reservations_accepted"], 1);
    let nobody = c
        .get(&format!("{ws}/Workers/Statistics?FriendlyName=Nobody"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(nobody["realtime"]["total_workers"], 0);
    assert_eq!(nobody["cumulative"]["reservations_accepted"], 0);
    let in_queue = c
        .get(&format!("{ws}/Workers/Statistics?TaskQueueSid={q}"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(in_queue["realtime"]["total_workers"], 1);
    let hers = c
        .get(&format!("{ws}/Workers/{k}/Statistics"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(hers["worker_sid"], k.as_str());
    assert_eq!(hers["cumulative"]["reservations_created"], 1);

    // Another channel saw nothing.
    let voice = c
        .get(&format!("{ws}/CumulativeStatistics?TaskChannel=voice"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(voice["tasks_created"], 0);

    // Bad input.
    for bad in [
        "CumulativeStatistics?Minutes=0",
        "CumulativeStatistics?StartDate=2001-01-01T00:00:00Z",
        "CumulativeStatistics?SplitByWaitTime=soon",
        "CumulativeStatistics?TaskChannel=nope",
        "Statistics?EndDate=never",
    ] {
        c.get(&format!("{ws}/{bad}")).await.error(400, 20001);
    }
    c.get(&format!(
        "{ws}/TaskQueues/WQ00000000000000000000000000000000/Statistics"
    ))
    .await
    .error(404, 20404);
    c.get(&format!(
        "{ws}/Workers/WK00000000000000000000000000000000/Statistics"
    ))
    .await
    .error(404, 20404);
}
