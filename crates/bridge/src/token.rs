//! What an Access Token lets its holder do on the bridge.
//!
//! The same check runs on the websocket upgrade and on every envelope (the SDK sends the
//! token in the query string and in every body): the JWT is parsed, the API key it names by
//! `iss` must exist and belong to the account in `sub`, the signature must be that key's
//! (HS256/384/512), the time claims must hold, and the TaskRouter grant must name a
//! workspace of that account (and, for a worker's connection, a worker of it). Refusals use
//! Twilio's Access Token error codes.

use axum::http::StatusCode;
use taskyard_api::ApiError;
use taskyard_auth::TokenError;
use taskyard_engine::{Sid, sid::prefix};
use taskyard_hub::Hub;

/// Twilio's codes for Access Token refusals.
pub mod code {
    pub const INVALID: u32 = 20101;
    pub const HEADER: u32 = 20102;
    pub const ISSUER: u32 = 20103;
    pub const EXPIRED: u32 = 20104;
    pub const NOT_YET_VALID: u32 = 20105;
    pub const GRANTS: u32 = 20106;
    pub const SIGNATURE: u32 = 20107;
}

/// What the token's TaskRouter grant allows. `worker` acts only on its own worker, its
/// reservations and the tasks it holds; `supervisor` may also read the whole workspace and
/// change other workers' activity and attributes; `admin` may do anything in the workspace
/// that the REST API allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Worker,
    Supervisor,
    Admin,
}

/// A verified token.
#[derive(Debug, Clone)]
pub struct Grant {
    pub account: Sid,
    pub key: Sid,
    pub workspace: Sid,
    pub worker: Option<Sid>,
    pub role: Role,
    /// When the token expires (Unix seconds).
    pub expires_at: i64,
}

fn refuse(code: u32, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

fn from_token_error(e: TokenError) -> ApiError {
    let code = match e {
        TokenError::Malformed(_) | TokenError::MissingClaim(_) => code::INVALID,
        TokenError::UnsupportedAlgorithm(_) => code::HEADER,
        TokenError::BadSignature => code::SIGNATURE,
        TokenError::Expired | TokenError::TtlTooLong => code::EXPIRED,
        TokenError::NotYetValid => code::NOT_YET_VALID,
    };
    refuse(code, format!("Invalid Access Token: {e}"))
}

/// Checks `token` at `now_s` (Unix seconds). On a cluster, an API key another node made is
/// looked up first.
pub async fn check(hub: &Hub, token: &str, now_s: i64) -> Result<Grant, ApiError> {
    let unverified = taskyard_auth::parse(token).map_err(from_token_error)?;
    hub.learn_credentials(&unverified.claims().key_sid).await;
    let claims = unverified.claims();
    let issuer = || {
        refuse(
            code::ISSUER,
            "Invalid Access Token issuer/subject: iss must be an API key of the account in sub",
        )
    };
    let key = Sid::parse_with(&claims.key_sid, prefix::API_KEY).map_err(|_| issuer())?;
    let account = Sid::parse_with(&claims.account_sid, prefix::ACCOUNT).map_err(|_| issuer())?;
    let (owner, secret) = hub.api_key_secret(key).ok_or_else(issuer)?;
    if owner != account {
        return Err(issuer());
    }
    let claims = unverified
        .verify(&secret, now_s)
        .map_err(from_token_error)?;
    let grants = |why: &str| refuse(code::GRANTS, format!("Invalid Access Token grants: {why}"));
    let tr = claims
        .task_router
        .as_ref()
        .ok_or_else(|| grants("the token has no task_router grant"))?;
    let workspace = tr
        .workspace_sid
        .as_deref()
        .and_then(|s| Sid::parse_with(s, prefix::WORKSPACE).ok())
        .ok_or_else(|| grants("task_router.workspace_sid must be a workspace SID"))?;
    if hub.workspace(account, workspace).is_err() {
        return Err(grants(
            "task_router.workspace_sid is not a workspace of the token's account",
        ));
    }
    let worker = match tr.worker_sid.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            Sid::parse_with(s, prefix::WORKER)
                .map_err(|_| grants("task_router.worker_sid must be a worker SID"))?,
        ),
    };
    let role = match tr.role.as_deref() {
        None | Some("") | Some("worker") => Role::Worker,
        Some("supervisor") => Role::Supervisor,
        Some("admin") => Role::Admin,
        Some(other) => {
            return Err(grants(&format!(
                "task_router.role '{other}' is not worker, supervisor or admin"
            )));
        }
    };
    if role == Role::Worker && worker.is_none() {
        return Err(grants("a worker token needs task_router.worker_sid"));
    }
    Ok(Grant {
        account,
        key,
        workspace,
        worker,
        role,
        expires_at: claims.expires_at,
    })
}
