//! Twilio's error document, and the one table that maps Taskyard's errors onto it.
//!
//! Every error leaves the server as `{"code", "message", "more_info", "status"}` with the
//! matching HTTP status, exactly as Twilio's REST API answers, so helper libraries raise their
//! usual exception (`TwilioRestException` in Python) with the right `code` and `status`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use taskyard_engine::EngineError;
use taskyard_hub::HubError;

/// An error on its way to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: u32,
    pub message: String,
    /// The request changed nothing because its workspace moved to another node: the
    /// answer carries [`MOVED_HEADER`], and sending it again is safe.
    pub moved: bool,
    /// Seconds the client should wait before trying again (`Retry-After`), for a 429.
    pub retry_after: Option<u32>,
}

/// Twilio's error codes used by Taskyard.
pub mod code {
    /// Invalid or missing parameter, invalid state transition.
    pub const INVALID: u32 = 20001;
    /// Authentication failed.
    pub const AUTH: u32 = 20003;
    /// Method not allowed on this resource.
    pub const METHOD: u32 = 20004;
    /// Authenticated, but not allowed to do this.
    pub const FORBIDDEN: u32 = 20403;
    /// Resource not found.
    pub const NOT_FOUND: u32 = 20404;
    /// Uniqueness conflict (Twilio does not publish one code for this; Taskyard uses 20409).
    pub const CONFLICT: u32 = 20409;
    /// Accepting a rescinded reservation (Twilio answers "a 410 series response").
    pub const GONE: u32 = 20410;
    /// `If-Match` mismatch (Twilio answers 412; Taskyard uses 20412 as the code).
    pub const PRECONDITION: u32 = 20412;
    /// Too many requests (the per-account rate limit, or the server's connection limit).
    pub const TOO_MANY: u32 = 20429;
    /// Internal error.
    pub const INTERNAL: u32 = 20500;
    /// A TaskRouter route Taskyard does not serve yet.
    pub const NOT_IMPLEMENTED: u32 = 20501;
    /// Service unavailable: on a cluster, the workspace is between nodes (Twilio's code for
    /// a 503).
    pub const UNAVAILABLE: u32 = 20503;
}

/// Set on the answer to a request that changed nothing because its workspace moved to
/// another node meanwhile: the node that forwarded it (or the client) may send it again.
pub const MOVED_HEADER: &str = "x-taskyard-moved";

impl ApiError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            moved: false,
            retry_after: None,
        }
    }

    /// 400 / 20001.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code::INVALID, message)
    }

    /// 404 / 20404 naming the requested path, as Twilio words it.
    pub fn not_found(path: &str) -> Self {
        let path = path.strip_prefix("/v1").unwrap_or(path);
        Self::new(
            StatusCode::NOT_FOUND,
            code::NOT_FOUND,
            format!("The requested resource {path} was not found"),
        )
    }

    /// 429 / 20429: the account's request rate is used up for `retry_after`.
    pub fn too_many_requests(retry_after: std::time::Duration) -> Self {
        let seconds = retry_after.as_secs_f64().ceil().clamp(1.0, 86_400.0) as u32;
        ApiError {
            retry_after: Some(seconds),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                code::TOO_MANY,
                format!("Too many requests for this account; retry after {seconds} s"),
            )
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code::AUTH, "Authenticate")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            code::METHOD,
            "Method not allowed",
        )
    }

    /// Maps a hub (or engine) error for a request to `path`.
    pub fn from_hub(e: HubError, path: &str) -> Self {
        match e {
            HubError::Engine(e) => Self::from_engine(e, path),
            HubError::WorkspaceNotFound => Self::not_found(path),
            HubError::Moved(ws) => Self {
                moved: true,
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code::UNAVAILABLE,
                    format!(
                        "Workspace {ws} moved to another node while the request ran; nothing was changed, send it again"
                    ),
                )
            },
            HubError::Store(e) if e.connection_lost() => {
                tracing::error!(error = %e, "lost the database connection during a request");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code::UNAVAILABLE,
                    "The database connection was lost; the change may or may not have been stored",
                )
            }
            HubError::Store(e) => {
                tracing::error!(error = %e, "request failed in the store");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    code::INTERNAL,
                    "Internal error: the change could not be stored",
                )
            }
            HubError::Restore { .. } => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                code::INTERNAL,
                "Internal error",
            ),
        }
    }

    /// The table: engine errors to Twilio statuses and codes.
    pub fn from_engine(e: EngineError, path: &str) -> Self {
        match e {
            EngineError::NotFound { .. } => Self::not_found(path),
            EngineError::Invalid { message, .. } => Self::invalid(message),
            EngineError::Refused { message } => Self::invalid(message),
            EngineError::Conflict { message } => {
                Self::new(StatusCode::CONFLICT, code::CONFLICT, message)
            }
            EngineError::Gone { message } => Self::new(StatusCode::GONE, code::GONE, message),
            e @ EngineError::VersionMismatch { .. } => Self::new(
                StatusCode::PRECONDITION_FAILED,
                code::PRECONDITION,
                e.to_string(),
            ),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    code: u32,
    message: &'a str,
    more_info: String,
    status: u16,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            code: self.code,
            message: &self.message,
            more_info: format!("https://www.twilio.com/docs/errors/{}", self.code),
            status: self.status.as_u16(),
        };
        let text = serde_json::to_string(&body).unwrap_or_default();
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            text,
        )
            .into_response();
        if self.moved {
            resp.headers_mut()
                .insert(MOVED_HEADER, HeaderValue::from_static("1"));
        }
        if let Some(seconds) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Taskyard\""),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskyard_engine::Kind;

    #[test]
    fn engine_errors_map_to_twilio_statuses_and_codes() {
        let path = "/v1/Workspaces/WSx/Workers/WKy";
        let cases = [
            (
                EngineError::NotFound {
                    kind: Kind::Worker,
                    id: "WKy".into(),
                },
                404,
                20404,
            ),
            (
                EngineError::Invalid {
                    param: "Attributes",
                    message: "bad".into(),
                },
                400,
                20001,
            ),
            (
                EngineError::Refused {
                    message: "no".into(),
                },
                400,
                20001,
            ),
            (
                EngineError::Conflict {
                    message: "dup".into(),
                },
                409,
                20409,
            ),
            (
                EngineError::VersionMismatch {
                    given: "1".into(),
                    current: 2,
                },
                412,
                20412,
            ),
        ];
        for (e, status, code) in cases {
            let a = ApiError::from_engine(e, path);
            assert_eq!((a.status.as_u16(), a.code), (status, code));
        }
        assert_eq!(
            ApiError::not_found(path).message,
            "The requested resource /Workspaces/WSx/Workers/WKy was not found"
        );
    }
}
