"""Draw a decoded receipt as the paper would look: a PNG for the README, the demo and tests.

Geometry follows the printer: the paper is 384 (58 mm) or 576 (80 mm) dots wide, a
character of font A is a 12 x 24 dot cell, ``GS !`` multiplies it (pixel-doubled, as a thermal
head does), raster images are drawn dot for dot. Text uses DejaVu Sans Mono (Debian's
``fonts-dejavu-core``), Pillow's built-in font when it is missing.

Example::

    >>> import os, tempfile
    >>> from devtools.escpos_decode import decode
    >>> receipts = decode(b"\\x1b@A012\\n\\x1dV\\x00")       # as a file printer would hold it
    >>> out = os.path.join(tempfile.mkdtemp(), "slip.png")
    >>> save_png(receipts[0], out, width_mm=58) == out and os.path.getsize(out) > 0
    True
"""

from __future__ import annotations

import os

from devtools.escpos_decode import Line, QRCode, Raster, Receipt
from drivers.printer.render import CHAR_DOTS, DOTS

CELL_H = 24
MARGIN = 24                 # paper border around the printable width, in dots
FONT_DIR = "/usr/share/fonts/truetype/dejavu"


def _font(bold: bool):
    from PIL import ImageFont

    path = os.path.join(FONT_DIR, "DejaVuSansMono-Bold.ttf" if bold else "DejaVuSansMono.ttf")
    try:
        return ImageFont.truetype(path, 20)
    except OSError:
        return ImageFont.load_default()


def _line_image(line: Line):
    """One printed line at its own scale, as a 1-bit-looking grayscale strip."""
    from PIL import Image, ImageDraw

    height = CELL_H * line.height
    width = sum(len(s.text) * CHAR_DOTS * s.style.width for s in line.spans)
    strip = Image.new("L", (max(1, width), height), 255)
    x = 0
    for span in line.spans:
        if not span.text:
            continue
        cell = Image.new("L", (len(span.text) * CHAR_DOTS, CELL_H), 255)
        draw = ImageDraw.Draw(cell)
        for i, ch in enumerate(span.text):
            draw.text((i * CHAR_DOTS + CHAR_DOTS / 2, CELL_H / 2), ch, fill=0,
                      font=_font(span.style.bold), anchor="mm")
        w, h = span.style.width, span.style.height
        scaled = cell.resize((cell.width * w, CELL_H * h), Image.NEAREST)
        strip.paste(scaled, (x, height - scaled.height))
        x += scaled.width
    return strip


def _raster_image(raster: Raster):
    from PIL import Image

    img = Image.new("L", (raster.width, raster.height), 255)
    px = img.load()
    for y in range(raster.height):
        for x in range(raster.width):
            if raster.pixel(x, y):
                px[x, y] = 0
    return img


def _qr_image(qr: QRCode):
    import qrcode

    code = qrcode.QRCode(box_size=max(1, qr.module_size), border=1)
    code.add_data(qr.data)
    code.make(fit=True)
    return code.make_image().get_image().convert("L")


def draw(receipt: Receipt, width_mm: int = 80):
    """The receipt as a Pillow image, paper white on a grey table, cut edge at the bottom."""
    from PIL import Image, ImageDraw

    dots = DOTS[width_mm]
    parts = []
    for item in receipt.items:
        if isinstance(item, Line):
            parts.append((_line_image(item), item.align))
        elif isinstance(item, Raster):
            parts.append((_raster_image(item), item.align))
        elif isinstance(item, QRCode):
            parts.append((_qr_image(item), item.align))
    height = sum(img.height for img, _ in parts) + 2 * MARGIN
    paper = Image.new("L", (dots + 2 * MARGIN, max(height, 4 * MARGIN)), 255)
    y = MARGIN
    for img, align in parts:
        if img.width > dots:
            img = img.crop((0, 0, dots, img.height))
        x = {"left": 0, "center": (dots - img.width) // 2, "right": dots - img.width}[align]
        paper.paste(img, (MARGIN + x, y))
        y += img.height
    table = Image.new("RGB", (paper.width + 32, paper.height + 32), (205, 208, 212))
    table.paste(paper.convert("RGB"), (16, 16))
    if receipt.cut:
        edge = ImageDraw.Draw(table)
        bottom = 16 + paper.height
        for x in range(16, 16 + paper.width, 12):
            edge.line([(x, bottom), (x + 6, bottom - 5), (x + 12, bottom)], fill=(150, 150, 150))
    return table


def save_png(receipt: Receipt, path: str, width_mm: int = 80) -> str:
    """Write the picture atomically (temp file + rename); returns ``path``."""
    tmp = f"{path}.tmp{os.getpid()}.png"
    draw(receipt, width_mm).save(tmp, "PNG")
    os.replace(tmp, path)
    return path


class SlipFolder:
    """Turn a file printer's output into one PNG per slip (the demo's "printer").

    ``poll()`` reads what was appended to ``paper`` since the last call, decodes it and
    writes each newly cut slip as ``slip-0001-A012.png`` into ``folder``; returns their paths.
    """

    def __init__(self, paper: str, folder: str, width_mm: int = 80):
        from devtools.escpos_decode import Decoder

        self.paper = paper
        self.folder = folder
        self.width_mm = width_mm
        self.decoder = Decoder()
        self._offset = 0
        self._saved = 0
        os.makedirs(folder, exist_ok=True)

    def poll(self) -> list[str]:
        try:
            with open(self.paper, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        self.decoder.feed(data)
        written = []
        for receipt in self.decoder.receipts[self._saved:]:
            self._saved += 1
            number = next((line.text for line in receipt.lines if line.width >= 4), "slip")
            name = f"slip-{self._saved:04d}-{''.join(c for c in number if c.isalnum())}.png"
            written.append(save_png(receipt, os.path.join(self.folder, name), self.width_mm))
        return written


def example(path: str, width_mm: int = 58) -> str:
    """The README's slip: a made-up applicant, rendered and decoded like a real one."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from appliance.slip import SlipFacts, compose_slip
    from devtools.escpos_decode import decode
    from drivers.printer.render import render

    tz = ZoneInfo("Asia/Makassar")
    facts = SlipFacts("Kantor Imigrasi Kelas II TPI Tarakan",
                      datetime(2026, 11, 30, 9, 12, tzinfo=tz), "A012", "Paspor Baru",
                      name="Bapak Andi S.", people_ahead=3,
                      estimated_call=datetime(2026, 11, 30, 10, 45, tzinfo=tz))
    receipt, = decode(render(compose_slip(facts), width_mm=width_mm))
    return save_png(receipt, path, width_mm)


if __name__ == "__main__":
    import sys

    print(example(sys.argv[1] if len(sys.argv) > 1 else "slip.png",
                  int(sys.argv[2]) if len(sys.argv) > 2 else 58))
