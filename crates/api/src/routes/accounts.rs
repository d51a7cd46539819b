//! A small part of Twilio's 2010-04-01 Accounts API: enough to create subaccounts, each with
//! its own auth token and its own, isolated workspaces
//! (`client.api.v2010.accounts.create(friendly_name=…)` in the Python helper library).

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use taskyard_engine::{Sid, sid::prefix};

use super::{Ctx, Form, json, to_json};
use crate::error::ApiError;
use crate::render;

pub async fn create(ctx: Ctx, Form(p): Form) -> Result<Response, ApiError> {
    ctx.require_auth_token()?;
    let name = p
        .string("FriendlyName")
        .unwrap_or_else(|| format!("SubAccount created by {}", ctx.account));
    let account = ctx
        .app
        .hub
        .create_account(name, Some(ctx.account))
        .await
        .map_err(|e| ApiError::from_hub(e, &ctx.path))?;
    Ok(json(
        StatusCode::CREATED,
        to_json(&render::account(&account)),
    ))
}

/// `GET /2010-04-01/Accounts/{Sid}.json`: the caller itself or one of its subaccounts.
pub async fn fetch(ctx: Ctx, Path(file): Path<String>) -> Result<Response, ApiError> {
    ctx.require_auth_token()?;
    let sid = file.strip_suffix(".json").unwrap_or(&file);
    let sid = Sid::parse_with(sid, prefix::ACCOUNT).map_err(|_| ctx.not_found())?;
    let account = ctx
        .app
        .hub
        .account(sid)
        .filter(|a| a.sid == ctx.account || a.owner_account_sid == Some(ctx.account))
        .ok_or_else(|| ctx.not_found())?;
    Ok(json(StatusCode::OK, to_json(&render::account(&account))))
}

#[derive(Serialize)]
struct AccountList<'a> {
    accounts: Vec<render::AccountJson<'a>>,
    first_page_uri: &'static str,
    end: usize,
    next_page_uri: Option<String>,
    page: u32,
    page_size: usize,
    previous_page_uri: Option<String>,
    start: usize,
    uri: &'static str,
}

/// `GET /2010-04-01/Accounts.json`: the caller and its subaccounts, on one page.
pub async fn list(ctx: Ctx) -> Result<Response, ApiError> {
    ctx.require_auth_token()?;
    let mut all: Vec<_> = ctx.app.hub.account(ctx.account).into_iter().collect();
    all.extend(ctx.app.hub.subaccounts(ctx.account));
    let name = ctx.query.string("FriendlyName");
    all.retain(|a| name.as_ref().is_none_or(|n| *n == a.friendly_name));
    let body = AccountList {
        accounts: all.iter().map(render::account).collect(),
        first_page_uri: "/2010-04-01/Accounts.json?PageSize=1000&Page=0",
        end: all.len().saturating_sub(1),
        next_page_uri: None,
        page: 0,
        page_size: all.len().max(1),
        previous_page_uri: None,
        start: 0,
        uri: "/2010-04-01/Accounts.json",
    };
    Ok(json(StatusCode::OK, to_json(&body)))
}
