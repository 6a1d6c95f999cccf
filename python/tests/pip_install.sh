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
"$scratch/venv/bin/python" "$src/python/tests/installed_check.py" "$scratch" 0
