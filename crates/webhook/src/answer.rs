//! What an assignment-callback answer asks TaskRouter to do (semantics notes §3.3).

use serde_json::{Map, Value};

use crate::client::Attempt;

/// Twilio's code: a 2xx answer with a body but without `Content-Type: application/json`.
pub const CODE_NOT_JSON_CONTENT_TYPE: u32 = 40000;
/// Twilio's code: the answer's body cannot be parsed as JSON.
pub const CODE_UNPARSABLE_JSON: u32 = 40001;
/// Twilio's warning: a JSON answer without `instruction` (the reservation stays pending).
pub const CODE_NO_INSTRUCTION: u32 = 40005;
/// Twilio's code: `reject` with an unusable `activity_sid`.
pub const CODE_REJECT_ACTIVITY: u32 = 40100;
/// Twilio's code: `call` without a usable `from` (inferred from the order of the catalogue's
/// 40110–40114 range, "to / from / url / API error / not pending"; 40112 is documented).
pub const CODE_CALL_FROM: u32 = 40111;
/// Twilio's code: `call` without a usable `url` (documented: "You did not provide a "url"
/// parameter on your 'call' instruction").
pub const CODE_CALL_URL: u32 = 40112;
/// Twilio's code: `redirect` without a usable `url` (documented).
pub const CODE_REDIRECT_URL: u32 = 40120;
/// Twilio's code: `redirect` without a usable `call_sid` (documented).
pub const CODE_REDIRECT_CALL_SID: u32 = 40121;
/// Twilio's code: an instruction TaskRouter does not know.
pub const CODE_INVALID_INSTRUCTION: u32 = 55555;

/// The instructions that need a telephony stack; Taskyard hands them to a pluggable hook.
pub const TELEPHONY_INSTRUCTIONS: &[&str] =
    &["dequeue", "call", "redirect", "conference", "supervise"];

/// What an assignment callback's answer asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// 2xx with an empty body, or `{}`: the reservation stays pending.
    Defer,
    /// 2xx JSON object without `instruction`: the reservation stays pending, with Twilio's
    /// warning 40005.
    DeferWithWarning { code: u32, message: String },
    /// `{"instruction": "accept"}` (other fields are ignored).
    Accept,
    /// `{"instruction": "reject"}`, optionally with the `activity_sid` to move the worker to
    /// (other fields are ignored).
    Reject { activity_sid: Option<String> },
    /// `dequeue`, `call`, `redirect`, `conference`, `supervise`: the instruction's name and
    /// the whole JSON object, with its required fields checked.
    Telephony {
        instruction: String,
        body: Map<String, Value>,
    },
    /// Valid JSON but not a usable instruction: an unknown name (55555), a telephony
    /// instruction without a required field, a bad `activity_sid`, JSON that is not an object.
    /// The reservation stays pending; the code is Twilio's debugger code.
    Invalid { code: u32, message: String },
    /// Not usable at all, so the caller tries the fallback URL: no answer (timeout, connection
    /// error), a non-2xx status, a 2xx body without a JSON content type (40000) or that is not
    /// JSON (40001). `code` is `None` when Twilio has no code for it (no answer, bad status).
    Failed { code: Option<u32>, message: String },
}

/// Reads an assignment callback's answer as TaskRouter does.
///
/// In order:
/// 1. no complete answer ([`Attempt::error`]) or a status other than 2xx → [`Answer::Failed`];
/// 2. an empty (or all-whitespace) body → [`Answer::Defer`], whatever the content type;
/// 3. a content type other than `application/json` (parameters such as `charset` allowed,
///    case-insensitive) → `Failed` 40000;
/// 4. not JSON → `Failed` 40001;
/// 5. JSON that is not an object → `Invalid` 40001 (it parsed, but cannot hold an
///    instruction);
/// 6. `{}` → `Defer`; an object without `instruction` → [`Answer::DeferWithWarning`] 40005;
/// 7. `instruction` (case-sensitive) not a known name, or not a string → `Invalid` 55555;
/// 8. the instruction's own checks: `reject`'s `activity_sid` must be a string or null
///    (40100; an empty string counts as absent); `call` needs `from` (40111) and `url`
///    (40112); `redirect` needs `url` (40120) and `call_sid` (40121) — each a non-empty
///    string. `dequeue`, `conference` and `supervise` have no field the answer must carry.
pub fn parse_answer(attempt: &Attempt) -> Answer {
    if let Some(error) = &attempt.error {
        let message = match attempt.status {
            Some(status) => format!("HTTP {status}, then {error}"),
            None => error.to_string(),
        };
        return Answer::Failed {
            code: None,
            message,
        };
    }
    let status = match attempt.status {
        Some(status) => status,
        None => {
            return Answer::Failed {
                code: None,
                message: "no HTTP answer".to_owned(),
            };
        }
    };
    if !(200..=299).contains(&status) {
        return Answer::Failed {
            code: None,
            message: format!("HTTP {status}"),
        };
    }

    let body = attempt.body.trim();
    if body.is_empty() {
        return Answer::Defer;
    }
    if !attempt
        .content_type
        .as_deref()
        .is_some_and(is_json_media_type)
    {
        let message = match &attempt.content_type {
            Some(ct) => format!("Content-Type is {ct:?}, not application/json"),
            None => "no Content-Type; application/json is required".to_owned(),
        };
        return Answer::Failed {
            code: Some(CODE_NOT_JSON_CONTENT_TYPE),
            message,
        };
    }
    let value: Value = match serde_json::from_str(body) {
        Ok(value) => value,
        Err(e) => {
            let mut message = format!("the body is not valid JSON: {e}");
            if attempt.body_truncated {
                message.push_str(" (the body was longer than 64 KiB and was cut)");
            }
            return Answer::Failed {
                code: Some(CODE_UNPARSABLE_JSON),
                message,
            };
        }
    };
    let Value::Object(object) = value else {
        return invalid(
            CODE_UNPARSABLE_JSON,
            format!("expected a JSON object, got {}", json_kind(&value)),
        );
    };
    if object.is_empty() {
        return Answer::Defer;
    }
    let instruction = match object.get("instruction") {
        None => {
            return Answer::DeferWithWarning {
                code: CODE_NO_INSTRUCTION,
                message: "the answer has no \"instruction\"; the reservation stays pending"
                    .to_owned(),
            };
        }
        Some(Value::String(name)) => name.clone(),
        Some(other) => {
            return invalid(
                CODE_INVALID_INSTRUCTION,
                format!("\"instruction\" must be a string, got {}", json_kind(other)),
            );
        }
    };

    match instruction.as_str() {
        "accept" => Answer::Accept,
        "reject" => match object.get("activity_sid") {
            None | Some(Value::Null) => Answer::Reject { activity_sid: None },
            Some(Value::String(sid)) if sid.is_empty() => Answer::Reject { activity_sid: None },
            Some(Value::String(sid)) => Answer::Reject {
                activity_sid: Some(sid.clone()),
            },
            Some(other) => invalid(
                CODE_REJECT_ACTIVITY,
                format!(
                    "\"activity_sid\" must be a string, got {}",
                    json_kind(other)
                ),
            ),
        },
        "call" => telephony(
            instruction,
            object,
            &[("from", CODE_CALL_FROM), ("url", CODE_CALL_URL)],
        ),
        "redirect" => telephony(
            instruction,
            object,
            &[
                ("url", CODE_REDIRECT_URL),
                ("call_sid", CODE_REDIRECT_CALL_SID),
            ],
        ),
        "dequeue" | "conference" | "supervise" => telephony(instruction, object, &[]),
        _ => invalid(
            CODE_INVALID_INSTRUCTION,
            format!(
                "unknown instruction {instruction:?} (expected accept, reject, dequeue, call, \
                 redirect, conference or supervise)"
            ),
        ),
    }
}

/// Whether a `Content-Type` value is `application/json`, ignoring parameters and case.
fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

fn telephony(instruction: String, body: Map<String, Value>, required: &[(&str, u32)]) -> Answer {
    for &(field, code) in required {
        match body.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(Value::String(_)) => {
                return invalid(
                    code,
                    format!("{instruction}: \"{field}\" must not be empty"),
                );
            }
            None | Some(Value::Null) => {
                return invalid(code, format!("{instruction}: \"{field}\" is required"));
            }
            Some(other) => {
                return invalid(
                    code,
                    format!(
                        "{instruction}: \"{field}\" must be a string, got {}",
                        json_kind(other)
                    ),
                );
            }
        }
    }
    Answer::Telephony { instruction, body }
}

fn invalid(code: u32, message: String) -> Answer {
    Answer::Invalid { code, message }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::AttemptError;

    const JSON: &str = "application/json";

    fn answer(status: u16, content_type: Option<&str>, body: &str) -> Answer {
        parse_answer(&Attempt {
            url: "http://app.test/assignment".to_owned(),
            status: Some(status),
            content_type: content_type.map(str::to_owned),
            body: body.to_owned(),
            body_truncated: false,
            duration_ms: 12,
            error: None,
        })
    }

    fn code(answer: &Answer) -> Option<u32> {
        match answer {
            Answer::Invalid { code, .. } | Answer::DeferWithWarning { code, .. } => Some(*code),
            Answer::Failed { code, .. } => *code,
            _ => None,
        }
    }

    #[test]
    fn empty_body_defers_whatever_the_content_type() {
        assert_eq!(answer(200, None, ""), Answer::Defer);
        assert_eq!(answer(200, Some("text/html"), ""), Answer::Defer);
        assert_eq!(answer(204, Some(JSON), ""), Answer::Defer);
        assert_eq!(answer(200, Some(JSON), " \r\n"), Answer::Defer);
    }

    #[test]
    fn empty_object_defers() {
        assert_eq!(answer(200, Some(JSON), "{}"), Answer::Defer);
        assert_eq!(answer(200, Some(JSON), " { }\n"), Answer::Defer);
        assert_eq!(answer(201, Some(JSON), "{}"), Answer::Defer);
    }

    #[test]
    fn object_without_instruction_defers_with_warning_40005() {
        let a = answer(200, Some(JSON), r#"{"status":"ok"}"#);
        assert!(
            matches!(a, Answer::DeferWithWarning { code: 40005, .. }),
            "{a:?}"
        );
    }

    #[test]
    fn accept_ignores_extra_fields() {
        assert_eq!(
            answer(200, Some(JSON), r#"{"instruction":"accept"}"#),
            Answer::Accept
        );
        assert_eq!(
            answer(200, Some(JSON), r#"{"instruction":"accept","note":1}"#),
            Answer::Accept
        );
    }

    #[test]
    fn json_content_type_allows_parameters_and_any_case() {
        for ct in [
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
            "Application/JSON",
            " application/json ",
        ] {
            assert_eq!(
                answer(200, Some(ct), r#"{"instruction":"accept"}"#),
                Answer::Accept,
                "{ct}"
            );
        }
    }

    #[test]
    fn reject_with_and_without_activity() {
        assert_eq!(
            answer(
                200,
                Some(JSON),
                r#"{"instruction":"reject","activity_sid":"WA0123"}"#
            ),
            Answer::Reject {
                activity_sid: Some("WA0123".to_owned())
            }
        );
        for body in [
            r#"{"instruction":"reject"}"#,
            r#"{"instruction":"reject","activity_sid":null}"#,
            r#"{"instruction":"reject","activity_sid":""}"#,
        ] {
            assert_eq!(
                answer(200, Some(JSON), body),
                Answer::Reject { activity_sid: None },
                "{body}"
            );
        }
        let a = answer(
            200,
            Some(JSON),
            r#"{"instruction":"reject","activity_sid":7}"#,
        );
        assert_eq!(code(&a), Some(40100), "{a:?}");
        assert!(matches!(a, Answer::Invalid { .. }));
    }

    #[test]
    fn unknown_or_miscased_instruction_is_55555() {
        for body in [
            r#"{"instruction":"teleport"}"#,
            r#"{"instruction":"Accept"}"#,
            r#"{"instruction":"ACCEPT"}"#,
            r#"{"instruction":""}"#,
            r#"{"instruction":null}"#,
            r#"{"instruction":["accept"]}"#,
        ] {
            let a = answer(200, Some(JSON), body);
            assert!(
                matches!(a, Answer::Invalid { code: 55555, .. }),
                "{body}: {a:?}"
            );
        }
    }

    #[test]
    fn telephony_instructions_keep_the_whole_object() {
        let body = r#"{"instruction":"call","from":"+18005550100","url":"https://app.test/agent","to":"client:joey","accept":true}"#;
        match answer(200, Some(JSON), body) {
            Answer::Telephony { instruction, body } => {
                assert_eq!(instruction, "call");
                assert_eq!(body["to"], "client:joey");
                assert_eq!(body["accept"], true);
                assert_eq!(body["instruction"], "call");
            }
            other => panic!("{other:?}"),
        }
        for (body, name) in [
            (r#"{"instruction":"dequeue"}"#, "dequeue"),
            (
                r#"{"instruction":"dequeue","from":"+18005550100","post_work_activity_sid":"WA1"}"#,
                "dequeue",
            ),
            (r#"{"instruction":"conference"}"#, "conference"),
            (
                r#"{"instruction":"supervise","supervisor":"WK1"}"#,
                "supervise",
            ),
            (
                r#"{"instruction":"redirect","call_sid":"CA1","url":"https://app.test/twiml"}"#,
                "redirect",
            ),
        ] {
            match answer(200, Some(JSON), body) {
                Answer::Telephony { instruction, .. } => assert_eq!(instruction, name),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn telephony_instructions_missing_a_required_field() {
        for (body, expected) in [
            (r#"{"instruction":"call","from":"+18005550100"}"#, 40112),
            (
                r#"{"instruction":"call","from":"+18005550100","url":""}"#,
                40112,
            ),
            (
                r#"{"instruction":"call","url":"https://app.test/a"}"#,
                40111,
            ),
            (
                r#"{"instruction":"call","from":5,"url":"https://app.test/a"}"#,
                40111,
            ),
            (r#"{"instruction":"call"}"#, 40111),
            (r#"{"instruction":"redirect","call_sid":"CA1"}"#, 40120),
            (
                r#"{"instruction":"redirect","url":"https://app.test/t"}"#,
                40121,
            ),
            (
                r#"{"instruction":"redirect","url":"https://app.test/t","call_sid":null}"#,
                40121,
            ),
        ] {
            let a = answer(200, Some(JSON), body);
            assert!(matches!(a, Answer::Invalid { .. }), "{body}: {a:?}");
            assert_eq!(code(&a), Some(expected), "{body}: {a:?}");
        }
    }

    #[test]
    fn json_that_is_not_an_object_is_invalid() {
        for body in ["[]", "\"accept\"", "null", "42"] {
            let a = answer(200, Some(JSON), body);
            assert!(
                matches!(a, Answer::Invalid { code: 40001, .. }),
                "{body}: {a:?}"
            );
        }
    }

    #[test]
    fn non_json_body_fails_with_40001() {
        for body in [
            "accept",
            "{\"instruction\":",
            "<Response/>",
            r#""{\"instruction\":\"accept\"}"#,
        ] {
            let a = answer(200, Some(JSON), body);
            assert!(
                matches!(
                    a,
                    Answer::Failed {
                        code: Some(40001),
                        ..
                    }
                ),
                "{body}: {a:?}"
            );
        }
    }

    #[test]
    fn non_empty_body_without_json_content_type_fails_with_40000() {
        for ct in [
            None,
            Some("text/plain"),
            Some("text/html; charset=utf-8"),
            Some("application/jsonp"),
            Some("application/x-www-form-urlencoded"),
        ] {
            let a = answer(200, ct, r#"{"instruction":"accept"}"#);
            assert!(
                matches!(
                    a,
                    Answer::Failed {
                        code: Some(40000),
                        ..
                    }
                ),
                "{ct:?}: {a:?}"
            );
        }
        // `{}` is a body too: without the content type it is not a deferral.
        let a = answer(200, Some("text/plain"), "{}");
        assert_eq!(code(&a), Some(40000), "{a:?}");
    }

    #[test]
    fn non_2xx_fails_without_a_code_even_with_a_valid_instruction() {
        for status in [100, 199, 301, 302, 400, 404, 500, 503] {
            let a = answer(status, Some(JSON), r#"{"instruction":"accept"}"#);
            match a {
                Answer::Failed {
                    code: None,
                    message,
                } => {
                    assert_eq!(message, format!("HTTP {status}"));
                }
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[test]
    fn no_answer_fails_without_a_code() {
        let mut attempt = Attempt {
            url: "http://app.test/assignment".to_owned(),
            status: None,
            content_type: None,
            body: String::new(),
            body_truncated: false,
            duration_ms: 5000,
            error: Some(AttemptError::Timeout),
        };
        assert_eq!(
            parse_answer(&attempt),
            Answer::Failed {
                code: None,
                message: "timed out".to_owned()
            }
        );
        attempt.error = Some(AttemptError::Connect("connection refused".to_owned()));
        assert!(matches!(
            parse_answer(&attempt),
            Answer::Failed { code: None, .. }
        ));
        // The status arrived but the body did not: still no usable answer.
        attempt.status = Some(200);
        attempt.content_type = Some(JSON.to_owned());
        attempt.error = Some(AttemptError::Timeout);
        assert_eq!(
            parse_answer(&attempt),
            Answer::Failed {
                code: None,
                message: "HTTP 200, then timed out".to_owned()
            }
        );
        // No status and no error cannot come from the client, but is not a success either.
        attempt.status = None;
        attempt.error = None;
        assert!(matches!(
            parse_answer(&attempt),
            Answer::Failed { code: None, .. }
        ));
    }
}
