//! The callback policy at connect time: refused addresses get no traffic at all.
//!
//! Each refusal test listens on 127.0.0.1 and refuses loopback through the policy, then
//! checks that the listener's backlog is empty: a connection attempt, had there been one,
//! would be waiting there. Each has a control that the same listener does see a connection
//! when the policy allows it, so the empty backlog means something.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use taskyard_webhook::{Answer, AttemptError, Cidr, Client, Policy, parse_answer};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const TIMEOUT: Duration = Duration::from_secs(5);

fn params() -> Vec<(String, String)> {
    vec![("TaskSid".to_owned(), "WT0123".to_owned())]
}

fn deny(list: &str) -> Client {
    Client::with_policy(Policy::new(
        Vec::new(),
        Cidr::parse_list(list).expect("deny list"),
    ))
}

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    (listener, addr)
}

/// Whether a connection reached the listener (it waits in the backlog until accepted).
async fn connected(listener: &TcpListener) -> bool {
    tokio::time::timeout(Duration::from_millis(200), listener.accept())
        .await
        .is_ok()
}

/// Answers one request with `200 {}` (for the controls).
async fn answer_one(listener: TcpListener) {
    if let Ok((mut socket, _)) = listener.accept().await {
        let mut buf = vec![0u8; 16 * 1024];
        let _ = socket.read(&mut buf).await;
        let _ = socket
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
            )
            .await;
    }
}

fn refusal(attempt: &taskyard_webhook::Attempt) -> &str {
    match &attempt.error {
        Some(AttemptError::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?} ({attempt:?})"),
    }
}

#[tokio::test]
async fn the_metadata_address_is_refused_before_any_connection() {
    let client = Client::new();
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://2852039166/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
    ] {
        let started = Instant::now();
        let attempt = client.post_form(url, &params(), TOKEN, TIMEOUT, None).await;
        let why = refusal(&attempt);
        assert!(
            why.contains("an address callbacks may not reach"),
            "{url}: {why}"
        );
        assert_eq!(attempt.status, None);
        // A connection attempt to a link-local address that nothing answers would hang
        // until the timeout; a refusal is immediate.
        assert!(started.elapsed() < Duration::from_secs(1), "{url}");
        assert!(matches!(
            parse_answer(&attempt),
            Answer::Failed { code: None, .. }
        ));
    }
    let attempt = client
        .post_form(
            "http://169.254.169.254/latest/meta-data/",
            &params(),
            TOKEN,
            TIMEOUT,
            None,
        )
        .await;
    assert_eq!(
        attempt.error.map(|e| e.to_string()).as_deref(),
        Some(
            "refused by the callback policy: 169.254.169.254, an address callbacks may not reach (link-local / cloud metadata)"
        )
    );
}

#[tokio::test]
async fn a_refused_ip_literal_gets_no_connection() {
    let (listener, addr) = listener().await;
    let port = addr.port();
    let client = deny("127.0.0.0/8");
    for url in [
        format!("http://127.0.0.1:{port}/assignment"),
        format!("http://[::ffff:127.0.0.1]:{port}/assignment"),
        format!("http://2130706433:{port}/assignment"),
    ] {
        let attempt = client
            .post_form(&url, &params(), TOKEN, TIMEOUT, None)
            .await;
        assert!(
            refusal(&attempt).contains("in the callback deny list as 127.0.0.0/8"),
            "{url}: {attempt:?}"
        );
    }
    assert!(
        !connected(&listener).await,
        "a refused address was connected to"
    );

    // Control: the default policy does reach the same listener.
    let served = tokio::spawn(answer_one(listener));
    let attempt = Client::new()
        .post_form(
            &format!("http://127.0.0.1:{port}/assignment"),
            &params(),
            TOKEN,
            TIMEOUT,
            None,
        )
        .await;
    assert!(attempt.succeeded(), "{attempt:?}");
    served.await.expect("served");
}

/// The DNS-rebinding case: whatever a name resolved to when its URL was saved, the
/// connection goes only where the name resolves now, and only if that is allowed.
/// `localhost` stands in for a name that now resolves to a refused address.
#[tokio::test]
async fn a_name_that_resolves_to_a_refused_address_gets_no_connection() {
    let (listener, addr) = listener().await;
    let url = format!("http://localhost:{}/assignment", addr.port());
    let started = Instant::now();
    let attempt = deny("127.0.0.0/8,::1/128")
        .post_form(&url, &params(), TOKEN, TIMEOUT, None)
        .await;
    let why = refusal(&attempt);
    assert!(
        why.starts_with("localhost resolves only to addresses callbacks may not reach: "),
        "{why}"
    );
    assert!(why.contains("127.0.0.1"), "{why}");
    assert_eq!(attempt.status, None);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        !connected(&listener).await,
        "a refused address was connected to"
    );

    // Control: with the default policy the name reaches the listener.
    let served = tokio::spawn(answer_one(listener));
    let attempt = Client::new()
        .post_form(&url, &params(), TOKEN, TIMEOUT, None)
        .await;
    assert!(attempt.succeeded(), "{attempt:?}");
    served.await.expect("served");
}

#[tokio::test]
async fn refused_addresses_of_a_name_are_dropped_and_the_allowed_ones_used() {
    // Whatever `localhost` resolves to besides 127.0.0.1 (often ::1), refusing that leaves
    // 127.0.0.1, which the listener is on.
    let (listener, addr) = listener().await;
    let served = tokio::spawn(answer_one(listener));
    let attempt = deny("::/0")
        .post_form(
            &format!("http://localhost:{}/assignment", addr.port()),
            &params(),
            TOKEN,
            TIMEOUT,
            None,
        )
        .await;
    assert!(attempt.succeeded(), "{attempt:?}");
    served.await.expect("served");
}

#[tokio::test]
async fn an_unrestricted_client_still_refuses_other_schemes() {
    let attempt = Client::with_policy(Policy::unrestricted())
        .post_form("ftp://127.0.0.1/", &params(), TOKEN, TIMEOUT, None)
        .await;
    assert!(
        matches!(attempt.error, Some(AttemptError::InvalidUrl(_))),
        "{attempt:?}"
    );
}
