#!/usr/bin/env python3
"""Lists the multi-rank MPI test binaries that CTest knows for a given rank count.

    mpi_tests.py BUILD_DIR LABEL NP

Reads `ctest --show-only=json-v1 -L LABEL` of BUILD_DIR and prints, one per line, every executable that a
test starts through mpiexec/mpirun with exactly NP ranks (NP >= 2), followed by a tab and the test's
ENVIRONMENT property as space-separated VAR=value words (empty when it has none). An executable registered
with several environments is printed once per environment. Tests registered only for other rank counts are
named on stderr. Used by slurm/tests.sbatch to start the same binaries with srun or mpirun
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
        env = []
        for prop in t.get("properties") or []:
            if prop.get("name") == "ENVIRONMENT":
                value = prop.get("value")
                env = list(value) if isinstance(value, list) else [str(value)]
        if any(any(c.isspace() for c in e) for e in env):
            print(f"note: {os.path.basename(exe)}: environment {env} has white space; not run", file=sys.stderr)
            continue
        if n == np:
            entry = (exe, " ".join(env))
            if entry not in found:
                found.append(entry)
        else:
            other.setdefault(exe, set()).add(n)
    found_exes = {exe for exe, _ in found}
    for exe, counts in sorted(other.items()):
        if exe not in found_exes:
            print(f"note: {os.path.basename(exe)} is registered for {sorted(counts)} ranks, not {np}; not run",
                  file=sys.stderr)
    for exe, env in found:
        print(f"{exe}\t{env}")
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main())
