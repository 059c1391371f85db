"""One payload a line from standard input: the demo and technicians without hardware.

Typing ``K7Q2M9XA`` and Enter is a scan. End of input (Ctrl-D, or the end of a piped file)
marks the backend ``finished``; the scanner service then stops once every line is judged.

Example::

    $ printf 'K7Q2M9XA\\n' | antrean scanner
"""

from __future__ import annotations

import os
import select
import sys

from drivers.backend import PayloadCallback, ScannerBackend, StateCallback
from drivers.line_framer import DEFAULT_MAX_LENGTH, LineFramer, strip_aim


class StdinScanner(ScannerBackend):
    kind = "stdin"

    def __init__(self, *, on_payload: PayloadCallback, on_state: StateCallback | None = None,
                 fd: int | None = None, max_length: int = DEFAULT_MAX_LENGTH,
                 poll_s: float = 0.2):
        super().__init__(on_payload, on_state)
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.poll_s = poll_s
        self.framer = LineFramer(max_length)

    @classmethod
    def from_config(cls, scanner, *, on_payload, on_state=None, stdin_fd=None):
        return cls(on_payload=on_payload, on_state=on_state, fd=stdin_fd)

    def _run(self) -> None:
        self._set_state(True, "reading codes from standard input")
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], self.poll_s)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 65536)
            except OSError as e:
                data = b""
                self.detail = f"standard input failed: {e.strerror}"
            if not data:
                # The last line may lack its newline when a file is piped in.
                tail = self.framer.partial
                self.framer.reset()
                if tail:
                    self._emit(strip_aim(tail))
                self.finished = True
                self._set_state(False, "end of standard input")
                return
            for line in self.framer.feed(data):
                self._emit(strip_aim(line))
