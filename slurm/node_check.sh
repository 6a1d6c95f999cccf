#!/usr/bin/env bash
# Pre-launch check of one node for coyote-mpi jobs. The batch scripts run it on every node of the
# allocation (srun --ntasks-per-node=1 -N $SLURM_NNODES, see slurm/lib.sh) before starting a program.
#
#   node_check.sh           check this node; prints "node_check[<node>]: ..." lines, the last one
#                           PASS or FAIL: <problems>; exit code 0 on PASS, 1 on FAIL
#   node_check.sh --probe   print one "COYOTE_PROBE ..." line with what this rank sees from its launcher
#                           (rank, MPI world size, SLURM_NTASKS); used by the launch check
#
# What is checked:
#   backend      COYOTE_BACKEND (sim|hw), else hw when /dev/coyote_fpga_* exists, else sim
#   hw only      device file /dev/coyote_fpga_<COYOTE_DEVICE>_v* present, a character device, readable and
#                writable; Coyote driver loaded (lsmod, /sys/module); FPGA IP configured (/sys/kernel/
#                coyote_sysfs_<dev>/cyt_attr_ip, unless COYOTE_NODE_CHECK_IP=0); the shell configuration the
#                driver probed (cyt_attr_cnfg, logged); Xilinx PCI function (vendor 0x10ee) present and its
#                hwloc locality (NUMA node, CPU set)
#   hugepages    free hugepages from /proc/meminfo; at least COYOTE_MIN_FREE_HUGEPAGES (default 1 on hw,
#                0 on sim)
#   settings     coyote-settings --check (next to coyote-info, else in PATH, else the build tree) reads every
#                COYOTE_* variable set here as the runtime will: a malformed value (every rank would fail at
#                its first cThread) or a misspelled name is a problem, with the tool's message. Skipped with
#                a warning when not found.
#   runtime view coyote-info (COYOTE_INFO, else in PATH, else the build tree: COYOTE_BUILD_DIR, else the one
#                next to this script) opens every vFPGA of COYOTE_DEVICE through the runtime's backend and logs
#                what it sees (vFPGAs, features, IP, page sizes); a vFPGA it cannot open is a problem. Skipped
#                with a warning when not found.
#   binaries     every path in COYOTE_REQUIRED_BINARIES (space separated) exists and is executable here
set -u -o pipefail

node=${SLURMD_NODENAME:-$(hostname -s)}

if [[ "${1:-}" == --probe ]]; then
    # What an MPI library started by this launcher will see. Open MPI's mpirun sets OMPI_COMM_WORLD_*;
    # srun --mpi=pmix sets PMIX_RANK (the world size is the step's task count); srun --mpi=pmi2 sets PMI_*.
    rank="" size=""
    if [[ -n "${OMPI_COMM_WORLD_RANK:-}" ]]; then
        rank=${OMPI_COMM_WORLD_RANK}
        size=${OMPI_COMM_WORLD_SIZE:-}
    elif [[ -n "${PMIX_RANK:-}" ]]; then
        rank=${PMIX_RANK}
        size=${SLURM_STEP_NUM_TASKS:-${SLURM_NTASKS:-}}
    elif [[ -n "${PMI_RANK:-}" ]]; then
        rank=${PMI_RANK}
        size=${PMI_SIZE:-}
    fi
    printf 'COYOTE_PROBE node=%s rank=%s size=%s ntasks=%s procid=%s\n' \
        "${node}" "${rank}" "${size}" "${SLURM_NTASKS:-}" "${SLURM_PROCID:-}"
    exit 0
fi

problems=()
say() { printf 'node_check[%s]: %s\n' "${node}" "$*"; }
problem() {
    problems+=("$*")
    say "problem: $*"
}

device=${COYOTE_DEVICE:-0}
# The device number is part of file and sysfs names below: digits only (a '*' or a space would match other files).
if ! [[ "${device}" =~ ^(0|[1-9][0-9]{0,2})$ && "${device}" -le 255 ]]; then
    problem "COYOTE_DEVICE=${device} is not a device number (a whole number from 0 to 255)"
    device=0
fi

# ---- backend -----------------------------------------------------------------------------------
backend=${COYOTE_BACKEND:-}
shopt -s nullglob
all_dev_files=(/dev/coyote_fpga_*)
dev_files=(/dev/coyote_fpga_"${device}"_v*)
shopt -u nullglob
if [[ -z "${backend}" ]]; then
    if [[ ${#all_dev_files[@]} -gt 0 ]]; then
        backend=hw
        say "backend hw (auto: ${all_dev_files[0]} present)"
    else
        backend=sim
        say "backend sim (auto: no /dev/coyote_fpga_* on this node): software vFPGA, no FPGA checks"
    fi
else
    case "${backend}" in
        sim) say "backend sim (COYOTE_BACKEND=sim): software vFPGA, no FPGA checks" ;;
        hw) say "backend hw (COYOTE_BACKEND=hw)" ;;
        *) problem "COYOTE_BACKEND=${backend} is neither sim nor hw" ;;
    esac
fi

# ---- hw: device, driver, IP, PCI locality --------------------------------------------------------
if [[ "${backend}" == hw ]]; then
    if [[ ${#dev_files[@]} -eq 0 ]]; then
        problem "backend hw but no device file /dev/coyote_fpga_${device}_v* (COYOTE_DEVICE=${device}; is the Coyote driver loaded and the shell programmed?)"
    else
        for f in "${dev_files[@]}"; do
            if [[ ! -c "$f" ]]; then
                problem "device file $f is not a character device (a leftover file? reload the Coyote driver)"
            elif [[ ! -r "$f" || ! -w "$f" ]]; then
                problem "device file $f is not readable and writable by $(id -un) (uid $(id -u))"
            fi
        done
        [[ ${#problems[@]} -eq 0 ]] && say "device files: ${dev_files[*]}"
    fi

    driver=""
    shopt -s nullglob
    for m in /sys/module/coyote*; do driver=$(basename "$m"); done
    shopt -u nullglob
    if [[ -z "${driver}" ]] && command -v lsmod >/dev/null 2>&1; then
        driver=$(lsmod 2>/dev/null | awk 'tolower($1) ~ /coyote/ { print $1; exit }')
    fi
    if [[ -z "${driver}" ]]; then
        problem "Coyote driver not loaded (no coyote module in lsmod or /sys/module)"
    else
        say "driver loaded: ${driver}"
    fi

    sysfs=/sys/kernel/coyote_sysfs_${device}
    if [[ "${COYOTE_NODE_CHECK_IP:-1}" != 0 ]]; then
        if [[ ! -r "${sysfs}/cyt_attr_ip" ]]; then
            problem "FPGA IP unknown: ${sysfs}/cyt_attr_ip missing or unreadable (set COYOTE_NODE_CHECK_IP=0 for jobs without network)"
        else
            ip_text=$(tr -d '\0' <"${sysfs}/cyt_attr_ip" 2>/dev/null | tr '\n' ' ')
            # The driver prints "IP address: <8 hex digits>, port: <qsfp>" (coyote_sysfs.c): zero is unset.
            # Other text: any non-zero hexadecimal digit or dotted quad other than 0.0.0.0 counts as configured.
            ip_set=1
            if [[ "${ip_text}" =~ IP\ address:\ *([0-9a-fA-F]+) ]]; then
                [[ $((16#${BASH_REMATCH[1]})) -eq 0 ]] && ip_set=0
            elif [[ -z "${ip_text// /}" ]] || ! grep -Eq '(0x)?[0-9a-fA-F]*[1-9a-fA-F]' <<<"${ip_text//0.0.0.0/}"; then
                ip_set=0
            fi
            if [[ ${ip_set} -eq 0 ]]; then
                problem "FPGA IP not configured: ${sysfs}/cyt_attr_ip reads '${ip_text}' (load the driver with ip_addr=...)"
            else
                say "FPGA IP: ${ip_text}"
            fi
        fi
    fi

    # The shell the driver probed (coyote_sysfs.c cyt_attr_cnfg): vFPGAs and features, for the job log.
    if [[ -r "${sysfs}/cyt_attr_cnfg" ]]; then
        cnfg=$(tr -d '\0' <"${sysfs}/cyt_attr_cnfg" 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g')
        field() { awk -F': *' -v k="$1" '$1 == k { print $2; exit }' <<<"${cnfg}"; }
        say "shell: $(field 'number of vFPGAs') vFPGAs, RDMA $(field 'enabled RDMA'), TCP $(field 'enabled TCP/IP'), AVX $(field 'enabled AVX'), writeback $(field 'enabled writeback'), card memory $(field 'enabled memory')"
        n_vf=$(field 'number of vFPGAs')
        if [[ "${n_vf}" =~ ^[0-9]+$ && ${#dev_files[@]} -gt 0 && ${#dev_files[@]} -ne ${n_vf} ]]; then
            say "warning: the shell has ${n_vf} vFPGAs but there are ${#dev_files[@]} device files /dev/coyote_fpga_${device}_v*"
        fi
    else
        say "warning: ${sysfs}/cyt_attr_cnfg unreadable: shell configuration unknown"
    fi

    # Xilinx PCI functions (vendor 0x10ee) and their locality.
    fpga_pci=()
    shopt -s nullglob
    for d in /sys/bus/pci/devices/*; do
        if [[ "$(cat "$d/vendor" 2>/dev/null)" == 0x10ee ]]; then
            fpga_pci+=("$(basename "$d")")
        fi
    done
    shopt -u nullglob
    if [[ ${#fpga_pci[@]} -eq 0 ]]; then
        problem "no Xilinx PCI function (vendor 0x10ee) in /sys/bus/pci/devices"
    fi
    for busid in "${fpga_pci[@]}"; do
        numa=$(cat "/sys/bus/pci/devices/${busid}/numa_node" 2>/dev/null || echo "?")
        local_cpus=$(cat "/sys/bus/pci/devices/${busid}/local_cpulist" 2>/dev/null || echo "?")
        hw_numa="" hw_cores=""
        if command -v hwloc-calc >/dev/null 2>&1; then
            hw_numa=$(hwloc-calc --physical --intersect NUMAnode "pci=${busid}" 2>/dev/null || true)
            hw_cores=$(hwloc-calc --physical --intersect core "pci=${busid}" 2>/dev/null || true)
        fi
        say "FPGA ${busid}: NUMA node ${numa} (hwloc: ${hw_numa:-?}), local CPUs ${local_cpus}, hwloc cores ${hw_cores:-?}"
    done
    if [[ ${#fpga_pci[@]} -gt 0 ]]; then
        if command -v lstopo-no-graphics >/dev/null 2>&1; then
            topo=$(lstopo-no-graphics --whole-io -v 2>/dev/null | grep -i 'id=10ee:' | head -4 || true)
        elif command -v hwloc-ls >/dev/null 2>&1; then
            topo=$(hwloc-ls --whole-io -v 2>/dev/null | grep -i 'id=10ee:' | head -4 || true)
        else
            topo=""
            say "warning: hwloc tools (lstopo-no-graphics, hwloc-ls) not installed, locality from sysfs only"
        fi
        if [[ -n "${topo}" ]]; then
            while IFS= read -r l; do say "hwloc: ${l## }"; done <<<"${topo}"
        fi
        # Where this task may run compared with where the FPGA is attached.
        allowed=$(awk '/^Cpus_allowed_list/ { print $2 }' /proc/self/status 2>/dev/null)
        say "this task may run on CPUs ${allowed:-?}"
    fi
fi

# ---- hugepages -----------------------------------------------------------------------------------
if [[ -r /proc/meminfo ]]; then
    hp_free=$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)
    hp_total=$(awk '/^HugePages_Total:/ { print $2 }' /proc/meminfo)
    hp_size=$(awk '/^Hugepagesize:/ { print $2 $3 }' /proc/meminfo)
    [[ "${hp_free}" =~ ^[0-9]{1,18}$ ]] || hp_free=0
    hp_free=$((10#${hp_free}))
    if [[ "${backend}" == hw ]]; then min_default=1; else min_default=0; fi
    min_free=${COYOTE_MIN_FREE_HUGEPAGES:-${min_default}}
    # Read in base 10 (bash's arithmetic takes 010 for octal 8 and refuses 08), at most 18 digits (more can
    # overflow bash's 64-bit integers and wrap around).
    if ! [[ "${min_free}" =~ ^[0-9]+$ ]]; then
        problem "COYOTE_MIN_FREE_HUGEPAGES=${min_free} is not a whole number"
    elif ! [[ "${min_free}" =~ ^[0-9]{1,18}$ ]]; then
        problem "COYOTE_MIN_FREE_HUGEPAGES=${min_free} is out of range (a whole number of at most 18 digits)"
    elif [[ ${hp_free} -lt $((10#${min_free})) ]]; then
        problem "only ${hp_free} free hugepages of ${hp_size} (total ${hp_total:-0}), need $((10#${min_free})) (echo N > /proc/sys/vm/nr_hugepages)"
    else
        say "hugepages: ${hp_free} free of ${hp_total:-0} (${hp_size}), need $((10#${min_free}))"
    fi
else
    problem "/proc/meminfo unreadable, free hugepages unknown"
fi

# ---- the tools of the runtime: coyote-info, coyote-settings --------------------------------------------
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# build_tool NAME: NAME in the tools/ folder of the build tree (COYOTE_BUILD_DIR, else the one next to this
# script), or nothing.
build_tool() {
    local d
    for d in ${COYOTE_BUILD_DIR:+"${COYOTE_BUILD_DIR}"} "${here}/../build"; do
        if [[ -f "${d}/tools/$1" && -x "${d}/tools/$1" ]]; then
            printf '%s\n' "${d}/tools/$1"
            return 0
        fi
    done
}
info_bin=${COYOTE_INFO:-$(command -v coyote-info 2>/dev/null || true)}
[[ -z "${info_bin}" ]] && info_bin=$(build_tool coyote-info)
# coyote-settings of the same installation or build as coyote-info, which knows the same variables.
settings_bin=""
if [[ -n "${info_bin}" && -x "$(dirname "${info_bin}")/coyote-settings" ]]; then
    settings_bin="$(dirname "${info_bin}")/coyote-settings"
fi
[[ -z "${settings_bin}" ]] && settings_bin=$(command -v coyote-settings 2>/dev/null || true)
[[ -z "${settings_bin}" ]] && settings_bin=$(build_tool coyote-settings)

# ---- COYOTE_* settings (coyote-settings --check) ------------------------------------------------------
# Every rank checks the COYOTE_* variables at its first cThread and fails on a malformed one: find it here.
if [[ -z "${settings_bin}" ]]; then
    say "warning: coyote-settings not found (put it next to coyote-info or in PATH): COYOTE_* settings not checked"
else
    settings_rc=0
    settings_out=$(timeout 60 "${settings_bin}" --check 2>&1) || settings_rc=$?
    if [[ ${settings_rc} -eq 0 ]]; then
        say "settings: ${settings_out#coyote-settings: }"
    elif [[ ${settings_rc} -eq 1 ]]; then
        # One line per malformed value or misspelled name, as the tool says it.
        while IFS= read -r l; do
            [[ -n "${l}" ]] && problem "${l}"
        done <<<"${settings_out}"
    else
        say "warning: ${settings_bin} --check ended with exit code ${settings_rc} ($(tr '\n' ' ' <<<"${settings_out}")): COYOTE_* settings not checked"
    fi
fi

# ---- the runtime's own view (coyote-info) -------------------------------------------------------------
if [[ -z "${info_bin}" ]]; then
    say "warning: coyote-info not found (set COYOTE_INFO or put it in PATH): runtime view skipped"
elif [[ "${backend}" == sim || "${backend}" == hw ]]; then
    # Exit 3: the report is whole and names what does not open (the PROBLEM lines below).
    info_rc=0
    info_json=$(timeout 120 "${info_bin}" --json -b "${backend}" -d "${device}" 2>/dev/null) || info_rc=$?
    if [[ ${info_rc} -eq 0 || ${info_rc} -eq 3 ]]; then
        # One line per device; "PROBLEM: ..." lines for vFPGAs the runtime could not open.
        while IFS= read -r l; do
            if [[ "${l}" == PROBLEM:* ]]; then problem "${l#PROBLEM: }"; else say "coyote-info: ${l}"; fi
        done < <(/usr/bin/python3 -c '
import json, sys
doc = json.load(sys.stdin)
for b in doc["backends"]:
    if "error" in b:
        print("PROBLEM: coyote-info: %s backend: %s" % (b["backend"], b["error"]))
    elif not b.get("devices"):
        print("PROBLEM: coyote-info: %s backend: no device" % b["backend"])
    for d in b.get("devices", []):
        ok = [v for v in d["vfpgas"] if "shell" in v]
        for v in d["vfpgas"]:
            if "error" in v:
                print("PROBLEM: coyote-info: %s device %d vFPGA %d does not open: %s"
                      % (b["backend"], d["device"], v["vfid"], v["error"]))
        if ok:
            s = ok[0]["shell"]
            feats = ",".join(k for k, on in s["features"].items() if on)
            print("%s device %d: %d of %d vFPGAs open, IP %s, features %s, pages %d/%d bytes"
                  % (b["backend"], d["device"], len(ok), s["vfpgas"], d.get("ip", "?"), feats,
                     s["page_size_small"], s["page_size_large"]))
' <<<"${info_json}" 2>&1)
    else
        problem "coyote-info failed (exit ${info_rc}; 124 is no answer within 120 s): $(timeout 120 "${info_bin}" --json -b "${backend}" -d "${device}" 2>&1 >/dev/null)"
    fi
fi

# ---- binaries ------------------------------------------------------------------------------------
for b in ${COYOTE_REQUIRED_BINARIES:-}; do
    if [[ ! -e "$b" ]]; then
        problem "missing binary $b"
    elif [[ ! -f "$b" || ! -x "$b" ]]; then
        problem "binary $b is not an executable file"
    fi
done
if [[ -n "${COYOTE_REQUIRED_BINARIES:-}" && ${#problems[@]} -eq 0 ]]; then
    say "binaries present: ${COYOTE_REQUIRED_BINARIES}"
fi

if [[ ${#problems[@]} -gt 0 ]]; then
    joined=$(printf '%s; ' "${problems[@]}")
    say "FAIL: ${joined%; }"
    exit 1
fi
say "PASS"
exit 0
