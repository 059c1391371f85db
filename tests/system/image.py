"""The system test's guest image and wheelhouse, built once and cached by their inputs.

The image is Debian 12 from Debian's packages (``build-image.sh``, mmdebstrap); the key is a
hash of that script and of the apt packages ``systemd/install.sh`` asks for, so changing the
installer's package list rebuilds it and nothing else does. The wheelhouse holds the wheels
pip needs to install the appliance inside the VM (it has no registry access), keyed by
pyproject.toml's dependencies.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("ANTREAN_VM_CACHE", "/var/tmp/antrean-system-test"))
INSTALL_SH = REPO / "systemd" / "install.sh"
# Build requirements pip fetches for the source tree (pyproject's [build-system]).
BUILD_REQUIREMENTS = ("setuptools>=77", "wheel")


class ImageError(RuntimeError):
    """The image or wheelhouse cannot be built; the message says what to do."""


def _bash_array(text: str, name: str) -> list[str]:
    m = re.search(rf"^{name}=\((.*?)\)", text, re.S | re.M)
    if not m:
        raise ImageError(f"{INSTALL_SH}: no {name}=(...) array; the system test reads the "
                         "installer's package list from it")
    body = "\n".join(line.split("#", 1)[0] for line in m[1].splitlines())
    return body.split()


def installer_packages() -> list[str]:
    """install.sh's apt packages, the optional ones only where Debian has them."""
    text = INSTALL_SH.read_text()
    wanted = _bash_array(text, "APT_PACKAGES")
    for pkg in _bash_array(text, "APT_OPTIONAL"):
        out = subprocess.run(["apt-cache", "policy", pkg], capture_output=True, text=True)
        if re.search(r"Candidate: [^(\s]", out.stdout):
            wanted.append(pkg)
    return wanted


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _log(msg: str) -> None:
    print(f"[system-test] {msg}", file=sys.stderr, flush=True)


def guest_image() -> Path:
    """The cached image folder (rootfs.img, vmlinuz, initrd.img), built when missing."""
    packages = installer_packages()
    script = HERE / "build-image.sh"
    key = _digest(script.read_bytes(), " ".join(sorted(packages)))
    out = CACHE / f"image-{key}"
    if (out / "rootfs.img").exists():
        _log(f"image: cached {out}")
        return out
    for tool in ("mmdebstrap", "mke2fs"):
        if shutil.which(tool) is None:
            raise ImageError(f"{tool} is not installed; run `make system-test` as root (it "
                             "installs mmdebstrap, e2fsprogs and QEMU) or apt-get install it")
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.glob("image-*"):     # one image at a time: each is about 1 GB
        shutil.rmtree(old, ignore_errors=True)
    _log(f"image: building {out} with mmdebstrap (a few minutes; cached afterwards)")
    log = CACHE / "build-image.log"
    with open(log, "w") as f:
        rc = subprocess.run(["bash", str(script), str(out), *packages], stdout=f,
                            stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise ImageError(f"the image build failed (exit {rc}); the end of {log}:\n"
                         + "\n".join(tail))
    return out


def project_requirements() -> list[str]:
    """pyproject's dependencies that pip must fetch (pygame comes from Debian's package)."""
    doc = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps = doc["project"]["dependencies"]
    return [d for d in deps if not re.match(r"pygame\b", d)] + list(BUILD_REQUIREMENTS)


def wheelhouse(pip: str) -> Path:
    """A folder of wheels for ``pip install --no-index --find-links`` inside the guest."""
    reqs = project_requirements()
    out = CACHE / f"wheelhouse-{_digest(' '.join(reqs))}"
    if (out / ".complete").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    _log(f"wheelhouse: pip download into {out}")
    # The guest is Debian 12 amd64 with CPython 3.11, like this host: wheels for this
    # interpreter fit it. Binary only: the guest has no compiler.
    r = subprocess.run([pip, "download", "-q", "--only-binary", ":all:", "-d", str(out),
                        *reqs], capture_output=True, text=True)
    if r.returncode != 0:
        raise ImageError("pip download for the wheelhouse failed: "
                         + (r.stderr.strip().splitlines() or ["?"])[-1])
    (out / ".complete").touch()
    for old in CACHE.glob("wheelhouse-*"):
        if old != out:
            shutil.rmtree(old, ignore_errors=True)
    return out
