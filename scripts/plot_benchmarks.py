#!/usr/bin/python3
"""Charts, a results table and the target summary from the coyote-mpi benchmark JSON reports.

    /usr/bin/python3 scripts/plot_benchmarks.py RESULTS_DIR [--plots DIR] [--table FILE] [--no-plots]

RESULTS_DIR holds the Google Benchmark JSON files written by scripts/run_benchmarks.sh (local.json, rdma.json,
coll.json, coll_np4.json, bootstrap_np<N>.json). Per suite it draws (log-log, baselines dashed on the same axes):
  <suite>_latency.png    median (p50) latency per operation vs message size
  <suite>_bandwidth.png  throughput vs message size (bus bandwidth for collectives when reported)
  <suite>_ratio.png      every ratio_vs_<baseline> counter vs size (above 1: coyote faster)
and bootstrap.png (wiring time and ratio vs ranks). It prints the target summary (met / not met with the
measured value) and a markdown table of the main results. Exit status 1 if a report holds failed benchmarks.
"""
import argparse
import glob
import json
import math
import os
import re
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def parse_name(name):
    """'rdma_write_lat/8/manual_time' -> ('rdma_write_lat', 8)."""
    parts = name.split("/")
    x = None
    if len(parts) > 1:
        try:
            x = int(parts[1])
        except ValueError:
            x = None
    return parts[0], x


def collect(report):
    """{family: {x: benchmark dict}} (last entry wins), failures list."""
    fams, failures = {}, []
    for b in report.get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration":
            continue
        fam, x = parse_name(b["name"])
        if b.get("error_occurred"):
            failures.append(f'{b["name"]}: {b.get("error_message", "")}')
            continue
        if x is None:
            continue
        fams.setdefault(fam, {})[x] = b
    return fams, failures


def ratio_keys(rows):
    keys = set()
    for b in rows.values():
        keys.update(k for k in b if k.startswith("ratio_vs_"))
    return sorted(keys)


def is_baseline(rows):
    return not ratio_keys(rows)


def fmt_size(n):
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{n // div} {unit}"
    return f"{n} B"


def size_ticks(ax, xs):
    xs = sorted(set(xs))
    if len(xs) > 8:
        xs = xs[:: max(1, len(xs) // 6)]
    ax.set_xticks(xs)
    ax.set_xticklabels([fmt_size(x).replace(" ", "") for x in xs], fontsize=7)
    ax.minorticks_off()


def save_size_plot(fig, ax, xs_all, ylabel, title, path):
    """Finishes a plot over message sizes (ticks, labels, grid, legend) and saves it to `path`; returns `path`."""
    size_ticks(ax, xs_all)
    ax.set_xlabel("message size")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    return path


def bandwidth_gbs(b):
    """Bus bandwidth (collectives: busbw_GBps, nccl-tests definition) or bytes_per_second, in GB/s."""
    if "busbw_GBps" in b:
        return b["busbw_GBps"] or None
    v = b.get("bytes_per_second", 0.0)
    return v / 1e9 if v else None


def pair_key(fam, fams):
    """Baseline 'mpi_<op>' of a coyote family '<op>' shares its colour."""
    return fam[4:] if fam.startswith("mpi_") and fam[4:] in fams else fam


def plot_suite(plt, suite, fams, outdir):
    made = []
    lat = {f: r for f, r in fams.items() if f.endswith("_lat") or f == "memcpy"}
    bw = {f: r for f, r in fams.items() if f.endswith("_bw") or f == "memcpy"}
    if not lat and not bw:  # collectives: every family is both
        lat = dict(fams)
        bw = dict(fams)
    charts = [
        ("latency", lat, lambda b: b.get("p50_us"), "p50 latency per operation (us)"),
        ("bandwidth", bw, bandwidth_gbs, "throughput (GB/s; collectives: bus bandwidth)"),
    ]
    for kind, sel, get, ylabel in charts:
        if not sel:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=90)
        xs_all = []
        keys = sorted({pair_key(f, sel) for f in sel})
        paired = any(pair_key(f, sel) != f for f in sel)
        colour = {k: f"C{i % 10}" for i, k in enumerate(keys)}
        for fam in sorted(sel, key=lambda f: (not is_baseline(sel[f]), f)):
            rows = sel[fam]
            pts = [(x, get(b)) for x, b in sorted(rows.items()) if get(b)]
            if not pts:
                continue
            xs, ys = zip(*pts)
            xs_all += xs
            base = is_baseline(rows)
            ax.plot(xs, ys, marker="o" if not base else ".", markersize=3, linewidth=1.2,
                    color=colour[pair_key(fam, sel)] if paired else None,
                    linestyle="--" if base else "-", label=fam + (" (baseline)" if base else ""))
        if not xs_all:
            plt.close(fig)
            continue
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        made.append(save_size_plot(fig, ax, xs_all, ylabel, f"{suite}: {kind} vs size",
                                   os.path.join(outdir, f"{suite}_{kind}.png")))
        plt.close(fig)
    # ratios
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=90)
    xs_all = []
    for fam in sorted(fams):
        rows = fams[fam]
        for key in ratio_keys(rows):
            pts = [(x, b[key]) for x, b in sorted(rows.items()) if key in b and b[key] > 0]
            if not pts:
                continue
            xs, ys = zip(*pts)
            xs_all += xs
            ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.2, label=f"{fam} {key[6:]}")
    if xs_all:
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        low, high = ax.get_ylim()
        if high > 100:  # one outlier (a stalled baseline) would flatten everything else
            ax.set_ylim(low, 100)
            ax.text(0.01, 0.98, "clipped at 100x", transform=ax.transAxes, fontsize=6, va="top")
        made.append(save_size_plot(fig, ax, xs_all, "baseline time / coyote time (>1: coyote faster)",
                                   f"{suite}: ratio vs baseline (same run)", os.path.join(outdir, f"{suite}_ratio.png")))
    plt.close(fig)
    return made


def plot_bootstrap(plt, boot, outdir):
    """boot: {family: {ranks: bench}}; only the wiring families are drawn (the barrier rows time one barrier)"""
    boot = {fam: rows for fam, rows in boot.items() if fam.startswith("bootstrap_")}
    if not boot:
        return []
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.0, 3.4), dpi=90)
    for fam in sorted(boot):
        rows = boot[fam]
        pts = [(x, b["p50_us"] / 1e3) for x, b in sorted(rows.items()) if b.get("p50_us")]
        if pts:
            xs, ys = zip(*pts)
            base = is_baseline(rows)
            a1.plot(xs, ys, marker="o", markersize=3, linestyle="--" if base else "-",
                    label=fam + (" (baseline)" if base else ""))
        for key in ratio_keys(rows):
            pts = [(x, b[key]) for x, b in sorted(rows.items()) if key in b]
            if pts:
                xs, ys = zip(*pts)
                a2.plot(xs, ys, marker="o", markersize=3, label=f"{fam} {key[6:]}")
    for ax in (a1, a2):
        ax.set_xscale("log", base=2)
        ax.set_xticks([2, 4, 8, 16])
        ax.set_xticklabels(["2", "4", "8", "16"])
        ax.minorticks_off()
        ax.set_xlabel("ranks (one host, oversubscribed)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    a1.set_yscale("log")
    a1.set_ylabel("p50 wiring time, all pairs (ms)")
    a1.set_title("bootstrap: time vs ranks", fontsize=10)
    a2.set_ylabel("stock time / QpSet time")
    a2.set_title("bootstrap: speed-up", fontsize=10)
    fig.tight_layout()
    path = os.path.join(outdir, "bootstrap.png")
    fig.savefig(path)
    plt.close(fig)
    return [path]


def targets(suites, boot):
    """[(description, measured text, met or None)]"""
    out = []
    rdma = suites.get("rdma", {})
    b = rdma.get("rdma_write_lat", {}).get(8)
    if b and "ratio_vs_mpi" in b:
        r = 1.0 / b["ratio_vs_mpi"]
        out.append(("RDMA WRITE latency at 8 B <= 1.0x Open MPI's",
                    f"{r:.2f}x (p50 {b['p50_us']:.2f} us half round trip)", r <= 1.0))
    else:
        out.append(("RDMA WRITE latency at 8 B <= 1.0x Open MPI's", "not measured", None))
    checks = {"rdma_write_bw": (("ratio_vs_mpi", 1.0, "Open MPI's (Isend/Irecv)"),
                                ("ratio_vs_mpi_put", 1.0, "Open MPI's (MPI_Put)"), ("ratio_vs_memcpy", 0.7, "memcpy")),
              "rdma_read_bw": (("ratio_vs_mpi_get", 1.0, "Open MPI's (MPI_Get)"), ("ratio_vs_memcpy", 0.7, "memcpy"))}
    for fam, keys in checks.items():
        rows = {x: v for x, v in rdma.get(fam, {}).items() if x >= (1 << 20)}
        for key, goal, what in keys:
            vals = [(x, v[key]) for x, v in sorted(rows.items()) if key in v]
            desc = f"{fam} at >= 1 MiB >= {goal}x {what}"
            if vals:
                worst = min(vals, key=lambda t: t[1])
                txt = ", ".join(f"{fmt_size(x)}: {r:.2f}x" for x, r in vals)
                out.append((desc, txt, worst[1] >= goal))
            else:
                out.append((desc, "not measured", None))
    # Collectives: per operation and rank count, coyote time / Open MPI time (1 / ratio_vs_mpi) at >= 64 KiB
    # (worst size) and at the smallest size (8 B; operations with per-rank blocks: one float per rank, e.g.
    # 16 B on 4 ranks).
    for suite, ranks in (("coll", 2), ("coll_np4", 4)):
        coll = suites.get(suite, {})
        for op in ("allreduce", "broadcast", "allgather", "reduce_scatter", "alltoall"):
            rows = {x: v for x, v in coll.get(op, {}).items() if v.get("ratio_vs_mpi", 0) > 0}
            small = min(rows) if rows and min(rows) <= 4 * ranks else None
            for lo, hi, goal, what in (((64 << 10), None, 1.2, ">= 64 KiB"), (small, small, 2.0, "the smallest size")):
                desc = f"{op} on {ranks} ranks, time at {what} <= {goal}x Open MPI's"
                vals = [] if lo is None else [(x, 1.0 / v["ratio_vs_mpi"]) for x, v in sorted(rows.items())
                                              if x >= lo and (hi is None or x <= hi)]
                if vals:
                    out.append((desc, ", ".join(f"{fmt_size(x)}: {r:.2f}x" for x, r in vals),
                                max(r for _, r in vals) <= goal))
                else:
                    out.append((desc, "not measured", None))
    q = boot.get("bootstrap_qpset", {}).get(16)
    desc = "bootstrap at 16 ranks >= 5x faster than the stock TCP exchange"
    if q and "ratio_vs_tcp_oob" in q:
        out.append((desc, f"{q['ratio_vs_tcp_oob']:.1f}x ({q['p50_us'] / 1e3:.1f} ms vs "
                          f"{boot.get('bootstrap_tcp_oob', {}).get(16, {}).get('p50_us', float('nan')) / 1e3:.1f} ms)",
                    q["ratio_vs_tcp_oob"] >= 5.0))
    else:
        out.append((desc, "not measured", None))
    b = suites.get("local", {}).get("local_transfer_bw", {}).get(1 << 20)
    desc = "LOCAL_TRANSFER throughput at 1 MiB >= 0.7x memcpy"
    if b and "ratio_vs_memcpy" in b:
        out.append((desc, f"{b['ratio_vs_memcpy']:.2f}x ({b['bytes_per_second'] / 1e9:.2f} GB/s)",
                    b["ratio_vs_memcpy"] >= 0.7))
    else:
        out.append((desc, "not measured", None))
    return out


def table(suites, boot):
    lines = ["| suite | benchmark | size | p50 (us) | GB/s | ratios |", "|---|---|---:|---:|---:|---|"]
    pick = {"local": {64, 4096, 1 << 20, 4 << 20}, "rdma": {8, 2048, 32768, 2 << 20, 8 << 20},
            "coll": {8, 4096, 65536, 1 << 20, 16 << 20}, "coll_np4": {8, 4096, 65536, 1 << 20, 16 << 20}}
    for suite in ("local", "rdma", "coll", "coll_np4"):
        for fam, rows in sorted(suites.get(suite, {}).items()):
            for x, b in sorted(rows.items()):
                if x not in pick[suite]:
                    continue
                rs = ", ".join(f"{k[9:]} {b[k]:.2f}" for k in sorted(b) if k.startswith("ratio_vs_"))
                gbs = bandwidth_gbs(b) or float("nan")
                lines.append(f"| {suite} | {fam} | {fmt_size(x)} | {b.get('p50_us', float('nan')):.2f} | "
                             f"{gbs:.2f} | {rs} |")
    for fam, rows in sorted(boot.items()):
        for x, b in sorted(rows.items()):
            rs = ", ".join(f"{k[9:]} {b[k]:.2f}" for k in sorted(b) if k.startswith("ratio_vs_"))
            digits = 0 if fam.startswith("bootstrap_") else 2  # wiring in ms-scale us; a barrier takes a few us
            lines.append(f"| bootstrap | {fam} | {x} ranks | {b.get('p50_us', float('nan')):.{digits}f} | - | {rs} |")
    return "\n".join(lines)


def main():
    os.umask(0o077)  # the CSV, table and charts are the user's alone, whatever the caller's umask
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results")
    ap.add_argument("--plots", help="folder for the PNG charts (default RESULTS/plots)")
    ap.add_argument("--table", help="write the markdown table to this file (default RESULTS/table.md)")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args()

    suites, boot, failures, contexts = {}, {}, [], {}
    files = sorted(glob.glob(os.path.join(args.results, "*.json")))
    if not files:
        print(f"plot_benchmarks.py: no JSON reports in {args.results}", file=sys.stderr)
        return 1
    for path in files:
        name = os.path.splitext(os.path.basename(path))[0]
        try:
            report = load(path)
        except (OSError, json.JSONDecodeError) as e:
            failures.append(f"{name}: unreadable report ({e})")
            continue
        fams, fails = collect(report)
        failures += [f"{name}: {f}" for f in fails]
        contexts[name] = report.get("context", {})
        if re.match(r"bootstrap_np\d+$", name):
            for fam, rows in fams.items():
                boot.setdefault(fam, {}).update(rows)
        else:
            suites[name] = fams

    made = []
    if not args.no_plots:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        outdir = args.plots or os.path.join(args.results, "plots")
        os.makedirs(outdir, exist_ok=True)
        for suite, fams in sorted(suites.items()):
            made += plot_suite(plt, suite, fams, outdir)
        made += plot_bootstrap(plt, boot, outdir)

    ctx = contexts.get("rdma") or contexts.get("local") or next(iter(contexts.values()), {})
    print("Machine: host {}, {}, VM: {}, load at start {}; {}".format(
        ctx.get("host", "?"), ctx.get("topology", "?"), ctx.get("virtual_machine", "?"),
        ctx.get("load_average", "?"), ctx.get("mpi_library", "?")))
    print("\nTargets (measured in this run; printed, never asserted):")
    for desc, measured, met in targets(suites, boot):
        status = "n/a" if met is None else ("met" if met else "NOT met")
        print(f"  [{status:>7}] {desc}: {measured}")
    tab = table(suites, boot)
    table_path = args.table or os.path.join(args.results, "table.md")
    with open(table_path, "w") as f:
        f.write(tab + "\n")
    print(f"\nTable: {table_path}")
    for p in made:
        print(f"Plot: {p}")
    if failures:
        print("\nFailed benchmarks:")
        for f in failures:
            print("  " + f)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
