#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time on its seed corpus (CTest test fuzz_<name>):
#   run_fuzz.sh <fuzz binary> <seconds> <seed corpus dir> <build dir>
# New inputs go to <build dir>/corpus/<name>, a crash to <build dir>/artifacts/<name>-*; prints the executions.
set -euo pipefail
bin=$1 seconds=$2 seeds=$3 out=$4
name=$(basename "$bin")
name=${name#fuzz_}
[[ -d "$seeds" ]] && compgen -G "$seeds/*" >/dev/null || { echo "run_fuzz: no seed corpus in $seeds" >&2; exit 1; }
mkdir -p "$out/corpus/$name" "$out/artifacts"
log=$out/artifacts/$name.log
# -timeout: one input taking longer is a finding (a hang); -rss_limit_mb: memory blow-ups are findings too.
set +e
"$bin" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2560 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$name-" "$out/corpus/$name" "$seeds" >"$log" 2>&1
rc=$?
set -e
grep -E '^(stat::number_of_executed_units|stat::new_units_added|stat::peak_rss_mb|INFO: seed corpus)' "$log" || true
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
if [[ $rc -ne 0 ]]; then
    tail -n 60 "$log"
    echo "fuzz_$name: FAILED (exit $rc); reproduce with: $bin $out/artifacts/$name-*"
    exit 1
fi
echo "fuzz_$name: ${execs:-?} executions in ${seconds} s, no finding"
