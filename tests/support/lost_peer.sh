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
(( elapsed < deadline + 30 )) || fail "the job had to be killed after $((deadline + 30)) s: a survivor spun on"
(( elapsed <= deadline )) || fail "took ${elapsed}s, more than the ${deadline}s deadline"
# mpirun --enable-recovery may exit 0 whatever its ranks did: each survivor's own abort is the evidence there.
[[ $rc -ne 0 || $mode == recovery ]] || fail "the job exited 0 although rank ${dead} was killed"
# A survivor either aborts the job (MPI_Abort after an error of its data path) or, seeing a same-host rank die,
# ends itself; under --enable-recovery every survivor must have done one of them.
survivors=$(grep -cE "aborting the job instead of entering a collective|is lost: ending this rank" "$log")
npids=$(grep -c "bench rank [0-9]* pid" "$log")
if [[ $mode == recovery ]]; then
  (( survivors >= npids - 1 )) || fail "$survivors of $((npids - 1)) survivors ended on their own"
fi
grep -qE "rank ${dead}\b.*(gone|lost|Killed|signal 9)|process rank ${dead} .*signal 9" "$log" ||
  fail "no report names the lost rank ${dead}"
pids=$(sed -n 's/.*bench rank [0-9]* pid \([0-9]*\).*/\1/p' "$log" | sort -u)
[[ -n "$pids" ]] || fail "the ranks did not print their pids"
# A rank process may take a moment to be reaped (a zombie counts as ended).
alive() { [[ -e /proc/$1 ]] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }
for p in $pids; do
  for _ in $(seq 50); do alive "$p" || break; sleep 0.1; done
  if alive "$p"; then fail "rank process $p still runs"; fi
done
"$next" >/dev/null 2>&1 || fail "the next start ($next) failed"
for p in $pids; do
  left=$(ls /dev/shm 2>/dev/null | grep -E "^coyote-sim\.$(id -u)\.${p}\." || true)
  [[ -z "$left" ]] || fail "files of pid $p stay in /dev/shm after the next start: $left"
done
echo "LOST PEER TEST PASSED"
