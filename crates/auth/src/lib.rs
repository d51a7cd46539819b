//! # taskyard-auth
//!
//! Authentication primitives for Taskyard, pure code with no I/O:
//!
//! 1. **API key secrets** ([`new_secret`], [`SecretHash`]): how a secret is made and what the
//!    server keeps of it;
//! 2. **Access Tokens** ([`parse`], [`Unverified::verify`]): the JWTs that Twilio's helper
//!    libraries make with `AccessToken` and a `TaskRouterGrant`, signed with an API key's
//!    secret.
//!
//! ## Why secrets are kept as HMAC key schedules
//!
//! A secret is used two ways: presented as the password of HTTP Basic authentication, where
//! the server only has to recognise it, and as the HMAC key of Access Tokens, where the
//! server must compute HMAC-SHA-256/384/512 under it. A password hash serves the first but
//! not the second, and keeping the secret itself would let anyone who reads the store log in
//! with it. HMAC(K, m) = H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ m)), where K ⊕ ipad and K ⊕ opad are
//! one hash block each, so the hash's state after each of those two blocks is all HMAC ever
//! needs of K. [`SecretHash`] keeps those two states for SHA-256, SHA-384 and SHA-512 (the
//! three HS algorithms a token may name; SHA-384 starts from its own initial values, so its
//! states differ from SHA-512's) and nothing else. Getting K back from them means inverting
//! the SHA-2 compression function. A presented secret is checked by deriving its states and
//! comparing all six in constant time.
//!
//! No slow password hash is applied: secrets from [`new_secret`] carry about 190 random
//! bits, far beyond any guessing, and a slow hash would make every request slow.
//!
//! ## Limits
//!
//! - The stored form is as good as the secret for **signing**: whoever reads it can mint
//!   Access Tokens (and compute any HMAC) under that key. What it protects is the secret as a
//!   password, and the secret's value anywhere else it is used. The store still needs
//!   protecting.
//! - [`SecretHash::derive`] takes any string. A short or guessable secret set by hand can be
//!   found from its stored form at SHA-2 speed; only generated secrets are safe.
//! - Key material is not wiped from memory when dropped.
//! - [`Unverified::verify`] checks the signature and the times only. That `sub` is the key's
//!   own account, that the grants allow the request, and replay (`jti`) are the caller's
//!   business.

mod secret;
mod sha;
mod token;

pub use secret::{SECRET_LEN, SecretHash, new_secret};
pub use token::{CLOCK_SKEW_S, Claims, MAX_TTL_S, TaskRouterGrant, TokenError, Unverified, parse};

/// An HMAC algorithm an Access Token may be signed with (the JWT header's `alg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    Hs256,
    Hs384,
    Hs512,
}

impl Alg {
    /// `"HS256"`, `"HS384"` or `"HS512"` (exactly so, as RFC 7518 spells them); `None` for
    /// anything else, `"none"` included.
    pub fn parse(name: &str) -> Option<Alg> {
        match name {
            "HS256" => Some(Alg::Hs256),
            "HS384" => Some(Alg::Hs384),
            "HS512" => Some(Alg::Hs512),
            _ => None,
        }
    }

    /// The JWT name of the algorithm.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Hs384 => "HS384",
            Alg::Hs512 => "HS512",
        }
    }
}

/// Whether `a` and `b` are equal, in time that depends on their lengths only (the length is
/// not secret: every digest of one algorithm has the same).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // black_box on the accumulator keeps the optimiser from stopping at the first difference.
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    diff == 0
}
