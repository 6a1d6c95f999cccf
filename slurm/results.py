#!/usr/bin/env python3
"""Summary (and optional plot) of one coyote-mpi Slurm job folder.

    results.py JOB_DIR [--plot FILE.png] [--csv FILE.csv]

Prints the job facts (job.env), the status, every step with its exit code and duration (steps.tsv) and
a table of all Google Benchmark results found under JOB_DIR/bench (one row per benchmark and run:
"job" for a multi-rank run reported by rank 0, a node name for per-node runs).
Results of a job that ended early (time limit, scancel) are shown as far as they were written; a JSON
file that was cut off is reported and skipped. Other malformed input (a JSON report that is no Google
Benchmark report, a benchmark entry that is no object, a numeric field that is no number, a steps.tsv
line with missing fields, bytes that are not UTF-8 in job.env, status or steps.tsv) is reported with
the file and the reason, and the rest is still shown; the exit code stays 0. --plot draws the benchmark
results (throughput when the benchmark reports bytes_per_second, else time per iteration) with
matplotlib, one bar per run. A --csv or --plot file that cannot be written is an error (exit code 1).
"""
import argparse
import csv
import json
import os
import signal
import sys


def read_text(path, problems):
    """The text of a file, or None when it cannot be read. Bytes that are not UTF-8 are reported and shown
    as U+FFFD, so that the rest of the file still counts."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        problems.append(f"{path}: not UTF-8 ({e.reason} at byte {e.start}), undecodable bytes shown as \ufffd")
        return data.decode("utf-8", errors="replace")


def read_env(path, problems):
    facts = {}
    for line in (read_text(path, problems) or "").split("\n"):
        key, sep, value = line.partition("=")
        if sep:
            facts[key] = value
    return facts


def read_steps(path, problems):
    """One dict per line of steps.tsv (step, exit_code, seconds: the header line names them)."""
    text = read_text(path, problems)
    if not text:
        return []
    lines = text.split("\n")  # as the batch scripts write it (a form feed in a step name splits nothing)
    header = lines[0].split("\t")
    steps = []
    for n, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            problems.append(f"{path}: line {n} has {len(fields)} field(s), expected {len(header)} "
                            f"({', '.join(header)})")
        steps.append(dict(zip(header, fields)))
    return steps


def number(b, key, where, problems):
    """Field KEY of benchmark B when it is a number (or absent: None); anything else is reported, None."""
    v = b.get(key)
    if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)):
        return v
    problems.append(f"{where}: {key} is {json.dumps(v)[:40]}, not a number; shown as -")
    return None


def json_kind(v):
    """What a JSON value is, in JSON's words."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(v), type(v).__name__)


def read_report(path, problems):
    """The benchmarks list and the host of one Google Benchmark JSON report; None when the file is cut off or
    is no such report (reported)."""
    if not os.path.isfile(path):
        problems.append(f"{path}: not a regular file, skipped")
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:  # ValueError: JSONDecodeError and UnicodeDecodeError (cut off in a character)
        problems.append(f"{path}: incomplete result (job ended while writing it?), skipped: {e}")
        return None
    except RecursionError:
        problems.append(f"{path}: nested too deeply for a benchmark report, skipped")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path}: not a Google Benchmark report (the top level is {json_kind(data)}, "
                        "not an object), skipped")
        return None
    benchmarks = data.get("benchmarks", [])
    if not isinstance(benchmarks, list):
        problems.append(f"{path}: not a Google Benchmark report (\"benchmarks\" is {json_kind(benchmarks)}, "
                        "not an array), skipped")
        return None
    context = data.get("context")
    host = context.get("host_name", "") if isinstance(context, dict) else ""
    return benchmarks, "" if host is None else str(host)


def bench_rows(job_dir, problems):
    """One dict per (file, benchmark) from every bench/**/<binary>.rank<r>.json."""
    rows = []
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
            report = read_report(path, problems)
            if report is None:
                continue
            benchmarks, host = report
            for i, b in enumerate(benchmarks):
                if not isinstance(b, dict):
                    problems.append(f"{path}: benchmarks[{i}] is {json.dumps(b)[:40]}, not an object; skipped")
                    continue
                if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "mean":
                    continue
                bench = str(b.get("name", "?"))
                at = f"{path}: benchmark {bench}"
                rows.append({
                    "round": "" if round_name == "." else round_name,
                    "binary": binary or stem,
                    "where": where,
                    "host": host,
                    "benchmark": bench,
                    "real_time": number(b, "real_time", at, problems),
                    "time_unit": str(b.get("time_unit", "")),
                    "bytes_per_second": number(b, "bytes_per_second", at, problems),
                    "iterations": number(b, "iterations", at, problems),
                })
    return rows


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
    os.umask(0o077)  # the CSV, table and charts are the user's alone, whatever the caller's umask
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("job_dir")
    ap.add_argument("--plot", metavar="FILE.png")
    ap.add_argument("--csv", metavar="FILE.csv")
    args = ap.parse_args()
    if not os.path.isdir(args.job_dir):
        print(f"results.py: {args.job_dir} is not a directory", file=sys.stderr)
        return 2

    problems = []  # (malformed input) reported after the steps, the rest is still shown
    facts = read_env(os.path.join(args.job_dir, "job.env"), problems)
    status = read_text(os.path.join(args.job_dir, "status"), problems)
    status = "unknown (no status file)" if status is None else status.strip()
    print(f"job {facts.get('job_id', '?')} ({facts.get('kind', '?')}) on {facts.get('nodes', '?')}: "
          f"{facts.get('ranks', '?')} ranks via {facts.get('launcher', '?')}, "
          f"{facts.get('start', '?')} .. {facts.get('end', 'not finished')}")
    print(f"status: {status}")
    steps = read_steps(os.path.join(args.job_dir, "steps.tsv"), problems)
    if steps:
        print("\nsteps:")
        for s in steps:
            print(f"  {s.get('step', '?'):<40} exit {s.get('exit_code', '?'):>3}  {s.get('seconds', '?'):>5} s")

    rows = bench_rows(args.job_dir, problems)
    if problems:
        print("\nmalformed input (reported and skipped):")
        for p in problems:
            print(f"  {p}")
    if rows:
        print("\nbenchmarks:")
        print(f"  {'round':<8} {'binary':<18} {'where':<10} {'benchmark':<44} {'time':>14}  {'throughput':>12}")
        for r in rows:
            t = f"{r['real_time']:.1f} {r['time_unit']}" if r["real_time"] is not None else "-"
            print(f"  {r['round']:<8} {r['binary']:<18} {r['where']:<10} {r['benchmark']:<44} {t:>14}  "
                  f"{fmt_rate(r['bytes_per_second']):>12}")
    rc = 0
    if args.csv:
        try:
            with open(args.csv, "w", newline="", encoding="utf-8", errors="backslashreplace") as f:
                w = csv.DictWriter(f, fieldnames=["round", "binary", "where", "host", "benchmark", "real_time",
                                                  "time_unit", "bytes_per_second", "iterations"])
                w.writeheader()
                w.writerows(rows)
            print(f"\nwrote {args.csv}")
        except OSError as e:
            print(f"results.py: cannot write the CSV file {args.csv}: {e.strerror or e}", file=sys.stderr)
            rc = 1
    if args.plot:
        if not rows:
            print("results.py: no benchmark results to plot", file=sys.stderr)
            return 1
        try:
            if plot(rows, args.plot):
                print(f"wrote {args.plot}")
        except (OSError, ValueError) as e:  # ValueError: a file name extension matplotlib has no format for
            print(f"results.py: cannot write the plot {args.plot}: {getattr(e, 'strerror', None) or e}",
                  file=sys.stderr)
            rc = 1
    return rc


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet end when piped into head
    # Benchmark names from a report may hold anything JSON can (lone surrogates): never fail on printing them.
    sys.stdout.reconfigure(errors="backslashreplace")
    sys.stderr.reconfigure(errors="backslashreplace")
    sys.exit(main())
