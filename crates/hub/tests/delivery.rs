//! Event callbacks are delivered at least once and in order: through a receiver that
//! refuses for a while, and across a server restart in the middle of delivery.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use taskyard_engine::{Command, CreateWorker, NewWorkspace};
use taskyard_hub::{CallbackOptions, EventQuery, Hub};
use taskyard_store::sqlite::{Durability, SqliteStore};
use taskyard_webhook::{SIGNATURE_HEADER, verify};

/// What the receiver saw, and whether it accepts right now.
#[derive(Default)]
struct Seen {
    /// How many more deliveries it accepts before refusing again.
    budget: usize,
    sids: Vec<String>,
    refused: usize,
    /// Refusals after at least one delivery was taken.
    late_refusals: usize,
    bad_signatures: usize,
}

type Shared = Arc<Mutex<Seen>>;

/// A real HTTP receiver on its own thread and runtime; returns its URL.
fn receiver(seen: Shared, token: Arc<Mutex<String>>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/events", listener.local_addr().expect("addr"));
    let u = url.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            listener.set_nonblocking(true).expect("nonblocking");
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let app = axum::Router::new()
                .route(
                    "/events",
                    axum::routing::post(
                        |State((seen, token, url)): State<(Shared, Arc<Mutex<String>>, String)>,
                         headers: axum::http::HeaderMap,
                         body: String| async move {
                            let params: Vec<(String, String)> = form_pairs(&body);
                            let sig = headers
                                .get(SIGNATURE_HEADER)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string();
                            let token = token.lock().expect("lock").clone();
                            let mut s = seen.lock().expect("lock");
                            let pairs: Vec<(&str, &str)> = params
                                .iter()
                                .map(|(k, v)| (k.as_str(), v.as_str()))
                                .collect();
                            if !verify(&token, &url, &pairs, &sig) {
                                s.bad_signatures += 1;
                            }
                            if s.budget == 0 {
                                s.refused += 1;
                                if !s.sids.is_empty() {
                                    s.late_refusals += 1;
                                }
                                return StatusCode::INTERNAL_SERVER_ERROR;
                            }
                            s.budget -= 1;
                            let sid = params
                                .iter()
                                .find(|(k, _)| k == "Sid")
                                .map(|(_, v)| v.clone())
                                .unwrap_or_default();
                            s.sids.push(sid);
                            StatusCode::NO_CONTENT
                        },
                    ),
                )
                .with_state((seen, token, u));
            axum::serve(listener, app).await.expect("serve");
        });
    });
    url
}

fn form_pairs(body: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn start(dir: &std::path::Path) -> Hub {
    let store = SqliteStore::open(dir, Durability::Normal).expect("store");
    let options = CallbackOptions {
        max_backoff: Duration::from_millis(50),
        ..Default::default()
    };
    Hub::start_with(Box::new(store), options).expect("hub")
}

fn wait_until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn every_event_arrives_in_order_through_refusals_and_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seen: Shared = Arc::default();
    let token = Arc::new(Mutex::new(String::new()));
    let url = receiver(seen.clone(), token.clone());

    // First life: the receiver refuses everything while 20 workers are created.
    let rt = runtime();
    let (ws, account) = rt.block_on(async {
        let hub = start(dir.path());
        let account = hub
            .create_account("Main".into(), None)
            .await
            .expect("account");
        *token.lock().expect("lock") = account.auth_token.clone();
        let ws = hub
            .create_workspace(
                account.sid,
                NewWorkspace {
                    friendly_name: "Deliveries".into(),
                    event_callback_url: Some(url.clone()),
                    ..Default::default()
                },
                |w| w.sid(),
            )
            .await
            .expect("workspace");
        let h = hub.workspace(account.sid, ws).expect("handle");
        for i in 0..20 {
            let cmd = Command::CreateWorker(CreateWorker {
                friendly_name: format!("w{i}"),
                activity_sid: None,
                attributes: None,
            });
            h.apply(cmd, |_, _| ()).await.expect("worker");
        }
        (ws, account.sid)
    });
    wait_until("refused attempts", Duration::from_secs(10), || {
        seen.lock().expect("lock").refused >= 3
    });
    // The receiver takes five, then refuses again; the server is stopped right there.
    seen.lock().expect("lock").budget = 5;
    wait_until("first deliveries", Duration::from_secs(10), || {
        // Two refusals of the sixth: the server stored its cursor before retrying.
        let s = seen.lock().expect("lock");
        s.sids.len() == 5 && s.late_refusals >= 2
    });
    rt.shutdown_background();
    seen.lock().expect("lock").budget = usize::MAX;
    let delivered_before_restart = seen.lock().expect("lock").sids.len();

    // Second life: delivery resumes from the stored cursor.
    let rt = runtime();
    let expected: Vec<String> = rt.block_on(async {
        let hub = start(dir.path());
        let mut q = EventQuery::new(ws);
        q.limit = 1000;
        let log = hub.events();
        let stored = tokio::task::spawn_blocking(move || log.query(&q))
            .await
            .expect("join")
            .expect("query");
        let _ = account;
        // Keep the hub alive while the receiver catches up.
        let expected: Vec<String> = stored.iter().map(|e| e.sid.to_string()).collect();
        let want = expected.len();
        let s = seen.clone();
        tokio::task::spawn_blocking(move || {
            wait_until("every event", Duration::from_secs(20), || {
                let got = s.lock().expect("lock");
                let unique: std::collections::BTreeSet<&String> = got.sids.iter().collect();
                unique.len() >= want
            })
        })
        .await
        .expect("join");
        drop(hub);
        expected
    });
    rt.shutdown_background();

    assert_eq!(
        expected.len(),
        21,
        "workspace.created and 20 worker.created"
    );
    let s = seen.lock().expect("lock");
    assert_eq!(
        s.bad_signatures, 0,
        "every request carried a valid signature"
    );
    // At least once and in order: every event, each first seen in the stored order; a
    // repeat can only be a resend of what came just before the restart.
    let mut first_seen: Vec<String> = Vec::new();
    for sid in &s.sids {
        if !first_seen.contains(sid) {
            first_seen.push(sid.clone());
        }
    }
    assert_eq!(first_seen, expected, "every event, in order");
    assert_eq!(delivered_before_restart, 5, "the restart came mid-delivery");
    // The cursor was stored when the receiver started refusing: nothing it had taken
    // before that is sent again.
    assert_eq!(s.sids.len(), expected.len(), "no resends: {:?}", s.sids);
}
