"""pycoyote packaging tests: checks an installed copy of the package (run from outside the build tree).
usage: installed_check.py <root the package must come from> <mpi: 1 required, 0 optional>"""
import os
import sys

import numpy as np

import pycoyote
from pycoyote import _core

root, mpi = os.path.abspath(sys.argv[1]), sys.argv[2]
for f in (pycoyote.__file__, _core.__file__):
    assert os.path.abspath(f).startswith(root), f"{f} is not the installed copy under {root}"
t = pycoyote.CoyoteThread(0, os.getpid())
src, dst = t.allocate_buffer(16, dtype="int32"), t.allocate_buffer(16, dtype="int32")
np.asarray(src)[:] = np.arange(16)
t.local_transfer(src, dst, 16, 16)
while t.get_completed("local_transfer") < 1:
    pass
assert np.array_equal(np.asarray(dst), np.arange(16))
assert pycoyote.CoyoteReconfig(0).get_device() == 0
try:
    import pycoyote.mpi
except ImportError as e:
    assert mpi != "1", f"pycoyote.mpi is missing: {e}"
    print("pycoyote installed and working; pycoyote.mpi not built:", e)
else:
    assert os.path.abspath(pycoyote.mpi.__file__).startswith(root), pycoyote.mpi.__file__
    assert hasattr(pycoyote.mpi.Collectives, "ialltoall")
    print("pycoyote and pycoyote.mpi installed and working, from", os.path.dirname(pycoyote.__file__))
