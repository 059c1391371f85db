"""sync/openapi.yaml checked against the reference server's real responses and the
appliance's real requests."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import jsonschema
import pytest
import requests
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from test_sync_harness import DEVICE, TOKEN, record_events

from appliance.outbox import pending_batch, record_event
from devtools.devserver import build_app
from sync.service import SyncService

SPEC = yaml.safe_load((Path(__file__).parent.parent / "sync" / "openapi.yaml").read_text())
REGISTRY = Registry().with_resource(
    "urn:antrean-api", Resource.from_contents(SPEC, default_specification=DRAFT202012))
AUTH = {"Authorization": f"Bearer {TOKEN}"}

pytest_plugins = ("test_sync_harness",)   # the central and sync_config fixtures


def validate(schema: dict, instance) -> None:
    jsonschema.Draft202012Validator({"$ref": "urn:antrean-api#" + schema["$ref"][1:]}
                                    if "$ref" in schema else schema,
                                    registry=REGISTRY).validate(instance)


def deref(obj: dict) -> dict:
    while "$ref" in obj:
        node = SPEC
        for part in obj["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        obj = node
    return obj


def check(path: str, method: str, resp: requests.Response) -> None:
    """The response's status, headers and body must be described by the spec."""
    responses = SPEC["paths"][path][method]["responses"]
    status = str(resp.status_code)
    spec = responses.get(status) or responses.get(status[0] + "XX")
    assert spec is not None, f"{method.upper()} {path} answered {status}, not in the spec"
    spec = deref(spec)
    for name, header in spec.get("headers", {}).items():
        if deref(header).get("required"):
            assert name in resp.headers, f"{name} missing from {status} of {path}"
    content = spec.get("content", {})
    if resp.status_code in (204, 304):
        assert not content and resp.content == b""
        return
    kind = resp.headers["Content-Type"].split(";")[0]
    assert kind in content, f"{kind} not in the spec for {status} of {path}"
    if kind == "application/json":
        validate(content[kind]["schema"], resp.json())


def test_every_server_route_is_in_the_spec(central):
    routes = {re.sub(r"\{(office|device)\}", r"{\1_id}", r.resource.canonical)
              for r in build_app(central.state).router.routes()
              if not r.resource.canonical.startswith("/_admin")}
    assert routes == set(SPEC["paths"])


def test_schedule_responses_match(central):
    day = central.admin("GET", "/_admin/state")["today"]
    url = f"{central.url}/offices/TRK/schedule"
    ok = requests.get(url, params={"date": day}, headers=AUTH, timeout=5)
    check("/offices/{office_id}/schedule", "get", ok)
    same = requests.get(url, params={"date": day}, timeout=5,
                        headers={**AUTH, "If-None-Match": ok.headers["ETag"]})
    assert same.status_code == 304
    check("/offices/{office_id}/schedule", "get", same)
    closed = requests.get(url, params={"date": "2001-01-01"}, headers=AUTH, timeout=5)
    assert closed.status_code == 404
    check("/offices/{office_id}/schedule", "get", closed)
    denied = requests.get(url, params={"date": day}, timeout=5)
    assert denied.status_code == 401
    check("/offices/{office_id}/schedule", "get", denied)
    central.admin("POST", "/_admin/faults", {"status": 429, "retry_after": 3})
    busy = requests.get(url, params={"date": day}, headers=AUTH, timeout=5)
    assert busy.headers["Retry-After"] == "3"
    check("/offices/{office_id}/schedule", "get", busy)


def test_events_and_heartbeat_match(sync_config, central):
    svc = SyncService(sync_config, use_stream=False)
    try:
        now = time.time()
        with svc.store.write() as db:
            record_event(db, "checkin", {"booking_code": "K7Q2M9XA", "ticket": "A012",
                                         "service": "A", "offline": True}, now)
            record_event(db, "scan_rejected", {"reason": "unknown", "booking_code": None,
                                               "payload_sha256": "0" * 64}, now)
            record_event(db, "scan_rejected", {"reason": "unreadable", "booking_code": None,
                                               "payload_sha256": "1" * 64, "count": 999}, now)
            record_event(db, "no_show", {"ticket": "A012", "counter": 1}, now)
        record_events(svc.store, 2)
        events = [e.body for e in pending_batch(svc.store)]
        for event in events:
            validate({"$ref": "#/components/schemas/Event"}, event)
        url = f"{central.url}/devices/{DEVICE}/events"
        bad_count = {**events[1], "id": "y", "count": 0}
        resp = requests.post(url, json={"events": events + [{"id": "x", "type": "nope"},
                                                            bad_count]},
                             headers=AUTH, timeout=5)
        check("/devices/{device_id}/events", "post", resp)
        assert [r["status"] for r in resp.json()["results"]] == ["accepted"] * 6 + ["rejected"] * 2
        again = requests.post(url, json={"events": events[:1]}, headers=AUTH, timeout=5)
        assert again.json()["results"][0]["status"] == "duplicate"
        check("/devices/{device_id}/events", "post", requests.post(
            url, json={"events": events * 30}, headers=AUTH, timeout=5))   # 150: 413
        check("/devices/{device_id}/events", "post", requests.post(
            url, data=b"not json", headers=AUTH, timeout=5))
        beat = svc.heartbeat_doc()
        validate({"$ref": "#/components/schemas/Heartbeat"}, beat)
        hb = requests.post(f"{central.url}/devices/{DEVICE}/heartbeat", json=beat,
                           headers=AUTH, timeout=5)
        assert hb.status_code == 204
        check("/devices/{device_id}/heartbeat", "post", hb)
    finally:
        svc.close()


@pytest.mark.parametrize("event,data,schema", [
    ("call", {"ticket": "A013", "counter": 2}, "StreamCall"),
    ("announcements", {"items": ["Harap tertib."]}, "StreamAnnouncements"),
    ("schedule", None, "StreamSchedule"),
])
def test_stream_events_match(central, event, data, schema):
    resp = requests.get(f"{central.url}/devices/{DEVICE}/stream", headers=AUTH, stream=True,
                        timeout=5)
    check("/devices/{device_id}/stream", "get", resp)
    if data is None:
        central.admin("POST", "/_admin/schedule", {"appointments": 3})
    else:
        central.admin("POST", "/_admin/push", {"event": event, "data": data})
    lines = resp.iter_lines()
    for line in lines:
        if line.startswith(b"event: "):
            assert line.decode() == f"event: {event}"
            payload = next(lines)
            assert payload.startswith(b"data: ")
            validate({"$ref": f"#/components/schemas/{schema}"}, json.loads(payload[6:]))
            break
    resp.close()
