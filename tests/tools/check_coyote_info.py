#!/usr/bin/python3
"""coyote-info on the sim backend (two shell configurations), on the fake hw driver, and -v with live cThreads.

usage: check_coyote_info.py <coyote-info> <coyote_write_lat> <LD_PRELOAD list ending in the fake driver .so>
Every check raises AssertionError naming what differed; exit status 0 when all pass.
"""
import json
import os
import socket
import subprocess
import sys
import time

INFO, WRITE_LAT, FAKE = sys.argv[1:4]


def run(args, env_extra, check=True):
    env = dict(os.environ)
    env.update(env_extra)
    p = subprocess.run([INFO] + args, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, f"coyote-info {args} exit {p.returncode}: {p.stderr}"
    return p


def info_json(args, env):
    out = run(args + ["--json"], env).stdout
    return json.loads(out)


def sim_backend(doc):
    [b] = [b for b in doc["backends"] if b["backend"] == "sim"]
    return b


def check_sim(shell, features, n_vfpgas):
    env = {"COYOTE_BACKEND": "sim"}
    if shell:
        env["COYOTE_SIM_SHELL"] = shell
    doc = info_json(["-b", "sim"], env)
    b = sim_backend(doc)
    assert doc["selected_backend"] == "sim", doc["selected_backend"]
    if shell:
        assert b["settings"].get("COYOTE_SIM_SHELL") == shell, b["settings"]
    [dev] = b["devices"]
    assert dev["device"] == 0 and dev["ip"].count(".") == 3 and dev["mac"].count(":") == 5, dev
    assert len(dev["vfpgas"]) == n_vfpgas, f"{len(dev['vfpgas'])} vFPGAs listed, shell has {n_vfpgas}"
    for i, vf in enumerate(dev["vfpgas"]):
        s = vf["shell"]
        assert vf["vfid"] == i
        assert s["vfpgas"] == n_vfpgas and s["ctids_per_vfpga"] == 64, s
        assert s["page_size_small"] == 4096 and s["page_size_large"] == 2 * 1024 * 1024, s
        for k, v in features.items():
            assert s["features"][k] is v, f"feature {k} = {s['features'][k]}, configured {v}"
    hp = doc["huge_pages"]
    assert "HugePages_Total" in hp["meminfo"] and isinstance(hp["pools"], list), hp
    assert doc["locality"]["pus"] >= 1, doc["locality"]
    # The text output says the same.
    text = run(["-b", "sim"], env).stdout
    assert f"vfpgas: {n_vfpgas}" in text and "ctids_per_vfpga: 64" in text, text
    for k, v in features.items():
        assert f"{k}: {'true' if v else 'false'}" in text, f"text lacks {k}: {v}"
    assert "page_size_large: 2097152" in text and "HugePages_Free" in text and "pus:" in text


def check_hw():
    env = {"LD_PRELOAD": FAKE, "COYOTE_FAKE_DEVICES": "2", "COYOTE_SIM_SHELL": "n_fpga_reg=2"}
    doc = info_json(["-b", "hw"], env)
    [b] = doc["backends"]
    assert b["backend"] == "hw" and doc["selected_backend"] == "hw"
    files = b["device_files"]
    assert files == [f"/dev/coyote_fpga_{d}_v{v}" for d in range(2) for v in range(2)], files
    assert [d["device"] for d in b["devices"]] == [0, 1], b["devices"]
    for d in b["devices"]:
        assert [v["vfid"] for v in d["vfpgas"]] == [0, 1], d
        assert all(v["shell"]["vfpgas"] == 2 for v in d["vfpgas"])
        assert all(v["shell"]["features"]["rdma"] is True for v in d["vfpgas"])
    text = run(["-b", "hw"], env).stdout
    assert "/dev/coyote_fpga_1_v1" in text and "backend: hw" in text, text


def check_problems():
    """The backend asked for that cannot serve programs is exit 3 with the reason; devices past 15 are probed; a
    report that cannot be written is an error."""
    env = {"LD_PRELOAD": FAKE, "COYOTE_FAKE_DEVICES": "20", "COYOTE_SIM_SHELL": "n_fpga_reg=1"}
    doc = info_json(["-b", "hw", "-d", "17"], env)
    [b] = doc["backends"]
    assert [d["device"] for d in b["devices"]] == [17] and b["device_files"] == ["/dev/coyote_fpga_17_v0"], b
    p = run(["-b", "sim", "--json"], {"COYOTE_BACKEND": "sim", "COYOTE_SIM_MODEL": "bogus"}, check=False)
    assert p.returncode == 3 and "unknown user-logic model 'bogus'" in p.stderr, (p.returncode, p.stderr)
    json.loads(p.stdout)  # the report is still whole
    p = run(["-b", "hw"], {"COYOTE_BACKEND": "hw"}, check=False)
    assert p.returncode == 3 and "the hw backend has no device" in p.stderr, (p.returncode, p.stderr)
    p = run(["-d", "256"], {}, check=False)
    assert p.returncode == 2 and "0..255" in p.stderr, (p.returncode, p.stderr)
    with open("/dev/full", "w") as full:
        p = subprocess.run([INFO, "-b", "sim"], env=dict(os.environ, COYOTE_BACKEND="sim"), stdout=full,
                           stderr=subprocess.PIPE, text=True, timeout=60)
    assert p.returncode == 1 and "No space left on device" in p.stderr, (p.returncode, p.stderr)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_live():
    """Two write_lat processes mid-run: -v shows both cThreads, their queue pairs and each other as peer."""
    env = dict(os.environ, COYOTE_BACKEND="sim")
    port = str(free_port())
    args = ["-p", port, "-s", "8", "-n", "100000000"]
    srv = subprocess.Popen([WRITE_LAT, "-d", "0"] + args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    cli = subprocess.Popen([WRITE_LAT, "-d", "1"] + args + ["127.0.0.1"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    try:
        pids = {srv.pid, cli.pid}
        for _ in range(100):  # until both have connected, posted and received
            doc = info_json(["-v", "-b", "sim"], {"COYOTE_BACKEND": "sim"})
            procs = {p["pid"]: p for p in doc["processes"] if p["pid"] in pids}
            ready = len(procs) == 2 and all(
                p["cthreads"] and p["cthreads"][0]["queue_pair"] and
                p["cthreads"][0]["commands"]["RDMA_WRITE"]["posted"] > 0 and
                # each side has also received one of the other's (asserted below): a snapshot can be taken
                # between one side's post and its arrival
                p["cthreads"][0]["commands"]["LOCAL_WRITE"]["completed"] > 0 and
                p["cthreads"][0]["queue_pair"]["peer_commands"]["RDMA_WRITE"]["posted"] > 0 for p in procs.values())
            if ready:
                break
            time.sleep(0.2)
        assert ready, f"the two write_lat processes never showed up connected: {doc.get('processes')}"
        for pid, p in procs.items():
            [t] = p["cthreads"]
            other = (pids - {pid}).pop()
            assert p["alive"] and t["backend"] == "sim" and t["ctid"] == 0, t
            qp = t["queue_pair"]
            assert qp["peer"] == "alive" and qp["peer_pid"] == other, qp
            assert qp["peer_commands"]["RDMA_WRITE"]["posted"] > 0, qp
            assert t["commands"]["LOCAL_WRITE"]["completed"] > 0, t
            assert qp["local"]["psn"].startswith("0x") and qp["remote"]["qpn"].startswith("0x"), qp
            assert isinstance(t["diagnosis"], str) and t["diagnosis"], t
        text = run(["-v", "-b", "sim"], {"COYOTE_BACKEND": "sim"}).stdout
        assert f"pid: {srv.pid}" in text and "queue_pair:" in text and "peer: alive" in text, text
    finally:
        for p in (cli, srv):
            p.kill()
            p.wait()


check_sim("", {"avx": True, "rdma": True, "tcp": False, "card_memory": True}, 1)
check_sim("avx=0,rdma=0,mem=0,n_fpga_reg=3", {"avx": False, "rdma": False, "card_memory": False}, 3)
check_hw()
check_problems()
check_live()
print("coyote-info: sim (two shells), hw on the fake driver and -v checked")
