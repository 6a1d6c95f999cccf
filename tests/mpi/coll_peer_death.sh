#!/usr/bin/env bash
# Runs coll_peer_death with N ranks: rank 1 exits inside an allreduce. Passes when every other rank reports an
# error naming rank 1 within the collectives deadline (COYOTE_COLL_TIMEOUT_MS, set below).
set -u
ranks=$1; shift
launcher=("$@")
# PEER_DEATH_RECOVERY=1: mpirun --enable-recovery (the job outlives the dead rank; the survivors must still end).
if [[ "${PEER_DEATH_RECOVERY:-0}" == 1 ]]; then launcher=("${launcher[0]}" --enable-recovery "${launcher[@]:1}"); fi
start=$(date +%s)
# mpirun sends SIGKILL 1 s after SIGTERM by default; give survivors time to notice the death and report it.
export OMPI_MCA_odls_base_sigkill_timeout=5
# Every rank also writes its verdict into a file here: mpirun may drop a survivor's last output while it
# tears the job down.
report_dir=$(mktemp -d "${TMPDIR:-/tmp}/coyote_peer_death.XXXXXX")
trap 'rm -rf "${report_dir}"' EXIT
export COYOTE_PEER_DEATH_DIR="${report_dir}"
out="$(COYOTE_COLL_TIMEOUT_MS=20000 COYOTE_COLL_BUFFER_SIZE=65536 COYOTE_COLL_CHUNK=4096 "${launcher[@]}" 2>&1)"
rc=$?
elapsed=$(( $(date +%s) - start ))
echo "$out"
echo "exit code $rc after ${elapsed}s"
reports="$(cat "${report_dir}"/rank*.txt 2>/dev/null)"
echo "reports written by the ranks:"
echo "${reports}"
detected=$(grep -c "DETECTED the death of rank 1" <<<"${reports}")
if grep -q "FAIL" <<<"$out$reports"; then echo "FAIL: see above"; exit 1; fi
if [[ $detected -ne $((ranks - 1)) ]]; then echo "FAIL: $detected of $((ranks - 1)) surviving ranks named rank 1"; exit 1; fi
if [[ $elapsed -ge 40 ]]; then echo "FAIL: took ${elapsed}s"; exit 1; fi
# PEER_DEATH_DETECT_WITHIN=<s>: every survivor must have named rank 1 within that many seconds of entering the call.
if [[ -n "${PEER_DEATH_DETECT_WITHIN:-}" ]]; then
  slow=$(sed -n 's/.*DETECTED the death of rank 1 after \([0-9.]*\) s.*/\1/p' <<<"${reports}" |
         awk -v max="${PEER_DEATH_DETECT_WITHIN}" '$1 >= max')
  if [[ -n "$slow" ]]; then echo "FAIL: detected only after ${slow//$'\n'/ } s (limit ${PEER_DEATH_DETECT_WITHIN} s)"; exit 1; fi
fi
# No rank process runs on; with PEER_DEATH_NEXT_START=<program>, no /dev/shm file of the job stays once the next
# sim process started (it reclaims what the SIGKILLed rank left).
pids=$(cat "${report_dir}"/pid*.txt 2>/dev/null)
alive() { [[ -e /proc/$1 ]] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }
for p in $pids; do
  for _ in $(seq 50); do alive "$p" || break; sleep 0.1; done # a zombie counts as ended
  if alive "$p"; then echo "FAIL: rank process $p still runs"; exit 1; fi
done
if [[ -n "${PEER_DEATH_NEXT_START:-}" ]]; then
  "${PEER_DEATH_NEXT_START}" >/dev/null 2>&1 || { echo "FAIL: the next start (${PEER_DEATH_NEXT_START}) failed"; exit 1; }
  for p in $pids; do
    left=$(ls /dev/shm | grep -E "^coyote-sim\.$(id -u)\.${p}\." || true)
    if [[ -n "$left" ]]; then echo "FAIL: files of rank pid $p stay in /dev/shm: $left"; exit 1; fi
  done
fi
echo "PEER DEATH TEST PASSED"
