"""Workers (taskrouter-api.md §6 Workers, §0 If-Match / PII hiding; semantics §4)."""

import json

from twilio.base import values

from helpers import (
    activities_by_name,
    assert_datetime,
    assert_json_equal,
    assert_sid,
    expect_error,
    header,
    missing_sid,
    race,
    unique_name,
)


def test_create_returns_worker_fields(ws, workspace, ws_url, client):
    worker = ws.workers.create(friendly_name="Alice")
    assert_sid(worker.sid, "WK")
    assert worker.friendly_name == "Alice"
    assert worker.account_sid == client.account_sid
    assert worker.workspace_sid == workspace.sid
    assert_datetime(worker.date_created)
    assert_datetime(worker.date_updated)
    assert_datetime(worker.date_status_changed)
    assert worker.url == f"{ws_url}/Workers/{worker.sid}"


def test_create_defaults_to_workspace_default_activity(ws, workspace):
    worker = ws.workers.create(friendly_name="Bob")
    assert worker.activity_sid == workspace.default_activity_sid
    assert worker.activity_name == "Offline"
    assert worker.available is False
    assert worker.attributes == "{}"


def test_links(ws, ws_url):
    worker = ws.workers.create(friendly_name="Linked")
    w = f"{ws_url}/Workers/{worker.sid}"
    assert worker.links == {
        "channels": f"{w}/Channels",
        "worker_channels": f"{w}/Channels",
        "activity": f"{ws_url}/Activities/{worker.activity_sid}",
        "workspace": ws_url,
        "statistics": f"{ws_url}/Workers/Statistics",
        "real_time_statistics": f"{ws_url}/Workers/RealTimeStatistics",
        "cumulative_statistics": f"{ws_url}/Workers/CumulativeStatistics",
        "worker_statistics": f"{w}/Statistics",
        "reservations": f"{w}/Reservations",
    }


def test_create_in_given_activity(ws):
    available = activities_by_name(ws)["Available"]
    worker = ws.workers.create(friendly_name="Eager", activity_sid=available.sid)
    assert worker.activity_sid == available.sid
    assert worker.activity_name == "Available"
    assert worker.available is True


def test_create_with_unknown_activity_rejected(ws):
    with expect_error(400):
        ws.workers.create(friendly_name="Lost", activity_sid=missing_sid("WA"))
    assert ws.workers.list(friendly_name="Lost") == []


def test_attributes_round_trip(ws):
    attrs = {"languages": ["en", "es"], "skills": {"billing": 7}, "name": "Zoë ✓", "vip": True, "n": None}
    worker = ws.workers.create(friendly_name="Attr", attributes=json.dumps(attrs))
    assert_json_equal(worker.attributes, attrs)
    assert_json_equal(ws.workers(worker.sid).fetch().attributes, attrs)


def test_attributes_hidden_in_lists(ws):
    worker = ws.workers.create(friendly_name="Private", attributes=json.dumps({"email": "p@example.com"}))
    listed = {w.sid: w for w in ws.workers.list()}
    assert listed[worker.sid].attributes is None
    assert_json_equal(ws.workers(worker.sid).fetch().attributes, {"email": "p@example.com"})


def test_fetch_matches_create(ws):
    created = ws.workers.create(friendly_name="Fetchy", attributes='{"a": 1}')
    fetched = ws.workers(created.sid).fetch()
    for attr in (
        "sid",
        "friendly_name",
        "account_sid",
        "workspace_sid",
        "activity_sid",
        "activity_name",
        "available",
        "attributes",
        "date_created",
        "date_status_changed",
        "url",
        "links",
    ):
        assert getattr(fetched, attr) == getattr(created, attr), attr


def test_update_friendly_name_and_attributes(ws):
    worker = ws.workers.create(friendly_name="Before", attributes='{"v": 1}')
    updated = ws.workers(worker.sid).update(friendly_name="After", attributes='{"v": 2}')
    assert updated.friendly_name == "After"
    assert_json_equal(updated.attributes, {"v": 2})
    assert updated.date_updated >= worker.date_updated
    fetched = ws.workers(worker.sid).fetch()
    assert fetched.friendly_name == "After"
    assert_json_equal(fetched.attributes, {"v": 2})


def test_update_is_partial(ws):
    worker = ws.workers.create(friendly_name="Partial", attributes='{"keep": true}')
    ws.workers(worker.sid).update(friendly_name="Partial 2")
    assert_json_equal(ws.workers(worker.sid).fetch().attributes, {"keep": True})


def test_update_activity_changes_availability(ws):
    acts = activities_by_name(ws)
    worker = ws.workers.create(friendly_name="Mover")
    updated = ws.workers(worker.sid).update(activity_sid=acts["Available"].sid)
    assert (updated.activity_sid, updated.activity_name, updated.available) == (
        acts["Available"].sid,
        "Available",
        True,
    )
    assert updated.date_status_changed >= worker.date_status_changed
    assert updated.links["activity"].endswith(f"/Activities/{acts['Available'].sid}")
    back = ws.workers(worker.sid).update(activity_sid=acts["Unavailable"].sid)
    assert (back.activity_name, back.available) == ("Unavailable", False)
    assert ws.workers(worker.sid).fetch().activity_sid == acts["Unavailable"].sid


def test_update_to_unknown_activity_rejected(ws):
    worker = ws.workers.create(friendly_name="Stays")
    with expect_error(400):
        ws.workers(worker.sid).update(activity_sid=missing_sid("WA"))
    assert ws.workers(worker.sid).fetch().activity_sid == worker.activity_sid


def test_reject_pending_reservations_parameter_accepted(ws):
    acts = activities_by_name(ws)
    worker = ws.workers.create(friendly_name="Rejecter", activity_sid=acts["Available"].sid)
    updated = ws.workers(worker.sid).update(activity_sid=acts["Offline"].sid, reject_pending_reservations=True)
    assert updated.activity_name == "Offline"


def test_duplicate_friendly_name_conflicts(ws):
    ws.workers.create(friendly_name="Carol")
    with expect_error(409):
        ws.workers.create(friendly_name="Carol")


def test_duplicate_friendly_name_is_case_insensitive(ws):
    ws.workers.create(friendly_name="Dave")
    with expect_error(409):
        ws.workers.create(friendly_name="dAVE")
    assert [w.friendly_name for w in ws.workers.list()] == ["Dave"]


def test_rename_to_existing_name_conflicts(ws):
    ws.workers.create(friendly_name="Erin")
    frank = ws.workers.create(friendly_name="Frank")
    with expect_error(409):
        ws.workers(frank.sid).update(friendly_name="ERIN")
    assert ws.workers(frank.sid).fetch().friendly_name == "Frank"


def test_rename_to_own_name_in_other_case(ws):
    worker = ws.workers.create(friendly_name="Henry")
    assert ws.workers(worker.sid).update(friendly_name="HENRY").friendly_name == "HENRY"


def test_same_name_allowed_after_delete(ws):
    first = ws.workers.create(friendly_name="Reused")
    ws.workers(first.sid).delete()
    second = ws.workers.create(friendly_name="Reused")
    assert second.sid != first.sid


def test_same_name_in_other_workspace_allowed(tr, ws):
    other = tr.workspaces.create(friendly_name=unique_name("other"))
    try:
        ws.workers.create(friendly_name="Gina")
        assert tr.workspaces(other.sid).workers.create(friendly_name="Gina").friendly_name == "Gina"
    finally:
        tr.workspaces(other.sid).delete()


def _worker_set(ws):
    acts = activities_by_name(ws)
    idle = ws.workers.create(friendly_name="Idle One", activity_sid=acts["Available"].sid)
    off = ws.workers.create(friendly_name="Offline One")
    away = ws.workers.create(friendly_name="Away One", activity_sid=acts["Unavailable"].sid)
    return acts, idle, off, away


def test_list_returns_all_workers(ws):
    _, idle, off, away = _worker_set(ws)
    assert [w.sid for w in ws.workers.list()] == [idle.sid, off.sid, away.sid]


def test_list_filter_activity_sid(ws):
    acts, idle, off, away = _worker_set(ws)
    assert [w.sid for w in ws.workers.list(activity_sid=acts["Unavailable"].sid)] == [away.sid]


def test_list_filter_activity_name(ws):
    _, idle, off, away = _worker_set(ws)
    assert [w.sid for w in ws.workers.list(activity_name="Offline")] == [off.sid]


def test_list_filter_available(ws):
    _, idle, off, away = _worker_set(ws)
    assert [w.sid for w in ws.workers.list(available="true")] == [idle.sid]
    assert [w.sid for w in ws.workers.list(available="1")] == [idle.sid]
    assert [w.sid for w in ws.workers.list(available="false")] == [off.sid, away.sid]


def test_list_filter_friendly_name(ws):
    _, idle, off, away = _worker_set(ws)
    assert [w.sid for w in ws.workers.list(friendly_name="Away One")] == [away.sid]
    assert ws.workers.list(friendly_name="Nobody") == []


def test_stream_and_page(ws):
    _, idle, off, away = _worker_set(ws)
    assert [w.sid for w in ws.workers.stream(limit=2)] == [idle.sid, off.sid]
    assert [w.sid for w in ws.workers.page(available="false")] == [off.sid, away.sid]


def test_delete_worker(ws):
    worker = ws.workers.create(friendly_name="Leaving")
    assert ws.workers(worker.sid).delete() is True
    with expect_error(404, 20404):
        ws.workers(worker.sid).fetch()
    with expect_error(404):
        ws.workers(worker.sid).worker_channels.list()
    assert worker.sid not in {w.sid for w in ws.workers.list()}


def test_fetch_exposes_etag(ws):
    worker = ws.workers.create(friendly_name="Tagged")
    response = ws.workers(worker.sid).fetch_with_http_info()
    assert response.status_code == 200
    assert header(response.headers, "ETag"), "Worker fetch must send an ETag header"


def test_update_with_matching_if_match_succeeds(ws):
    worker = ws.workers.create(friendly_name="Versioned")
    etag = header(ws.workers(worker.sid).fetch_with_http_info().headers, "ETag")
    assert etag
    updated = ws.workers(worker.sid).update(friendly_name="Versioned 2", if_match=etag)
    assert updated.friendly_name == "Versioned 2"
    new_etag = header(ws.workers(worker.sid).fetch_with_http_info().headers, "ETag")
    assert new_etag != etag, "the ETag (version) must change when the worker changes"
    with expect_error(412):
        ws.workers(worker.sid).update(friendly_name="Versioned 3", if_match=etag)


def test_update_with_mismatched_if_match_fails(ws):
    worker = ws.workers.create(friendly_name="Guarded")
    with expect_error(412):
        ws.workers(worker.sid).update(friendly_name="Changed", if_match="bogus")
    assert ws.workers(worker.sid).fetch().friendly_name == "Guarded"


def test_delete_with_mismatched_if_match_fails(client, ws, ws_url):
    """twilio-python 9.13's WorkerContext.delete(if_match=...) drops the header
    (it rebuilds ``headers`` empty), so send the DELETE through client.request."""
    worker = ws.workers.create(friendly_name="Undeletable")
    response = client.request("DELETE", f"{ws_url}/Workers/{worker.sid}", headers={"If-Match": "bogus"})
    assert response.status_code == 412, response.text
    assert ws.workers(worker.sid).fetch().sid == worker.sid


def test_malformed_attributes_rejected(ws):
    with expect_error(400, 20001):
        ws.workers.create(friendly_name="Broken", attributes="{bad")
    assert ws.workers.list(friendly_name="Broken") == []


def test_attributes_size_limit(ws):
    filler = "x" * (4096 - len('{"a": ""}'))
    exactly_4096 = json.dumps({"a": filler})
    assert len(exactly_4096) == 4096
    ok = ws.workers.create(friendly_name="Big", attributes=exactly_4096)
    assert_json_equal(ok.attributes, {"a": filler})
    with expect_error(400):
        ws.workers.create(friendly_name="Too Big", attributes=json.dumps({"a": filler + "x"}))
    assert ws.workers.list(friendly_name="Too Big") == []


def test_friendly_name_length_limit(ws):
    assert ws.workers.create(friendly_name="n" * 64).friendly_name == "n" * 64
    with expect_error(400):
        ws.workers.create(friendly_name="m" * 65)
    assert ws.workers.list(friendly_name="m" * 65) == []


def test_create_requires_friendly_name(ws):
    with expect_error(400, 20001):
        ws.workers.create(friendly_name=values.unset)


def test_failed_update_changes_nothing(ws):
    worker = ws.workers.create(friendly_name="Atomic", attributes='{"v": 1}')
    with expect_error(400, 20001):
        ws.workers(worker.sid).update(friendly_name="Atomic 2", attributes="{bad")
    fetched = ws.workers(worker.sid).fetch()
    assert fetched.friendly_name == "Atomic"
    assert_json_equal(fetched.attributes, {"v": 1})
    assert fetched.date_updated == worker.date_updated


def test_invalid_sid_in_path_is_404(ws):
    with expect_error(404):
        ws.workers("WKnothex").fetch()
    with expect_error(404):
        ws.workers("WK" + "g" * 32).fetch()


def test_sid_with_wrong_prefix_is_404(ws):
    queue = ws.task_queues.create(friendly_name="not a worker")
    with expect_error(404):
        ws.workers(queue.sid).fetch()


def test_fetch_missing_worker(ws):
    with expect_error(404, 20404):
        ws.workers(missing_sid("WK")).fetch()


def test_limits_count_characters_not_bytes(ws):
    """Limits are in characters ("4,096 characters", "up to 64 characters"):
    multi-byte UTF-8 text at the limit is accepted."""
    filler = "é" * (4096 - len('{"a": ""}'))
    attributes = json.dumps({"a": filler}, ensure_ascii=False)
    assert len(attributes) == 4096 and len(attributes.encode()) > 4096
    worker = ws.workers.create(friendly_name="ü" * 64, attributes=attributes)
    assert worker.friendly_name == "ü" * 64
    assert_json_equal(worker.attributes, {"a": filler})


def test_concurrent_duplicate_creates_yield_one_worker(server, workspace):
    """Eight clients race to create the same worker: exactly one wins."""
    ws = server.client().taskrouter.v1.workspaces(workspace.sid)
    results = race(8, lambda: ws.workers.create(friendly_name="Racer").sid)
    created = [r for r in results if isinstance(r, str)]
    assert len(created) == 1, results
    assert sorted(r for r in results if not isinstance(r, str)) == [409] * 7
    assert [w.sid for w in ws.workers.list()] == created
