"""One QEMU virtual machine of the system test: boot, run commands, screenshots, power cuts.

QEMU runs in its own process group with the parent-death signal set, so it dies with the
test process whatever ends it (failure, Ctrl-C, SIGKILL of pytest); ``close()`` kills the
group and waits. The machine is controlled only through QEMU's own interfaces:

- QMP (the monitor): ``screendump`` of the virtio-gpu scanout, ``query-chardev``;
- the QEMU guest agent inside the guest (virtio-serial): ``guest-exec`` runs commands;
- ttyS0 is the kernel and systemd console, logged to ``console.log``;
- ttyS1 is a host pseudo-terminal: the barcode scanner. The host keeps its end open for the
  machine's whole life (data written while nobody holds it open is lost).

Networking is QEMU's user-mode stack with ``restrict=on``: the guest reaches nothing but
10.0.2.100:8080, which ``guestfwd`` hands to ``socat`` and on to the reference server on the
host's loopback.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import random
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

SERVER_IN_GUEST = "10.0.2.100:8080"
PR_SET_PDEATHSIG = 1
# Under TCG, not "max": Mesa's llvmpipe (the GL ES driver on virtio-gpu without 3D) JIT-compiles
# code for the CPU features it is shown, and with QEMU 7.2's emulated AVX it crashed the display
# process inside its first frame. A Nehalem (x86-64-v2, SSE4.2, no AVX) runs it correctly.
TCG_CPU = os.environ.get("ANTREAN_VM_CPU", "Nehalem")
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class MachineError(RuntimeError):
    """QEMU failed or the guest did not answer; the message carries the evidence."""


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def kvm_usable() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


class _JsonSocket:
    """Line-delimited JSON over a unix socket (QMP and the guest agent speak this)."""

    def __init__(self, path: Path, timeout: float):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = b""

    def send(self, doc: dict) -> None:
        self.sock.sendall(json.dumps(doc).encode() + b"\n")

    def recv(self) -> dict:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise MachineError("QEMU closed the socket")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        line = line.lstrip(b"\xff")
        return json.loads(line) if line.strip() else self.recv()

    def close(self) -> None:
        self.sock.close()


class Machine:
    """A guest booted from ``image`` (rootfs.img, vmlinuz, initrd.img) onto ``disk``.

    ``disk`` is a qcow2 overlay made on first boot and kept across boots (power cuts act on
    it as on an SD card). ``extra_drive`` is attached read-only as /dev/vdb.
    """

    def __init__(self, image: Path, workdir: Path, server_port: int, *,
                 extra_drive: Path | None = None, accel: str | None = None):
        self.image = image
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.disk = workdir / "disk.qcow2"
        self.server_port = server_port
        self.extra_drive = extra_drive
        self.accel = accel or os.environ.get("ANTREAN_VM_ACCEL") or "tcg"
        self.cpu = "host" if self.accel == "kvm" else TCG_CPU
        self.gpu = ["-device", os.environ.get("ANTREAN_VM_GPU", "virtio-gpu-pci") + ",id=gpu0"]
        self.proc: subprocess.Popen | None = None
        self.scanner_fd: int | None = None
        self.scanner_path: str | None = None
        self.boots = 0
        self.powered_on_at = 0.0
        self._qmp: _JsonSocket | None = None

    # power ---------------------------------------------------------------------------

    def command(self, rtc: str | None = None) -> list[str]:
        accel = ["-accel", "kvm"] if self.accel == "kvm" else ["-accel", "tcg,thread=multi"]
        fwd = (f"guestfwd=tcp:{SERVER_IN_GUEST}-cmd:"
               f"socat - TCP:127.0.0.1:{self.server_port}")
        cmd = [
            "qemu-system-x86_64", "-nodefaults", "-no-user-config", "-machine", "q35",
            *accel, "-smp", "2", "-m", "1024", "-cpu", self.cpu,
            "-kernel", str(self.image / "vmlinuz"), "-initrd", str(self.image / "initrd.img"),
            "-append", "root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=auto",
            "-no-reboot",
            "-drive", f"file={self.disk},if=virtio,format=qcow2,discard=unmap",
            *self.gpu, "-display", "none", "-vga", "none",
            "-device", "virtio-rng-pci",
            "-netdev", f"user,id=n0,restrict=on,{fwd}",
            "-device", "virtio-net-pci,netdev=n0",
            "-chardev", f"file,id=con,path={self.dir / 'console.log'}",
            "-serial", "chardev:con",
            "-chardev", "pty,id=scanner", "-serial", "chardev:scanner",
            "-chardev", f"socket,id=qga,path={self.dir / 'qga.sock'},server=on,wait=off",
            "-device", "virtio-serial-pci",
            "-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0",
            "-qmp", f"unix:{self.dir / 'qmp.sock'},server=on,wait=off",
        ]
        if self.extra_drive is not None:
            cmd += ["-drive", f"file={self.extra_drive},if=virtio,format=raw,readonly=on"]
        if rtc:
            cmd += ["-rtc", f"base={rtc},clock=vm"]
        return cmd

    def start(self, rtc: str | None = None) -> None:
        """Power on. ``rtc`` e.g. '1970-01-01T00:00:00' starts the guest's RTC there."""
        if self.proc is not None:
            raise MachineError("the machine is already running")
        if not self.disk.exists():
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                            str(self.image / "rootfs.img"), str(self.disk)], check=True)
        self._remove_sockets()
        self.boots += 1
        log = open(self.dir / f"qemu-{self.boots}.log", "w")
        self.powered_on_at = time.monotonic()
        self.proc = subprocess.Popen(self.command(rtc), stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        log.close()
        self._qmp = self._connect_qmp()
        pty = next(c["filename"] for c in self.qmp("query-chardev")
                   if c["label"] == "scanner")
        self.scanner_path = pty.removeprefix("pty:")
        # Hold the host end open for the machine's whole life (see the module docstring).
        self.scanner_fd = os.open(self.scanner_path, os.O_RDWR | os.O_NOCTTY)
        import termios
        attrs = termios.tcgetattr(self.scanner_fd)
        attrs[3] &= ~(termios.ECHO | termios.ICANON)   # raw bytes, no echo back into the guest
        attrs[1] &= ~termios.OPOST
        termios.tcsetattr(self.scanner_fd, termios.TCSANOW, attrs)

    def _connect_qmp(self) -> _JsonSocket:
        deadline = time.monotonic() + 30
        while True:
            self._check_alive()
            try:
                s = _JsonSocket(self.dir / "qmp.sock", 30)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise MachineError("QMP socket did not appear") from None
                time.sleep(0.1)
        s.recv()                                      # the greeting
        s.send({"execute": "qmp_capabilities"})
        s.recv()
        return s

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            log = (self.dir / f"qemu-{self.boots}.log").read_text(errors="replace")
            raise MachineError(f"QEMU exited with {self.proc.returncode}: {log.strip()[-800:]}")

    def qmp(self, command: str, **arguments):
        self._check_alive()
        doc = {"execute": command}
        if arguments:
            doc["arguments"] = arguments
        self._qmp.send(doc)
        while True:
            reply = self._qmp.recv()
            if "event" in reply:
                continue
            if "error" in reply:
                raise MachineError(f"QMP {command}: {reply['error']}")
            return reply.get("return")

    def power_cut(self) -> None:
        """Pull the plug: SIGKILL QEMU at once; the guest gets no chance to flush anything."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            self.proc = None
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        if self.scanner_fd is not None:
            os.close(self.scanner_fd)
            self.scanner_fd = None
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        """QEMU leaves its listening sockets behind; a dead one in the work folder only
        breaks tools that copy the tree (the wheel test's copy of the checkout)."""
        for sock in ("qmp.sock", "qga.sock"):
            (self.dir / sock).unlink(missing_ok=True)

    def shutdown(self, timeout: float = 300) -> None:
        """A clean poweroff from inside, as a technician's `systemctl poweroff`."""
        try:
            self.agent("guest-shutdown", {"mode": "powerdown"}, timeout=30, expect_reply=False)
        except MachineError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise MachineError(f"the guest did not power off within {timeout:.0f} s") from None
        finally:
            self._reap()

    def close(self) -> None:
        self._reap()

    # the guest agent -----------------------------------------------------------------

    def agent(self, command: str, arguments: dict | None = None, *, timeout: float = 60,
              expect_reply: bool = True):
        self._check_alive()
        s = _JsonSocket(self.dir / "qga.sock", timeout)
        try:
            token = random.randrange(1, 2**31)
            s.sock.sendall(b"\xff")
            s.send({"execute": "guest-sync-delimited", "arguments": {"id": token}})
            while s.recv().get("return") != token:
                pass
            doc = {"execute": command}
            if arguments is not None:
                doc["arguments"] = arguments
            s.send(doc)
            if not expect_reply:
                return None
            reply = s.recv()
        except (OSError, ValueError) as e:
            raise MachineError(f"guest agent: {command}: {e}") from None
        finally:
            s.close()
        if "error" in reply:
            raise MachineError(f"guest agent: {command}: {reply['error']}")
        return reply["return"]

    def wait_agent(self, timeout: float) -> float:
        """Wait until the guest agent answers; returns the seconds since power-on."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                self.agent("guest-ping", timeout=3)
                return time.monotonic() - self.powered_on_at
            except (MachineError, OSError) as e:
                if time.monotonic() > deadline:
                    raise MachineError(f"the guest agent did not answer within {timeout:.0f}s "
                                       f"({e}); console:\n{self.console_tail()}") from None
                time.sleep(1)

    def run(self, script: str, *, timeout: float = 120, check: bool = True,
            stdin: bytes | None = None) -> subprocess.CompletedProcess:
        """Run a shell script as root inside the guest; returns its exit code and output."""
        args = {"path": "/bin/sh", "arg": ["-c", f"export PATH={GUEST_PATH} LANG=C.UTF-8; "
                                                 + script], "capture-output": True}
        if stdin is not None:
            args["input-data"] = base64.b64encode(stdin).decode()
        pid = self.agent("guest-exec", args)["pid"]
        deadline = time.monotonic() + timeout
        while True:
            st = self.agent("guest-exec-status", {"pid": pid}, timeout=max(10, timeout))
            if st["exited"]:
                break
            if time.monotonic() > deadline:
                raise MachineError(f"guest command timed out after {timeout:.0f}s: {script}")
            time.sleep(0.3)
        out = base64.b64decode(st.get("out-data", "")).decode(errors="replace")
        err = base64.b64decode(st.get("err-data", "")).decode(errors="replace")
        rc = st.get("exitcode", -st.get("signal", 1))
        result = subprocess.CompletedProcess(script, rc, out, err)
        if check and rc != 0:
            raise MachineError(f"guest command failed (exit {rc}): {script}\n"
                               f"stdout: {out[-3000:]}\nstderr: {err[-3000:]}")
        return result

    def write_file(self, path: str, data: bytes | str, mode: str = "0644",
                   owner: str = "root:root") -> None:
        if isinstance(data, str):
            data = data.encode()
        q = shlex.quote(path)
        self.run(f"mkdir -p $(dirname {q}) && cat > {q} && chmod {mode} {q} "
                 f"&& chown {owner} {q}", stdin=data)

    def wait_for(self, script: str, timeout: float, what: str) -> str:
        """Run ``script`` until it exits 0; returns its output, or fails with the last one."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            last = self.run(script, check=False, timeout=timeout)
            if last.returncode == 0:
                return last.stdout
            if time.monotonic() > deadline:
                raise MachineError(f"waited {timeout:.0f}s for {what}; last output:\n"
                                   f"{last.stdout[-2000:]}{last.stderr[-2000:]}")
            time.sleep(1)

    # devices -------------------------------------------------------------------------

    def scan(self, payload: str) -> None:
        """The scanner reads a code: the payload and CR LF on the guest's ttyS1."""
        os.write(self.scanner_fd, payload.encode() + b"\r\n")

    def screendump(self, path: Path) -> Path:
        self.qmp("screendump", filename=str(path), format="png")
        return path

    def console_tail(self, lines: int = 30) -> str:
        try:
            text = (self.dir / "console.log").read_text(errors="replace")
        except OSError:
            return "(no console log)"
        return "\n".join(text.splitlines()[-lines:])
