//! # taskyard-api
//!
//! Twilio TaskRouter v1 on the wire, and nothing else: routing of every v1 path, HTTP Basic
//! authentication, form parameters in, snake_case JSON out, absolute `url`/`links`, the paging
//! envelope and Twilio's error document. Each request becomes a typed engine
//! [`Command`](taskyard_engine::Command) (or a read) sent to the workspace's actor through the
//! [`Hub`](taskyard_hub::Hub); routing decisions and state live in the engine, durability in
//! the hub.
//!
//! * [`routes`] — the route table ([`router`]) and one handler per operation.
//! * [`params`] — typed access to form and query parameters with Twilio-shaped errors.
//! * [`paging`] — the `meta` envelope and keyset page tokens.
//! * [`render`] — the response body of every resource.
//! * [`rate`] — the per-account request rate limit (off unless configured).
//! * [`error`] — the single mapping from internal errors to `{code, message, more_info, status}`.
//! * [`openapi`] — the OpenAPI document served at `/openapi.json` (Twilio's, plus Taskyard's
//!   own routes).

pub mod error;
pub mod openapi;
pub mod paging;
pub mod params;
pub mod rate;
pub mod render;
pub mod routes;

pub use error::ApiError;
pub use routes::{App, Authenticated, Ctx, router};
