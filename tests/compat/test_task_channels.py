"""TaskChannels (taskrouter-api.md §6 TaskChannels; semantics §4)."""

import threading

from twilio.base import values

from helpers import assert_datetime, assert_sid, expect_error, missing_sid, race, unique_name

DEFAULT_CHANNELS = {"default", "voice", "sms", "chat", "video"}


def test_default_channel_fields(ws, workspace, ws_url, client):
    channels = ws.task_channels.list()
    assert {c.unique_name for c in channels} == DEFAULT_CHANNELS
    for channel in channels:
        assert_sid(channel.sid, "TC")
        assert isinstance(channel.friendly_name, str) and channel.friendly_name
        assert channel.account_sid == client.account_sid
        assert channel.workspace_sid == workspace.sid
        assert_datetime(channel.date_created)
        assert_datetime(channel.date_updated)
        assert channel.url == f"{ws_url}/TaskChannels/{channel.sid}"
        assert channel.links == {"workspace": ws_url}
        assert channel.channel_optimized_routing in (None, False, True)


def test_create_task_channel(ws, workspace, ws_url):
    channel = ws.task_channels.create(friendly_name="E-Mail", unique_name="email")
    assert_sid(channel.sid, "TC")
    assert channel.friendly_name == "E-Mail"
    assert channel.unique_name == "email"
    assert channel.workspace_sid == workspace.sid
    assert channel.url == f"{ws_url}/TaskChannels/{channel.sid}"
    assert "email" in {c.unique_name for c in ws.task_channels.list()}


def test_channel_optimized_routing_round_trip(ws):
    on = ws.task_channels.create(friendly_name="Fast", unique_name="fast", channel_optimized_routing=True)
    off = ws.task_channels.create(friendly_name="Slow", unique_name="slow", channel_optimized_routing=False)
    assert on.channel_optimized_routing is True
    assert off.channel_optimized_routing is False
    assert ws.task_channels(on.sid).fetch().channel_optimized_routing is True
    assert ws.task_channels(off.sid).fetch().channel_optimized_routing is False


def test_duplicate_unique_name_conflicts(ws):
    ws.task_channels.create(friendly_name="Fax", unique_name="fax")
    with expect_error(409):
        ws.task_channels.create(friendly_name="Fax again", unique_name="fax")
    assert [c.unique_name for c in ws.task_channels.list()].count("fax") == 1


def test_concurrent_duplicate_unique_name_yields_one_channel(server, workspace):
    ws = server.client().taskrouter.v1.workspaces(workspace.sid)
    results = race(8, lambda: ws.task_channels.create(friendly_name="Race", unique_name="race").sid)
    assert sorted(r for r in results if not isinstance(r, str)) == [409] * 7, results
    assert [c.unique_name for c in ws.task_channels.list()].count("race") == 1


def test_duplicate_of_default_channel_conflicts(ws):
    with expect_error(409):
        ws.task_channels.create(friendly_name="Voice 2", unique_name="voice")


def test_same_unique_name_allowed_in_other_workspace(tr, ws):
    other = tr.workspaces.create(friendly_name=unique_name("other"))
    try:
        ws.task_channels.create(friendly_name="Fax", unique_name="fax")
        created = tr.workspaces(other.sid).task_channels.create(friendly_name="Fax", unique_name="fax")
        assert created.unique_name == "fax"
    finally:
        tr.workspaces(other.sid).delete()


def test_fetch_by_sid_and_by_unique_name(ws):
    voice = {c.unique_name: c for c in ws.task_channels.list()}["voice"]
    by_sid = ws.task_channels(voice.sid).fetch()
    by_name = ws.task_channels("voice").fetch()
    assert by_sid.sid == by_name.sid == voice.sid
    assert by_name.unique_name == "voice"


def test_update_friendly_name_and_routing(ws):
    channel = ws.task_channels.create(friendly_name="Chat 2", unique_name="chat2")
    updated = ws.task_channels(channel.sid).update(friendly_name="Chat Two", channel_optimized_routing=True)
    assert updated.friendly_name == "Chat Two"
    assert updated.channel_optimized_routing is True
    assert updated.unique_name == "chat2"
    fetched = ws.task_channels(channel.sid).fetch()
    assert (fetched.friendly_name, fetched.channel_optimized_routing) == ("Chat Two", True)


def test_update_by_unique_name(ws):
    updated = ws.task_channels("sms").update(friendly_name="Text Messages")
    assert updated.unique_name == "sms"
    assert ws.task_channels("sms").fetch().friendly_name == "Text Messages"


def test_delete_task_channel(ws):
    channel = ws.task_channels.create(friendly_name="Temp", unique_name="temp")
    assert ws.task_channels(channel.sid).delete() is True
    with expect_error(404, 20404):
        ws.task_channels(channel.sid).fetch()
    assert "temp" not in {c.unique_name for c in ws.task_channels.list()}


def test_delete_by_unique_name(ws):
    ws.task_channels.create(friendly_name="Temp", unique_name="temp")
    assert ws.task_channels("temp").delete() is True
    with expect_error(404):
        ws.task_channels("temp").fetch()


def test_creating_channel_adds_worker_channel_to_existing_workers(ws):
    worker = ws.workers.create(friendly_name="existing")
    assert len(ws.workers(worker.sid).worker_channels.list()) == len(DEFAULT_CHANNELS)
    channel = ws.task_channels.create(friendly_name="Social", unique_name="social")
    worker_channels = {c.task_channel_unique_name: c for c in ws.workers(worker.sid).worker_channels.list()}
    assert set(worker_channels) == DEFAULT_CHANNELS | {"social"}
    assert worker_channels["social"].task_channel_sid == channel.sid
    assert worker_channels["social"].configured_capacity == 1


def test_list_page_size(ws):
    page = ws.task_channels.page(page_size=2)
    assert len(list(page)) == 2
    assert {c.unique_name for c in ws.task_channels.list(page_size=2)} == DEFAULT_CHANNELS
    assert len(list(ws.task_channels.stream(limit=3))) == 3


def test_fetch_missing(ws):
    with expect_error(404, 20404):
        ws.task_channels(missing_sid("TC")).fetch()
    with expect_error(404):
        ws.task_channels("no_such_channel").fetch()


def test_create_requires_unique_name(ws):
    with expect_error(400, 20001):
        ws.task_channels.create(friendly_name="No Name", unique_name=values.unset)


def test_friendly_name_length_limit(ws):
    assert ws.task_channels.create(friendly_name="c" * 64, unique_name="long1").friendly_name == "c" * 64
    with expect_error(400):
        ws.task_channels.create(friendly_name="c" * 65, unique_name="long2")
    assert "long2" not in {c.unique_name for c in ws.task_channels.list()}


def test_unique_name_rejects_hyphen(ws):
    """Channel unique names: alphanumeric plus `_`/`$`, no hyphens (semantics §4)."""
    with expect_error(400):
        ws.task_channels.create(friendly_name="Bad", unique_name="has-hyphen")


def test_deleting_channel_removes_its_worker_channels(ws):
    worker = ws.workers.create(friendly_name="holder")
    channel = ws.task_channels.create(friendly_name="Temp", unique_name="temp")
    assert "temp" in {c.task_channel_unique_name for c in ws.workers(worker.sid).worker_channels.list()}
    ws.task_channels(channel.sid).delete()
    assert "temp" not in {c.task_channel_unique_name for c in ws.workers(worker.sid).worker_channels.list()}
    with expect_error(404):
        ws.workers(worker.sid).worker_channels("temp").fetch()


def test_worker_channels_consistent_under_concurrent_creates(server, workspace):
    """Workers and TaskChannels created concurrently: afterwards every worker
    has exactly one WorkerChannel per TaskChannel."""
    errors = []

    def make_workers(n):
        ws = server.client().taskrouter.v1.workspaces(workspace.sid)
        try:
            for i in range(10):
                ws.workers.create(friendly_name=f"w{n}-{i}")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def make_channels():
        ws = server.client().taskrouter.v1.workspaces(workspace.sid)
        try:
            for i in range(10):
                ws.task_channels.create(friendly_name=f"c{i}", unique_name=f"c{i}")
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=make_workers, args=(n,)) for n in range(4)]
    threads.append(threading.Thread(target=make_channels))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    ws = server.client().taskrouter.v1.workspaces(workspace.sid)
    channels = {c.sid for c in ws.task_channels.list()}
    assert len(channels) == 15
    workers = ws.workers.list()
    assert len(workers) == 40
    for worker in workers:
        wcs = ws.workers(worker.sid).worker_channels.list()
        assert sorted(c.task_channel_sid for c in wcs) == sorted(channels), worker.friendly_name
