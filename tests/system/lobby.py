"""The booted appliance's test harness: the reference server, the guest's config and install.

A technician's steps, done over the guest agent: copy the source tree in, run
``systemd/install.sh`` with a local wheelhouse and the image's local apt repository, write the
config, the central server's CA and the device token, add the one local udev rule this
hardware needs, power off.

The guest reaches the reference server over https, as an office reaches the central server:
a throwaway CA made in the work folder signs the server's certificate for the guestfwd
address, and the guest trusts that CA through ``server.ca_file``. The certificate starts an
hour before the run, so a guest booted without a clock (months behind) meets a certificate
that is not yet valid by its own clock, as a Pi without an RTC battery and NTP does.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from image import CACHE, REPO
from vm import Machine, MachineError, kvm_usable

from devtools.demo_schedule import generate_schedule
from devtools.devserver import DevServer
from devtools.throwaway_ca import issue_server_certificate, make_ca

OFFICE = "TRK"
OFFICE_NAME = "Kantor Imigrasi Kelas II TPI Tarakan"
TZ = "Asia/Makassar"
TOKEN = "vm-device-token"
DEVICE = "trk-lobby-1"
GUEST_SERVER = "10.0.2.100"                 # QEMU's guestfwd to the reference server
GUEST_CA = "/etc/antrean/central-ca.pem"
WORK = Path(os.environ.get("ANTREAN_VM_WORK", REPO / ".system-test"))
RESULTS = WORK / "results.json"
BOOT_TIMEOUT = float(os.environ.get("ANTREAN_VM_BOOT_TIMEOUT", 600))
INSTALL_TIMEOUT = float(os.environ.get("ANTREAN_VM_INSTALL_TIMEOUT", 1800))


def say(msg: str) -> None:
    print(f"[system-test] {msg}", file=sys.stderr, flush=True)


def record(key: str, value) -> None:
    """Keep a measurement for bench/REPORT.md (results.json in the work folder)."""
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[key] = value
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qemu_runs() -> str | None:
    """None when QEMU can start a machine here, else the reason it cannot."""
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 is not installed (make system-test installs qemu-system-x86)"
    r = subprocess.run(["qemu-system-x86_64", "-machine", "none", "-accel", "tcg",
                        "-nodefaults", "-display", "none", "-S", "-qmp", "stdio"],
                       input='{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n',
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return f"QEMU cannot run on this machine: {r.stderr.strip()[-300:]}"
    return None


class Central:
    """The reference server on the host's loopback over https; stops and restarts on the same
    port with the same certificate (``ca_cert`` is the CA the guest trusts)."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.port = _free_port()
        self.server: DevServer | None = None
        tls = state_dir.parent / "tls"
        start = datetime.now(UTC) - timedelta(hours=1)
        ca = make_ca(str(tls), common_name="Antrean system test CA", not_before=start,
                     not_after=start + timedelta(days=30))
        self.cert = issue_server_certificate(ca, str(tls), [GUEST_SERVER, "127.0.0.1"],
                                             not_before=start,
                                             not_after=start + timedelta(days=30))
        self.ca_cert = Path(ca.cert_path)
        self.start()

    def start(self) -> None:
        key = self.state_dir / "devserver.key"
        self.server = DevServer(port=self.port, state_dir=str(self.state_dir),
                                key_path=str(key) if key.exists() else None, office=OFFICE,
                                office_name=OFFICE_NAME, timezone_name=TZ, token=TOKEN,
                                keepalive_s=5.0, tls_cert=self.cert.cert,
                                tls_key=self.cert.key, tls_ca=str(self.ca_cert)).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        return self.server.admin(method, path, body)

    def schedule_around_now(self, appointments: int = 80) -> dict:
        """Today's schedule with every slot near the office's current hour (tickets valid)."""
        tz = ZoneInfo(TZ)
        wait_past_the_offices_midnight(tz)
        now = datetime.now(tz)
        day = now.date().isoformat()
        start = max(now - timedelta(minutes=30), now.replace(hour=0, minute=0))
        end = min(start + timedelta(hours=2), now.replace(hour=23, minute=59))
        # Made now: a schedule without generated_at would date from 1970 (too old to use).
        doc = generate_schedule(OFFICE, OFFICE_NAME, TZ, day, appointments,
                                hours=(start.strftime("%H:%M"), end.strftime("%H:%M")),
                                generated_at=now.timestamp())
        self.admin("POST", "/_admin/schedule", {"date": day, "document": doc})
        return doc

    def ticket(self, booking_code: str) -> str:
        return self.admin("GET", f"/_admin/ticket?booking_code={booking_code}")["ticket"]

    def events(self) -> list[dict]:
        return self.admin("GET", f"/_admin/events?device={DEVICE}")["events"]


# The tests after the schedule is made take about 9 minutes here, twice that on a slow host.
MIDNIGHT_MARGIN = timedelta(minutes=25)


def wait_past_the_offices_midnight(tz: ZoneInfo) -> None:
    """Start the lobby's day after the office's midnight when the run would cross it.

    Today's bookings turn into yesterday's at the office's midnight (wrong_day, and the
    screen moves to the new day), so a run that crossed it would fail for the calendar.
    """
    now = datetime.now(tz)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tz)
    if midnight - now > MIDNIGHT_MARGIN:
        return
    say(f"the office's midnight ({TZ}) is at most {(midnight - now).seconds // 60 + 1} min "
        "away and the tests would cross it: waiting for the new day")
    while datetime.now(tz) < midnight + timedelta(seconds=30):
        time.sleep(5)


def guest_config(public_key: str, keyid: str) -> str:
    text = (REPO / "antrean.example.toml").read_text()
    text = text.replace('keys = { k2026a = "REPLACE-WITH-BASE64-OF-THE-RAW-32-BYTE-PUBLIC-KEY=" }',
                        f'keys = {{ {keyid} = "{public_key}" }}')
    text = text.replace('url = "https://antrean.example.go.id/api/v1"',
                        f'url = "https://{GUEST_SERVER}:8080"')
    text = text.replace('ca_file = ""', f'ca_file = "{GUEST_CA}"')
    text = text.replace('poll_seconds = 60 ', 'poll_seconds = 10 ')
    text = text.replace('port = "/dev/antrean-scanner"', 'port = "/dev/ttyS1"')
    # The check-in panel stays 30 s, not 6: a screendump and OCR under TCG take seconds.
    text = text.replace("[display]\n", "[display]\ncheckin_panel_seconds = 30\n", 1)
    assert (public_key in text and f"https://{GUEST_SERVER}:8080" in text and GUEST_CA in text
            and "ttyS1" in text and "checkin_panel_seconds = 30" in text), \
        "antrean.example.toml changed: update guest_config()"
    return text


# The technician's one local change for this hardware (docs/install.md, "Other hardware"):
# the KMS card here is virtio-gpu, not the Pi's vc4.
# udev sees the card's parent as the PCI device (driver virtio-pci): match virtio-gpu's ids.
DISPLAY_RULE = ('SUBSYSTEM=="drm", KERNEL=="card[0-9]*", ENV{DEVTYPE}=="drm_minor", '
                'ATTRS{vendor}=="0x1af4", ATTRS{device}=="0x1050", SYMLINK+="dri/antrean", '
                'TAG+="systemd"\n')


def transfer_disk(work: Path, wheels: Path) -> Path:
    """A read-only disk with what a technician brings: the source tree and the wheelhouse."""
    stage = work / "transfer"
    shutil.rmtree(stage, ignore_errors=True)
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        rel = name.decode()
        if rel.startswith(("tests/", "bench/")) or not (REPO / rel).is_file():
            continue
        dest = stage / "antrean" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest)
    shutil.copytree(wheels, stage / "wheelhouse")
    img = work / "transfer.img"
    img.unlink(missing_ok=True)
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(stage), str(img), "512M"],
                   check=True)
    shutil.rmtree(stage)
    return img


def choose_accel(image: Path, work: Path, port: int) -> str:
    """KVM only where a guest really boots under it (a nested one may hang); else TCG."""
    forced = os.environ.get("ANTREAN_VM_ACCEL")
    if forced:
        return forced
    if not kvm_usable():
        return "tcg"
    # The verdict is kept per guest kernel and host kernel: a hanging probe costs a minute.
    verdict = CACHE / f"kvm-boots-{image.name}-{os.uname().release}"
    if verdict.exists():
        return verdict.read_text().strip()
    probe = Machine(image, work / "kvm-probe", port, accel="kvm")
    accel = "tcg"
    try:
        probe.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "Linux version" in probe.console_tail(200):
                accel = "kvm"
                break
            time.sleep(1)
    except MachineError:
        pass
    finally:
        probe.close()
        shutil.rmtree(work / "kvm-probe", ignore_errors=True)
    verdict.write_text(accel + "\n")
    return accel


class Lobby:
    """What the tests share: the machine, the central server and the office's bookings."""

    def __init__(self, machine: Machine, central: Central, work: Path):
        self.vm = machine
        self.central = central
        self.work = work
        self.schedule: dict | None = None
        self._next_booking = 0
        self.checked_in: str | None = None
        self.shots = 0

    def next_booking(self) -> dict:
        booked = [a for a in self.schedule["appointments"] if a["status"] == "booked"]
        appt = booked[self._next_booking]
        self._next_booking += 1
        return appt

    def screenshot(self, name: str) -> Path:
        """The monitor now, as screen-NAME.png (the last one of a name is kept as evidence)."""
        self.shots += 1
        return self.vm.screendump(self.work / f"screen-{name}.png")

    def boot(self, rtc: str | None = None) -> float:
        """Power on and wait until antrean.target is active; returns seconds to the agent."""
        self.vm.start(rtc=rtc)
        return self.vm.wait_agent(BOOT_TIMEOUT)

    def journal(self, unit: str = "antrean-*", since_boot: bool = True) -> str:
        b = "-b" if since_boot else ""
        return self.vm.run(f"journalctl {b} -u '{unit}' --no-pager -o short-monotonic",
                           timeout=120).stdout

    def sql(self, query: str) -> str:
        return self.vm.run(f"sqlite3 -readonly /var/lib/antrean/antrean.db \"{query}\"",
                           timeout=60).stdout.strip()


INSTALL = ("cd /root/antrean && PIP_NO_INDEX=1 PIP_FIND_LINKS=/mnt/transfer/wheelhouse "
           "systemd/install.sh 2>&1")


def installed_disk(image: Path, wheels: Path) -> Path:
    """Where the disk of a fresh install is kept, keyed by what a fresh install depends on:
    the image (Debian's packages), the installer itself and the wheelhouse."""
    h = hashlib.sha256((REPO / "systemd" / "install.sh").read_bytes())
    return CACHE / f"installed-{image.name}-{wheels.name}-{h.hexdigest()[:12]}.qcow2"


def install(lobby: Lobby, cached: Path) -> None:
    """Install with systemd/install.sh inside the guest, as a technician would.

    A fresh install runs whenever the image, the installer or the wheelhouse changed (and
    with ANTREAN_VM_FRESH=1); its disk is kept, and later runs start from it and upgrade it
    with the new source, the installer's upgrade path, which is what an office does too.
    """
    vm, central = lobby.vm, lobby.central
    fresh = not cached.exists() or os.environ.get("ANTREAN_VM_FRESH") == "1"
    if not fresh:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                        str(cached), str(vm.disk)], check=True)
    record("install_mode", "fresh" if fresh else "upgrade")
    say(f"first boot: {'installing' if fresh else 'upgrading'} the appliance with "
        "systemd/install.sh inside the guest")
    lobby.boot()
    if not fresh:     # a clean lobby for this run: the last run's store and keys are gone
        vm.run("systemctl stop antrean.target antrean-scanner antrean-display antrean-sync "
               "&& rm -rf /var/lib/antrean/*", timeout=300)
    vm.run("mkdir -p /mnt/transfer && mount -o ro /dev/vdb /mnt/transfer "
           "&& rm -rf /root/antrean && cp -a /mnt/transfer/antrean /root/antrean")
    t0 = time.monotonic()
    out = vm.run(INSTALL, timeout=INSTALL_TIMEOUT)
    record("install_sh_s" if fresh else "upgrade_install_sh_s", round(time.monotonic() - t0, 1))
    (lobby.work / "install.log").write_text(out.stdout)
    again = vm.run(INSTALL, timeout=INSTALL_TIMEOUT).stdout
    assert again.strip().endswith("no changes"), f"a second install.sh run changed:\n{again}"
    state = central.admin("GET", "/_admin/state")
    vm.write_file("/etc/antrean/antrean.toml", guest_config(state["public_key"], state["keyid"]),
                  mode="0640", owner="root:antrean")
    vm.write_file(GUEST_CA, central.ca_cert.read_bytes(), mode="0640", owner="root:antrean")
    vm.write_file("/etc/antrean/token", TOKEN + "\n", mode="0640", owner="root:antrean")
    vm.write_file("/etc/udev/rules.d/98-antrean-display-local.rules", DISPLAY_RULE)
    lobby.schedule = central.schedule_around_now()
    vm.run("umount /mnt/transfer")
    vm.shutdown()
    if fresh:
        for old in CACHE.glob("installed-*.qcow2"):
            old.unlink()
        shutil.copyfile(vm.disk, cached.with_suffix(".tmp"))
        cached.with_suffix(".tmp").rename(cached)


REPORT = REPO / "bench" / "REPORT.md"
REPORT_BEGIN = "<!-- system-test: begin -->"
REPORT_END = "<!-- system-test: end -->"
CPU_WINDOW_S = 30  # the display's CPU share is measured over this many seconds
REPORT_ROWS = [
    ("power_on_to_call_screen_s", "power-on to the call screen on the VM's monitor "
     "(first screendump that shows it)", "s"),
    ("power_on_to_agent_s", "power-on to the guest agent answering", "s"),
    ("ready_after_kernel_s.antrean-display", "kernel start to display READY=1", "s"),
    ("ready_after_kernel_s.antrean-scanner", "kernel start to scanner READY=1", "s"),
    ("ready_after_kernel_s.antrean-sync", "kernel start to sync READY=1", "s"),
    ("display_pss_mb", "display on kmsdrm (virtio-gpu, the accelerated framebuffer: SDL's GL "
     "ES 2 renderer over EGL, Mesa llvmpipe): proportional memory (PSS)", "MB"),
    ("display_rss_mb", "display on kmsdrm, same: resident memory (RSS)", "MB"),
    ("display_cpu_percent", "display on kmsdrm, same, idle call screen at 30 fps: share of "
     f"one vCPU over {CPU_WINDOW_S} s", "%"),
    ("scanner_pss_mb", "scanner after start: PSS", "MB"),
    ("sync_pss_mb", "sync after start: PSS", "MB"),
    ("install_sh_s", "systemd/install.sh, fresh install inside the guest", "s"),
    ("upgrade_install_sh_s", "systemd/install.sh, upgrading the cached install to this "
     "source", "s"),
    ("rtc_less_boot_guest_clock", "guest clock after a boot with the RTC at 1970 and no saved "
     "clock (systemd's epoch)", "UTC"),
    ("power_cuts", "power cuts (SIGKILL of QEMU) in bursts of scans", "count"),
    ("power_cut_checkins_beeped", "check-ins acknowledged before a cut", "count"),
    ("power_cut_checkins_lost", "acknowledged check-ins lost", "count"),
    ("security_exposure.antrean-scanner", "systemd-analyze security, scanner", "exposure"),
    ("security_exposure.antrean-display", "systemd-analyze security, display", "exposure"),
    ("security_exposure.antrean-sync", "systemd-analyze security, sync", "exposure"),
]


def carried_fresh_install(report: str) -> list[str]:
    """The last cold run's install time, kept when a warm run (which only upgrades) rewrites
    the section, so the report always says what a fresh install costs."""
    label = next(text for key, text, _ in REPORT_ROWS if key == "install_sh_s")
    section = report.split(REPORT_BEGIN, 1)[-1].split(REPORT_END, 1)[0]
    when = re.search(r"; (\d{4}-\d\d-\d\d \d\d:\d\d) UTC\. Written", section)
    for line in section.splitlines():
        if line.startswith(f"| {label}"):
            value = line.split("|")[2].strip()
            if when and "(run of" not in line:
                return [f"| {label} (run of {when[1]} UTC) | {value} | s |"]
            return [line]
    return []


def write_report() -> None:
    """Put this run's measurements into bench/REPORT.md's marked system-test section."""
    if not RESULTS.exists():
        return
    data = json.loads(RESULTS.read_text())
    engine = "KVM" if data.get("accelerator") == "kvm" else "TCG (software emulation)"
    report = REPORT.read_text() if REPORT.exists() else ""
    rows = ["| metric | value | unit |", "| --- | --- | --- |"]
    rows += [f"| {label} | {data[key]} | {unit} |" for key, label, unit in REPORT_ROWS
             if key in data]
    if "install_sh_s" not in data:
        rows += carried_fresh_install(report)
    section = [
        REPORT_BEGIN,
        "## Booted VM (`make system-test`): emulated, for trends, not Raspberry Pi figures",
        "",
        f"Debian 12 amd64 guest under QEMU {engine}, 2 vCPUs, 1 GiB, virtio-gpu KMS, on "
        "the host below; "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC. Written by the system test.",
        "",
        *rows,
        *([] if "power_on_to_call_screen_s" in data else [
            "", "Power-on to the call screen was not measured in this run: the screenshot "
            "check did not read the call screen (see the test's output)."]),
        REPORT_END,
    ]
    if REPORT_BEGIN in report:
        before = report.split(REPORT_BEGIN, 1)[0]
        after = report.split(REPORT_END, 1)[1] if REPORT_END in report else ""
        report = before + "\n".join(section) + after
    else:
        report = report.rstrip("\n") + "\n\n" + "\n".join(section) + "\n"
    REPORT.write_text(report)
