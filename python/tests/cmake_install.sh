#!/bin/sh
# pycoyote install test: `cmake --install` into a scratch prefix, then the installed package imported through
# PYTHONPATH alone (no build tree, no LD_LIBRARY_PATH: the extension modules find the libraries by run path).
# usage: cmake_install.sh <cmake> <interpreter> <build dir> <scratch dir> <package dir relative to the prefix> <mpi 0|1>
set -eu
cmake=$1 py=$2 build=$3 scratch=$4 pydir=$5 mpi=$6
rm -rf "$scratch" && mkdir -p "$scratch"
"$cmake" --install "$build" --prefix "$scratch/prefix" >"$scratch/install.log" 2>&1 || { cat "$scratch/install.log"; exit 1; }
test -f "$scratch/prefix/$pydir/pycoyote/__init__.py" || { echo "no pycoyote under $scratch/prefix/$pydir"; exit 1; }
cd "$scratch"
env -u LD_LIBRARY_PATH PYTHONPATH="$scratch/prefix/$pydir" "$py" "$(dirname "$0")/installed_check.py" \
    "$scratch/prefix" "$mpi"
