//! Twilio's API Keys (`/2010-04-01/Accounts/{AC}/Keys`): second credentials of an account,
//! for REST calls (`Client(api_key, api_secret, account_sid)`) and for signing Access Tokens.
//! The secret is in the create answer only; Taskyard keeps a hash of it
//! (`taskyard-auth`'s `SecretHash`). Only the auth token of the account (or of its parent
//! account) manages keys, as with Twilio's standard keys.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use taskyard_engine::{Sid, sid::prefix};

use super::{Ctx, Form, json, to_json};
use crate::error::ApiError;
use crate::render;

/// Longest `FriendlyName` of a key (Twilio: 64 characters).
const MAX_NAME: usize = 64;

/// The account in the path, if the caller may manage its keys: itself or a subaccount.
fn account(ctx: &Ctx, ac: &str) -> Result<Sid, ApiError> {
    ctx.require_auth_token()?;
    let sid = Sid::parse_with(ac, prefix::ACCOUNT).map_err(|_| ctx.not_found())?;
    ctx.app
        .hub
        .account(sid)
        .filter(|a| a.sid == ctx.account || a.owner_account_sid == Some(ctx.account))
        .map(|a| a.sid)
        .ok_or_else(|| ctx.not_found())
}

fn key_sid(ctx: &Ctx, file: &str) -> Result<Sid, ApiError> {
    let sid = file.strip_suffix(".json").unwrap_or(file);
    Sid::parse_with(sid, prefix::API_KEY).map_err(|_| ctx.not_found())
}

fn friendly_name(p: &crate::params::Params) -> Result<Option<String>, ApiError> {
    match p.string("FriendlyName") {
        Some(n) if n.chars().count() > MAX_NAME => Err(ApiError::invalid(format!(
            "FriendlyName must be at most {MAX_NAME} characters"
        ))),
        other => Ok(other),
    }
}

pub async fn create(ctx: Ctx, Path(ac): Path<String>, Form(p): Form) -> Result<Response, ApiError> {
    let account = account(&ctx, &ac)?;
    let name = friendly_name(&p)?.unwrap_or_default();
    let (key, secret) = ctx
        .app
        .hub
        .create_api_key(account, name)
        .await
        .map_err(|e| ApiError::from_hub(e, &ctx.path))?;
    Ok(json(
        StatusCode::CREATED,
        to_json(&render::key(&key, Some(&secret))),
    ))
}

pub async fn fetch(
    ctx: Ctx,
    Path((ac, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let account = account(&ctx, &ac)?;
    let sid = key_sid(&ctx, &file)?;
    let a = ctx
        .app
        .hub
        .account(account)
        .ok_or_else(|| ctx.not_found())?;
    let key = a
        .api_keys
        .iter()
        .find(|k| k.sid == sid)
        .ok_or_else(|| ctx.not_found())?;
    Ok(json(StatusCode::OK, to_json(&render::key(key, None))))
}

pub async fn update(
    ctx: Ctx,
    Path((ac, file)): Path<(String, String)>,
    Form(p): Form,
) -> Result<Response, ApiError> {
    let account = account(&ctx, &ac)?;
    let sid = key_sid(&ctx, &file)?;
    let a = ctx
        .app
        .hub
        .account(account)
        .ok_or_else(|| ctx.not_found())?;
    let Some(current) = a.api_keys.iter().find(|k| k.sid == sid) else {
        return Err(ctx.not_found());
    };
    let name = friendly_name(&p)?.unwrap_or_else(|| current.friendly_name.clone());
    let key = ctx
        .app
        .hub
        .rename_api_key(account, sid, name)
        .await
        .map_err(|e| ApiError::from_hub(e, &ctx.path))?
        .ok_or_else(|| ctx.not_found())?;
    Ok(json(StatusCode::OK, to_json(&render::key(&key, None))))
}

pub async fn delete(
    ctx: Ctx,
    Path((ac, file)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let account = account(&ctx, &ac)?;
    let sid = key_sid(&ctx, &file)?;
    let removed = ctx
        .app
        .hub
        .delete_api_key(account, sid)
        .await
        .map_err(|e| ApiError::from_hub(e, &ctx.path))?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ctx.not_found())
    }
}

#[derive(Serialize)]
struct KeyList<'a> {
    keys: Vec<render::KeyJson<'a>>,
    first_page_uri: String,
    end: usize,
    next_page_uri: Option<String>,
    page: u32,
    page_size: usize,
    previous_page_uri: Option<String>,
    start: usize,
    uri: String,
}

/// `GET …/Keys.json`: every key of the account, on one page (an account has few).
pub async fn list(ctx: Ctx, Path(ac): Path<String>) -> Result<Response, ApiError> {
    let account = account(&ctx, &ac)?;
    let a = ctx
        .app
        .hub
        .account(account)
        .ok_or_else(|| ctx.not_found())?;
    let uri = format!("/2010-04-01/Accounts/{account}/Keys.json");
    let body = KeyList {
        keys: a.api_keys.iter().map(|k| render::key(k, None)).collect(),
        first_page_uri: format!("{uri}?PageSize=1000&Page=0"),
        end: a.api_keys.len().saturating_sub(1),
        next_page_uri: None,
        page: 0,
        page_size: a.api_keys.len().max(1),
        previous_page_uri: None,
        start: 0,
        uri,
    };
    Ok(json(StatusCode::OK, to_json(&body)))
}
