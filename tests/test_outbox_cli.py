"""``antrean outbox requeue``: a technician sends dead events again after fixing the cause."""

from __future__ import annotations

import json

from test_cli import antrean, assert_one_line_error
from test_sync_harness import outbox_states, record_events, server_ids, write_sync_config

from appliance.config import load_config
from appliance.outbox import counts, mark_dead
from appliance.store import Store
from sync.service import run

pytest_plugins = ("test_sync_harness",)   # the central fixture


def test_requeue_all_then_sync_sends_them(tmp_path, central):
    """The old dead-lettering of a whole batch (a 422 here), repaired: every event arrives."""
    config_path = write_sync_config(tmp_path, central)
    config = load_config(config_path)
    with Store(config.storage.path) as s:
        ids = record_events(s, 7)
    central.admin("POST", "/_admin/faults", {"status": 422, "times": 1,
                                              "endpoints": ["events"]})
    run(config, once=True)
    with Store(config.storage.path) as s:
        assert counts(s) == {"pending": 0, "dead": 7}
    proc = antrean("--config", config_path, "outbox", "requeue", "--all", "--json")
    assert json.loads(proc.stdout) == {"requeued": 7, "ids": ids}
    assert run(config, once=True) == 0
    assert server_ids(central) == ids
    with Store(config.storage.path) as s:
        assert counts(s) == {"pending": 0, "dead": 0}


def test_requeue_by_id_is_all_or_nothing(tmp_path, config_path, config):
    with Store(config.storage.path) as s:
        ids = record_events(s, 4)
        mark_dead(s, {ids[0]: "HTTP 422", ids[1]: "HTTP 422", ids[2]: "HTTP 422"})
    proc = antrean("--config", config_path, "outbox", "requeue", ids[1], "--json")
    assert json.loads(proc.stdout) == {"requeued": 1, "ids": [ids[1]]}
    bad = antrean("--config", config_path, "outbox", "requeue", ids[0], ids[3], check=False)
    assert_one_line_error(bad, ids[3], "nothing was requeued")
    with Store(config.storage.path) as s:
        states = outbox_states(s)
        assert [states[i] for i in ids] == ["dead", "pending", "dead", "pending"]
        reason = s.db.execute("SELECT reason FROM outbox WHERE id = ?", (ids[1],)).fetchone()
        assert reason == (None,)
    human = antrean("--config", config_path, "outbox", "requeue", "--all")
    assert human.stdout.startswith("requeued 2 dead events")
    none = antrean("--config", config_path, "outbox", "requeue", "--all", "--json")
    assert json.loads(none.stdout) == {"requeued": 0, "ids": []}


def test_requeue_needs_all_or_ids(config_path):
    for args in ((), ("--all", "01JDX3Q6W4T2K5M8N9P0R1S2T3")):
        proc = antrean("--config", config_path, "outbox", "requeue", *args, check=False)
        assert proc.returncode == 2
        assert_one_line_error(proc, "--all or event ids")
