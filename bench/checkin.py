"""Payload to committed check-in, and verify+import of a 20,000-appointment schedule.

Run: ``.venv/bin/python bench/checkin.py``. Uses a real SQLite file on disk (fsync per
commit, as on the appliance) in a temporary folder.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.checkin import CheckinDesk  # noqa: E402
from appliance.clock import Clock  # noqa: E402
from appliance.config import load_config  # noqa: E402
from appliance.keys import generate_key  # noqa: E402
from appliance.schedule import save_schedule, verify_schedule  # noqa: E402
from appliance.store import Store  # noqa: E402
from bench.stats import line, result, summary  # noqa: E402
from devtools.demo_schedule import generate_schedule  # noqa: E402

DAY = "2026-11-30"
APPOINTMENTS = 20_000
SCANS = 1_000


def make_config(folder: Path, key) -> object:
    path = folder / "antrean.toml"
    path.write_text(f'[office]\nid = "TRK"\ntimezone = "Asia/Makassar"\n[storage]\n'
                    f'path = "{folder / "antrean.db"}"\n[trust]\n'
                    f'keys = {{ {key.keyid} = "{key.public_b64}" }}\n')
    return load_config(path)


def main() -> None:
    key = generate_key("kbench")
    doc = generate_schedule("TRK", "Kantor Imigrasi Tarakan", "Asia/Makassar", DAY, APPOINTMENTS,
                            version=1, generated_at=time.time())
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        config = make_config(Path(tmp), key)
        imports = []
        for version in range(1, 6):
            doc["version"] = version
            body = json.dumps(doc).encode()
            header = key.sign_header(body)
            with Store(config.storage.path) as store:
                t0 = time.perf_counter()
                save_schedule(store, verify_schedule(body, header, config, expect_date=DAY),
                              source="import", etag=None)
                imports.append((time.perf_counter() - t0) * 1000)
        print(f"schedule body: {len(body) / 1e6:.1f} MB, {APPOINTMENTS} appointments")
        print(line("verify + import 20k schedule", imports, 1000))
        s = summary(imports)
        result("verify + import a 20,000-appointment schedule", s["median"], "ms",
               target=1000, p99=s["p99"])

        booked = [a for a in doc["appointments"] if a["status"] == "booked"]
        rng = random.Random(7)
        chosen = rng.sample(booked, SCANS)
        with Store(config.storage.path) as store:
            now = [0.0]  # each applicant arrives at their slot start
            desk = CheckinDesk(store, config, Clock(store, config, wall=lambda: now[0]))
            samples, verdicts = [], {}
            for a in chosen:
                now[0] = datetime.fromisoformat(a["slot_start"]).timestamp()
                p = f"]Q1{a['booking_code']}\r\n".encode()
                t0 = time.perf_counter()
                r = desk.scan(p)
                samples.append((time.perf_counter() - t0) * 1000)
                verdicts[r.verdict] = verdicts.get(r.verdict, 0) + 1
        print(f"verdicts: {verdicts}")
        print(line(f"payload -> committed check-in ({SCANS} scans)", samples, 10))
        s = summary(samples)
        result("payload to committed check-in (CheckinDesk.scan)", s["median"], "ms",
               target=10, p99=s["p99"])


if __name__ == "__main__":
    main()
