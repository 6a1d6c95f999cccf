#!/usr/bin/python3
"""Spread of latency figures over alternated runs (scripts/run_benchmarks.sh): for every benchmark and counter
(p50_us, loop_us) the min, median and max over the runs and max/min. On a shared machine one run shows one of
several speed modes; the spread says how far apart they are.

usage: bench_spread.py <run JSON>...   (names <suite>_r<k>_<variant>.json; the variant labels the rows)
"""
import json
import re
import statistics
import sys
from collections import defaultdict

COUNTERS = ("p50_us", "loop_us")


def main(paths):
    values = defaultdict(list)  # (variant, benchmark, counter) -> [value per run]
    for path in paths:
        m = re.search(r"_r(\d+)_([A-Za-z0-9_]+)\.json$", path)
        variant = m.group(2) if m else "run"
        with open(path) as f:
            doc = json.load(f)
        for b in doc.get("benchmarks", []):
            if b.get("run_type") == "aggregate":
                continue
            name = b["name"].replace("/manual_time", "")
            for c in COUNTERS:
                if c in b:
                    values[(variant, name, c)].append(float(b[c]))
    if not values:
        print("bench_spread: no latency counters found", file=sys.stderr)
        return 1
    runs = max(len(v) for v in values.values())
    print(f"latency spread over {runs} alternated runs (us): min / median / max, max/min")
    print(f"{'variant':<10} {'benchmark':<26} {'counter':<8} {'min':>9} {'median':>9} {'max':>9} {'max/min':>8}")
    for (variant, name, c), v in sorted(values.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])):
        lo, hi = min(v), max(v)
        ratio = hi / lo if lo > 0 else float("inf")
        print(f"{variant:<10} {name:<26} {c:<8} {lo:>9.3f} {statistics.median(v):>9.3f} {hi:>9.3f} {ratio:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
