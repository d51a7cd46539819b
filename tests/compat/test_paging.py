"""Paging envelope and the helper library's page following (taskrouter-api.md §2)."""

from urllib.parse import parse_qs, urlparse

import pytest

from helpers import expect_error, unique_name


@pytest.fixture
def seven_workers(ws):
    return [ws.workers.create(friendly_name=f"Worker {i}").sid for i in range(7)]


def test_list_follows_next_page_in_creation_order(ws, seven_workers):
    assert [w.sid for w in ws.workers.list(page_size=3)] == seven_workers


def test_stream_follows_next_page(ws, seven_workers):
    assert [w.sid for w in ws.workers.stream(page_size=2)] == seven_workers


def test_limit_stops_early(ws, seven_workers):
    assert [w.sid for w in ws.workers.list(limit=4)] == seven_workers[:4]
    assert [w.sid for w in ws.workers.stream(limit=5, page_size=3)] == seven_workers[:5]


def test_page_and_next_page(ws, seven_workers, base_url):
    first = ws.workers.page(page_size=3)
    assert [w.sid for w in first] == seven_workers[:3]
    assert first.previous_page_url is None
    assert first.next_page_url.startswith(f"{base_url}/v1/Workspaces/")
    second = first.next_page()
    assert [w.sid for w in second] == seven_workers[3:6]
    third = second.next_page()
    assert [w.sid for w in third] == seven_workers[6:]
    assert third.next_page_url is None
    assert third.next_page() is None


def test_meta_envelope(ws, workspace, seven_workers, base_url):
    page = ws.workers.page(page_size=3)
    meta = page._payload["meta"]
    assert meta["key"] == "workers"
    assert meta["page"] == 0
    assert meta["page_size"] == 3
    assert meta["previous_page_url"] is None
    collection = f"{base_url}/v1/Workspaces/{workspace.sid}/Workers"
    for key in ("url", "first_page_url", "next_page_url"):
        assert meta[key].startswith(collection + "?"), key
        assert parse_qs(urlparse(meta[key]).query)["PageSize"] == ["3"], key
    assert parse_qs(urlparse(meta["first_page_url"]).query)["Page"] == ["0"]
    second = page.next_page()
    assert second._payload["meta"]["page"] == 1
    assert second._payload["meta"]["page_size"] == 3


def test_default_page_size_is_50(ws, seven_workers):
    page = ws.workers.page()
    assert page._payload["meta"]["page_size"] == 50
    assert len(list(page)) == 7
    assert page.next_page_url is None


def test_filters_are_kept_across_pages(ws):
    acts = {a.friendly_name: a.sid for a in ws.activities.list()}
    expected = []
    for i in range(5):
        ws.workers.create(friendly_name=f"Online {i}", activity_sid=acts["Available"])
        expected.append(ws.workers.create(friendly_name=f"Offline {i}").sid)
    page = ws.workers.page(available="false", page_size=2)
    assert "Available=false" in page.next_page_url
    assert [w.sid for w in ws.workers.list(available="false", page_size=2)] == expected


def test_next_page_survives_deleting_last_item_of_page(ws, seven_workers):
    """next_page_url must still continue correctly when the last row of the
    current page is deleted before it is followed."""
    first = ws.workers.page(page_size=3)
    ws.workers(seven_workers[2]).delete()
    assert [w.sid for w in first.next_page()] == seven_workers[3:6]


def test_next_page_skips_nothing_when_earlier_rows_are_deleted(ws, seven_workers):
    first = ws.workers.page(page_size=3)
    ws.workers(seven_workers[0]).delete()
    ws.workers(seven_workers[1]).delete()
    assert [w.sid for w in first.next_page()] == seven_workers[3:6]


def test_first_page_url_round_trips(ws, seven_workers):
    page = ws.workers.page(page_size=3).next_page()
    first = ws.workers.get_page(page._payload["meta"]["first_page_url"])
    assert [w.sid for w in first] == seven_workers[:3]


def test_absolute_paging_without_token_rejected(ws, seven_workers):
    """`Page=<x>&PageSize=<y>` without a PageToken was deprecated and answered
    400 since 2021-12-01 (taskrouter-api.md §2, warning 40153)."""
    with expect_error(400):
        ws.workers.page(page_number=2, page_size=3)


def test_previous_page(ws, seven_workers):
    second = ws.workers.page(page_size=3).next_page()
    assert second.previous_page_url is not None
    assert [w.sid for w in second.previous_page()] == seven_workers[:3]


def test_filter_with_special_characters_survives_paging(ws):
    """Filter values are echoed URL-encoded into next_page_url (§2)."""
    name = "Q&A = 50% / ¿ü? #1+"
    created = [ws.activities.create(friendly_name=name).sid for _ in range(3)]
    ws.activities.create(friendly_name="Q")
    first = ws.activities.page(friendly_name=name, page_size=1)
    assert [a.sid for a in first] == created[:1]
    assert [a.sid for a in ws.activities.list(friendly_name=name, page_size=1)] == created


def test_page_size_1000_accepted(ws, seven_workers):
    assert len(list(ws.workers.page(page_size=1000))) == 7


def test_page_size_over_1000_rejected(ws):
    with expect_error(400):
        ws.workers.page(page_size=1001)


def test_page_size_zero_rejected(ws):
    with expect_error(400):
        ws.workers.page(page_size=0)


def test_empty_list(ws):
    page = ws.workers.page()
    assert list(page) == []
    assert page.next_page_url is None
    assert page._payload["meta"]["key"] == "workers"


@pytest.mark.parametrize(
    "collection,key",
    [
        ("activities", "activities"),
        ("task_channels", "channels"),
        ("task_queues", "task_queues"),
        ("workflows", "workflows"),
    ],
)
def test_meta_key_per_resource(ws, collection, key):
    assert getattr(ws, collection).page()._payload["meta"]["key"] == key


def test_worker_channels_meta_key(ws):
    worker = ws.workers.create(friendly_name="Keyed")
    assert ws.workers(worker.sid).worker_channels.page()._payload["meta"]["key"] == "channels"


def test_workspaces_paging_with_filter(tr):
    name = unique_name("paged")
    created = [tr.workspaces.create(friendly_name=name).sid for _ in range(5)]
    try:
        page = tr.workspaces.page(friendly_name=name, page_size=2)
        assert page._payload["meta"]["key"] == "workspaces"
        assert len(list(page)) == 2
        listed = [w.sid for w in tr.workspaces.list(friendly_name=name, page_size=2)]
        assert sorted(listed) == sorted(created)
    finally:
        for sid in created:
            tr.workspaces(sid).delete()


def test_activities_paging(ws):
    for i in range(4):
        ws.activities.create(friendly_name=f"Extra {i}")
    listed = [a.sid for a in ws.activities.list(page_size=2)]
    assert len(listed) == len(set(listed)) == 7
