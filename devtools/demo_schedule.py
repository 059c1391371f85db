"""Generated day schedules for the reference server: believable lobbies, reproducible per date.

The same office, date and size always give the same booking codes and names (seeded), so a
demo can print a code on a ticket and still find it after the server restarts.

Example::

    >>> doc = generate_schedule("TRK", "Kantor Imigrasi", "Asia/Makassar", "2026-11-30", 3)
    >>> len(doc["appointments"]), doc["appointments"][0]["service"] in ("A", "B")
    (3, True)
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from datetime import date as Date
from zoneinfo import ZoneInfo

FORMAT = "antrean.schedule/1"
OPEN, CLOSE = "08:00", "16:00"
SLOT_MINUTES = 30
SERVICES = [{"code": "A", "name": "Paspor Baru"}, {"code": "B", "name": "Penggantian Paspor"}]
COUNTERS = [
    {"id": 1, "name": "Loket 1", "services": ["A", "B"]},
    {"id": 2, "name": "Loket 2", "services": ["A"]},
    {"id": 3, "name": "Loket 3", "services": ["B"]},
    {"id": 4, "name": "Loket 4", "services": ["A", "B"]},
]
ANNOUNCEMENTS = [
    "Harap siapkan dokumen asli Anda: KTP, Kartu Keluarga dan akta kelahiran.",
    "Pemohon prioritas (lansia, disabilitas, ibu hamil, anak kecil) silakan ke Loket 1.",
    "Layanan paspor tidak dipungut biaya tambahan di luar PNBP resmi.",
]
MEN = ["Andi", "Muhammad", "Budi", "Agus", "Rudi", "Dedi", "Hendra", "Yusuf", "Rizky", "Fajar",
       "Ahmad", "Eko", "Hadi", "Joko", "Bayu", "Arif", "Dimas", "Ilham", "Wahyu", "Teguh"]
WOMEN = ["Siti", "Dewi", "Sri", "Nur", "Rina", "Putri", "Ayu", "Fitri", "Lestari", "Wulan",
         "Ratna", "Indah", "Yuliana", "Maya", "Nurul", "Dian", "Mega", "Intan", "Novi", "Ani"]
FAMILY = ["Saputra", "Rahmawati", "Rizky", "Hidayat", "Santoso", "Wijaya", "Kurniawan", "Lestari",
          "Pratama", "Setiawan", "Susanti", "Nugroho", "Siregar", "Nasution", "Simanjuntak",
          "Lubis", "Harahap", "Sitompul", "Gunawan", "Permata", "Ramadhan", "Firmansyah",
          "Yulianti", "Hasibuan", "Manurung", "Tanjung", "Daeng", "Pangaribuan", "Effendi"]
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"   # no I/O/0/1: codes are read aloud


def office_today(tz_name: str, now: float) -> str:
    return datetime.fromtimestamp(now, ZoneInfo(tz_name)).date().isoformat()


def next_day(day: str) -> str:
    return (Date.fromisoformat(day) + timedelta(days=1)).isoformat()


def _name(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.5:
        first, salutation = rng.choice(MEN), "Bapak"
    else:
        first, salutation = rng.choice(WOMEN), "Ibu"
    if rng.random() < 0.03:          # children and unknowns: no salutation
        salutation = ""
    if rng.random() < 0.08:          # single names are common in Indonesia
        return first, salutation
    return f"{first} {rng.choice(FAMILY)}", salutation


def generate_schedule(office_id: str, office_name: str, tz_name: str, day: str,
                      appointments: int, *, version: int = 1,
                      generated_at: float | None = None,
                      hours: tuple[str, str] = (OPEN, CLOSE)) -> dict:
    """A schedule document for ``day`` (contract section 1) with ``appointments`` bookings.

    ``hours`` are the opening hours the slots fill (the demo moves them around "now").
    """
    tz = ZoneInfo(tz_name)
    rng = random.Random(f"{office_id}/{day}/{appointments}")
    d = Date.fromisoformat(day)
    (oh, om), (ch, cm) = (map(int, t.split(":")) for t in hours)
    opens = datetime(d.year, d.month, d.day, oh, om, tzinfo=tz)
    slots = max(1, ((ch * 60 + cm) - (oh * 60 + om)) // SLOT_MINUTES)
    codes: set[str] = set()
    items = []
    for i in range(appointments):
        while True:
            code = "".join(rng.choices(CODE_ALPHABET, k=8))
            if code not in codes:
                codes.add(code)
                break
        name, salutation = _name(rng)
        start = opens + timedelta(minutes=SLOT_MINUTES * (i * slots // max(appointments, 1)))
        end = start + timedelta(minutes=SLOT_MINUTES)
        items.append({
            "booking_code": code, "name": name, "salutation": salutation,
            "service": "A" if rng.random() < 0.6 else "B",
            "slot_start": start.isoformat(), "slot_end": end.isoformat(),
            "priority": rng.random() < 0.06,
            "status": "cancelled" if rng.random() < 0.04 else "booked",
        })
    gen = datetime.fromtimestamp(generated_at if generated_at is not None else 0, UTC)
    return {
        "format": FORMAT,
        "office": {"id": office_id, "name": office_name, "timezone": tz_name},
        "date": day,
        "version": version,
        "generated_at": gen.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "opening_hours": {"open": hours[0], "close": hours[1]},
        "services": SERVICES,
        "counters": COUNTERS,
        "appointments": items,
        "announcements": ANNOUNCEMENTS,
    }
