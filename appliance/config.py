"""The appliance config: one strict TOML file, validated before anything starts.

Strict like Klipper's: an unknown section or key, a wrong type or an out-of-range value is a
``ConfigError`` naming the key and the file, so a typo never silently falls back to a default.
Names are fixed by the installer contract (docs/config.md documents every key).

Example::

    >>> cfg = load_config("/etc/antrean/antrean.toml")   # doctest: +SKIP
    >>> cfg.office.timezone
    'Asia/Makassar'
"""

from __future__ import annotations

import base64
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.errors import ConfigError

DEFAULT_CONFIG_PATH = "/etc/antrean/antrean.toml"
CONFIG_ENV = "ANTREAN_CONFIG"

KEY_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
OFFICE_ID_RE = re.compile(r"^[A-Z0-9_-]{1,16}$")
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
SERIAL_BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


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


def _check_url(value: str) -> str | None:
    if not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
        return f"{value!r} is not an http(s) URL"
    return None


def _check_size(value: str) -> str | None:
    if value == "auto" or re.match(r"^[1-9][0-9]{2,4}x[1-9][0-9]{2,4}$", value):
        return None
    return f"{value!r} is not \"auto\" or WIDTHxHEIGHT (for example \"1920x1080\")"


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


def _check_pins(value: list) -> str | None:
    if not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 27 for p in value):
        return "must be a list of BCM GPIO numbers 0-27"
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
        "read_timeout_s": _Key(float, 20.0, lo=1.0, hi=300.0),
        "ca_file": _Key(str, ""),
    },
    "scanner": {
        "kind": _Key(str, "none", choices=("serial", "camera", "keyboard", "stdin", "none")),
        "port": _Key(str, "/dev/antrean-scanner"),
        "baudrate": _Key(int, 9600, choices=SERIAL_BAUDRATES),
        "decoder": _Key(str, "zxing", choices=("zxing", "pyzbar")),
        "device": _Key(str, ""),
        "camera_width": _Key(int, 640, lo=160, hi=4056),
        "camera_height": _Key(int, 480, lo=120, hi=3040),
        "camera_fps": _Key(int, 15, lo=1, hi=60),
        "frames_dir": _Key(str, ""),
        "repeat_seconds": _Key(float, 3.0, lo=0.0, hi=600.0),
        "keypad_timeout_s": _Key(float, 20.0, lo=1.0, hi=600.0),
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
        "sound": _Key(str, "voice", choices=("off", "chime", "voice")),
        "size": _Key(str, "auto", check=_check_size),
        "fps": _Key(int, 30, lo=1, hi=60),
        "overscan_percent": _Key(int, 3, lo=0, hi=10),
        "clips_dir": _Key(str, ""),
        "font": _Key(str, ""),
        "checkin_panel_seconds": _Key(float, 6.0, lo=1.0, hi=60.0),
        "call_seconds": _Key(float, 8.0, lo=2.0, hi=60.0),
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
             ("display", "font")}


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
    estimate: Section

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


def parse_config(data: dict[str, Any], path: str) -> Config:
    """Validate parsed TOML ``data``; ``path`` names the file in every error."""
    base = Path(path).resolve().parent
    sections: dict[str, Section] = {}
    for name in data:
        if name not in SCHEMA:
            known = ", ".join(f"[{s}]" for s in SCHEMA)
            raise ConfigError(f"{path}: unknown section [{name}]; known sections: {known}")
        if not isinstance(data[name], dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
    for name in REQUIRED_SECTIONS:
        if name not in data:
            raise ConfigError(f"{path}: section [{name}] is missing; see docs/config.md")
    for name, keys in SCHEMA.items():
        given = data.get(name, {})
        for key in given:
            if key not in keys:
                raise ConfigError(f"{path}: unknown key {name}.{key}; known keys in [{name}]: "
                                  + ", ".join(keys))
        values = {}
        for key, spec in keys.items():
            where = f"{path}: {name}.{key}"
            if key not in given:
                if spec.required:
                    raise ConfigError(f"{where} is missing; see docs/config.md")
                values[key] = spec.default
                continue
            value = _validate_value(where, spec, given[key])
            if (name, key) in PATH_KEYS and value:
                value = str((base / os.path.expanduser(value)).resolve())
            values[key] = value
        sections[name] = Section(values)
    _check_together(sections, path)
    return Config(path=str(path), **sections)


def _check_together(sections: dict[str, Section], path: str) -> None:
    """Settings that are each in range but contradict each other, refused together."""
    est = sections["estimate"]
    slowest = max([est.default_minutes, *est.minutes.values()])
    if slowest >= est.idle_minutes:
        raise ConfigError(
            f"{path}: estimate.idle_minutes ({est.idle_minutes:g}) must be longer than every "
            f"estimate.default_minutes and estimate.minutes value (the longest is {slowest:g}):"
            " a gap of idle_minutes between calls is taken as a break, not a slow service")


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
