#!/usr/bin/env bash
# Runs deadline_probe with 3 ranks and a 1.5 s bootstrap deadline: rank 2 skips the queue-pair wiring. Passes
# when the job fails quickly and the message names the absent rank 2.
set -u
launcher=("$@")
start=$(date +%s)
out="$(COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS=1500 "${launcher[@]}" 2>&1)"
rc=$?
elapsed=$(( $(date +%s) - start ))
echo "$out"
echo "exit code $rc after ${elapsed}s"
if [[ $rc -eq 0 ]]; then echo "FAIL: the job succeeded although rank 2 never arrived"; exit 1; fi
if ! grep -q "rank 2 of 3 did not arrive at bootstrap step 'queue pair set-up'" <<<"$out"; then
    echo "FAIL: no message naming rank 2"; exit 1
fi
if [[ $elapsed -ge 50 ]]; then echo "FAIL: took ${elapsed}s, the deadline did not cut the wait"; exit 1; fi
echo "DEADLINE TEST PASSED"
