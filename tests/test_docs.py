"""Docstring examples run or go (issue 11): none in the packages ``make test`` runs them in
may be switched off with ``+SKIP``, so every example shown is one that was seen to work."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIPPED = re.compile(r"doctest:[^\n]*\+SKIP")


def doctest_packages() -> list[str]:
    """The folders ``make test`` runs with ``--doctest-modules`` (the Makefile's PACKAGES)."""
    match = re.search(r"^PACKAGES\s*:=\s*(.+)$", (REPO / "Makefile").read_text(), re.M)
    assert match, "the Makefile no longer names PACKAGES: update this test with it"
    return match.group(1).split()


def skipped_examples(root: Path, packages: list[str]) -> list[str]:
    """``path:line`` of every docstring example line switched off with ``+SKIP``."""
    return [f"{path.relative_to(root)}:{n}"
            for package in packages for path in sorted((root / package).rglob("*.py"))
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if SKIPPED.search(line)]


def test_every_package_with_code_runs_its_examples():
    assert set(doctest_packages()) == {"appliance", "drivers", "display", "sync", "devtools"}


def test_no_docstring_example_is_skipped():
    found = skipped_examples(REPO, doctest_packages())
    assert not found, ("docstring examples must run under `make test` (with the example "
                       "office of devtools/example_office.py) or be removed; skipped at: "
                       + ", ".join(found))


def test_a_skipped_example_is_found(tmp_path):
    """The check itself finds the forms a skip takes, so it cannot pass by missing them."""
    (tmp_path / "sync").mkdir()
    (tmp_path / "sync" / "x.py").write_text(
        '"""\n    >>> ok()\n    >>> a()  # doctest: +SKIP\n'
        '    >>> b()  # doctest: +ELLIPSIS, +SKIP\n"""\n')
    assert skipped_examples(tmp_path, ["sync"]) == ["sync/x.py:3", "sync/x.py:4"]
