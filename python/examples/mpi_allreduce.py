#!/usr/bin/env python3
"""pycoyote example: an allreduce over FPGA RDMA from Python with mpi4py.

    COYOTE_BACKEND=sim mpiexec -n 3 python3 mpi_allreduce.py

Queue pairs are wired over the communicator in one collective; the result is checked against mpi4py's own
MPI_Allreduce of the same data."""
import sys
import time

import numpy as np
from mpi4py import MPI

import pycoyote.mpi as pm


def main():
    comm = MPI.COMM_WORLD
    with pm.Collectives(comm) as coll:
        for count in (16, 4096, 1 << 20):
            x = np.full(count, coll.rank + 1, dtype=np.float32)
            start = time.perf_counter()
            y = coll.allreduce(x)  # op="sum"; MPI.SUM works too
            elapsed = time.perf_counter() - start
            ref = np.empty_like(x)
            comm.Allreduce(x, ref, op=MPI.SUM)
            if not np.array_equal(y, ref):
                sys.exit(f"rank {coll.rank}: mismatch at {count} elements")
            if coll.rank == 0:
                print(f"{count:>8} float32: {elapsed * 1e6:9.1f} us ({coll.last_algorithm()}), matches mpi4py")


if __name__ == "__main__":
    main()
