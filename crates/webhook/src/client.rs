//! The outbound HTTP client: signed, form-encoded POSTs with a hard deadline.

use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};

use crate::policy::{NameRefused, Policy, UrlRefusal};
use crate::{SIGNATURE_HEADER, signature};

/// The `User-Agent` Twilio sends on its webhooks (some applications check it).
pub const USER_AGENT_VALUE: &str = "TwilioProxy/1.1";

/// The header that carries the caller's idempotency token, as Twilio names it.
pub const IDEMPOTENCY_TOKEN_HEADER: &str = "I-Twilio-Idempotency-Token";

/// How much of a response body an [`Attempt`] keeps; the rest is not read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why an [`Attempt`] got no usable HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    /// The deadline passed before the whole answer (status and body) arrived.
    #[error("timed out")]
    Timeout,
    /// No connection: DNS failure, connection refused or reset, TLS handshake failure.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The URL cannot be requested (unparsable, not `http`/`https`, no host).
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The client's [`Policy`] refuses the address: the URL's IP-literal host, or every
    /// address its host name resolves to. Nothing was sent.
    #[error("refused by the callback policy: {0}")]
    Refused(String),
    /// Anything else (the connection broke while reading, a malformed answer, …).
    #[error("{0}")]
    Other(String),
}

/// What happened when a webhook was posted: the answer if there was one, and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The URL posted to, exactly as given.
    pub url: String,
    /// The HTTP status, `None` when no HTTP answer arrived (connection error, timeout).
    pub status: Option<u16>,
    /// The answer's `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The answer's body, decoded as UTF-8 (invalid sequences replaced), at most
    /// [`MAX_BODY_BYTES`] of it. Empty when the deadline passed while it was being read; what
    /// arrived when the connection broke while it was being read.
    pub body: String,
    /// Whether the body was longer than [`MAX_BODY_BYTES`] and was cut.
    pub body_truncated: bool,
    /// Wall-clock time from the start of the request until the body was read (or it failed).
    pub duration_ms: u64,
    /// Why there is no complete answer. Can be set together with `status` when the status
    /// arrived but reading the body failed or timed out.
    pub error: Option<AttemptError>,
}

impl Attempt {
    /// Whether the endpoint answered with a 2xx status and the whole answer was read.
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && matches!(self.status, Some(200..=299))
    }
}

/// A webhook client. Cheap to clone: clones share one connection pool.
///
/// Redirects are not followed (Twilio does not follow them for these callbacks either);
/// a 3xx is returned as it is — which also means an allowed host cannot send a callback on
/// to an address the [`Policy`] refuses. Proxies named by the usual environment variables
/// (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`) are honoured; through a proxy, the
/// connection is the proxy's, so the resolver's check sees the proxy's address, not the
/// URL's (an IP-literal URL host is still checked). Credentials in the URL
/// (`https://user:pass@host/…`) are sent as HTTP Basic authentication.
#[derive(Debug, Clone)]
pub struct Client {
    /// Building a `reqwest::Client` only fails if the TLS backend cannot be initialised; then
    /// every post reports that instead of panicking.
    http: Result<reqwest::Client, String>,
    policy: Arc<Policy>,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    /// A client with its own connection pool and the default [`Policy`]. Build one and
    /// clone it.
    pub fn new() -> Client {
        Client::with_policy(Policy::default())
    }

    /// A client that connects only to addresses `policy` allows: its resolver drops refused
    /// addresses (and fails when none is left), and an IP-literal host is checked before
    /// anything is sent. Either way the attempt fails with [`AttemptError::Refused`].
    pub fn with_policy(policy: Policy) -> Client {
        let policy = Arc::new(policy);
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT_VALUE)
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(Checked {
                policy: policy.clone(),
            }))
            .build()
            .map_err(|e| error_chain(&e));
        Client { http, policy }
    }

    /// The policy this client connects by.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// POSTs `params` form-encoded to `url`, signed with `X-Twilio-Signature` using
    /// `auth_token` (exactly what Twilio's `RequestValidator` checks: `url` as given followed
    /// by the sorted parameters), and waits at most `timeout` for the whole answer.
    ///
    /// `idempotency_token`, when given, is sent as `I-Twilio-Idempotency-Token`.
    ///
    /// Never fails: every problem is reported in the returned [`Attempt`]. Must be called
    /// from within a Tokio runtime.
    pub async fn post_form(
        &self,
        url: &str,
        params: &[(String, String)],
        auth_token: &str,
        timeout: Duration,
        idempotency_token: Option<&str>,
    ) -> Attempt {
        let started = Instant::now();
        let mut attempt = Attempt {
            url: url.to_owned(),
            status: None,
            content_type: None,
            body: String::new(),
            body_truncated: false,
            duration_ms: 0,
            error: None,
        };
        let result = match self.prepare(url, params, auth_token, idempotency_token) {
            Ok(request) => match tokio::time::timeout(timeout, send(request, &mut attempt)).await {
                Ok(result) => result,
                Err(_elapsed) => Err(AttemptError::Timeout),
            },
            Err(error) => Err(error),
        };
        attempt.error = result.err();
        attempt.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        attempt
    }

    fn prepare(
        &self,
        url: &str,
        params: &[(String, String)],
        auth_token: &str,
        idempotency_token: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, AttemptError> {
        let http = self
            .http
            .as_ref()
            .map_err(|e| AttemptError::Other(format!("HTTP client unavailable: {e}")))?;
        let parsed =
            reqwest::Url::parse(url).map_err(|e| AttemptError::InvalidUrl(e.to_string()))?;
        // The resolver never sees an IP-literal host, so the policy is applied to it here.
        match self.policy.check_parsed(&parsed) {
            Ok(_) => {}
            Err(UrlRefusal::Scheme(scheme)) => {
                return Err(AttemptError::InvalidUrl(format!(
                    "unsupported scheme {scheme:?} (only http and https)"
                )));
            }
            Err(UrlRefusal::NoHost) => return Err(AttemptError::InvalidUrl("no host".to_owned())),
            Err(UrlRefusal::Address(refusal)) => {
                return Err(AttemptError::Refused(refusal.to_string()));
            }
            Err(other) => return Err(AttemptError::InvalidUrl(other.to_string())),
        }

        let pairs: Vec<(&str, &str)> = params
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let signature = signature(auth_token, url, &pairs);
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();

        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        // Base64 is always a valid header value; the error arm is unreachable in practice.
        let signature = HeaderValue::from_str(&signature)
            .map_err(|e| AttemptError::Other(format!("signature header: {e}")))?;
        headers.insert(SIGNATURE_HEADER, signature);
        if let Some(token) = idempotency_token {
            let token = HeaderValue::from_str(token)
                .map_err(|e| AttemptError::Other(format!("invalid idempotency token: {e}")))?;
            headers.insert(IDEMPOTENCY_TOKEN_HEADER, token);
        }
        Ok(http.post(parsed).headers(headers).body(body))
    }
}

/// Sends the request and reads the answer into `attempt` (status and content type as soon as
/// they arrive, so that they survive a timeout while the body is read).
async fn send(request: reqwest::RequestBuilder, attempt: &mut Attempt) -> Result<(), AttemptError> {
    let mut response = request.send().await.map_err(classify)?;
    attempt.status = Some(response.status().as_u16());
    attempt.content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());

    let mut body: Vec<u8> = Vec::new();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                attempt.body = decode_utf8(&body, false);
                return Err(classify(e));
            }
        };
        let room = MAX_BODY_BYTES - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            attempt.body_truncated = true;
            // Stop reading; dropping the response closes the connection.
            break;
        }
        body.extend_from_slice(&chunk);
    }
    attempt.body = decode_utf8(&body, attempt.body_truncated);
    Ok(())
}

/// Lossy UTF-8. When the body was cut, a character cut in half at the end is dropped rather
/// than replaced.
fn decode_utf8(bytes: &[u8], truncated: bool) -> String {
    let end = if truncated {
        bytes.len() - incomplete_tail(bytes)
    } else {
        bytes.len()
    };
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// How many bytes at the end of `bytes` are the start of a multi-byte UTF-8 sequence that
/// is not complete.
fn incomplete_tail(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let b = bytes[bytes.len() - back];
        if b & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: look further back for the lead byte
        }
        let needed = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if needed > back { back } else { 0 };
    }
    0
}

/// The connect-time half of the [`Policy`]: resolves a host name as the system does and
/// keeps only the addresses the policy allows, so a name that points somewhere refused *now*
/// (DNS rebinding after the URL was saved) is refused now.
struct Checked {
    policy: Arc<Policy>,
}

impl Resolve for Checked {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port in.
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusals = Vec::new();
            let mut allowed = Vec::with_capacity(found.len());
            for address in found {
                match policy.check(address.ip()) {
                    Ok(()) => allowed.push(address),
                    Err(refusal) => refusals.push(refusal),
                }
            }
            if allowed.is_empty() && !refusals.is_empty() {
                return Err(Box::new(NameRefused { host, refusals }) as _);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

fn classify(e: reqwest::Error) -> AttemptError {
    if e.is_timeout() {
        return AttemptError::Timeout;
    }
    // The resolver's refusal arrives wrapped in reqwest's and hyper's connect errors.
    let mut source = e.source();
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<NameRefused>() {
            return AttemptError::Refused(refused.to_string());
        }
        source = err.source();
    }
    let is_connect = e.is_connect();
    let is_builder = e.is_builder();
    // The URL is in the attempt already; keep it out of the message.
    let e = e.without_url();
    if is_connect {
        // reqwest's own "error sending request" says nothing here; the cause does.
        let cause = e.source().map(error_chain);
        AttemptError::Connect(cause.unwrap_or_else(|| error_chain(&e)))
    } else if is_builder {
        AttemptError::InvalidUrl(error_chain(&e))
    } else {
        AttemptError::Other(error_chain(&e))
    }
}

/// The error's message followed by its sources', skipping repeats and hyper's generic
/// "client error (…)" layer: "tcp connect error: Connection refused (os error 111)".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let message = err.to_string();
        let generic = message.starts_with("client error (") && err.source().is_some();
        let repeated = parts.last().is_some_and(|last| last.ends_with(&message));
        if !message.is_empty() && !generic && !repeated {
            parts.push(message);
        }
        next = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_cut_in_the_middle_of_a_character_drops_the_partial_character() {
        let s = "aé€😀";
        let bytes = s.as_bytes();
        for cut in 0..=bytes.len() {
            let decoded = decode_utf8(&bytes[..cut], true);
            assert!(s.starts_with(&decoded), "{cut}: {decoded:?}");
            assert!(cut - decoded.len() < 4);
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_not_rejected() {
        assert_eq!(decode_utf8(b"a\xffb", false), "a\u{fffd}b");
        assert_eq!(decode_utf8(b"a\xffb\xe2\x82", true), "a\u{fffd}b");
        assert_eq!(decode_utf8(b"a\xe2\x82", false), "a\u{fffd}");
    }

    #[test]
    fn error_display_is_short() {
        assert_eq!(AttemptError::Timeout.to_string(), "timed out");
        assert_eq!(
            AttemptError::Connect("refused".into()).to_string(),
            "connection failed: refused"
        );
        assert_eq!(
            AttemptError::InvalidUrl("no host".into()).to_string(),
            "invalid URL: no host"
        );
        assert_eq!(
            AttemptError::Refused("169.254.169.254, …".into()).to_string(),
            "refused by the callback policy: 169.254.169.254, …"
        );
    }
}
