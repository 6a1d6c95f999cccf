#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine:
#   scripts/quickstart.sh        install dependencies, configure (Ninja, ./build), build, run the main job
#   scripts/quickstart.sh test   install dependencies, configure, build, run the whole test suite
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${COYOTE_BUILD_DIR:-$repo_root/build}"
mode="${1:-run}"

# ---------------------------------------------------------------------------------------------------------
# MAIN JOB: what `scripts/quickstart.sh` runs after building: the 2-rank demo (MPI bootstrap on the sim
# backend, verified RDMA WRITE/READ between the ranks, allreduce, benchmark report).
run_main_job() {
    local mpirun_flags=(-np 2 --oversubscribe)
    # Open MPI refuses to run as root unless told to.
    if [[ "$(id -u)" == 0 ]]; then mpirun_flags+=(--allow-run-as-root); fi
    COYOTE_BACKEND="${COYOTE_BACKEND:-sim}" mpirun "${mpirun_flags[@]}" -x COYOTE_BACKEND \
        "$build_dir/mpi/coyote_mpi_demo"
}
# ---------------------------------------------------------------------------------------------------------

usage() {
    echo "usage: scripts/quickstart.sh [test]" >&2
    echo "  (no argument)  install dependencies, build into ./build, run the main demo" >&2
    echo "  test           install dependencies, build into ./build, run ctest" >&2
}

case "$mode" in
    run | test) ;;
    -h | --help | help) usage; exit 0 ;;
    *) usage; exit 2 ;;
esac

"$repo_root/scripts/install_deps.sh"

jobs="$(nproc)"
cmake -S "$repo_root" -B "$build_dir" -G Ninja
cmake --build "$build_dir" -j"$jobs"

if [[ "$mode" == "test" ]]; then
    # Two test processes at a time suit a 2-core machine; ctest exits non-zero if any test fails.
    cd "$build_dir"
    ctest --output-on-failure --parallel 2
    # The GPU tests need a second build with COYOTE_ENABLE_GPU=ON (skipped without a CUDA toolkit).
    "$repo_root/scripts/gpu_tests.sh"
else
    run_main_job
fi
