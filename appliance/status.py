"""``antrean status``: the appliance at a glance, read from the store and the system.

Read-only: it never creates or migrates the database (a root-owned database file would lock
the services out), and every fact it cannot read is reported as unknown instead of failing.
"""

from __future__ import annotations

import os
import shutil
import time

from appliance.clock import Clock, system_clock_synced
from appliance.display_health import read_health
from appliance.errors import StoreError
from appliance.lobby_view import read_lobby
from appliance.outbox import counts as outbox_counts
from appliance.print_queue import printer_report
from appliance.readers import reader_report
from appliance.retention import storage_facts
from appliance.store import Store

SERVICES = ("scanner", "display", "sync", "printer")
THERMAL_PATH = "/sys/class/thermal/thermal_zone0/temp"
# Raspberry Pi firmware exposes under-voltage through the hwmon "rpi_volt" sensor.
UNDERVOLT_GLOB_DIR = "/sys/class/hwmon"


def _soc_temperature() -> float | None:
    try:
        with open(THERMAL_PATH) as f:
            return int(f.read().strip()) / 1000.0
    except (OSError, ValueError):
        return None


def _under_voltage() -> bool | None:
    try:
        entries = os.listdir(UNDERVOLT_GLOB_DIR)
    except OSError:
        return None
    for entry in entries:
        base = os.path.join(UNDERVOLT_GLOB_DIR, entry)
        try:
            with open(os.path.join(base, "name")) as f:
                if f.read().strip() != "rpi_volt":
                    continue
            with open(os.path.join(base, "in0_lcrit_alarm")) as f:
                return f.read().strip() == "1"
        except OSError:
            continue
    return None


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def collect_status(config) -> dict:
    path = config.storage.path
    data: dict = {"schedule": {"date": None, "version": None, "age_s": None, "usable": False},
                  "outbox": {"pending": None, "dead": None},
                  "queue": {"checked_in": None, "waiting": None, "called": None},
                  "services": {}, "clock": {}, "sync": {}, "store": {"path": path}}
    try:
        free = shutil.disk_usage(os.path.dirname(path) or ".").free
        data["disk_free_mb"] = round(free / 1e6)
    except OSError:
        data["disk_free_mb"] = None
    data["soc_temperature_c"] = _soc_temperature()
    data["under_voltage"] = _under_voltage()
    data["display"] = read_health(config.display.health_file)
    try:
        store = Store(path, readonly=True)
    except StoreError as e:
        data["store"]["error"] = str(e)
        return data
    with store:
        clock = Clock(store, config)
        with store.read() as db:
            today = clock.lobby_day(db)
            lobby = read_lobby(db, today, config, clock.time(), recent_calls=0, next_tickets=0,
                               appointments=True)
            info = lobby.schedule
            if info is not None:
                data["schedule"] = {
                    "date": info.date, "version": info.version,
                    "age_s": round(lobby.schedule_age_s()),
                    "usable": lobby.schedule_usable(),
                    "appointments": info.appointments, "source": info.source}
            else:
                data["schedule"]["date"] = today
            data["outbox"] = outbox_counts(store)
            # Dead letters are never retried: show technicians what was refused and why.
            data["outbox"]["dead_recent"] = [
                {"id": i, "type": t, "reason": r} for i, t, r in db.execute(
                    "SELECT id, type, reason FROM outbox WHERE state = 'dead'"
                    " ORDER BY seq DESC LIMIT 5")]
            q = lobby.counts
            data["queue"] = {"checked_in": q.checked_in, "waiting": q.waiting,
                             "called": q.called}
            data["lobby"] = lobby.summary()
            for service, pid, state, detail, updated, err, err_at in db.execute(
                    "SELECT service, pid, state, detail, updated_at, last_error, last_error_at"
                    " FROM service_health"):
                data["services"][service] = {
                    "running": _pid_alive(pid), "state": state, "detail": detail,
                    "since": updated, "last_error": err, "last_error_at": err_at}
            offset = clock.offset
            data["clock"] = {"synced": system_clock_synced(), "offset_s": offset,
                             "corrected": clock.corrected, "trusted": clock.trusted}
            data["sync"] = {"last_ok": store.get_kv("sync.last_ok"),
                            "offline_since": store.get_kv("sync.offline_since"),
                            "last_error": store.get_kv("sync.last_error")}
            data["scanner"] = reader_report(config, store)
            data["printer"] = {"kind": config.printer.kind, **printer_report(store, today)}
            data["store"].update(storage_facts(db, path, config))
        data["day"] = today
    running = _service_processes(config.path)
    for service in SERVICES:
        entry = data["services"].setdefault(service, {"running": False,
                                                      "state": "never reported"})
        if not entry["running"] and service in running:
            # The display never writes the store; its process is found on the system instead.
            entry.update(running=True, state="running", pid=running[service])
    return data


def _service_processes(config_path: str) -> dict[str, int]:
    """Running ``antrean <service>`` processes of this config, by service (via psutil)."""
    import psutil

    from appliance.config import CONFIG_ENV, DEFAULT_CONFIG_PATH

    mine = os.path.realpath(config_path)
    found: dict[str, int] = {}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if not any(os.path.basename(w) in ("antrean", "appliance.cli") for w in cmd[:6]):
            continue
        if "--config" in cmd[:-1]:
            theirs = cmd[cmd.index("--config") + 1]
        else:
            try:
                theirs = proc.environ().get(CONFIG_ENV) or DEFAULT_CONFIG_PATH
            except psutil.Error:
                theirs = DEFAULT_CONFIG_PATH
        try:
            cwd = proc.cwd()
        except psutil.Error:
            cwd = "/"
        if os.path.realpath(os.path.join(cwd, theirs)) != mine:
            continue
        for service in SERVICES:
            if service in cmd[1:] and "--snapshot" not in cmd and "--once" not in cmd:
                found.setdefault(service, proc.info["pid"])
    return found


def _ago(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    s = int(time.time() - epoch)
    return f"{s}s ago" if s < 120 else f"{s // 60}m ago" if s < 7200 else f"{s // 3600}h ago"


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


def format_status(d: dict) -> str:
    lines = []
    if d["store"].get("error"):
        lines.append(f"database: {d['store']['error']}")
    for name, s in d["services"].items():
        up = "up" if s.get("running") else "down"
        state = s.get("state", "") if s.get("running") else f"(last state: {s.get('state')})"
        extra = f" ({s.get('detail')})" if s.get("detail") else ""
        err = f"; last error: {s['last_error']}" if s.get("last_error") else ""
        lines.append(f"{name:8} {up:5} {state}{extra}{err}")
    sch = d["schedule"]
    if sch.get("version") is None:
        lines.append(f"schedule {sch.get('date')}: none cached")
    else:
        stale = "" if sch.get("usable") else " (STALE: plain codes not in it get no_schedule)"
        lines.append(f"schedule {sch['date']} version {sch['version']}, "
                     f"{sch.get('appointments')} appointments, age {sch['age_s']}s{stale}")
    o, q = d["outbox"], d["queue"]
    lines.append(f"outbox   {o['pending']} pending, {o['dead']} dead")
    for dead in o.get("dead_recent") or []:
        lines.append(f"         dead {dead['type']} {dead['id']}: {dead['reason']}")
    lines.append(f"queue    {q['checked_in']} checked in, {q['waiting']} waiting, "
                 f"{q['called']} called")
    lobby = d.get("lobby") or {}
    for s in lobby.get("services") or []:
        wait = "no estimate" if s["next_wait_s"] is None else \
            f"a newcomer waits ~{round(s['next_wait_s'] / 60)} min"
        late = "" if s["lateness_s"] is None else f"; {round(s['lateness_s'] / 60)} min late"
        lines.append(f"         {s['code']} {s['name']}: {s['waiting']} waiting, {wait}{late}")
    for r in (d.get("scanner") or {}).get("readers") or []:
        lines.append(f"reader   {r['name']} ({r['kind']}): "
                     f"{'connected' if r['connected'] else 'DISCONNECTED'}"
                     + (f" ({r['detail']})" if r.get("detail") else ""))
    p = d.get("printer")
    if p and p.get("kind") != "none":
        lines.append(f"printer  {p['kind']}: {p.get('state')} ({p.get('detail')}); "
                     f"{p['printed']} printed, {p['pending']} waiting, {p['expired']} given up, "
                     f"{p['interrupted']} interrupted today")
        for slip in p.get("attention") or []:
            lines.append(f"         {slip['ticket']} {slip['state']}: {slip['reason']} "
                         f"(reprint: antrean print --ticket {slip['ticket']})")
    if d.get("sync"):
        lines.append(f"sync     last ok {_ago(d['sync'].get('last_ok'))}"
                     + (f"; {d['sync']['last_error']}" if d["sync"].get("last_error") else ""))
    c = d.get("clock") or {}
    if c:
        off = c.get("offset_s")
        lines.append(f"clock    synced={c.get('synced')} offset="
                     f"{'unknown' if off is None else f'{off:+.1f}s'}"
                     + (" (decisions use server time)" if c.get("corrected") else "")
                     + ("" if c.get("trusted", True) else " (UNTRUSTED: windows not enforced)"))
    h = d.get("display")
    if h is None:
        lines.append("screen   no health report (the display is not running, or cannot write "
                     "display.health_file)")
    else:
        stale = "" if h.get("fresh") else " (STALE: the display stopped drawing)"
        lines.append(f"screen   {h.get('fps')} fps, {h.get('driver')} {h.get('size')}"
                     + (f", {h['framebuffer']} framebuffer" if h.get("framebuffer") else "")
                     + f", report {h.get('age_s')}s old{stale}")
    st = d["store"]
    if "size_bytes" in st:
        lines.append(f"store    {_mb(st['size_bytes'])} MB + {_mb(st['wal_bytes'])} MB WAL "
                     f"({_mb(st['free_bytes'])} MB free inside, reused first); history kept "
                     f"{st['retention_days']} days (oldest {st['oldest_day'] or 'none'})")
    lines.append(f"disk     {d.get('disk_free_mb')} MB free; SoC "
                 f"{d.get('soc_temperature_c') or 'n/a'} C; under-voltage "
                 f"{d.get('under_voltage') if d.get('under_voltage') is not None else 'n/a'}")
    return "\n".join(lines)
