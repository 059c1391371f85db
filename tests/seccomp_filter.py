"""A real seccomp filter for tests: refuse named system calls with an errno.

This is what systemd's ``SystemCallFilter=`` (and ``ProtectClock=``) install in a unit; a test
child process loads it with libseccomp (a dependency of systemd) and then runs real code.

Example (in a child process: a filter cannot be removed again)::

    >>> refuse(["fdatasync", "fsync"], errno.EIO)    # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import ctypes.util

LIBRARY = ctypes.util.find_library("seccomp")
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000
# systemd's @clock set: what ProtectClock=yes refuses.
CLOCK_CALLS = ("adjtimex", "clock_adjtime", "clock_adjtime64", "clock_settime",
               "clock_settime64", "settimeofday")


def refuse(names, err: int) -> None:
    """Make every system call in ``names`` fail with ``err`` in this process from now on."""
    lib = ctypes.CDLL(LIBRARY)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                     ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    try:
        for name in names:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr >= 0:     # not every call exists on every architecture
                if lib.seccomp_rule_add(ctx, SCMP_ACT_ERRNO | err, nr, 0) != 0:
                    raise OSError(f"seccomp cannot refuse {name}")
        if lib.seccomp_load(ctx) != 0:
            raise OSError("seccomp filter not loaded")
    finally:
        lib.seccomp_release(ctx)
