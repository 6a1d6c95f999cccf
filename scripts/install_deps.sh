#!/usr/bin/env bash
# Installs the Debian 12 packages coyote-mpi needs to build, test and run. Idempotent: packages that are
# already installed are skipped, and `apt-get update` only runs when something is missing.
set -euo pipefail

PACKAGES=(
    build-essential cmake ninja-build pkg-config git
    libopenmpi-dev openmpi-bin libhwloc-dev hwloc libboost-dev libssl-dev
    libgtest-dev libgmock-dev libbenchmark-dev
    pybind11-dev python3-dev python3-numpy python3-mpi4py python3-matplotlib python3-pytest
    iproute2 nftables slurm-wlm munge
    clang libclang-rt-14-dev
)

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "install_deps.sh: dpkg-query not found; this script supports Debian 12 (bookworm) only." >&2
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "installed" ]]; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install_deps.sh: all ${#PACKAGES[@]} packages are installed."
    exit 0
fi

echo "install_deps.sh: missing packages: ${missing[*]}"

if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "install_deps.sh: not running as root and sudo is not available." >&2
    echo "Install these packages as root, then run this script again:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
echo "install_deps.sh: installed ${missing[*]}"
