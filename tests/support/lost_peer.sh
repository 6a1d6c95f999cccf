#!/usr/bin/env bash
# A rank killed with SIGKILL mid-run (COYOTE_BENCH_DIE_AT): under plain mpirun or --enable-recovery every
# survivor must end non-zero within the deadline, the report must name the lost rank, no rank may run on, and
# no /dev/shm file of the job may stay once the next sim process started.
# Usage: lost_peer.sh <plain|recovery> <dead rank> <deadline s> <next-start command> -- <mpiexec ...>
set -u
mode=$1 dead=$2 deadline=$3 next=$4; shift 4
[[ "${1:-}" == "--" ]] && shift
launcher=("$@")
if [[ $mode == recovery ]]; then launcher=("${launcher[0]}" --enable-recovery "${launcher[@]:1}"); fi
export OMPI_MCA_odls_base_sigkill_timeout=5
export COYOTE_BENCH_DIE_AT="${dead}:3"
log=$(mktemp "${TMPDIR:-/tmp}/coyote_lost_peer.XXXXXX")
trap 'rm -f "$log"' EXIT
start=$(date +%s)
timeout -s KILL "$((deadline + 30))" "${launcher[@]}" >"$log" 2>&1
rc=$?
elapsed=$(( $(date +%s) - start ))
cat "$log"
echo "exit code $rc after ${elapsed}s (mode $mode)"
fail() { echo "FAIL: $*"; exit 1; }
[[ $rc -ne 0 ]] || fail "the job exited 0 although rank ${dead} was killed"
[[ $rc -ne 137 ]] || fail "the job had to be killed after $((deadline + 30)) s: a survivor spun on"
(( elapsed <= deadline )) || fail "took ${elapsed}s, more than the ${deadline}s deadline"
grep -q "rank ${dead}" "$log" || fail "no report names the lost rank ${dead}"
pids=$(sed -n 's/.*bench rank [0-9]* pid \([0-9]*\).*/\1/p' "$log" | sort -u)
[[ -n "$pids" ]] || fail "the ranks did not print their pids"
for p in $pids; do
  if kill -0 "$p" 2>/dev/null; then fail "rank process $p still runs"; fi
done
"$next" >/dev/null 2>&1 || fail "the next start ($next) failed"
for p in $pids; do
  left=$(ls /dev/shm 2>/dev/null | grep -E "^coyote-sim\.$(id -u)\.${p}\." || true)
  [[ -z "$left" ]] || fail "files of pid $p stay in /dev/shm after the next start: $left"
done
echo "LOST PEER TEST PASSED"
