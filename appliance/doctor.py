"""``antrean doctor``: check a real installation and say what to fix.

Each check is independent and reports ``ok``, ``warn`` or ``fail`` with one line of detail and,
when not ok, one line saying what to do. Nothing is changed; the database is only opened
read-only. Exit status 0 means no check failed.
"""

from __future__ import annotations

import glob
import os
import stat
import subprocess
import time
from dataclasses import asdict, dataclass

from appliance.errors import AntreanError


@dataclass
class Check:
    name: str
    level: str  # 'ok' | 'warn' | 'fail'
    detail: str
    fix: str = ""


def _config_check(path):
    from appliance.config import load_config

    try:
        config = load_config(path)
    except AntreanError as e:
        return None, Check("config", "fail", str(e), "fix the file; every key is in "
                           "docs/config.md")
    return config, Check("config", "ok", f"{config.path} is valid")


def _keys_check(config) -> Check:
    if not config.trust.keys:
        return Check("trust keys", "fail", "no trusted keys in [trust] keys",
                     "add the central server's public key (key id = base64)")
    return Check("trust keys", "ok", "trusted key ids: " + ", ".join(sorted(config.trust.keys)))


def _store_check(config) -> Check:
    from appliance.store import Store

    path = config.storage.path
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        return Check("database", "fail", f"folder {folder} does not exist",
                     "install the systemd units (StateDirectory=antrean creates it)")
    if not os.path.exists(path):
        return Check("database", "warn", f"{path} does not exist yet",
                     "start antrean.target; the scanner service creates it")
    try:
        with Store(path, readonly=True) as store:
            result = store.db.execute("PRAGMA quick_check").fetchone()[0]
    except AntreanError as e:
        return Check("database", "fail", str(e), "see `journalctl -u antrean-scanner`")
    if result != "ok":
        return Check("database", "fail", f"{path} is damaged: {result}",
                     "stop the services and restore it from a backup")
    return Check("database", "ok", f"{path} opens and passes quick_check")


def _token_check(config) -> Check:
    path = config.server.token_file
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Check("token", "fail", f"token file {path} does not exist",
                     f"put the device token from the central server in {path} "
                     "(mode 0640, owner root, group antrean)")
    except PermissionError:
        return Check("token", "fail", f"token file {path} is not readable by this user",
                     "run doctor as root or as the antrean user")
    if st.st_mode & stat.S_IROTH:
        return Check("token", "warn", f"token file {path} is readable by everyone",
                     f"chmod 0640 {path}")
    return Check("token", "ok", f"{path} present")


def _scanner_checks(config) -> list[Check]:
    """One check per reader, named ``scanner`` when there is one, else ``scanner NAME``."""
    readers = config.readers or (config.scanner,)
    if len(readers) == 1:
        return [_reader_check(readers[0], "scanner")]
    return [_reader_check(r, f"scanner {r.name}") for r in readers]


def _reader_check(reader, check: str) -> Check:
    kind = reader.kind
    if kind in ("none", "stdin"):
        return Check(check, "warn" if kind == "none" else "ok",
                     f"scanner.kind = {kind!r}", "set scanner.kind for a real reader"
                     if kind == "none" else "")
    device = {"serial": reader.port, "keyboard": reader.device}.get(kind)
    if kind == "camera":
        present = glob.glob("/dev/video*") or glob.glob("/dev/media*")
        if reader.frames_dir:
            return Check(check, "ok", f"camera frames from {reader.frames_dir}")
        return Check(check, "ok" if present else "fail",
                     "camera devices: " + (", ".join(present) if present else "none"),
                     "" if present else "connect the camera ribbon cable and enable it")
    if not device or not os.path.exists(device):
        return Check(check, "fail", f"{kind} scanner device {device!r} does not exist",
                     "plug the scanner in; check `ls -l /dev/serial/by-id/` and the udev rule "
                     "in systemd/99-antrean-scanner.rules")
    try:
        fd = os.open(device, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        os.close(fd)
    except PermissionError:
        return Check(check, "fail", f"{device} exists but cannot be opened by this user",
                     "the antrean user needs group dialout (serial) or input (keyboard)")
    except OSError as e:
        return Check(check, "warn", f"{device} exists but did not open: {e.strerror}",
                     "it may be held by the running scanner service; that is fine")
    return Check(check, "ok", f"{kind} scanner at {device} opens")


PRINTER_FIXES = {
    "unplugged": "plug the printer in and switch it on; check printer.device or printer.host "
                 "(docs/printer.md)",
    "paper_out": "load a new paper roll",
    "cover_open": "close the printer's cover",
    "offline": "switch the printer off and on; look for a paper jam",
    "error": "switch the printer off and on; look for a paper jam or a cutter error",
    "not_answering": "check the cable and printer.baudrate; a printer without real-time "
                     "status needs printer.status = \"none\"",
}


def _printer_checks(config, print_test: bool) -> list[Check]:
    """Reach the printer, ask its status and, on request, print a test page."""
    if config.printer.kind == "none":
        fix = "set [printer] kind to print queue slips" if print_test else ""
        return [Check("printer", "fail" if print_test else "ok",
                      "no printer configured (printer.kind = none)", fix)]
    from appliance.clock import Clock
    from appliance.slip import compose_test_page
    from drivers.printer.errors import PrinterError
    from drivers.printer.thermal import printer_from_config

    printer = printer_from_config(config.printer)
    checks = []
    if printer.logo_problem:
        checks.append(Check("printer logo", "warn", printer.logo_problem,
                            "fix printer.logo (a PNG or BMP) or set it to \"\""))
    try:
        status = printer.check()
    except PrinterError as e:
        return checks + [Check("printer", "fail", str(e), PRINTER_FIXES.get(e.code, ""))]
    if not status.ready:
        return checks + [Check("printer", "fail", f"{printer.describe()}: {status.describe()}",
                               PRINTER_FIXES.get(status.problem, ""))]
    level = "warn" if status.paper_low else "ok"
    checks.append(Check("printer", level, f"{printer.describe()}: {status.describe()}",
                        "load a new paper roll soon" if status.paper_low else ""))
    if print_test:
        now = Clock(None, config).now()
        try:
            printer.print_slip(compose_test_page(config.office.name, now, printer.describe()))
        except PrinterError as e:
            checks.append(Check("test page", "fail", str(e), PRINTER_FIXES.get(e.code, "")))
        else:
            checks.append(Check("test page", "ok", "printed; check that it is legible"))
    return checks


def _display_check() -> list[Check]:
    cards = sorted(glob.glob("/dev/dri/card*"))
    drm = Check("screen", "ok" if cards else "fail",
                "DRM devices: " + (", ".join(cards) if cards else "none"),
                "" if cards else "connect the HDMI monitor and check dtoverlay=vc4-kms-v3d "
                "in /boot/firmware/config.txt")
    try:
        with open("/proc/asound/cards") as f:
            sound = f.read().strip()
    except OSError:
        sound = ""
    has_sound = bool(sound) and "no soundcards" not in sound
    audio = Check("audio", "ok" if has_sound else "warn",
                  "ALSA cards present" if has_sound else "no ALSA sound card",
                  "" if has_sound else "calls will be silent; check the HDMI audio setting "
                  "or set display.sound = \"off\"")
    return [drm, audio]


def _server_check(config) -> Check:
    """Ask the central server what sync would ask, the way sync asks it.

    The sync service's own client (sync.client, imported here like a service entry point
    imports it): the same token reading and checks, the same timeouts and overall deadline,
    no proxy from the environment, the same TLS settings. So "reachable" here means sync can
    reach it, and a fault reads the same as in ``antrean status``.
    """
    if not config.server.url:
        return Check("server", "warn", "server.url is empty: no sync",
                     "set server.url to the central server's API base URL")
    from appliance.clock import Clock
    from sync.client import (
        BodyTooLarge,
        CentralClient,
        ServerUnreachable,
        TlsRefused,
        TokenUnavailable,
    )

    day = Clock(None, config).office_day()
    client = CentralClient(config)
    try:
        ans = client.get_schedule(config.office.id, day, etag=None)
    except TokenUnavailable as e:
        return Check("server", "fail", str(e), "fix the token check first")
    except TlsRefused as e:
        return Check("server", "fail", f"cannot reach {config.server.url}: {e}",
                     "fix what the message names (server.ca_file, the host name in "
                     "server.url, the server's certificate or this device's NTP); "
                     "docs/install.md, section 6")
    except ServerUnreachable as e:
        return Check("server", "fail", f"cannot reach {config.server.url}: {e}",
                     "check the network cable, DNS, the firewall and server.url; the sync "
                     "service meets the same (it uses no proxy)")
    except BodyTooLarge as e:
        return Check("server", "warn", str(e), "ask the central server's operators")
    finally:
        client.close()
    status = ans.status
    if status == 401:
        return Check("server", "fail", "the server refused the device token (401)",
                     "ask the central server's operators for a new token")
    if status in (200, 304) or (status == 404 and ans.is_json()):
        return Check("server", "ok", f"reachable, token accepted (HTTP {status})")
    if ans.wrong_endpoint:
        return Check("server", "fail", f"{config.server.url} answered HTTP {status} for the "
                     "schedule, not the contract's answer: server.url points to the wrong "
                     "place or a proxy is in the way",
                     f"check server.url in {config.path} (it ends in the API's base path, "
                     "e.g. /api/v1)")
    return Check("server", "warn", f"the server answered HTTP {status}",
                 "try again later; see `antrean status` for sync errors")


def _clock_check() -> Check:
    try:
        out = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    if out == "yes":
        return Check("clock", "ok", "system clock synchronised (NTP)")
    return Check("clock", "warn", "system clock not known to be synchronised "
                 f"(it reads {time.strftime('%Y-%m-%d %H:%M:%S %Z')})",
                 "enable systemd-timesyncd or add an RTC; until then decisions use the "
                 "server's Date header when the clock is off")


def run_checks(config_path, print_test: bool = False) -> list[Check]:
    config, first = _config_check(config_path)
    checks = [first]
    if config is None:
        return checks
    checks += [_keys_check(config), _store_check(config), *_scanner_checks(config)]
    checks += _display_check()
    checks += _printer_checks(config, print_test)
    if config.server.url:
        checks.append(_token_check(config))
    checks += [_server_check(config), _clock_check()]
    return checks


def format_checks(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        lines.append(f"{c.level.upper():4} {c.name:11} {c.detail}")
        if c.fix:
            lines.append(f"{'':16} fix: {c.fix}")
    return "\n".join(lines)


def as_json(checks: list[Check]) -> dict:
    return {"ok": not any(c.level == "fail" for c in checks),
            "checks": [asdict(c) for c in checks]}
