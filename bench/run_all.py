"""``make bench``: run every benchmark and write one report, ``bench/REPORT.md``.

Each benchmark prints its own human-readable lines and ``RESULT {json}`` lines; the report has
the machine it ran on, a table of the results against their targets, and each benchmark's
full output. Benchmarks run one at a time so they do not disturb each other.

``python bench/run_all.py NAME.py ...`` runs only those and replaces just their rows and
sections in the existing report (the machine section notes when they ran), so one benchmark
can be refreshed without the half-hour of the others. The soak's rows and section are
written by ``make soak`` (``bench/soak_report.py``) and kept by both.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["checkin.py", "scan_latency.py", "decode.py", "display.py", "display_memory.py",
           "sync.py", "printer.py", "services.py", "wait_estimate.py"]
# Parts of the report measured elsewhere: ``make soak`` writes the soak's (tests/soak).
REPORTED = [*BENCHES, "soak"]
TABLE_HEAD = ["| benchmark | metric | median / value | p99 | unit | target | met |",
              "| --- | --- | --- | --- | --- | --- | --- |"]


def machine() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [f"- CPU: {cpu}, {os.cpu_count()} cores", f"- memory: {mem:.0f} GiB",
            f"- system: {platform.platform()}", f"- Python {platform.python_version()}",
            f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"]


def fmt(v) -> str:
    if v is None:
        return ""
    return f"{v:,.2f}" if isinstance(v, float) and abs(v) < 1000 else f"{v:,.0f}"


def table_row(name: str, r: dict) -> str:
    target = "" if r["target"] is None else ("< " if r["lower_is_better"] else "> ") + fmt(
        r["target"])
    met = {True: "yes", False: "**NO**", None: ""}[r["met"]]
    note = f" ({r['note']})" if r.get("note") else ""
    return (f"| {name} | {r['metric']}{note} | {fmt(r['value'])} | {fmt(r['p99'])} "
            f"| {r['unit']} | {target} | {met} |")


def _bench_of(line: str) -> str:
    """The part a table row or section heading belongs to ('' for anything else)."""
    head = line.lstrip("|# ").split(" ", 1)[0]
    return head if head in REPORTED else ""


def split_report(report: str) -> tuple[list[str], list[str], dict[str, str]]:
    """A report's machine lines (title to before ``## Results``), its table rows, and its
    sections by the part they belong to."""
    lines = report.rstrip("\n").split("\n")
    start = lines.index(TABLE_HEAD[1]) + 1
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    head = lines[:start - 2]
    top = head[:head.index("## Results")]
    parts = "\n".join(lines[end:]).split("\n## ")
    sections = {_bench_of("## " + p): ("## " + p).rstrip("\n") for p in parts[1:]}
    return top, lines[start:end], sections


def merge_report(old: str, only: list[str], table: list[str], sections: list[str], *,
                 notes: list[str] | None = None) -> str:
    """The report ``old`` with the rows and sections of the parts in ``only`` replaced
    (or added in REPORTED order); everything else is kept as it was measured. ``notes``
    replace the machine section's notes about ``only`` (default: when they were re-run)."""
    top, rows, kept = split_report(old)
    rows = [r for r in rows if _bench_of(r) not in only] + table
    rows.sort(key=lambda r: REPORTED.index(_bench_of(r)) if _bench_of(r) else len(REPORTED))
    for section in sections:
        kept[_bench_of(section)] = section.rstrip("\n")
    ordered = [kept[b] for b in REPORTED if b in kept]
    if notes is None:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        cpu = machine()[0].removeprefix("- CPU: ")
        notes = [f"- {', '.join(only)} re-run alone on {when} ({cpu})"]
    top = [h for h in top if not h.startswith(f"- {', '.join(only)} ")]
    while top and not top[-1]:
        top.pop()
    return "\n".join([*top, *notes, "", "## Results", "", *TABLE_HEAD, *rows, "",
                      "\n\n".join(ordered), ""])


def keep_soak(old: str, new: str) -> str:
    """``new`` (a whole ``make bench`` report) with the last soak's rows, section and note
    from ``old``: only ``make soak`` measures those."""
    top, rows, sections = split_report(old)
    if "soak" not in sections:
        return new
    return merge_report(new, ["soak"], [r for r in rows if _bench_of(r) == "soak"],
                        [sections["soak"]], notes=[h for h in top if h.startswith("- soak ")])


SYSTEM_TEST_BEGIN, SYSTEM_TEST_END = "<!-- system-test: begin -->", "<!-- system-test: end -->"


def set_aside_system_test(text: str) -> tuple[str, str]:
    """The report without the booted VM's section, and that section (``make system-test``
    writes it between its markers; the benchmarks here never measure it, so every rewrite
    keeps it as it was, at the end)."""
    if SYSTEM_TEST_BEGIN not in text or SYSTEM_TEST_END not in text:
        return text, ""
    before, rest = text.split(SYSTEM_TEST_BEGIN, 1)
    inside, after = rest.split(SYSTEM_TEST_END, 1)
    block = SYSTEM_TEST_BEGIN + inside + SYSTEM_TEST_END
    return before.rstrip("\n") + "\n" + after.lstrip("\n"), block


def main() -> int:
    only = sys.argv[1:] or BENCHES
    unknown = [name for name in only if name not in BENCHES]
    if unknown:
        print(f"run_all: unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHES)}",
              file=sys.stderr)
        return 2
    sections, rows, failed = [], [], []
    for name in only:
        path = HERE / name
        if not path.exists():
            sections.append(f"## {name}\n\nnot present\n")
            continue
        print(f"== {name}", flush=True)
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                              cwd=HERE.parent)
        took = time.monotonic() - t0
        human = []
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                rows.append((name, json.loads(line[7:])))
            else:
                human.append(line)
        print("\n".join(human), flush=True)
        if proc.returncode != 0:
            failed.append(name)
            human.append(f"FAILED with exit code {proc.returncode}:\n{proc.stderr[-3000:]}")
        sections.append(f"## {name} ({took:.0f} s)\n\n```\n" + "\n".join(human) + "\n```\n")
    table = [table_row(name, r) for name, r in rows]
    report_path = HERE / "REPORT.md"
    old, system_test = set_aside_system_test(report_path.read_text()
                                             if report_path.exists() else "")
    if len(only) == len(BENCHES):
        report = ["# Benchmark report", "", "Regenerated by `make bench` (`bench/run_all.py`); "
                  "numbers are measured, never edited by hand.", "", "## Machine", "",
                  *machine(), "", "## Results", "", *TABLE_HEAD, *table, "", *sections]
        text = "\n".join(report)
        if old:
            text = keep_soak(old, text)
        report_path.write_text(text.rstrip("\n") + ("\n\n" + system_test + "\n"
                                                     if system_test else "\n"))
        print(f"wrote {report_path}")
    elif old:
        text = merge_report(old, only, table, sections)
        report_path.write_text(text.rstrip("\n") + ("\n\n" + system_test + "\n"
                                                     if system_test else "\n"))
        print(f"updated {', '.join(only)} in {report_path}")
    else:
        print(f"{report_path} does not exist yet: `make bench` writes it whole")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
