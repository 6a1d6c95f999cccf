#!/usr/bin/env bash
# Runs a Python MPI script (mpi_uncaught.py) in which one rank dies of an uncaught exception. Passes when the job
# fails within 30 s (the collective deadline is 120 s) and the dying rank said it aborts the job.
# Usage: expect_abort.sh <mpiexec ...>
set -u
log=$(mktemp "${TMPDIR:-/tmp}/coyote_uncaught_test.XXXXXX")
trap 'rm -f "$log"' EXIT
start=$(date +%s)
timeout -s KILL 90 "$@" >"$log" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
cat "$log"
echo "exit code $rc after $took s"
fail() { echo "FAIL: $*"; exit 1; }
[[ $rc -ne 0 && $rc -ne 137 ]] || fail "the job should fail (got $rc)"
(( took < 30 )) || fail "the job took $took s: the other rank waited for the dead one"
grep -q "ends with an uncaught exception (RuntimeError): MPI_Abort" "$log" || fail "the dying rank did not abort the job"
echo "UNCAUGHT TEST PASSED"
