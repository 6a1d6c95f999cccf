#!/usr/bin/env bash
# The sanitizer and fuzzing job (CI runs it after the main test suite, see .ci/run):
#   build-asan  clang, COYOTE_SANITIZE=address,undefined, COYOTE_FUZZ=ON: the unit and MPI suites (labels unit,
#               mpi) under AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer included), then every
#               libFuzzer target of tests/fuzz for COYOTE_FUZZ_SECONDS (default 20) each (label fuzz)
#   build-tsan  gcc, COYOTE_SANITIZE=thread, without the MPI layer: the unit and hw suites under ThreadSanitizer
# Usage: scripts/sanitizers.sh [asan|tsan|all]   (default all; build directories beside ./build, or under
# COYOTE_SANITIZER_BUILD_ROOT). Suppressions (Open MPI, hwloc, system libraries only) are in
# tests/support/sanitizer/; a finding in our code fails the test that hit it.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_root="${COYOTE_SANITIZER_BUILD_ROOT:-$repo_root}"
supp="$repo_root/tests/support/sanitizer"
what="${1:-all}"
jobs="$(nproc)"

case "$what" in
    asan | tsan | all) ;;
    *) echo "usage: scripts/sanitizers.sh [asan|tsan|all]" >&2; exit 2 ;;
esac

"$repo_root/scripts/install_deps.sh"

# Only what the suites need: no benchmarks, examples or Python module (a sanitized extension module would need
# the sanitizer runtime preloaded into python3).
common=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOYOTE_BUILD_BENCHMARKS=OFF -DCOYOTE_BUILD_EXAMPLES=OFF
    -DCOYOTE_BUILD_PYTHON=OFF)

# A finding ends the program with a non-zero status and a report; the suppression files carry one reason each.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$supp/ubsan.supp"
# die_after_fork=0: several tests fork a threaded test process into a child that starts threads of its own (a lock
# holder, an out-of-band peer); ThreadSanitizer supports that only with this option (the children exit through
# _exit and never join the parent's threads).
export TSAN_OPTIONS="suppressions=$supp/tsan.supp:halt_on_error=1:second_deadlock_stack=1:history_size=4:die_after_fork=0"

run_asan() {
    local dir="$build_root/build-asan"
    echo "=== sanitizers: AddressSanitizer + UndefinedBehaviorSanitizer (clang) and libFuzzer in $dir"
    CC=clang CXX=clang++ cmake -S "$repo_root" -B "$dir" "${common[@]}" \
        -DCOYOTE_SANITIZE=address,undefined -DCOYOTE_FUZZ=ON \
        -DCOYOTE_FUZZ_SECONDS="${COYOTE_FUZZ_SECONDS:-20}"
    cmake --build "$dir" -j"$jobs"
    echo "=== sanitizers: ASan build done at $((SECONDS - start)) s"
    # LeakSanitizer runs on the unit suite. Processes that load Open MPI or hwloc's plugins run without it: those
    # leak from components they dlopen() and unload at exit, whose stacks LeakSanitizer can no longer name, so no
    # suppression can single them out (AddressSanitizer and UBSan stay on). coyote-info (tools_coyote_info and
    # slurm/node_check.sh, which runs it) builds an hwloc topology.
    local plugin_users='^(tools_coyote_info|tools_node_check_.*)$'
    (cd "$dir" && ctest --output-on-failure --parallel 2 -L unit -E "^package_test\$|$plugin_users")
    (cd "$dir" && ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" ctest --output-on-failure -R "$plugin_users")
    # Not the 72-rank run: 72 sanitized processes on a 2-core machine stretch its timing assumptions (a link message
    # sent 50 ms before a barrier is expected to arrive within it) past what that test is about.
    (cd "$dir" && ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" ctest --output-on-failure --parallel 2 -L mpi -LE example \
        -E '^mpi_coll_test_np72$')
    (cd "$dir" && ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" ctest --output-on-failure -R '^package_test$')
    # One fuzz target at a time: each uses one core and the other is left to the target's server threads.
    (cd "$dir" && ctest --output-on-failure -L fuzz)
    echo "=== sanitizers: ASan tests done at $((SECONDS - start)) s"
}

run_tsan() {
    local dir="$build_root/build-tsan"
    echo "=== sanitizers: ThreadSanitizer (gcc) in $dir"
    CC=gcc CXX=g++ cmake -S "$repo_root" -B "$dir" "${common[@]}" -DCOYOTE_BUILD_MPI=OFF -DCOYOTE_SANITIZE=thread
    cmake --build "$dir" -j"$jobs"
    echo "=== sanitizers: TSan build done at $((SECONDS - start)) s"
    # package_test only rebuilds a consumer (the ASan job covers it); docs_settings_current and settings_rejects_*
    # check the variables of every library, and this build has no MPI layer (which declares some of them). The hw
    # tests run the hw backend against the fake driver, whose poller and store paths share the emulated registers.
    (cd "$dir" && ctest --output-on-failure --parallel 2 -L 'unit|hw' \
        -E '^(package_test|docs_settings_current|settings_rejects_.*)$')
}

start=$SECONDS
case "$what" in
    asan) run_asan ;;
    tsan) run_tsan ;;
    all) run_asan; run_tsan ;;
esac
echo "=== sanitizers: done in $((SECONDS - start)) s"
