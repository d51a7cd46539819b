//! # taskyard-console
//!
//! The live console at `/console/`: a person logs in with an account's credentials (account
//! SID and auth token, or an API key and its secret) and watches a workspace — queues,
//! workers, tasks, events — change as it happens, and changes it.
//!
//! The page is plain HTML, CSS and JavaScript modules, built into the binary
//! (`include_str!`): no build step, no CDN, nothing fetched from elsewhere, so it works on
//! a machine without internet. It talks only to the public TaskRouter v1 API of the
//! server that served it, with the credentials the person typed (kept in the tab's session
//! storage): it can see and do exactly what those credentials allow through REST, nothing
//! more. Live updates come from the workspace's event stream (`…/Events/Stream`, read with
//! `fetch` so that it can carry the `Authorization` header); what an event does not carry
//! (statistics) is read again when events say it changed, at most once a second.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// Where the console is served.
pub const PATH: &str = "/console/";

/// The console's files: name, content type, contents.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_str!("../assets/index.html"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/console.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/charts.js"),
    ),
    (
        "json.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/json.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../assets/console.css"),
    ),
];

/// Only this origin's scripts, styles and connections; no framing (clickjacking), no
/// referrer (the page's URL is nobody's business).
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

/// The console's routes; merge them with the REST router.
pub fn router() -> Router {
    Router::new()
        .route("/console", get(|| async { Redirect::permanent(PATH) }))
        .route(PATH, get(|| async { asset("") }))
        .route(
            "/console/{file}",
            get(|axum::extract::Path(file): axum::extract::Path<String>| async move {
                asset(&file)
            }),
        )
}

fn asset(name: &str) -> Response {
    let Some((_, kind, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "No such file in the console").into_response();
    };
    let mut resp = (*body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    // The files change with the binary; a reload after an upgrade must not mix versions.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    async fn get(path: &str) -> Response {
        router()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    #[tokio::test]
    async fn serves_every_file_with_its_type_and_policy() {
        for (name, kind, body) in ASSETS {
            let resp = get(&format!("{PATH}{name}")).await;
            assert_eq!(resp.status(), StatusCode::OK, "{name}");
            assert_eq!(resp.headers()[header::CONTENT_TYPE], *kind, "{name}");
            assert!(resp.headers().contains_key(header::CONTENT_SECURITY_POLICY));
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .expect("infallible");
            assert_eq!(bytes.len(), body.len(), "{name}");
        }
    }

    #[tokio::test]
    async fn redirects_the_bare_path_and_refuses_unknown_files() {
        let resp = get("/console").await;
        assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(resp.headers()[header::LOCATION], PATH);
        assert_eq!(
            get("/console/../Cargo.toml").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get("/console/nope.js").await.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for (name, _, body) in ASSETS {
            for needle in ["http://", "https://", "//cdn", "@import"] {
                assert!(!body.contains(needle), "{name} mentions {needle}");
            }
        }
    }
}
