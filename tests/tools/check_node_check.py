#!/usr/bin/python3
"""slurm/node_check.sh outside Slurm on the sim backend: a malformed COYOTE_* value fails the node with
coyote-settings' message naming it (every rank would fail at its first cThread); COYOTE_MIN_FREE_HUGEPAGES is
read in base 10 (08 and 010 are 8 and 10) and a value too large for bash's integers fails naming the variable.

    check_node_check.py NODE_CHECK_SH COYOTE_INFO      (coyote-settings is found next to coyote-info)
"""
import os
import subprocess
import sys

SCRIPT, INFO = sys.argv[1], sys.argv[2]
failures = 0


def run(**env):
    base = {k: v for k, v in os.environ.items() if not k.startswith("COYOTE_")}
    base.update({"COYOTE_BACKEND": "sim", "COYOTE_INFO": INFO}, **env)
    p = subprocess.run(["bash", SCRIPT], env=base, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def check(what, cond, out):
    global failures
    if cond:
        print(f"ok: {what}")
    else:
        failures += 1
        print(f"FAIL: {what}\n{out}\n----")


def last_line(out):
    lines = [l for l in out.splitlines() if l.startswith("node_check[")]
    return lines[-1] if lines else ""


rc, out = run()
check("a well-formed environment passes, coyote-settings --check ran",
      rc == 0 and "settings: every variable set here is well-formed" in out and last_line(out).endswith(": PASS"), out)

for var, value in (("COYOTE_STALL_WARN_MS", "abc"), ("COYOTE_POST_TIMEOUT_MS", "-5"), ("COYOTE_SIM_WIRE", "udp")):
    rc, out = run(**{var: value})
    final = last_line(out)
    check(f"{var}={value} fails the node with coyote-settings' message naming it",
          rc == 1 and ": FAIL: " in final and "coyote-settings" in final and f"{var}='{value}'" in final, out)

rc, out = run(COYOTE_BAKEND="sim")
check("a misspelled COYOTE_* name fails the node, naming it and the nearest variable",
      rc == 1 and "COYOTE_BAKEND=sim" in last_line(out) and "COYOTE_BACKEND?" in last_line(out), out)

# Base 10: the need is reported as the number the user meant, with no bash error.
for value, need in (("08", 8), ("010", 10), ("0", 0), ("000", 0)):
    rc, out = run(COYOTE_MIN_FREE_HUGEPAGES=value)
    check(f"COYOTE_MIN_FREE_HUGEPAGES={value} is read as {need}",
          f"need {need}" in out and "value too great" not in out and "syntax error" not in out
          and rc == (0 if last_line(out).endswith(": PASS") else 1), out)

for value, why in (("9223372036854775808", "is out of range"), ("1234567890123456789", "is out of range"),
                   ("abc", "is not a whole number"), ("-1", "is not a whole number")):
    rc, out = run(COYOTE_MIN_FREE_HUGEPAGES=value)
    final = last_line(out)
    check(f"COYOTE_MIN_FREE_HUGEPAGES={value} fails the node: {why}",
          rc == 1 and f"FAIL: COYOTE_MIN_FREE_HUGEPAGES={value} {why}" in final, out)

print(f"{failures} failure(s)")
sys.exit(1 if failures else 0)
