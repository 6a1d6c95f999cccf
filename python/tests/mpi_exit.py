"""Rank 1 leaves with sys.exit(3) while rank 0 enters a collective: rank 0's call fails at once naming rank 1 (its
Collectives object, destroyed on the way out, tells its peers), not at rank 0's collective deadline."""
import sys
import time

import numpy as np
from mpi4py import MPI

import pycoyote.mpi as pm

c = pm.Collectives()
assert c.allreduce(np.ones(4, np.float32))[0] == MPI.COMM_WORLD.size
if MPI.COMM_WORLD.Get_rank() == 1:
    sys.exit(3)
start = time.monotonic()
try:
    c.allreduce(np.ones(1 << 16, np.float32))
    print("FAIL: rank 0 finished an allreduce without rank 1", flush=True)
except Exception as e:  # noqa: BLE001 - the error is what this test checks
    took = time.monotonic() - start
    ok = "rank 1 is gone (it closed its collectives" in str(e) and took < 10
    print(f"{'EXIT TEST PASSED' if ok else 'FAIL'}: after {took:.2f} s: {e}", flush=True)
