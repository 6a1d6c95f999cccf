"""pycoyote.mpi: Coyote's MPI layer from Python, through mpi4py (beyond pyCoyote).

``Collectives(comm)`` wires queue pairs over an mpi4py communicator (one collective) and runs MPI-style
collectives over FPGA RDMA on NumPy arrays or CoyoteBuffers: counts come from the arrays, and a result array
left out is allocated with the send array's dtype and returned; each collective has a non-blocking form
(``ibarrier``, ``iallreduce``, ``ialltoall``, ...) returning a ``Request`` whose ``wait()`` returns the result.
``QpSet(comm)`` gives raw queue pairs.
Both are collective to create and to ``close()``; objects still open at interpreter exit are closed before
mpi4py finalises MPI, unless the rank dies of an uncaught exception, which ends the job with MPI_Abort.
"""
import atexit
import sys
import weakref

from mpi4py import MPI  # noqa: F401  (initialises MPI before the extension uses it)

from . import _core  # noqa: F401  (the exception classes)
from ._mpi import Collectives as _Collectives, QpSet as _QpSet, Request  # noqa: F401

_open = weakref.WeakSet()


class Collectives(_Collectives):
    """Collectives over FPGA RDMA on ``comm`` (default MPI.COMM_WORLD); a context manager."""

    def __init__(self, comm=None):
        super().__init__(comm)
        _open.add(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class QpSet(_QpSet):
    """Queue pairs from this rank to its peers (``pattern``: all, ring, recursive_doubling, binomial)."""

    def __init__(self, comm=None, buffer_size=1 << 20, pattern="all"):
        super().__init__(comm, buffer_size, pattern)
        _open.add(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def barrier(comm=None):
    """MPI barrier on ``comm`` (default MPI.COMM_WORLD)."""
    (comm if comm is not None else MPI.COMM_WORLD).Barrier()


_uncaught = None  # the exception a script dies of (sys.excepthook), if any
_previous_excepthook = sys.excepthook


def _record_uncaught(kind, value, tb):
    global _uncaught
    _uncaught = value
    _previous_excepthook(kind, value, tb)


sys.excepthook = _record_uncaught


@atexit.register
def _close_all():
    # A rank that dies of an uncaught exception cannot take part in a collective close: the other ranks would wait
    # for it in their next collective until the deadline. It ends the job at once, as `python -m mpi4py` does. Not
    # in an interactive interpreter, whose excepthook also reports the errors of statements it went on from.
    failed = None if hasattr(sys, "ps1") or sys.flags.interactive else _uncaught
    if failed is not None and not isinstance(failed, (SystemExit, KeyboardInterrupt)) and len(_open) > 0:
        world = MPI.COMM_WORLD
        sys.stderr.write(f"pycoyote.mpi: rank {world.Get_rank()} ends with an uncaught exception "
                         f"({type(failed).__name__}): MPI_Abort, so that the other ranks do not wait for it\n")
        sys.stderr.flush()
        world.Abort(1)
    for c in list(_open):
        try:
            c.close()
        except Exception:  # noqa: BLE001  (exiting: nothing to report to)
            pass


__all__ = ["Collectives", "QpSet", "Request", "barrier"]
