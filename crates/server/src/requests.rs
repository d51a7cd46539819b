//! One log line per HTTP request, under the request's id.
//!
//! Every request gets an id, answered in a `Twilio-Request-Id` header as Twilio's API does
//! (`RQ` and 32 hex digits), and every log line written while it is handled carries it (the
//! `request` span). An id that arrives with the request (`Twilio-Request-Id`, or `X-Request-Id`
//! from a load balancer) is kept when it looks like one, so a request forwarded between the
//! nodes of a cluster, or traced from a proxy, has one id everywhere.
//!
//! The same middleware counts the request in the process's metrics, by method, route
//! template (set on the response by [`mark_route`]) and status.
//!
//! The line has the method, the path, the status and the time to the response's head
//! (for the event stream and websockets, the time until they started). Never the query
//! string: a websocket's URL carries an Access Token in it. Nor any header: they carry
//! credentials.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

/// The response header with the request's id, as Twilio names it.
pub const REQUEST_ID: &str = "twilio-request-id";
/// The header load balancers and proxies commonly use for the same thing.
const PROXY_REQUEST_ID: &str = "x-request-id";

pub async fn log(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = [REQUEST_ID, PROXY_REQUEST_ID]
        .iter()
        .find_map(|name| req.headers().get(*name).filter(|v| acceptable(v)).cloned())
        .unwrap_or_else(new_id);
    // Passed on with the request, so that a node forwarding it sends the same id along.
    req.headers_mut().insert(REQUEST_ID, id.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", id = id.to_str().unwrap_or_default());
    let mut resp = next.run(req).instrument(span.clone()).await;
    resp.headers_mut().insert(REQUEST_ID, id);
    let status = resp.status().as_u16();
    let took = started.elapsed().as_secs_f64();
    let ms = took * 1000.0;
    if taskyard_metrics::enabled() {
        count(&method, &resp, status, took);
    }
    span.in_scope(|| {
        tracing::info!(target: "taskyard::request", %method, path, status, ms = (ms * 100.0).round() / 100.0, "request")
    });
    resp
}

/// Counts the request by method, route template and status.
fn count(method: &axum::http::Method, resp: &Response, status: u16, took: f64) {
    let route = match resp.extensions().get::<MatchedPath>() {
        Some(m) => m.as_str(),
        None if resp.extensions().get::<Forwarded>().is_some() => "forwarded",
        None => "unmatched",
    };
    let m = taskyard_metrics::metrics();
    let route = taskyard_metrics::RouteLabels {
        method: method.to_string(),
        route: route.to_string(),
    };
    m.http_seconds.get_or_create(&route).observe(took);
    m.http_requests
        .get_or_create(&taskyard_metrics::HttpLabels {
            method: route.method,
            route: route.route,
            status,
        })
        .inc();
}

/// Marks a response with the route template that answered it. A route layer: it runs once
/// the router has matched, which the outer [`log`] (run before routing) cannot see.
pub async fn mark_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = next.run(req).await;
    if let Some(r) = route {
        resp.extensions_mut().insert(r);
    }
    resp
}

/// Marks a response another node of the cluster gave (the request was forwarded).
#[derive(Debug, Clone, Copy)]
pub struct Forwarded;

/// An id from outside is kept only if it is short and plain (it is echoed and logged).
fn acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    (1..=64).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn new_id() -> HeaderValue {
    let mut bytes = [0u8; 16];
    // Without the system's randomness, a time-based id still tells requests apart.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_be_bytes();
    }
    let mut text = String::with_capacity(34);
    text.push_str("RQ");
    for b in bytes {
        text.push_str(&format!("{b:02x}"));
    }
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("RQ"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_twilios_and_differ() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        let a = a.to_str().expect("ascii");
        assert_eq!(a.len(), 34);
        assert!(a.starts_with("RQ"));
        assert!(a[2..].bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn only_plain_short_ids_are_taken_from_outside() {
        for ok in ["RQ0123abcd", "a-b_c.d", &"x".repeat(64)] {
            assert!(
                acceptable(&HeaderValue::from_str(ok).expect("header")),
                "{ok}"
            );
        }
        for bad in [
            "",
            "has space",
            "quote\"",
            "new\tline",
            &"x".repeat(65),
            "é",
        ] {
            let v =
                HeaderValue::from_bytes(bad.as_bytes()).unwrap_or(HeaderValue::from_static(" "));
            assert!(!acceptable(&v), "{bad:?}");
        }
    }
}
