"""WorkerChannels: one per (worker, TaskChannel) with capacity/availability
(taskrouter-api.md §6 WorkerChannels, §9 WorkerChannel example; semantics §4)."""

from helpers import assert_datetime, assert_sid, expect_error, missing_sid


def test_one_worker_channel_per_task_channel(ws):
    worker = ws.workers.create(friendly_name="Multi")
    task_channels = {c.sid: c.unique_name for c in ws.task_channels.list()}
    worker_channels = ws.workers(worker.sid).worker_channels.list()
    assert len(worker_channels) == len(task_channels)
    assert {c.task_channel_sid: c.task_channel_unique_name for c in worker_channels} == task_channels


def test_worker_channel_fields_and_defaults(ws, workspace, ws_url, client):
    worker = ws.workers.create(friendly_name="Defaults")
    for channel in ws.workers(worker.sid).worker_channels.list():
        assert_sid(channel.sid, "WC")
        assert_sid(channel.task_channel_sid, "TC")
        assert channel.account_sid == client.account_sid
        assert channel.workspace_sid == workspace.sid
        assert channel.worker_sid == worker.sid
        assert channel.configured_capacity == 1
        assert channel.available is True
        assert channel.assigned_tasks == 0
        assert channel.available_capacity_percentage == 100
        assert_datetime(channel.date_created)
        assert_datetime(channel.date_updated)
        assert channel.url == f"{ws_url}/Workers/{worker.sid}/Channels/{channel.sid}"


def test_fetch_by_sid_and_by_unique_name(ws):
    worker = ws.workers.create(friendly_name="Fetcher")
    voice = {c.task_channel_unique_name: c for c in ws.workers(worker.sid).worker_channels.list()}["voice"]
    by_sid = ws.workers(worker.sid).worker_channels(voice.sid).fetch()
    by_name = ws.workers(worker.sid).worker_channels("voice").fetch()
    assert by_sid.sid == by_name.sid == voice.sid
    assert by_name.task_channel_unique_name == "voice"
    assert by_name.configured_capacity == 1


def test_worker_channel_sids_are_distinct_per_worker(ws):
    a = ws.workers.create(friendly_name="A")
    b = ws.workers.create(friendly_name="B")
    sids_a = {c.sid for c in ws.workers(a.sid).worker_channels.list()}
    sids_b = {c.sid for c in ws.workers(b.sid).worker_channels.list()}
    assert not sids_a & sids_b


def test_update_capacity(ws):
    worker = ws.workers.create(friendly_name="Capable")
    updated = ws.workers(worker.sid).worker_channels("chat").update(capacity=3)
    assert updated.configured_capacity == 3
    assert updated.task_channel_unique_name == "chat"
    assert ws.workers(worker.sid).worker_channels("chat").fetch().configured_capacity == 3
    assert ws.workers(worker.sid).worker_channels("voice").fetch().configured_capacity == 1


def test_update_available(ws):
    worker = ws.workers.create(friendly_name="Picky")
    channel = ws.workers(worker.sid).worker_channels("sms").fetch()
    updated = ws.workers(worker.sid).worker_channels(channel.sid).update(available=False)
    assert updated.available is False
    assert ws.workers(worker.sid).worker_channels(channel.sid).fetch().available is False
    assert ws.workers(worker.sid).worker_channels(channel.sid).update(available=True).available is True


def test_update_capacity_and_available_together(ws):
    worker = ws.workers.create(friendly_name="Both")
    updated = ws.workers(worker.sid).worker_channels("video").update(capacity=0, available=False)
    assert (updated.configured_capacity, updated.available) == (0, False)


def test_update_capacity_does_not_touch_other_workers(ws):
    a = ws.workers.create(friendly_name="A")
    b = ws.workers.create(friendly_name="B")
    ws.workers(a.sid).worker_channels("voice").update(capacity=5)
    assert ws.workers(b.sid).worker_channels("voice").fetch().configured_capacity == 1


def test_fetch_missing_worker_channel(ws):
    worker = ws.workers.create(friendly_name="Missing")
    with expect_error(404, 20404):
        ws.workers(worker.sid).worker_channels(missing_sid("WC")).fetch()
    with expect_error(404):
        ws.workers(worker.sid).worker_channels("no_such_channel").fetch()


def test_worker_channel_of_missing_worker(ws):
    with expect_error(404):
        ws.workers(missing_sid("WK")).worker_channels("voice").fetch()


def test_list_paging(ws):
    worker = ws.workers.create(friendly_name="Pager")
    page = ws.workers(worker.sid).worker_channels.page(page_size=2)
    assert len(list(page)) == 2
    assert page.next_page_url is not None
    assert len(ws.workers(worker.sid).worker_channels.list(page_size=2)) == 5
