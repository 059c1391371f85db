"""The verdicts at the reader and what the applicant reads for each (central-api.md section 3).

Codes are the contract's; texts are the appliance's own, Indonesian first, English second.
Kept apart from ``checkin`` so the screen can word a verdict without loading the crypto
that deciding one needs.
"""

from __future__ import annotations

from datetime import date as date_cls

OK = "ok"
VERDICTS = ("ok", "already_checked_in", "unknown", "unreadable", "bad_signature",
            "wrong_office", "wrong_day", "too_early", "too_late", "cancelled", "no_schedule")

_DAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
_MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
           "September", "Oktober", "November", "Desember")


def indonesian_date(iso: str) -> str:
    d = date_cls.fromisoformat(iso)
    return f"{_DAYS[d.weekday()]}, {d.day} {_MONTHS[d.month - 1]} {d.year}"


def english_date(iso: str) -> str:
    return date_cls.fromisoformat(iso).strftime("%A, %d %B %Y")


def messages_for(verdict: str, ticket: str | None = None, detail: str | None = None,
                 name: str = "") -> tuple[str, str]:
    """The applicant's texts for a verdict: (Indonesian, English).

    ``name`` is the public form (salutation and privacy already applied); ``detail`` is the
    date (YYYY-MM-DD) for ``wrong_day`` or the time (HH:MM) for ``too_early``/``too_late``.
    """
    who = f", {name}" if name else ""
    stop = "" if who.endswith(".") else "."  # "Andi S." already ends the sentence
    if verdict == "ok":
        return (f"Selamat datang{who}{stop} Nomor antrean Anda {ticket}.",
                f"Welcome{who}{stop} Your queue number is {ticket}.")
    if verdict == "already_checked_in":
        return (f"Anda sudah check-in hari ini. Nomor antrean Anda {ticket}.",
                f"You are already checked in today. Your queue number is {ticket}.")
    if verdict == "wrong_day":
        return (f"Jadwal Anda pada {indonesian_date(detail)}. Silakan datang pada hari itu.",
                f"Your appointment is on {english_date(detail)}. Please come on that day.")
    if verdict == "too_early":
        return (f"Terlalu awal. Check-in untuk jadwal Anda dibuka pukul {detail}.",
                f"Too early. Check-in for your appointment opens at {detail}.")
    if verdict == "too_late":
        return (f"Waktu check-in Anda sudah lewat (sampai pukul {detail}). "
                "Silakan ke petugas.",
                f"Your check-in time has passed (it closed at {detail}). Please see an officer.")
    fixed = {
        "unknown": ("Kode booking tidak ada dalam jadwal hari ini. Silakan ke petugas.",
                    "Booking code not in today's schedule. Please see an officer."),
        "unreadable": ("Kode tidak terbaca. Silakan pindai ulang atau ke petugas.",
                       "The code could not be read. Please scan again or see an officer."),
        "bad_signature": ("Tiket tidak sah. Silakan ke petugas.",
                          "This ticket is not valid. Please see an officer."),
        "wrong_office": ("Tiket ini untuk kantor imigrasi lain. Silakan ke petugas.",
                         "This ticket is for another immigration office. "
                         "Please see an officer."),
        "cancelled": ("Booking ini sudah dibatalkan. Silakan ke petugas.",
                      "This booking has been cancelled. Please see an officer."),
        "no_schedule": ("Jadwal hari ini belum tersedia. Silakan ke petugas.",
                        "Today's schedule is not available yet. Please see an officer."),
    }
    return fixed[verdict]
