#!/usr/bin/env bash
# Stand-in program for the Slurm tests: prints what one rank sees (rank, world size from the launcher,
# Slurm node, the COYOTE_TEST_MARKER variable passed through sbatch) and fails without the sim backend
# setting, so that a launch that loses the COYOTE_* environment is caught.
rank=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-}}
size=${OMPI_COMM_WORLD_SIZE:-}
if [[ -z "${size}" && -n "${PMIX_RANK:-}" ]]; then size=${SLURM_STEP_NUM_TASKS:-}; fi
echo "ENVPROBE rank=${rank} size=${size} node=${SLURMD_NODENAME:-?} marker=${COYOTE_TEST_MARKER:-}"
if [[ "${COYOTE_BACKEND:-}" != sim ]]; then
    echo "env_probe: COYOTE_BACKEND='${COYOTE_BACKEND:-}' on rank ${rank}, expected sim" >&2
    exit 1
fi
