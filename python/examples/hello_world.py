#!/usr/bin/env python3
"""pycoyote example: the hello-world transfer sweep (examples/hello_world.cpp in Python).

For every size from --min to --max elements (powers of two) it fills a source buffer, moves it through the
vFPGA with local_transfer, checks the destination (passthrough user logic) and prints throughput and latency.
Run with COYOTE_BACKEND=sim on a machine without an FPGA."""
import argparse
import os
import sys
import time

import numpy as np

from pycoyote import CoyoteThread


def wait(t, n):
    while t.get_completed("local_transfer") < n:
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min", type=int, default=1024, help="smallest size in float32 elements")
    ap.add_argument("--max", type=int, default=256 * 1024, help="largest size in float32 elements")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--alloc", default="thp", choices=["reg", "thp", "hpf"])
    args = ap.parse_args()

    t = CoyoteThread(0, os.getpid())
    src = t.allocate_buffer(args.max, args.alloc, "float32")
    dst = t.allocate_buffer(args.max, args.alloc, "float32")
    s, d = np.asarray(src), np.asarray(dst)  # zero-copy views
    s[:] = np.arange(args.max, dtype=np.float32)
    print(f"{'elements':>10} {'bytes':>10} {'GB/s':>8} {'latency us':>11}")
    n = args.min
    while n <= args.max:
        d[:n] = -1
        t.clear_completed()
        start = time.perf_counter()
        for _ in range(args.runs):
            t.local_transfer(src, dst, n, n)
        wait(t, args.runs)
        elapsed = time.perf_counter() - start
        if not np.array_equal(d[:n], s[:n]):
            sys.exit(f"mismatch at {n} elements")
        t.clear_completed()
        start = time.perf_counter()
        t.local_transfer(src, dst, n, n)
        wait(t, 1)
        lat = time.perf_counter() - start
        print(f"{n:>10} {4 * n:>10} {4 * n * args.runs / elapsed / 1e9:>8.2f} {lat * 1e6:>11.1f}")
        n *= 2
    print("all transfers checked")


if __name__ == "__main__":
    main()
