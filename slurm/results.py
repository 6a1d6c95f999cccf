#!/usr/bin/env python3
"""Summary (and optional plot) of one coyote-mpi Slurm job folder.

    results.py JOB_DIR [--plot FILE.png] [--csv FILE.csv]

Prints the job facts (job.env), the status, every step with its exit code and duration (steps.tsv) and
a table of all Google Benchmark results found under JOB_DIR/bench (one row per benchmark and run:
"job" for a multi-rank run reported by rank 0, a node name for per-node runs).
Results of a job that ended early (time limit, scancel) are shown as far as they were written; a JSON
file that was cut off is reported and skipped. --plot draws the benchmark results (throughput
when the benchmark reports bytes_per_second, else time per iteration) with matplotlib, one bar per run.
"""
import argparse
import csv
import json
import os
import signal
import sys


def read_env(path):
    facts = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.rstrip("\n").partition("=")
                if sep:
                    facts[key] = value
    except OSError:
        pass
    return facts


def read_steps(path):
    try:
        with open(path, encoding="utf-8") as f:
            return list(csv.DictReader(f, delimiter="\t"))
    except OSError:
        return []


def bench_rows(job_dir):
    """One dict per (file, benchmark) from every bench/**/<binary>.rank<r>.json."""
    rows, broken = [], []
    root = os.path.join(job_dir, "bench")
    for dirpath, _dirs, files in sorted(os.walk(root)):
        for name in sorted(files):
            if not name.endswith(".json"):
                continue
            path = os.path.join(dirpath, name)
            stem = name[:-len(".json")]
            # <binary>.json (rank 0 of a multi-rank run), <binary>.<node>.json, <binary>.rank<r>.json
            if ".rank" in stem:
                binary, _, r = stem.rpartition(".rank")
                where = f"rank {r}"
            elif "." in stem:
                binary, _, where = stem.partition(".")
            else:
                binary, where = stem, "job"
            round_name = os.path.relpath(dirpath, root)
            try:
                with open(path, encoding="utf-8") as f:
                    data = json.load(f)
            except (OSError, json.JSONDecodeError) as e:
                broken.append(f"{path}: {e}")
                continue
            for b in data.get("benchmarks", []):
                if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "mean":
                    continue
                rows.append({
                    "round": "" if round_name == "." else round_name,
                    "binary": binary or stem,
                    "where": where,
                    "host": data.get("context", {}).get("host_name", ""),
                    "benchmark": b.get("name", "?"),
                    "real_time": b.get("real_time"),
                    "time_unit": b.get("time_unit", ""),
                    "bytes_per_second": b.get("bytes_per_second"),
                    "iterations": b.get("iterations"),
                })
    return rows, broken


def fmt_rate(v):
    if v is None:
        return "-"
    for unit, scale in (("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)):
        if v >= scale:
            return f"{v / scale:.2f} {unit}"
    return f"{v:.0f} B/s"


def plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("results.py: matplotlib not installed (apt-get install python3-matplotlib), no plot", file=sys.stderr)
        return False
    use_rate = all(r["bytes_per_second"] for r in rows)
    names = list(dict.fromkeys(r["benchmark"] for r in rows))  # order of the reports
    ranks = list(dict.fromkeys(r["where"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(names) * max(1, len(ranks))), 4.5))
    width = 0.8 / max(1, len(ranks))
    for i, rank in enumerate(ranks):
        values = []
        for n in names:
            sel = [r for r in rows if r["benchmark"] == n and r["where"] == rank]
            if not sel:
                values.append(0.0)
                continue
            vals = [(r["bytes_per_second"] or 0) / 1e9 if use_rate else (r["real_time"] or 0) for r in sel]
            values.append(sum(vals) / len(vals))
        ax.bar([x + i * width for x in range(len(names))], values, width, label=rank)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(names))])
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    unit = rows[0]["time_unit"] if rows else ""
    ax.set_ylabel("throughput (GB/s)" if use_rate else f"time per iteration ({unit})")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("job_dir")
    ap.add_argument("--plot", metavar="FILE.png")
    ap.add_argument("--csv", metavar="FILE.csv")
    args = ap.parse_args()
    if not os.path.isdir(args.job_dir):
        print(f"results.py: {args.job_dir} is not a directory", file=sys.stderr)
        return 2

    facts = read_env(os.path.join(args.job_dir, "job.env"))
    try:
        with open(os.path.join(args.job_dir, "status"), encoding="utf-8") as f:
            status = f.read().strip()
    except OSError:
        status = "unknown (no status file)"
    print(f"job {facts.get('job_id', '?')} ({facts.get('kind', '?')}) on {facts.get('nodes', '?')}: "
          f"{facts.get('ranks', '?')} ranks via {facts.get('launcher', '?')}, "
          f"{facts.get('start', '?')} .. {facts.get('end', 'not finished')}")
    print(f"status: {status}")
    steps = read_steps(os.path.join(args.job_dir, "steps.tsv"))
    if steps:
        print("\nsteps:")
        for s in steps:
            print(f"  {s.get('step', '?'):<40} exit {s.get('exit_code', '?'):>3}  {s.get('seconds', '?'):>5} s")

    rows, broken = bench_rows(args.job_dir)
    for b in broken:
        print(f"\nincomplete result (job ended while writing it?): {b}")
    if rows:
        print("\nbenchmarks:")
        print(f"  {'round':<8} {'binary':<18} {'where':<10} {'benchmark':<44} {'time':>14}  {'throughput':>12}")
        for r in rows:
            t = f"{r['real_time']:.1f} {r['time_unit']}" if r["real_time"] is not None else "-"
            print(f"  {r['round']:<8} {r['binary']:<18} {r['where']:<10} {r['benchmark']:<44} {t:>14}  "
                  f"{fmt_rate(r['bytes_per_second']):>12}")
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=["round", "binary", "where", "host", "benchmark", "real_time",
                                              "time_unit", "bytes_per_second", "iterations"])
            w.writeheader()
            w.writerows(rows)
        print(f"\nwrote {args.csv}")
    if args.plot:
        if not rows:
            print("results.py: no benchmark results to plot", file=sys.stderr)
            return 1
        if plot(rows, args.plot):
            print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet end when piped into head
    sys.exit(main())
