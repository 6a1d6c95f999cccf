#!/usr/bin/env bash
# Runs the coyote-mpi Slurm batch scripts on a real, throw-away Slurm cluster on this machine.
#
#   run_slurm_test.sh --build-dir DIR --work-dir DIR CASE...
#
# Starts an isolated munged (own key and socket), slurmctld and two slurmd "nodes" (node1, node2, both
# on localhost, each with its own port and spool directory) from Debian's slurm-wlm and munge packages,
# with a configuration written under --work-dir and free ports chosen at start. Then submits the batch
# scripts of slurm/ with `sbatch --wait` on the sim backend and checks exit codes, job output and the
# per-job result folders. The daemons are stopped on every exit path (trap), by their pid files.
# Installs nothing: when the daemons do not start, the test fails and prints their logs.
#
# Cases (functions case_<name> in tests/slurm/cases.sh):
#   smoke       no project binaries needed: launches a probe program through collective.sbatch with
#               mpirun on 2 nodes (1 and 2 ranks per node) and srun --mpi=pmix on 1 node (2 ranks);
#               failure paths: forced COYOTE_BACKEND=hw (node check stops the job naming the node),
#               launcher "none" on 2 tasks and srun --mpi=none (launch check reports the singleton
#               launch), a missing binary; malformed settings (a COYOTE_* value the ranks would refuse and
#               COYOTE_MIN_FREE_HUGEPAGES out of range fail the node check; COYOTE_LAUNCH_CHECK_TIMEOUT,
#               COYOTE_BENCH_LAYOUT and COYOTE_BENCH_REPEAT stop the job before any check)
#   collective  the RDMA demo (build/mpi/examples/demo) via mpirun on 2 nodes and srun --mpi=pmix on
#               1 node; the silent-singleton launch fails with the MPI layer's "singleton" error
#   bench       bench.sbatch on 2 nodes via mpirun and 1 node via srun (local_bench, stall_bench and hw_bench
#               on every node, rdma_bench on 2 ranks, the RDMA sweep; JSON validated with python3 -m json.tool);
#               a job that hits its time limit leaves earlier results readable and says so in status
#   tests       tests.sbatch: the 2-rank MPI tests (ctest -L mpi) on 1 node x 2 ranks with mpirun and
#               srun --mpi=pmix; ctest mode with one test; mpi_porting_test on 2 nodes via mpirun
#
# Multi-node on one host: two slurmd "nodes" share the host, so srun --mpi=pmix is only used on one
# node (PMIx temporary directories of the two slurmd collide); multi-node runs use mpirun inside the
# allocation (Open MPI's Slurm launcher, which starts one orted per node through srun) with
# "--mca btl self,tcp", because Open MPI's shared-memory transport would mix up ranks of the two fake
# nodes that are really on one host.
set -u -o pipefail

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SLURM_SCRIPTS=${SRC_DIR}/slurm
BUILD_DIR=""
WORK_DIR=""
CASES=()
JOB_TIMEOUT=${COYOTE_SLURM_TEST_JOB_TIMEOUT:-300}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --build-dir) BUILD_DIR=$2; shift 2 ;;
        --work-dir) WORK_DIR=$2; shift 2 ;;
        -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
        -*) echo "run_slurm_test: unknown option $1" >&2; exit 2 ;;
        *) CASES+=("$1"); shift ;;
    esac
done
[[ -n "${BUILD_DIR}" && -n "${WORK_DIR}" && ${#CASES[@]} -gt 0 ]] || {
    echo "usage: run_slurm_test.sh --build-dir DIR --work-dir DIR CASE... (cases: smoke collective bench tests)" >&2
    exit 2
}
BUILD_DIR=$(cd "${BUILD_DIR}" && pwd) || exit 2

PASSED=0
FAILED=0
say() { printf '[%s] run_slurm_test: %s\n' "$(date +%H:%M:%S)" "$*"; }
pass() { PASSED=$((PASSED + 1)); say "ok: $*"; }
fail() { FAILED=$((FAILED + 1)); say "FAILED: $*"; }
# fatal MSG: the cluster itself is broken; stop here (teardown runs from the EXIT trap).
fatal() {
    FAILED=$((FAILED + 1))
    say "FATAL: $*"
    exit 1
}

# Never let an outer Slurm job's variables leak into the throw-away cluster.
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(SLURM_|SBATCH_|SALLOC_|SRUN_)')
unset COYOTE_BACKEND COYOTE_LAUNCHER COYOTE_RANKS_PER_NODE COYOTE_RESULTS_DIR COYOTE_SLURM_DIR

# ---- prerequisites -------------------------------------------------------------------------------
MUNGED=$(command -v munged || echo /usr/sbin/munged)
SLURMCTLD=$(command -v slurmctld || echo /usr/sbin/slurmctld)
SLURMD=$(command -v slurmd || echo /usr/sbin/slurmd)
for b in "${MUNGED}" "${SLURMCTLD}" "${SLURMD}" sbatch srun squeue sinfo scontrol scancel mpirun; do
    if ! command -v "$b" >/dev/null 2>&1; then
        fatal "missing program $b (install the Debian packages slurm-wlm, munge and openmpi-bin: scripts/install_deps.sh)"
    fi
done
[[ $(id -u) -eq 0 ]] || fatal "must run as root (the throw-away cluster runs SlurmUser=root)"
PYTHON=/usr/bin/python3
[[ -x "${PYTHON}" ]] || PYTHON=$(command -v python3 || true)

# ---- layout of the throw-away cluster ------------------------------------------------------------
# Daemons and waiting sbatch commands left behind by an earlier run in the same work directory (e.g.
# one killed by SIGKILL) are stopped first: only pids from its pid files whose command line names
# that directory.
if [[ -d "${WORK_DIR}/run" ]]; then
    # jobs/*.pid: the `timeout sbatch --wait` of each submission; run/*.pid: the daemons.
    for f in "${WORK_DIR}"/jobs/*.pid "${WORK_DIR}"/run/*.pid; do
        [[ -f "$f" ]] || continue
        pid=$(cat "$f" 2>/dev/null)
        [[ "${pid}" =~ ^[0-9]+$ ]] || continue
        if { tr '\0' ' ' <"/proc/${pid}/cmdline"; } 2>/dev/null | grep -qF "$(cd "${WORK_DIR}" && pwd)"; then
            say "stopping ${f##*/} (pid ${pid}) left by an earlier run"
            kill -TERM "${pid}" 2>/dev/null
            for ((i = 0; i < 100; i++)); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
            kill -0 "${pid}" 2>/dev/null && kill -KILL "${pid}" 2>/dev/null
        fi
    done
fi
# munged's socket directory of an earlier run (see below), when that run could not remove it.
old_socket_dir=$(cat "${WORK_DIR}/run/munge.socketdir" 2>/dev/null || true)
[[ "${old_socket_dir}" =~ ^/tmp/coyote-munge\.[A-Za-z0-9]+$ ]] && rm -rf "${old_socket_dir}"
old_tmpfs=$(cat "${WORK_DIR}/run/tmpfs.dir" 2>/dev/null || true)
[[ "${old_tmpfs}" =~ ^/tmp/coyote-slurm-tmp\.[A-Za-z0-9]+$ ]] && rm -rf "${old_tmpfs}"
rm -rf "${WORK_DIR}"
mkdir -p "${WORK_DIR}" || fatal "cannot create ${WORK_DIR}"
WORK_DIR=$(cd "${WORK_DIR}" && pwd)
CONF_DIR=${WORK_DIR}/etc
STATE_DIR=${WORK_DIR}/state
SPOOL_DIR=${WORK_DIR}/spool
LOG_DIR=${WORK_DIR}/log
RUN_DIR=${WORK_DIR}/run
JOBS_DIR=${WORK_DIR}/jobs
RESULTS_DIR=${WORK_DIR}/results
mkdir -p "${CONF_DIR}" "${STATE_DIR}" "${SPOOL_DIR}/node1" "${SPOOL_DIR}/node2" "${LOG_DIR}" "${RUN_DIR}" \
    "${JOBS_DIR}" "${RESULTS_DIR}"
chmod 700 "${WORK_DIR}"
# munged refuses a socket unless every directory above it is searchable by everybody, which a build tree in a
# private home directory (mode 0700) is not; Unix socket paths are also limited to 108 bytes. So the socket lives
# in a fresh directory under /tmp that others may traverse but not list (0711), removed at teardown. The key, seed,
# log and pid files stay in the work directory (munged wants the key's directory private).
MUNGE_DIR=${WORK_DIR}/munge
mkdir -p "${MUNGE_DIR}" && chmod 700 "${MUNGE_DIR}"
SOCKET_TMP=$(mktemp -d /tmp/coyote-munge.XXXXXX) || fatal "mktemp failed"
chmod 711 "${SOCKET_TMP}"
echo "${SOCKET_TMP}" >"${RUN_DIR}/munge.socketdir"
MUNGE_SOCKET=${SOCKET_TMP}/munge.sock
# The cluster's TmpFS, where slurmstepd's PMIx plugin creates spmix_appdir_<job>.<step> (the PMIx sockets: short
# path, so under /tmp): a fresh directory per run, since job ids start at 1 again in every run and a directory left by
# a run that was killed would make the same step of this one fail ("Cannot create client cli tmpdir: File exists").
TMPFS_DIR=$(mktemp -d /tmp/coyote-slurm-tmp.XXXXXX) || fatal "mktemp failed"
chmod 711 "${TMPFS_DIR}"
echo "${TMPFS_DIR}" >"${RUN_DIR}/tmpfs.dir"

# Free TCP ports: bound to port 0 by the kernel, released, then handed to the daemons.
free_ports() {
    if [[ -n "${PYTHON}" ]]; then
        "${PYTHON}" - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
    else
        local ports=() p
        while [[ ${#ports[@]} -lt $1 ]]; do
            p=$((20000 + RANDOM % 30000))
            if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then ports+=("$p"); fi
        done
        echo "${ports[*]}"
    fi
}
read -r CTLD_PORT NODE1_PORT NODE2_PORT < <(free_ports 3)
[[ -n "${NODE2_PORT:-}" ]] || fatal "could not find free TCP ports"
CLUSTER=cyt$$x$(date +%s | tail -c 6)
CPUS=8  # per fake node; both share this machine's cores (SlurmdParameters=config_overrides)

export SLURM_CONF=${CONF_DIR}/slurm.conf
: >"${CONF_DIR}/plugstack.conf"
cat >"${SLURM_CONF}" <<EOF
# Throw-away test cluster written by tests/slurm/run_slurm_test.sh
ClusterName=${CLUSTER}
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=${CTLD_PORT}
SlurmdPort=${NODE1_PORT}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${MUNGE_SOCKET}
StateSaveLocation=${STATE_DIR}
SlurmdSpoolDir=${SPOOL_DIR}/%n
TmpFS=${TMPFS_DIR}
SlurmctldPidFile=${RUN_DIR}/slurmctld.pid
SlurmdPidFile=${RUN_DIR}/slurmd-%n.pid
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=${CONF_DIR}/plugstack.conf
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
KillWait=5
OverTimeLimit=0
MinJobAge=600
InactiveLimit=0
MessageTimeout=30
SlurmctldTimeout=60
SlurmdTimeout=120
NodeName=node1 NodeHostname=localhost NodeAddr=127.0.0.1 Port=${NODE1_PORT} CPUs=${CPUS} RealMemory=1000 State=UNKNOWN
NodeName=node2 NodeHostname=localhost NodeAddr=127.0.0.1 Port=${NODE2_PORT} CPUs=${CPUS} RealMemory=1000 State=UNKNOWN
PartitionName=test Nodes=node[1-2] Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

# ---- start and stop ------------------------------------------------------------------------------
print_logs() {
    local f
    for f in "${LOG_DIR}"/*.log "${MUNGE_DIR}/munged.log"; do
        [[ -f "$f" ]] || continue
        echo "----- $f (last 60 lines) -----"
        tail -n 60 "$f"
    done
}

# stop_pidfile FILE NAME: SIGTERM to the pid in FILE, wait up to 30 s, then SIGKILL.
stop_pidfile() {
    local file=$1 name=$2 pid i
    [[ -f "${file}" ]] || return 0
    pid=$(cat "${file}" 2>/dev/null)
    [[ "${pid}" =~ ^[0-9]+$ ]] || return 0
    kill -0 "${pid}" 2>/dev/null || return 0
    kill -TERM "${pid}" 2>/dev/null
    for ((i = 0; i < 300; i++)); do
        kill -0 "${pid}" 2>/dev/null || return 0
        sleep 0.1
    done
    say "${name} (pid ${pid}) ignored SIGTERM for 30 s, sending SIGKILL"
    kill -KILL "${pid}" 2>/dev/null
    sleep 0.5
}

TORN_DOWN=0
teardown() {
    local rc=$?
    [[ ${TORN_DOWN} -eq 1 ]] && return
    TORN_DOWN=1
    if [[ -f "${RUN_DIR}/slurmctld.pid" ]]; then
        # Cancel whatever still runs and give the steps time to end before the daemons go.
        scancel --full "--clusters=${CLUSTER}" >/dev/null 2>&1 || scancel -u root >/dev/null 2>&1 || true
        local i
        for ((i = 0; i < 60; i++)); do
            [[ -z "$(squeue -h -o %i 2>/dev/null)" ]] && break
            sleep 0.5
        done
    fi
    # sbatch --wait commands still waiting (a case stopped early).
    local f
    for f in "${JOBS_DIR}"/*.pid; do
        [[ -f "$f" ]] && stop_pidfile "$f" "sbatch --wait of ${f##*/}"
    done
    stop_pidfile "${RUN_DIR}/slurmd-node1.pid" "slurmd node1"
    stop_pidfile "${RUN_DIR}/slurmd-node2.pid" "slurmd node2"
    stop_pidfile "${RUN_DIR}/slurmctld.pid" slurmctld
    stop_pidfile "${RUN_DIR}/munged.pid" munged
    [[ -n "${SOCKET_TMP}" ]] && rm -rf "${SOCKET_TMP}"
    [[ -n "${TMPFS_DIR:-}" ]] && rm -rf "${TMPFS_DIR}"
    if [[ ${FAILED} -gt 0 || ${rc} -ne 0 ]]; then
        print_logs
    fi
    echo "${PASSED} passed, ${FAILED} failed"
    if [[ ${FAILED} -gt 0 && ${rc} -eq 0 ]]; then
        exit 1
    fi
}
trap teardown EXIT
trap 'FAILED=$((FAILED + 1)); say "interrupted"; exit 130' INT TERM

say "work dir ${WORK_DIR}, cluster ${CLUSTER}, ports ctld ${CTLD_PORT} node1 ${NODE1_PORT} node2 ${NODE2_PORT}"

dd if=/dev/urandom of="${MUNGE_DIR}/munge.key" bs=1024 count=1 status=none || fatal "cannot write the munge key"
chmod 400 "${MUNGE_DIR}/munge.key"
"${MUNGED}" "--socket=${MUNGE_SOCKET}" "--key-file=${MUNGE_DIR}/munge.key" "--log-file=${MUNGE_DIR}/munged.log" \
    "--pid-file=${RUN_DIR}/munged.pid" "--seed-file=${MUNGE_DIR}/munged.seed" ||
    fatal "munged did not start"
munge -S "${MUNGE_SOCKET}" -n 2>/dev/null | unmunge -S "${MUNGE_SOCKET}" >/dev/null 2>&1 ||
    fatal "munge credentials do not round-trip through ${MUNGE_SOCKET}"

"${SLURMCTLD}" -i -f "${SLURM_CONF}" >"${LOG_DIR}/slurmctld.stdout" 2>&1 || fatal "slurmctld did not start"
"${SLURMD}" -N node1 -f "${SLURM_CONF}" >"${LOG_DIR}/slurmd-node1.stdout" 2>&1 || fatal "slurmd node1 did not start"
"${SLURMD}" -N node2 -f "${SLURM_CONF}" >"${LOG_DIR}/slurmd-node2.stdout" 2>&1 || fatal "slurmd node2 did not start"

ready=0
for ((i = 0; i < 120; i++)); do
    states=$(sinfo -h -N -o '%N %T' 2>/dev/null | sort -u)
    if [[ $(grep -c ' idle$' <<<"${states}") -eq 2 ]]; then
        ready=1
        break
    fi
    sleep 0.5
done
[[ ${ready} -eq 1 ]] || fatal "the two nodes did not become idle within 60 s (sinfo: $(tr '\n' ' ' <<<"${states:-none}"))"
say "cluster up: $(tr '\n' ' ' <<<"${states}")"
srun --mpi=list 2>&1 | tr '\n' ' ' | sed 's/^/srun --mpi=list: /'
echo
PMIX_OK=0
srun --mpi=list 2>&1 | grep -qw pmix && PMIX_OK=1

# ---- submitting ----------------------------------------------------------------------------------
# submit_bg NAME SCRIPT [VAR=VALUE...] -- [SBATCH-OPTIONS...]: starts `sbatch --wait` in the background
# from JOBS_DIR with the common COYOTE_* settings and VAR=VALUE in the environment (sbatch exports it
# all). `collect NAME` waits for it and sets JOB_ID, JOB_RC, JOB_OUT. `submit` does both.
declare -A BG_PIDS=()
submit_bg() {
    local name=$1 script=$2
    shift 2
    local envs=("${COMMON_ENV[@]}")
    while [[ $# -gt 0 && "$1" != -- ]]; do envs+=("$1"); shift; done
    [[ $# -gt 0 ]] && shift
    say "submit ${name}: ${envs[*]:${#COMMON_ENV[@]}} sbatch $* ${script##*/}"
    rm -f "${JOBS_DIR}/${name}.rc" "${JOBS_DIR}/${name}.pid"
    (
        cd "${JOBS_DIR}" || exit 1
        env "${envs[@]}" timeout "${JOB_TIMEOUT}" sbatch --wait --parsable "--job-name=${name}" \
            "--output=${JOBS_DIR}/${name}.out" "$@" "${script}" >"${JOBS_DIR}/${name}.sbatch" 2>&1 &
        echo $! >"${JOBS_DIR}/${name}.pid"
        rc=0
        wait $! || rc=$?
        echo "${rc}" >"${JOBS_DIR}/${name}.rc"
    ) &
    BG_PIDS[${name}]=$!
}

# finished_exit_code ID: prints the exit code of job ID (128+signal when a signal ended it) once
# slurmctld reports it in a final state; prints nothing while it is pending or running.
finished_exit_code() {
    local info state ec
    info=$(scontrol -o show job "$1" 2>/dev/null) || return 0
    state=$(sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' <<<"${info}")
    case "${state}" in
        COMPLETED | FAILED | TIMEOUT | CANCELLED | NODE_FAIL | OUT_OF_MEMORY | PREEMPTED | BOOT_FAIL | DEADLINE) ;;
        *) return 0 ;;
    esac
    ec=$(sed -n 's/.* ExitCode=\([0-9]*\):\([0-9]*\).*/\1 \2/p' <<<"${info}")
    read -r code sig <<<"${ec:-1 0}"
    if [[ "${sig:-0}" -ne 0 ]]; then echo $((128 + sig)); else echo "${code:-1}"; fi
}

# collect NAME: waits for the job of submit_bg NAME. sbatch --wait polls slurmctld with growing pauses,
# so the job state is also polled here every half second; once the job has ended, its exit code is
# taken from slurmctld and the waiting sbatch is stopped.
collect() {
    local name=$1 id="" ec="" sbatch_pid
    JOB_OUT=${JOBS_DIR}/${name}.out
    JOB_RC=""
    while [[ ! -f "${JOBS_DIR}/${name}.rc" ]]; do
        [[ -z "${id}" ]] && id=$(grep -Eo '^[0-9]+' "${JOBS_DIR}/${name}.sbatch" 2>/dev/null | head -n 1)
        if [[ -n "${id}" ]]; then
            ec=$(finished_exit_code "${id}")
            if [[ -n "${ec}" ]]; then
                JOB_RC=${ec}
                sbatch_pid=$(cat "${JOBS_DIR}/${name}.pid" 2>/dev/null)
                [[ "${sbatch_pid}" =~ ^[0-9]+$ ]] && kill -TERM "${sbatch_pid}" 2>/dev/null
                break
            fi
        fi
        sleep 0.5
    done
    wait "${BG_PIDS[${name}]}" 2>/dev/null
    unset "BG_PIDS[${name}]"
    [[ -n "${JOB_RC}" ]] || JOB_RC=$(cat "${JOBS_DIR}/${name}.rc" 2>/dev/null || echo 255)
    JOB_ID=$(grep -Eo '^[0-9]+' "${JOBS_DIR}/${name}.sbatch" 2>/dev/null | head -n 1)
    if [[ ${JOB_RC} -eq 124 ]]; then
        fail "${name}: job ${JOB_ID} did not finish within ${JOB_TIMEOUT} s"
        [[ -n "${JOB_ID}" ]] && scancel "${JOB_ID}" >/dev/null 2>&1
    fi
    say "${name}: job ${JOB_ID:-?} exit code ${JOB_RC}"
    if [[ -z "${JOB_ID}" ]]; then
        cat "${JOBS_DIR}/${name}.sbatch"
    fi
}
submit() {
    submit_bg "$@"
    collect "$1"
}
job_dir() { echo "${RESULTS_DIR}/job-${JOB_ID}"; }
show_output() {
    echo "----- output of ${JOB_OUT} -----"
    cat "${JOB_OUT}" 2>/dev/null
    echo "----- end -----"
}

expect_ok() {
    local what=$1
    if [[ ${JOB_RC} -eq 0 && "$(cat "$(job_dir)/status" 2>/dev/null)" == ok ]]; then
        pass "${what}"
        return 0
    fi
    fail "${what}: exit code ${JOB_RC}, status '$(cat "$(job_dir)/status" 2>/dev/null)'"
    show_output
    return 1
}
expect_fail_with() {
    local what=$1 pattern=$2
    if [[ ${JOB_RC} -ne 0 && ${JOB_RC} -ne 124 ]] && grep -Eq -- "${pattern}" "${JOB_OUT}" 2>/dev/null; then
        pass "${what}"
        return 0
    fi
    fail "${what}: expected a non-zero exit code and /${pattern}/ in the job output; exit code ${JOB_RC}"
    show_output
    return 1
}
expect_output() {
    local what=$1 pattern=$2 count=${3:-1} n
    n=$(grep -Ec -- "${pattern}" "${JOB_OUT}" 2>/dev/null)
    if [[ "${n}" -ge "${count}" ]]; then
        pass "${what}"
    else
        fail "${what}: /${pattern}/ found ${n} times in ${JOB_OUT}, expected ${count}"
        show_output
    fi
}
expect_file() {
    local what=$1 file=$2
    if [[ -s "${file}" ]]; then pass "${what}"; else fail "${what}: ${file} missing or empty"; fi
}
# expect_not_started WHAT [no-checks]: the job stopped before any launch: no program output, no step in
# steps.tsv; with no-checks also before the node check.
expect_not_started() {
    local what=$1 steps
    steps=$(tail -n +2 "$(job_dir)/steps.tsv" 2>/dev/null)
    if grep -q '^ENVPROBE' "${JOB_OUT}" 2>/dev/null || [[ -n "${steps}" ]]; then
        fail "${what}: a program or step ran before the job stopped (steps: ${steps})"
        show_output
    elif [[ "${2:-}" == no-checks ]] && grep -q 'node check on' "${JOB_OUT}" 2>/dev/null; then
        fail "${what}: the node check ran before the setting was refused"
        show_output
    else
        pass "${what}: the job stopped before any ${2:+check, }program or step"
    fi
}
validate_json() {
    [[ -n "${PYTHON}" ]] || { echo "no python3"; return 1; }
    "${PYTHON}" -m json.tool "$1" >/dev/null
}

MPIRUN_FAKE_NODES="--mca btl self,tcp --mca osc pt2pt"
COMMON_ENV=(COYOTE_BACKEND=sim "COYOTE_BUILD_DIR=${BUILD_DIR}" "COYOTE_RESULTS_DIR=${RESULTS_DIR}"
    COYOTE_POST_TIMEOUT_MS=60000 COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS=60000)

# ---- cases: case_smoke, case_collective, case_bench, case_tests in tests/slurm/cases.sh -----------
# shellcheck source=cases.sh source-path=SCRIPTDIR
source "${SRC_DIR}/tests/slurm/cases.sh" || fatal "cannot load ${SRC_DIR}/tests/slurm/cases.sh"

for c in "${CASES[@]}"; do
    case "$c" in
        smoke | collective | bench | tests) say "=== case ${c} ==="; "case_${c}" ;;
        *) fail "unknown case ${c}" ;;
    esac
done
[[ ${FAILED} -eq 0 ]]
