//! # taskyard-webhook
//!
//! Outbound HTTP for Taskyard's callbacks (assignment and event callbacks), made to look
//! exactly like Twilio's so that applications written for TaskRouter work unchanged.
//!
//! ## Signing
//!
//! Every callback carries `X-Twilio-Signature` ([`signature`], [`verify`]), computed exactly
//! as Twilio computes it, so an application can verify it with Twilio's own
//! `RequestValidator`:
//!
//! 1. take the full URL as configured (scheme, host, port, path, query);
//! 2. append every form parameter, sorted by name (then value), as `name` + `value`;
//! 3. HMAC-SHA1 the result with the account's auth token;
//! 4. Base64-encode the digest (standard alphabet, padded).
//!
//! ## Sending
//!
//! [`Client::post_form`] POSTs form-encoded parameters, signed, with the headers Twilio
//! sends (`Content-Type: application/x-www-form-urlencoded`, `X-Twilio-Signature`,
//! `User-Agent: TwilioProxy/1.1`, `Accept: */*`, and `I-Twilio-Idempotency-Token` when the
//! caller gives one). It waits at most the given timeout for the whole answer, does not
//! follow redirects, keeps at most 64 KiB of the body, and never fails or panics: the
//! outcome, whatever it is, is an [`Attempt`] (status, content type, body, duration, and an
//! [`AttemptError`] when there was no complete answer). One [`Client`] holds one connection
//! pool; clone it rather than building new ones. TLS is rustls (ring) with the Mozilla root
//! certificates bundled (`webpki-roots`), so the host's certificate store is not used.
//! Proxies named by `HTTP_PROXY` / `HTTPS_PROXY` / `ALL_PROXY` / `NO_PROXY` are honoured.
//!
//! ## Where callbacks may go
//!
//! A [`Policy`] (see [`policy`] for the whole rule) refuses, unless the operator allows them,
//! link-local and cloud metadata addresses (169.254.0.0/16, `fd00:ec2::254`, …),
//! unspecified, broadcast and multicast addresses, plus whatever the operator's deny list
//! names; loopback and private addresses are allowed. [`Policy::check_url`] checks a URL
//! when it is saved; a [`Client`] built [`with_policy`](Client::with_policy) (or
//! [`new`](Client::new), with the default policy) checks again when it connects, against the
//! addresses the host name resolves to then, and reports a refusal as
//! [`AttemptError::Refused`] without sending anything. Redirects are not followed, so no 3xx
//! can lead a callback to a refused address.
//!
//! ## Reading an assignment callback's answer
//!
//! [`parse_answer`] turns an [`Attempt`] into an [`Answer`] as TaskRouter does:
//!
//! | The application answers | [`Answer`] |
//! |---|---|
//! | 2xx, empty body; or 2xx `application/json` `{}` | `Defer` (the reservation stays pending) |
//! | 2xx JSON object without `instruction` | `DeferWithWarning` 40005 |
//! | `{"instruction":"accept"}` | `Accept` |
//! | `{"instruction":"reject","activity_sid":"WA…"}` | `Reject` |
//! | `dequeue`, `call`, `redirect`, `conference`, `supervise` | `Telephony` (the whole object) |
//! | unknown instruction; `call`/`redirect` missing a required field | `Invalid` (55555, 40111/40112, 40120/40121) |
//! | no answer in time, connection error, non-2xx | `Failed` (try the fallback URL) |
//! | 2xx body without `Content-Type: application/json`; body not JSON | `Failed` 40000 / 40001 |
//!
//! `application/json` may carry parameters (`application/json; charset=utf-8`). The full
//! rules are on [`parse_answer`].
//!
//! ## Parameter names
//!
//! Callback parameters are the snake_case field names in CamelCase ([`camel_case`]):
//! `task_queue_sid` → `TaskQueueSid`.

mod answer;
mod client;
pub mod policy;

pub use answer::{
    Answer, CODE_CALL_FROM, CODE_CALL_URL, CODE_INVALID_INSTRUCTION, CODE_NO_INSTRUCTION,
    CODE_NOT_JSON_CONTENT_TYPE, CODE_REDIRECT_CALL_SID, CODE_REDIRECT_URL, CODE_REJECT_ACTIVITY,
    CODE_UNPARSABLE_JSON, TELEPHONY_INSTRUCTIONS, parse_answer,
};
pub use client::{
    Attempt, AttemptError, Client, IDEMPOTENCY_TOKEN_HEADER, MAX_BODY_BYTES, USER_AGENT_VALUE,
};
pub use policy::{Cidr, CidrError, Policy, UrlRefusal};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The name of the header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// The `X-Twilio-Signature` value of a form-encoded POST of `params` to `url`.
pub fn signature(auth_token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<&(&str, &str)> = params.iter().collect();
    sorted.sort();
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac =
        Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `given` is the signature of `params` posted to `url` (compared in constant time).
pub fn verify(auth_token: &str, url: &str, params: &[(&str, &str)], given: &str) -> bool {
    let expected = signature(auth_token, url, params);
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A snake_case name in CamelCase, as Twilio names callback parameters:
/// `task_queue_sid` → `TaskQueueSid`, `worker_time_in_previous_activity_ms` →
/// `WorkerTimeInPreviousActivityMs`. Every `_`-separated word gets its first character
/// upper-cased; the rest of each word is kept as it is; empty words (`__`, a leading or
/// trailing `_`) disappear.
pub fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    for word in snake.split('_') {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const PARAMS: &[(&str, &str)] = &[
        ("Digits", "1234"),
        ("To", "+18005551212"),
        ("From", "+12349013030"),
        ("Caller", "+12349013030"),
        ("CallSid", "CA1234567890ABCDE"),
    ];

    #[test]
    fn matches_twilios_published_test_vector() {
        // The example of Twilio's webhook security documentation.
        assert_eq!(
            signature("12345", URL, PARAMS),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn matches_the_official_helper_librarys_validator() {
        // Computed with twilio-python 9.13.0:
        // RequestValidator(token).compute_signature(url, params)
        let params = [
            ("TaskAttributes", r#"{"selected_language": "es"}"#),
            ("WorkerSid", "WK0123"),
            ("TaskAge", "3"),
            ("AccountSid", "AC01"),
        ];
        assert_eq!(
            signature(
                "0123456789abcdef0123456789abcdef",
                "http://127.0.0.1:8080/assignment_callback",
                &params
            ),
            "KkCcZvM6t7QxmaWY7tSew9S7QBI="
        );
    }

    #[test]
    fn parameter_order_does_not_matter_but_every_byte_does() {
        let mut reversed = PARAMS.to_vec();
        reversed.reverse();
        assert_eq!(
            signature("12345", URL, &reversed),
            signature("12345", URL, PARAMS)
        );
        assert_ne!(
            signature("12346", URL, PARAMS),
            signature("12345", URL, PARAMS)
        );
        assert_ne!(
            signature("12345", "https://mycompany.com/myapp.php", PARAMS),
            signature("12345", URL, PARAMS)
        );
        let mut changed = PARAMS.to_vec();
        changed[0] = ("Digits", "1235");
        assert_ne!(
            signature("12345", URL, &changed),
            signature("12345", URL, PARAMS)
        );
    }

    #[test]
    fn repeated_keys_sort_by_value_too() {
        let a = signature("t", "https://x", &[("K", "b"), ("K", "a")]);
        let b = signature("t", "https://x", &[("K", "a"), ("K", "b")]);
        assert_eq!(a, b);
    }

    #[test]
    fn verify_accepts_the_right_signature_only() {
        assert!(verify("12345", URL, PARAMS, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
        assert!(!verify("12345", URL, PARAMS, "0/KCTR6DLpKmkAf8muzZqo1nDgQ"));
        assert!(!verify(
            "12345",
            URL,
            PARAMS,
            "1/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
    }

    #[test]
    fn camel_case_of_callback_parameter_names() {
        for (snake, camel) in [
            ("task_queue_sid", "TaskQueueSid"),
            (
                "worker_time_in_previous_activity_ms",
                "WorkerTimeInPreviousActivityMs",
            ),
            ("sid", "Sid"),
            ("account_sid", "AccountSid"),
            ("task_age", "TaskAge"),
            ("", ""),
            ("_leading__double_trailing_", "LeadingDoubleTrailing"),
            ("already_Camel", "AlreadyCamel"),
            ("x_2fa", "X2fa"),
        ] {
            assert_eq!(camel_case(snake), camel, "{snake}");
        }
    }
}
