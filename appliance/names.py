"""How an applicant's name appears in public: on the lobby screen and in the spoken call.

The ``display.names`` setting trades recognition against privacy: ``full`` shows the name as
booked, ``first`` (the default) the first name and the initial of the last word
(``Andi Saputra`` -> ``Andi S.``), ``none`` no name at all.

Example::

    >>> public_name("Andi Saputra", "first")
    'Andi S.'
    >>> public_name("Andi Saputra", "first", salutation="Bapak")
    'Bapak Andi S.'
"""

from __future__ import annotations


def public_name(name: str, mode: str, salutation: str = "") -> str:
    words = name.split()
    if mode == "none" or not words:
        shown = ""
    elif mode == "full":
        shown = " ".join(words)
    elif len(words) == 1:
        shown = words[0]
    else:
        shown = f"{words[0]} {words[-1][0]}."
    if shown and salutation:
        return f"{salutation} {shown}"
    return shown
