//! Twilio Access Tokens: HS256/HS384/HS512 JWTs made by the helper libraries' `AccessToken`.

use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use crate::{Alg, SecretHash, constant_time_eq};

/// How far the issuer's clock may be from ours, in seconds, either way.
pub const CLOCK_SKEW_S: i64 = 30;

/// The longest lifetime Twilio accepts for an Access Token: 24 hours.
pub const MAX_TTL_S: i64 = 24 * 60 * 60;

/// JWT segments are unpadded base64url (RFC 7515 §2), but some encoders pad them anyway;
/// both are accepted.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// At most this much of a rejected `alg` is repeated in the error, which users see.
const ALG_ECHO_MAX: usize = 32;

/// Why a token was refused. The messages are written for the person holding the token.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    #[error("the access token is malformed: {0}")]
    Malformed(String),
    #[error("the access token is signed with {0:?}; only HS256, HS384 and HS512 are accepted")]
    UnsupportedAlgorithm(String),
    #[error("the access token has no {0:?} claim")]
    MissingClaim(&'static str),
    #[error("the access token's signature is invalid")]
    BadSignature,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet (its nbf is in the future)")]
    NotYetValid,
    #[error("the access token's lifetime is longer than the maximum of 24 hours")]
    TtlTooLong,
}

/// The TaskRouter grant of an Access Token (`grants.task_router`).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRouterGrant {
    pub workspace_sid: Option<String>,
    pub worker_sid: Option<String>,
    pub role: Option<String>,
}

/// What an Access Token says.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// `iss`: the SID of the API key whose secret signed the token (`SK…`).
    pub key_sid: String,
    /// `sub`: the account SID (`AC…`).
    pub account_sid: String,
    /// `iat`; Twilio's Python library does not set it, its Node library does.
    pub issued_at: Option<i64>,
    /// `nbf`.
    pub not_before: Option<i64>,
    /// `exp`.
    pub expires_at: i64,
    /// `grants.identity`.
    pub identity: Option<String>,
    /// `grants.task_router`.
    pub task_router: Option<TaskRouterGrant>,
    /// The header's `alg`.
    pub alg: Alg,
}

/// A token that has been read but not checked: only [`Unverified::verify`] makes its claims
/// trustworthy.
#[derive(Debug, Clone)]
pub struct Unverified {
    claims: Claims,
    /// `base64url(header) "." base64url(payload)` exactly as received: the signature covers
    /// these bytes, not a re-encoding of the JSON.
    signing_input: String,
    signature: Vec<u8>,
}

fn malformed(what: impl Into<String>) -> TokenError {
    TokenError::Malformed(what.into())
}

fn decode_segment(segment: &str, name: &str) -> Result<Vec<u8>, TokenError> {
    B64URL
        .decode(segment)
        .map_err(|_| malformed(format!("the {name} is not base64url")))
}

fn decode_json(segment: &str, name: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = decode_segment(segment, name)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(malformed(format!("the {name} is not a JSON object"))),
        Err(_) => Err(malformed(format!("the {name} is not JSON"))),
    }
}

/// A string field; absent and `null` are both `None`.
fn opt_str(map: &Map<String, Value>, key: &str) -> Result<Option<String>, TokenError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(malformed(format!("{key} is not a string"))),
    }
}

/// A NumericDate (RFC 7519 §2): seconds, which may have a fraction (dropped, rounding down).
fn opt_time(map: &Map<String, Value>, key: &str) -> Result<Option<i64>, TokenError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else {
                // Out-of-range values (u64 above i64::MAX, huge floats) are refused rather than
                // clamped, so that no arithmetic on them can overflow later either.
                match n.as_f64() {
                    Some(f) if f.is_finite() && f.abs() < 1e15 => Ok(Some(f.floor() as i64)),
                    _ => Err(malformed(format!("{key} is out of range"))),
                }
            }
        }
        Some(_) => Err(malformed(format!("{key} is not a number"))),
    }
}

fn required<T>(value: Option<T>, claim: &'static str) -> Result<T, TokenError> {
    value.ok_or(TokenError::MissingClaim(claim))
}

fn echo(alg: &str) -> String {
    alg.chars().take(ALG_ECHO_MAX).collect()
}

/// Reads a token without verifying anything: three base64url segments, a header whose `alg`
/// is HS256, HS384 or HS512, and a payload with `iss`, `sub` and `exp`.
pub fn parse(token: &str) -> Result<Unverified, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("it does not have three dot-separated parts"));
    };

    let header_json = decode_json(header, "header")?;
    let alg = match header_json.get("alg") {
        Some(Value::String(name)) => {
            Alg::parse(name).ok_or_else(|| TokenError::UnsupportedAlgorithm(echo(name)))?
        }
        None | Some(Value::Null) => return Err(malformed("the header has no alg")),
        Some(_) => return Err(malformed("the header's alg is not a string")),
    };

    let body = decode_json(payload, "payload")?;
    let grants = match body.get("grants") {
        None | Some(Value::Null) => None,
        Some(Value::Object(grants)) => Some(grants),
        Some(_) => return Err(malformed("grants is not an object")),
    };
    let identity = grants
        .map(|g| opt_str(g, "identity"))
        .transpose()?
        .flatten();
    let task_router = match grants.and_then(|g| g.get("task_router")) {
        None | Some(Value::Null) => None,
        Some(Value::Object(grant)) => Some(TaskRouterGrant {
            workspace_sid: opt_str(grant, "workspace_sid")?,
            worker_sid: opt_str(grant, "worker_sid")?,
            role: opt_str(grant, "role")?,
        }),
        Some(_) => return Err(malformed("grants.task_router is not an object")),
    };
    let claims = Claims {
        key_sid: required(opt_str(&body, "iss")?, "iss")?,
        account_sid: required(opt_str(&body, "sub")?, "sub")?,
        issued_at: opt_time(&body, "iat")?,
        not_before: opt_time(&body, "nbf")?,
        expires_at: required(opt_time(&body, "exp")?, "exp")?,
        identity,
        task_router,
        alg,
    };

    let signature = decode_segment(signature, "signature")?;
    // Everything before the last dot: the header and payload segments as received.
    let signing_input = token
        .rsplit_once('.')
        .map_or("", |(input, _)| input)
        .to_owned();
    Ok(Unverified {
        claims,
        signing_input,
        signature,
    })
}

impl Unverified {
    /// The claims as read, unverified: for finding the key named by `iss` (and the account
    /// named by `sub`) to verify with.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// Checks the signature under `key`, then the times against `now_s` (Unix seconds),
    /// allowing [`CLOCK_SKEW_S`] either way: `exp` must not have passed, `nbf` (if any) must
    /// have come, and the lifetime must be at most [`MAX_TTL_S`].
    pub fn verify(self, key: &SecretHash, now_s: i64) -> Result<Claims, TokenError> {
        let expected = key.hmac(self.claims.alg, self.signing_input.as_bytes());
        if !constant_time_eq(&expected, &self.signature) {
            return Err(TokenError::BadSignature);
        }
        let c = &self.claims;
        if c.expires_at <= now_s.saturating_sub(CLOCK_SKEW_S) {
            return Err(TokenError::Expired);
        }
        if c.not_before
            .is_some_and(|nbf| nbf > now_s.saturating_add(CLOCK_SKEW_S))
        {
            return Err(TokenError::NotYetValid);
        }
        // The lifetime counts from `iat`, or from now when there is none (Twilio's Python
        // library sets none). An `iat` in the future counts as now: otherwise a token "issued"
        // next year, expiring an hour later, would pass as a one-hour token for a year.
        let start = c.issued_at.map_or(now_s, |iat| iat.min(now_s));
        if c.expires_at.saturating_sub(start) > MAX_TTL_S {
            return Err(TokenError::TtlTooLong);
        }
        Ok(self.claims)
    }
}
