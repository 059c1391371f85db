"""Re-running one benchmark replaces only its rows and section in bench/REPORT.md."""

from bench.run_all import BENCHES, TABLE_HEAD, merge_report

OLD = "\n".join([
    "# Benchmark report", "", "## Machine", "", "- CPU: old", "", "## Results", "",
    *TABLE_HEAD,
    "| checkin.py | scan | 0.34 | 1.19 | ms | < 10 | yes |",
    "| wait_estimate.py | quiet: ratio | 0.9 |  | x | < 0.5 | **NO** |",
    "| services.py | memory | 38 |  | MB | < 60 | yes |",
    "", "## checkin.py (2 s)", "", "```", "scan lines", "```", "",
    "## services.py (669 s)", "", "```", "memory lines", "```", "",
    "## wait_estimate.py (9 s)", "", "```", "old estimate lines", "```", ""])


def test_merge_replaces_only_the_rerun_benchmark():
    new = merge_report(OLD, ["wait_estimate.py"],
                       ["| wait_estimate.py | quiet: ratio | 0.4 |  | x | < 0.5 | yes |"],
                       ["## wait_estimate.py (8 s)\n\n```\nnew estimate lines\n```\n"])
    assert "old estimate lines" not in new and "new estimate lines" in new
    assert "| 0.9 |" not in new and "| 0.4 |" in new
    for kept in ("scan lines", "memory lines", "| checkin.py | scan | 0.34 |", "- CPU: old"):
        assert kept in new
    rows = [line for line in new.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split()[1] for r in rows[1:]] == ["checkin.py", "services.py", "wait_estimate.py"]
    assert [line for line in new.splitlines() if "re-run alone" in line][0].startswith(
        "- wait_estimate.py re-run alone on ")
    # Merging twice changes nothing but the run itself: no blank lines pile up.
    again = merge_report(new, ["wait_estimate.py"],
                         ["| wait_estimate.py | quiet: ratio | 0.4 |  | x | < 0.5 | yes |"],
                         ["## wait_estimate.py (8 s)\n\n```\nnew estimate lines\n```\n"])
    assert len(again.splitlines()) == len(new.splitlines())
    assert new.count("re-run alone") == again.count("re-run alone") == 1


def test_a_benchmark_new_to_the_report_is_added_in_order():
    old = OLD.replace("## wait_estimate.py (9 s)\n\n```\nold estimate lines\n```\n", "")
    new = merge_report(old, ["display.py"], ["| display.py | frame | 0.1 | 0.2 | ms |  |  |"],
                       ["## display.py (13 s)\n\n```\nframe lines\n```\n"])
    headings = [line[3:].split()[0] for line in new.splitlines() if line.startswith("## ")
                and line[3:].split()[0] in BENCHES]
    assert headings == ["checkin.py", "display.py", "services.py"]


def test_the_booted_vm_section_is_set_aside_and_kept_whole():
    from bench.run_all import set_aside_system_test

    block = ("<!-- system-test: begin -->\n## Booted VM\n\n| metric | value | unit |\n"
             "<!-- system-test: end -->")
    report = "# Benchmark report\n\n## Results\n\n## checkin.py\n\n```\nx\n```\n\n" + block + "\n"
    rest, kept = set_aside_system_test(report)
    assert kept == block
    assert "Booted VM" not in rest and rest.endswith("```\n")
    assert set_aside_system_test(rest) == (rest, "")
