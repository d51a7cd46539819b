"""Activities (taskrouter-api.md §6 Activities; semantics §4)."""

from helpers import (
    activities_by_name,
    assert_datetime,
    assert_sid,
    expect_error,
    missing_sid,
)


def test_create_returns_activity_fields(ws, workspace, ws_url, client):
    activity = ws.activities.create(friendly_name="On Break", available=False)
    assert_sid(activity.sid, "WA")
    assert activity.friendly_name == "On Break"
    assert activity.available is False
    assert activity.account_sid == client.account_sid
    assert activity.workspace_sid == workspace.sid
    assert_datetime(activity.date_created)
    assert_datetime(activity.date_updated)
    assert activity.url == f"{ws_url}/Activities/{activity.sid}"
    assert activity.links == {"workspace": ws_url}


def test_create_available_activity(ws):
    activity = ws.activities.create(friendly_name="Ready", available=True)
    assert activity.available is True
    assert ws.activities(activity.sid).fetch().available is True


def test_fetch_matches_create(ws):
    created = ws.activities.create(friendly_name="Lunch", available=False)
    fetched = ws.activities(created.sid).fetch()
    for attr in ("sid", "friendly_name", "available", "account_sid", "workspace_sid", "date_created", "url", "links"):
        assert getattr(fetched, attr) == getattr(created, attr), attr


def test_update_friendly_name(ws):
    created = ws.activities.create(friendly_name="Lunch", available=True)
    updated = ws.activities(created.sid).update(friendly_name="Dinner")
    assert updated.friendly_name == "Dinner"
    assert updated.available is True
    assert ws.activities(created.sid).fetch().friendly_name == "Dinner"


def test_rename_propagates_to_worker_activity_name(ws):
    activity = ws.activities.create(friendly_name="Training", available=False)
    worker = ws.workers.create(friendly_name="trainee", activity_sid=activity.sid)
    assert worker.activity_name == "Training"
    ws.activities(activity.sid).update(friendly_name="Coaching")
    assert ws.workers(worker.sid).fetch().activity_name == "Coaching"


def test_available_cannot_be_changed_after_create(client, ws, ws_url):
    """The helper library's update() only takes friendly_name; a raw Available
    parameter must not flip the flag either (it is rejected or ignored)."""
    created = ws.activities.create(friendly_name="Fixed", available=False)
    response = client.request(
        "POST",
        f"{ws_url}/Activities/{created.sid}",
        data={"Available": "true"},
    )
    assert response.status_code in (200, 400), response.text
    assert ws.activities(created.sid).fetch().available is False


def test_list_returns_defaults_and_created(ws):
    created = ws.activities.create(friendly_name="Meeting", available=False)
    names = {a.sid: a.friendly_name for a in ws.activities.list()}
    assert names[created.sid] == "Meeting"
    assert {"Offline", "Available", "Unavailable", "Meeting"} == set(names.values())


def test_list_filter_friendly_name(ws):
    created = ws.activities.create(friendly_name="Meeting", available=False)
    assert [a.sid for a in ws.activities.list(friendly_name="Meeting")] == [created.sid]
    assert ws.activities.list(friendly_name="No Such Activity") == []


def test_list_filter_available(ws):
    ws.activities.create(friendly_name="Extra Available", available=True)
    available = {a.friendly_name for a in ws.activities.list(available="true")}
    unavailable = {a.friendly_name for a in ws.activities.list(available="false")}
    assert available == {"Available", "Extra Available"}
    assert unavailable == {"Offline", "Unavailable"}


def test_list_filter_available_accepts_1_and_yes(ws):
    for value in ("1", "yes"):
        assert {a.friendly_name for a in ws.activities.list(available=value)} == {"Available"}


def test_stream_and_page(ws):
    assert len(list(ws.activities.stream())) == 3
    page = ws.activities.page(page_size=2)
    assert len(list(page)) == 2


def test_delete_activity(ws):
    created = ws.activities.create(friendly_name="Temporary", available=False)
    assert ws.activities(created.sid).delete() is True
    with expect_error(404, 20404):
        ws.activities(created.sid).fetch()
    assert created.sid not in {a.sid for a in ws.activities.list()}


def test_cannot_delete_default_activity(ws, workspace):
    with expect_error(400):
        ws.activities(workspace.default_activity_sid).delete()
    assert ws.activities(workspace.default_activity_sid).fetch().friendly_name == "Offline"


def test_cannot_delete_activity_in_use_by_worker(ws):
    activity = ws.activities.create(friendly_name="Busy Now", available=False)
    ws.workers.create(friendly_name="busy worker", activity_sid=activity.sid)
    with expect_error(400):
        ws.activities(activity.sid).delete()
    assert ws.activities(activity.sid).fetch().friendly_name == "Busy Now"


def test_fetch_missing_activity(ws):
    with expect_error(404, 20404):
        ws.activities(missing_sid("WA")).fetch()


def test_friendly_name_length_limit(ws):
    assert ws.activities.create(friendly_name="a" * 64).friendly_name == "a" * 64
    with expect_error(400):
        ws.activities.create(friendly_name="a" * 65)
    assert all(len(a.friendly_name) <= 64 for a in ws.activities.list())


def test_failed_update_changes_nothing(ws):
    created = ws.activities.create(friendly_name="Stable", available=False)
    with expect_error(400):
        ws.activities(created.sid).update(friendly_name="x" * 65)
    assert ws.activities(created.sid).fetch().friendly_name == "Stable"


def test_default_activity_sids_match_workspace(ws, workspace):
    acts = activities_by_name(ws)
    assert workspace.default_activity_sid == acts["Offline"].sid
    assert workspace.timeout_activity_sid == acts["Offline"].sid
