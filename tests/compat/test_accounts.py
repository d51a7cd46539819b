"""Multi-account isolation.

Taskyard exposes Twilio's subaccount creation (``POST /2010-04-01/Accounts.json``,
``client.api.v2010.accounts.create``).  A client authenticated as the new
account must not see or touch the first account's TaskRouter data.
"""

import pytest
from twilio.base.exceptions import TwilioException

from conftest import make_client
from helpers import assert_sid, describe_error, expect_error, unique_name


@pytest.fixture(scope="module")
def other_account(server, client):
    try:
        account = client.api.v2010.accounts.create(friendly_name="other")
    except TwilioException as e:
        err = describe_error(e)
        if err.status in (404, 405, 501):
            pytest.xfail(
                f"subaccount creation (POST /2010-04-01/Accounts.json) not available: "
                f"HTTP {err.status} {err.message!r}"
            )
        raise
    return account


@pytest.fixture(scope="module")
def other_client(server, other_account):
    return make_client(server.base_url, other_account.sid, other_account.auth_token)


def test_create_subaccount(other_account, client):
    assert_sid(other_account.sid, "AC")
    assert other_account.sid != client.account_sid
    assert isinstance(other_account.auth_token, str) and len(other_account.auth_token) >= 32
    assert other_account.friendly_name == "other"


def test_other_account_sees_none_of_our_workspaces(tr, workspace, other_client):
    ours = {w.sid for w in tr.workspaces.list()}
    theirs = {w.sid for w in other_client.taskrouter.v1.workspaces.list()}
    assert workspace.sid in ours
    assert not ours & theirs


def test_other_account_cannot_fetch_our_workspace(workspace, other_client):
    with expect_error(404):
        other_client.taskrouter.v1.workspaces(workspace.sid).fetch()


def test_other_account_cannot_touch_our_sub_resources(ws, workspace, other_client):
    worker = ws.workers.create(friendly_name="Ours")
    theirs = other_client.taskrouter.v1.workspaces(workspace.sid)
    with expect_error(404):
        theirs.workers(worker.sid).fetch()
    with expect_error(404):
        theirs.workers(worker.sid).update(friendly_name="Stolen")
    with expect_error(404):
        theirs.workers.create(friendly_name="Intruder")
    with expect_error(404):
        theirs.workers.list()
    with expect_error(404):
        theirs.delete()
    assert ws.workers(worker.sid).fetch().friendly_name == "Ours"
    assert [w.friendly_name for w in ws.workers.list()] == ["Ours"]


def test_other_account_workspace_is_invisible_to_us(tr, other_client, other_account):
    mine = other_client.taskrouter.v1.workspaces.create(friendly_name=unique_name("theirs"))
    try:
        assert mine.account_sid == other_account.sid
        assert mine.sid not in {w.sid for w in tr.workspaces.list()}
        with expect_error(404):
            tr.workspaces(mine.sid).fetch()
    finally:
        other_client.taskrouter.v1.workspaces(mine.sid).delete()


def test_subaccount_with_wrong_token_is_401(server, other_account):
    bad = make_client(server.base_url, other_account.sid, "0" * 32)
    with expect_error(401, 20003):
        bad.taskrouter.v1.workspaces.create(friendly_name="nope")
