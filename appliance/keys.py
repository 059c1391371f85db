"""Ed25519 keys and signatures for schedules and signed tickets (via ``cryptography``).

A key file is a small TOML document holding the key id and the raw private key in base64;
it is written with mode 0600 and never overwritten. Signatures travel as the header value
``keyid=<kid>, sig=<base64url>`` (central-api.md section 1), the same text that sits in a
``FILE.json.sig`` file beside an offline schedule.

Example::

    >>> key = generate_key("k2026a")
    >>> header = key.sign_header(b"{}")
    >>> verify_header(b"{}", header, {"k2026a": key.public_raw})
    'k2026a'
"""

from __future__ import annotations

import base64
import os
import re
import tomllib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from appliance.config import KEY_ID_RE
from appliance.errors import KeyFileError

_HEADER_RE = re.compile(r"^\s*keyid=([A-Za-z0-9_-]{1,32})\s*,\s*sig=([A-Za-z0-9_-]+={0,2})\s*$")


class SignatureError(ValueError):
    """A signature is missing, malformed, made by an untrusted key, or wrong."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raises ValueError on anything else."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", text):
        raise ValueError("not base64url")
    text = text.rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SigningKey:
    """A private Ed25519 key with its key id."""

    keyid: str
    private: Ed25519PrivateKey

    @property
    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def public_b64(self) -> str:
        """The form the config's ``[trust] keys`` table expects."""
        return base64.b64encode(self.public_raw).decode("ascii")

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)

    def sign_header(self, body: bytes) -> str:
        return format_header(self.keyid, self.sign(body))


def generate_key(keyid: str) -> SigningKey:
    if not KEY_ID_RE.match(keyid):
        raise KeyFileError(f"key id {keyid!r} must be 1-32 characters of A-Z a-z 0-9 _ -")
    return SigningKey(keyid, Ed25519PrivateKey.generate())


def write_key_file(key: SigningKey, path: str) -> None:
    """Write ``key`` to ``path`` (mode 0600); refuses to overwrite an existing file."""
    raw = key.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    text = (
        "# Antrean Ed25519 signing key. Keep it secret: whoever holds it can sign schedules\n"
        "# and tickets that every appliance trusting the key id below will accept.\n"
        f'keyid = "{key.keyid}"\n'
        f'private_key = "{base64.b64encode(raw).decode()}"\n'
        f'public_key = "{key.public_b64}"\n'
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; choose another --out path "
                           "(an existing key is never overwritten)") from None
    except OSError as e:
        raise KeyFileError(f"cannot create key file {path}: {e.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def load_or_create_key(path: str, keyid: str) -> tuple[SigningKey, bool]:
    """The key at ``path``, made (mode 0600) with ``keyid`` first if missing; (key, made)."""
    if not os.path.exists(path):
        write_key_file(generate_key(keyid), path)
        return load_key_file(path), True
    return load_key_file(path), False


def load_key_file(path: str) -> SigningKey:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist; make one with "
                           "`antrean keygen --out PATH`") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise KeyFileError(f"key file {path} cannot be read ({e}); "
                           "it must be a file written by `antrean keygen`") from None
    keyid, priv = data.get("keyid"), data.get("private_key")
    if not isinstance(keyid, str) or not KEY_ID_RE.match(keyid) or not isinstance(priv, str):
        raise KeyFileError(f"key file {path} lacks a valid keyid and private_key; "
                           "it must be a file written by `antrean keygen`")
    try:
        raw = base64.b64decode(priv, validate=True)
        private = Ed25519PrivateKey.from_private_bytes(raw)
    except ValueError:
        raise KeyFileError(f"key file {path}: private_key is not base64 of a raw 32-byte "
                           "Ed25519 key") from None
    return SigningKey(keyid, private)


def format_header(keyid: str, signature: bytes) -> str:
    return f"keyid={keyid}, sig={b64url_encode(signature)}"


def parse_header(value: str | None) -> tuple[str, bytes]:
    """Split ``keyid=<kid>, sig=<base64url>`` into the key id and the raw signature."""
    if not value:
        raise SignatureError("the signature is missing")
    m = _HEADER_RE.match(value)
    if not m:
        raise SignatureError("the signature is not of the form 'keyid=<kid>, sig=<base64url>'")
    sig = b64url_decode(m.group(2))
    if len(sig) != 64:
        raise SignatureError("the signature is not 64 bytes long")
    return m.group(1), sig


def verify(data: bytes, keyid: str, signature: bytes, trusted: dict[str, bytes]) -> None:
    """Raise ``SignatureError`` unless ``signature`` over ``data`` verifies with ``keyid``."""
    raw = trusted.get(keyid)
    if raw is None:
        raise SignatureError(f"key id {keyid!r} is not in the config's [trust] keys")
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, data)
    except InvalidSignature:
        raise SignatureError(f"the signature does not verify with key {keyid!r}") from None


def verify_header(body: bytes, header: str | None, trusted: dict[str, bytes]) -> str:
    """Verify a ``keyid=..., sig=...`` header over ``body``; returns the key id."""
    keyid, sig = parse_header(header)
    verify(body, keyid, sig, trusted)
    return keyid
