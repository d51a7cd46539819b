//! In-process HTTP tests of Twilio's API Keys (`/2010-04-01/Accounts/{AC}/Keys`) and of
//! HTTP Basic authentication with `SK…:secret`: the real router, real workspace actors and
//! a real SQLite store in a temporary directory, driven through `tower::ServiceExt::oneshot`
//! the way Twilio's helper libraries call (Basic auth, form bodies).

use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine as _;
use serde_json::Value;
use taskyard_api::{App, router};
use taskyard_hub::Hub;
use taskyard_store::sqlite::{Durability, SqliteStore};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;
use tower::ServiceExt;

const BASE: &str = "http://taskyard.test";

/// A server over one data directory.
struct Yard {
    router: Router,
    hub: Hub,
}

/// HTTP Basic credentials (an account's auth token or a key's secret).
#[derive(Clone)]
struct Creds {
    user: String,
    pass: String,
}

impl Creds {
    fn header(&self) -> String {
        basic(&self.user, &self.pass)
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
    body: Value,
}

impl Reply {
    #[track_caller]
    fn ok(self, want: StatusCode) -> Value {
        assert_eq!(self.status, want, "unexpected status; body: {}", self.text);
        self.body
    }

    /// Asserts Twilio's error document, exactly `{code, message, more_info, status}`.
    #[track_caller]
    fn error(self, status: u16, code: u64) -> Reply {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        let obj = self.body.as_object().expect("an error document");
        let mut fields: Vec<&str> = obj.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            ["code", "message", "more_info", "status"],
            "{}",
            self.text
        );
        assert_eq!(self.body["code"], code, "body: {}", self.text);
        assert_eq!(self.body["status"], status, "body: {}", self.text);
        assert_eq!(
            self.body["more_info"],
            format!("https://www.twilio.com/docs/errors/{code}")
        );
        assert!(
            !self.body["message"].as_str().expect("message").is_empty(),
            "empty message"
        );
        self
    }
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

fn sid(v: &Value) -> String {
    str_of(v, "sid").to_string()
}

/// A well-formed SID that does not exist.
fn missing(prefix: &str) -> String {
    format!("{prefix}0123456789abcdef0123456789abcdef")
}

impl Yard {
    fn open(dir: &Path) -> Yard {
        let store = SqliteStore::open(dir, Durability::Normal).expect("store");
        let hub = Hub::start(Box::new(store)).expect("hub");
        Yard {
            router: router(App::new(hub.clone(), BASE, false)),
            hub,
        }
    }

    /// A new top-level account.
    async fn account(&self, name: &str) -> Creds {
        let a = self
            .hub
            .create_account(name.into(), None)
            .await
            .expect("account");
        Creds {
            user: a.sid.to_string(),
            pass: a.auth_token,
        }
    }

    async fn send_raw(
        &self,
        authorization: Option<&str>,
        method: &str,
        uri: &str,
        form: &[(&str, &str)],
    ) -> Reply {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        let resp = self
            .router
            .clone()
            .oneshot(req.body(Body::from(body)).expect("request"))
            .await
            .expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        let text = String::from_utf8(bytes.to_vec()).expect("utf-8 body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        Reply {
            status,
            headers,
            text,
            body,
        }
    }

    async fn send(&self, who: &Creds, method: &str, uri: &str, form: &[(&str, &str)]) -> Reply {
        self.send_raw(Some(&who.header()), method, uri, form).await
    }

    async fn get(&self, who: &Creds, uri: &str) -> Reply {
        self.send(who, "GET", uri, &[]).await
    }

    async fn post(&self, who: &Creds, uri: &str, form: &[(&str, &str)]) -> Reply {
        self.send(who, "POST", uri, form).await
    }

    async fn delete(&self, who: &Creds, uri: &str) -> Reply {
        self.send(who, "DELETE", uri, &[]).await
    }

    /// Creates a key of `account` as `who`; returns the create answer and the key's creds.
    async fn key(&self, who: &Creds, account: &str, name: &str) -> (Value, Creds) {
        let k = self
            .post(who, &keys_uri(account), &[("FriendlyName", name)])
            .await
            .ok(StatusCode::CREATED);
        let creds = Creds {
            user: sid(&k),
            pass: str_of(&k, "secret").to_string(),
        };
        (k, creds)
    }

    async fn workspace(&self, who: &Creds, name: &str) -> String {
        let ws = self
            .post(who, "/v1/Workspaces", &[("FriendlyName", name)])
            .await
            .ok(StatusCode::CREATED);
        sid(&ws)
    }

    /// The SIDs of the workspaces `who` lists (one page of 1000 is plenty here).
    async fn workspace_sids(&self, who: &Creds) -> Vec<String> {
        let page = self
            .get(who, "/v1/Workspaces?PageSize=1000")
            .await
            .ok(StatusCode::OK);
        assert!(page["meta"]["next_page_url"].is_null());
        page["workspaces"]
            .as_array()
            .expect("workspaces")
            .iter()
            .map(sid)
            .collect()
    }

    /// The key list of `account`, as `who` sees it.
    async fn key_list(&self, who: &Creds, account: &str) -> Vec<Value> {
        let page = self.get(who, &keys_uri(account)).await.ok(StatusCode::OK);
        page["keys"].as_array().expect("keys").clone()
    }
}

fn keys_uri(account: &str) -> String {
    format!("/2010-04-01/Accounts/{account}/Keys.json")
}

fn key_uri(account: &str, key: &str) -> String {
    format!("/2010-04-01/Accounts/{account}/Keys/{key}.json")
}

#[track_caller]
fn assert_sid(s: &str, prefix: &str) {
    assert!(
        s.len() == 34
            && s.starts_with(prefix)
            && s[2..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "not a {prefix} SID: {s}"
    );
}

/// An RFC 2822 date within a minute of now.
#[track_caller]
fn assert_recent_rfc2822(v: &Value) -> OffsetDateTime {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    let t = OffsetDateTime::parse(s, &Rfc2822).unwrap_or_else(|e| panic!("{s:?}: {e}"));
    let age = OffsetDateTime::now_utc() - t;
    assert!(
        age.whole_seconds().abs() < 60,
        "{s} is not the time of the request"
    );
    t
}

/// Every byte of every file under `dir`.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.extend(bytes);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn a_key_secret_authenticates_taskrouter_as_its_account() {
    let dir = tempfile::tempdir().expect("tempdir");
    let y = Yard::open(dir.path());
    let a = y.account("A").await;
    let b = y.account("B").await;
    let a1 = y.workspace(&a, "A one").await;
    let a2 = y.workspace(&a, "A two").await;
    let b1 = y.workspace(&b, "B one").await;

    let (created, key) = y.key(&a, &a.user, "Deploy bot").await;
    assert_sid(&key.user, "SK");
    assert_eq!(created["friendly_name"], "Deploy bot");
    let secret = str_of(&created, "secret");
    assert!(
        secret.len() >= 32 && secret.bytes().all(|c| c.is_ascii_alphanumeric()),
        "secret {secret:?}"
    );
    let made = assert_recent_rfc2822(&created["date_created"]);
    assert_eq!(assert_recent_rfc2822(&created["date_updated"]), made);

    // Exactly the key's account's workspaces, in creation order.
    assert_eq!(y.workspace_sids(&key).await, [a1.clone(), a2.clone()]);
    y.get(&key, &format!("/v1/Workspaces/{a1}"))
        .await
        .ok(StatusCode::OK);
    assert!(!y.workspace_sids(&key).await.contains(&b1));

    // What the key creates belongs to the account: its auth token sees it.
    let made_by_key = y
        .post(&key, "/v1/Workspaces", &[("FriendlyName", "By key")])
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(made_by_key["account_sid"], a.user.as_str());
    assert_eq!(y.workspace_sids(&a).await, [a1, a2, sid(&made_by_key)]);
    let worker = y
        .post(
            &key,
            &format!("/v1/Workspaces/{}/Workers", sid(&made_by_key)),
            &[("FriendlyName", "alice")],
        )
        .await
        .ok(StatusCode::CREATED);
    y.get(
        &a,
        &format!(
            "/v1/Workspaces/{}/Workers/{}",
            sid(&made_by_key),
            sid(&worker)
        ),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(y.workspace_sids(&b).await, [b1]);
}

#[tokio::test]
async fn wrong_foreign_and_deleted_credentials_answer_twilio_401() {
    let dir = tempfile::tempdir().expect("tempdir");
    let y = Yard::open(dir.path());
    let a = y.account("A").await;
    let b = y.account("B").await;
    y.workspace(&a, "A").await;
    let (_, k1) = y.key(&a, &a.user, "one").await;
    let (_, k2) = y.key(&a, &a.user, "two").await;
    let (_, kb) = y.key(&b, &b.user, "b").await;
    let ws = "/v1/Workspaces";
    y.get(&k1, ws).await.ok(StatusCode::OK);

    let mut flipped = k1.pass.clone().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let refused = [
        (
            "wrong secret",
            k1.user.clone(),
            String::from_utf8(flipped).expect("ascii"),
        ),
        (
            "secret cut short",
            k1.user.clone(),
            k1.pass[..31].to_string(),
        ),
        ("secret with more", k1.user.clone(), format!("{}x", k1.pass)),
        ("empty secret", k1.user.clone(), String::new()),
        ("another key's secret", k1.user.clone(), k2.pass.clone()),
        (
            "another account's key's secret",
            k1.user.clone(),
            kb.pass.clone(),
        ),
        (
            "the account's auth token as a key's secret",
            k1.user.clone(),
            a.pass.clone(),
        ),
        (
            "a key's secret as the auth token",
            a.user.clone(),
            k1.pass.clone(),
        ),
        ("a key that does not exist", missing("SK"), k1.pass.clone()),
    ];
    for (why, user, pass) in refused {
        let r = y
            .send_raw(Some(&basic(&user, &pass)), "GET", ws, &[])
            .await
            .error(401, 20003);
        assert!(
            r.headers.contains_key(header::WWW_AUTHENTICATE),
            "{why}: no WWW-Authenticate"
        );
    }

    // A deleted key stops at once; the others go on.
    y.delete(&a, &key_uri(&a.user, &k1.user))
        .await
        .ok(StatusCode::NO_CONTENT);
    y.get(&k1, ws).await.error(401, 20003);
    y.post(&k1, ws, &[("FriendlyName", "after delete")])
        .await
        .error(401, 20003);
    y.get(&a, &key_uri(&a.user, &k1.user))
        .await
        .error(404, 20404);
    y.delete(&a, &key_uri(&a.user, &k1.user))
        .await
        .error(404, 20404);
    y.get(&k2, ws).await.ok(StatusCode::OK);
    y.get(&kb, ws).await.ok(StatusCode::OK);
    let left: Vec<String> = y.key_list(&a, &a.user).await.iter().map(sid).collect();
    assert_eq!(left, [k2.user.as_str()]);
    assert_eq!(
        y.workspace_sids(&a).await.len(),
        1,
        "nothing made after delete"
    );
}

#[tokio::test]
async fn a_key_of_one_account_sees_nothing_of_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let y = Yard::open(dir.path());
    let a = y.account("A").await;
    let b = y.account("B").await;
    let wsb = y.workspace(&b, "B's").await;
    let wkb = sid(&y
        .post(
            &b,
            &format!("/v1/Workspaces/{wsb}/Workers"),
            &[("FriendlyName", "bob")],
        )
        .await
        .ok(StatusCode::CREATED));
    let (_, ka) = y.key(&a, &a.user, "A's key").await;
    let (_, kb) = y.key(&b, &b.user, "B's key").await;

    let p = format!("/v1/Workspaces/{wsb}");
    y.get(&ka, &p).await.error(404, 20404);
    y.post(&ka, &p, &[("FriendlyName", "stolen")])
        .await
        .error(404, 20404);
    y.get(&ka, &format!("{p}/Workers")).await.error(404, 20404);
    y.get(&ka, &format!("{p}/Workers/{wkb}"))
        .await
        .error(404, 20404);
    y.post(
        &ka,
        &format!("{p}/Workers/{wkb}"),
        &[("Attributes", "{\"x\":1}")],
    )
    .await
    .error(404, 20404);
    y.post(
        &ka,
        &format!("{p}/Workers"),
        &[("FriendlyName", "intruder")],
    )
    .await
    .error(404, 20404);
    y.delete(&ka, &p).await.error(404, 20404);
    assert!(y.workspace_sids(&ka).await.is_empty());

    // B sees its workspace as it was.
    let ws = y.get(&b, &p).await.ok(StatusCode::OK);
    assert_eq!(ws["friendly_name"], "B's");
    let w = y
        .get(&b, &format!("{p}/Workers/{wkb}"))
        .await
        .ok(StatusCode::OK);
    assert_eq!(w["attributes"], "{}");
    let workers = y.get(&b, &format!("{p}/Workers")).await.ok(StatusCode::OK);
    assert_eq!(workers["workers"].as_array().expect("workers").len(), 1);

    // B's keys: 404 to A's auth token, whichever path it takes; 403 to A's key (a key
    // manages no keys at all).
    let theirs = keys_uri(&b.user);
    let their_key = key_uri(&b.user, &kb.user);
    y.get(&a, &theirs).await.error(404, 20404);
    y.post(&a, &theirs, &[("FriendlyName", "planted")])
        .await
        .error(404, 20404);
    y.get(&a, &their_key).await.error(404, 20404);
    y.post(&a, &their_key, &[("FriendlyName", "renamed")])
        .await
        .error(404, 20404);
    y.delete(&a, &their_key).await.error(404, 20404);
    // B's key named under A's own account path.
    let under_mine = key_uri(&a.user, &kb.user);
    y.get(&a, &under_mine).await.error(404, 20404);
    y.post(&a, &under_mine, &[("FriendlyName", "renamed")])
        .await
        .error(404, 20404);
    y.delete(&a, &under_mine).await.error(404, 20404);
    y.get(&ka, &theirs).await.error(403, 20403);
    y.delete(&ka, &their_key).await.error(403, 20403);

    let left = y.key_list(&b, &b.user).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["sid"], kb.user.as_str());
    assert_eq!(left[0]["friendly_name"], "B's key");
    y.get(&kb, &p).await.ok(StatusCode::OK);
    assert!(
        !y.key_list(&a, &a.user)
            .await
            .iter()
            .any(|k| k["friendly_name"] == "planted")
    );
}

#[tokio::test]
async fn a_parent_manages_its_subaccounts_keys_and_nobody_else_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let y = Yard::open(dir.path());
    let parent = y.account("Parent").await;
    let stranger = y.account("Stranger").await;
    let sub = y
        .post(
            &parent,
            "/2010-04-01/Accounts.json",
            &[("FriendlyName", "Team")],
        )
        .await
        .ok(StatusCode::CREATED);
    let sub = Creds {
        user: sid(&sub),
        pass: str_of(&sub, "auth_token").to_string(),
    };
    let parent_ws = y.workspace(&parent, "Parent's").await;
    let sub_ws = y.workspace(&sub, "Team's").await;

    // The parent's auth token makes a key of the subaccount: it acts as the subaccount.
    let (_, sk) = y.key(&parent, &sub.user, "team key").await;
    assert_eq!(y.workspace_sids(&sk).await, [sub_ws.as_str()]);
    y.get(&sk, &format!("/v1/Workspaces/{parent_ws}"))
        .await
        .error(404, 20404);
    let listed: Vec<String> = y.key_list(&sub, &sub.user).await.iter().map(sid).collect();
    assert_eq!(listed, [sk.user.as_str()]);
    let listed: Vec<String> = y
        .key_list(&parent, &sub.user)
        .await
        .iter()
        .map(sid)
        .collect();
    assert_eq!(listed, [sk.user.as_str()]);
    assert!(y.key_list(&parent, &parent.user).await.is_empty());

    // The subaccount may not manage its parent's keys, nor may a stranger touch either.
    let (_, pk) = y.key(&parent, &parent.user, "parent key").await;
    y.get(&sub, &keys_uri(&parent.user)).await.error(404, 20404);
    y.post(&sub, &keys_uri(&parent.user), &[("FriendlyName", "x")])
        .await
        .error(404, 20404);
    y.delete(&sub, &key_uri(&parent.user, &pk.user))
        .await
        .error(404, 20404);
    for account in [&parent.user, &sub.user] {
        y.get(&stranger, &keys_uri(account)).await.error(404, 20404);
        y.post(&stranger, &keys_uri(account), &[("FriendlyName", "x")])
            .await
            .error(404, 20404);
    }
    y.delete(&stranger, &key_uri(&sub.user, &sk.user))
        .await
        .error(404, 20404);
    // Not even the parent's own key may manage the subaccount's keys.
    y.get(&pk, &keys_uri(&sub.user)).await.error(403, 20403);
    y.get(&pk, "/v1/Workspaces").await.ok(StatusCode::OK);
    assert_eq!(y.key_list(&sub, &sub.user).await.len(), 1);
    assert_eq!(y.key_list(&parent, &parent.user).await.len(), 1);

    // The parent renames and deletes the subaccount's key.
    let renamed = y
        .post(
            &parent,
            &key_uri(&sub.user, &sk.user),
            &[("FriendlyName", "renamed by parent")],
        )
        .await
        .ok(StatusCode::OK);
    assert_eq!(renamed["friendly_name"], "renamed by parent");
    y.delete(&parent, &key_uri(&sub.user, &sk.user))
        .await
        .ok(StatusCode::NO_CONTENT);
    y.get(&sk, "/v1/Workspaces").await.error(401, 20003);
    assert!(y.key_list(&sub, &sub.user).await.is_empty());
}

/// A request: method, path and form.
type Call<'a> = (&'a str, String, &'a [(&'a str, &'a str)]);

#[tokio::test]
async fn keys_may_not_manage_keys_or_accounts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let y = Yard::open(dir.path());
    let a = y.account("A").await;
    let (_, key) = y.key(&a, &a.user, "limited").await;
    let own = key_uri(&a.user, &key.user);
    let calls: [Call; 9] = [
        ("POST", keys_uri(&a.user), &[("FriendlyName", "by a key")]),
        ("GET", keys_uri(&a.user), &[]),
        ("GET", own.clone(), &[]),
        (
            "POST",
            own.clone(),
            &[("FriendlyName", "renamed by itself")],
        ),
        ("DELETE", own.clone(), &[]),
        ("GET", "/2010-04-01/Accounts.json".into(), &[]),
        (
            "POST",
            "/2010-04-01/Accounts.json".into(),
            &[("FriendlyName", "sub by key")],
        ),
        ("GET", format!("/2010-04-01/Accounts/{}.json", a.user), &[]),
        ("GET", format!("/2010-04-01/Accounts/{}", a.user), &[]),
    ];
    for (method, uri, form) in &calls {
        let r = y.send(&key, method, uri, form).await;
        assert!(
            !r.text.contains(&a.pass),
            "{method} {uri} showed the auth token"
        );
        r.error(403, 20403);
    }
    // Nothing was made, renamed or deleted.
    let keys = y.key_list(&a, &a.user).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["sid"], key.user.as_str());
    assert_eq!(keys[0]["friendly_name"], "limited");
    let accounts = y
        .get(&a, "/2010-04-01/Accounts.json")
        .await
        .ok(StatusCode::OK);
    assert_eq!(accounts["accounts"].as_array().expect("accounts").len(), 1);
    y.get(&key, "/v1/Workspaces").await.ok(StatusCode::OK);
}

#[tokio::test]
async fn the_secret_is_shown_once_and_never_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let y = Yard::open(dir.path());
    let a = y.account("A").await;
    let (c1, k1) = y.key(&a, &a.user, "first").await;
    let (_, k2) = y.key(&a, &a.user, "second").await;
    assert_ne!(k1.pass, k2.pass);
    assert_ne!(k1.user, k2.user);
    let mut fields: Vec<&str> = c1
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "date_created",
            "date_updated",
            "friendly_name",
            "secret",
            "sid"
        ]
    );

    let secrets = [k1.pass.as_str(), k2.pass.as_str()];
    let no_secret = |r: Reply, what: &str| {
        for s in secrets {
            assert!(!r.text.contains(s), "{what} shows a secret: {}", r.text);
        }
        r
    };
    let list = no_secret(y.get(&a, &keys_uri(&a.user)).await, "the list").ok(StatusCode::OK);
    let items = list["keys"].as_array().expect("keys");
    assert_eq!(
        items.iter().map(sid).collect::<Vec<_>>(),
        [k1.user.clone(), k2.user.clone()]
    );
    for k in items {
        assert!(k.get("secret").is_none(), "{k}");
        assert_recent_rfc2822(&k["date_created"]);
    }
    for field in [
        "first_page_uri",
        "end",
        "next_page_uri",
        "page",
        "page_size",
        "previous_page_uri",
        "start",
        "uri",
    ] {
        assert!(list.get(field).is_some(), "the list has no {field}: {list}");
    }
    assert_eq!(list["uri"], keys_uri(&a.user));
    assert!(list["next_page_uri"].is_null());

    let fetched =
        no_secret(y.get(&a, &key_uri(&a.user, &k1.user)).await, "fetch").ok(StatusCode::OK);
    assert!(fetched.get("secret").is_none());
    assert_eq!(fetched["sid"], k1.user.as_str());
    assert_eq!(fetched["friendly_name"], "first");
    assert_eq!(fetched["date_created"], c1["date_created"]);
    let updated = no_secret(
        y.post(&a, &key_uri(&a.user, &k1.user), &[("FriendlyName", "x")])
            .await,
        "update",
    )
    .ok(StatusCode::OK);
    assert!(updated.get("secret").is_none());
    no_secret(
        y.get(&a, &format!("/2010-04-01/Accounts/{}.json", a.user))
            .await,
        "the account",
    )
    .ok(StatusCode::OK);
    no_secret(y.get(&a, "/2010-04-01/Accounts.json").await, "accounts").ok(StatusCode::OK);

    // The server keeps a hash: not the secret, in memory or on disk, and never shows the
    // hash either.
    let account = y
        .hub
        .account(a.user.parse().expect("sid"))
        .expect("account");
    assert_eq!(account.api_keys.len(), 2);
    let on_disk = all_bytes(dir.path());
    for (k, secret) in account.api_keys.iter().zip(secrets) {
        assert!(!k.secret_hash.is_empty());
        assert!(
            !k.secret_hash.contains(secret),
            "the stored form holds the secret"
        );
        assert!(
            contains(&on_disk, &k.sid.to_string()),
            "the key was not found on disk at all: this check reads the wrong files"
        );
        assert!(!contains(&on_disk, secret), "the secret is on disk");
        for uri in [keys_uri(&a.user), key_uri(&a.user, &k.sid.to_string())] {
            let r = y.get(&a, &uri).await;
            assert!(!r.text.contains(&k.secret_hash), "{uri} shows the hash");
        }
    }
}

#[tokio::test]
async fn friendly_name_is_at_most_64_characters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let y = Yard::open(dir.path());
    let a = y.account("A").await;
    let uri = keys_uri(&a.user);
    let ascii64 = "n".repeat(64);
    let wide64 = "é".repeat(64); // 128 bytes, 64 characters
    for name in [&ascii64, &wide64] {
        let k = y
            .post(&a, &uri, &[("FriendlyName", name)])
            .await
            .ok(StatusCode::CREATED);
        assert_eq!(k["friendly_name"], name.as_str());
    }
    for name in ["n".repeat(65), "é".repeat(65), "n".repeat(10_000)] {
        let r = y
            .post(&a, &uri, &[("FriendlyName", &name)])
            .await
            .error(400, 20001);
        assert!(!r.text.contains("secret"), "{}", r.text);
    }
    let names: Vec<String> = y
        .key_list(&a, &a.user)
        .await
        .iter()
        .map(|k| str_of(k, "friendly_name").to_string())
        .collect();
    assert_eq!(
        names,
        [ascii64.clone(), wide64],
        "nothing created by the refusals"
    );
    assert_eq!(
        y.hub
            .account(a.user.parse().expect("sid"))
            .expect("account")
            .api_keys
            .len(),
        2
    );

    // Renaming is held to the same limit and changes nothing when refused.
    let first = sid(&y.key_list(&a, &a.user).await[0]);
    y.post(
        &a,
        &key_uri(&a.user, &first),
        &[("FriendlyName", &"x".repeat(65))],
    )
    .await
    .error(400, 20001);
    let k = y
        .get(&a, &key_uri(&a.user, &first))
        .await
        .ok(StatusCode::OK);
    assert_eq!(k["friendly_name"], ascii64.as_str());
}

#[tokio::test]
async fn update_renames_and_the_secret_keeps_working() {
    let dir = tempfile::tempdir().expect("tempdir");
    let y = Yard::open(dir.path());
    let a = y.account("A").await;
    let (created, key) = y.key(&a, &a.user, "old name").await;
    let (_, other) = y.key(&a, &a.user, "untouched").await;
    let uri = key_uri(&a.user, &key.user);
    let renamed = y
        .post(&a, &uri, &[("FriendlyName", "new name")])
        .await
        .ok(StatusCode::OK);
    assert_eq!(renamed["sid"], key.user.as_str());
    assert_eq!(renamed["friendly_name"], "new name");
    assert_eq!(renamed["date_created"], created["date_created"]);
    assert!(
        assert_recent_rfc2822(&renamed["date_updated"])
            >= assert_recent_rfc2822(&created["date_updated"])
    );
    assert_eq!(
        y.get(&a, &uri).await.ok(StatusCode::OK)["friendly_name"],
        "new name"
    );
    // No FriendlyName: the name stays.
    let same = y.post(&a, &uri, &[]).await.ok(StatusCode::OK);
    assert_eq!(same["friendly_name"], "new name");
    let names: Vec<(String, String)> = y
        .key_list(&a, &a.user)
        .await
        .iter()
        .map(|k| (sid(k), str_of(k, "friendly_name").to_string()))
        .collect();
    assert_eq!(
        names,
        [
            (key.user.clone(), "new name".to_string()),
            (other.user.clone(), "untouched".to_string())
        ]
    );
    y.get(&key, "/v1/Workspaces").await.ok(StatusCode::OK);
}

#[tokio::test]
async fn keys_survive_a_restart_over_the_same_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, sub, kept, gone, sub_key, ws, before) = {
        let y = Yard::open(dir.path());
        let a = y.account("A").await;
        let sub = y
            .post(&a, "/2010-04-01/Accounts.json", &[("FriendlyName", "Sub")])
            .await
            .ok(StatusCode::CREATED);
        let sub = Creds {
            user: sid(&sub),
            pass: str_of(&sub, "auth_token").to_string(),
        };
        let (_, kept) = y.key(&a, &a.user, "kept").await;
        let (_, gone) = y.key(&a, &a.user, "gone").await;
        let (_, sub_key) = y.key(&a, &sub.user, "sub's").await;
        y.post(
            &a,
            &key_uri(&a.user, &kept.user),
            &[("FriendlyName", "kept, renamed")],
        )
        .await
        .ok(StatusCode::OK);
        y.delete(&a, &key_uri(&a.user, &gone.user))
            .await
            .ok(StatusCode::NO_CONTENT);
        let ws = y.workspace(&kept, "made by a key").await;
        let before = y.get(&a, &keys_uri(&a.user)).await.ok(StatusCode::OK);
        (a, sub, kept, gone, sub_key, ws, before)
    };

    let y = Yard::open(dir.path());
    assert_eq!(y.workspace_sids(&kept).await, [ws.as_str()]);
    y.get(&gone, "/v1/Workspaces").await.error(401, 20003);
    y.get(&sub_key, "/v1/Workspaces").await.ok(StatusCode::OK);
    assert!(y.workspace_sids(&sub_key).await.is_empty());
    y.get(&sub_key, &format!("/v1/Workspaces/{ws}"))
        .await
        .error(404, 20404);
    let mut wrong = kept.clone();
    wrong.pass = sub_key.pass.clone();
    y.get(&wrong, "/v1/Workspaces").await.error(401, 20003);
    let after = y.get(&a, &keys_uri(&a.user)).await.ok(StatusCode::OK);
    assert_eq!(after, before, "the key list is the same after the restart");
    assert_eq!(after["keys"][0]["friendly_name"], "kept, renamed");
    let sub_keys: Vec<String> = y.key_list(&sub, &sub.user).await.iter().map(sid).collect();
    assert_eq!(sub_keys, [sub_key.user.as_str()]);
    // Still only the auth token manages keys.
    y.get(&kept, &keys_uri(&a.user)).await.error(403, 20403);

    // And the restored server goes on: a new key, a delete, both take effect.
    let (_, fresh) = y.key(&a, &a.user, "after restart").await;
    assert_ne!(fresh.user, kept.user);
    y.get(&fresh, "/v1/Workspaces").await.ok(StatusCode::OK);
    y.delete(&a, &key_uri(&a.user, &kept.user))
        .await
        .ok(StatusCode::NO_CONTENT);
    y.get(&kept, "/v1/Workspaces").await.error(401, 20003);
    drop(y);
    let y = Yard::open(dir.path());
    y.get(&kept, "/v1/Workspaces").await.error(401, 20003);
    y.get(&fresh, "/v1/Workspaces").await.ok(StatusCode::OK);
}

#[tokio::test]
async fn bad_sids_and_credentials_are_refused_not_panicked_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let y = Yard::open(dir.path());
    let a = y.account("A").await;
    let (_, key) = y.key(&a, &a.user, "real").await;
    let hex = &key.user[2..];
    let bad_keys = [
        "nope".to_string(),
        "SK".to_string(),
        "SK123".to_string(),
        format!("SK{hex}0"),
        format!("sk{hex}"),
        format!("WS{hex}"),
        format!("AC{}", &a.user[2..]),
        format!("SK{}g", &hex[..31]),
        format!("SK{}", "é".repeat(16)),
        "%E2%98%83".to_string(),
        missing("SK"),
    ];
    for k in &bad_keys {
        let uri = key_uri(&a.user, k);
        y.get(&a, &uri).await.error(404, 20404);
        y.post(&a, &uri, &[("FriendlyName", "x")])
            .await
            .error(404, 20404);
        y.delete(&a, &uri).await.error(404, 20404);
    }
    let hex_a = &a.user[2..];
    let bad_accounts = [
        "nope".to_string(),
        format!("AC{hex_a}0"),
        format!("ac{hex_a}"),
        key.user.clone(),
        missing("AC"),
        "%E2%98%83".to_string(),
    ];
    for ac in &bad_accounts {
        y.get(&a, &keys_uri(ac)).await.error(404, 20404);
        y.post(&a, &keys_uri(ac), &[("FriendlyName", "x")])
            .await
            .error(404, 20404);
        y.get(&a, &key_uri(ac, &key.user)).await.error(404, 20404);
        y.delete(&a, &key_uri(ac, &key.user))
            .await
            .error(404, 20404);
    }
    // A segment that is not UTF-8 at all cannot even be decoded: a Twilio error document.
    for uri in [key_uri(&a.user, "%FF"), keys_uri("%FF")] {
        let r = y.get(&a, &uri).await;
        let status = r.status.as_u16();
        assert!(status == 400 || status == 404, "{uri}: {}", r.text);
        r.error(status, if status == 400 { 20001 } else { 20404 });
    }
    // Nothing was made or lost on the way.
    let keys = y.key_list(&a, &a.user).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["friendly_name"], "real");

    // Credentials that are not a SID and a password.
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let headers = [
        basic("SKnothex", &key.pass),
        basic(&format!("SK{}", "é".repeat(16)), &key.pass),
        basic(&key.user.to_lowercase(), &key.pass),
        basic("", &key.pass),
        basic(&format!("{}:", key.user), &key.pass),
        format!("Basic {}", b64(key.user.as_bytes())),
        format!("Basic {}", b64(b"\xff\xfe:\xff")),
        "Basic not base64!".to_string(),
        format!("Bearer {}", key.pass),
        format!(
            "Basic{}",
            b64(format!("{}:{}", key.user, key.pass).as_bytes())
        ),
    ];
    for h in &headers {
        y.send_raw(Some(h), "GET", "/v1/Workspaces", &[])
            .await
            .error(401, 20003);
    }
    y.send_raw(None, "GET", &keys_uri(&a.user), &[])
        .await
        .error(401, 20003);
    // The server is still there.
    y.get(&key, "/v1/Workspaces").await.ok(StatusCode::OK);
}

#[tokio::test]
async fn keys_made_and_renamed_at_once_are_all_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let y = Yard::open(dir.path());
    let a = y.account("A").await;
    let n = 12;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let router = y.router.clone();
        let auth = a.header();
        let uri = keys_uri(&a.user);
        tasks.spawn(async move {
            let body = format!("FriendlyName=k{i}");
            let resp = router
                .oneshot(
                    Request::post(uri)
                        .header(header::AUTHORIZATION, auth)
                        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(Body::from(body))
                        .expect("request"),
                )
                .await
                .expect("infallible");
            assert_eq!(resp.status(), StatusCode::CREATED);
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .expect("body");
            let v: Value = serde_json::from_slice(&bytes).expect("json");
            Creds {
                user: sid(&v),
                pass: str_of(&v, "secret").to_string(),
            }
        });
    }
    let made: Vec<Creds> = tasks.join_all().await;
    let mut listed: Vec<String> = y.key_list(&a, &a.user).await.iter().map(sid).collect();
    let mut want: Vec<String> = made.iter().map(|c| c.user.clone()).collect();
    listed.sort();
    want.sort();
    want.dedup();
    assert_eq!(want.len(), n, "distinct SIDs");
    assert_eq!(listed, want, "every key made at once is listed");

    // Every one renamed at once: no rename lost.
    let mut tasks = tokio::task::JoinSet::new();
    for c in &made {
        let router = y.router.clone();
        let auth = a.header();
        let uri = key_uri(&a.user, &c.user);
        let body = format!("FriendlyName=renamed-{}", c.user);
        tasks.spawn(async move {
            let resp = router
                .oneshot(
                    Request::post(uri)
                        .header(header::AUTHORIZATION, auth)
                        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(Body::from(body))
                        .expect("request"),
                )
                .await
                .expect("infallible");
            assert_eq!(resp.status(), StatusCode::OK);
        });
    }
    tasks.join_all().await;
    for k in y.key_list(&a, &a.user).await {
        assert_eq!(k["friendly_name"], format!("renamed-{}", sid(&k)));
    }
    for c in &made {
        y.get(c, "/v1/Workspaces").await.ok(StatusCode::OK);
    }
    drop(y);
    let y = Yard::open(dir.path());
    let mut listed: Vec<String> = y.key_list(&a, &a.user).await.iter().map(sid).collect();
    listed.sort();
    assert_eq!(listed, want, "all of them after a restart too");
    for c in &made {
        y.get(c, "/v1/Workspaces").await.ok(StatusCode::OK);
    }
}
