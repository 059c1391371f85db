"""Fuzz targets shared by the hypothesis tests and the atheris runner (``make soak``).

Each target asserts the contract of its parser: a result of the documented type, or the one
documented exception; anything else is a bug.
"""

from __future__ import annotations

import os
import sys

from conftest import KEY, write_config

from appliance.barcode import PlainCode, SignedBarcode, Unreadable, parse_payload
from appliance.config import load_config
from appliance.errors import ScheduleRejected
from appliance.schedule import Schedule, verify_schedule

# Hypothesis examples per property: a few hundred in `make test`, thousands in `make soak`.
FUZZ_EXAMPLES = int(os.environ.get("ANTREAN_FUZZ_EXAMPLES", "300"))
_CONFIG = None
TRUSTED = {"k2026a": KEY.public_raw}


def _config():
    global _CONFIG
    if _CONFIG is None:
        import tempfile
        from pathlib import Path

        folder = Path(tempfile.mkdtemp(prefix="antrean-fuzz-"))
        _CONFIG = load_config(write_config(folder / "c.toml", folder / "a.db"))
    return _CONFIG


def check_schedule_body(body: bytes, header: str | None) -> None:
    try:
        result = verify_schedule(body, header, _config())
    except ScheduleRejected as e:
        assert str(e) and "\n" not in str(e)
        return
    assert isinstance(result, Schedule)


def check_ticket_payload(data: bytes) -> None:
    assert isinstance(parse_payload(data, TRUSTED), PlainCode | SignedBarcode | Unreadable)


def _atheris_main() -> None:  # pragma: no cover - run by `make soak` when atheris exists
    import atheris

    def target(data: bytes) -> None:
        if data[:1] == b"S":
            check_schedule_body(data[1:], KEY.sign_header(data[1:]))
        else:
            check_ticket_payload(data)

    _config()
    atheris.instrument_all()  # coverage feedback for everything loaded: the parsers included
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    _atheris_main()
