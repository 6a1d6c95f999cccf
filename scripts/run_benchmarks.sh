#!/usr/bin/env bash
# Runs the whole coyote-mpi benchmark suite and writes every JSON report, log and plot into one folder.
#
#   scripts/run_benchmarks.sh [--quick] [--build DIR] [--min-time SECONDS] [--repeat N] [RESULTS_DIR]
#
#   RESULTS_DIR      output folder (default: $COYOTE_BENCH_RESULTS or results/<timestamp>)
#   --quick          short run: min time 0.02 s, fewer sizes, bootstrap at 2/4/8/16 ranks with 2 iterations
#   --build DIR      build directory with benchmarks/ (default: $COYOTE_BUILD_DIR or ./build)
#   --min-time S     --benchmark_min_time of the local, rdma and collective suites (default 0.1)
#   --repeat N       alternated latency runs for the spread (default 3, --quick 2; 0 skips them)
#
# Suites: local (1 process), stall (the stall doctor's cost on checkCompleted, 1 process), rdma (2 ranks),
# collectives (2 and 4 ranks, if built), bootstrap (2, 4, 8, 16 ranks, oversubscribed). Then N alternated latency
# runs: the rdma latency benchmarks, then the MPI ping-pong alone in processes that never initialise the runtime
# (COYOTE_BENCH_MPI_ONLY=1), N times in turn; scripts/bench_spread.py reports min / median / max of p50_us and
# loop_us over the runs (RESULTS_DIR/spread.txt): one run on a shared machine shows one of several speed modes. Afterwards scripts/plot_benchmarks.py draws the charts into RESULTS_DIR/plots and prints
# the target summary (also in RESULTS_DIR/summary.txt). Exit status: non-zero if any suite failed.
set -u -o pipefail
umask 077 # every report, log and chart of the run is the user's alone, whatever the caller's umask

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "${here}/.." && pwd)
build="${COYOTE_BUILD_DIR:-${root}/build}"
out="${COYOTE_BENCH_RESULTS:-}"
quick=0
min_time=""
repeat=""
# needs_value OPTION COUNT: an option given last, without its value, is an error naming it.
needs_value() {
    [[ "$2" -ge 2 ]] || { echo "run_benchmarks.sh: $1 needs a value" >&2; exit 2; }
}
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=1 ;;
        --build|--min-time|--repeat) needs_value "$1" $# ;;&
        --build) build="$2"; shift ;;
        --build=*) build="${1#*=}" ;;
        --min-time) min_time="$2"; shift ;;
        --min-time=*) min_time="${1#*=}" ;;
        --repeat) repeat="$2"; shift ;;
        --repeat=*) repeat="${1#*=}" ;;
        -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) echo "run_benchmarks.sh: unknown option $1" >&2; exit 2 ;;
        *) out="$1" ;;
    esac
    shift
done
[[ -n "${out}" ]] || out="${root}/results/$(date +%Y%m%d-%H%M%S)"
if [[ -z "${min_time}" ]]; then
    if [[ ${quick} -eq 1 ]]; then min_time=0.02; else min_time=0.1; fi
fi
if [[ -z "${repeat}" ]]; then
    if [[ ${quick} -eq 1 ]]; then repeat=2; else repeat=3; fi
fi
if ! [[ "${min_time}" =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ ]] || ! awk -v t="${min_time}" 'BEGIN { exit !(t > 0) }'; then
    echo "run_benchmarks.sh: --min-time takes a positive number of seconds, got '${min_time}'" >&2
    exit 2
fi
if ! [[ "${repeat}" =~ ^[0-9]+$ ]]; then
    echo "run_benchmarks.sh: --repeat takes a number, got '${repeat}'" >&2
    exit 2
fi
bench_dir="${build}/benchmarks"
if [[ ! -x "${bench_dir}/local_bench" ]]; then
    echo "run_benchmarks.sh: no benchmarks in ${bench_dir} (build them: cmake --build ${build}; or pass --build DIR)" >&2
    exit 2
fi
mkdir -p "${out}/plots" || exit 2
out=$(cd "${out}" && pwd)

mpiexec_bin="${MPIEXEC:-mpiexec}"
mpi_flags=()
if "${mpiexec_bin}" --version 2>&1 | grep -qE "Open MPI|OpenRTE"; then
    mpi_flags=(--oversubscribe)
    [[ $(id -u) -eq 0 ]] && mpi_flags+=(--allow-run-as-root)
fi
export COYOTE_BACKEND="${COYOTE_BACKEND:-sim}"

common=(--benchmark_min_time="${min_time}" --benchmark_color=false --benchmark_counters_tabular=false)
# Quick mode keeps every other size of the sweeps (the targets' sizes stay in).
local_filter=""
rdma_filter=""
coll_filter=""
boot_iters=5
if [[ ${quick} -eq 1 ]]; then
    local_filter="--benchmark_filter=/(64|4096|65536|1048576|4194304)/"
    rdma_filter="--benchmark_filter=/(8|512|32768|2097152|8388608)/"
    coll_filter="--benchmark_filter=/(8|16|4096|65536|1048576)/"
    boot_iters=2
fi

failed=()
# run_suite <name> <ranks (0: no mpiexec)> <binary> [args...]
run_suite() {
    local name="$1" ranks="$2" bin="$3"
    shift 3
    local json="${out}/${name}.json" log="${out}/${name}.log"
    local cmd=("${bin}" "$@" "${common[@]}" --benchmark_out="${json}" --benchmark_out_format=json)
    [[ "${ranks}" -gt 0 ]] && cmd=("${mpiexec_bin}" -n "${ranks}" "${mpi_flags[@]}" "${cmd[@]}")
    echo "== ${name}: ${cmd[*]}" | tee "${log}"
    local t0=${SECONDS}
    "${cmd[@]}" 2>&1 | tee -a "${log}"
    local rc=${PIPESTATUS[0]}
    echo "== ${name}: exit ${rc} after $((SECONDS - t0)) s" | tee -a "${log}"
    [[ ${rc} -eq 0 ]] || failed+=("${name}")
}

start=${SECONDS}
{
    echo "date: $(date -Is)"
    echo "host: $(hostname)"
    echo "kernel: $(uname -r)"
    echo "cores: $(nproc)"
    echo "load before: $(cat /proc/loadavg)"
    echo "commit: $(git -C "${root}" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "build: ${build}"
    echo "min_time: ${min_time}  quick: ${quick}"
} > "${out}/machine.txt"

run_suite local 0 "${bench_dir}/local_bench" ${local_filter:+"${local_filter}"}
[[ -x "${bench_dir}/stall_bench" ]] && run_suite stall 0 "${bench_dir}/stall_bench"
run_suite rdma 2 "${bench_dir}/rdma_bench" ${rdma_filter:+"${rdma_filter}"}
if [[ -x "${bench_dir}/coll_bench" ]]; then
    run_suite coll 2 "${bench_dir}/coll_bench" ${coll_filter:+"${coll_filter}"}
    run_suite coll_np4 4 "${bench_dir}/coll_bench" ${coll_filter:+"${coll_filter}"}
else
    echo "== coll: ${bench_dir}/coll_bench not built, skipped"
fi
if [[ -x "${bench_dir}/bootstrap_bench" ]]; then
    for n in 2 4 8 16; do
        COYOTE_BENCH_BOOTSTRAP_ITERS="${COYOTE_BENCH_BOOTSTRAP_ITERS:-${boot_iters}}" \
            run_suite "bootstrap_np${n}" "${n}" "${bench_dir}/bootstrap_bench"
    done
fi
# Alternated latency runs: coyote's latency benchmarks, then the MPI ping-pong in processes of their own that never
# initialise the runtime, in turn; the spread over the runs goes to spread.txt.
lat_filter="--benchmark_filter=_lat/"
[[ ${quick} -eq 1 ]] && lat_filter="--benchmark_filter=_lat/(8|512|32768)/"
mkdir -p "${out}/runs"
for ((r = 1; r <= repeat; ++r)); do
    run_suite "runs/lat_r${r}_coyote" 2 "${bench_dir}/rdma_bench" "${lat_filter}"
    COYOTE_BENCH_MPI_ONLY=1 run_suite "runs/lat_r${r}_mpi_only" 2 "${bench_dir}/rdma_bench" "${lat_filter}"
done
if [[ ${repeat} -gt 0 ]]; then
    /usr/bin/python3 "${here}/bench_spread.py" "${out}"/runs/lat_r*_*.json | tee "${out}/spread.txt"
    [[ ${PIPESTATUS[0]} -eq 0 ]] || failed+=("spread")
fi
echo "load after: $(cat /proc/loadavg)" >> "${out}/machine.txt"
echo "total: $((SECONDS - start)) s" >> "${out}/machine.txt"

python=/usr/bin/python3
[[ -x "${python}" ]] || python=python3
"${python}" "${here}/plot_benchmarks.py" "${out}" --plots "${out}/plots" | tee "${out}/summary.txt"
[[ ${PIPESTATUS[0]} -eq 0 ]] || failed+=("plots")

echo "results: ${out} ($((SECONDS - start)) s)"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
