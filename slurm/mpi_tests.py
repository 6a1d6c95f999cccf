#!/usr/bin/env python3
"""Lists the multi-rank MPI test binaries that CTest knows for a given rank count.

    mpi_tests.py BUILD_DIR LABEL NP

Reads `ctest --show-only=json-v1 -L LABEL` of BUILD_DIR and prints, one per line, every executable that a
test starts through mpiexec/mpirun with exactly NP ranks (NP >= 2). Tests registered only for other rank
counts are named on stderr. Used by slurm/tests.sbatch to start the same binaries with srun or mpirun
across the nodes of an allocation. Exit code 0 when at least one binary was found, 1 otherwise.
"""
import json
import os
import subprocess
import sys

LAUNCHERS = {"mpiexec", "mpirun", "mpiexec.openmpi", "mpirun.openmpi", "mpiexec.hydra"}
NP_FLAGS = {"-n", "-np", "--np", "-c"}


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    build_dir, label, np_text = sys.argv[1:]
    try:
        np = int(np_text)
    except ValueError:
        print(f"mpi_tests.py: NP '{np_text}' is not a number", file=sys.stderr)
        return 2
    try:
        out = subprocess.run(["ctest", "--test-dir", build_dir, "--show-only=json-v1", "-L", label],
                             check=True, capture_output=True, text=True, timeout=120).stdout
        tests = json.loads(out).get("tests", [])
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as e:
        print(f"mpi_tests.py: cannot list the CTest tests of {build_dir}: {e}", file=sys.stderr)
        return 1

    found, other = [], {}
    for t in tests:
        cmd = t.get("command") or []
        if not cmd or os.path.basename(cmd[0]) not in LAUNCHERS:
            continue
        n, exe = None, None
        i = 1
        while i < len(cmd):
            a = cmd[i]
            if a in NP_FLAGS and i + 1 < len(cmd):
                try:
                    n = int(cmd[i + 1])
                except ValueError:
                    pass
                i += 2
                continue
            if not a.startswith("-") and os.path.isabs(a):
                exe = a
                break
            i += 1
        if exe is None or n is None or n < 2:
            continue
        if n == np:
            if exe not in found:
                found.append(exe)
        else:
            other.setdefault(exe, set()).add(n)
    for exe, counts in sorted(other.items()):
        if exe not in found:
            print(f"note: {os.path.basename(exe)} is registered for {sorted(counts)} ranks, not {np}; not run",
                  file=sys.stderr)
    for exe in found:
        print(exe)
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main())
