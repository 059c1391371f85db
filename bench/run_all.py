"""``make bench``: run every benchmark and write one report, ``bench/REPORT.md``.

Each benchmark prints its own human-readable lines and ``RESULT {json}`` lines; the report has
the machine it ran on, a table of the results against their targets, and each benchmark's
full output. Benchmarks run one at a time so they do not disturb each other.

``python bench/run_all.py display_memory.py`` runs only the benchmarks named and updates
just their rows and sections of the existing report (noting the partial run under
"Machine"), so one benchmark can be measured again without rerunning them all.
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
           "sync.py", "printer.py", "services.py"]
REPORT = HERE / "REPORT.md"


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


def previous_report(path: Path) -> tuple[list[str], dict[str, list[str]], dict[str, str]]:
    """Machine lines, table rows by benchmark and sections by benchmark of a report."""
    machine_lines, rows, sections = [], {}, {}
    if not path.exists():
        return machine_lines, rows, sections
    part = None
    for block in path.read_text().split("\n## ")[1:]:
        title, _, body = block.partition("\n")
        if title == "Machine":
            machine_lines = [ln for ln in body.splitlines() if ln.startswith("- ")]
        elif title == "Results":
            for ln in body.splitlines():
                cells = ln.split(" | ")
                if ln.startswith("| ") and cells[0][2:] in BENCHES:
                    rows.setdefault(cells[0][2:], []).append(ln)
        else:
            part = title.split(" (")[0]
            sections[part] = f"## {block.rstrip()}\n"
    return machine_lines, rows, sections


def main() -> int:
    only = sys.argv[1:] or BENCHES
    partial = len(only) < len(BENCHES)
    sections: dict[str, str] = {}
    rows: dict[str, list[str]] = {}
    failed = []
    for name in only:
        path = HERE / name
        if not path.exists():
            sections[name] = f"## {name}\n\nnot present\n"
            continue
        print(f"== {name}", flush=True)
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                              cwd=HERE.parent)
        took = time.monotonic() - t0
        human = []
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                rows.setdefault(name, []).append(table_row(name, json.loads(line[7:])))
            else:
                human.append(line)
        print("\n".join(human), flush=True)
        if proc.returncode != 0:
            failed.append(name)
            human.append(f"FAILED with exit code {proc.returncode}:\n{proc.stderr[-3000:]}")
        sections[name] = f"## {name} ({took:.0f} s)\n\n```\n" + "\n".join(human) + "\n```\n"
    machine_lines = machine()
    if partial:
        if failed:
            return 1                  # never replace good figures with a failed run's
        old_machine, old_rows, old_sections = previous_report(REPORT)
        if old_machine:
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            machine_lines = [ln for ln in old_machine if not ln.startswith(
                f"- {', '.join(only)} measured again alone")]
            machine_lines.append(f"- {', '.join(only)} measured again alone on {when}")
        rows = {**old_rows, **rows}
        sections = {**old_sections, **sections}
    table = ["| benchmark | metric | median / value | p99 | unit | target | met |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    table += [row for name in BENCHES for row in rows.get(name, [])]
    report = ["# Benchmark report", "", "Regenerated by `make bench` (`bench/run_all.py`); "
              "numbers are measured, never edited by hand.", "", "## Machine", "",
              *machine_lines, "", "## Results", "", *table, "",
              *[sections[name] for name in BENCHES if name in sections]]
    REPORT.write_text("\n".join(report))
    print(f"wrote {REPORT}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
