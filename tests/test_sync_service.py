"""The sync service against the reference server on loopback: pulls, uploads, faults, --once."""

from __future__ import annotations

import logging
import resource
import time

import pytest
from test_sync_harness import DEVICE, TOKEN, outbox_states, record_events, server_ids, wait_until

from appliance.call_queue import CallQueue
from appliance.checkin import CheckinDesk
from appliance.clock import Clock
from appliance.lobby_view import read_lobby
from appliance.outbox import counts, record_event
from appliance.schedule import schedule_info
from appliance.store import Store
from sync.service import SyncService, run

pytest_plugins = ("test_sync_harness",)   # the central and sync_config fixtures


@pytest.fixture
def service(sync_config):
    svc = SyncService(sync_config, use_stream=False, backoff_base_s=0.05, backoff_cap_s=0.2)
    yield svc
    svc.close()


def today(svc: SyncService) -> str:
    return svc.clock.office_day()


def cached(svc: SyncService):
    info = schedule_info(svc.store, today(svc))
    row = svc.store.db.execute("SELECT body_sha256 FROM schedules WHERE date = ?",
                               (today(svc),)).fetchone()
    return (info.version, info.appointments, row[0]) if info else None


# --- schedule pull ------------------------------------------------------------------------

def test_pull_stores_schedule_and_304_writes_nothing(service, sync_config):
    assert service.pull_round() is True
    version, appointments, _ = cached(service)
    assert (version, appointments) == (1, 40)
    watcher = Store(sync_config.storage.path)
    before_version, before_changes = watcher.data_version(), service.store.db.total_changes
    assert service.pull_day(today(service)) == ("unchanged", None)
    assert service.pull_round() is True
    assert watcher.data_version() == before_version
    assert service.store.db.total_changes == before_changes
    watcher.close()


def test_pull_after_server_change_replaces_schedule(service, central):
    service.pull_round()
    central.admin("POST", "/_admin/schedule", {"appointments": 55})
    assert service.pull_round() is True
    assert cached(service)[:2] == (2, 55)


def test_closed_day_is_not_an_error(service, central):
    central.admin("POST", "/_admin/schedule", {"date": today(service), "closed": True})
    assert service.pull_day(today(service)) == ("closed", None)


def fault_id(fault: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in fault.items())


SCHEDULE_FAULTS = [
    ({"signature": "wrong"}, "signature"),
    ({"signature": "missing"}, "signature is missing"),
    ({"office": "JKT"}, "office 'JKT'"),
    ({"body": "garbage"}, "refused"),
    ({"body": "html"}, "refused"),
    ({"body": "truncated"}, "cut off"),
    ({"body": "huge"}, "more than 33554432 bytes"),
    ({"down": True}, "remote end closed connection"),
    ({"slow": 2.5}, "no answer within"),
    ({"status": 500}, "HTTP 500"),
    ({"status": 429, "retry_after": 7}, "HTTP 429"),
    ({"status": 403}, "HTTP 403"),
    ({"revoked": True}, "device token"),
]


@pytest.mark.parametrize("fault,message", SCHEDULE_FAULTS,
                         ids=[fault_id(f) for f, _ in SCHEDULE_FAULTS])
def test_schedule_fault_keeps_cache_and_is_logged_once(service, central, caplog, fault,
                                                       message):
    assert service.pull_round() is True
    good = cached(service)
    central.admin("POST", "/_admin/schedule", {"appointments": 41})   # something new to get
    central.admin("POST", "/_admin/faults", fault)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with caplog.at_level(logging.INFO, logger="antrean.sync"):
        assert service.pull_round() is False
        assert service.pull_round() is False
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mib < 200, "a huge body must never be held in memory"
    assert cached(service) == good
    # Once, not once per round; after closing time tomorrow is pulled too, and a fault that
    # does not stop the round is then told once for each of the two days.
    hits = [r.getMessage() for r in caplog.records if message in r.getMessage()]
    assert 1 <= len(hits) <= len(service.puller.wanted_days()), hits
    assert len(set(hits)) == len(hits), hits
    health = service.store.db.execute(
        "SELECT state, detail FROM service_health WHERE service = 'sync'").fetchone()
    assert health[0] == "degraded" and message in health[1]
    assert message in service.store.get_kv("sync.last_error")
    assert TOKEN not in caplog.text
    central.admin("POST", "/_admin/faults", {"reset": True})
    assert service.pull_round() is True
    assert cached(service)[:2] == (2, 41)
    health = service.store.db.execute(
        "SELECT state FROM service_health WHERE service = 'sync'").fetchone()
    assert health[0] == "ok"


def test_retry_after_is_honoured(service, central):
    central.admin("POST", "/_admin/faults", {"status": 429, "retry_after": 30})
    before = time.monotonic()
    service.pull_round()
    assert service._next_pull - before >= 30


# --- upload -------------------------------------------------------------------------------

def test_upload_marks_sent_and_server_has_each_once(service, central):
    ids = record_events(service.store, 250)
    assert service.upload_round() == ("done", None)
    assert server_ids(central) == ids
    assert set(outbox_states(service.store).values()) == {"sent"}


UPLOAD_FAULTS = [{"down": True}, {"status": 503, "retry_after": 1}, {"status": 408},
                 {"body": "garbage"}, {"body": "html"}, {"body": "truncated"}, {"slow": 2.5},
                 {"body": "huge"}]


@pytest.mark.parametrize("fault", UPLOAD_FAULTS, ids=fault_id)
def test_upload_fault_loses_nothing(service, central, fault):
    ids = record_events(service.store, 120)
    central.admin("POST", "/_admin/faults", {**fault, "endpoints": ["events"]})
    outcome, _ = service.upload_round()
    assert outcome == "retry"
    states = outbox_states(service.store)
    assert set(states.values()) <= {"pending", "sent"}        # nothing dead-lettered
    sent = {i for i, state in states.items() if state == "sent"}
    assert sent <= set(server_ids(central))                   # "sent" only when the server has it
    central.admin("POST", "/_admin/faults", {"reset": True})
    assert service.upload_round() == ("done", None)
    assert sorted(server_ids(central)) == sorted(ids)
    assert counts(service.store) == {"pending": 0, "dead": 0}


def test_rejected_events_are_dead_lettered_with_reason(service, central):
    good = record_events(service.store, 3)
    with service.store.write() as db:
        bad = record_event(db, "teleport", {"ticket": "A001"}, time.time())
    assert service.upload_round() == ("done", None)
    states = outbox_states(service.store)
    assert states[bad] == "dead" and all(states[i] == "sent" for i in good)
    reason = service.store.db.execute("SELECT reason FROM outbox WHERE id = ?",
                                      (bad,)).fetchone()[0]
    assert "unknown type" in reason
    assert server_ids(central) == good


def test_whole_batch_4xx_is_dead_lettered(service, central):
    ids = record_events(service.store, 5)
    central.admin("POST", "/_admin/faults", {"status": 422, "times": 1})
    assert service.upload_round() == ("done", None)
    assert counts(service.store) == {"pending": 0, "dead": 5}
    assert server_ids(central) == [] and len(ids) == 5


def test_revoked_token_keeps_events_until_new_token(service, central, tmp_path, caplog):
    ids = record_events(service.store, 10)
    central.admin("POST", "/_admin/token", {"token": "second-token-xyz"})
    with caplog.at_level(logging.INFO, logger="antrean.sync"):
        assert service.upload_round() == ("unauthorized", None)
        assert service.upload_round() == ("unauthorized", None)
    assert counts(service.store) == {"pending": 10, "dead": 0}
    assert "token" in service.store.get_kv("sync.last_error")
    assert len([r for r in caplog.records if "401" in r.getMessage()]) == 1
    (tmp_path / "token").write_text("second-token-xyz\n")   # the technician's fix
    assert service.upload_round() == ("done", None)
    assert server_ids(central) == ids
    assert "second-token-xyz" not in caplog.text and TOKEN not in caplog.text


def test_missing_token_file_is_like_revoked(service, tmp_path):
    record_events(service.store, 2)
    (tmp_path / "token").unlink()
    assert service.upload_round() == ("unauthorized", None)
    assert service.pull_round() is False
    assert counts(service.store)["pending"] == 2
    assert "does not exist" in " ".join(service.faults.active.values())


def test_outage_of_many_batches_then_recovery(sync_config, central):
    """The loop keeps retrying through an outage; afterwards the server has each event once."""
    svc = SyncService(sync_config, use_stream=False, backoff_base_s=0.02, backoff_cap_s=0.1)
    writer = Store(sync_config.storage.path)
    ids = record_events(writer, 550)
    central.admin("POST", "/_admin/faults", {"down": True, "endpoints": ["events"]})
    import threading
    thread = threading.Thread(target=svc.run_forever)
    thread.start()
    try:
        wait_until(lambda: central.admin("GET", "/_admin/state")["requests"]["events"] >= 5,
                   what="retries during the outage")
        ids += record_events(writer, 130)          # the lobby keeps working meanwhile
        assert writer.get_kv("sync.offline_since") is not None
        # Recovery, but the first answers are garbled after the server stored the batch:
        central.admin("POST", "/_admin/faults", {"reset": True, "body": "garbage", "times": 3,
                                                  "endpoints": ["events"]})
        wait_until(lambda: counts(writer)["pending"] == 0, what="the outbox to drain")
    finally:
        svc.request_stop()
        thread.join(10)
        svc.close()
    assert server_ids(central) == ids
    assert counts(writer) == {"pending": 0, "dead": 0}
    assert writer.get_kv("sync.offline_since") is None
    writer.close()


# --- heartbeat and clock ------------------------------------------------------------------

def test_heartbeat_carries_the_contract_fields(service, central):
    service.pull_round()
    record_events(service.store, 3)
    assert service.heartbeat() is True
    beat = central.admin("GET", "/_admin/state")["heartbeats"][DEVICE]
    assert beat["outbox"] == {"pending": 3, "dead": 0}
    assert beat["schedule"]["date"] == today(service) and beat["schedule"]["version"] == 1
    assert beat["version"] and beat["uptime_s"] >= 0
    assert set(beat["clock"]) == {"synced", "offset_s"}


def test_heartbeat_carries_estimates_and_lateness_per_service(service, central, sync_config):
    """The central server hears how the office runs: waiting, the estimated wait and the
    lateness per service, the same facts the screen shows (``appliance.lobby_view``)."""
    service.pull_round()
    day = today(service)
    rows = service.store.db.execute(
        "SELECT booking_code, slot_start FROM appointments WHERE date = ? AND service = 'A'"
        " AND priority = 0 AND status = 'booked' ORDER BY slot_start LIMIT 3",
        (day,)).fetchall()   # the reference schedule cancels a few bookings on some days
    assert len(rows) == 3
    # Forget the server's time, so the desk's clocks below are believed: each applicant
    # checks in at their slot's start, whatever the hour the test runs at.
    with service.store.write() as db:
        db.execute("DELETE FROM kv WHERE key = 'clock'")
    for code, slot in rows:
        clock = Clock(service.store, sync_config, wall=lambda slot=slot: slot)
        assert CheckinDesk(service.store, sync_config, clock).scan(code).accepted
    first = CallQueue(service.store, sync_config).call_next(1)
    assert first is not None and first.service == "A"
    assert service.heartbeat() is True
    state = central.admin("GET", "/_admin/state")
    lobby = state["heartbeats"][DEVICE]["lobby"]
    assert state["lobbies"][DEVICE]["services"] == lobby["services"]
    assert lobby["date"] == day and lobby["waiting"] == 2
    a = next(s for s in lobby["services"] if s["code"] == "A")
    assert a["waiting"] == 2 and a["next_wait_s"] >= 0
    # the call came now, for a slot that began at rows[0]'s time
    late = max(0.0, first.at - rows[0][1])
    assert a["lateness_s"] == pytest.approx(late, abs=1)
    assert lobby["lateness_s"] >= a["lateness_s"]
    if abs(lobby["lateness_s"] - 60 * 15) > 1:   # lateness_s is rounded, the flag is not
        assert lobby["running_late"] == (lobby["lateness_s"] >= 60 * 15)
    with service.store.read() as db:
        again = read_lobby(db, day, sync_config, service.clock.time(), recent_calls=0)
    assert [(s["code"], s["waiting"], s["lateness_s"]) for s in lobby["services"]] == [
        (q.code, q.waiting, None if q.lateness_s is None else round(q.lateness_s))
        for q in again.queues]


def test_clock_offset_from_date_header(service, central, sync_config):
    central.admin("POST", "/_admin/faults", {"clock_offset_s": 3600})
    service.pull_round()
    offset = service.store.get_kv("clock")["offset_s"]
    assert 3598 < offset < 3602
    assert "clock" in service.faults.active
    assert abs(Clock(service.store, sync_config).time() - (time.time() + 3600)) < 3


def test_user_agent_names_version_and_device(service, central):
    service.pull_round()
    agents = central.admin("GET", "/_admin/state")["user_agents"]
    assert agents[-1].startswith("antrean/") and agents[-1].endswith(f"({DEVICE})")


# --- --once -------------------------------------------------------------------------------

def test_once_exit_codes(sync_config, central):
    assert run(sync_config, once=True) == 0
    with Store(sync_config.storage.path) as s:
        record_events(s, 3)
    central.admin("POST", "/_admin/faults", {"status": 503, "endpoints": ["events"]})
    assert run(sync_config, once=True) == 1
    central.admin("POST", "/_admin/faults", {"reset": True, "signature": "wrong"})
    central.admin("POST", "/_admin/schedule", {"appointments": 42})
    assert run(sync_config, once=True) == 1
    central.admin("POST", "/_admin/faults", {"reset": True})
    assert run(sync_config, once=True) == 0
    with Store(sync_config.storage.path) as s:
        assert counts(s) == {"pending": 0, "dead": 0}


# --- malformed bodies ---------------------------------------------------------------------

def test_deeply_nested_schedule_is_refused_not_a_crash(sync_config, central):
    """100,000 ``[`` under a valid signature (a key holder's bug, or a USB stick): the
    RecursionError of the JSON parse must be a refused schedule, like any bad body."""
    from appliance.errors import ScheduleRejected
    from appliance.schedule import verify_schedule

    body = b"[" * 100_000
    with pytest.raises(ScheduleRejected, match="nests deeper"):
        verify_schedule(body, central.key.sign_header(body), sync_config)


def test_deeply_nested_events_answer_is_retried_with_backoff(sync_config, central, caplog):
    svc = SyncService(sync_config, use_stream=False, backoff_base_s=5.0, backoff_cap_s=60.0)
    try:
        ids = record_events(svc.store, 5)
        central.admin("POST", "/_admin/faults", {"body": "deep", "endpoints": ["events"]})
        before = time.monotonic()
        with caplog.at_level(logging.INFO, logger="antrean.sync"):
            svc._tick()
            svc._tick()
        assert svc.upload_backoff.failures == 1          # the second tick waited
        # Backed off at least half the 5 s base (jitter), counted from before the failing
        # tick, so a slow machine between the tick and this line cannot fail the check.
        assert svc._next_upload - before >= 2.5
        assert counts(svc.store) == {"pending": 5, "dead": 0}
        assert len([r for r in caplog.records
                    if "readable result list" in r.getMessage()]) == 1
        assert "internal" not in svc.faults.active
        assert not any(r.exc_info for r in caplog.records)
        central.admin("POST", "/_admin/faults", {"reset": True})
        assert svc.upload_round() == ("done", None)
        assert sorted(server_ids(central)) == sorted(ids)
    finally:
        svc.close()


def test_deeply_nested_push_data_is_ignored(service, caplog):
    from sync.sse import SseEvent

    with caplog.at_level(logging.WARNING, logger="antrean.sync"):
        service.on_push(SseEvent("9", "call", "[" * 100_000))
    assert "not a JSON object" in caplog.text
    assert service.store.get_kv("sync.stream_last_id") == "9"


class FlakyDays(SyncService):
    """A sync service whose day planning fails three times for a reason nobody foresaw."""

    failures_left = 3

    def wanted_days(self):
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("a bug nobody foresaw")
        return super().wanted_days()


def test_an_unforeseen_round_failure_is_retried_with_backoff_and_logged_once(sync_config,
                                                                             central, caplog):
    import threading

    svc = FlakyDays(sync_config, use_stream=False, backoff_base_s=0.05, backoff_cap_s=0.2)
    thread = threading.Thread(target=svc.run_forever)
    with caplog.at_level(logging.INFO, logger="antrean.sync"):
        thread.start()
        try:
            wait_until(lambda: svc.failures_left == 0 and "internal" not in svc.faults.active
                       and svc.internal_backoff.failures == 0, what="recovery")
        finally:
            svc.request_stop()
            thread.join(10)
            svc.close()
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "failed unexpectedly" in tracebacks[0].getMessage()
    assert "sync rounds work again" in caplog.text


# --- the wrong endpoint -------------------------------------------------------------------

def health(svc: SyncService) -> tuple[str, str]:
    return svc.store.db.execute(
        "SELECT state, detail FROM service_health WHERE service = 'sync'").fetchone()


@pytest.mark.parametrize("status", [404, 405, 410, 413])
def test_a_wrong_endpoint_answer_keeps_every_event_and_alerts(service, central, status,
                                                             caplog):
    """These say "no such endpoint here", not "bad events": nothing is dead-lettered."""
    ids = record_events(service.store, 120)
    central.admin("POST", "/_admin/faults", {"status": status, "endpoints": ["events"]})
    with caplog.at_level(logging.INFO, logger="antrean.sync"):
        assert service.upload_round() == ("misrouted", None)
        assert service.upload_round() == ("misrouted", None)
    assert counts(service.store) == {"pending": 120, "dead": 0}
    state, detail = health(service)
    assert state == "degraded" and f"HTTP {status} to POST events" in detail
    assert "server.url" in detail and str(service.config.path) in detail
    assert len([r for r in caplog.records if r.levelno == logging.ERROR
                and "POST events" in r.getMessage()]) == 1
    central.admin("POST", "/_admin/faults", {"reset": True})
    assert service.upload_round() == ("done", None)
    assert sorted(server_ids(central)) == sorted(ids)
    assert "endpoint POST events" not in service.faults.active


def test_a_mistyped_server_url_path_is_not_an_office_closed_and_loses_nothing(
        tmp_path, central):
    """server.url with a wrong path: every endpoint answers the web server's own 404 page
    (text, not the contract's JSON). The schedule must not read as "office closed", no event
    may be dead-lettered, ``sync --once`` must fail, and a fixed URL sends everything."""
    from test_sync_harness import write_sync_config

    from appliance.config import load_config

    good = write_sync_config(tmp_path, central)
    text = good.read_text()
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(text.replace(f'url = "{central.url}"', f'url = "{central.url}/api/v9"'))
    with Store(load_config(good).storage.path) as s:
        ids = record_events(s, 30)
    assert run(load_config(wrong), once=True) == 1
    with Store(load_config(good).storage.path) as s:
        assert counts(s) == {"pending": 30, "dead": 0}
        state, detail = s.db.execute("SELECT state, detail FROM service_health "
                                     "WHERE service = 'sync'").fetchone()
    assert state == "degraded"
    assert "HTTP 404 to GET schedule" in detail and "HTTP 404 to POST events" in detail
    assert run(load_config(good), once=True) == 0
    assert sorted(server_ids(central)) == sorted(ids)


def test_the_contracts_404_for_a_schedule_still_means_closed(service, central):
    """The reference server's 404 is JSON, as every contract body: a closed day, no alert."""
    central.admin("POST", "/_admin/schedule", {"date": today(service), "closed": True})
    assert service.pull_round() is True
    assert not [f for f in service.faults.active if f.startswith("endpoint")]


def test_a_heartbeat_to_a_wrong_endpoint_alerts(service, central):
    central.admin("POST", "/_admin/faults", {"status": 404, "endpoints": ["heartbeat"]})
    assert service.heartbeat() is False
    assert "HTTP 404 to POST heartbeat" in service.faults.active["endpoint POST heartbeat"]
    central.admin("POST", "/_admin/faults", {"reset": True})
    assert service.heartbeat() is True
    assert "endpoint POST heartbeat" not in service.faults.active
