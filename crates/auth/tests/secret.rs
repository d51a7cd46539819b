//! `SecretHash` against the `hmac` crate, the stored form, `matches`, and `new_secret`.

use hmac::{Hmac, Mac};
use taskyard_auth::{Alg, SECRET_LEN, SecretHash, constant_time_eq, new_secret};

/// xorshift64*: a fixed seed makes a failure reproducible without a new dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A string of `len` printable ASCII characters (the secret is a `&str`).
    fn ascii(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b' ' + self.below(95) as u8))
            .collect()
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn reference(alg: Alg, key: &[u8], msg: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("any key length");
        mac.update(msg);
        mac.finalize().into_bytes().to_vec()
    }
    match alg {
        Alg::Hs256 => run::<Hmac<sha2::Sha256>>(key, msg),
        Alg::Hs384 => run::<Hmac<sha2::Sha384>>(key, msg),
        Alg::Hs512 => run::<Hmac<sha2::Sha512>>(key, msg),
    }
}

const ALGS: [Alg; 3] = [Alg::Hs256, Alg::Hs384, Alg::Hs512];

#[test]
fn hmac_matches_the_hmac_crate_for_random_keys_and_messages() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..600 {
        // Every length 0..200 at least twice: below, at and above both block sizes.
        let key = rng.ascii(round % 200);
        let hash = SecretHash::derive(&key);
        for _ in 0..3 {
            let len = rng.below(300);
            let msg = rng.bytes(len);
            for alg in ALGS {
                assert_eq!(
                    hash.hmac(alg, &msg),
                    reference(alg, key.as_bytes(), &msg),
                    "{alg:?}, key of {} bytes, message of {} bytes",
                    key.len(),
                    msg.len()
                );
            }
        }
    }
}

#[test]
fn hmac_at_every_padding_boundary() {
    // Message lengths where the padding spills into a second block, for both block sizes.
    let key = "Zq8rT2vN5xLp0WbK7yHc3MdJ9sFg4UaE";
    let hash = SecretHash::derive(key);
    for len in [
        0, 1, 55, 56, 63, 64, 65, 111, 112, 119, 120, 127, 128, 129, 255, 256, 257,
    ] {
        let msg = vec![0xa5u8; len];
        for alg in ALGS {
            assert_eq!(
                hash.hmac(alg, &msg),
                reference(alg, key.as_bytes(), &msg),
                "{alg:?} {len}"
            );
        }
    }
}

#[test]
fn output_lengths() {
    let hash = SecretHash::derive("k");
    assert_eq!(hash.hmac(Alg::Hs256, b"m").len(), 32);
    assert_eq!(hash.hmac(Alg::Hs384, b"m").len(), 48);
    assert_eq!(hash.hmac(Alg::Hs512, b"m").len(), 64);
}

#[test]
fn rfc_4231_test_case_2() {
    let hash = SecretHash::derive("Jefe");
    let msg = b"what do ya want for nothing?";
    let hex = |v: Vec<u8>| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(
        hex(hash.hmac(Alg::Hs256, msg)),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hex(hash.hmac(Alg::Hs512, msg)),
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
    );
}

#[test]
fn stored_form_round_trips() {
    let mut rng = Rng(42);
    for len in [0, 1, 32, 64, 65, 128, 129, 199] {
        let hash = SecretHash::derive(&rng.ascii(len));
        let stored = hash.to_stored();
        assert!(stored.starts_with("hmac-v1:"));
        assert_eq!(stored.len(), "hmac-v1:".len() + 640);
        assert!(
            stored["hmac-v1:".len()..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        let back = SecretHash::from_stored(&stored).expect("own stored form");
        assert_eq!(back, hash);
        assert_eq!(back.to_stored(), stored);
    }
}

#[test]
fn from_stored_rejects_other_forms() {
    let good = SecretHash::derive("secret").to_stored();
    let hex = &good["hmac-v1:".len()..];
    let rejected = [
        String::new(),
        "hmac-v1:".to_owned(),
        hex.to_owned(),
        format!("hmac-v2:{hex}"),
        format!("HMAC-V1:{hex}"),
        format!("{good}0"),
        format!("{good}00"),
        good[..good.len() - 1].to_owned(),
        good[..good.len() - 2].to_owned(),
        good.to_uppercase().replacen("HMAC-V1:", "hmac-v1:", 1),
        format!("hmac-v1:{}g", &hex[1..]),
        format!("hmac-v1: {}", &hex[1..]),
        format!("hmac-v1:{}é", &hex[2..]),
    ];
    for s in &rejected {
        assert_eq!(SecretHash::from_stored(s), None, "{s:?}");
    }
}

#[test]
fn matches_the_secret_and_nothing_else() {
    let secret = new_secret();
    let hash = SecretHash::derive(&secret);
    let stored = SecretHash::from_stored(&hash.to_stored()).expect("round trip");
    assert!(hash.matches(&secret));
    assert!(stored.matches(&secret));
    for i in 0..secret.len() {
        let mut changed = secret.clone().into_bytes();
        changed[i] = if changed[i] == b'a' { b'b' } else { b'a' };
        let changed = String::from_utf8(changed).expect("ascii");
        assert!(!stored.matches(&changed), "changed at {i}");
    }
    assert!(!stored.matches(""));
    assert!(!stored.matches(&format!("{secret}x")));
    assert!(!stored.matches(&secret[1..]));
}

#[test]
fn debug_does_not_show_the_states() {
    let hash = SecretHash::derive("Zq8rT2vN5xLp0WbK7yHc3MdJ9sFg4UaE");
    let debug = format!("{hash:?} {hash:#?}");
    assert!(!debug.chars().any(|c| c.is_ascii_digit()), "{debug}");
    assert!(debug.contains("SecretHash"));
}

#[test]
fn new_secrets_are_32_alphanumerics_and_differ() {
    let secrets: Vec<String> = (0..200).map(|_| new_secret()).collect();
    for s in &secrets {
        assert_eq!(s.len(), SECRET_LEN);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()), "{s}");
    }
    let mut unique = secrets.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), secrets.len());
    // 6,400 characters over 62 symbols: each is expected ~103 times; a symbol never drawn, or
    // drawn three times too often, would mean a broken mapping.
    let mut counts = [0usize; 128];
    for b in secrets.iter().flat_map(|s| s.bytes()) {
        counts[usize::from(b)] += 1;
    }
    for c in (b'A'..=b'Z').chain(b'a'..=b'z').chain(b'0'..=b'9') {
        let n = counts[usize::from(c)];
        assert!((30..300).contains(&n), "{} drawn {n} times", char::from(c));
    }
}

#[test]
fn constant_time_eq_basics() {
    assert!(constant_time_eq(b"", b""));
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    assert!(!constant_time_eq(b"", b"a"));
}

#[test]
fn alg_names() {
    assert_eq!(Alg::parse("HS256"), Some(Alg::Hs256));
    assert_eq!(Alg::parse("HS384"), Some(Alg::Hs384));
    assert_eq!(Alg::parse("HS512"), Some(Alg::Hs512));
    for bad in ["none", "hs256", "RS256", "HS257", "", " HS256"] {
        assert_eq!(Alg::parse(bad), None, "{bad}");
    }
    for alg in ALGS {
        assert_eq!(Alg::parse(alg.as_str()), Some(alg));
    }
}
