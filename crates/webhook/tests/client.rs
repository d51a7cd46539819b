//! The client against real local HTTP servers: what arrives, and what comes back.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use taskyard_webhook::{
    Answer, Attempt, AttemptError, Client, MAX_BODY_BYTES, parse_answer, verify,
};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const FIVE_SECONDS: Duration = Duration::from_secs(5);

/// What the capture endpoint saw.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    query: Option<String>,
    body: String,
}

type Log = Arc<Mutex<Vec<Received>>>;

async fn capture(
    State(log): State<Log>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: String,
) -> Response {
    log.lock().expect("log lock").push(Received {
        headers,
        query,
        body,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"instruction":"accept"}"#,
    )
        .into_response()
}

fn json(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Starts the test application; returns its address and what it received.
async fn app() -> (SocketAddr, Log) {
    let log: Log = Arc::default();
    let router = Router::new()
        .route("/capture", post(capture))
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                json("application/json", "{}")
            }),
        )
        .route(
            "/error",
            post(|| async {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"instruction":"accept"}"#,
                )
            }),
        )
        .route(
            "/redirect",
            post(|| async { (StatusCode::FOUND, [(header::LOCATION, "/capture")]) }),
        )
        .route("/empty", post(|| async { StatusCode::OK }))
        .route(
            "/empty-object",
            post(|| async { json("application/json", "{}") }),
        )
        .route(
            "/reject",
            post(|| async {
                json(
                    "application/json; charset=utf-8",
                    r#"{"instruction":"reject","activity_sid":"WA0123"}"#,
                )
            }),
        )
        .route(
            "/text",
            post(|| async { json("text/plain; charset=utf-8", r#"{"instruction":"accept"}"#) }),
        )
        .route(
            "/garbage",
            post(|| async { json("application/json", "<Response><Say>hi</Say></Response>") }),
        )
        .route(
            "/big",
            post(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    "é".repeat(MAX_BODY_BYTES), // twice the limit, in 2-byte characters
                )
                    .into_response()
            }),
        )
        .with_state(log.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    (addr, log)
}

/// A TCP server that reads the request, writes `answer` raw, then holds the connection open
/// for a while (or closes it at once if `hold` is zero).
async fn raw_server(answer: &'static [u8], hold: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(answer).await;
                tokio::time::sleep(hold).await;
            });
        }
    });
    addr
}

fn params() -> Vec<(String, String)> {
    [
        ("AccountSid", "AC0123"),
        ("WorkspaceSid", "WS0123"),
        (
            "TaskAttributes",
            r#"{"selected_language": "es", "note": "a&b=c+d 100%"}"#,
        ),
        (
            "WorkerAttributes",
            r#"{"languages":["en","es"],"name":"Zoë"}"#,
        ),
        ("TaskAge", "3"),
        ("Empty", ""),
        ("Repeated", "b"),
        ("Repeated", "a"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn header<'a>(received: &'a Received, name: &str) -> Option<&'a str> {
    received.headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn the_application_receives_signed_form_params_and_twilios_headers() {
    let (addr, log) = app().await;
    let url = format!("http://{addr}/capture?workflow=WW1&x=a%20b");
    let client = Client::new();
    let attempt = client
        .post_form(&url, &params(), TOKEN, FIVE_SECONDS, Some("WR0123-1"))
        .await;

    assert_eq!(attempt.error, None, "{attempt:?}");
    assert_eq!(attempt.status, Some(200));
    assert!(attempt.succeeded());
    assert_eq!(attempt.url, url);
    assert_eq!(attempt.content_type.as_deref(), Some("application/json"));
    assert_eq!(attempt.body, r#"{"instruction":"accept"}"#);
    assert!(!attempt.body_truncated);
    assert!(attempt.duration_ms < 5000);
    assert_eq!(parse_answer(&attempt), Answer::Accept);

    let received = log.lock().expect("log lock").pop().expect("one request");
    assert_eq!(received.query.as_deref(), Some("workflow=WW1&x=a%20b"));
    assert_eq!(
        header(&received, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(header(&received, "user-agent"), Some("TwilioProxy/1.1"));
    assert_eq!(header(&received, "accept"), Some("*/*"));
    assert_eq!(
        header(&received, "i-twilio-idempotency-token"),
        Some("WR0123-1")
    );

    // The form parameters arrive intact and in order.
    let pairs: Vec<(String, String)> = form_urlencoded::parse(received.body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(pairs, params());

    // The signature validates, as the application's validator computes it: the URL it was
    // called on plus the parameters it received.
    let signature = header(&received, "x-twilio-signature").expect("signature header");
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert!(verify(TOKEN, &url, &borrowed, signature));
    assert!(!verify("another token", &url, &borrowed, signature));
    assert!(!verify(
        TOKEN,
        &format!("http://{addr}/capture"),
        &borrowed,
        signature
    ));
}

#[tokio::test]
async fn no_idempotency_header_unless_given_and_no_params_is_fine() {
    let (addr, log) = app().await;
    let url = format!("http://{addr}/capture");
    let attempt = Client::new()
        .post_form(&url, &[], TOKEN, FIVE_SECONDS, None)
        .await;
    assert!(attempt.succeeded(), "{attempt:?}");
    let received = log.lock().expect("log lock").pop().expect("one request");
    assert_eq!(header(&received, "i-twilio-idempotency-token"), None);
    assert_eq!(received.body, "");
    let signature = header(&received, "x-twilio-signature").expect("signature header");
    assert!(verify(TOKEN, &url, &[], signature));
}

#[tokio::test]
async fn a_slow_application_times_out_on_time() {
    let (addr, _) = app().await;
    let started = Instant::now();
    let attempt = Client::new()
        .post_form(
            &format!("http://{addr}/slow"),
            &params(),
            TOKEN,
            Duration::from_millis(200),
            None,
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(attempt.error, Some(AttemptError::Timeout), "{attempt:?}");
    assert_eq!(attempt.status, None);
    assert!(!attempt.succeeded());
    assert!(elapsed < Duration::from_millis(600), "took {elapsed:?}");
    assert!(
        (200..600).contains(&attempt.duration_ms),
        "{}",
        attempt.duration_ms
    );
    assert!(matches!(
        parse_answer(&attempt),
        Answer::Failed { code: None, .. }
    ));
}

#[tokio::test]
async fn a_body_that_stalls_times_out_but_keeps_the_status() {
    let addr = raw_server(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"instr",
        Duration::from_secs(3),
    )
    .await;
    let started = Instant::now();
    let attempt = Client::new()
        .post_form(
            &format!("http://{addr}/"),
            &params(),
            TOKEN,
            Duration::from_millis(200),
            None,
        )
        .await;
    assert!(started.elapsed() < Duration::from_millis(600));
    assert_eq!(attempt.error, Some(AttemptError::Timeout), "{attempt:?}");
    assert_eq!(attempt.status, Some(200));
    assert!(!attempt.succeeded());
    assert!(matches!(
        parse_answer(&attempt),
        Answer::Failed { code: None, .. }
    ));
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    let started = Instant::now();
    let attempt = Client::new()
        .post_form(
            &format!("http://{addr}/assignment"),
            &params(),
            TOKEN,
            FIVE_SECONDS,
            None,
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(attempt.error, Some(AttemptError::Connect(_))),
        "{attempt:?}"
    );
    assert_eq!(attempt.status, None);
    let message = attempt.error.as_ref().map(ToString::to_string);
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.starts_with("connection failed: ")),
        "{message:?}"
    );
    assert!(matches!(
        parse_answer(&attempt),
        Answer::Failed { code: None, .. }
    ));
}

#[tokio::test]
async fn a_connection_closed_without_an_answer_is_an_error_not_a_panic() {
    let addr = raw_server(b"", Duration::ZERO).await;
    let attempt = Client::new()
        .post_form(
            &format!("http://{addr}/"),
            &params(),
            TOKEN,
            FIVE_SECONDS,
            None,
        )
        .await;
    assert!(attempt.error.is_some(), "{attempt:?}");
    assert_eq!(attempt.status, None);
    assert!(!attempt.succeeded());

    let addr = raw_server(b"NOT HTTP AT ALL\r\n\r\n", Duration::ZERO).await;
    let attempt = Client::new()
        .post_form(
            &format!("http://{addr}/"),
            &params(),
            TOKEN,
            FIVE_SECONDS,
            None,
        )
        .await;
    assert!(attempt.error.is_some(), "{attempt:?}");
    assert!(!attempt.succeeded());
}

#[tokio::test]
async fn a_500_is_reported_with_its_status_and_is_not_an_instruction() {
    let (addr, _) = app().await;
    let attempt = Client::new()
        .post_form(
            &format!("http://{addr}/error"),
            &params(),
            TOKEN,
            FIVE_SECONDS,
            None,
        )
        .await;
    assert_eq!(attempt.status, Some(500));
    assert_eq!(attempt.error, None);
    assert_eq!(attempt.body, r#"{"instruction":"accept"}"#);
    assert!(!attempt.succeeded());
    assert_eq!(
        parse_answer(&attempt),
        Answer::Failed {
            code: None,
            message: "HTTP 500".to_owned()
        }
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (addr, log) = app().await;
    let attempt = Client::new()
        .post_form(
            &format!("http://{addr}/redirect"),
            &params(),
            TOKEN,
            FIVE_SECONDS,
            None,
        )
        .await;
    assert_eq!(attempt.status, Some(302), "{attempt:?}");
    assert!(!attempt.succeeded());
    assert!(log.lock().expect("log lock").is_empty());
    assert!(matches!(
        parse_answer(&attempt),
        Answer::Failed { code: None, .. }
    ));
}

#[tokio::test]
async fn a_long_body_is_cut_at_64_kib() {
    let (addr, _) = app().await;
    let attempt = Client::new()
        .post_form(
            &format!("http://{addr}/big"),
            &params(),
            TOKEN,
            FIVE_SECONDS,
            None,
        )
        .await;
    assert_eq!(attempt.error, None, "{:?}", attempt.error);
    assert_eq!(attempt.status, Some(200));
    assert!(attempt.body_truncated);
    assert_eq!(attempt.body.len(), MAX_BODY_BYTES);
    assert!(attempt.body.chars().all(|c| c == 'é'));
    assert!(matches!(
        parse_answer(&attempt),
        Answer::Failed {
            code: Some(40001),
            ..
        }
    ));
}

#[tokio::test]
async fn answers_from_a_real_server() {
    let (addr, _) = app().await;
    let client = Client::new();
    let post = |path: &'static str| {
        let client = client.clone();
        async move {
            let attempt: Attempt = client
                .post_form(
                    &format!("http://{addr}{path}"),
                    &params(),
                    TOKEN,
                    FIVE_SECONDS,
                    None,
                )
                .await;
            assert_eq!(attempt.error, None, "{path}: {attempt:?}");
            parse_answer(&attempt)
        }
    };
    assert_eq!(post("/empty").await, Answer::Defer);
    assert_eq!(post("/empty-object").await, Answer::Defer);
    assert_eq!(
        post("/reject").await,
        Answer::Reject {
            activity_sid: Some("WA0123".to_owned())
        }
    );
    assert!(matches!(
        post("/text").await,
        Answer::Failed {
            code: Some(40000),
            ..
        }
    ));
    assert!(matches!(
        post("/garbage").await,
        Answer::Failed {
            code: Some(40001),
            ..
        }
    ));
}

#[tokio::test]
async fn bad_urls_are_reported_not_panicked_on() {
    let client = Client::new();
    for url in [
        "",
        "not a url",
        "ftp://example.com/file",
        "mailto:ops@example.com",
        "http://",
        "http://[::1",
        "http://exa mple.com/",
        "file:///etc/passwd",
        "https://example.com:99999/",
    ] {
        let started = Instant::now();
        let attempt = client
            .post_form(url, &params(), TOKEN, FIVE_SECONDS, None)
            .await;
        assert!(
            matches!(attempt.error, Some(AttemptError::InvalidUrl(_))),
            "{url:?}: {attempt:?}"
        );
        assert_eq!(attempt.url, url);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(matches!(
            parse_answer(&attempt),
            Answer::Failed { code: None, .. }
        ));
    }
}

#[tokio::test]
async fn a_bad_idempotency_token_is_reported_not_panicked_on() {
    let (addr, log) = app().await;
    let attempt = Client::new()
        .post_form(
            &format!("http://{addr}/capture"),
            &params(),
            TOKEN,
            FIVE_SECONDS,
            Some("line\nbreak"),
        )
        .await;
    assert!(
        matches!(attempt.error, Some(AttemptError::Other(_))),
        "{attempt:?}"
    );
    assert!(log.lock().expect("log lock").is_empty());
}
