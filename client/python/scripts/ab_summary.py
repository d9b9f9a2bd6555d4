"""Summary of ``ab_python_worker.sh OUT``: per run, tasks/s of each round and CPU per task
(µs) of node / worker / load generator, and the median and lowest tasks/s per build."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def main() -> None:
    out = Path(sys.argv[1])
    rates: dict[str, list[float]] = {}
    for f in sorted(out.glob("*.json"), key=lambda p: (p.stem.split("-")[2], p.stem)):
        build, kind, _ = f.stem.split("-")
        try:
            r = json.loads(f.read_text())
        except ValueError:
            print(f"{f.name}: no report")
            continue
        if kind == "sim":
            rounds = [
                (
                    x["tasks_per_s"],
                    x["node_cpu_us_per_task"],
                    x["worker_cpu_us_per_task"],
                    x["bench_cpu_us_per_task"],
                    x["loadavg"],
                )
                for x in r["rounds"]
            ]
        else:
            rounds = [
                (
                    x["tasks_per_s"],
                    x["cpu_us_per_task"]["node"],
                    x["cpu_us_per_task"]["worker"],
                    x["cpu_us_per_task"]["submitter"],
                    r.get("loadavg"),
                )
                for x in r["rounds"]
            ]
        rates.setdefault(f"{build} {kind}", []).extend(x[0] for x in rounds)
        cells = "  ".join(f"{t:6.0f}/s {n:4.0f}/{w:4.0f}/{g:4.0f}µs" for t, n, w, g, _ in rounds)
        print(f"{f.stem:10} {cells}  load {rounds[-1][4]}")
    for key, v in sorted(rates.items()):
        print(
            f"{key:6}: median {statistics.median(v):6.0f}/s, lowest {min(v):6.0f}, "
            f"{sum(x >= 5000 for x in v)} of {len(v)} rounds >= 5,000"
        )


if __name__ == "__main__":
    main()
