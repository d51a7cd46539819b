//! # taskyard-webhook
//!
//! Outbound HTTP for Taskyard's callbacks (assignment and event callbacks). This first part
//! is the signature: every callback carries `X-Twilio-Signature`, computed exactly as Twilio
//! computes it, so an application can verify it with Twilio's own `RequestValidator`:
//!
//! 1. take the full URL as configured (scheme, host, port, path, query);
//! 2. append every form parameter, sorted by name (then value), as `name` + `value`;
//! 3. HMAC-SHA1 the result with the account's auth token;
//! 4. Base64-encode the digest (standard alphabet, padded).

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
}
