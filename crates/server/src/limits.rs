//! Limits on what clients may send and hold: body size and form fields (enforced by the API
//! crate), the request body's arrival time, open connections, the time to send a request's
//! headers (both in [`crate::serve`]) and the per-account request rate.
//!
//! Each is answered with Twilio's error document and changes nothing. The limits fixed by
//! TaskRouter itself (4,096-character attributes, 1,000 per page, expression length and
//! depth, 64-character names) are not settings: clients rely on them being Twilio's.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use taskyard_api::ApiError;
use taskyard_api::error::code;

/// The settings, as flags and environment variables.
#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// Largest request body, in bytes (larger answers 413).
    #[arg(long, env = "TASKYARD_MAX_BODY_BYTES", default_value_t = taskyard_api::routes::MAX_BODY)]
    pub max_body_bytes: usize,

    /// Most fields a form-encoded request body may have (more answers 400).
    #[arg(long, env = "TASKYARD_MAX_FORM_FIELDS", default_value_t = taskyard_api::routes::MAX_FORM_FIELDS)]
    pub max_form_fields: usize,

    /// Most connections open at once (HTTP, event streams and agents' websockets together);
    /// one more is answered 429 and closed.
    #[arg(long, env = "TASKYARD_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Seconds a client has to send a request's headers, from the moment the connection is
    /// ready for one; also how long an idle keep-alive connection stays open.
    #[arg(long, env = "TASKYARD_HEADER_TIMEOUT", default_value_t = 30.0)]
    pub header_timeout: f64,

    /// Seconds a client has to send a request's whole body once its headers arrived
    /// (longer answers 408).
    #[arg(long, env = "TASKYARD_BODY_TIMEOUT", default_value_t = 30.0)]
    pub body_timeout: f64,

    /// Requests per second each account may make (REST and agents' actions together); 0
    /// turns the limit off. Over it, requests are answered 429 with `Retry-After`.
    #[arg(long, env = "TASKYARD_RATE_LIMIT", default_value_t = 0.0)]
    pub rate_limit: f64,

    /// Requests an account may make at once above the rate, after a quiet spell
    /// [default: one second's worth of --rate-limit].
    #[arg(long, env = "TASKYARD_RATE_BURST")]
    pub rate_burst: Option<f64>,
}

impl Limits {
    /// What the API crate enforces, checked.
    pub fn api(&self) -> anyhow::Result<taskyard_api::routes::Limits> {
        anyhow::ensure!(
            self.max_body_bytes >= 1024,
            "--max-body-bytes must be at least 1024"
        );
        anyhow::ensure!(
            self.max_form_fields >= 1,
            "--max-form-fields must be at least 1"
        );
        let rate = match self.rate_limit {
            0.0 => None,
            r if r.is_finite() && r > 0.0 => {
                let burst = self.rate_burst.unwrap_or(r);
                anyhow::ensure!(
                    burst.is_finite() && burst >= 1.0,
                    "--rate-burst must be at least 1"
                );
                Some(std::sync::Arc::new(taskyard_api::rate::RateLimiter::new(
                    taskyard_api::rate::RateLimit {
                        per_second: r,
                        burst,
                    },
                )))
            }
            _ => anyhow::bail!("--rate-limit must be 0 (off) or a positive number"),
        };
        Ok(taskyard_api::routes::Limits {
            max_body: self.max_body_bytes,
            max_form_fields: self.max_form_fields,
            rate,
        })
    }

    /// What the connection loop enforces, checked.
    pub fn connections(&self) -> anyhow::Result<crate::serve::Options> {
        anyhow::ensure!(
            self.max_connections >= 1,
            "--max-connections must be at least 1"
        );
        Ok(crate::serve::Options {
            max_connections: self.max_connections,
            header_timeout: seconds(self.header_timeout, "--header-timeout")?,
        })
    }

    pub fn body_timeout(&self) -> anyhow::Result<Duration> {
        seconds(self.body_timeout, "--body-timeout")
    }
}

fn seconds(v: f64, name: &str) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        v.is_finite() && (0.1..=3600.0).contains(&v),
        "{name} must be between 0.1 and 3600 seconds"
    );
    Ok(Duration::from_secs_f64(v))
}

/// Reads a request's body within `timeout` before any handler sees it, so a client that
/// sends its body a byte at a time is answered 408 instead of holding a handler (and a
/// workspace's queue) open, and a body over `max` bytes is answered 413 without reading
/// the rest.
pub async fn read_body(
    axum::extract::State((timeout, max)): axum::extract::State<(Duration, usize)>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    // Websocket upgrades and streams carry no body: nothing to wait for.
    if !has_body {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, max)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        // Longer than the limit (or broken off, when no one is left to read the answer).
        Ok(Err(_)) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::INVALID,
            format!("The request body is larger than {max} bytes"),
        )
        .into_response(),
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            code::INVALID,
            format!(
                "The request body did not arrive within {} s",
                timeout.as_secs_f64()
            ),
        )
        .into_response(),
    }
}
