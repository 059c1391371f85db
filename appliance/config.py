"""The appliance config: one strict TOML file, validated before anything starts.

Strict like Klipper's: an unknown section or key, a wrong type, an out-of-range value or
settings that contradict each other (two parts on one GPIO pin, a screen size the display
cannot lay out) are a ``ConfigError`` naming the key(s) and the file, so a typo never silently
falls back to a default and nothing is refused later, when a part starts. The ranges are
defined here once; the parts check with the same definitions.
Names are fixed by the installer contract (docs/config.md documents every key).

Example (``load_config(path)`` reads the file and does the same)::

    >>> data = {"office": {"id": "TRK", "timezone": "Asia/Makassar"},
    ...         "storage": {"path": "/var/lib/antrean/antrean.db"},
    ...         "trust": {"keys": {}}}
    >>> parse_config(data, "antrean.toml").office.timezone
    'Asia/Makassar'
    >>> data["scanner"] = {"kind": "serial", "baud": 9600}
    >>> parse_config(data, "antrean.toml")
    Traceback (most recent call last):
    appliance.errors.ConfigError: antrean.toml: unknown key scanner.baud; known keys in ...
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.backends import NO_SCANNER, SCANNER_KINDS
from appliance.errors import ConfigError

DEFAULT_CONFIG_PATH = "/etc/antrean/antrean.toml"
CONFIG_ENV = "ANTREAN_CONFIG"

KEY_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
OFFICE_ID_RE = re.compile(r"^[A-Z0-9_-]{1,16}$")
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
SERIAL_BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
# Each side of the screen, in pixels: the smallest the call screen lays out, the largest mode
# a Pi drives. The display's --size and its layout check with these too.
SCREEN_SIDE = (240, 8192)
SOUND_SETTINGS = ("off", "chime", "voice")
DECODERS = ("zxing", "pyzbar")
# The Pi's primary UART is on BCM 14 (TXD) and 15 (RXD): a scanner there owns those pins.
UART_DEVICES = ("serial0", "ttyAMA0", "ttyS0")
UART_PINS = (14, 15)
# A reader's name: in logs, `antrean status`, scan records and outbox events.
READER_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class _Key:
    """One allowed key: its type, default and the check of its value."""

    def __init__(self, kind, default=None, *, required=False, lo=None, hi=None, choices=None,
                 check=None):
        self.kind = kind
        self.default = default
        self.required = required
        self.lo = lo
        self.hi = hi
        self.choices = choices
        self.check = check


def _check_timezone(value: str) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{value!r} is not an IANA time zone name (for example \"Asia/Makassar\")"
    return None


def _check_regex(regex: re.Pattern, example: str):
    def check(value: str) -> str | None:
        if not regex.match(value):
            return f"{value!r} is not valid (expected something like {example!r})"
        return None
    return check


def is_loopback_host(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or the name ``localhost``: traffic that never leaves this machine."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(value: str) -> str | None:
    if not re.match(r"^https?://[^\s/]+(/\S*)?$", value, re.IGNORECASE):
        return f"{value!r} is not an http(s) URL"
    parts = urlsplit(value)
    if parts.scheme.lower() != "https" and not is_loopback_host(parts.hostname):
        return (f"{value!r} is plain http to another machine: the device token and the "
                "unsigned pushes (calls, announcements) would cross the network in clear; "
                "use https:// (plain http only for 127.0.0.1, ::1 or localhost)")
    return None


def parse_screen_size(value: str) -> tuple[int, int] | None:
    """``"1920x1080"`` -> (1920, 1080), ``"auto"`` -> None; ``ValueError`` says what is wrong.

    The one definition of a valid screen size: ``display.size`` and ``display --size``.
    """
    if value == "auto":
        return None
    m = re.fullmatch(r"([1-9][0-9]{0,4})x([1-9][0-9]{0,4})", value)
    if not m:
        raise ValueError(f"{value!r} is not \"auto\" or WIDTHxHEIGHT (for example "
                         "\"1920x1080\")")
    width, height = int(m[1]), int(m[2])
    lo, hi = SCREEN_SIDE
    if not (lo <= width <= hi and lo <= height <= hi):
        raise ValueError(f"{value!r} is out of range: each side {lo} to {hi} pixels")
    return width, height


def _check_size(value: str) -> str | None:
    try:
        parse_screen_size(value)
    except ValueError as e:
        return str(e)
    return None


def _check_trust_keys(value: dict) -> str | None:
    for kid, key in value.items():
        if not KEY_ID_RE.match(kid):
            return f"key id {kid!r} must be 1-32 characters of A-Z a-z 0-9 _ -"
        if not isinstance(key, str):
            return f"key {kid!r} must be a string (base64 of the raw 32-byte public key)"
        try:
            raw = base64.b64decode(key, validate=True)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            return f"key {kid!r} is not base64 of a raw 32-byte Ed25519 public key"
    return None


def _check_host(value: str) -> str | None:
    if value == "" or re.match(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$", value) \
            or re.match(r"^[0-9A-Fa-f:]{2,39}$", value):
        return None
    return f"{value!r} is not a host name or IP address (for example \"192.168.1.50\")"


def _check_pins(value: list) -> str | None:
    if not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 27 for p in value):
        return "must be a list of BCM GPIO numbers 0-27"
    return None


def _check_reader_name(value: str) -> str | None:
    if value and not READER_NAME_RE.match(value):
        return (f"{value!r} is not a reader name: 1-32 lower-case letters, digits, - or _ "
                "(for example \"entrance\" or \"desk\")")
    return None


SERVICE_CODE_RE = re.compile(r"^[A-Z]{1,3}$")


def _check_service_minutes(value: dict) -> str | None:
    for code, minutes in value.items():
        if not SERVICE_CODE_RE.match(code):
            return f"service code {code!r} must be 1-3 capital letters (for example A = 12)"
        if isinstance(minutes, bool) or not isinstance(minutes, int | float):
            return f"{code} = {minutes!r} must be a number of minutes"
        if not 0.5 <= minutes <= 240:
            return f"{code} = {minutes!r}; minutes must be between 0.5 and 240"
    return None


SCHEMA: dict[str, dict[str, _Key]] = {
    "office": {
        "id": _Key(str, required=True, check=_check_regex(OFFICE_ID_RE, "TRK")),
        "timezone": _Key(str, required=True, check=_check_timezone),
        "name": _Key(str, ""),
    },
    "storage": {
        "path": _Key(str, required=True),
        "retention_days": _Key(int, 90, lo=1, hi=3650),
    },
    "trust": {
        "keys": _Key(dict, required=True, check=_check_trust_keys),
    },
    "checkin": {
        "early_minutes": _Key(int, 60, lo=0, hi=24 * 60),
        "late_minutes": _Key(int, 30, lo=0, hi=24 * 60),
    },
    "server": {
        "url": _Key(str, "", check=lambda v: None if v == "" else _check_url(v)),
        "device_id": _Key(str, "antrean-1", check=_check_regex(DEVICE_ID_RE, "trk-lobby-1")),
        "token_file": _Key(str, "/etc/antrean/token"),
        "poll_seconds": _Key(int, 60, lo=5, hi=3600),
        "max_schedule_age_hours": _Key(int, 24, lo=1, hi=24 * 30),
        "heartbeat_seconds": _Key(int, 60, lo=5, hi=3600),
        "connect_timeout_s": _Key(float, 5.0, lo=0.5, hi=60.0),
        # 5 + 8 s fits the sync unit's WatchdogSec=30 (sync.client.request_deadline).
        "read_timeout_s": _Key(float, 8.0, lo=1.0, hi=300.0),
        "ca_file": _Key(str, ""),
    },
    "scanner": {
        "name": _Key(str, "", check=_check_reader_name),
        "kind": _Key(str, NO_SCANNER, choices=SCANNER_KINDS),
        "port": _Key(str, "/dev/antrean-scanner"),
        "baudrate": _Key(int, 9600, choices=SERIAL_BAUDRATES),
        "decoder": _Key(str, "zxing", choices=DECODERS),
        "device": _Key(str, ""),
        "camera_width": _Key(int, 640, lo=160, hi=4056),
        "camera_height": _Key(int, 480, lo=120, hi=3040),
        "camera_fps": _Key(int, 15, lo=1, hi=60),
        "frames_dir": _Key(str, ""),
        "repeat_seconds": _Key(float, 3.0, lo=0.0, hi=600.0),
        "keypad_timeout_s": _Key(float, 20.0, lo=1.0, hi=600.0),
        "serial_timeout_s": _Key(float, 0.5, lo=0.05, hi=10.0),
    },
    "gpio": {
        "enabled": _Key(bool, False),
        "green_led": _Key(int, 17, lo=0, hi=27),
        "red_led": _Key(int, 27, lo=0, hi=27),
        "buzzer": _Key(int, 22, lo=0, hi=27),
        "next_pins": _Key(list, [], check=_check_pins),
        "recall_pins": _Key(list, [], check=_check_pins),
        "bounce_ms": _Key(int, 50, lo=0, hi=1000),
        "mock_panel": _Key(str, ""),
    },
    "display": {
        "names": _Key(str, "first", choices=("full", "first", "none")),
        "sound": _Key(str, "voice", choices=SOUND_SETTINGS),
        "size": _Key(str, "auto", check=_check_size),
        "fps": _Key(int, 30, lo=1, hi=60),
        "overscan_percent": _Key(int, 3, lo=0, hi=10),
        "clips_dir": _Key(str, ""),
        "font": _Key(str, ""),
        "checkin_panel_seconds": _Key(float, 6.0, lo=1.0, hi=60.0),
        "call_seconds": _Key(float, 8.0, lo=2.0, hi=60.0),
        "voice_cache_mb": _Key(int, 32, lo=1, hi=4096),
        "voice_cache_days": _Key(int, 7, lo=1, hi=365),
        "health_file": _Key(str, "/run/antrean/display.json"),
        "framebuffer": _Key(str, "auto", choices=("auto", "software", "accelerated")),
    },
    "printer": {
        "kind": _Key(str, "none", choices=("none", "file", "serial", "network")),
        "device": _Key(str, ""),
        "baudrate": _Key(int, 9600, choices=SERIAL_BAUDRATES),
        "flow_control": _Key(str, "none", choices=("none", "rtscts", "xonxoff")),
        "host": _Key(str, "", check=_check_host),
        "port": _Key(int, 9100, lo=1, hi=65535),
        "width": _Key(int, 80, choices=(58, 80)),
        "status": _Key(str, "auto", choices=("auto", "none")),
        "status_timeout_s": _Key(float, 1.0, lo=0.1, hi=2.0),
        "timeout_s": _Key(float, 3.0, lo=0.5, hi=5.0),
        "retry_seconds": _Key(float, 5.0, lo=1.0, hi=300.0),
        "check_seconds": _Key(float, 30.0, lo=5.0, hi=3600.0),
        "max_age_minutes": _Key(int, 15, lo=1, hi=1440),
        "cut": _Key(bool, True),
        "logo": _Key(str, ""),
    },
    "estimate": {
        "default_minutes": _Key(float, 10.0, lo=0.5, hi=240.0),
        "minutes": _Key(dict, {}, check=_check_service_minutes),
        "recent_calls": _Key(int, 10, lo=3, hi=100),
        "idle_minutes": _Key(float, 30.0, lo=5.0, hi=480.0),
        "lateness_window_minutes": _Key(float, 60.0, lo=10.0, hi=480.0),
        "late_notice_minutes": _Key(float, 15.0, lo=1.0, hi=480.0),
        "history_days": _Key(int, 10, lo=0, hi=60),
    },
}

REQUIRED_SECTIONS = ("office", "storage", "trust")
# Keys whose value is a filesystem path: relative paths resolve against the config's folder.
PATH_KEYS = {("storage", "path"), ("server", "token_file"), ("server", "ca_file"),
             ("scanner", "port"), ("scanner", "device"), ("scanner", "frames_dir"),
             ("gpio", "mock_panel"), ("display", "clips_dir"),
             ("display", "font"), ("display", "health_file"), ("printer", "device"),
             ("printer", "logo")}
# Device paths are often stable links (udev's /dev/antrean-scanner, /dev/serial/by-id/...):
# they are made absolute but never resolved, or a replugged device would not be found.
DEVICE_KEYS = {("scanner", "port"), ("scanner", "device"), ("printer", "device")}
# The file printer's device when printer.device is empty: the kernel's usblp driver.
DEFAULT_PRINTER_FILE = "/dev/usb/lp0"


@dataclass(frozen=True)
class Section:
    """A validated config section; keys are attributes."""

    _values: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class Config:
    """The whole validated config. ``path`` is the file it came from."""

    path: str
    office: Section
    storage: Section
    trust: Section
    checkin: Section
    server: Section
    scanner: Section
    gpio: Section
    display: Section
    printer: Section
    estimate: Section
    # Every configured reader, each a validated ``[scanner]`` / ``[[scanner]]`` table with a
    # unique ``name``; ``scanner`` is the first of them (or the ``kind = "none"`` defaults).
    readers: tuple[Section, ...] = ()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.office.timezone)

    @property
    def trusted_keys(self) -> dict[str, bytes]:
        """Key id to raw 32-byte Ed25519 public key."""
        return {kid: base64.b64decode(v) for kid, v in self.trust.keys.items()}


def _type_name(kind) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            dict: "a table", list: "a list"}[kind]


def _validate_value(where: str, spec: _Key, value: Any) -> Any:
    kind = spec.kind
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{where} must be {_type_name(kind)}, not {value!r}")
    if spec.choices is not None and value not in spec.choices:
        allowed = ", ".join(repr(c) for c in spec.choices)
        raise ConfigError(f"{where} is {value!r}; allowed values: {allowed}")
    if spec.lo is not None and value < spec.lo or spec.hi is not None and value > spec.hi:
        raise ConfigError(f"{where} is {value!r}; it must be between {spec.lo} and {spec.hi}")
    if spec.check is not None:
        problem = spec.check(value)
        if problem:
            raise ConfigError(f"{where}: {problem}")
    return value


def _gpio_pins(gpio: Section) -> list[tuple[str, int]]:
    """Every pin the ``[gpio]`` section claims, with the key that claims it."""
    pins = [(f"gpio.{key}", getattr(gpio, key)) for key in ("green_led", "red_led", "buzzer")]
    for key in ("next_pins", "recall_pins"):
        pins += [(f"gpio.{key}[{i}]", pin) for i, pin in enumerate(getattr(gpio, key))]
    return pins


def _check_together(s: dict[str, Section], readers: list[tuple[str, Section]]) -> str | None:
    """Settings that each pass but contradict each other, or that a part would refuse when
    it starts: the problem, naming every key involved, or None."""
    gpio = s["gpio"]
    if gpio.enabled:
        owner: dict[int, str] = {}
        for key, pin in _gpio_pins(gpio):
            if pin in owner:
                return (f"{owner[pin]} and {key} both use BCM pin {pin}; give every LED, "
                        "buzzer and button its own pin")
            owner[pin] = key
        for key, reader in readers:
            if reader.kind == "serial" and os.path.basename(reader.port) in UART_DEVICES:
                for pin in UART_PINS:
                    if pin in owner:
                        return (f"{owner[pin]} uses BCM pin {pin}, but {key}.port "
                                f"{reader.port} is the UART on pins {UART_PINS[0]} and "
                                f"{UART_PINS[1]}; move the {owner[pin]} wire to another pin")
    elif gpio.mock_panel:
        return ("gpio.mock_panel is set but gpio.enabled is false, so no button would be "
                "pressed; set gpio.enabled = true or remove gpio.mock_panel")
    est = s["estimate"]
    slowest = max([est.default_minutes, *est.minutes.values()])
    if slowest >= est.idle_minutes:
        return (f"estimate.idle_minutes ({est.idle_minutes:g}) must be longer than every "
                f"estimate.default_minutes and estimate.minutes value (the longest is "
                f"{slowest:g}): a gap of idle_minutes between calls is taken as a break, not a "
                "slow service")
    return None


def _section_values(name: str, given: dict, keys: dict[str, _Key], path: str, base: Path,
                    label: str) -> dict[str, Any]:
    """One table's validated values; ``label`` names it in errors (``scanner[1]``)."""
    for key in given:
        if key not in keys:
            raise ConfigError(f"{path}: unknown key {label}.{key}; known keys in [{name}]: "
                              + ", ".join(keys))
    values = {}
    for key, spec in keys.items():
        where = f"{path}: {label}.{key}"
        if key not in given:
            if spec.required:
                raise ConfigError(f"{where} is missing; see docs/config.md")
            values[key] = spec.default
            continue
        value = _validate_value(where, spec, given[key])
        if (name, key) in DEVICE_KEYS and value:
            value = os.path.normpath(base / os.path.expanduser(value))
        elif (name, key) in PATH_KEYS and value:
            value = str((base / os.path.expanduser(value)).resolve())
        values[key] = value
    return values


def _scanner_tables(data: dict[str, Any], path: str) -> list[tuple[str, dict]]:
    """The ``[scanner]`` table or the ``[[scanner]]`` list, each with its label in errors."""
    given = data.get("scanner", {})
    if isinstance(given, dict):
        return [("scanner", given)]
    if not given:
        raise ConfigError(f"{path}: [[scanner]] is an empty list; add a reader table or "
                          "remove the key")
    for i, table in enumerate(given):
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: scanner[{i}] must be a table ([[scanner]])")
    return [(f"scanner[{i}]", table) for i, table in enumerate(given)]


def _reader_source(reader: dict[str, Any]) -> tuple[str, str] | None:
    """What a reader reads, as (key, value): two readers must never share it."""
    kind = reader["kind"]
    if kind == "serial":
        return "port", reader["port"]
    if kind == "keyboard":
        return "device", reader["device"]
    if kind == "camera":
        return "frames_dir", reader["frames_dir"] or "the Pi camera"
    if kind == "stdin":
        return "kind", "standard input"
    return None


def _name_readers(readers: list[tuple[str, dict[str, Any]]], path: str) -> None:
    """Give unnamed readers their kind as name (``serial``, or ``serial-1``, ``serial-2``
    when several of one kind are unnamed); refuse a name or a device used twice."""
    unnamed: dict[str, int] = {}
    for _, reader in readers:
        if not reader["name"]:
            unnamed[reader["kind"]] = unnamed.get(reader["kind"], 0) + 1
    numbered: dict[str, int] = {}
    for _, reader in readers:
        if not reader["name"]:
            kind = reader["kind"]
            if unnamed[kind] == 1:
                reader["name"] = kind
            else:
                numbered[kind] = numbered.get(kind, 0) + 1
                reader["name"] = f"{kind}-{numbered[kind]}"
    names: dict[str, str] = {}
    sources: dict[str, str] = {}
    for label, reader in readers:
        if reader["kind"] == NO_SCANNER and len(readers) > 1:
            raise ConfigError(f"{path}: {label}.kind is \"none\" in a list of readers; "
                              "remove that [[scanner]] table")
        other = names.setdefault(reader["name"], label)
        if other != label:
            raise ConfigError(f"{path}: {other} and {label} are both named "
                              f"{reader['name']!r}; give every reader its own scanner.name")
        if reader["kind"] == "serial" and not reader["port"]:
            raise ConfigError(f"{path}: {label}.port is empty but {label}.kind is "
                              "\"serial\"; set it to the scanner's device (for example "
                              "\"/dev/antrean-scanner\")")
        if reader["kind"] == "keyboard" and not reader["device"]:
            raise ConfigError(f"{path}: {label}.device is empty but {label}.kind is "
                              "\"keyboard\"; set it to the scanner's input device "
                              "(/dev/input/by-id/...-event-kbd)")
        source = _reader_source(reader)
        if source is None:
            continue
        key, value = source
        other = sources.setdefault(value, label)
        if other != label:
            what = f"{other}.{key} and {label}.{key} both read {value}" if key != "kind" \
                else f"{other} and {label} both read standard input"
            raise ConfigError(f"{path}: {what}; one device feeds one reader: remove one "
                              "table or point it at its own device")


def parse_config(data: dict[str, Any], path: str) -> Config:
    """Validate parsed TOML ``data``; ``path`` names the file in every error."""
    base = Path(path).resolve().parent
    sections: dict[str, Section] = {}
    for name in data:
        if name not in SCHEMA:
            known = ", ".join(f"[{s}]" for s in SCHEMA)
            raise ConfigError(f"{path}: unknown section [{name}]; known sections: {known}")
        if not isinstance(data[name], dict) and not (name == "scanner"
                                                     and isinstance(data[name], list)):
            raise ConfigError(f"{path}: [{name}] must be a table")
    for name in REQUIRED_SECTIONS:
        if name not in data:
            raise ConfigError(f"{path}: section [{name}] is missing; see docs/config.md")
    readers = [(label, _section_values("scanner", table, SCHEMA["scanner"], path, base, label))
               for label, table in _scanner_tables(data, path)]
    _name_readers(readers, path)
    for name, keys in SCHEMA.items():
        if name == "scanner":
            continue
        values = _section_values(name, data.get(name, {}), keys, path, base, name)
        if name == "printer":
            _check_printer(values, path)
        sections[name] = Section(values)
    configured = [(label, Section(values)) for label, values in readers
                  if values["kind"] != NO_SCANNER]
    problem = _check_together(sections, configured)
    if problem:
        raise ConfigError(f"{path}: {problem}")
    sections["scanner"] = configured[0][1] if configured else Section(readers[0][1])
    return Config(path=str(path), readers=tuple(section for _, section in configured),
                  **sections)


def _check_printer(printer: dict[str, Any], path: str) -> None:
    """Printer settings that only make sense together; a contradiction names both keys."""
    kind = printer["kind"]
    if kind == "network" and not printer["host"]:
        raise ConfigError(f"{path}: printer.kind = \"network\" needs printer.host (the "
                          "printer's IP address or name)")
    if kind == "serial" and not printer["device"]:
        raise ConfigError(f"{path}: printer.kind = \"serial\" needs printer.device (for "
                          "example \"/dev/ttyUSB0\" or a /dev/serial/by-id/ name)")
    if kind in ("file", "serial") and printer["host"]:
        raise ConfigError(f"{path}: printer.host is set but printer.kind = \"{kind}\" "
                          "uses printer.device; remove one of them")
    if kind == "network" and printer["device"]:
        raise ConfigError(f"{path}: printer.device is set but printer.kind = \"network\" "
                          "uses printer.host; remove one of them")
    if kind == "file" and not printer["device"]:
        printer["device"] = DEFAULT_PRINTER_FILE


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Read and validate the config at ``path`` (default: $ANTREAN_CONFIG, then /etc)."""
    path = str(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; copy antrean.example.toml "
                          "there or pass --config PATH") from None
    except PermissionError:
        raise ConfigError(f"config file {path} is not readable by this user; "
                          "check its owner and mode") from None
    except IsADirectoryError:
        raise ConfigError(f"config path {path} is a directory; pass the .toml file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e}); fix the file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    return parse_config(data, path)
