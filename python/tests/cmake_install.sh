#!/bin/sh
# pycoyote install test: `cmake --install` into a scratch prefix, then the installed package imported through
# PYTHONPATH alone (no build tree, no LD_LIBRARY_PATH: the extension modules find the libraries by run path).
# usage: cmake_install.sh <cmake> <interpreter> <build dir> <scratch dir> <package dir relative to the prefix> <mpi 0|1>
set -eu
cmake=$1 py=$2 build=$3 scratch=$4 pydir=$5 mpi=$6
rm -rf "$scratch" && mkdir -p "$scratch"
"$cmake" --install "$build" --prefix "$scratch/prefix" >"$scratch/install.log"
test -f "$scratch/prefix/$pydir/pycoyote/__init__.py" || { echo "no pycoyote under $scratch/prefix/$pydir"; exit 1; }
cd "$scratch"
env -u LD_LIBRARY_PATH PYTHONPATH="$scratch/prefix/$pydir" PYCOYOTE_EXPECT_MPI="$mpi" "$py" - <<'PY'
import os
import numpy as np
import pycoyote
from pycoyote import _core
root = os.path.join(os.getcwd(), "prefix")
for f in (pycoyote.__file__, _core.__file__):
    assert f.startswith(root), f"{f} is not the installed copy under {root}"
t = pycoyote.CoyoteThread(0, os.getpid())
src, dst = t.allocate_buffer(16, dtype="int32"), t.allocate_buffer(16, dtype="int32")
np.asarray(src)[:] = np.arange(16)
t.local_transfer(src, dst, 16, 16)
while t.get_completed("local_transfer") < 1:
    pass
assert np.array_equal(np.asarray(dst), np.arange(16))
assert pycoyote.CoyoteReconfig(0).get_device() == 0
if os.environ["PYCOYOTE_EXPECT_MPI"] == "1":
    import pycoyote.mpi
    assert pycoyote.mpi.__file__.startswith(root), pycoyote.mpi.__file__
    assert hasattr(pycoyote.mpi.Collectives, "ialltoall")
print("installed pycoyote imported from", os.path.dirname(pycoyote.__file__))
PY
