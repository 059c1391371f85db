"""The stdin backend: one payload a line, through a real pipe."""

import os
import queue

from drivers.stdin_scanner import StdinScanner


def test_lines_from_a_pipe_and_end_of_input():
    r, w = os.pipe()
    got, states = queue.Queue(), queue.Queue()
    s = StdinScanner(fd=r, on_payload=got.put, on_state=lambda c, d: states.put(c))
    with s:
        assert states.get(timeout=5) is True
        os.write(w, b"K7Q2M9XA\r\n]C0B2C3D4E5\n\nNO-NEWLINE")
        assert got.get(timeout=5) == b"K7Q2M9XA"
        assert got.get(timeout=5) == b"B2C3D4E5"
        os.close(w)
        assert states.get(timeout=5) is False
        assert got.get(timeout=5) == b"NO-NEWLINE"   # a piped file's unterminated last line
        assert s.finished
    os.close(r)
