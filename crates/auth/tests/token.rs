//! Access Tokens: real ones from Twilio's Python library, and every way of refusing one.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use taskyard_auth::{
    Alg, CLOCK_SKEW_S, Claims, SecretHash, TaskRouterGrant, TokenError, Unverified, parse,
};

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const KEY_SID: &str = "SKfedcba9876543210fedcba9876543210";
const SECRET: &str = "Zq8rT2vN5xLp0WbK7yHc3MdJ9sFg4UaE";
const WORKSPACE_SID: &str = "WS11112222333344445555666677778888";
const WORKER_SID: &str = "WKaaaabbbbccccddddeeeeffff00001111";

/// The clock the tokens below were made at. twilio-python 9.13.0:
/// `AccessToken(ACCOUNT_SID, KEY_SID, SECRET, identity="alice", ttl=3600)` with
/// `TaskRouterGrant(workspace_sid=WORKSPACE_SID, worker_sid=WORKER_SID, role="worker")`,
/// `time.time` fixed at 1750000000.25, and `token.algorithm` set for HS384 and HS512. The
/// library writes `nbf` and `exp` but no `iat`.
const MADE_AT: i64 = 1_750_000_000;

const TWILIO_HS256: &str = "eyJhbGciOiJIUzI1NiIsImN0eSI6InR3aWxpby1mcGE7dj0xIiwidHlwIjoiSldUIn0.eyJqdGkiOiJTS2ZlZGNiYTk4NzY1NDMyMTBmZWRjYmE5ODc2NTQzMjEwLTE3NTAwMDAwMDAiLCJncmFudHMiOnsidGFza19yb3V0ZXIiOnsid29ya3NwYWNlX3NpZCI6IldTMTExMTIyMjIzMzMzNDQ0NDU1NTU2NjY2Nzc3Nzg4ODgiLCJ3b3JrZXJfc2lkIjoiV0thYWFhYmJiYmNjY2NkZGRkZWVlZWZmZmYwMDAwMTExMSIsInJvbGUiOiJ3b3JrZXIifSwiaWRlbnRpdHkiOiJhbGljZSJ9LCJpc3MiOiJTS2ZlZGNiYTk4NzY1NDMyMTBmZWRjYmE5ODc2NTQzMjEwIiwiZXhwIjoxNzUwMDAzNjAwLCJuYmYiOjE3NTAwMDAwMDAsInN1YiI6IkFDMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYifQ.FroYo3VIqg2c36PMvVSp9GXheJ8d5yhguNt6m2XDkJ8";
const TWILIO_HS384: &str = "eyJhbGciOiJIUzM4NCIsImN0eSI6InR3aWxpby1mcGE7dj0xIiwidHlwIjoiSldUIn0.eyJqdGkiOiJTS2ZlZGNiYTk4NzY1NDMyMTBmZWRjYmE5ODc2NTQzMjEwLTE3NTAwMDAwMDAiLCJncmFudHMiOnsidGFza19yb3V0ZXIiOnsid29ya3NwYWNlX3NpZCI6IldTMTExMTIyMjIzMzMzNDQ0NDU1NTU2NjY2Nzc3Nzg4ODgiLCJ3b3JrZXJfc2lkIjoiV0thYWFhYmJiYmNjY2NkZGRkZWVlZWZmZmYwMDAwMTExMSIsInJvbGUiOiJ3b3JrZXIifSwiaWRlbnRpdHkiOiJhbGljZSJ9LCJpc3MiOiJTS2ZlZGNiYTk4NzY1NDMyMTBmZWRjYmE5ODc2NTQzMjEwIiwiZXhwIjoxNzUwMDAzNjAwLCJuYmYiOjE3NTAwMDAwMDAsInN1YiI6IkFDMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYifQ.NKGmMAeIwGd5L8HddXwI_yWFzZyVj_mbRJUBRWnBUq_DRRo8OrIUKBoddW1Ds3ES";
const TWILIO_HS512: &str = "eyJhbGciOiJIUzUxMiIsImN0eSI6InR3aWxpby1mcGE7dj0xIiwidHlwIjoiSldUIn0.eyJqdGkiOiJTS2ZlZGNiYTk4NzY1NDMyMTBmZWRjYmE5ODc2NTQzMjEwLTE3NTAwMDAwMDAiLCJncmFudHMiOnsidGFza19yb3V0ZXIiOnsid29ya3NwYWNlX3NpZCI6IldTMTExMTIyMjIzMzMzNDQ0NDU1NTU2NjY2Nzc3Nzg4ODgiLCJ3b3JrZXJfc2lkIjoiV0thYWFhYmJiYmNjY2NkZGRkZWVlZWZmZmYwMDAwMTExMSIsInJvbGUiOiJ3b3JrZXIifSwiaWRlbnRpdHkiOiJhbGljZSJ9LCJpc3MiOiJTS2ZlZGNiYTk4NzY1NDMyMTBmZWRjYmE5ODc2NTQzMjEwIiwiZXhwIjoxNzUwMDAzNjAwLCJuYmYiOjE3NTAwMDAwMDAsInN1YiI6IkFDMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYifQ.maKxRE5T3sGqcGLV4z_6d1H_wIYc4B_D6PPwwMXJiY2A3DkiRe_ULwZs_b8vT8WysISm24CEpydYdixOG2ACcQ";

fn key() -> SecretHash {
    SecretHash::derive(SECRET)
}

fn expected_claims(alg: Alg) -> Claims {
    Claims {
        key_sid: KEY_SID.to_owned(),
        account_sid: ACCOUNT_SID.to_owned(),
        issued_at: None,
        not_before: Some(MADE_AT),
        expires_at: MADE_AT + 3600,
        identity: Some("alice".to_owned()),
        task_router: Some(TaskRouterGrant {
            workspace_sid: Some(WORKSPACE_SID.to_owned()),
            worker_sid: Some(WORKER_SID.to_owned()),
            role: Some("worker".to_owned()),
        }),
        alg,
    }
}

/// Signs with the `hmac` crate, independently of `SecretHash`.
fn sign_input(alg: &str, secret: &str, input: &str) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("any key length");
        mac.update(msg);
        mac.finalize().into_bytes().to_vec()
    }
    match alg {
        "HS384" => run::<Hmac<sha2::Sha384>>(secret.as_bytes(), input.as_bytes()),
        "HS512" => run::<Hmac<sha2::Sha512>>(secret.as_bytes(), input.as_bytes()),
        _ => run::<Hmac<sha2::Sha256>>(secret.as_bytes(), input.as_bytes()),
    }
}

/// A token with the given header and payload JSON, signed with `SECRET` under the header's
/// algorithm (HS256 for any other).
fn token(header: &str, payload: &str) -> String {
    let alg = serde_json::from_str::<serde_json::Value>(header)
        .ok()
        .and_then(|h| h.get("alg").and_then(|a| a.as_str()).map(str::to_owned))
        .unwrap_or_default();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = sign_input(&alg, SECRET, &input);
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

const HS256: &str = r#"{"alg":"HS256","typ":"JWT","cty":"twilio-fpa;v=1"}"#;

/// A payload with the given time claims (JSON fragments, e.g. `"iat":1,`).
fn payload(times: &str) -> String {
    format!(
        r#"{{"jti":"{KEY_SID}-1","iss":"{KEY_SID}","sub":"{ACCOUNT_SID}",{times}"grants":{{"identity":"bob"}}}}"#
    )
}

fn check(token: &str, now: i64) -> Result<Claims, TokenError> {
    parse(token)?.verify(&key(), now)
}

#[test]
fn twilio_python_tokens_verify() {
    for (token, alg) in [
        (TWILIO_HS256, Alg::Hs256),
        (TWILIO_HS384, Alg::Hs384),
        (TWILIO_HS512, Alg::Hs512),
    ] {
        let unverified = parse(token).expect("parses");
        assert_eq!(unverified.claims(), &expected_claims(alg));
        let stored = SecretHash::from_stored(&key().to_stored()).expect("round trip");
        assert_eq!(
            unverified.verify(&stored, MADE_AT + 10),
            Ok(expected_claims(alg))
        );
    }
}

#[test]
fn twilio_tokens_at_the_edges_of_their_life() {
    let exp = MADE_AT + 3600;
    assert!(check(TWILIO_HS256, MADE_AT - CLOCK_SKEW_S).is_ok());
    assert_eq!(
        check(TWILIO_HS256, MADE_AT - CLOCK_SKEW_S - 1),
        Err(TokenError::NotYetValid)
    );
    assert!(check(TWILIO_HS256, exp + CLOCK_SKEW_S - 1).is_ok());
    assert_eq!(
        check(TWILIO_HS256, exp + CLOCK_SKEW_S),
        Err(TokenError::Expired)
    );
    assert_eq!(
        check(TWILIO_HS256, exp + CLOCK_SKEW_S + 1),
        Err(TokenError::Expired)
    );
}

#[test]
fn wrong_secret_is_a_bad_signature() {
    for token in [TWILIO_HS256, TWILIO_HS384, TWILIO_HS512] {
        let other = SecretHash::derive("Zq8rT2vN5xLp0WbK7yHc3MdJ9sFg4UaF");
        let parsed = parse(token).expect("parses");
        assert_eq!(
            parsed.verify(&other, MADE_AT + 10),
            Err(TokenError::BadSignature)
        );
    }
}

#[test]
fn any_flipped_signature_bit_is_a_bad_signature() {
    let (input, sig) = TWILIO_HS256.rsplit_once('.').expect("three parts");
    let sig = URL_SAFE_NO_PAD.decode(sig).expect("base64url");
    for i in 0..sig.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = sig.clone();
            bad[i] ^= bit;
            let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&bad));
            assert_eq!(
                check(&token, MADE_AT + 10),
                Err(TokenError::BadSignature),
                "byte {i}"
            );
        }
    }
    // Truncated, extended and empty signatures.
    for bad in [&sig[..31], &[sig.as_slice(), &[0]].concat(), &[]] {
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(bad));
        assert_eq!(check(&token, MADE_AT + 10), Err(TokenError::BadSignature));
    }
}

#[test]
fn a_changed_payload_is_a_bad_signature() {
    // The same claims, re-signed with nothing: swap in a payload that names another worker.
    let (header, rest) = TWILIO_HS256.split_once('.').expect("parts");
    let (payload, sig) = rest.split_once('.').expect("parts");
    let json = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("utf8");
    let forged = URL_SAFE_NO_PAD.encode(json.replace("WKaaaa", "WKbbbb"));
    let token = format!("{header}.{forged}.{sig}");
    assert_eq!(check(&token, MADE_AT + 10), Err(TokenError::BadSignature));
    // A header that asks for another algorithm over the same signature.
    let hs512 = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS512","cty":"twilio-fpa;v=1","typ":"JWT"}"#);
    let token = format!("{hs512}.{payload}.{sig}");
    assert_eq!(check(&token, MADE_AT + 10), Err(TokenError::BadSignature));
}

#[test]
fn unsupported_algorithms() {
    let p = payload(&format!(r#""exp":{},"#, MADE_AT + 60));
    for alg in ["none", "None", "RS256", "ES256", "hs256", "HS1", ""] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
        // An unsigned token, as `alg: none` has it, and one with some signature.
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(&header),
            URL_SAFE_NO_PAD.encode(&p)
        );
        for t in [unsigned, token(&header, &p)] {
            assert_eq!(
                parse(&t).err(),
                Some(TokenError::UnsupportedAlgorithm(alg.to_owned()))
            );
        }
    }
    // A long alg is cut short in the message shown to the user.
    let long = "X".repeat(10_000);
    let t = token(&format!(r#"{{"alg":"{long}"}}"#), &p);
    assert_eq!(
        parse(&t).err(),
        Some(TokenError::UnsupportedAlgorithm("X".repeat(32)))
    );
}

#[test]
fn time_rules() {
    let now = 1_800_000_000;
    let ok = |times: &str| check(&token(HS256, &payload(times)), now);
    // Fine: plain, with iat, with nbf now, at exactly 24 hours.
    assert!(ok(&format!(r#""exp":{},"#, now + 3600)).is_ok());
    assert!(ok(&format!(r#""iat":{now},"nbf":{now},"exp":{},"#, now + 3600)).is_ok());
    assert!(ok(&format!(r#""iat":{now},"exp":{},"#, now + 86_400)).is_ok());
    assert!(ok(&format!(r#""exp":{},"#, now + 86_400)).is_ok());
    assert!(
        ok(&format!(
            r#""nbf":{},"exp":{},"#,
            now + CLOCK_SKEW_S,
            now + 60
        ))
        .is_ok()
    );
    // Expired.
    let exp = now - CLOCK_SKEW_S - 1;
    assert_eq!(ok(&format!(r#""exp":{exp},"#)), Err(TokenError::Expired));
    assert_eq!(
        ok(&format!(r#""iat":{},"exp":{exp},"#, exp - 3600)),
        Err(TokenError::Expired)
    );
    // Not yet valid.
    let nbf = now + CLOCK_SKEW_S + 1;
    assert_eq!(
        ok(&format!(r#""nbf":{nbf},"exp":{},"#, now + 3600)),
        Err(TokenError::NotYetValid)
    );
    // Too long: 25 hours from iat, from now without iat, and one second over.
    let h25 = 25 * 3600;
    assert_eq!(
        ok(&format!(r#""iat":{now},"exp":{},"#, now + h25)),
        Err(TokenError::TtlTooLong)
    );
    assert_eq!(
        ok(&format!(r#""exp":{},"#, now + h25)),
        Err(TokenError::TtlTooLong)
    );
    assert_eq!(
        ok(&format!(r#""iat":{now},"exp":{},"#, now + 86_401)),
        Err(TokenError::TtlTooLong)
    );
    // Issued 23 hours ago for 25 hours: still too long, though only 2 hours remain.
    let iat = now - 23 * 3600;
    assert_eq!(
        ok(&format!(r#""iat":{iat},"exp":{},"#, iat + h25)),
        Err(TokenError::TtlTooLong)
    );
    // An iat in the future does not stretch the window: a year ahead, an hour long.
    let iat = now + 365 * 86_400;
    assert_eq!(
        ok(&format!(r#""iat":{iat},"exp":{},"#, iat + 3600)),
        Err(TokenError::TtlTooLong)
    );
    // Extreme values neither overflow nor pass.
    let max = i64::MAX;
    assert_eq!(
        ok(&format!(r#""iat":{},"exp":{max},"#, i64::MIN)),
        Err(TokenError::TtlTooLong)
    );
    assert_eq!(
        ok(&format!(r#""exp":{},"#, i64::MIN)),
        Err(TokenError::Expired)
    );
    assert_eq!(
        check(
            &token(HS256, &payload(&format!(r#""exp":{max},"#))),
            i64::MIN
        ),
        Err(TokenError::TtlTooLong)
    );
    // Fractional seconds are read, rounding down.
    let c = ok(&format!(r#""iat":{now}.9,"exp":{}.5,"#, now + 60)).expect("fractions");
    assert_eq!((c.issued_at, c.expires_at), (Some(now), now + 60));
}

#[test]
fn signature_is_checked_before_time() {
    let t = token(HS256, &payload(r#""exp":1,"#));
    let other = SecretHash::derive("other");
    assert_eq!(
        parse(&t).expect("parses").verify(&other, 1_800_000_000),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn missing_claims() {
    let exp = MADE_AT + 60;
    let cases = [
        (format!(r#"{{"sub":"{ACCOUNT_SID}","exp":{exp}}}"#), "iss"),
        (
            format!(r#"{{"iss":null,"sub":"{ACCOUNT_SID}","exp":{exp}}}"#),
            "iss",
        ),
        (format!(r#"{{"iss":"{KEY_SID}","exp":{exp}}}"#), "sub"),
        (
            format!(r#"{{"iss":"{KEY_SID}","sub":"{ACCOUNT_SID}"}}"#),
            "exp",
        ),
        ("{}".to_owned(), "iss"),
    ];
    for (p, claim) in cases {
        assert_eq!(
            parse(&token(HS256, &p)).err(),
            Some(TokenError::MissingClaim(claim)),
            "{p}"
        );
    }
}

#[test]
fn minimal_token_has_no_grants() {
    let t = token(
        HS256,
        &format!(
            r#"{{"iss":"{KEY_SID}","sub":"{ACCOUNT_SID}","exp":{}}}"#,
            MADE_AT + 60
        ),
    );
    let c = check(&t, MADE_AT).expect("valid");
    assert_eq!(
        (c.identity, c.task_router, c.issued_at, c.not_before),
        (None, None, None, None)
    );
}

#[test]
fn padded_segments_are_accepted() {
    // A padded signature on Twilio's token.
    let (input, sig) = TWILIO_HS256.rsplit_once('.').expect("parts");
    let sig = URL_SAFE.encode(URL_SAFE_NO_PAD.decode(sig).expect("b64"));
    assert!(sig.ends_with('='));
    assert_eq!(
        check(&format!("{input}.{sig}"), MADE_AT + 10),
        Ok(expected_claims(Alg::Hs256))
    );
    // An encoder that pads every segment signs the padded text.
    let header = URL_SAFE.encode(r#"{"alg": "HS256"}"#);
    let body = URL_SAFE.encode(payload(&format!(r#""exp":{},"#, MADE_AT + 60)));
    assert!(header.ends_with("=="));
    let input = format!("{header}.{body}");
    let t = format!(
        "{input}.{}",
        URL_SAFE.encode(sign_input("HS256", SECRET, &input))
    );
    let c = check(&t, MADE_AT).expect("padded token");
    assert_eq!(c.identity.as_deref(), Some("bob"));
}

#[test]
fn malformed_inputs_are_errors() {
    let p = payload(&format!(r#""exp":{},"#, MADE_AT + 60));
    let good_header = URL_SAFE_NO_PAD.encode(HS256);
    let good_payload = URL_SAFE_NO_PAD.encode(&p);
    let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let cases: Vec<String> = vec![
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        "abc".into(),
        "a.b".into(),
        "a.b.c".into(),
        "a.b.c.d".into(),
        format!("{}.d", TWILIO_HS256),
        "!!!.!!!.!!!".into(),
        format!("{good_header}.{good_payload}.!!!"),
        format!("{good_header}.{good_payload}.a"),
        format!("{good_header}.%%%.sig"),
        format!("{}.{good_payload}.sig", b64("hello")),
        format!("{}.{good_payload}.sig", b64("[1,2]")),
        format!("{}.{good_payload}.sig", b64(r#"{"typ":"JWT"}"#)),
        format!("{}.{good_payload}.sig", b64(r#"{"alg":256}"#)),
        format!("{}.{good_payload}.sig", b64(r#"{"alg":null}"#)),
        format!("{good_header}.{}.sig", b64("not json")),
        format!("{good_header}.{}.sig", b64("\"a string\"")),
        format!("{good_header}.{}.sig", b64(&p[..p.len() - 1])),
        format!("{good_header}.{}.sig", b64("\u{0}\u{ff}")),
        format!(
            "{good_header}.{}.sig",
            b64(r#"{"iss":5,"sub":"AC","exp":1}"#)
        ),
        format!(
            "{good_header}.{}.sig",
            b64(r#"{"iss":"SK","sub":"AC","exp":"1"}"#)
        ),
        format!(
            "{good_header}.{}.sig",
            b64(r#"{"iss":"SK","sub":"AC","exp":1e300}"#)
        ),
        format!(
            "{good_header}.{}.sig",
            b64(r#"{"iss":"SK","sub":"AC","exp":18446744073709551615}"#)
        ),
        format!(
            "{good_header}.{}.sig",
            b64(r#"{"iss":"SK","sub":"AC","exp":1,"grants":[]}"#)
        ),
        format!(
            "{good_header}.{}.sig",
            b64(r#"{"iss":"SK","sub":"AC","exp":1,"grants":{"identity":1}}"#)
        ),
        format!(
            "{good_header}.{}.sig",
            b64(r#"{"iss":"SK","sub":"AC","exp":1,"grants":{"task_router":"x"}}"#)
        ),
        format!(
            "{good_header}.{}.sig",
            b64(r#"{"iss":"SK","sub":"AC","exp":1,"grants":{"task_router":{"role":true}}}"#)
        ),
        "\u{e9}.\u{e9}.\u{e9}".into(),
        " . . ".into(),
    ];
    for t in &cases {
        match parse(t) {
            Err(TokenError::Malformed(why)) => assert!(!why.is_empty()),
            other => panic!("{t:?}: {other:?}"),
        }
    }
}

/// xorshift64*, for the no-panic sweep.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn no_input_panics() {
    // Random strings over the token alphabet and mutations of a real token: whatever parse
    // and verify say, they must say it without panicking, and only the original verifies.
    let mut rng = Rng(7);
    let alphabet = b"eyJhbGciOiJIUzI1NiJ9._-=.+/ \x7f";
    let key = key();
    for _ in 0..3000 {
        let len = (rng.next() % 120) as usize;
        let s: String = (0..len)
            .map(|_| char::from(alphabet[(rng.next() % alphabet.len() as u64) as usize]))
            .collect();
        if let Ok(u) = parse(&s) {
            let _ = u.verify(&key, MADE_AT);
        }
    }
    let original = TWILIO_HS256.as_bytes();
    for _ in 0..3000 {
        let mut t = original.to_vec();
        for _ in 0..=(rng.next() % 3) {
            if t.is_empty() {
                break;
            }
            let i = (rng.next() % t.len() as u64) as usize;
            match rng.next() % 3 {
                0 => t[i] = alphabet[(rng.next() % alphabet.len() as u64) as usize],
                1 => {
                    t.remove(i);
                }
                _ => t.truncate(i),
            }
        }
        let Ok(s) = String::from_utf8(t) else {
            continue;
        };
        let result = parse(&s).and_then(|u: Unverified| u.verify(&key, MADE_AT + 10));
        if s != TWILIO_HS256 {
            assert!(result.is_err(), "{s}");
        }
    }
}

#[test]
fn error_messages_read_well() {
    assert_eq!(
        TokenError::UnsupportedAlgorithm("none".into()).to_string(),
        "the access token is signed with \"none\"; only HS256, HS384 and HS512 are accepted"
    );
    assert_eq!(
        TokenError::MissingClaim("iss").to_string(),
        "the access token has no \"iss\" claim"
    );
    assert_eq!(
        TokenError::Expired.to_string(),
        "the access token has expired"
    );
}
