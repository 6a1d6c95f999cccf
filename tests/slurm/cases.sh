# shellcheck shell=bash
# The cases of tests/slurm/run_slurm_test.sh, sourced by it once the throw-away cluster is up (never executed):
# one function case_<name> per case, using the harness's helpers (submit_bg, submit, collect, expect_*) and
# variables (BUILD_DIR, WORK_DIR, JOBS_DIR, RESULTS_DIR, SRC_DIR, SLURM_SCRIPTS, PYTHON, PMIX_OK, MPIRUN_FAKE_NODES).

# ---- cases ---------------------------------------------------------------------------------------
case_smoke() {
    local probe=${SRC_DIR}/tests/slurm/env_probe.sh

    # All smoke jobs are independent: submitted at once, they run side by side on the two nodes.
    submit_bg smoke-mpirun-2x1 "${SLURM_SCRIPTS}/collective.sbatch" "COYOTE_RESULTS_DIR=" "COYOTE_LAUNCHER=mpirun" "COYOTE_PROGRAM=${probe}" "COYOTE_TEST_MARKER=m2x1" -- -N 2 --ntasks-per-node=1 --time=5
    submit_bg smoke-mpirun-2x2 "${SLURM_SCRIPTS}/collective.sbatch" "COYOTE_LAUNCHER=mpirun" "COYOTE_MPIRUN_ARGS=${MPIRUN_FAKE_NODES}" "COYOTE_PROGRAM=${probe}" "COYOTE_TEST_MARKER=m2x2" -- -N 2 --ntasks-per-node=2 --time=5
    [[ ${PMIX_OK} -eq 1 ]] && submit_bg smoke-srun-1x2 "${SLURM_SCRIPTS}/collective.sbatch" "COYOTE_LAUNCHER=srun" "COYOTE_PROGRAM=${probe}" "COYOTE_TEST_MARKER=s1x2" -- -N 1 --ntasks-per-node=2 --time=5
    submit_bg smoke-node-check-hw "${SLURM_SCRIPTS}/collective.sbatch" "COYOTE_BACKEND=hw" "COYOTE_LAUNCHER=mpirun" "COYOTE_PROGRAM=${probe}" -- -N 2 --ntasks-per-node=1 --time=5
    submit_bg smoke-launch-none "${SLURM_SCRIPTS}/collective.sbatch" "COYOTE_LAUNCHER=none" "COYOTE_PROGRAM=${probe}" -- -N 2 --ntasks-per-node=1 --time=5
    submit_bg smoke-srun-mpi-none "${SLURM_SCRIPTS}/collective.sbatch" "COYOTE_LAUNCHER=srun" "COYOTE_SRUN_MPI=none" "COYOTE_PROGRAM=${probe}" -- -N 1 --ntasks-per-node=2 --time=5
    submit_bg smoke-rpn-mismatch "${SLURM_SCRIPTS}/collective.sbatch" "COYOTE_LAUNCHER=mpirun" "COYOTE_RANKS_PER_NODE=2" "COYOTE_PROGRAM=${probe}" -- -N 2 --ntasks-per-node=1 --time=5
    submit_bg smoke-missing-binary "${SLURM_SCRIPTS}/collective.sbatch" "COYOTE_PROGRAM=${WORK_DIR}/no_such_program" -- -N 1 --time=5
    # Malformed settings: the node check (COYOTE_* values the ranks would refuse, COYOTE_MIN_FREE_HUGEPAGES) and the
    # scripts' own settings, which stop the job before any check or step runs.
    submit_bg smoke-node-check-settings "${SLURM_SCRIPTS}/collective.sbatch" "COYOTE_LAUNCHER=mpirun" "COYOTE_PROGRAM=${probe}" "COYOTE_STALL_WARN_MS=abc" "COYOTE_MIN_FREE_HUGEPAGES=9223372036854775808" "COYOTE_DEVICE=1*" -- -N 2 --ntasks-per-node=1 --time=5
    submit_bg smoke-launch-timeout "${SLURM_SCRIPTS}/collective.sbatch" "COYOTE_LAUNCHER=mpirun" "COYOTE_PROGRAM=${probe}" "COYOTE_LAUNCH_CHECK_TIMEOUT=abc" -- -N 1 --time=5
    submit_bg smoke-launcher-bogus "${SLURM_SCRIPTS}/collective.sbatch" "COYOTE_LAUNCHER=mpiexec" "COYOTE_PROGRAM=${probe}" -- -N 1 --time=5
    submit_bg smoke-ctest-timeout "${SLURM_SCRIPTS}/tests.sbatch" "COYOTE_LAUNCHER=mpirun" "COYOTE_TESTS_MODE=ctest" "COYOTE_CTEST_TIMEOUT=10m" -- -N 1 --time=5
    submit_bg smoke-bench-suite "${SLURM_SCRIPTS}/bench.sbatch" "COYOTE_LAUNCHER=mpirun" "COYOTE_BENCHES=${probe}" "COYOTE_BENCH_LAYOUT=env_probe.sh:all a_bnech:node" -- -N 1 --time=5
    submit_bg smoke-bench-mode "${SLURM_SCRIPTS}/bench.sbatch" "COYOTE_LAUNCHER=mpirun" "COYOTE_BENCHES=${probe}" "COYOTE_BENCH_LAYOUT=env_probe.sh:two" -- -N 1 --time=5
    submit_bg smoke-bench-repeat "${SLURM_SCRIPTS}/bench.sbatch" "COYOTE_LAUNCHER=mpirun" "COYOTE_BENCHES=${probe}" "COYOTE_BENCH_REPEAT=abc" -- -N 1 --time=5

    # 1. mpirun on 2 nodes, 1 rank each; result folder at the default place (submit dir/results).
    collect smoke-mpirun-2x1
    local dir=${JOBS_DIR}/results/job-${JOB_ID}
    if [[ ${JOB_RC} -eq 0 && "$(cat "${dir}/status" 2>/dev/null)" == ok ]]; then
        pass "smoke mpirun 2 nodes x 1 rank: job ok, results at \$SLURM_SUBMIT_DIR/results/job-<id>"
    else
        fail "smoke mpirun 2 nodes x 1 rank: exit code ${JOB_RC}, status '$(cat "${dir}/status" 2>/dev/null)'"
        show_output
    fi
    expect_output "smoke mpirun 2x1: rank 0 on node1 got the COYOTE_* environment" '^ENVPROBE rank=0 size=2 node=node1 marker=m2x1'
    expect_output "smoke mpirun 2x1: rank 1 on node2 got the COYOTE_* environment" '^ENVPROBE rank=1 size=2 node=node2 marker=m2x1'
    expect_output "smoke mpirun 2x1: node check ran on node1" '^node_check\[node1\]: PASS'
    expect_output "smoke mpirun 2x1: node check ran on node2" '^node_check\[node2\]: PASS'
    expect_file "smoke mpirun 2x1: per-rank log of rank 1" "${dir}/logs/env_probe.sh.rank1.node2.log"
    expect_file "smoke mpirun 2x1: job.env" "${dir}/job.env"
    local modes
    modes=$(stat -c '%a' "${dir}" "${dir}/job.env" "${dir}/logs/env_probe.sh.rank1.node2.log" 2>&1 | tr '\n' ' ')
    if [[ "${modes}" == "700 600 600 " ]]; then
        pass "smoke mpirun 2x1: the job folder and its files are the user's alone (${modes})"
    else
        fail "smoke mpirun 2x1: job folder, job.env, a rank log have modes ${modes}(expected 700 600 600)"
    fi

    # 2. mpirun on 2 nodes, 2 ranks each (ranks per node taken from --ntasks-per-node).
    collect smoke-mpirun-2x2
    expect_ok "smoke mpirun 2 nodes x 2 ranks"
    expect_output "smoke mpirun 2x2: 2 ranks on node1" '^ENVPROBE rank=[0-3] size=4 node=node1 marker=m2x2' 2
    expect_output "smoke mpirun 2x2: 2 ranks on node2" '^ENVPROBE rank=[0-3] size=4 node=node2 marker=m2x2' 2

    # 3. srun --mpi=pmix on 1 node, 2 ranks.
    if [[ ${PMIX_OK} -eq 1 ]]; then
        collect smoke-srun-1x2
        expect_ok "smoke srun --mpi=pmix 1 node x 2 ranks"
        expect_output "smoke srun 1x2: both ranks see PMIx and the environment" '^ENVPROBE rank=[01] size=2 node=node1 marker=s1x2' 2
    else
        fail "srun has no pmix plug-in (srun --mpi=list), srun --mpi=pmix cannot be tested"
    fi

    # 4. forced hw backend on nodes without a device: the node check stops the job, naming the node.
    collect smoke-node-check-hw
    expect_fail_with "node check failure stops the job" 'node check failed, job stopped before launch'
    expect_output "node check failure names node1 and the problem" '^node_check\[node1\]: FAIL: backend hw but no device file'
    expect_output "node check failure names node2 and the problem" '^node_check\[node2\]: FAIL: backend hw but no device file'
    if grep -q '^ENVPROBE' "${JOB_OUT}"; then
        fail "node check failure: the program ran although the node check failed"
    else
        pass "node check failure: the program never started"
    fi
    if grep -q '^failed: node check failed' "$(job_dir)/status" 2>/dev/null; then
        pass "node check failure recorded in the status file"
    else
        fail "node check failure: status file says '$(cat "$(job_dir)/status" 2>/dev/null)'"
    fi
    if grep -q '^end=' "$(job_dir)/job.env" 2>/dev/null; then
        pass "node check failure: job.env records the end"
    else
        fail "node check failure: no end= in $(job_dir)/job.env"
    fi

    # 5. launcher "none" with 2 tasks: the launch check reports the singleton launch.
    collect smoke-launch-none
    expect_fail_with "launch check: one process in a 2-task job is reported as a singleton launch" \
        'COYOTE_LAUNCHER=none starts 1 process but SLURM_NTASKS=2.*MPI singleton'

    # 6. srun without an MPI plug-in: the probe sees no rank from the launcher.
    collect smoke-srun-mpi-none
    expect_fail_with "launch check: srun --mpi=none is reported as a singleton launch" \
        'sees no MPI rank/size from srun.*MPI singleton'

    # 7. ranks per node larger than the allocation.
    collect smoke-rpn-mismatch
    expect_fail_with "launch check: COYOTE_RANKS_PER_NODE above the allocation is refused" \
        'would start 4 ranks .* but the allocation has SLURM_NTASKS=2'

    # 8. a missing program.
    collect smoke-missing-binary
    expect_fail_with "a missing program is reported as missing binary" "missing binary ${WORK_DIR}/no_such_program"

    # 9. malformed settings found by the node check on every node: a COYOTE_* value every rank would refuse at its
    # first cThread (coyote-settings --check, when built) and a hugepage minimum beyond bash's integers.
    collect smoke-node-check-settings
    expect_fail_with "node check: malformed settings stop the job" 'node check failed, job stopped before launch'
    local n
    for n in node1 node2; do
        expect_output "node check on ${n}: COYOTE_MIN_FREE_HUGEPAGES beyond 18 digits is refused, named" \
            "^node_check\\[${n}\\]: FAIL: .*COYOTE_MIN_FREE_HUGEPAGES=9223372036854775808 is out of range"
        expect_output "node check on ${n}: COYOTE_DEVICE that is no device number is refused, named" \
            "^node_check\\[${n}\\]: FAIL: .*COYOTE_DEVICE=1\\* is not a device number"
        if [[ -x "${BUILD_DIR}/tools/coyote-settings" ]]; then
            expect_output "node check on ${n}: coyote-settings --check names the malformed COYOTE_STALL_WARN_MS" \
                "^node_check\\[${n}\\]: FAIL: .*coyote-settings: .*COYOTE_STALL_WARN_MS='abc'"
        else
            say "note: ${BUILD_DIR}/tools/coyote-settings not built, the node check's settings check is not tested"
        fi
    done
    expect_not_started "node check: malformed settings"

    # 10. the scripts' own settings, checked before any check or step: the launcher probe's timeout, the bench
    # layout (an unknown suite named with the known ones, a mode that is no mode) and the number of rounds.
    collect smoke-launch-timeout
    expect_fail_with "COYOTE_LAUNCH_CHECK_TIMEOUT=abc is refused, named, at the start" \
        'ERROR: COYOTE_LAUNCH_CHECK_TIMEOUT=abc is not a time limit'
    expect_not_started "COYOTE_LAUNCH_CHECK_TIMEOUT=abc" no-checks
    collect smoke-launcher-bogus
    expect_fail_with "COYOTE_LAUNCHER=mpiexec is refused, named, at the start" \
        'ERROR: COYOTE_LAUNCHER=mpiexec is not one of srun, mpirun, none'
    expect_not_started "COYOTE_LAUNCHER=mpiexec" no-checks
    if grep -q '^launcher=mpiexec$' "$(job_dir)/job.env" 2>/dev/null && grep -q '^end=' "$(job_dir)/job.env"; then
        pass "a setting refused at the start: job.env records the settings and the end"
    else
        fail "a setting refused at the start: job.env lacks launcher= or end=: $(cat "$(job_dir)/job.env" 2>&1)"
    fi
    collect smoke-ctest-timeout
    expect_fail_with "tests: COYOTE_CTEST_TIMEOUT=10m is refused, named, at the start" \
        'ERROR: COYOTE_CTEST_TIMEOUT=10m is not a time limit'
    expect_not_started "tests: COYOTE_CTEST_TIMEOUT=10m" no-checks
    collect smoke-bench-suite
    expect_fail_with "bench: a misspelled suite in COYOTE_BENCH_LAYOUT is refused, naming the known suites" \
        "ERROR: COYOTE_BENCH_LAYOUT: 'a_bnech:node' names no known suite 'a_bnech' \\(known suites: .*env_probe.sh.*local_bench"
    expect_not_started "bench: a misspelled suite" no-checks
    collect smoke-bench-mode
    expect_fail_with "bench: a layout mode that is no mode is refused at the start" \
        "ERROR: COYOTE_BENCH_LAYOUT: 'env_probe.sh:two': mode 'two' is not node, all or a rank count"
    expect_not_started "bench: a layout mode that is no mode" no-checks
    collect smoke-bench-repeat
    expect_fail_with "bench: COYOTE_BENCH_REPEAT=abc is refused at the start" 'ERROR: COYOTE_BENCH_REPEAT=abc is not a whole number'
    expect_not_started "bench: COYOTE_BENCH_REPEAT=abc" no-checks
}

case_collective() {
    # The same default as collective.sbatch: the RDMA demo of mpi/examples/demo.cpp.
    local demo="" d
    for d in mpi/coyote_mpi_demo mpi/examples/demo mpi/examples/coyote_mpi_demo; do
        [[ -x "${BUILD_DIR}/${d}" ]] && { demo=${BUILD_DIR}/${d}; break; }
    done
    [[ -n "${demo}" ]] || { fail "missing binary ${BUILD_DIR}/mpi/coyote_mpi_demo"; return; }
    local demo_name
    demo_name=$(basename "${demo}")

    submit collective-mpirun-2x1 "${SLURM_SCRIPTS}/collective.sbatch" "COYOTE_LAUNCHER=mpirun" "COYOTE_MPIRUN_ARGS=${MPIRUN_FAKE_NODES}" -- -N 2 --ntasks-per-node=1 --time=5
    expect_ok "RDMA demo via mpirun on 2 nodes"
    expect_output "RDMA demo on 2 nodes: data verified" 'Result: all checks passed'
    expect_file "RDMA demo: rank 0 log" "$(job_dir)/logs/${demo_name}.rank0.node1.log"
    # The demo reports on rank 0 only: rank 1's log exists but may be empty.
    if [[ -f "$(job_dir)/logs/${demo_name}.rank1.node2.log" ]]; then
        pass "RDMA demo: rank 1 ran on node2 (its log file exists)"
    else
        fail "RDMA demo: no log of rank 1 on node2 in $(job_dir)/logs"
    fi

    if [[ ${PMIX_OK} -eq 1 ]]; then
        submit collective-srun-1x2 "${SLURM_SCRIPTS}/collective.sbatch" "COYOTE_LAUNCHER=srun" -- -N 1 --ntasks-per-node=2 --time=5
        expect_ok "RDMA demo via srun --mpi=pmix on 1 node x 2 ranks"
        expect_output "RDMA demo via srun: data verified" 'Result: all checks passed'
    else
        fail "srun has no pmix plug-in (srun --mpi=list), srun --mpi=pmix cannot be tested"
    fi

    # The silent-singleton launch, past the launch check: the MPI layer itself must refuse it.
    submit collective-singleton "${SLURM_SCRIPTS}/collective.sbatch" "COYOTE_LAUNCHER=none" "COYOTE_SKIP_LAUNCH_CHECK=1" -- -N 2 --ntasks-per-node=1 --time=5
    expect_fail_with "singleton launch ends non-zero with the MPI layer's singleton error" '[Ss]ingleton'
}

case_bench() {
    local bdir=${BUILD_DIR}/benchmarks b
    for b in local_bench rdma_bench stall_bench hw_bench; do
        [[ -x "${bdir}/${b}" ]] || { fail "missing binary ${bdir}/${b}"; return; }
    done
    # Short runs: a few sizes, minimal time per benchmark; rdma_bench without its MPI baselines, which
    # crawl over TCP between the two fake nodes on a loaded 2-core machine. stall_bench and hw_bench (one
    # rank each, hw_bench on the fake driver) by their default layouts.
    local quick=(COYOTE_BENCHES="local_bench rdma_bench stall_bench hw_bench"
        "COYOTE_BENCH_ARGS=--benchmark_min_time=0.01"
        "COYOTE_BENCH_ARGS_stall_bench=--benchmark_filter=/1024/"
        "COYOTE_BENCH_ARGS_local_bench=--benchmark_filter=/(64|4096)/"
        "COYOTE_BENCH_ARGS_rdma_bench=--benchmark_filter=^rdma_(write|read)_(lat|bw)/(8|4096)/"
        "COYOTE_PERF_RDMA_ARGS=--max 65536 --reps 50")

    submit bench-mpirun-2x1 "${SLURM_SCRIPTS}/bench.sbatch" "COYOTE_LAUNCHER=mpirun" "COYOTE_MPIRUN_ARGS=${MPIRUN_FAKE_NODES}" \
        "${quick[@]}" -- -N 2 --ntasks-per-node=1 --time=10
    expect_ok "bench.sbatch via mpirun on 2 nodes"
    local json
    for json in local_bench.node1.json local_bench.node2.json rdma_bench.json stall_bench.node1.json \
        stall_bench.node2.json hw_bench.node1.json hw_bench.node2.json; do
        if [[ -s "$(job_dir)/bench/${json}" ]] && validate_json "$(job_dir)/bench/${json}"; then
            pass "bench: ${json} is valid JSON"
        else
            fail "bench: $(job_dir)/bench/${json} missing or not valid JSON"
        fi
    done
    if [[ -x "${BUILD_DIR}/mpi/coyote_mpi_perf_rdma" || -x "${BUILD_DIR}/mpi/examples/perf_rdma" ]]; then
        expect_output "bench: the RDMA sweep ran across the 2 nodes with verified payloads" 'all payloads verified'
    fi
    if [[ -n "${PYTHON}" ]] && "${PYTHON}" "${SLURM_SCRIPTS}/results.py" "$(job_dir)" >"${JOBS_DIR}/bench-summary.txt" 2>&1 &&
        grep -q 'node2' "${JOBS_DIR}/bench-summary.txt"; then
        pass "bench: slurm/results.py summarises the job folder"
    else
        fail "bench: slurm/results.py failed on $(job_dir): $(cat "${JOBS_DIR}/bench-summary.txt" 2>/dev/null)"
    fi

    if [[ ${PMIX_OK} -eq 1 ]]; then
        submit bench-srun-1x2 "${SLURM_SCRIPTS}/bench.sbatch" "COYOTE_LAUNCHER=srun" "${quick[@]}" \
            -- -N 1 --ntasks-per-node=2 --time=10
        expect_ok "bench.sbatch via srun --mpi=pmix on 1 node x 2 ranks"
        for json in local_bench.node1.json rdma_bench.json; do
            if [[ -s "$(job_dir)/bench/${json}" ]] && validate_json "$(job_dir)/bench/${json}"; then
                pass "bench srun: ${json} is valid JSON"
            else
                fail "bench srun: $(job_dir)/bench/${json} missing or not valid JSON"
            fi
        done
    fi

    # A job that runs into its 1-minute time limit (checked by slurmctld about every 30 s, KillWait 5 s).
    # Run alone: next to the others its busy loop would slow their ranks down on 2 cores.
    submit bench-timeout "${SLURM_SCRIPTS}/bench.sbatch" "COYOTE_LAUNCHER=mpirun" "${quick[@]}" \
        COYOTE_BENCHES=local_bench COYOTE_BENCH_REPEAT=100000 -- -N 1 --ntasks-per-node=1 --time=1
    local dir state tries
    dir=$(job_dir)
    # sbatch --wait returns while slurmd may still be tearing the job down (state COMPLETING): wait for the
    # final state, at most 60 s.
    for tries in $(seq 1 60); do
        state=$(scontrol show job "${JOB_ID}" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
        [[ "${state}" == COMPLETING ]] || break
        sleep 1
    done
    if [[ "${state}" == TIMEOUT ]]; then
        pass "bench-timeout: job ${JOB_ID} ended by its time limit (state ${state})"
    else
        fail "bench-timeout: job ${JOB_ID} state '${state}', expected TIMEOUT"
        show_output
    fi
    json=${dir}/bench/round-1/local_bench.node1.json
    if [[ -s "${json}" ]] && validate_json "${json}"; then
        pass "bench-timeout: results of round 1 are readable after the time limit"
    else
        fail "bench-timeout: ${json} missing or invalid"
    fi
    if grep -q '^terminated: SIGTERM' "${dir}/status" 2>/dev/null; then
        pass "bench-timeout: status file says the job was terminated ($(cat "${dir}/status"))"
    else
        fail "bench-timeout: status file says '$(cat "${dir}/status" 2>/dev/null)'"
    fi
    if [[ $(grep -c $'\t0\t' "${dir}/steps.tsv" 2>/dev/null) -ge 1 ]]; then
        pass "bench-timeout: steps.tsv lists the steps finished before the limit"
    else
        fail "bench-timeout: steps.tsv has no finished step"
    fi
}

case_tests() {
    # The binaries tests.sbatch picks for 2 ranks: those CTest runs with "mpiexec -n 2" (label mpi).
    local tests=()
    # Lines are "<binary><TAB><its CTest environment>"; the reports are named after the binary.
    while IFS=$'\t' read -r t _; do tests+=("$t"); done < <("${PYTHON}" "${SLURM_SCRIPTS}/mpi_tests.py" "${BUILD_DIR}" mpi 2 2>/dev/null)
    [[ ${#tests[@]} -gt 0 ]] || { fail "missing binary: no 2-rank MPI test registered in ${BUILD_DIR} (ctest -L mpi)"; return; }
    local t r
    for t in "${tests[@]}"; do
        [[ -x "$t" ]] || fail "missing binary $t"
    done

    # The whole 2-rank suite on one node with both launchers (several tests assume one host).
    submit tests-mpirun-1x2 "${SLURM_SCRIPTS}/tests.sbatch" "COYOTE_LAUNCHER=mpirun" -- -N 1 --ntasks-per-node=2 --time=10
    expect_ok "tests.sbatch (2-rank MPI test binaries) via mpirun on 1 node x 2 ranks"
    for t in "${tests[@]}"; do
        for r in 0 1; do
            expect_file "tests: GoogleTest report of $(basename "$t") rank ${r}" \
                "$(job_dir)/tests/$(basename "$t").rank${r}.xml"
        done
    done
    if [[ ${PMIX_OK} -eq 1 ]]; then
        submit tests-srun-1x2 "${SLURM_SCRIPTS}/tests.sbatch" "COYOTE_LAUNCHER=srun" -- -N 1 --ntasks-per-node=2 --time=10
        expect_ok "tests.sbatch via srun --mpi=pmix on 1 node x 2 ranks"
    else
        fail "srun has no pmix plug-in (srun --mpi=list), srun --mpi=pmix cannot be tested"
    fi

    # ctest mode: ctest on the first node of the allocation, the test starts its own mpiexec there.
    submit tests-ctest-1x2 "${SLURM_SCRIPTS}/tests.sbatch" "COYOTE_TESTS_MODE=ctest" "COYOTE_CTEST_REGEX=^mpi_porting_test_np2$" \
        -- -N 1 --ntasks-per-node=2 --time=10
    expect_ok "tests.sbatch in ctest mode (ctest -L mpi -R mpi_porting_test_np2)"
    expect_file "tests ctest mode: JUnit report" "$(job_dir)/ctest-junit.xml"

    # Across the two nodes: the porting test (no single-host assumptions), chosen by COYOTE_TEST_BINARIES.
    if [[ -x "${BUILD_DIR}/tests/mpi/mpi_porting_test" ]]; then
        submit tests-mpirun-2x1 "${SLURM_SCRIPTS}/tests.sbatch" "COYOTE_LAUNCHER=mpirun" \
            "COYOTE_MPIRUN_ARGS=${MPIRUN_FAKE_NODES}" "COYOTE_TEST_BINARIES=mpi_porting_test" \
            -- -N 2 --ntasks-per-node=1 --time=10
        expect_ok "tests.sbatch (mpi_porting_test) via mpirun on 2 nodes"
        expect_file "tests: report of rank 1 on node2" "$(job_dir)/tests/mpi_porting_test.rank1.xml"
    else
        fail "missing binary ${BUILD_DIR}/tests/mpi/mpi_porting_test"
    fi
    # docs/slurm.md's layout of 2 nodes x 2 ranks: node-local ranks differ from ranks (bootstrap, wiring).
    submit tests-mpirun-2x2 "${SLURM_SCRIPTS}/tests.sbatch" "COYOTE_LAUNCHER=mpirun" \
        "COYOTE_MPIRUN_ARGS=${MPIRUN_FAKE_NODES}" "COYOTE_TEST_BINARIES=mpi_bootstrap_test mpi_wiring_test" \
        -- -N 2 --ntasks-per-node=2 --time=10
    expect_ok "tests.sbatch (mpi_bootstrap_test, mpi_wiring_test) via mpirun on 2 nodes x 2 ranks"
    expect_file "tests: report of rank 3 on node2" "$(job_dir)/tests/mpi_bootstrap_test.rank3.xml"
}
