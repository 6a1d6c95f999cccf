#!/usr/bin/env python3
"""pycoyote benchmark: the cost of Python over C++ for the same operations, in the same run.

1. Per-operation overhead: a 64 B local_transfer + get_completed poll loop in Python against the same loop in
   C++ (CoyoteThread._bench_local_transfer). Target: <= 1.5 us per operation.
2. Throughput at 1 MiB, Python loop against C++ loop. Target: >= 0.9x the C++ throughput.
Each measurement runs --repeats rounds. A round interleaves C++ and Python batches of --batch operations (the
order swaps every batch) and takes the median batch time of each side, so that a batch preempted on a shared
machine does not decide the round, and both sides see the same conditions; each round gives one overhead and
one ratio. Prints the median with the spread (min .. max over the rounds) and the median against its target;
--check makes a missed target (median) the exit status, --smoke checks only that the numbers are sane
(positive, finite) for a quick CTest run."""
import argparse
import math
import os
import statistics
import sys
import time

from pycoyote import CoyoteThread


def python_loop(t, src, dst, n, iterations):
    t.clear_completed()
    transfer, completed = t.local_transfer, t.get_completed
    start = time.perf_counter()
    for i in range(1, iterations + 1):
        transfer(src, dst, n, n)
        while completed("local_transfer") < i:
            pass
    return time.perf_counter() - start


def interleaved(cpp, py, iterations, batch, repeats):
    """`repeats` rounds of (C++, Python) seconds per operation: the medians of interleaved batches."""
    batch = max(1, min(batch, iterations))
    batches = max(1, iterations // batch)
    rounds = []
    for _ in range(repeats):
        c, p = [], []
        for i in range(batches):
            if i % 2 == 0:
                c.append(cpp(batch))
                p.append(py(batch))
            else:
                p.append(py(batch))
                c.append(cpp(batch))
        rounds.append((statistics.median(c) / batch, statistics.median(p) / batch))
    return rounds


def spread(values, fmt):
    return f"{fmt.format(statistics.median(values))} (min {fmt.format(min(values))} .. max {fmt.format(max(values))})"


def sane(*seconds):
    return all(math.isfinite(x) and 0 < x < 3600 for x in seconds)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--small-iterations", type=int, default=20000, help="64 B operations per round and side")
    ap.add_argument("--large-iterations", type=int, default=200, help="1 MiB operations per round and side")
    ap.add_argument("--batch", type=int, default=1000, help="64 B operations per batch")
    ap.add_argument("--large-batch", type=int, default=10, help="1 MiB operations per batch")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed (medians)")
    ap.add_argument("--smoke", action="store_true", help="exit 1 unless every measurement is positive and finite")
    args = ap.parse_args()

    t = CoyoteThread(0, os.getpid())
    small_n, large_n = 16, 256 * 1024  # float32 elements: 64 B and 1 MiB
    src = t.allocate_buffer(large_n, "thp", "float32")
    dst = t.allocate_buffer(large_n, "thp", "float32")

    def sides(n):
        return (lambda k: t._bench_local_transfer(src, dst, n, k)), (lambda k: python_loop(t, src, dst, n, k))

    small = interleaved(*sides(small_n), args.small_iterations, args.batch, args.repeats)
    overhead = [(p - c) * 1e6 for c, p in small]
    print(f"64 B local_transfer + poll, {args.repeats} rounds of {args.small_iterations} per side "
          f"(batches of {args.batch}):")
    print(f"  C++    {spread([c * 1e6 for c, _ in small], '{:.2f}')} us/op")
    print(f"  Python {spread([p * 1e6 for _, p in small], '{:.2f}')} us/op")
    print(f"  overhead {spread(overhead, '{:.2f}')} us/op; target <= 1.5 us: median at "
          f"{statistics.median(overhead) / 1.5:.2f}x of the budget")

    large = interleaved(*sides(large_n), args.large_iterations, args.large_batch, args.repeats)
    mib = 4 * large_n / 2**20
    ratio = [c / p for c, p in large]
    print(f"1 MiB local_transfer, {args.repeats} rounds of {args.large_iterations} per side "
          f"(batches of {args.large_batch}):")
    print(f"  C++    {spread([mib / c for c, _ in large], '{:.0f}')} MiB/s")
    print(f"  Python {spread([mib / p for _, p in large], '{:.0f}')} MiB/s")
    print(f"  Python/C++ throughput {spread(ratio, '{:.3f}')}; target >= 0.9: median at "
          f"{statistics.median(ratio) / 0.9:.2f}x of the target")

    ok = statistics.median(overhead) <= 1.5 and statistics.median(ratio) >= 0.9
    print("targets met (medians)" if ok else "targets MISSED (medians)")
    if args.smoke and not sane(*(x for pair in small + large for x in pair)):
        print("insane measurement: a time is not positive and finite")
        sys.exit(1)
    if args.check and not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
