//! API key secrets: generation, and the stored form ([`SecretHash`]).

use std::fmt;

use crate::sha::{
    BLOCK256, BLOCK512, IV256, IV384, IV512, absorb256, absorb512, bytes256, bytes512, finish256,
    finish512,
};
use crate::{Alg, constant_time_eq};

/// The characters of a secret: Twilio's API key secrets are 32 of these.
const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The length of a secret made by [`new_secret`]: 32 × log2(62) ≈ 190 bits.
pub const SECRET_LEN: usize = 32;

/// The prefix of [`SecretHash::to_stored`]; a later scheme gets a new one.
const STORED_PREFIX: &str = "hmac-v1:";

/// 2 SHA-256 states of 8 × 4 bytes, 4 SHA-512-sized states of 8 × 8 bytes.
const STATE_BYTES: usize = 2 * 32 + 4 * 64;

/// A new API key secret: 32 characters from `[A-Za-z0-9]`, from the operating system's
/// random number generator.
///
/// # Panics
///
/// If the operating system cannot give random bytes. There is no sound fallback for a
/// secret, and on the platforms the server runs on this does not happen once the system
/// has booted.
pub fn new_secret() -> String {
    let mut out = String::with_capacity(SECRET_LEN);
    let mut buf = [0u8; 64];
    while out.len() < SECRET_LEN {
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut buf).expect("the operating system's random number generator failed");
        for &b in &buf {
            // 248 = 4 × 62: bytes at or above it are dropped so that every character is
            // equally likely (a plain `b % 62` would favour the first 8 of them).
            if b < 248 && out.len() < SECRET_LEN {
                out.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    out
}

/// What the server keeps of an API key secret: the HMAC key schedule of the secret for
/// SHA-256, SHA-384 and SHA-512.
///
/// HMAC(K, m) = H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ m)), and K ⊕ ipad and K ⊕ opad are each
/// exactly one block, so H's state after absorbing each of those blocks is all that HMAC
/// needs of the key. These six states are kept instead of the secret. They cannot be turned
/// back into the secret (that would invert the SHA-2 compression function), yet they let
/// the server both check a presented secret ([`matches`](Self::matches), for HTTP Basic
/// authentication) and sign or check under it ([`hmac`](Self::hmac), for Access Tokens).
///
/// `PartialEq` is the derived, variable-time comparison, for tests and bookkeeping; checking
/// a secret that a client presented goes through [`matches`](Self::matches).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash {
    inner256: [u32; 8],
    outer256: [u32; 8],
    inner384: [u64; 8],
    outer384: [u64; 8],
    inner512: [u64; 8],
    outer512: [u64; 8],
}

impl fmt::Debug for SecretHash {
    // The states sign tokens: they must not end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretHash").finish_non_exhaustive()
    }
}

/// The key padded to one block, as HMAC does: hashed first if longer than the block.
fn padded_key<const B: usize>(key: &[u8], hash: impl Fn(&[u8]) -> Vec<u8>) -> [u8; B] {
    let mut block = [0u8; B];
    if key.len() > B {
        let digest = hash(key);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    block
}

fn xor<const B: usize>(block: &[u8; B], pad: u8) -> [u8; B] {
    block.map(|b| b ^ pad)
}

const IPAD: u8 = 0x36;
const OPAD: u8 = 0x5c;

fn schedule256(key: &[u8]) -> ([u32; 8], [u32; 8]) {
    let block: [u8; BLOCK256] = padded_key(key, |k| bytes256(&finish256(IV256, 0, k)));
    let (mut inner, mut outer) = (IV256, IV256);
    absorb256(&mut inner, &xor(&block, IPAD));
    absorb256(&mut outer, &xor(&block, OPAD));
    (inner, outer)
}

/// SHA-384 and SHA-512 share the block size and differ in initial values and output length.
fn schedule512(key: &[u8], iv: [u64; 8], out_len: usize) -> ([u64; 8], [u64; 8]) {
    let block: [u8; BLOCK512] = padded_key(key, |k| bytes512(&finish512(iv, 0, k), out_len));
    let (mut inner, mut outer) = (iv, iv);
    absorb512(&mut inner, &xor(&block, IPAD));
    absorb512(&mut outer, &xor(&block, OPAD));
    (inner, outer)
}

fn hex_nibble(c: u8) -> Option<u8> {
    // Lowercase only: the stored form has exactly one spelling.
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl SecretHash {
    /// The key schedule of `secret` (its UTF-8 bytes are the HMAC key).
    pub fn derive(secret: &str) -> SecretHash {
        let key = secret.as_bytes();
        let (inner256, outer256) = schedule256(key);
        let (inner384, outer384) = schedule512(key, IV384, 48);
        let (inner512, outer512) = schedule512(key, IV512, 64);
        SecretHash {
            inner256,
            outer256,
            inner384,
            outer384,
            inner512,
            outer512,
        }
    }

    /// All six states, big-endian, in the order of [`to_stored`](Self::to_stored).
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STATE_BYTES);
        for w in self.inner256.iter().chain(&self.outer256) {
            out.extend_from_slice(&w.to_be_bytes());
        }
        for state in [
            &self.inner384,
            &self.outer384,
            &self.inner512,
            &self.outer512,
        ] {
            for w in state {
                out.extend_from_slice(&w.to_be_bytes());
            }
        }
        out
    }

    /// The stored form: `hmac-v1:` and 640 lowercase hex digits, the SHA-256 inner and outer
    /// states, then SHA-384's, then SHA-512's, each as big-endian words.
    pub fn to_stored(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(STORED_PREFIX.len() + 2 * STATE_BYTES);
        out.push_str(STORED_PREFIX);
        for b in self.to_bytes() {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }

    /// Reads back [`to_stored`](Self::to_stored)'s form; `None` for anything else (another
    /// prefix, another length, a character that is not a lowercase hex digit).
    pub fn from_stored(stored: &str) -> Option<SecretHash> {
        let hex = stored.strip_prefix(STORED_PREFIX)?.as_bytes();
        if hex.len() != 2 * STATE_BYTES {
            return None;
        }
        let mut bytes = Vec::with_capacity(STATE_BYTES);
        for pair in hex.chunks_exact(2) {
            bytes.push(hex_nibble(pair[0])? << 4 | hex_nibble(pair[1])?);
        }
        let mut h = SecretHash {
            inner256: [0; 8],
            outer256: [0; 8],
            inner384: [0; 8],
            outer384: [0; 8],
            inner512: [0; 8],
            outer512: [0; 8],
        };
        let mut rest = bytes.as_slice();
        for state in [&mut h.inner256, &mut h.outer256] {
            for w in state {
                let (word, tail) = rest.split_first_chunk::<4>()?;
                *w = u32::from_be_bytes(*word);
                rest = tail;
            }
        }
        for state in [
            &mut h.inner384,
            &mut h.outer384,
            &mut h.inner512,
            &mut h.outer512,
        ] {
            for w in state {
                let (word, tail) = rest.split_first_chunk::<8>()?;
                *w = u64::from_be_bytes(*word);
                rest = tail;
            }
        }
        Some(h)
    }

    /// Whether `presented_secret` is the secret this was derived from. All six states are
    /// compared, in constant time.
    pub fn matches(&self, presented_secret: &str) -> bool {
        constant_time_eq(
            &SecretHash::derive(presented_secret).to_bytes(),
            &self.to_bytes(),
        )
    }

    /// HMAC of `msg` under the secret (RFC 2104): 32 bytes for HS256, 48 for HS384, 64 for
    /// HS512.
    pub fn hmac(&self, alg: Alg, msg: &[u8]) -> Vec<u8> {
        match alg {
            Alg::Hs256 => {
                let inner = bytes256(&finish256(self.inner256, BLOCK256 as u64, msg));
                bytes256(&finish256(self.outer256, BLOCK256 as u64, &inner))
            }
            Alg::Hs384 => {
                let inner = bytes512(&finish512(self.inner384, BLOCK512 as u64, msg), 48);
                bytes512(&finish512(self.outer384, BLOCK512 as u64, &inner), 48)
            }
            Alg::Hs512 => {
                let inner = bytes512(&finish512(self.inner512, BLOCK512 as u64, msg), 64);
                bytes512(&finish512(self.outer512, BLOCK512 as u64, &inner), 64)
            }
        }
    }
}
