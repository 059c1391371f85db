"""A small process supervisor for the demo, the soak test and the service benchmarks.

On a Pi, systemd starts the three services; here the same processes are started the same way:
each child gets its own ``NOTIFY_SOCKET`` (so readiness is measured exactly as systemd sees
it), its own session (so a Ctrl-C reaches only the supervisor, which then stops everyone in
order), and ``PR_SET_PDEATHSIG`` (so nothing is left running even if the supervisor itself is
killed). Output is relayed line by line with the service's name in front.

Example::

    >>> import tempfile
    >>> ready_then_wait = ("from appliance.notify import SdNotify; import time; "
    ...                    "SdNotify().ready(); time.sleep(60)")
    >>> with Supervisor(tempfile.mkdtemp(), echo=None) as sup:
    ...     _ = sup.start("service", [sys.executable, "-c", ready_then_wait])
    ...     seconds = sup.wait_ready("service", timeout=30)      # READY=1, as systemd hears it
    ...     sup.children["service"].running()
    True
    >>> sup.children["service"].running()                       # closing stopped it
    False
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict
    proc: subprocess.Popen | None = None
    started: float = 0.0
    ready: float | None = None
    restarts: int = 0
    notify_path: str = ""
    lines: deque = field(default_factory=lambda: deque(maxlen=2000))
    messages: deque = field(default_factory=lambda: deque(maxlen=200))
    ready_event: threading.Event = field(default_factory=threading.Event)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    """Start, watch, kill, restart and stop child processes. ``close()`` stops them all."""

    def __init__(self, workdir: str | os.PathLike, *, echo=sys.stdout, watchdog_s: float = 0):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.echo = echo
        self.watchdog_s = watchdog_s
        self.children: dict[str, Child] = {}
        self._lock = threading.Lock()
        self._closed = False

    def say(self, name: str, text: str) -> None:
        if self.echo is not None:
            with self._lock:
                self.echo.write(f"[{name}] {text}\n")
                self.echo.flush()

    def start(self, name: str, argv: list[str], *, env: dict | None = None,
              stdin=subprocess.DEVNULL) -> Child:
        child = self.children.get(name) or Child(name, list(argv), dict(env or {}))
        self.children[name] = child
        self._spawn(child, stdin)
        return child

    def _spawn(self, child: Child, stdin=subprocess.DEVNULL) -> None:
        child.notify_path = str(self.workdir / f".notify-{child.name}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(child.notify_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(child.notify_path)
        env = dict(os.environ, **child.env, NOTIFY_SOCKET=child.notify_path,
                   PYTHONUNBUFFERED="1")
        if self.watchdog_s:
            env["WATCHDOG_USEC"] = str(int(self.watchdog_s * 1e6))
        child.ready = None
        child.ready_event.clear()
        child.started = time.monotonic()
        child.proc = subprocess.Popen(child.argv, env=env, stdin=stdin,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      start_new_session=True, preexec_fn=_die_with_parent)
        threading.Thread(target=self._read_notify, args=(child, sock), daemon=True,
                         name=f"notify-{child.name}").start()
        threading.Thread(target=self._relay, args=(child, child.proc), daemon=True,
                         name=f"relay-{child.name}").start()

    def _read_notify(self, child: Child, sock: socket.socket) -> None:
        proc = child.proc
        sock.settimeout(0.5)
        with sock:
            while proc.poll() is None and not self._closed:
                try:
                    data = sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                for line in data.decode("utf-8", "replace").splitlines():
                    child.messages.append(line)
                    if line == "READY=1" and child.ready is None:
                        child.ready = time.monotonic() - child.started
                        child.ready_event.set()

    def _relay(self, child: Child, proc: subprocess.Popen) -> None:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            child.lines.append(line)
            self.say(child.name, line)
        proc.stdout.close()

    def wait_ready(self, name: str, timeout: float = 30.0) -> float:
        """Seconds from spawn to READY=1; raises TimeoutError (with the child's last lines)."""
        child = self.children[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.ready_event.wait(0.05):
                return child.ready
            if child.proc.poll() is not None:
                break
        tail = "\n".join(list(child.lines)[-15:])
        raise TimeoutError(f"{name} did not report READY=1 (exit {child.proc.poll()}):\n{tail}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        child = self.children[name]
        if child.running():
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=10)

    def restart(self, name: str, *, env: dict | None = None, argv: list[str] | None = None,
                stdin=subprocess.DEVNULL) -> Child:
        child = self.children[name]
        self.kill(name, signal.SIGTERM)
        if env is not None:
            child.env = dict(env)
        if argv is not None:
            child.argv = list(argv)
        child.restarts += 1
        self._spawn(child, stdin)
        return child

    def stop(self, name: str, timeout: float = 10.0) -> int | None:
        child = self.children[name]
        if child.proc is None:
            return None
        if child.running():
            with contextlib.suppress(ProcessLookupError):
                child.proc.terminate()
            try:
                child.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.say(name, f"did not stop within {timeout:g} s; killing it")
                child.proc.kill()
                child.proc.wait()
        return child.proc.returncode

    def close(self) -> None:
        """Stop every child, newest first; safe to call twice."""
        if self._closed:
            return
        for name in reversed(list(self.children)):
            self.stop(name)
        self._closed = True
        for child in self.children.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(child.notify_path)

    def start_virtual_x(self, name: str = "xvfb", size: tuple[int, int] = (1920, 1080),
                        timeout: float = 30.0) -> str:
        """Start an in-memory X server (Xvfb) as a child; returns its ``DISPLAY`` (``:N``).

        The x11 video driver's double, as a pty is the serial scanner's: Xvfb picks a free
        display number and prints it once it accepts clients (``-displayfd``).
        """
        child = self.start(name, ["Xvfb", "-displayfd", "1", "-nolisten", "tcp", "-screen",
                                  "0", f"{size[0]}x{size[1]}x24"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(child.lines):
                if line.strip().isdigit():
                    return f":{line.strip()}"
            if not child.running():
                break
            time.sleep(0.02)
        raise TimeoutError(f"Xvfb did not start: {list(child.lines)[-5:]}")

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
