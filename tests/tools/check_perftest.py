#!/usr/bin/python3
"""A perftest-style tool at two sizes on sim: server + client as two processes (TCP out-of-band), or under
mpirun -np 2. Checks the header, the exact column line, one row per size with the right number of fields,
that both sides verified the data, and the --out_json file.

usage: check_perftest.py tcp <tool> <size>...
       check_perftest.py mpi <size>... -- <mpiexec command line running the tool>
       check_perftest.py mismatch <tool>    (server and client started with other -n: both refuse, naming it)
       check_perftest.py badopt <tool>      (a malformed option is refused, naming it)
       check_perftest.py killed <tool>      (a side whose peer is killed mid-run fails within seconds, naming it)
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

LAT_COLS = (" #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    t_avg[usec]    t_stdev[usec]   "
            "99% percentile[usec]   99.9% percentile[usec] ")
BW_COLS = " #bytes     #iterations    BW peak[MB/sec]    BW average[MB/sec]   MsgRate[Mpps]"
ITERS = 200


def backend_env():
    """The environment of the tools: COYOTE_BACKEND as given (the hw tests set it and the fake driver), else sim."""
    env = dict(os.environ)
    env.setdefault("COYOTE_BACKEND", "sim")
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_client(out, tool, size):
    kind = "lat" if tool.endswith("_lat") else "bw"
    lines = out.splitlines()
    assert any(re.match(r"^ local address: LID 0000 QPN 0x[0-9a-f]{4,} PSN 0x[0-9a-f]{6} RKey 0x[0-9a-f]+ "
                        r"VAddr 0x[0-9a-f]{14}$", l) for l in lines), out
    assert any(l.startswith(" remote address: LID 0000 QPN 0x") for l in lines), out
    cols = LAT_COLS if kind == "lat" else BW_COLS
    assert cols in lines, f"column line missing:\n{out}"
    # The row follows the column line (under mpirun only the client prints: the server's report comes after).
    row = lines[lines.index(cols) + 1].split()
    assert len(row) == (9 if kind == "lat" else 5), f"row {row}"
    assert int(row[0]) == size and int(row[1]) == ITERS, f"row {row} for size {size}"
    values = [float(v) for v in row[2:]]
    if kind == "lat":
        assert all(v > 0 for v in values), f"row {row}: a figure is not positive"
    else:
        # The bandwidths print with 2 decimals, as perftest's do: a slow run (8 B under ThreadSanitizer) rounds
        # them to 0.00. The message rate prints with 6.
        assert all(v >= 0 for v in values) and values[-1] > 0, f"row {row}: a figure is negative or no message moved"
    if kind == "lat":
        t_min, t_max, t_typ, _, _, p99, p999 = values
        assert t_min <= t_typ <= p99 <= p999 <= t_max, f"row {row}: distribution out of order"
    else:
        assert values[0] >= values[1], f"row {row}: peak below average"


def check_verified(out, who):
    assert "data verified: every received message matched" in out, f"{who} did not verify the data:\n{out}"


def check_json(path, size):
    mode = os.stat(path).st_mode & 0o777
    assert mode == 0o600, f"{path} was created with mode {mode:o}: readable by other users (umask 022)"
    with open(path) as f:
        doc = json.load(f)
    [r] = doc["results"]
    assert r["bytes"] == size and r["iterations"] == ITERS and r["data_verified"] is True, doc


def run_tcp(tool, size, tmp):
    env = backend_env()
    port = str(free_port())
    common = ["-p", port, "-s", str(size), "-n", str(ITERS)]
    js = os.path.join(tmp, f"client_{size}.json")
    srv = subprocess.Popen([tool, "-d", "0"] + common, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    time.sleep(0.3)
    cli = subprocess.run([tool, "-d", "1"] + common + ["--out_json_file", js, "127.0.0.1"], env=env,
                         capture_output=True, text=True, timeout=120)
    srv_out, _ = srv.communicate(timeout=120)
    assert cli.returncode == 0, f"client exit {cli.returncode}:\n{cli.stdout}{cli.stderr}"
    assert srv.returncode == 0, f"server exit {srv.returncode}:\n{srv_out}"
    check_client(cli.stdout, os.path.basename(tool), size)
    check_verified(cli.stdout, "client")
    check_verified(srv_out, "server")
    assert "Side           : server" in srv_out
    check_json(js, size)


def run_short_bw(tool):
    """-n below the TX depth: no post is paced by completions, so the peak is the average (it was the post rate)."""
    env = backend_env()
    port = str(free_port())
    srv = subprocess.Popen([tool, "-d", "0", "-p", port, "-n", "5"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.STDOUT)
    time.sleep(0.3)
    cli = subprocess.run([tool, "-d", "1", "-p", port, "-n", "5", "127.0.0.1"], env=env, capture_output=True,
                         text=True, timeout=120)
    srv.wait(timeout=120)
    assert cli.returncode == 0, cli.stderr
    lines = cli.stdout.splitlines()
    row = lines[lines.index(BW_COLS) + 1].split()
    assert row[2] == row[3], f"-n 5: peak {row[2]} is not the average {row[3]}"


def run_mpi(cmd, size, tmp):
    js = os.path.join(tmp, f"mpi_{size}.json")
    p = subprocess.run(cmd + ["-s", str(size), "-n", str(ITERS), "--out_json_file", js], capture_output=True,
                       text=True, timeout=180, env=backend_env())
    assert p.returncode == 0, f"mpirun exit {p.returncode}:\n{p.stdout}{p.stderr}"
    assert p.stdout.count("data verified: every received message matched") == 2, p.stdout
    assert p.stdout.count("Data ex. method : MPI") == 2, p.stdout
    tool = next(os.path.basename(a) for a in cmd if re.search(r"coyote_\w+_(lat|bw)$", a))
    # One writer: the client's whole report, then the server's (rank 0 hands its text to rank 1 at the end).
    client_at, server_at = p.stdout.find("Side           : client"), p.stdout.find("Side           : server")
    assert 0 <= client_at < server_at, f"the client's report does not come first:\n{p.stdout}"
    check_client(p.stdout[:server_at], tool, size)
    check_verified(p.stdout[:server_at], "client")
    check_verified(p.stdout[server_at:], "server")
    # Only the client writes the JSON file (both ranks would share the path).
    check_json(js, size)
    with open(js) as f:
        assert json.load(f)["side"] == "client", js


def run_mismatch(tool):
    env = backend_env()
    port = str(free_port())
    srv = subprocess.Popen([tool, "-d", "0", "-p", port, "-n", "100"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    time.sleep(0.3)
    cli = subprocess.run([tool, "-d", "1", "-p", port, "-n", "200", "127.0.0.1"], env=env, capture_output=True,
                         text=True, timeout=120)
    srv_out, _ = srv.communicate(timeout=120)
    for who, rc, out in (("client", cli.returncode, cli.stderr), ("server", srv.returncode, srv_out)):
        assert rc == 1 and "the peer runs with another -n;" in out, f"{who} exit {rc}: {out}"
    # -s does not count with -a: a server given one still agrees with a client without.
    port = str(free_port())
    srv = subprocess.Popen([tool, "-d", "0", "-p", port, "-a", "-s", "16", "-n", "5"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.3)
    cli = subprocess.run([tool, "-d", "1", "-p", port, "-a", "-n", "5", "127.0.0.1"], env=env, capture_output=True,
                         text=True, timeout=120)
    srv_out, _ = srv.communicate(timeout=120)
    assert cli.returncode == 0 and srv.returncode == 0, f"-a with and without -s: {cli.stderr}\n{srv_out}"


def run_badopt(tool):
    name = os.path.basename(tool)
    for args, needle in ((["-s", "12k"], "-s takes a number, got '12k'"), (["-n", "2"], "-n 2 is out of range"),
                         (["--bogus"], "unknown option --bogus"),
                         (["--report_gbits=0"], "--report_gbits takes no value"),
                         (["--out_json=mine.json"], "(the file is --out_json_file=<path>)")):
        p = subprocess.run([tool] + args, capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and needle in p.stderr, f"{args}: exit {p.returncode}: {p.stderr}"
        assert p.stderr.startswith(name + ": ") and p.stderr.count(name + ":") == 1, f"{args}: {p.stderr}"
    # A JSON file that cannot be created fails before the run (not after hours of -a), naming the reason; one
    # that cannot be written (a full disk) is an error too, not a silent exit 0.
    for path, iters, needle in (("/nonexistent/dir/x.json", "100000000", "No such file or directory"),
                                ("/dev/full", "100", "No space left on device")):
        port = str(free_port())
        srv = subprocess.Popen([tool, "-d", "0", "-p", port, "-n", iters], env=backend_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        start = time.monotonic()
        p = subprocess.run([tool, "-d", "1", "-p", port, "-n", iters, "--out_json_file=" + path, "127.0.0.1"],
                           env=backend_env(), capture_output=True, text=True, timeout=90)
        srv.wait(timeout=90)
        assert p.returncode == 1 and needle in p.stderr and path in p.stderr, f"{path}: {p.returncode}: {p.stderr}"
        assert time.monotonic() - start < 30, f"{path}: the error came after the run"


def run_killed(tool):
    """Kills one side mid-run (the client, then the server): the other fails with peer_gone within seconds,
    not after the 60 s completion timeout."""
    env = backend_env()
    for victim in ("client", "server"):
        with tempfile.TemporaryDirectory() as tmp:
            port = str(free_port())
            args = ["-p", port, "-s", "64", "-n", "100000000"]
            logs = {who: open(os.path.join(tmp, who), "w+") for who in ("server", "client")}
            srv = subprocess.Popen([tool, "-d", "0"] + args, env=env, stdout=logs["server"], stderr=subprocess.STDOUT)
            time.sleep(0.3)
            cli = subprocess.Popen([tool, "-d", "1"] + args + ["127.0.0.1"], env=env, stdout=logs["client"],
                                   stderr=subprocess.STDOUT)
            procs = {"server": srv, "client": cli}

            def text(who):
                logs[who].seek(0)
                return logs[who].read()
            try:
                deadline = time.monotonic() + 60
                # Both sides are past the exchange (each prints the peer's address, flushed) and measuring.
                while not all(" remote address:" in text(w) for w in procs):
                    assert time.monotonic() < deadline and srv.poll() is None and cli.poll() is None, \
                        f"the pair never started measuring:\n{text('server')}\n{text('client')}"
                    time.sleep(0.1)
                time.sleep(0.5)
                other = "server" if victim == "client" else "client"
                procs[victim].kill()
                procs[victim].wait()
                t0 = time.monotonic()
                procs[other].wait(timeout=30)
                took, out = time.monotonic() - t0, text(other)
                assert procs[other].returncode == 1, f"{victim} killed: the {other} exited " \
                                                     f"{procs[other].returncode}:\n{out}"
                # Found by the wait (the out-of-band connection closed) or by the sim's RDMA path (a post to it).
                assert out.rstrip().endswith(": peer gone") and (
                    "the peer closed the out-of-band connection" in out or
                    re.search(r"peer process \d+ .* is gone", out)), out
                assert took < 15, f"{victim} killed: the {other} took {took:.1f} s to fail:\n{out}"
            finally:
                for p in procs.values():
                    if p.poll() is None:
                        p.kill()
                    p.wait()
                for f in logs.values():
                    f.close()


def main():
    os.umask(0o022)  # the usual umask: files the tools create must still be the owner's alone
    mode = sys.argv[1]
    if mode in ("mismatch", "badopt", "killed"):
        {"mismatch": run_mismatch, "badopt": run_badopt, "killed": run_killed}[mode](sys.argv[2])
        print(f"{mode}: checked")
        return
    with tempfile.TemporaryDirectory() as tmp:
        if mode == "tcp":
            tool, sizes = sys.argv[2], [int(s) for s in sys.argv[3:]]
            for s in sizes:
                run_tcp(tool, s, tmp)
            if tool.endswith("_bw"):
                run_short_bw(tool)
        else:
            sep = sys.argv.index("--")
            sizes, cmd = [int(s) for s in sys.argv[2:sep]], sys.argv[sep + 1:]
            for s in sizes:
                run_mpi(cmd, s, tmp)
    print(f"{mode}: sizes {sizes} checked")


main()
