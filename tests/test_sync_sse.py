"""The push stream's parser: the same events however the bytes are cut, bounded lines, ids
that can always go back to the server as a header."""

from __future__ import annotations

import pytest
import requests

from sync.client import ServerUnreachable
from sync.sse import MAX_LINE, SseEvent, SseParser, valid_event_id

STREAM = (b": connected\r\n\r\nid: 1\n\nid: 2\revent: call\rdata: {\"a\": 1}\r\r"
          b"event: announcements\r\ndata: line one\r\ndata: line two\r\n\r\n"
          b"data: no name\n\n: keepalive\n\nid: 3\nevent: schedule\ndata: {}\n")  # unfinished

EXPECTED = [None, SseEvent("1", "", ""), SseEvent("2", "call", '{"a": 1}'),
            SseEvent("2", "announcements", "line one\nline two"),
            SseEvent("2", "message", "no name"), None]


def parse(chunks) -> list:
    parser = SseParser()
    out = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_the_same_events_however_the_reads_cut_the_bytes(size):
    """CR, LF and CRLF line ends, a CRLF split between two reads, an event left unfinished."""
    chunks = [STREAM[i:i + size] for i in range(0, len(STREAM), size)]
    assert parse(chunks) == EXPECTED


def test_a_cr_at_the_end_of_a_read_completes_the_line_at_once():
    parser = SseParser()
    assert parser.feed(b"event: call\rdata: {}\r") == []
    assert parser.feed(b"\r") == [SseEvent(None, "call", "{}")]   # not held for a possible LF
    assert parser.feed(b"\ndata: x\n\n") == [SseEvent(None, "message", "x")]


def test_a_line_without_end_is_bounded():
    parser = SseParser()
    parser.feed(b"data: " + b"x" * (MAX_LINE - 10))
    with pytest.raises(ServerUnreachable, match="longer than 1 MiB"):
        parser.feed(b"x" * 64)


def test_a_bad_id_keeps_the_last_good_one():
    seen = []
    parser = SseParser("4", on_bad_id=seen.append)
    events = parser.feed(b"id:  5\ndata: a\n\nid: 6\xe2\x82\xac\ndata: b\n\nid: 7\ndata: c\n\n")
    assert [e.id for e in events] == ["4", "4", "7"]
    assert seen == [" 5", "6\u20ac"]


@pytest.mark.parametrize("value,ok", [
    ("17", True), ("01JDX3Q6W4T2K5M8N9P0R1S2T3", True), ("a b", True), ("caf\xe9", True),
    ("x" * 256, True), ("", False), (" 5", False), ("5 ", False), ("\t5", False),
    ("5\u20ac", False), ("5\x00", False), ("5\x7f", False), ("5\x85", False), ("5\r\n", False),
    ("x" * 257, False), (5, False), (None, False)])
def test_valid_event_id(value, ok):
    assert valid_event_id(value) is ok


@pytest.mark.parametrize("value", ["17", "a b", "caf\xe9", "x" * 256])
def test_every_valid_id_is_a_header_requests_will_send(value):
    """What valid_event_id lets through, requests and http.client accept as a header."""
    prepared = requests.Request("GET", "http://127.0.0.1/", headers={"Last-Event-ID": value})
    prepared.prepare()   # raises InvalidHeader for what it would refuse
    value.encode("latin-1")
