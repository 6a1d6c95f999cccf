"""Collectives used after MPI.Finalize() fail with an error instead of aborting the MPI job (run under mpiexec)."""
import sys

import numpy as np
from mpi4py import MPI

import pycoyote
import pycoyote.mpi as pm


def expect_mpi_error(what, fn):
    try:
        fn()
    except pycoyote.CoyoteError as e:
        if "MPI was finalized" not in str(e):
            sys.exit(f"{what}: error without the cause: {e}")
        return
    sys.exit(f"{what}: no error after MPI.Finalize()")


c = pm.Collectives()
assert c.allreduce(np.ones(2, np.float32))[0] == MPI.COMM_WORLD.size
MPI.Finalize()
expect_mpi_error("allreduce", lambda: c.allreduce(np.ones(2, np.float32)))
expect_mpi_error("a new Collectives", pm.Collectives)
c.close()
print("after-finalize ok", flush=True)
