"""``make soak`` writes its summary into bench/REPORT.md: only the soak's part, with its run's
duration, and a whole ``make bench`` keeps it."""

from test_bench_report import OLD

from bench.run_all import keep_soak, split_report
from bench.soak_report import SoakSummary, write_soak_report


def summary(seconds=600.0, **changes) -> SoakSummary:
    figures = dict(
        seconds=seconds, seed=7, scans={"valid": 900, "garbage": 40},
        verdicts={"ok": 880, "unreadable": 40}, faults={"kill_sync": 20, "server_down": 21},
        restarts={"scanner": 30, "sync": 20, "display": 19}, recorded=1400, uploaded=1400,
        duplicates=37, lost=0, calls=150, not_shown=0, display_kills=19,
        growth_mb={"scanner": 0.4, "sync": 1.2, "display": -0.3},
        peak_mb={"scanner": 41.0, "sync": 44.0, "display": 70.0})
    figures.update(changes)
    return SoakSummary(**figures)


def soak_rows(report: str) -> list[str]:
    return [r for r in split_report(report)[1] if r.startswith("| soak |")]


def test_the_soak_replaces_only_its_own_rows_and_section(tmp_path):
    path = tmp_path / "REPORT.md"
    path.write_text(OLD)
    write_soak_report(summary(120.0), path)
    first = path.read_text()
    top, rows, sections = split_report(first)
    for kept in ("scan lines", "memory lines", "old estimate lines", "- CPU: old",
                 "| checkin.py | scan | 0.34 |", "| wait_estimate.py | quiet: ratio | 0.9 |"):
        assert kept in first
    assert sections["soak"].startswith("## soak (120 s run)")
    assert "ANTREAN_SOAK_SECONDS=120" in sections["soak"]
    assert [h for h in top if h.startswith("- soak ")][0].startswith("- soak (a 120 s run) on ")
    assert "| soak | events lost | 0 |  | events | < 1 | yes |" in rows
    assert "| soak | duplicate uploads absorbed by the server | 37 |" in first
    assert "| soak | calls shown | 150 |" in first
    assert "| soak | sync: memory growth over the run | 1.20 |  | MB | < 15.00 | yes |" in rows
    assert rows[-1].startswith("| soak |")  # after every benchmark's rows
    assert "kill_sync" in sections["soak"] and "duplicates absorbed by the server 37" in \
        sections["soak"]

    write_soak_report(summary(600.0, lost=3, duplicates=5,
                              problems=["3 events never reached the server"]), path)
    second = path.read_text()
    top, rows, sections = split_report(second)
    assert "120 s" not in second and "| 37 |" not in second
    assert len(soak_rows(second)) == len(soak_rows(first))
    assert len(second.splitlines()) == len(first.splitlines())
    assert len([h for h in top if h.startswith("- soak ")]) == 1
    assert "| soak | events lost | 3 |  | events | < 1 | **NO** |" in rows
    assert "FAILED: 3 events never reached the server" in sections["soak"]
    assert "old estimate lines" in second and "- CPU: old" in second


def test_a_whole_bench_run_keeps_the_last_soak(tmp_path):
    path = tmp_path / "REPORT.md"
    path.write_text(OLD)
    write_soak_report(summary(600.0), path)
    with_soak = path.read_text()
    fresh = OLD.replace("- CPU: old", "- CPU: new").replace("| 0.34 |", "| 0.30 |")
    merged = keep_soak(with_soak, fresh)
    assert "- CPU: new" in merged and "| 0.30 |" in merged
    assert soak_rows(merged) == soak_rows(with_soak)
    assert split_report(merged)[2]["soak"] == split_report(with_soak)[2]["soak"]
    assert [h for h in split_report(merged)[0] if h.startswith("- soak ")] == \
        [h for h in split_report(with_soak)[0] if h.startswith("- soak ")]
    assert keep_soak(OLD, fresh) == fresh  # no soak yet: nothing to keep


def test_a_missing_report_is_started_with_the_machine_and_the_soak(tmp_path):
    path = tmp_path / "REPORT.md"
    write_soak_report(summary(600.0), path)
    top, rows, sections = split_report(path.read_text())
    assert any(h.startswith("- CPU: ") for h in top) and list(sections) == ["soak"]
    assert rows and all(r.startswith("| soak |") for r in rows)
