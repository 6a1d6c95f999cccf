#!/usr/bin/python3
"""examples/rdma_perf between two processes on the sim: a run that verifies its data, and sides started with
different --runs, which both refuse at once (they used to run into the deadlines), and bad command lines, which
are refused with exit status 2 naming the option (a non-numeric value used to abort the program, a port above
65535 or a count above 2^32 wrapped around, trailing garbage was ignored).

usage: check_rdma_perf.py <rdma_perf>"""
import os
import socket
import subprocess
import sys
import time

TOOL = sys.argv[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pair(server_args, client_args):
    env = dict(os.environ, COYOTE_BACKEND="sim")
    port = str(free_port())
    srv = subprocess.Popen([TOOL, "--server", "--port", port, *server_args], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    time.sleep(0.3)
    start = time.monotonic()
    cli = subprocess.run([TOOL, "--client", "127.0.0.1", "--port", port, *client_args], env=env,
                         capture_output=True, text=True, timeout=120)
    srv_out, _ = srv.communicate(timeout=120)
    return cli.returncode, cli.stdout + cli.stderr, srv.returncode, srv_out, time.monotonic() - start


rc_c, out_c, rc_s, out_s, _ = pair(["--runs", "20", "--max", "4096"], ["--runs", "20", "--max", "4096"])
assert rc_c == 0 and rc_s == 0, f"{rc_c} {rc_s}\n{out_c}\n{out_s}"
assert "client done, all data verified" in out_c and "server done, all data verified" in out_s, out_c + out_s

rc_c, out_c, rc_s, out_s, took = pair(["--runs", "20", "--max", "4096"], ["--runs", "40", "--max", "4096"])
assert rc_c == 2 and rc_s == 2, f"{rc_c} {rc_s}\n{out_c}\n{out_s}"
assert "the peer runs --runs 20" in out_c and "the peer runs --runs 40" in out_s, out_c + out_s
assert took < 30, f"the refusal took {took:.1f} s"
BAD = [
    (["--server", "--port", "abc"], "--port needs a whole number in 1..65535, got 'abc'"),
    (["--server", "--port", "70000"], "--port needs a whole number in 1..65535, got '70000'"),
    (["--server", "--port", "0"], "--port needs a whole number"),
    (["--server", "--runs", "5x"], "--runs needs a whole number in 1..100000, got '5x'"),
    (["--server", "--runs", "-1"], "--runs needs a whole number"),
    (["--server", "--runs", "4294967297"], "--runs needs a whole number"),
    (["--server", "--max", "4294967360"], "--max needs a whole number in 1..67108864"),
    (["--server", "--min", "4096", "--max", "64"], "--min (4096) is larger than --max (64)"),
    (["--server", "--runs"], "--runs needs a value"),
    (["--client"], "--client needs a value"),
    (["--client", "--port", "5"], "--client needs the server's address"),
    (["--server", "--client", "127.0.0.1"], "give one of --server and --client, once"),
    (["--bogus"], "unknown option '--bogus'"),
    ([], "give --server or --client ADDRESS"),
]
for args, want in BAD:
    r = subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=20)
    assert r.returncode == 2 and want in r.stderr, f"{args}: rc {r.returncode}\n{r.stdout}{r.stderr}"
r = subprocess.run([TOOL, "--help"], capture_output=True, text=True, timeout=20)
assert r.returncode == 0 and r.stdout.startswith("usage:"), f"--help: rc {r.returncode}\n{r.stdout}{r.stderr}"

print("rdma_perf: verified run, mismatched options refused on both sides, bad command lines refused")
