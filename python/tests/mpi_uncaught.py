"""Rank 1 dies of an uncaught exception while rank 0 enters a collective: the job must end promptly (run through
expect_abort.sh), not after rank 0's collective deadline."""
import sys

import numpy as np
from mpi4py import MPI

import pycoyote.mpi as pm

c = pm.Collectives()
assert c.allreduce(np.ones(4, np.float32))[0] == MPI.COMM_WORLD.size
if MPI.COMM_WORLD.Get_rank() == 1:
    raise RuntimeError("rank 1 fails on purpose")
c.allreduce(np.ones(1 << 16, np.float32))  # waits for rank 1 until the job ends
print("rank 0 finished an allreduce without rank 1", flush=True)
sys.exit(1)
