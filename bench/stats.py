"""Small statistics for the benchmarks: medians and p99s of samples, printed the same way."""

from __future__ import annotations

import statistics


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(samples: list[float]) -> dict[str, float]:
    return {"n": len(samples), "median": statistics.median(samples),
            "p99": percentile(samples, 99), "max": max(samples)}


def line(label: str, samples_ms: list[float], target_ms: float | None = None) -> str:
    s = summary(samples_ms)
    verdict = ""
    if target_ms is not None:
        verdict = f"  target p99 < {target_ms:g} ms: {'met' if s['p99'] < target_ms else 'MISSED'}"
    return (f"{label}: n={s['n']} median={s['median']:.2f} ms p99={s['p99']:.2f} ms "
            f"max={s['max']:.2f} ms{verdict}")


def result(metric: str, value: float, unit: str, *, target: float | None = None,
           lower_is_better: bool = True, p99: float | None = None, note: str = "") -> None:
    """Print one machine-readable result line for ``bench/run_all.py``'s report table."""
    import json

    met = None
    if target is not None:
        checked = p99 if p99 is not None else value
        met = checked < target if lower_is_better else checked > target
    print("RESULT " + json.dumps({"metric": metric, "value": round(value, 3), "p99":
                                  None if p99 is None else round(p99, 3), "unit": unit,
                                  "target": target, "lower_is_better": lower_is_better,
                                  "met": met, "note": note}, ensure_ascii=False))
