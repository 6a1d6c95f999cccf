#!/bin/sh
# pycoyote packaging test: `pip install .` offline into a virtual environment with the system's packages
# (Debian's setuptools, NumPy, mpi4py), from a copy of python/ (pip builds in the tree), then an import.
# usage: pip_install.sh <interpreter> <source dir> <build dir> <scratch dir>
set -eu
py=$1 src=$2 build=$3 scratch=$4
rm -rf "$scratch" && mkdir -p "$scratch"
cp -r "$src/python" "$scratch/pkg"
rm -rf "$scratch/pkg/build" "$scratch/pkg"/*.egg-info
"$py" -m venv --system-site-packages "$scratch/venv"
COYOTE_SOURCE_DIR="$src" COYOTE_BUILD_DIR="$build" \
    "$scratch/venv/bin/pip" install --no-build-isolation --no-index --quiet "$scratch/pkg"
cd "$scratch"
"$scratch/venv/bin/python" - <<'PY'
import os
import numpy as np
import pycoyote
assert pycoyote.__file__.startswith(os.getcwd()), pycoyote.__file__
t = pycoyote.CoyoteThread(0, os.getpid())
src, dst = t.allocate_buffer(16, dtype="int32"), t.allocate_buffer(16, dtype="int32")
np.asarray(src)[:] = np.arange(16)
t.local_transfer(src, dst, 16, 16)
while t.get_completed("local_transfer") < 1:
    pass
assert np.array_equal(np.asarray(dst), np.arange(16))
try:
    import pycoyote.mpi  # noqa: F401
    print("pycoyote and pycoyote.mpi installed and working")
except ImportError as e:
    print("pycoyote installed and working; pycoyote.mpi not built:", e)
PY
