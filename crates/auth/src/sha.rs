//! SHA-2 finalisation over the raw compression functions.
//!
//! `sha2`'s hashers cannot be started from an arbitrary midstate, which is exactly what an
//! HMAC key schedule is, so this module drives `compress256` / `compress512` itself: whole
//! blocks of the message, then the tail with FIPS 180-4 padding (`0x80`, zeros, and the
//! total length in bits, counting the blocks that were absorbed before the midstate).

use sha2::digest::generic_array::GenericArray;
use sha2::{compress256, compress512};

pub(crate) const BLOCK256: usize = 64;
pub(crate) const BLOCK512: usize = 128;

/// FIPS 180-4 §5.3.3.
pub(crate) const IV256: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// FIPS 180-4 §5.3.4: SHA-384 is SHA-512's compression from these values, truncated.
pub(crate) const IV384: [u64; 8] = [
    0xcbbb9d5dc1059ed8,
    0x629a292a367cd507,
    0x9159015a3070dd17,
    0x152fecd8f70e5939,
    0x67332667ffc00b31,
    0x8eb44a8768581511,
    0xdb0c2e0d64f98fa7,
    0x47b5481dbefa4fa4,
];

/// FIPS 180-4 §5.3.5.
pub(crate) const IV512: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

/// Absorbs exactly one 64-byte block.
pub(crate) fn absorb256(state: &mut [u32; 8], block: &[u8; BLOCK256]) {
    compress256(state, &[GenericArray::clone_from_slice(block)]);
}

/// Absorbs exactly one 128-byte block.
pub(crate) fn absorb512(state: &mut [u64; 8], block: &[u8; BLOCK512]) {
    compress512(state, &[GenericArray::clone_from_slice(block)]);
}

/// Finishes a SHA-256 computation whose state has already absorbed `absorbed` bytes
/// (a multiple of 64) by hashing `msg` and the padding. Returns the final state, whose
/// big-endian bytes are the digest.
pub(crate) fn finish256(mut state: [u32; 8], absorbed: u64, msg: &[u8]) -> [u32; 8] {
    let mut chunks = msg.chunks_exact(BLOCK256);
    for chunk in &mut chunks {
        compress256(&mut state, &[GenericArray::clone_from_slice(chunk)]);
    }
    let tail = chunks.remainder();
    // The length field is 64 bits; wrapping only matters past 2^61 bytes.
    let bits = absorbed.wrapping_add(msg.len() as u64).wrapping_mul(8);
    let mut pad = [0u8; 2 * BLOCK256];
    pad[..tail.len()].copy_from_slice(tail);
    pad[tail.len()] = 0x80;
    // One block if the tail, the 0x80 and the 8-byte length fit in it, else two.
    let end = if tail.len() + 1 + 8 <= BLOCK256 {
        BLOCK256
    } else {
        2 * BLOCK256
    };
    pad[end - 8..end].copy_from_slice(&bits.to_be_bytes());
    for block in pad[..end].chunks_exact(BLOCK256) {
        compress256(&mut state, &[GenericArray::clone_from_slice(block)]);
    }
    state
}

/// [`finish256`] for SHA-512 and SHA-384 (128-byte blocks, 128-bit length field).
pub(crate) fn finish512(mut state: [u64; 8], absorbed: u64, msg: &[u8]) -> [u64; 8] {
    let mut chunks = msg.chunks_exact(BLOCK512);
    for chunk in &mut chunks {
        compress512(&mut state, &[GenericArray::clone_from_slice(chunk)]);
    }
    let tail = chunks.remainder();
    let bits = (u128::from(absorbed) + msg.len() as u128) * 8;
    let mut pad = [0u8; 2 * BLOCK512];
    pad[..tail.len()].copy_from_slice(tail);
    pad[tail.len()] = 0x80;
    let end = if tail.len() + 1 + 16 <= BLOCK512 {
        BLOCK512
    } else {
        2 * BLOCK512
    };
    pad[end - 16..end].copy_from_slice(&bits.to_be_bytes());
    for block in pad[..end].chunks_exact(BLOCK512) {
        compress512(&mut state, &[GenericArray::clone_from_slice(block)]);
    }
    state
}

/// The digest bytes of a SHA-256 state.
pub(crate) fn bytes256(state: &[u32; 8]) -> Vec<u8> {
    state.iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// The first `len` digest bytes of a SHA-512 state (48 for SHA-384, 64 for SHA-512).
pub(crate) fn bytes512(state: &[u64; 8], len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = state.iter().flat_map(|w| w.to_be_bytes()).collect();
    out.truncate(len);
    out
}
