#!/usr/bin/env bash
# Runs an MPI job whose ranks sit on <hosts> fake hosts: network namespaces <tag>h1 .. <tag>hN, each with its own
# host name (UTS namespace), its own /dev/shm (a tmpfs in a mount namespace) and CPUs, joined by veth links to a bridge
# in a head namespace <tag>h0, where mpirun runs. Open MPI starts one orted per fake host through an agent script
# (plm_rsh_agent) that enters the host's namespaces; its TCP traffic is kept to the test's subnet. Each host's
# ranks get COYOTE_SIM_WIRE_ADDR = the host's address, COYOTE_TEST_HOST = its name, COYOTE_TEST_HOST_INDEX (0-based)
# and COYOTE_TEST_HOSTS. Ranks are placed by slot: <ranks>/<hosts> consecutive ranks per host.
# Exit 77 (skipped) without root, iproute2, unshare, taskset or Open MPI, or when namespaces cannot be made. Every
# path (success, failure, timeout, TERM/INT) kills the job's processes by pid and removes the namespaces (with them
# the veths, bridge and the hosts' /dev/shm) and the private directory under /tmp.
# Usage: multihost_test.sh <hosts> <mpiexec> [mpiexec args...] <program> [args...]
set -u
hosts=$1
shift
mpiexec=$1
shift
skip() { echo "SKIPPED: $*"; exit 77; }
[[ $(id -u) -eq 0 ]] || skip "network and mount namespaces need root"
for tool in ip unshare mount timeout taskset; do command -v "$tool" >/dev/null || skip "$tool is not installed"; done
"$mpiexec" --version 2>/dev/null | grep -qE "Open MPI|OpenRTE" || skip "the launcher is not Open MPI's mpirun"
unshare --uts --mount --propagation private true 2>/dev/null || skip "cannot create UTS and mount namespaces"

prefix=cymh
tag=$prefix$$
head=${tag}h0
net=10.236.0 # private to the test's namespaces: the root namespace gets no address or link
ns_pids() { ip netns pids "$1" 2>/dev/null; }
# Kills every process of namespace $1 (by pid) and deletes it (its links and the mounts only its processes saw go
# with it).
drop_ns() {
    local ns=$1 pids i
    for i in $(seq 50); do
        pids=$(ns_pids "$ns")
        [[ -z "$pids" ]] && break
        kill -KILL $pids 2>/dev/null
        sleep 0.1
    done
    ip netns del "$ns" 2>/dev/null
}

# Leftovers of a run that was killed outright (SIGKILL gives no chance to clean up): namespaces and directories
# whose owner pid no longer runs.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$prefix[0-9]+h[0-9]+$"); do
    owner=${ns#"$prefix"}
    owner=${owner%h*}
    kill -0 "$owner" 2>/dev/null || drop_ns "$ns"
done
for d in /tmp/coyote_multihost.*; do
    [[ -f $d/owner ]] || continue
    kill -0 "$(cat "$d/owner")" 2>/dev/null || rm -rf "$d"
done

dir=$(mktemp -d /tmp/coyote_multihost.XXXXXX) || exit 1
echo $$ >"$dir/owner"
made=()
job=
cleanup() {
    local ns
    trap - EXIT TERM INT HUP
    [[ -n $job ]] && kill -KILL "$job" 2>/dev/null # the timeout process (root namespace) of an interrupted run
    # The head first: mpirun goes before its daemons, which could otherwise restart nothing but would log.
    for ns in "${made[@]}"; do drop_ns "$ns"; done
    rm -rf "$dir"
    local left
    left=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$tag" || true)
    [[ -z "$left" ]] || echo "multihost_test: namespaces left: $left" >&2
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

setup() {
    ip netns add "$head" && made+=("$head") || return 1
    ip -n "$head" link set lo up &&
        ip -n "$head" link add br0 type bridge &&
        ip -n "$head" addr add "$net.254/24" dev br0 &&
        ip -n "$head" link set br0 up || return 1
    local i ns
    for i in $(seq 1 "$hosts"); do
        ns=${tag}h$i
        ip netns add "$ns" && made+=("$ns") || return 1
        # Both ends are made inside namespaces: no link of the test ever exists in the root namespace.
        ip -n "$head" link add "v$i" type veth peer name eth0 netns "$ns" &&
            ip -n "$head" link set "v$i" master br0 &&
            ip -n "$head" link set "v$i" up &&
            ip -n "$ns" addr add "$net.$i/24" dev eth0 &&
            ip -n "$ns" link set eth0 up &&
            ip -n "$ns" link set lo up || return 1
    done
}
setup || skip "could not create the namespaces and links (no permission for network namespaces or veth devices?)"

# Each host gets cores of its own: the CPUs this script may use, dealt out evenly (hosts share them only when there
# are more hosts than CPUs). Its processes are pinned to them and it sees only those as online, so that Open MPI's
# and the MPI layer's count of cores per node are those of a real host: with every daemon seeing all its cores, 2 ranks
# per host looked like a core each, the collectives spun instead of yielding, and a test that takes 0.4 s took 2 - 60 s.
cpus=()
for part in $(taskset -pc $$ | sed 's/.*: //' | tr ',' ' '); do
    if [[ $part == *-* ]]; then cpus+=($(seq "${part%-*}" "${part#*-}")); else cpus+=("$part"); fi
done
per=$((${#cpus[@]} / hosts))
((per >= 1)) || per=1
for i in $(seq 1 "$hosts"); do
    list=
    for ((k = 0; k < per; ++k)); do list+=${list:+,}${cpus[((i - 1) * per + k) % ${#cpus[@]}]}; done
    echo "$list" >"$dir/cpus.$i"
done

# The agent: <agent> <host> <orted command line>, the command line as words for a remote shell (quoted by
# Open MPI). It enters the host's network namespace, a UTS namespace named after the host and a mount namespace
# with a /dev/shm of its own (hosts share no shared memory) and the host's CPUs as the online ones, pins itself
# to them, then runs the command with the host's settings.
{
    echo '#!/bin/sh'
    echo 'host=$1; shift'
    echo "i=\${host#${tag}n}"
    echo "cpus=\$(cat $dir/cpus.\$i)"
    echo "exec ip netns exec ${tag}h\$i unshare --uts --mount --propagation private taskset -c \$cpus /usr/bin/env \\"
    echo "  COYOTE_SIM_WIRE_ADDR=$net.\$i COYOTE_TEST_HOST=\$host COYOTE_TEST_HOST_INDEX=\$((i - 1)) \\"
    echo "  /bin/sh -c \"hostname \$host && mount -t tmpfs -o mode=1777 ${tag}shm /dev/shm &&"
    echo "  mount --bind $dir/cpus.\$i /sys/devices/system/cpu/online && \$*\""
} >"$dir/agent.sh"
chmod 0755 "$dir/agent.sh"

# Ranks per host from the launcher's -n/-np.
ranks=0
args=("$@")
for ((k = 0; k < ${#args[@]}; ++k)); do
    case ${args[k]} in -n | -np | --np) ranks=${args[k + 1]} ;; esac
done
((ranks > 0 && ranks % hosts == 0)) || { echo "multihost_test: $ranks ranks do not split over $hosts hosts"; exit 1; }
for i in $(seq 1 "$hosts"); do echo "${tag}n$i slots=$((ranks / hosts))"; done >"$dir/hostfile"
mkdir "$dir/ompi"

# Every host has more ranks than cores (slots = ranks / hosts), which Open MPI does not see: mpi_yield_when_idle
# makes its idle ranks yield (300 rounds of allreduce + alltoall + allgather in plain MPI, 4 ranks on 2 hosts of one
# core each: 11.9 s without it, 0.04 s with it).
# In the background, so that a TERM to this script runs its traps at once.
start=$(date +%s%N)
timeout -k 10 "${COYOTE_MULTIHOST_TIMEOUT:-150}" ip netns exec "$head" "$mpiexec" \
    --hostfile "$dir/hostfile" --map-by slot --bind-to none \
    --mca plm_rsh_agent "$dir/agent.sh" --mca plm_rsh_no_tree_spawn 1 --mca routed direct \
    --mca oob_tcp_if_include "$net.0/24" --mca btl_tcp_if_include "$net.0/24" \
    --mca orte_tmpdir_base "$dir/ompi" --mca mpi_yield_when_idle 1 -x COYOTE_TEST_HOSTS="$hosts" \
    "$@" &
job=$!
wait $job
rc=$?
job=
echo "multihost_test: $ranks ranks on $hosts hosts, exit code $rc, $((($(date +%s%N) - start) / 1000000)) ms"
((rc == 124 || rc == 137)) && echo "multihost_test: the job timed out"
exit $rc
