"""Slip elements to ESC/POS bytes, through python-escpos.

python-escpos builds the commands (text size, alignment, code pages for names with accents,
raster images, the cut); its ``Dummy`` printer collects them so the whole slip exists as one
byte string before any of it goes to the printer. The paper width picks the geometry:
58 mm paper has 384 dots (32 characters of font A, 12 dots wide), 80 mm paper 576 dots
(48 characters).

Example::

    >>> data = render([Text("A012", size=BIGGEST)], width_mm=58)
    >>> b"A012" in data
    True
"""

from __future__ import annotations

import copy
import textwrap

from appliance.slip import BIGGEST, Element, Gap, Rule, Text

DOTS = {58: 384, 80: 576}
CHAR_DOTS = 12      # font A cell width
MAX_SIZE = 8        # GS ! allows 1-8 times width and height


def columns(width_mm: int) -> int:
    return DOTS[width_mm] // CHAR_DOTS


def biggest_size(text: str, width_mm: int) -> int:
    """The largest type multiplier at which ``text`` still fits on one line."""
    return max(1, min(MAX_SIZE, columns(width_mm) // max(1, len(text))))


def _printer(width_mm: int):
    from escpos.printer import Dummy

    p = Dummy(profile="default")
    # The generic profile knows no paper width; give this printer its own copy to set.
    data = copy.deepcopy(p.profile.profile_data)
    data["media"]["width"] = {"mm": width_mm, "pixels": DOTS[width_mm]}
    data["fonts"]["0"]["columns"] = columns(width_mm)
    p.profile.profile_data = data
    return p


def load_logo(path: str, width_mm: int):
    """The logo as a 1-bit image no wider than the paper (Pillow); raises OSError/ValueError."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        logo = img.convert("L")
    limit = DOTS[width_mm]
    if logo.width > limit:
        logo = logo.resize((limit, max(1, round(logo.height * limit / logo.width))))
    return logo.convert("1")


def render(elements: tuple[Element, ...] | list[Element], *, width_mm: int = 80,
           cut: bool = True, logo=None) -> bytes:
    """One slip as ESC/POS bytes: initialise, (logo), the elements, feed and cut."""
    p = _printer(width_mm)
    cols = columns(width_mm)
    p.hw("INIT")
    if logo is not None:
        p.image(logo, center=True)
    for element in elements:
        if isinstance(element, Rule):
            p.set_with_default()
            p.textln("-" * cols)
        elif isinstance(element, Gap):
            p.ln(element.lines)
        elif isinstance(element, Text):
            if element.size == BIGGEST:
                size = biggest_size(element.text, width_mm)
            else:
                size = max(1, min(MAX_SIZE, element.size))
            p.set_with_default(align=element.align, bold=element.bold,
                               custom_size=size > 1, width=size, height=size)
            for line in textwrap.wrap(element.text, max(1, cols // size)) or [""]:
                p.textln(line)
        else:
            raise TypeError(f"not a slip element: {element!r}")
    p.set_with_default()
    if cut:
        p.cut()
    else:
        p.print_and_feed(6)
    return p.output
