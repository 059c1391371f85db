"""The shared line framer: terminators, bounds, resync, partial lines, AIM prefixes."""

import random
import re

import pytest

from drivers.line_framer import LineFramer, OverlongLine, strip_aim


@pytest.mark.parametrize("term", [b"\r", b"\n", b"\r\n", b"\t"])
def test_each_terminator_ends_a_line(term):
    f = LineFramer()
    assert f.feed(b"K7Q2M9XA" + term + b"B2" + term) == [b"K7Q2M9XA", b"B2"]
    assert f.partial == b""


def test_crlf_split_across_reads_gives_no_empty_line():
    f = LineFramer()
    assert f.feed(b"K7Q2M9XA\r") == [b"K7Q2M9XA"]
    assert f.feed(b"\nNEXT\r") == [b"NEXT"]


def test_partial_line_waits_for_its_terminator():
    f = LineFramer()
    assert f.feed(b"K7Q2") == []
    assert f.partial == b"K7Q2"
    assert f.feed(b"M9XA") == []
    assert f.feed(b"\n") == [b"K7Q2M9XA"]


def test_byte_by_byte_feeding_equals_one_feed():
    data = b"A1\r\nB2\tC3\n\n\rD4\r"
    f = LineFramer()
    lines = [line for i in range(len(data)) for line in f.feed(data[i:i + 1])]
    assert lines == LineFramer().feed(data) == [b"A1", b"B2", b"C3", b"D4"]


def test_overlong_line_is_cut_and_framer_resyncs():
    f = LineFramer(max_length=16)
    assert f.feed(b"X" * 10) == []
    assert f.feed(b"Y" * 10) == []          # 20 bytes: over the bound, now discarding
    assert f.discarding and f.partial == b"X" * 10 + b"Y" * 6
    assert f.feed(b"Z" * 100_000) == []     # memory stays bounded while discarding
    assert len(f.partial) == 16
    lines = f.feed(b"ZZZ\nK7Q2M9XA\n")
    assert lines == [b"X" * 10 + b"Y" * 6, b"K7Q2M9XA"]
    assert isinstance(lines[0], OverlongLine) and not isinstance(lines[1], OverlongLine)
    assert f.dropped_long == 1


def test_line_of_exactly_max_length_is_kept():
    f = LineFramer(max_length=8)
    lines = f.feed(b"12345678\n123456789\nOK\n")
    assert lines == [b"12345678", b"12345678", b"OK"]
    assert [type(x) for x in lines] == [bytes, OverlongLine, bytes]


def test_stale_partial_is_dropped_only_with_stale_after():
    f = LineFramer(stale_after=5.0)
    f.feed(b"K7Q2", now=100.0)
    assert f.feed(b"AB\n", now=104.0) == [b"K7Q2AB"]
    f.feed(b"K7Q2", now=110.0)
    assert f.feed(b"AB\n", now=116.0) == [b"AB"]
    assert f.dropped_stale == 1
    g = LineFramer()  # without stale_after a slow partial is never dropped
    g.feed(b"K7", now=0.0)
    assert g.feed(b"Q2\n", now=1e6) == [b"K7Q2"]


def test_backspace_edits_the_partial_line():
    f = LineFramer()
    f.feed(b"K7Q3")
    f.backspace()
    assert f.feed(b"2\n") == [b"K7Q2"]
    f.backspace()  # nothing to delete: no error
    assert f.partial == b""


@pytest.mark.parametrize("raw, clean", [
    (b"]Q1K7Q2M9XA", b"K7Q2M9XA"), (b"]C0K7Q2M9XA", b"K7Q2M9XA"),
    (b"K7Q2M9XA", b"K7Q2M9XA"), (b"]Q", b"]Q"), (b"]]Q1", b"]]Q1"),
    (OverlongLine(b"]Q1K7Q2"), b"]Q1K7Q2"),
])
def test_strip_aim(raw, clean):
    assert strip_aim(raw) == clean


def test_garbage_bytes_pass_through_as_lines():
    f = LineFramer()
    assert f.feed(b"\x00\x1b[2J\xff\xfe\n") == [b"\x00\x1b[2J\xff\xfe"]


class CountingBytes(bytes):
    """Bytes that count how many bytes their ``find`` calls look at: the framer's work."""

    looked_at = 0

    def find(self, sub, start=0, *rest):
        i = super().find(sub, start, *rest)
        CountingBytes.looked_at += (i + 1 if i >= 0 else len(self)) - start
        return i


@pytest.mark.parametrize("term", [b"\n", b"\r", b"\t", b"\r\n"])
def test_a_flood_of_lines_lacking_a_terminator_kind_is_framed_in_linear_work(term):
    # 64 KiB is what the serial and stdin backends hand over in one read. Searching every
    # terminator kind afresh for each line looks at ~2 x 7,000 x 32 KiB bytes here.
    data = CountingBytes((b"K7Q2M9X" + term) * (65536 // (7 + len(term))))
    CountingBytes.looked_at = 0
    lines = LineFramer().feed(data)
    assert len(lines) == 65536 // (7 + len(term)) and set(lines) == {b"K7Q2M9X"}
    assert CountingBytes.looked_at <= 3 * len(data)  # one pass per terminator kind


def test_framing_equals_splitting_on_every_terminator_in_any_chunking():
    rng = random.Random(10)
    for _ in range(200):
        data = bytes(rng.choice(b"AB7\r\n\t") for _ in range(rng.randrange(1, 300)))
        whole = [x for x in re.split(rb"[\r\n\t]", data)[:-1] if x]
        f = LineFramer()
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randrange(5))))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        assert [line for piece in pieces for line in f.feed(piece)] == whole
        assert LineFramer().feed(data) == whole
