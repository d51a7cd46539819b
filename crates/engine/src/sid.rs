//! Twilio-style resource identifiers.
//!
//! A SID is a two-letter prefix naming the resource kind followed by 32 lowercase hex digits.
//! Taskyard's SIDs are *time-ordered*: the first 12 hex digits are the creation time in
//! milliseconds, the next 4 a per-generator sequence within that millisecond, the last 16 random.
//! Sorting SIDs of one kind therefore sorts resources by creation, which gives every list a
//! stable creation order and lets a page token simply be the last SID of the previous page
//! (Twilio's own `PageToken=PA<sid>` shape), with no second index to maintain.

use std::fmt;
use std::str::FromStr;

/// A resource identifier such as `WK0190c3…`. Cheap to copy, hash and compare.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sid {
    prefix: [u8; 2],
    id: u128,
}

/// The two-letter prefixes Taskyard issues.
pub mod prefix {
    pub const ACCOUNT: &str = "AC";
    pub const WORKSPACE: &str = "WS";
    pub const ACTIVITY: &str = "WA";
    pub const TASK_CHANNEL: &str = "TC";
    pub const WORKER: &str = "WK";
    pub const WORKER_CHANNEL: &str = "WC";
    pub const TASK_QUEUE: &str = "WQ";
    pub const WORKFLOW: &str = "WW";
    pub const TASK: &str = "WT";
    pub const RESERVATION: &str = "WR";
    pub const EVENT: &str = "EV";
    pub const API_KEY: &str = "SK";
}

/// Why a string is not a SID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SidError {
    #[error("a SID is 34 characters: a 2-letter prefix and 32 hex digits")]
    Shape,
    #[error("expected a SID starting with {expected}")]
    Prefix { expected: &'static str },
}

impl Sid {
    /// Builds a SID from its parts. `prefix` must be two ASCII uppercase letters.
    pub fn new(prefix: &str, id: u128) -> Sid {
        let b = prefix.as_bytes();
        debug_assert!(b.len() == 2 && b.iter().all(u8::is_ascii_uppercase));
        Sid {
            prefix: [b[0], b[1]],
            id,
        }
    }

    /// The two-letter prefix, e.g. `"WK"`.
    pub fn prefix(&self) -> &str {
        // The constructor and parser only accept ASCII letters.
        std::str::from_utf8(&self.prefix).unwrap_or("??")
    }

    pub fn id(&self) -> u128 {
        self.id
    }

    /// Parses `s` and checks that it carries `expected` as its prefix.
    pub fn parse_with(s: &str, expected: &'static str) -> Result<Sid, SidError> {
        let sid: Sid = s.parse()?;
        if sid.prefix() == expected {
            Ok(sid)
        } else {
            Err(SidError::Prefix { expected })
        }
    }

    /// The SID's creation time in milliseconds (see the module docs).
    pub fn created_ms(&self) -> i64 {
        (self.id >> 80) as i64
    }
}

impl FromStr for Sid {
    type Err = SidError;

    /// Accepts exactly `^[A-Z]{2}[0-9a-fA-F]{32}$`, as Twilio's path patterns do.
    fn from_str(s: &str) -> Result<Sid, SidError> {
        let b = s.as_bytes();
        if b.len() != 34 || !b[..2].iter().all(u8::is_ascii_uppercase) {
            return Err(SidError::Shape);
        }
        if !b[2..].iter().all(u8::is_ascii_hexdigit) {
            return Err(SidError::Shape);
        }
        let id = u128::from_str_radix(&s[2..], 16).map_err(|_| SidError::Shape)?;
        Ok(Sid {
            prefix: [b[0], b[1]],
            id,
        })
    }
}

impl Sid {
    /// The 34 ASCII bytes of the SID's text form.
    pub(crate) fn text(&self) -> [u8; 34] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 34];
        buf[..2].copy_from_slice(&self.prefix);
        for (i, b) in buf[2..].iter_mut().enumerate() {
            *b = HEX[((self.id >> (124 - 4 * i)) & 0xf) as usize];
        }
        buf
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.text()).unwrap_or("??"))
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Sid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Straight from a stack buffer: every stored row and response carries SIDs.
        s.serialize_str(std::str::from_utf8(&self.text()).unwrap_or("??"))
    }
}

impl<'de> serde::Deserialize<'de> for Sid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Sid, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Source of new SIDs. The engine never invents identifiers itself, so a simulation can
/// inject a seeded generator and replay a run exactly.
pub trait SidSource {
    /// A new SID with `prefix`, created at `now_ms`.
    fn next_sid(&mut self, prefix: &str, now_ms: i64) -> Sid;
}

/// The standard generator: time-ordered SIDs whose low 64 bits come from a caller-supplied
/// random source (an OS-seeded RNG in the server, a fixed seed in tests).
pub struct TimeOrderedSids<R: FnMut() -> u64> {
    last_ms: i64,
    seq: u16,
    random: R,
}

impl<R: FnMut() -> u64> TimeOrderedSids<R> {
    pub fn new(random: R) -> Self {
        TimeOrderedSids {
            last_ms: i64::MIN,
            seq: 0,
            random,
        }
    }
}

impl<R: FnMut() -> u64> TimeOrderedSids<R> {
    /// Makes every SID generated from now on sort after `sid`, whatever the clock says. A
    /// workspace's generator resumes after the workspace's newest SID, so creation order
    /// holds across generators and restarts (even if the clock went backwards meanwhile).
    pub fn resume_after(&mut self, sid: Sid) {
        let ms = (sid.id >> 80) as i64;
        let seq = ((sid.id >> 64) & 0xffff) as u16;
        if (ms, seq) > (self.last_ms, self.seq) {
            self.last_ms = ms;
            self.seq = seq;
        }
    }
}

impl<R: FnMut() -> u64> SidSource for TimeOrderedSids<R> {
    fn next_sid(&mut self, prefix: &str, now_ms: i64) -> Sid {
        // Never go backwards, even if the wall clock does: ordering is what paging relies on.
        let mut ms = now_ms.max(self.last_ms);
        if ms == self.last_ms {
            if self.seq == u16::MAX {
                ms += 1;
                self.seq = 0;
            } else {
                self.seq += 1;
            }
        } else {
            self.seq = 0;
        }
        self.last_ms = ms;
        let ms_bits = (ms.max(0) as u128) & ((1u128 << 48) - 1);
        let id = (ms_bits << 80) | ((self.seq as u128) << 64) | (self.random)() as u128;
        Sid::new(prefix, id)
    }
}

/// Deterministic SIDs for tests, simulations and benchmarks: the creation time, then a
/// counter (the `u64` is the count so far, so a generator can be copied mid-run).
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingSids(pub u64);

impl SidSource for CountingSids {
    fn next_sid(&mut self, prefix: &str, now_ms: i64) -> Sid {
        self.0 += 1;
        Sid::new(prefix, ((now_ms.max(0) as u128) << 80) | self.0 as u128)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let s = "WK0123456789abcdef0123456789ABCDEF";
        let sid: Sid = s.parse().expect("valid sid");
        assert_eq!(sid.prefix(), "WK");
        assert_eq!(
            sid.to_string(),
            s.to_ascii_lowercase().replacen("wk", "WK", 1)
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "WK",
            "WK0123",
            "wk0123456789abcdef0123456789abcdef",
            "WK0123456789abcdef0123456789abcdeg",
            "WK0123456789abcdef0123456789abcdef0",
            "WKnothex",
        ] {
            assert!(bad.parse::<Sid>().is_err(), "{bad} should be rejected");
        }
        assert_eq!(
            Sid::parse_with("WA0123456789abcdef0123456789abcdef", prefix::WORKER),
            Err(SidError::Prefix { expected: "WK" })
        );
    }

    #[test]
    fn generated_sids_sort_by_creation_even_within_a_millisecond() {
        let mut n = 0u64;
        let mut ids = TimeOrderedSids::new(|| {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            n
        });
        let mut prev = ids.next_sid("WK", 1_000);
        for now in [1_000, 1_000, 1_001, 999, 1_001, 5_000] {
            let next = ids.next_sid("WK", now);
            assert!(next > prev, "{next} should sort after {prev}");
            prev = next;
        }
        assert_eq!(prev.created_ms(), 5_000);
    }

    #[test]
    fn a_resumed_generator_sorts_after_the_sid_it_resumed_from() {
        let mut a = TimeOrderedSids::new(|| u64::MAX);
        let mut last = a.next_sid("WA", 7_000);
        for _ in 0..5 {
            last = a.next_sid("WA", 7_000);
        }
        let mut b = TimeOrderedSids::new(|| 0);
        b.resume_after(last);
        assert!(b.next_sid("WA", 7_000) > last, "same millisecond");
        assert!(b.next_sid("WA", 1_000) > last, "clock went backwards");
    }
}
