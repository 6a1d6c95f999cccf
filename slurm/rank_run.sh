#!/usr/bin/env bash
# Runs one rank of a coyote-mpi Slurm step: rank_run.sh LOG_DIR STEP PROGRAM ARGS...
# Started by srun or mpirun (slurm/lib.sh, coyote_launch) once per rank. Finds the rank from the
# launcher's environment, replaces {rank} and {node} in ARGS, copies the rank's output to
# LOG_DIR/STEP.rank<r>.<node>.log (lines also go to the job output) and then becomes PROGRAM, so the
# MPI environment and signals reach the program unchanged.
set -u -o pipefail
umask 077 # the rank's log and what the program writes are the user's alone, also where the launcher drops the umask

if [[ $# -lt 3 ]]; then
    echo "usage: rank_run.sh LOG_DIR STEP PROGRAM [ARGS...]" >&2
    exit 2
fi
log_dir=$1
step=$2
shift 2

rank=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-${PMI_RANK:-${SLURM_PROCID:-0}}}}
node=${SLURMD_NODENAME:-$(hostname -s)}

args=()
for a in "$@"; do
    a=${a//\{rank\}/${rank}}
    a=${a//\{node\}/${node}}
    args+=("$a")
done

if [[ ! -x "${args[0]}" ]] && ! command -v "${args[0]}" >/dev/null 2>&1; then
    echo "rank ${rank} on ${node}: missing binary ${args[0]}" >&2
    exit 127
fi

mkdir -p "${log_dir}" 2>/dev/null || true
log="${log_dir}/${step}.rank${rank}.${node}.log"
if : >"${log}" 2>/dev/null; then
    # Output goes line-buffered to both the rank log and the job output.
    exec > >(tee -a "${log}") 2>&1
fi
exec "${args[@]}"
