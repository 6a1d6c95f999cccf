"""pycoyote RDMA: init_rdma between two processes on loopback, rdma_write / rdma_read in elements, conn_sync,
get_qpair, and the errors of RDMA calls without a connection."""
import json
import os
import socket
import subprocess
import sys

import pytest

from pycoyote import CoyoteThread, InvalidArgumentError

PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rdma_peer.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_write_and_read():
    port = str(free_port())
    env = dict(os.environ, COYOTE_BACKEND="sim", COYOTE_OOB_CONNECT_TIMEOUT_MS="20000",
               COYOTE_OOB_ACCEPT_TIMEOUT_MS="20000", COYOTE_OOB_IO_TIMEOUT_MS="30000")
    server = subprocess.Popen([sys.executable, PEER, "server", port], env=env, stdout=subprocess.PIPE, text=True)
    client = subprocess.Popen([sys.executable, PEER, "client", port], env=env, stdout=subprocess.PIPE, text=True)
    out_c, _ = client.communicate(timeout=120)
    out_s, _ = server.communicate(timeout=120)
    assert server.returncode == 0 and client.returncode == 0
    qs, qc = json.loads(out_s.splitlines()[-1]), json.loads(out_c.splitlines()[-1])
    assert qs["local"]["qpn"] == qc["remote"]["qpn"] and qc["local"]["qpn"] == qs["remote"]["qpn"]
    assert qs["local"]["rkey"] == qc["remote"]["rkey"] and qs["local"]["vaddr"] == qc["remote"]["vaddr"]
    assert qs["local"]["size"] == 4096
    assert set(qs["local"]) >= {"qpn", "psn", "rkey", "vaddr", "ip", "ip_addr", "size"}


def test_rdma_without_connection():
    t = CoyoteThread(0, os.getpid())
    with pytest.raises(InvalidArgumentError, match="init_rdma"):
        t.rdma_write(16)
    with pytest.raises(InvalidArgumentError, match="init_rdma"):
        t.rdma_read(16)
    assert t.get_qpair() is None or isinstance(t.get_qpair(), dict)
    with pytest.raises(InvalidArgumentError, match="IPv4"):
        t.arp_lookup("not-an-ip")
    with pytest.raises(InvalidArgumentError, match="dtype"):
        t.init_rdma(16, "bogus", 1)
    with pytest.raises(InvalidArgumentError, match="positive"):
        t.init_rdma(0, "int32", 1)


def test_rdma_bounds_in_elements():
    """A one-process check of the bounds: a connection to itself is not needed to reject a bad range."""
    port = str(free_port())
    env = dict(os.environ, COYOTE_BACKEND="sim")
    code = (
        "import os, sys\n"
        "from pycoyote import CoyoteThread, InvalidArgumentError\n"
        "t = CoyoteThread(0, os.getpid())\n"
        f"buf = t.init_rdma(256, 'float64', {port}, '127.0.0.1' if sys.argv[1] == 'c' else None)\n"
        "for kw, says in ((dict(size=257), 'exceeds'), (dict(size=1, local_offs=256), 'local offset 256'),\n"
        "                  (dict(size=-1), 'negative element'),\n"
        "                  (dict(size=1, local_offs=-1), 'negative local offset -1'),\n"
        "                  (dict(size=1, remote_offs=-2), 'negative remote offset -2')):\n"
        "    try:\n"
        "        t.rdma_write(**kw)\n"
        "        sys.exit('accepted ' + repr(kw))\n"
        "    except InvalidArgumentError as e:\n"
        "        if says not in str(e):\n"
        "            sys.exit(f'{kw}: {e}')\n"
        "try:\n"
        "    t.free_buffer(buf)\n"
        "    sys.exit('free_buffer accepted the RDMA buffer')\n"
        "except InvalidArgumentError as e:\n"
        "    if 'RDMA buffer of init_rdma' not in str(e):\n"
        "        sys.exit(str(e))\n"
        "t.conn_sync(sys.argv[1] == 'c')\n"
    )
    s = subprocess.Popen([sys.executable, "-c", code, "s"], env=env)
    c = subprocess.Popen([sys.executable, "-c", code, "c"], env=env)
    assert c.wait(timeout=120) == 0 and s.wait(timeout=120) == 0


def test_remote_offsets_past_the_local_buffer_and_a_second_init_rdma():
    """The peer's buffer may be larger than ours: a remote offset past our own size is valid (it was refused). A
    second init_rdma of another size replaces the buffer: refused while arrays view the old one, which is invalid
    afterwards (it was freed under its views: SIGSEGV) and freed; one of the same size keeps it."""
    ports = [str(free_port()), str(free_port())]
    env = dict(os.environ, COYOTE_BACKEND="sim")
    code = (
        "import os, sys, time\n"
        "import numpy as np\n"
        "from pycoyote import CoyoteThread, InvalidArgumentError\n"
        "client = sys.argv[1] == 'c'\n"
        "addr = '127.0.0.1' if client else None\n"
        "t = CoyoteThread(0, os.getpid())\n"
        "buf = t.init_rdma(16 if client else 1024, 'int32', int(sys.argv[2]), addr)\n"
        "a = np.asarray(buf)\n"
        "a[:] = np.arange(a.size, dtype=np.int32) + (100 if client else 0)\n"
        "t.conn_sync(client)\n"
        "if client:\n"
        "    t.rdma_write(4, local_offs=0, remote_offs=1000)\n"
        "    end = time.monotonic() + 30\n"
        "    while t.get_completed('rdma_write') < 1 and time.monotonic() < end: pass\n"
        "t.conn_sync(client)\n"
        "if not client and list(a[1000:1004]) != [100, 101, 102, 103]:\n"
        "    sys.exit(f'server: {a[998:1006]}')\n"
        "if client:\n"
        "    try:\n"
        "        t.init_rdma(64, 'int32', int(sys.argv[3]), addr)\n"
        "        sys.exit('a second init_rdma freed the buffer under a view')\n"
        "    except InvalidArgumentError as e:\n"
        "        if 'previous init_rdma' not in str(e): sys.exit(str(e))\n"
        "    del a\n"
        "buf2 = t.init_rdma(64 if client else 1024, 'int32', int(sys.argv[3]), addr)\n"
        "if client:\n"
        "    if buf.is_valid() or not buf2.is_valid(): sys.exit('the old RDMA buffer is still valid')\n"
        "    try:\n"
        "        np.asarray(buf)\n"
        "        sys.exit('the old RDMA buffer can still be viewed')\n"
        "    except InvalidArgumentError:\n"
        "        pass\n"
        "    import glob\n"
        "    bufs = glob.glob(f'/dev/shm/coyote-sim.{os.getuid()}.{os.getpid()}.*.buf*')\n"
        "    if len(bufs) != 1: sys.exit(f'the replaced RDMA buffer was not freed: {bufs}')\n"
        "elif not buf.is_valid() or buf2.addr() != buf.addr() or a[1001] != 101:\n"
        "    sys.exit('init_rdma of the same size did not keep the buffer')\n"
        "t.conn_sync(client)\n"
    )
    s = subprocess.Popen([sys.executable, "-c", code, "s", *ports], env=env)
    c = subprocess.Popen([sys.executable, "-c", code, "c", *ports], env=env)
    assert c.wait(timeout=120) == 0 and s.wait(timeout=120) == 0


def test_example_client_server():
    example = os.path.join(os.path.dirname(PEER), "..", "examples", "rdma_client_server.py")
    port = str(free_port())
    env = dict(os.environ, COYOTE_BACKEND="sim")
    server = subprocess.Popen([sys.executable, example, "--port", port, "--count", "1000"], env=env,
                              stdout=subprocess.PIPE, text=True)
    client = subprocess.Popen([sys.executable, example, "--server", "127.0.0.1", "--port", port, "--count", "1000"],
                              env=env, stdout=subprocess.PIPE, text=True)
    out_c, _ = client.communicate(timeout=120)
    out_s, _ = server.communicate(timeout=120)
    assert client.returncode == 0 and server.returncode == 0
    assert "received the client's data: True" in out_s and "read back the doubled data: True" in out_c
