"""What the printed queue slip says: pure content, no printer.

The applicant keeps the slip while waiting, so it carries what the screen showed for a few
seconds: the office, when they checked in, their queue number in the largest type the printer
has, the service, how many are ahead of them and (when an estimate exists) about when they
will be called, their name as the screen shows it (``display.names`` applies on paper too),
and the instruction to watch the screen. Indonesian first, English second.

The slip is a short list of elements (``Text``, ``Rule``, ``Gap``); a printer driver decides
how they become ESC/POS bytes and wraps lines to its paper width.

Example::

    >>> from zoneinfo import ZoneInfo
    >>> facts = SlipFacts("Kantor Imigrasi Tarakan", datetime(2026, 11, 30, 9, 12,
    ...                   tzinfo=ZoneInfo("Asia/Makassar")), "A012", "Paspor Baru",
    ...                   name="Bapak Andi S.", people_ahead=3)
    >>> [e.text for e in compose_slip(facts) if isinstance(e, Text)][4]
    'A012'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from appliance.verdicts import indonesian_date

BIGGEST = 0  # Text.size: the largest type that fits the paper width


@dataclass(frozen=True)
class Text:
    """A line (wrapped by the printer if too long); ``size`` 1-8 or ``BIGGEST``."""

    text: str
    size: int = 1
    align: str = "center"   # 'center' | 'left'
    bold: bool = False


@dataclass(frozen=True)
class Rule:
    """A dashed line across the paper."""


@dataclass(frozen=True)
class Gap:
    """Empty lines."""

    lines: int = 1


Element = Text | Rule | Gap


@dataclass(frozen=True)
class SlipFacts:
    """Everything a slip says. ``people_ahead`` and ``estimated_call`` may be unknown."""

    office_name: str
    checked_in: datetime                 # office-local, aware
    ticket: str
    service_name: str
    name: str = ""                       # public form, already per display.names
    people_ahead: int | None = None
    estimated_call: datetime | None = None
    reprint: bool = False


def people_ahead_lines(n: int) -> tuple[str, str]:
    if n <= 0:
        return "Tidak ada antrean di depan Anda", "Nobody is ahead of you"
    return f"{n} orang di depan Anda", f"{n} {'person' if n == 1 else 'people'} ahead of you"


def compose_slip(facts: SlipFacts) -> tuple[Element, ...]:
    """The slip's elements, top to bottom."""
    when = facts.checked_in
    out: list[Element] = [
        Text(facts.office_name, bold=True),
        Text(indonesian_date(when.date().isoformat())),
        Text(f"Pukul {when:%H:%M} {when.tzname() or ''}".rstrip()),
        Rule(),
        Text("Nomor antrean / Queue number"),
        Text(facts.ticket, size=BIGGEST, bold=True),
        Text(facts.service_name, size=2, bold=True),
    ]
    if facts.name:
        out.append(Text(facts.name))
    if facts.people_ahead is not None or facts.estimated_call is not None:
        out.append(Rule())
    if facts.people_ahead is not None:
        out.extend(Text(line) for line in people_ahead_lines(facts.people_ahead))
    if facts.estimated_call is not None:
        at = f"{facts.estimated_call:%H:%M}"
        out += [Text(f"Perkiraan dipanggil pukul ±{at}", bold=True),
                Text(f"Estimated call at about {at}")]
    out += [
        Rule(),
        Text("Harap menunggu panggilan pada layar."),
        Text("Please wait for your number on the screen."),
    ]
    if facts.reprint:
        out.append(Text("CETAK ULANG / REPRINT"))
    return tuple(out)


def compose_test_page(office_name: str, now: datetime, describe: str) -> tuple[Element, ...]:
    """The technician's test page: both type extremes, the printer's own description."""
    return (
        Text(office_name or "Antrean", bold=True),
        Text(f"{indonesian_date(now.date().isoformat())}  {now:%H:%M}"),
        Rule(),
        Text("HALAMAN UJI / TEST PAGE", bold=True),
        Text("A000", size=BIGGEST, bold=True),
        Text(describe, align="left"),
        Text("ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789", align="left"),
        Rule(),
        Text("Jika halaman ini terbaca, printer siap."),
        Text("If you can read this, the printer is ready."),
    )
