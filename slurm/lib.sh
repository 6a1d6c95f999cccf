# shellcheck shell=bash
# Shared logic of the coyote-mpi Slurm batch scripts (bench.sbatch, collective.sbatch, tests.sbatch).
# Sourced, never executed. Every function is prefixed `coyote_`; every setting is an environment variable
# (see docs/slurm.md for the full list):
#
#   COYOTE_BUILD_DIR         build tree with the binaries            (default: <repository>/build)
#   COYOTE_RESULTS_DIR       parent of the per-job result folders    (default: $SLURM_SUBMIT_DIR/results)
#   COYOTE_LAUNCHER          srun | mpirun | none                    (default: srun)
#   COYOTE_RANKS_PER_NODE    ranks on every node                     (default: $SLURM_NTASKS_PER_NODE, else 1)
#   COYOTE_SRUN_MPI          srun --mpi plug-in                      (default: pmix)
#   COYOTE_SRUN_ARGS         extra srun arguments for the program launches
#   COYOTE_MPIRUN_ARGS       extra mpirun arguments (e.g. "--mca btl self,tcp")
#   COYOTE_SKIP_NODE_CHECK   1: do not run slurm/node_check.sh before the launches
#   COYOTE_SKIP_LAUNCH_CHECK 1: do not probe the launcher before the launches
#   COYOTE_LAUNCH_CHECK_TIMEOUT  time limit of the launcher probe (timeout(1): 120, 2m)  (default: 120)
#
# Results of job <id> go to ${COYOTE_RESULTS_DIR}/job-<id>/: status, progress.log, steps.tsv, job.env,
# node_check.log, launch_check.log, logs/<step>.rank<r>.<node>.log and what each script adds.

# ---- messages, status --------------------------------------------------------------------------

coyote_now() { date '+%Y-%m-%dT%H:%M:%S'; }

# coyote_log MSG...: one timestamped line to the job output and to progress.log.
coyote_log() {
    local line
    line="[$(coyote_now)] ${COYOTE_JOB_KIND:-coyote}: $*"
    printf '%s\n' "$line"
    if [[ -n "${COYOTE_JOB_DIR:-}" && -d "${COYOTE_JOB_DIR}" ]]; then
        printf '%s\n' "$line" >>"${COYOTE_JOB_DIR}/progress.log"
    fi
}

# coyote_set_status TEXT: replaces the one-line status file of the job folder.
coyote_set_status() {
    if [[ -n "${COYOTE_JOB_DIR:-}" && -d "${COYOTE_JOB_DIR}" ]]; then
        printf '%s\n' "$*" >"${COYOTE_JOB_DIR}/status.tmp" && mv -f "${COYOTE_JOB_DIR}/status.tmp" "${COYOTE_JOB_DIR}/status"
    fi
}

# coyote_die MSG...: records the failure and ends the job with a non-zero exit code.
coyote_die() {
    local msg="$*"
    printf '%s\n' "[$(coyote_now)] ${COYOTE_JOB_KIND:-coyote}: ERROR: ${msg}" >&2
    if [[ -n "${COYOTE_JOB_DIR:-}" && -d "${COYOTE_JOB_DIR}" ]]; then
        printf '%s\n' "[$(coyote_now)] ${COYOTE_JOB_KIND:-coyote}: ERROR: ${msg}" >>"${COYOTE_JOB_DIR}/progress.log"
    fi
    coyote_set_status "failed: ${msg}"
    # A setting refused in coyote_init stops the job before job.env was written: write it now, so that every
    # job folder records its settings, start and end.
    if [[ -n "${COYOTE_JOB_DIR:-}" && -d "${COYOTE_JOB_DIR}" && ! -f "${COYOTE_JOB_DIR}/job.env" ]]; then
        coyote_record_job
    fi
    coyote_record_end
    COYOTE_FINISHED=1
    exit 1
}

# coyote_record_end: the end time in job.env, once, however the job ends (once job.env exists).
coyote_record_end() {
    [[ "${COYOTE_END_RECORDED:-0}" == 1 || -z "${COYOTE_JOB_DIR:-}" || ! -f "${COYOTE_JOB_DIR}/job.env" ]] && return 0
    COYOTE_END_RECORDED=1
    printf 'end=%s\n' "$(coyote_now)" >>"${COYOTE_JOB_DIR}/job.env"
}

# ---- locating things ---------------------------------------------------------------------------

# The directory of this file (slurm/ of the repository), also when the batch script runs from a copy in
# slurmd's spool directory.
COYOTE_SLURM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
COYOTE_REPO_DIR=$(cd "${COYOTE_SLURM_DIR}/.." && pwd)

# coyote_is_root: true when running as root (Open MPI then needs --allow-run-as-root).
coyote_is_root() { [[ $(id -u) -eq 0 ]]; }

# coyote_build_path REL: absolute path of a file of the build tree.
coyote_build_path() { printf '%s/%s\n' "${COYOTE_BUILD_DIR}" "$1"; }

# coyote_find_binary REL...: the first of the build-tree paths REL that is an executable file, else the
# first one (so that the "missing binary" message names it).
coyote_find_binary() {
    local rel
    for rel in "$@"; do
        if [[ -f "${COYOTE_BUILD_DIR}/${rel}" && -x "${COYOTE_BUILD_DIR}/${rel}" ]]; then
            printf '%s/%s\n' "${COYOTE_BUILD_DIR}" "${rel}"
            return 0
        fi
    done
    printf '%s/%s\n' "${COYOTE_BUILD_DIR}" "$1"
}

# coyote_require_binary PATH: dies with "missing binary PATH" unless PATH is an executable file.
coyote_require_binary() {
    if [[ ! -f "$1" || ! -x "$1" ]]; then
        coyote_die "missing binary $1 (build it first, e.g. cmake --build ${COYOTE_BUILD_DIR} --target $(basename "$1"), or set COYOTE_BUILD_DIR)"
    fi
}

# ---- job setup ---------------------------------------------------------------------------------

# coyote_init KIND: validates the settings, creates the job folder, records the job facts, installs the
# traps that keep the status file honest when the job is cancelled or hits its time limit.
coyote_init() {
    COYOTE_JOB_KIND=$1
    COYOTE_FINISHED=0
    COYOTE_CURRENT_STEP=setup

    if [[ -z "${SLURM_JOB_ID:-}" ]]; then
        printf '%s\n' "${COYOTE_JOB_KIND}: not inside a Slurm job (SLURM_JOB_ID is unset); submit with sbatch" >&2
        exit 2
    fi

    COYOTE_BUILD_DIR=${COYOTE_BUILD_DIR:-${COYOTE_REPO_DIR}/build}
    COYOTE_BUILD_DIR=$(cd "${COYOTE_BUILD_DIR}" 2>/dev/null && pwd) || {
        printf '%s\n' "${COYOTE_JOB_KIND}: build directory ${COYOTE_BUILD_DIR} does not exist (set COYOTE_BUILD_DIR)" >&2
        exit 1
    }
    export COYOTE_BUILD_DIR

    # Everything the job creates (the result folder, logs, the programs' JSON) is the user's alone.
    umask 077
    local parent=${COYOTE_RESULTS_DIR:-${SLURM_SUBMIT_DIR:-$PWD}/results}
    COYOTE_JOB_DIR="${parent}/job-${SLURM_JOB_ID}"
    if ! mkdir -p "${COYOTE_JOB_DIR}/logs"; then
        printf '%s\n' "${COYOTE_JOB_KIND}: cannot create the result folder ${COYOTE_JOB_DIR}" >&2
        exit 1
    fi
    export COYOTE_JOB_DIR
    : >"${COYOTE_JOB_DIR}/progress.log"
    printf 'step\texit_code\tseconds\n' >"${COYOTE_JOB_DIR}/steps.tsv"
    coyote_set_status "running"

    COYOTE_LAUNCHER=${COYOTE_LAUNCHER:-srun}
    case "${COYOTE_LAUNCHER}" in
        srun | mpirun | none) ;;
        *) coyote_die "COYOTE_LAUNCHER=${COYOTE_LAUNCHER} is not one of srun, mpirun, none" ;;
    esac
    COYOTE_NNODES=${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}
    COYOTE_RANKS_PER_NODE=${COYOTE_RANKS_PER_NODE:-${SLURM_NTASKS_PER_NODE:-1}}
    if ! [[ "${COYOTE_RANKS_PER_NODE}" =~ ^[1-9][0-9]*$ ]]; then
        coyote_die "COYOTE_RANKS_PER_NODE=${COYOTE_RANKS_PER_NODE} is not a positive integer"
    fi
    if [[ "${COYOTE_LAUNCHER}" == none ]]; then
        COYOTE_NP=1
    else
        COYOTE_NP=$((COYOTE_NNODES * COYOTE_RANKS_PER_NODE))
    fi
    COYOTE_SRUN_MPI=${COYOTE_SRUN_MPI:-pmix}
    # The launcher probe runs under timeout(1), which takes seconds with an optional suffix s, m, h or d; checked
    # here so that a typo is not reported later as a launcher that cannot start the job.
    if ! [[ "${COYOTE_LAUNCH_CHECK_TIMEOUT:-120}" =~ ^[0-9]+(\.[0-9]+)?[smhd]?$ ]]; then
        coyote_die "COYOTE_LAUNCH_CHECK_TIMEOUT=${COYOTE_LAUNCH_CHECK_TIMEOUT} is not a time limit for the launcher" \
            "probe: a number of seconds, optionally with a suffix s, m, h or d (e.g. 120, 2m; 0: no limit)"
    fi
    export COYOTE_LAUNCHER COYOTE_RANKS_PER_NODE

    trap 'coyote_on_signal TERM' TERM
    trap 'coyote_on_signal INT' INT
    trap 'coyote_on_signal USR1' USR1
    trap 'coyote_on_exit' EXIT

    coyote_record_job
    coyote_log "job ${SLURM_JOB_ID} on ${SLURM_JOB_NODELIST:-?} (${COYOTE_NNODES} node(s)), launcher ${COYOTE_LAUNCHER}," \
        "${COYOTE_NP} ranks (${COYOTE_RANKS_PER_NODE} per node), results in ${COYOTE_JOB_DIR}"
}

# Writes job.env: the facts needed to interpret the results later.
coyote_record_job() {
    {
        printf 'job_id=%s\n' "${SLURM_JOB_ID}"
        printf 'job_name=%s\n' "${SLURM_JOB_NAME:-}"
        printf 'kind=%s\n' "${COYOTE_JOB_KIND:-}"
        printf 'nodes=%s\n' "${SLURM_JOB_NODELIST:-}"
        printf 'num_nodes=%s\n' "${COYOTE_NNODES:-}"
        printf 'ntasks=%s\n' "${SLURM_NTASKS:-}"
        printf 'launcher=%s\n' "${COYOTE_LAUNCHER:-}"
        printf 'ranks_per_node=%s\n' "${COYOTE_RANKS_PER_NODE:-}"
        printf 'ranks=%s\n' "${COYOTE_NP:-}"
        printf 'build_dir=%s\n' "${COYOTE_BUILD_DIR}"
        printf 'start=%s\n' "$(coyote_now)"
        if command -v git >/dev/null 2>&1; then
            printf 'git_commit=%s\n' "$(git -C "${COYOTE_REPO_DIR}" rev-parse HEAD 2>/dev/null || echo unknown)"
        fi
        local v
        for v in $(compgen -e | grep '^COYOTE_' | sort); do
            printf '%s=%s\n' "$v" "${!v}"
        done
    } >"${COYOTE_JOB_DIR}/job.env"
}

coyote_on_signal() {
    local sig=$1
    COYOTE_FINISHED=1
    coyote_log "received SIG${sig} during step '${COYOTE_CURRENT_STEP}' (time limit or scancel); results written so far stay in ${COYOTE_JOB_DIR}"
    coyote_set_status "terminated: SIG${sig} during step ${COYOTE_CURRENT_STEP}"
    coyote_record_end
    # Pass the signal on to the running launch, then leave.
    if [[ -n "${COYOTE_CHILD_PID:-}" ]]; then
        kill -TERM "${COYOTE_CHILD_PID}" 2>/dev/null || true
    fi
    trap - EXIT
    exit 143
}

coyote_on_exit() {
    local rc=$?
    if [[ "${COYOTE_FINISHED:-0}" != 1 ]]; then
        coyote_set_status "failed: script ended unexpectedly (exit code ${rc}) during step ${COYOTE_CURRENT_STEP}"
        coyote_record_end
    fi
}

# coyote_finish FAILURES: final status line and exit code of the job.
coyote_finish() {
    local failures=$1
    COYOTE_FINISHED=1
    coyote_record_end
    if [[ "${failures}" -eq 0 ]]; then
        coyote_set_status "ok"
        coyote_log "all steps passed; results in ${COYOTE_JOB_DIR}"
        exit 0
    fi
    coyote_set_status "failed: ${failures} step(s) failed (see steps.tsv)"
    coyote_log "FAILED: ${failures} step(s) failed; see ${COYOTE_JOB_DIR}/steps.tsv and logs/"
    exit 1
}

# ---- running commands so that signals reach this shell -----------------------------------------

# coyote_run CMD...: runs CMD in the background and waits, so that a SIGTERM from Slurm (time limit,
# scancel) runs the trap at once instead of after CMD has ended. Returns CMD's exit code.
coyote_run() {
    "$@" &
    COYOTE_CHILD_PID=$!
    local rc=0
    wait "${COYOTE_CHILD_PID}" || rc=$?
    COYOTE_CHILD_PID=
    return "${rc}"
}

# ---- launcher command lines --------------------------------------------------------------------

# Fills the array COYOTE_LAUNCH_CMD with the launcher prefix for NP ranks, RPN per node, on NNODES nodes
# (optionally only on the comma-separated Slurm node names NODES).
coyote_launcher_prefix() {
    local np=$1 rpn=$2 nnodes=$3 nodes=${4:-}
    COYOTE_LAUNCH_CMD=()
    case "${COYOTE_LAUNCHER}" in
        srun)
            COYOTE_LAUNCH_CMD=(srun "--mpi=${COYOTE_SRUN_MPI}" --export=ALL -N "${nnodes}" -n "${np}"
                "--ntasks-per-node=${rpn}" --kill-on-bad-exit=1)
            [[ -n "${nodes}" ]] && COYOTE_LAUNCH_CMD+=(-w "${nodes}")
            if [[ -n "${COYOTE_SRUN_ARGS:-}" ]]; then
                # shellcheck disable=SC2206 # word splitting of the user's extra arguments is intended
                COYOTE_LAUNCH_CMD+=(${COYOTE_SRUN_ARGS})
            fi
            ;;
        mpirun)
            COYOTE_LAUNCH_CMD=(mpirun -np "${np}" --map-by "ppr:${rpn}:node")
            [[ -n "${nodes}" ]] && COYOTE_LAUNCH_CMD+=(--host "${nodes}")
            if coyote_is_root; then
                COYOTE_LAUNCH_CMD+=(--allow-run-as-root)
            fi
            local v
            for v in $(compgen -e | grep '^COYOTE_' | sort); do
                COYOTE_LAUNCH_CMD+=(-x "$v")
            done
            if [[ -n "${COYOTE_MPIRUN_ARGS:-}" ]]; then
                # shellcheck disable=SC2206 # word splitting of the user's extra arguments is intended
                COYOTE_LAUNCH_CMD+=(${COYOTE_MPIRUN_ARGS})
            fi
            ;;
        none)
            COYOTE_LAUNCH_CMD=()
            ;;
    esac
}

# coyote_nodes: the node names of the allocation, one per line.
coyote_nodes() {
    scontrol show hostnames "${SLURM_JOB_NODELIST:-}" 2>/dev/null
}

# ---- checks before the launches ----------------------------------------------------------------

# coyote_node_check BINARY...: runs slurm/node_check.sh once on every node of the allocation (the
# binaries must be present there too). Stops the job when a node fails, naming node and problem.
coyote_node_check() {
    COYOTE_CURRENT_STEP=node_check
    if [[ "${COYOTE_SKIP_NODE_CHECK:-0}" == 1 ]]; then
        coyote_log "node check skipped (COYOTE_SKIP_NODE_CHECK=1)"
        return 0
    fi
    COYOTE_REQUIRED_BINARIES="$*"
    export COYOTE_REQUIRED_BINARIES
    local log="${COYOTE_JOB_DIR}/node_check.log" rc=0
    coyote_log "node check on ${COYOTE_NNODES} node(s): ${COYOTE_SLURM_DIR}/node_check.sh"
    # --mpi=none: the check is no MPI program; one task per node, every node reports even when one fails.
    coyote_run srun --mpi=none --export=ALL -N "${COYOTE_NNODES}" -n "${COYOTE_NNODES}" --ntasks-per-node=1 \
        --kill-on-bad-exit=0 "${COYOTE_SLURM_DIR}/node_check.sh" >"${log}" 2>&1 || rc=$?
    cat "${log}"
    local failed
    failed=$(grep -E '^node_check\[[^]]*\]: FAIL' "${log}" || true)
    if [[ ${rc} -ne 0 || -n "${failed}" ]]; then
        if [[ -z "${failed}" ]]; then
            failed="srun of node_check.sh ended with exit code ${rc} (see ${log})"
        fi
        coyote_die "node check failed, job stopped before launch:"$'\n'"${failed}"
    fi
    local passed
    passed=$(grep -cE '^node_check\[[^]]*\]: PASS' "${log}" || true)
    if [[ "${passed}" -ne "${COYOTE_NNODES}" ]]; then
        coyote_die "node check: ${passed} of ${COYOTE_NNODES} nodes reported PASS (see ${log})"
    fi
    coyote_log "node check passed on all ${COYOTE_NNODES} node(s)"
}

# coyote_launch_check: starts a probe with the real launcher and compares what every rank sees with the
# launch: rank count, ranks per node, the MPI world size each rank will get, SLURM_NTASKS. Catches the
# silent-singleton launch (every rank an MPI world of size 1) before the program runs.
coyote_launch_check() {
    COYOTE_CURRENT_STEP=launch_check
    if [[ "${COYOTE_SKIP_LAUNCH_CHECK:-0}" == 1 ]]; then
        coyote_log "launch check skipped (COYOTE_SKIP_LAUNCH_CHECK=1)"
        return 0
    fi
    local ntasks=${SLURM_NTASKS:-}
    if [[ "${COYOTE_LAUNCHER}" == none ]]; then
        if [[ -n "${ntasks}" && "${ntasks}" -gt 1 ]]; then
            coyote_die "launch check: COYOTE_LAUNCHER=none starts 1 process but SLURM_NTASKS=${ntasks}:" \
                "the program would run as an MPI singleton (size 1); use COYOTE_LAUNCHER=srun or mpirun"
        fi
        coyote_log "launch check: COYOTE_LAUNCHER=none, 1 process, SLURM_NTASKS=${ntasks:-unset}"
        return 0
    fi
    if [[ -n "${ntasks}" && "${ntasks}" -ne "${COYOTE_NP}" ]]; then
        coyote_die "launch check: the launch would start ${COYOTE_NP} ranks (${COYOTE_NNODES} nodes x" \
            "COYOTE_RANKS_PER_NODE=${COYOTE_RANKS_PER_NODE}) but the allocation has SLURM_NTASKS=${ntasks};" \
            "submit with --ntasks-per-node=${COYOTE_RANKS_PER_NODE} or set COYOTE_RANKS_PER_NODE to match"
    fi
    if [[ "${COYOTE_LAUNCHER}" == srun ]]; then
        if ! command -v srun >/dev/null 2>&1; then
            coyote_die "launch check: srun not found in PATH"
        fi
        local plugins
        plugins=$(srun --mpi=list 2>&1 || true)
        if [[ "${COYOTE_SRUN_MPI}" != none ]] && ! grep -qw -- "${COYOTE_SRUN_MPI}" <<<"${plugins}"; then
            coyote_die "launch check: srun has no MPI plug-in '${COYOTE_SRUN_MPI}' (srun --mpi=list:" \
                "$(tr '\n' ' ' <<<"${plugins}")); ranks would start as MPI singletons; use COYOTE_LAUNCHER=mpirun"
        fi
    elif ! command -v mpirun >/dev/null 2>&1; then
        coyote_die "launch check: mpirun not found in PATH"
    fi

    local log="${COYOTE_JOB_DIR}/launch_check.log" rc=0
    coyote_launcher_prefix "${COYOTE_NP}" "${COYOTE_RANKS_PER_NODE}" "${COYOTE_NNODES}"
    printf '%q ' "${COYOTE_LAUNCH_CMD[@]}" "${COYOTE_SLURM_DIR}/node_check.sh" --probe >"${log}"
    printf '\n' >>"${log}"
    coyote_run timeout "${COYOTE_LAUNCH_CHECK_TIMEOUT:-120}" "${COYOTE_LAUNCH_CMD[@]}" \
        "${COYOTE_SLURM_DIR}/node_check.sh" --probe >>"${log}" 2>&1 || rc=$?
    if [[ ${rc} -ne 0 ]]; then
        cat "${log}"
        coyote_die "launch check: the ${COYOTE_LAUNCHER} probe of ${COYOTE_NP} ranks ended with exit code ${rc}" \
            "(see ${log}); the launcher cannot start this job as configured"
    fi
    local problems
    problems=$(awk -v np="${COYOTE_NP}" -v rpn="${COYOTE_RANKS_PER_NODE}" -v launcher="${COYOTE_LAUNCHER}" '
        /^COYOTE_PROBE / {
            n++
            delete f
            for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
            if (f["rank"] == "" || f["size"] == "") {
                printf "node %s: a rank sees no MPI rank/size from %s (rank=%s size=%s): it would start as an MPI singleton\n", f["node"], launcher, f["rank"], f["size"]
                next
            }
            if (f["size"] != np) printf "node %s rank %s: MPI world size %s, expected %s\n", f["node"], f["rank"], f["size"], np
            if (f["size"] == 1 && f["ntasks"] > 1) printf "node %s rank %s: MPI size 1 but SLURM_NTASKS=%s (singleton launch)\n", f["node"], f["rank"], f["ntasks"]
            if (seen[f["rank"]]++) printf "rank %s started twice\n", f["rank"]
            per_node[f["node"]]++
        }
        END {
            if (n != np) printf "%d ranks started, expected %d\n", n, np
            for (node in per_node) if (per_node[node] != rpn) printf "node %s runs %d ranks, expected %d\n", node, per_node[node], rpn
        }' "${log}")
    if [[ -n "${problems}" ]]; then
        cat "${log}"
        coyote_die "launch check (${COYOTE_LAUNCHER}) found a rank layout that does not match the launch:"$'\n'"${problems}"
    fi
    coyote_log "launch check passed: ${COYOTE_LAUNCHER} starts ${COYOTE_NP} ranks, ${COYOTE_RANKS_PER_NODE} per node, each sees MPI size ${COYOTE_NP}"
}

# ---- program launches --------------------------------------------------------------------------

# coyote_step NAME CMD...: runs one step (any command), records its exit code and duration in
# steps.tsv as soon as it ends. Returns the exit code.
coyote_step() {
    local name=$1
    shift
    COYOTE_CURRENT_STEP=${name}
    local start rc=0
    start=$(date +%s)
    coyote_log "step ${name}: $*"
    coyote_run "$@" || rc=$?
    local seconds=$(($(date +%s) - start))
    printf '%s\t%s\t%s\n' "${name}" "${rc}" "${seconds}" >>"${COYOTE_JOB_DIR}/steps.tsv"
    if [[ ${rc} -eq 0 ]]; then
        coyote_log "step ${name}: ok (${seconds} s)"
    else
        coyote_log "step ${name}: FAILED with exit code ${rc} (${seconds} s); per-rank output in ${COYOTE_JOB_DIR}/logs/${name}.rank*.log"
    fi
    COYOTE_CURRENT_STEP=idle
    return "${rc}"
}

# coyote_launch NAME PROGRAM ARGS...: starts PROGRAM on all ranks with the chosen launcher as step NAME.
# In ARGS, {rank} and {node} are replaced per rank (e.g. --benchmark_out=dir/x.rank{rank}.json).
# Every rank's output goes to the job output and to logs/NAME.rank<r>.<node>.log.
coyote_launch() {
    local name=$1
    shift
    coyote_launch_on "${name}" "${COYOTE_NP}" "${COYOTE_RANKS_PER_NODE}" "${COYOTE_NNODES}" "" "$@"
}

# coyote_launch_on NAME NP RPN NNODES NODES PROGRAM ARGS...: like coyote_launch for a part of the
# allocation: NP ranks, RPN per node, on NNODES nodes (NODES: comma-separated names, or empty).
coyote_launch_on() {
    local name=$1 np=$2 rpn=$3 nnodes=$4 nodes=$5
    shift 5
    coyote_launcher_prefix "${np}" "${rpn}" "${nnodes}" "${nodes}"
    coyote_step "${name}" "${COYOTE_LAUNCH_CMD[@]}" "${COYOTE_SLURM_DIR}/rank_run.sh" "${COYOTE_JOB_DIR}/logs" "${name}" "$@"
}

# coyote_validate_json FILE: true when FILE is valid JSON (python3 json.tool), false otherwise.
coyote_validate_json() {
    local py
    py=$(command -v /usr/bin/python3 || command -v python3 || true)
    if [[ -z "${py}" ]]; then
        coyote_log "warning: no python3, JSON of $1 not validated"
        return 0
    fi
    "${py}" -m json.tool "$1" >/dev/null 2>&1
}
