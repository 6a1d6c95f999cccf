#!/usr/bin/env python3
"""pycoyote benchmark: the cost of Python over C++ for the same operations, in the same run.

1. Per-operation overhead: a 64 B local_transfer + get_completed poll loop in Python against the same loop in
   C++ (CoyoteThread._bench_local_transfer). Target: <= 1.5 us per operation.
2. Throughput at 1 MiB, Python loop against C++ loop. Target: >= 0.9x the C++ throughput.
Prints one line per measurement and a verdict; --check makes a missed target the exit status."""
import argparse
import os
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


def best_of(fn, repeats):
    return min(fn() for _ in range(repeats))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--small-iterations", type=int, default=20000)
    ap.add_argument("--large-iterations", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args()

    t = CoyoteThread(0, os.getpid())
    small_n, large_n = 16, 256 * 1024  # float32 elements: 64 B and 1 MiB
    src = t.allocate_buffer(large_n, "thp", "float32")
    dst = t.allocate_buffer(large_n, "thp", "float32")

    it = args.small_iterations
    cpp = best_of(lambda: t._bench_local_transfer(src, dst, small_n, it), args.repeats)
    py = best_of(lambda: python_loop(t, src, dst, small_n, it), args.repeats)
    overhead_us = (py - cpp) / it * 1e6
    print(f"64 B local_transfer + poll: C++ {cpp / it * 1e6:.2f} us/op, Python {py / it * 1e6:.2f} us/op, "
          f"overhead {overhead_us:.2f} us/op (target <= 1.5)")

    it = args.large_iterations
    cpp = best_of(lambda: t._bench_local_transfer(src, dst, large_n, it), args.repeats)
    py = best_of(lambda: python_loop(t, src, dst, large_n, it), args.repeats)
    mib = 4 * large_n * it / 2**20
    ratio = cpp / py
    print(f"1 MiB local_transfer: C++ {mib / cpp:.0f} MiB/s, Python {mib / py:.0f} MiB/s, "
          f"ratio {ratio:.3f} (target >= 0.9)")

    ok = overhead_us <= 1.5 and ratio >= 0.9
    print("targets met" if ok else "targets MISSED")
    if args.check and not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
