"""A throwaway certificate authority, so tests and demos can speak real TLS on loopback.

An office talks ``https`` to the central server and may trust a private CA
(``server.ca_file``). To test exactly that, the reference server needs a certificate signed by
a CA the appliance is told to trust, with the addresses it is reached at as subject
alternative names and a validity window of the test's choosing: one that is not yet valid or
already expired by the local clock is how a wrong clock is made visible.

The certificates carry what OpenSSL 3's strict verification (``VERIFY_X509_STRICT``)
requires: the CA has critical ``basicConstraints CA:TRUE`` and ``keyUsage keyCertSign``, the
server certificate has the names as ``subjectAltName``, ``extendedKeyUsage serverAuth``, and
both have subject and authority key identifiers. Files are PEM; private keys are mode 0600.

Example::

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> ca = make_ca(folder)
    >>> pair = issue_server_certificate(ca, folder, ["127.0.0.1", "localhost"])
    >>> oct(os.stat(pair.key).st_mode & 0o777), os.path.basename(pair.cert)
    ('0o600', 'server.pem')

From a shell (``python -m devtools.throwaway_ca --help``)::

    $ python -m devtools.throwaway_ca /tmp/tls --name 127.0.0.1 --name localhost
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
DEFAULT_DAYS = 30
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DNS_NAME_RE = re.compile(rf"^(?:\*\.)?(?:{_LABEL}\.)*{_LABEL}$")   # a wildcard only leftmost


class CertificateError(ValueError):
    """A name or validity window a certificate cannot have."""


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA's certificate and key, in memory and as the PEM files written for it."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: str
    key_path: str


@dataclass(frozen=True)
class ServerCertificate:
    """Paths of a server certificate (PEM) and its private key (PEM, mode 0600)."""

    cert: str
    key: str


def _window(not_before: datetime | None, not_after: datetime | None) -> tuple[datetime, datetime]:
    start = not_before or datetime.now(UTC) - timedelta(hours=1)
    end = not_after or start + timedelta(days=DEFAULT_DAYS)
    if start.tzinfo is None or end.tzinfo is None:
        raise CertificateError("validity times must be timezone-aware (e.g. datetime.now(UTC))")
    if end <= start:
        raise CertificateError(f"the validity ends ({end.isoformat()}) before it starts "
                               f"({start.isoformat()})")
    return start, end


def _write(path: str, data: bytes, mode: int) -> str:
    """Write ``data`` to ``path`` atomically, created with ``mode`` (never wider first)."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        os.unlink(tmp)
        raise
    os.replace(tmp, path)
    return path


def _save(folder: str, stem: str, cert: x509.Certificate, key) -> tuple[str, str]:
    os.makedirs(folder, exist_ok=True)
    key_path = _write(os.path.join(folder, f"{stem}-key.pem"), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), 0o600)
    cert_path = _write(os.path.join(folder, f"{stem}.pem"),
                       cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def make_ca(folder: str, *, common_name: str = "Antrean throwaway test CA",
            not_before: datetime | None = None, not_after: datetime | None = None,
            stem: str = "ca") -> CertificateAuthority:
    """A new CA (P-256 key) valid from ``not_before`` (default: an hour ago) to ``not_after``
    (default: 30 days later); writes ``STEM.pem`` and ``STEM-key.pem`` into ``folder``."""
    start, end = _window(not_before, not_after)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = _save(folder, stem, cert, key)
    return CertificateAuthority(cert, key, cert_path, key_path)


def subject_alt_names(names: list[str]) -> list[x509.GeneralName]:
    """Each name as an IP address SAN when it is one, else as a DNS name SAN."""
    if not names:
        raise CertificateError("a server certificate needs at least one DNS name or IP address")
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
            continue
        except ValueError:
            pass
        if not DNS_NAME_RE.match(name):
            raise CertificateError(f"{name!r} is neither an IP address nor a DNS name")
        out.append(x509.DNSName(name))
    return out


def issue_server_certificate(ca: CertificateAuthority, folder: str, names: list[str], *,
                             not_before: datetime | None = None,
                             not_after: datetime | None = None,
                             stem: str = "server") -> ServerCertificate:
    """A TLS server certificate for ``names`` (DNS names or IP addresses) signed by ``ca``,
    valid from ``not_before`` (default: an hour ago) to ``not_after`` (default: 30 days
    later); writes ``STEM.pem`` and ``STEM-key.pem`` into ``folder``.

    The window may lie outside the CA's own: that is how a test makes a certificate that is
    not yet valid or expired while its chain is otherwise sound.
    """
    sans = subject_alt_names(names)
    start, end = _window(not_before, not_after)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(ca.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ca_ski), critical=False)
            .sign(ca.key, hashes.SHA256()))
    cert_path, key_path = _save(folder, stem, cert, key)
    return ServerCertificate(cert_path, key_path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m devtools.throwaway_ca",
        description="Make a throwaway CA and a server certificate signed by it, for testing "
                    "only: ca.pem (give it to the appliance as server.ca_file), server.pem and "
                    "server-key.pem (give them to `antrean devserver --tls-cert --tls-key`).")
    p.add_argument("folder", help="where the PEM files go (made if missing)")
    p.add_argument("--name", action="append", required=True, metavar="NAME",
                   help="a DNS name or IP address the server is reached at (repeat)")
    p.add_argument("--start-hours", type=float, default=-1.0, metavar="H",
                   help="validity starts H hours from now (default -1: an hour ago)")
    p.add_argument("--days", type=float, default=float(DEFAULT_DAYS),
                   help=f"validity length in days (default {DEFAULT_DAYS})")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    start = datetime.now(UTC) + timedelta(hours=args.start_hours)
    try:
        end = start + timedelta(days=args.days)
        subject_alt_names(args.name)       # every mistake before anything is written
        _window(start, end)
        ca = make_ca(args.folder, not_before=start, not_after=end)
        pair = issue_server_certificate(ca, args.folder, args.name, not_before=start,
                                        not_after=end)
    except (CertificateError, OverflowError) as e:
        print(f"throwaway_ca: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"throwaway_ca: cannot write into {args.folder}: {e.strerror or e}",
              file=sys.stderr)
        return 1
    print(f"CA {ca.cert_path}, server certificate {pair.cert}, key {pair.key}; valid "
          f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC for {', '.join(args.name)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
