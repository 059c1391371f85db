"""TLS to the central server: chain and host name always verified, dates only by a clock known
to be right.

A Raspberry Pi has no real-time clock. Booted without NTP (a dead RTC battery, a government
network that blocks NTP) it runs days or months behind, and OpenSSL would then refuse the
central server's certificate as "not yet valid" (or, ahead, "expired"): the appliance could
never read the server's ``Date``, the one thing that corrects its clock, nor pull today's
schedule, and would stay wrong for good. So while the system clock is not NTP-synchronised
(:func:`appliance.clock.system_clock_synced`, through a shared :class:`~appliance.clock.
NtpState`), the TLS context keeps verifying the chain against ``server.ca_file`` (or the
default CA bundle) and the host name, and only skips the validity dates (OpenSSL's
``X509_V_FLAG_NO_CHECK_TIME``). Once this boot has a time from the central server, the
server certificate's own dates are judged by that time instead (Python cannot give OpenSSL
a verification time, so that check runs on the verified certificate right after the
handshake, before any request is sent). With the clock synchronised, the usual full
verification applies. docs/decisions.md says what is accepted and why.

:class:`CertificateAdapter` is the requests adapter that brings the policy's context to
urllib3 (and keeps urllib3 from loading the bundle into it again per connection);
:func:`explain_tls_error` turns an ``SSLError`` into what failed and what to do.

Example: dates are judged only by a synchronised clock::

    >>> policy = CertificatePolicy(lambda: True)
    >>> bool(policy.context(True).verify_flags & NO_CHECK_TIME)
    False
    >>> policy = CertificatePolicy(lambda: False)
    >>> bool(policy.context(True).verify_flags & NO_CHECK_TIME)
    True
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable

import urllib3
from cryptography import x509
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.util.ssl_ import create_urllib3_context

from appliance.clock import MAX_SKEW_S
from appliance.errors import AntreanError
from sync.deadline import DeadlineAdapter, TrackedHTTPSConnection

log = logging.getLogger("antrean.sync")

# OpenSSL's X509_V_FLAG_NO_CHECK_TIME: the ssl module has no name for it, and passes the bits
# of SSLContext.verify_flags through to X509_VERIFY_PARAM_set_flags as they are.
NO_CHECK_TIME = 0x200000
# The server's time is known to a second or so; its certificate was issued by a clock that
# may differ from the server's by a few minutes.
SERVER_TIME_SLACK_S = MAX_SKEW_S
# OpenSSL's verify codes (X509_V_ERR_*) this module tells apart.
NOT_YET_VALID, EXPIRED = 9, 10
UNKNOWN_ISSUER = frozenset({2, 18, 19, 20, 21})
NAME_MISMATCH = frozenset({62, 63, 64})


class CertificateTrustError(AntreanError, OSError):
    """The CA bundle to verify the server with cannot be used (missing, unreadable, no PEM)."""


class ServerTimeRefusal(ssl.SSLCertVerificationError):
    """The server certificate's dates do not hold by the central server's own time."""

    def __init__(self, code: int, message: str):
        super().__init__(1, message)
        self.verify_code = code
        self.verify_message = message
        self.reason = "CERTIFICATE_VERIFY_FAILED"

    def __str__(self) -> str:
        return self.verify_message


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


class CertificatePolicy:
    """Which TLS context the central client uses, decided per connection; one per process.

    ``clock_synced`` answers whether NTP has set the clock (cache it: it is asked for every
    connection); ``server_now`` gives the central server's time known this boot, or None.
    Contexts are made once per CA bundle and policy and shared by every connection and thread.
    """

    def __init__(self, clock_synced: Callable[[], bool],
                 server_now: Callable[[], float | None] | None = None):
        self.clock_synced = clock_synced
        self.server_now = server_now or (lambda: None)
        self._contexts: dict[tuple[str, bool], ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self._dates_checked: bool | None = None     # the last decision (announced in the log)

    @property
    def dates_checked(self) -> bool:
        """The last decision :meth:`checks_dates` made (what the last connection used)."""
        return bool(self._dates_checked)

    def checks_dates(self) -> bool:
        """True while certificate dates are checked by the system clock (it is synchronised).

        Logs each change once: not per request."""
        synced = bool(self.clock_synced())
        with self._lock:
            before, self._dates_checked = self._dates_checked, synced
        if synced == before or (synced and before is None):
            return synced
        if synced:
            log.info("TLS: the system clock is NTP-synchronised again; the central server's "
                     "certificate dates are checked by it")
        else:
            log.warning("TLS: the system clock is not NTP-synchronised, so certificate dates "
                        "are not checked by it (a wrong clock would refuse a valid "
                        "certificate and never learn the time); the chain to the trusted CAs "
                        "and the host name are still verified, and the server certificate's "
                        "dates are judged by the central server's time once it is known")
        return synced

    def context(self, verify: bool | str) -> ssl.SSLContext:
        """The context for a request with requests' ``verify`` (True: the default CA bundle;
        a path: that bundle or folder only)."""
        bundle = DEFAULT_CA_BUNDLE_PATH if verify is True else str(verify)
        dated = self.checks_dates()
        with self._lock:
            ctx = self._contexts.get((bundle, dated))
            if ctx is None:
                ctx = self._contexts[(bundle, dated)] = self._make(bundle, dated)
        return ctx

    def _make(self, bundle: str, dated: bool) -> ssl.SSLContext:
        ctx = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
        ctx.check_hostname = True
        try:
            if os.path.isdir(bundle):
                ctx.load_verify_locations(capath=bundle)
            else:
                ctx.load_verify_locations(cafile=bundle)
        except FileNotFoundError:
            raise CertificateTrustError(f"the CA bundle {bundle} does not exist; fix "
                                        "server.ca_file (or empty it for the public CAs)") \
                from None
        except (OSError, ssl.SSLError) as e:
            reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or str(e)
            raise CertificateTrustError(f"the CA bundle {bundle} cannot be used ({reason}); "
                                        "server.ca_file must be a readable PEM file of CA "
                                        "certificates") from None
        if not dated:
            ctx.verify_flags |= NO_CHECK_TIME
            ctx.judge_server_dates = self.judge_by_server_time
        return ctx

    def judge_by_server_time(self, der: bytes) -> None:
        """Refuse a verified server certificate whose dates do not hold by the server's time.

        Runs right after the handshake of a connection made without date checks, before the
        request (and its token) is sent. Without a server time this boot there is nothing
        better to judge by, and the certificate stands on its chain and name alone.
        """
        now = self.server_now()
        if now is None:
            return
        cert = x509.load_der_x509_certificate(der)
        start = cert.not_valid_before_utc.timestamp()
        end = cert.not_valid_after_utc.timestamp()
        if now + SERVER_TIME_SLACK_S < start:
            raise ServerTimeRefusal(NOT_YET_VALID, f"certificate is not yet valid by the "
                                    f"central server's own time ({_utc(now)}; valid from "
                                    f"{_utc(start)})")
        if now - SERVER_TIME_SLACK_S > end:
            raise ServerTimeRefusal(EXPIRED, f"certificate has expired by the central "
                                    f"server's own time ({_utc(now)}; valid until "
                                    f"{_utc(end)})")


class _ServerTimeCheckedConnection(TrackedHTTPSConnection):
    """An https connection that, on a context without date checks, lets the policy judge the
    server certificate's dates by the server's time before the connection is used."""

    def connect(self) -> None:
        super().connect()
        judge = getattr(self.ssl_context, "judge_server_dates", None)
        if judge is None:
            return
        try:
            judge(self.sock.getpeercert(binary_form=True))
        except BaseException:
            self.close()
            raise


class _ServerTimeCheckedPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _ServerTimeCheckedConnection


class CertificateAdapter(DeadlineAdapter):
    """requests' adapter for https with the :class:`CertificatePolicy`'s contexts.

    requests would hand urllib3 the CA bundle as ``ca_certs``, and urllib3 would then build a
    default context per connection, or load the bundle into a given one each time; here the
    policy's context holds the trust and goes into the pool key, so a change of policy (NTP
    came) gets new connections with the new context. ``verify=False`` keeps its meaning.
    """

    def __init__(self, policy: CertificatePolicy):
        self.policy = policy
        super().__init__()

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme["https"] = _ServerTimeCheckedPool

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert)
        if host_params["scheme"] == "https" and verify is not False:
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs.pop("ca_cert_dir", None)
            pool_kwargs["ssl_context"] = self.policy.context(verify)
        return host_params, pool_kwargs

    def cert_verify(self, conn, url, verify, cert) -> None:
        super().cert_verify(conn, url, verify, cert)
        if url.lower().startswith("https") and verify is not False:
            conn.ca_certs = conn.ca_cert_dir = None     # the context holds the trust


def _ssl_error_in(e: BaseException) -> ssl.SSLError | None:
    """The ``ssl.SSLError`` under requests' and urllib3's wrappers, if any."""
    seen: set[int] = set()
    stack: list = [e]
    while stack:
        x = stack.pop()
        if not isinstance(x, BaseException) or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, ssl.SSLError):
            return x
        stack += [x.__cause__, x.__context__, getattr(x, "reason", None), *x.args]
    return None


def explain_tls_error(e: BaseException, *, host: str, ca_file: str, dates_checked: bool,
                      now: float | None = None) -> str:
    """What failed in a TLS handshake with the central server, and what to do, in one line.

    ``dates_checked`` is whether the system clock judged the certificate's dates (it was
    NTP-synchronised); ``now`` the system clock (default: now).
    """
    err = _ssl_error_in(e)
    trust = f"server.ca_file {ca_file}" if ca_file else "the public CAs (server.ca_file is empty)"
    if isinstance(err, ServerTimeRefusal):
        return (f"TLS: the server's {err.verify_message}; the server's certificate is wrong "
                "for its own clock: its operators must renew or fix it")
    code = getattr(err, "verify_code", None)
    detail = getattr(err, "verify_message", None) or getattr(err, "reason", None) or (
        str(err) if err is not None else type(e).__name__)
    if code in (NOT_YET_VALID, EXPIRED):
        what = "is not yet valid" if code == NOT_YET_VALID else "has expired"
        clock = _utc(time.time() if now is None else now)
        if not dates_checked:
            return (f"TLS: the server's certificate {what} by this device's clock ({clock}); "
                    "the clock is not NTP-synchronised")
        return (f"TLS: the server's certificate {what} by this device's clock ({clock}), "
                "which NTP has synchronised: the server's operators must fix the certificate "
                "(or this device's NTP source is wrong)")
    if code in UNKNOWN_ISSUER:
        return (f"TLS: the server's certificate is not signed by a CA this device trusts "
                f"({trust}): {detail}; check server.ca_file")
    if code in NAME_MISMATCH:
        return (f"TLS: the server's certificate is not for {host} ({detail}); check the host "
                "name in server.url")
    if code is not None:
        return f"TLS: the server's certificate was refused ({detail}); checked against {trust}"
    if detail == "WRONG_VERSION_NUMBER":
        return ("TLS handshake failed (WRONG_VERSION_NUMBER): the server does not speak TLS "
                "on that port; check server.url")
    return f"TLS handshake failed ({detail})"

