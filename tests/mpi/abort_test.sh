#!/usr/bin/env bash
# Runs abort_probe: the last rank calls MPI_Abort itself, mpirun ends the others. Passes when the job fails with
# the abort's code and no /dev/shm file of any rank's pid is left, checked before any other sim process could
# reclaim leftovers of dead processes (the test runs serially).
# Usage: abort_test.sh <mpiexec ...>
set -u
launcher=("$@")
log=$(mktemp "${TMPDIR:-/tmp}/coyote_abort_test.XXXXXX")
trap 'rm -f "$log"' EXIT
timeout -s KILL 90 "${launcher[@]}" >"$log" 2>&1
rc=$?
cat "$log"
echo "exit code $rc"
fail() { echo "FAIL: $*"; exit 1; }
[[ $rc -ne 0 && $rc -ne 137 ]] || fail "the job should end with the abort's non-zero code (got $rc)"
pids=$(sed -n 's/.*abort probe rank [0-9]* pid \([0-9]*\).*/\1/p' "$log" | sort -u)
[[ $(wc -w <<<"$pids") -ge 2 ]] || fail "the ranks did not print their pids"
# A rank process may take a moment to be reaped (a zombie counts as ended).
alive() { [[ -e /proc/$1 ]] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }
for p in $pids; do
    for _ in $(seq 100); do alive "$p" || break; sleep 0.1; done
    if alive "$p"; then fail "rank process $p still runs"; fi
done
for p in $pids; do
    left=$(ls /dev/shm 2>/dev/null | grep -E "^coyote-sim\.$(id -u)\.${p}\." || true)
    [[ -z "$left" ]] || fail "files of pid $p stay in /dev/shm: $(echo $left)"
done
echo "ABORT TEST PASSED"
