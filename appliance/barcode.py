"""What a scanned ticket barcode holds (central-api.md section 2), parsed as hostile input.

A payload is either a plain booking code or a signed ``AT1.<kid>.<payload>.<sig>`` ticket.
Scanners may add an AIM symbology prefix and a line terminator; everything else is untrusted:
lengths are bounded before any work, and non-printable bytes make a payload unreadable.

Example::

    >>> parse_payload(b"]Q1k7q2m9xa\\r\\n")
    PlainCode(booking_code='K7Q2M9XA')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from appliance.keys import SignatureError, b64url_decode, b64url_encode, verify

MAX_PAYLOAD_CHARS = 2048
AIM_PREFIX_RE = re.compile(r"^\][A-Za-z][0-9A-Za-z]")
PLAIN_RE = re.compile(r"^[A-Z0-9]{6,16}$")
SIGNED_RE = re.compile(r"^AT1\.([A-Za-z0-9_-]{1,32})\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$")
TICKET_FIELDS = {"b", "o", "s", "e", "v", "n", "p"}


@dataclass(frozen=True)
class PlainCode:
    booking_code: str


@dataclass(frozen=True)
class SignedBarcode:
    """A structurally valid AT1 ticket; ``signature_ok`` says whether it verified."""

    booking_code: str
    office_id: str
    slot_start: float
    slot_end: float
    service: str
    name: str
    priority: bool
    keyid: str
    signature_ok: bool


@dataclass(frozen=True)
class Unreadable:
    why: str


Parsed = PlainCode | SignedBarcode | Unreadable


def normalise(payload: bytes | str) -> str | None:
    """Strip the AIM prefix, line terminators and surrounding blanks; None if hostile."""
    if isinstance(payload, bytes):
        if len(payload) > MAX_PAYLOAD_CHARS + 8:
            return None
        try:
            text = payload.decode("ascii")
        except UnicodeDecodeError:
            return None
    else:
        if len(payload) > MAX_PAYLOAD_CHARS + 8:
            return None
        text = payload
    text = text.strip(" \t\r\n")
    text = AIM_PREFIX_RE.sub("", text, count=1).strip(" ")
    if not text or len(text) > MAX_PAYLOAD_CHARS or not text.isascii() or not text.isprintable():
        return None
    return text


def _parse_signed(m: re.Match, trusted: dict[str, bytes]) -> Parsed:
    keyid, payload_b64, sig_b64 = m.groups()
    try:
        fields = json.loads(b64url_decode(payload_b64).decode("utf-8"))
        signature = b64url_decode(sig_b64)
    except (ValueError, UnicodeDecodeError, RecursionError):  # "[[[[..." nests too deep
        return Unreadable("the signed ticket's payload is not base64url JSON")
    if not isinstance(fields, dict) or not TICKET_FIELDS <= fields.keys():
        return Unreadable("the signed ticket lacks required fields")
    code = fields["b"]
    if not isinstance(code, str) or not PLAIN_RE.fullmatch(code.upper()):
        return Unreadable("the signed ticket's booking code is malformed")
    try:
        start = datetime.fromisoformat(fields["s"])
        end = datetime.fromisoformat(fields["e"])
    except (TypeError, ValueError):
        return Unreadable("the signed ticket's slot times cannot be parsed")
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        return Unreadable("the signed ticket's slot times are invalid")
    if not all(isinstance(fields[k], str) for k in ("o", "v", "n")) or fields["p"] not in (0, 1):
        return Unreadable("the signed ticket has fields of the wrong type")
    signed_bytes = m.string[: m.start(3) - 1].encode("ascii")
    try:
        verify(signed_bytes, keyid, signature, trusted)
        ok = len(signature) == 64
    except SignatureError:
        ok = False
    return SignedBarcode(code.upper(), fields["o"], start.timestamp(), end.timestamp(),
                        fields["v"], fields["n"][:200], bool(fields["p"]), keyid, ok)


def parse_payload(payload: bytes | str, trusted: dict[str, bytes] | None = None) -> Parsed:
    """Classify one scanned payload. Never raises on any input."""
    text = normalise(payload)
    if text is None:
        return Unreadable("not printable ASCII of a sane length")
    m = SIGNED_RE.fullmatch(text)
    if m:
        return _parse_signed(m, trusted or {})
    code = text.upper()
    if PLAIN_RE.fullmatch(code):
        return PlainCode(code)
    return Unreadable("neither a booking code nor a signed ticket")


def sign_barcode(key, booking_code: str, office_id: str, slot_start: str, slot_end: str,
                service: str, name: str, priority: bool) -> str:
    """An ``AT1`` ticket as the booking app prints it: the inverse of ``parse_payload``.

    ``key`` is an ``appliance.keys.SigningKey``; times are RFC 3339 strings with an offset.
    """
    fields = {"b": booking_code, "o": office_id, "s": slot_start, "e": slot_end, "v": service,
              "n": name, "p": int(priority)}
    head = f"AT1.{key.keyid}.{b64url_encode(json.dumps(fields, separators=(',', ':')).encode())}"
    return f"{head}.{b64url_encode(key.sign(head.encode('ascii')))}"
