"""The printer drivers against real doubles: a TCP listener on loopback, a pseudo-terminal,
plain files and FIFOs. What the printer received is decoded from the ESC/POS bytes.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import datetime

import pytest
from conftest import TZ

from appliance.slip import BIGGEST, Rule, SlipFacts, Text, compose_slip, compose_test_page
from devtools.escpos_decode import DecodeError, Decoder, QRCode, Raster, decode
from devtools.printer_doubles import NetworkPrinterDouble, SerialPrinterDouble
from devtools.slip_preview import draw
from drivers.printer.connection import FileConnection, NetworkConnection, SerialConnection
from drivers.printer.errors import (
    PrinterNotReady,
    PrinterSilent,
    PrinterTimeout,
    PrinterUnavailable,
)
from drivers.printer.render import biggest_size, columns, render
from drivers.printer.status import (
    from_lp_status,
    from_realtime,
    is_status_byte,
)
from drivers.printer.thermal import ThermalPrinter

FACTS = SlipFacts("Kantor Imigrasi Kelas II TPI Tarakan", datetime(2026, 11, 30, 9, 12, tzinfo=TZ),
                  "A012", "Paspor Baru", name="Bapak Andi S.", people_ahead=3,
                  estimated_call=datetime(2026, 11, 30, 10, 45, tzinfo=TZ))
FAST = {"timeout_s": 1.0, "status_timeout_s": 0.3}


def network_printer(double, **kw) -> ThermalPrinter:
    return ThermalPrinter(lambda: NetworkConnection("127.0.0.1", double.port, **FAST), **kw)


# --- the decoder, on bytes written by hand from the ESC/POS reference ---------------------

def test_decoder_reads_text_sizes_alignment_cuts_raster_and_qr():
    raster = bytes([0x80, 0x01]) * 2                      # 16 x 2 dots
    qr = b"\x1d(k\x07\x001P0A012" + b"\x1d(k\x03\x001Q0"
    data = (b"\x1b@\x1ba\x01\x1bE\x01Kantor\n\x1bE\x00\x1d!\x77A012\n\x1d!\x00"
            b"\x1bt\x10caf\xe9\n" + b"\x1dv0\x00\x02\x00\x02\x00" + raster + qr
            + b"\x1bd\x02\x1dVA\x03" + b"second\n\x1dV\x01" + b"hanging\n")
    first, second, tail = decode(data)
    assert [line.text for line in first.lines[:3]] == ["Kantor", "A012", "café"]
    kantor, number = first.lines[0], first.lines[1]
    assert (kantor.bold, kantor.align, kantor.width) == (True, "center", 1)
    assert (number.width, number.height, number.bold) == (8, 8, False)
    image = next(i for i in first.items if isinstance(i, Raster))
    assert (image.width, image.height) == (16, 2)
    assert image.pixel(0, 0) and image.pixel(15, 1) and not image.pixel(1, 0)
    assert next(i for i in first.items if isinstance(i, QRCode)).data == b"A012"
    assert (first.cut, second.cut, tail.cut) == ("full", "partial", None)
    assert second.text == "second" and tail.text == "hanging"


def test_decoder_is_strict_and_incremental():
    with pytest.raises(DecodeError, match="ESC 0x51"):
        decode(b"\x1bQ\x00")
    with pytest.raises(DecodeError, match="0x07"):
        decode(b"beep\x07")
    with pytest.raises(DecodeError, match="ends inside a command"):
        decode(b"\x1dv0\x00\x02\x00\x02\x00\x01")
    d = Decoder()
    stream = b"\x1b@\x10\x04\x01A\x1d!\x11B\n\x10\x04\x04\x1dV\x00"
    asked = [n for byte in stream for n in d.feed(bytes([byte]))]   # one byte at a time
    assert asked == [1, 4]
    assert d.receipts[0].text == "AB" and d.receipts[0].lines[0].width == 2


# --- status bytes -----------------------------------------------------------------------

def test_status_bytes_from_the_printer_and_from_the_kernel():
    assert is_status_byte(0x12) and is_status_byte(0x7E) and not is_status_byte(0x13)
    assert not is_status_byte(0x92) and not is_status_byte(0x00)
    assert from_realtime(0x12, 0x12, 0x12).ready
    assert from_realtime(0x1A, 0x32, 0x72).problem == "paper_out"
    assert from_realtime(0x1A, 0x16, 0x12).problem == "cover_open"
    assert from_realtime(0x1A, 0x52, 0x12).problem == "error"
    assert from_realtime(0x1A, 0x12, 0x12).problem == "offline"
    low = from_realtime(0x12, 0x12, 0x1E)
    assert low.ready and low.paper_low and low.describe() == "ready, paper low"
    # <linux/lp.h>: selected 0x10, paper out 0x20, error active low 0x08
    assert from_lp_status(0x18).ready
    assert from_lp_status(0x38).problem == "paper_out"
    assert from_lp_status(0x08).problem == "offline"
    assert from_lp_status(0x10).problem == "error"


# --- rendering through python-escpos ------------------------------------------------------

@pytest.mark.parametrize("width", [58, 80])
def test_the_slip_fits_the_paper_and_says_everything(width):
    receipt, = decode(render(compose_slip(FACTS), width_mm=width))
    text = receipt.text
    for expected in ("Kantor Imigrasi", "Senin, 30 November 2026", "Pukul 09:12 WITA",
                     "Paspor Baru", "Bapak Andi S.", "3 orang di depan Anda",
                     "3 people ahead of you", "±10:45", "Harap menunggu panggilan pada",
                     "Please wait for your number on"):
        assert expected in text, expected
    number = receipt.find("A012")
    assert number.text == "A012" and number.width == number.height == 8
    assert receipt.find("Paspor Baru").width == 2
    assert receipt.cut == "full"
    for line in receipt.lines:
        assert len(line.text) * line.width <= columns(width), line.text


def test_biggest_type_shrinks_for_long_numbers_on_narrow_paper():
    assert biggest_size("A012", 58) == 8 and biggest_size("A1000", 58) == 6
    receipt, = decode(render([Text("A1000", size=BIGGEST)], width_mm=58))
    assert receipt.lines[0].width == 6


def test_names_with_accents_come_back_and_the_logo_is_a_raster(tmp_path):
    from PIL import Image

    logo = tmp_path / "logo.png"
    Image.new("L", (800, 100), 0).save(logo)      # wider than the paper: scaled down
    from drivers.printer.render import load_logo

    elements = [Text("Désirée Ñandú"), Rule()]
    receipt, = decode(render(elements, width_mm=58, logo=load_logo(str(logo), 58)))
    assert receipt.lines[0].text == "Désirée Ñandú"
    image = receipt.items[0]
    assert isinstance(image, Raster) and image.width == 384 and image.height == 48
    assert image.pixel(10, 10)


def test_optional_facts_are_left_out():
    bare = SlipFacts("Kantor", datetime(2026, 11, 30, 9, 12, tzinfo=TZ), "B001",
                     "Penggantian Paspor", reprint=True)
    receipt, = decode(render(compose_slip(bare), width_mm=80))
    assert "di depan" not in receipt.text and "Perkiraan" not in receipt.text
    assert "CETAK ULANG / REPRINT" in receipt.text
    nobody = SlipFacts("Kantor", bare.checked_in, "B001", "X", people_ahead=0)
    receipt, = decode(render(compose_slip(nobody), width_mm=80))
    assert "Tidak ada antrean di depan Anda" in receipt.text


def test_preview_draws_the_paper_dot_for_dot():
    receipt, = decode(render(compose_slip(FACTS), width_mm=58))
    img = draw(receipt, 58)
    assert img.width == 384 + 2 * 24 + 32
    # The 8x number is a solid block of black somewhere in the middle of the paper.
    dark = sum(1 for x in range(16, img.width - 16) for y in range(img.height)
               if img.getpixel((x, y))[0] < 60)
    assert dark > 20000


# --- the network printer ----------------------------------------------------------------

def test_network_printer_prints_and_refuses_when_not_ready():
    with NetworkPrinterDouble() as double:
        printer = network_printer(double, width_mm=80)
        assert printer.check().ready
        assert printer.print_slip(compose_slip(FACTS)).ready
        assert double.wait_for_receipts(1)[0].find("A012").width == 8
        for fault, code in (("paper_out", "paper_out"), ("cover_open", "cover_open"),
                            ("offline", "offline")):
            setattr(double, fault, True)
            with pytest.raises(PrinterNotReady) as e:
                printer.print_slip(compose_slip(FACTS))
            assert e.value.code == code
            setattr(double, fault, False)
        double.silent = True
        with pytest.raises(PrinterSilent, match="printer.status"):
            printer.check()
        assert len(double.receipts) == 1, "a refused slip must not reach the paper"
        double.silent = False
        without_status = network_printer(double, ask_status=False)
        assert not without_status.print_slip(compose_slip(FACTS)).known
        assert len(double.wait_for_receipts(2)) == 2


def test_network_printer_switched_off_and_on():
    with NetworkPrinterDouble() as double:
        printer = network_printer(double)
        double.stop()
        with pytest.raises(PrinterUnavailable, match="refused"):
            printer.print_slip(compose_slip(FACTS))
        double.start()
        printer.print_slip(compose_slip(FACTS))
        assert len(double.wait_for_receipts(1)) == 1


def test_a_printer_that_stops_taking_data_times_out_instead_of_hanging():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    held = []
    threading.Thread(target=lambda: held.append(listener.accept()), daemon=True).start()
    conn = NetworkConnection("127.0.0.1", listener.getsockname()[1], timeout_s=0.5,
                             status_timeout_s=0.2)
    try:
        with conn:
            started = time.monotonic()
            with pytest.raises(PrinterTimeout, match="took no data"):
                conn.write(b"x" * 64 * 1024 * 1024)
            assert time.monotonic() - started < 10
            with pytest.raises(PrinterTimeout):       # even a status request cannot get in
                conn.ask_status()
    finally:
        listener.close()
        for sock, _ in held:
            sock.close()


# --- serial and file printers ---------------------------------------------------------------

def test_serial_printer_on_a_pty_pulled_and_replugged(tmp_path):
    path = str(tmp_path / "printer-pty")
    with SerialPrinterDouble(path) as double:
        printer = ThermalPrinter(lambda: SerialConnection(path, 9600, **FAST), width_mm=58)
        double.paper_low = True
        status = printer.print_slip(compose_slip(FACTS))
        assert status.ready and status.paper_low
        assert double.wait_for_receipts(1)[0].find("A012").width == 8
        double.unplug()
        with pytest.raises(PrinterUnavailable, match="does not exist"):
            printer.check()
        double.replug()
        double.paper_out = True
        with pytest.raises(PrinterNotReady, match="paper out"):
            printer.print_slip(compose_slip(FACTS))
        double.paper_out = False
        printer.print_slip(compose_slip(FACTS))
        assert len(double.wait_for_receipts(2)) == 2


def test_file_printer_writes_to_a_file_or_a_pty_and_says_it_has_no_status(tmp_path):
    paper = tmp_path / "lp0"
    paper.write_bytes(b"")
    printer = ThermalPrinter(lambda: FileConnection(str(paper), **FAST), width_mm=80)
    status = printer.print_slip(compose_slip(FACTS))
    assert not status.known and "plain file" in status.describe()
    printer.print_slip(compose_slip(FACTS))
    assert [r.find("A012").width for r in decode(paper.read_bytes())] == [8, 8]

    path = str(tmp_path / "usb-pty")
    with SerialPrinterDouble(path) as double:       # a character device that is no lp port
        printer = ThermalPrinter(lambda: FileConnection(path, **FAST), width_mm=58)
        assert "not a line-printer device" in printer.print_slip(compose_slip(FACTS)).describe()
        assert len(double.wait_for_receipts(1)) == 1
        assert double.decoder.status_requests == [], "a file device is never sent DLE EOT"
        double.unplug()
        with pytest.raises(PrinterUnavailable, match="plugged in"):
            printer.print_slip(compose_slip(FACTS))


def test_file_printer_that_nobody_reads_times_out(tmp_path):
    fifo = tmp_path / "stuck"
    os.mkfifo(fifo)
    with pytest.raises(PrinterUnavailable):        # no reader at all: nothing at the end
        FileConnection(str(fifo), **FAST).open()
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with FileConnection(str(fifo), timeout_s=0.3) as conn:
            with pytest.raises(PrinterTimeout, match="took no data"):
                conn.write(b"x" * 1024 * 1024)
    finally:
        os.close(reader)


def test_the_test_page(tmp_path):
    page = compose_test_page("Kantor", datetime(2026, 11, 30, 9, 0, tzinfo=TZ), "printer X")
    receipt, = decode(render(page, width_mm=58))
    assert "HALAMAN UJI / TEST PAGE" in receipt.text and "printer X" in receipt.text
