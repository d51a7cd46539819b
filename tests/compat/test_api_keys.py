"""API Keys (``/2010-04-01/Accounts/{AC}/Keys``) and what a key is good for.

With Twilio's helper library a key is made with ``client.new_keys.create()``
and then used as ``Client(key.sid, key.secret, account_sid)``: it acts as its
account on the REST API, but (like Twilio's standard keys) may not manage keys
or accounts.  The same key signs the Access Tokens that agents present to the
event bridge (``POST {base}/v1/wschannels``, the SDK's JSON envelopes).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import TaskRouterGrant
from twilio.rest import Client

from helpers import assert_sid, expect_error, expect_rest_exception, missing_sid, unique_name


def key_client(server, key, account_sid=None) -> Client:
    """``Client(api_key, api_secret, account_sid)`` pointed at Taskyard."""
    client = Client(
        key.sid,
        key.secret,
        account_sid or server.account_sid,
        http_client=TwilioHttpClient(timeout=30.0),
    )
    client.taskrouter.base_url = server.base_url
    client.api.base_url = server.base_url
    return client


def raw_get(server, path: str) -> requests.Response:
    """What the server sends for ``GET path`` with the account's auth token (to see fields
    the helper library's resource objects do not keep)."""
    resp = requests.get(f"{server.base_url}{path}", auth=(server.account_sid, server.auth_token), timeout=30)
    assert resp.status_code == 200, resp.text
    return resp


@pytest.fixture
def new_key(client):
    """A fresh key of the session account, deleted afterwards if still there."""
    made = []

    def make(name=None):
        key = client.new_keys.create(friendly_name=name or unique_name("key"))
        made.append(key.sid)
        return key

    yield make
    for sid in made:
        try:
            client.keys(sid).delete()
        except TwilioRestException:
            pass


@pytest.fixture
def key(new_key):
    return new_key()


# ---------------------------------------------------------------------------
# The Keys resource
# ---------------------------------------------------------------------------


def test_new_key_has_a_secret(client, new_key):
    name = unique_name("deploy bot")
    key = new_key(name)
    assert_sid(key.sid, "SK")
    assert key.friendly_name == name
    assert isinstance(key.secret, str) and len(key.secret) >= 32 and key.secret.isalnum()
    # RFC 2822 on the 2010-04-01 API: the library parses it into an aware datetime.
    assert isinstance(key.date_created, datetime) and key.date_created.tzinfo is not None
    assert abs((datetime.now(timezone.utc) - key.date_created).total_seconds()) < 60
    assert key.date_updated == key.date_created
    other = new_key()
    assert other.sid != key.sid and other.secret != key.secret


def test_keys_list_fetch_update_delete(server, client, new_key):
    key = new_key("before")
    other = new_key("other")
    listed = {k.sid: k.friendly_name for k in client.keys.list()}
    assert listed[key.sid] == "before" and listed[other.sid] == "other"
    keys_path = f"/2010-04-01/Accounts/{client.account_sid}/Keys"
    raw = raw_get(server, f"{keys_path}.json")
    assert key.secret not in raw.text and other.secret not in raw.text
    for k in raw.json()["keys"]:
        assert "secret" not in k, k

    fetched = client.keys(key.sid).fetch()
    assert (fetched.sid, fetched.friendly_name, fetched.date_created) == (key.sid, "before", key.date_created)
    raw = raw_get(server, f"{keys_path}/{key.sid}.json")
    assert "secret" not in raw.json() and key.secret not in raw.text

    updated = client.keys(key.sid).update(friendly_name="after")
    assert updated.sid == key.sid and updated.friendly_name == "after"
    assert client.keys(key.sid).fetch().friendly_name == "after"
    assert client.keys(other.sid).fetch().friendly_name == "other"

    assert client.keys(key.sid).delete() is True
    with expect_rest_exception(404, 20404):
        client.keys(key.sid).fetch()
    with expect_rest_exception(404, 20404):
        client.keys(key.sid).delete()
    remaining = {k.sid for k in client.keys.list()}
    assert key.sid not in remaining and other.sid in remaining


def test_friendly_name_over_64_characters_is_refused(client):
    before = {k.sid for k in client.keys.list()}
    with expect_rest_exception(400, 20001):
        client.new_keys.create(friendly_name="n" * 65)
    assert {k.sid for k in client.keys.list()} == before


def test_missing_key_is_404(client):
    with expect_rest_exception(404, 20404):
        client.keys(missing_sid("SK")).fetch()
    with expect_rest_exception(404, 20404):
        client.keys(missing_sid("SK")).update(friendly_name="x")
    with expect_rest_exception(404, 20404):
        client.keys("not-a-sid").fetch()


# ---------------------------------------------------------------------------
# A key as REST credentials
# ---------------------------------------------------------------------------


def test_key_client_creates_and_lists_workspaces(server, client, key):
    kc = key_client(server, key)
    tr = kc.taskrouter.v1
    made = tr.workspaces.create(friendly_name=unique_name("by key"))
    try:
        assert made.account_sid == server.account_sid
        assert made.sid in {w.sid for w in tr.workspaces.list()}
        # It is the account's workspace: the auth token sees it, and the key sees all of them.
        assert tr.workspaces(made.sid).fetch().friendly_name == made.friendly_name
        ours = {w.sid for w in client.taskrouter.v1.workspaces.list()}
        assert made.sid in ours
        assert {w.sid for w in tr.workspaces.list()} == ours
        worker = tr.workspaces(made.sid).workers.create(friendly_name="alice")
        assert client.taskrouter.v1.workspaces(made.sid).workers(worker.sid).fetch().friendly_name == "alice"
    finally:
        client.taskrouter.v1.workspaces(made.sid).delete()


def test_key_with_a_wrong_secret_is_401(server, key):
    wrong = type("K", (), {"sid": key.sid, "secret": key.secret[::-1]})
    with expect_rest_exception(401, 20003):
        key_client(server, wrong).taskrouter.v1.workspaces.create(friendly_name="nope")


def test_deleted_key_is_refused_at_once(server, client, key, workspace):
    kc = key_client(server, key)
    assert kc.taskrouter.v1.workspaces(workspace.sid).fetch().sid == workspace.sid
    client.keys(key.sid).delete()
    with pytest.raises(TwilioRestException) as info:
        kc.taskrouter.v1.workspaces(workspace.sid).fetch()
    assert info.value.status == 401
    with expect_rest_exception(401, 20003):
        kc.taskrouter.v1.workspaces.create(friendly_name="after delete")
    with expect_error(401):
        kc.taskrouter.v1.workspaces.list()


def test_key_may_not_manage_keys_or_accounts(server, client, key):
    kc = key_client(server, key)
    before = {k.sid for k in client.keys.list()}
    with expect_rest_exception(403, 20403):
        kc.new_keys.create(friendly_name="made by a key")
    with expect_rest_exception(403, 20403):
        kc.keys(key.sid).fetch()
    with expect_rest_exception(403, 20403):
        kc.keys(key.sid).update(friendly_name="renamed by itself")
    with expect_rest_exception(403, 20403):
        kc.keys(key.sid).delete()
    with expect_error(403, 20403):
        kc.keys.list()
    with expect_rest_exception(403, 20403):
        kc.api.v2010.accounts.create(friendly_name="sub by key")
    with expect_rest_exception(403, 20403):
        kc.api.v2010.accounts(server.account_sid).fetch()
    assert {k.sid for k in client.keys.list()} == before
    assert client.keys(key.sid).fetch().friendly_name == key.friendly_name
    kc.taskrouter.v1.workspaces.list()  # still a working key


# ---------------------------------------------------------------------------
# Access Tokens signed by a key, on the event bridge
# ---------------------------------------------------------------------------


@pytest.fixture
def agents(ws):
    """Two workers of the per-test workspace: alice (the token's) and bob."""
    alice = ws.workers.create(friendly_name="alice", attributes=json.dumps({"skills": ["en"], "n": 1}))
    bob = ws.workers.create(friendly_name="bob", attributes=json.dumps({"skills": ["es"]}))
    return alice, bob


def worker_token(account_sid, key_sid, secret, workspace_sid, worker_sid, **kw) -> str:
    token = AccessToken(account_sid, key_sid, secret, identity="alice", **kw)
    token.add_grant(TaskRouterGrant(workspace_sid=workspace_sid, worker_sid=worker_sid, role="worker"))
    jwt = token.to_jwt()
    return jwt.decode() if isinstance(jwt, bytes) else jwt


def envelope(base_url, token, url, method="GET", params=None) -> requests.Response:
    return requests.post(
        f"{base_url}/v1/wschannels",
        json={"url": url, "method": method, "params": params or {}, "token": token},
        timeout=30,
    )


def assert_refused(resp, status, code):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["code"] == code and body["status"] == status, body
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert isinstance(body["message"], str) and body["message"]


def test_access_token_signed_by_a_key_reads_its_worker(server, base_url, key, workspace, agents):
    alice, _ = agents
    token = worker_token(server.account_sid, key.sid, key.secret, workspace.sid, alice.sid)
    resp = envelope(base_url, token, f"Workspaces/{workspace.sid}/Workers/{alice.sid}")
    assert resp.status_code == 200, resp.text
    payload = resp.json()["payload"]
    assert payload["sid"] == alice.sid
    assert payload["friendly_name"] == "alice"
    assert payload["workspace_sid"] == workspace.sid
    assert isinstance(payload["attributes"], str)
    assert json.loads(payload["attributes"]) == {"skills": ["en"], "n": 1}
    created = payload["date_created"]
    assert isinstance(created, int) and not isinstance(created, bool), created
    assert abs(created - int(alice.date_created.timestamp())) <= 1
    assert abs(created - time.time()) < 120


def test_access_token_with_a_wrong_secret_is_20107(server, base_url, key, workspace, agents):
    alice, _ = agents
    forged = "x" * len(key.secret)
    token = worker_token(server.account_sid, key.sid, forged, workspace.sid, alice.sid)
    resp = envelope(base_url, token, f"Workspaces/{workspace.sid}/Workers/{alice.sid}")
    assert_refused(resp, 401, 20107)
    assert "payload" not in resp.json()


def test_worker_token_may_not_act_on_another_worker(server, base_url, key, ws, workspace, agents):
    alice, bob = agents
    token = worker_token(server.account_sid, key.sid, key.secret, workspace.sid, alice.sid)
    resp = envelope(
        base_url, token, f"Workspaces/{workspace.sid}/Workers/{bob.sid}", "POST", {"Attributes": {"a": 1}}
    )
    assert resp.status_code == 403, resp.text
    assert resp.json()["code"] == 20403
    assert json.loads(ws.workers(bob.sid).fetch().attributes) == {"skills": ["es"]}
    # Its own worker it may change: the refusal above was about bob, not about POST.
    resp = envelope(
        base_url, token, f"Workspaces/{workspace.sid}/Workers/{alice.sid}", "POST", {"Attributes": {"a": 1}}
    )
    assert resp.status_code == 200, resp.text
    assert json.loads(resp.json()["payload"]["attributes"]) == {"a": 1}
    assert json.loads(ws.workers(alice.sid).fetch().attributes) == {"a": 1}
    assert json.loads(ws.workers(bob.sid).fetch().attributes) == {"skills": ["es"]}


def test_expired_access_token_is_20104(server, base_url, key, workspace, agents):
    alice, _ = agents
    now = int(time.time())
    token = worker_token(
        server.account_sid, key.sid, key.secret, workspace.sid, alice.sid, nbf=now - 7200, valid_until=now - 3600
    )
    resp = envelope(base_url, token, f"Workspaces/{workspace.sid}/Workers/{alice.sid}")
    assert_refused(resp, 401, 20104)


def test_access_token_of_a_deleted_key_is_refused(server, base_url, client, key, workspace, agents):
    alice, _ = agents
    token = worker_token(server.account_sid, key.sid, key.secret, workspace.sid, alice.sid)
    url = f"Workspaces/{workspace.sid}/Workers/{alice.sid}"
    assert envelope(base_url, token, url).status_code == 200
    client.keys(key.sid).delete()
    resp = envelope(base_url, token, url)
    assert resp.status_code == 401, resp.text
    assert resp.json()["code"] in (20101, 20103, 20107), resp.text


def test_access_token_naming_another_account_is_refused(server, base_url, client, key, workspace, agents):
    """``sub`` must be the key's own account: a key of the main account cannot sign for a
    subaccount (or anyone else)."""
    alice, _ = agents
    sub = client.api.v2010.accounts.create(friendly_name=unique_name("sub"))
    token = worker_token(sub.sid, key.sid, key.secret, workspace.sid, alice.sid)
    resp = envelope(base_url, token, f"Workspaces/{workspace.sid}/Workers/{alice.sid}")
    assert_refused(resp, 401, 20103)
