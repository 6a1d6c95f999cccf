"""CoyoteConn against a service started by the test (pycoyote_test_service on the sim backend): typed results,
argument marshalling and its errors, non-blocking tasks, the service's errors as exceptions with cConn's message."""
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import pycoyote
from pycoyote import CoyoteConn

ADD, SCALE, MIXED, THROWS, SLOW, BYTES = 1, 2, 3, 4, 5, 6
NAME = f"pycoyote-test-{os.getpid()}"


def start_service(directory, *extra, env=None):
    """Starts the test service; returns (process, what it listens on)."""
    tool = os.environ.get("PYCOYOTE_TEST_SIM_BITSTREAM")
    helper = os.environ.get("PYCOYOTE_TEST_SERVICE")
    assert tool and helper, "PYCOYOTE_TEST_SIM_BITSTREAM and PYCOYOTE_TEST_SERVICE must name the test tools"
    bits = str(directory / "app.bin")
    subprocess.run([tool, "--model", "passthrough", "-o", bits], check=True, capture_output=True)
    proc = subprocess.Popen([helper, NAME, "0", bits, *extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    line = proc.stdout.readline()
    assert line.startswith("ready "), f"the test service did not start: {line!r}"
    return proc, line.split(" ", 1)[1].strip()


def stop_service(proc):
    proc.stdin.close()  # the helper stops its service when its input closes
    assert proc.wait(timeout=60) == 0


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    proc, path = start_service(tmp_path_factory.mktemp("service"))
    yield path
    stop_service(proc)


@pytest.fixture
def conn(service):
    with CoyoteConn(service) as c:
        yield c


def test_typed_results(conn, service):
    assert conn.task(ADD, np.int32(2), np.int32(40), ret=np.int32) == 42
    assert conn.task(ADD, 2, -7, types=("int32", "int32"), ret="int32") == -5
    assert conn.task(SCALE, np.uint64(3), np.float64(0.5), ret=np.float64) == 1.5
    # int8, uint16, float32, int64 back to back: the arguments are packed without padding.
    got = conn.task(MIXED, -3, 65535, 7.9, 10**12, types=("int8", "uint16", "float32", "int64"), ret="int64")
    assert got == -3 * 1000000 + 65535 * 1000 + 7 + 10**12
    pair = np.array([5, 9], dtype=np.uint32).tobytes()  # a struct { uint32 a, b; } as raw bytes
    assert np.frombuffer(conn.task(BYTES, pair, ret=8), dtype=np.uint32).tolist() == [9, 14]
    assert CoyoteConn.for_service(NAME, vfid=0).task(ADD, np.int32(1), np.int32(1), ret="int32") == 2


def test_nonblocking_tasks(conn):
    slow = conn.itask(SLOW, np.int32(300), ret=np.int32)
    fast = [conn.iTask(ADD, np.int32(i), np.int32(i), ret="int32") for i in range(20)]
    assert not conn.is_task_completed(slow)
    with pytest.raises(pycoyote.InvalidArgumentError, match="not completed"):
        conn.get_task_return_value(slow)
    end = time.monotonic() + 30
    while not all(conn.isTaskCompleted(t) for t in fast + [slow]):
        assert time.monotonic() < end, "tasks did not complete"
        time.sleep(0.01)
    assert [conn.getTaskReturnValue(t) for t in fast] == [2 * i for i in range(20)]
    assert all(conn.release_task(t) for t in fast)  # a polling client forgets what it read
    with pytest.raises(pycoyote.InvalidArgumentError, match="unknown task id"):
        conn.get_task_return_value(fast[0])
    assert conn.get_task_return_value(slow) == 300
    assert conn.wait_task(slow) == 300
    with pytest.raises(pycoyote.InvalidArgumentError, match="unknown task id"):
        conn.wait_task(slow)
    # A forgotten or never-issued id is an error, not a False a polling loop would never leave.
    for gone in (slow, -5):
        with pytest.raises(pycoyote.InvalidArgumentError, match=f"unknown task id {gone}"):
            conn.is_task_completed(gone)


def test_marshalling_errors_send_nothing(conn):
    with pytest.raises(pycoyote.InvalidArgumentError, match="argument 0.*no C type"):
        conn.task(ADD, 1, 2, ret="int32")
    with pytest.raises(pycoyote.InvalidArgumentError, match="out of range for int8"):
        conn.task(MIXED, 200, 1, 1.0, 1, types=("int8", "uint16", "float32", "int64"), ret="int64")
    with pytest.raises(pycoyote.InvalidArgumentError, match="out of range for uint16"):
        conn.task(MIXED, 1, -1, 1.0, 1, types=("int8", "uint16", "float32", "int64"), ret="int64")
    with pytest.raises(pycoyote.InvalidArgumentError, match="out of range for float32"):
        conn.task(MIXED, 1, 1, 1e39, 1, types=("int8", "uint16", "float32", "int64"), ret="int64")
    with pytest.raises(pycoyote.InvalidArgumentError, match="not an integer"):
        conn.task(ADD, 1.5, 2, types=("int32", "int32"), ret="int32")
    with pytest.raises(pycoyote.InvalidArgumentError, match="2 types for 1 arguments"):
        conn.task(ADD, 1, types=("int32", "int32"), ret="int32")
    with pytest.raises(pycoyote.InvalidArgumentError, match="one dtype per argument"):
        conn.task(ADD, 1, types="int32", ret="int32")  # a string, not a sequence of types
    with pytest.raises(pycoyote.InvalidArgumentError, match="argument 0: an array of 2 elements"):
        conn.task(ADD, np.array([1, 2]), 3, types=("int32", "int32"), ret="int32")
    with pytest.raises(pycoyote.InvalidArgumentError, match="fid: 1099511627776 is out of the range"):
        conn.task(2**40, 1, 2, types=("int32", "int32"), ret="int32")
    with pytest.raises(pycoyote.InvalidArgumentError, match="not a fixed-size numeric"):
        conn.task(ADD, np.int32(1), np.int32(2), ret=object)
    with pytest.raises(pycoyote.InvalidArgumentError, match="return type is required"):
        conn.task(ADD, np.int32(1), np.int32(2), ret=None)  # np.dtype(None) would be float64
    with pytest.raises(pycoyote.InvalidArgumentError, match="function id must be an integer"):
        conn.task(float(ADD) + 0.9, np.int32(1), np.int32(2), ret="int32")
    with pytest.raises(pycoyote.InvalidArgumentError, match="byte order"):
        conn.task(ADD, 1, 2, types=(">i4", ">i4"), ret="int32")
    with pytest.raises(pycoyote.InvalidArgumentError, match="byte count"):
        conn.task(BYTES, b"12345678", ret=0)
    with pytest.raises(TypeError):
        conn.task(ADD, np.int32(1), np.int32(2))  # ret is required: its size decides the reply's length
    # Nothing reached the service: the connection is still in step.
    assert conn.task(ADD, np.int32(20), np.int32(22), ret="int32") == 42


def test_service_errors_raise_with_the_message(conn):
    with pytest.raises(pycoyote.RemoteRejectedError, match="failed \\(code 3\\)"):
        conn.task(THROWS, np.int32(0), ret="int32")
    with pytest.raises(pycoyote.InvalidArgumentError, match="code 1"):
        conn.task(99, np.int32(0), ret="int32")  # no function 99
    tid = conn.itask(THROWS, np.int32(0), ret="int32")
    end = time.monotonic() + 30
    while not conn.is_task_completed(tid):
        assert time.monotonic() < end
        time.sleep(0.01)
    with pytest.raises(pycoyote.RemoteRejectedError, match=f"task {tid}"):
        conn.get_task_return_value(tid)
    assert conn.task(ADD, np.int32(1), np.int32(2), ret="int32") == 3  # still usable


def test_connection_errors(service, tmp_path):
    with pytest.raises(pycoyote.PeerGoneError, match="is the service running"):
        CoyoteConn(str(tmp_path / "no-such-socket"))
    with pytest.raises(pycoyote.InvalidArgumentError, match="key file"):
        CoyoteConn.remote("127.0.0.1", 1, str(tmp_path / "no-key"))
    c = CoyoteConn(service)
    c.close()
    assert c.closed
    with pytest.raises(pycoyote.InvalidArgumentError, match="closed"):
        c.task(ADD, np.int32(1), np.int32(2), ret="int32")
    c.close()  # twice is fine


def run_example(*args):
    """examples/service_client.py against the running test service: (exit status, output)."""
    example = pathlib.Path(__file__).resolve().parents[1] / "examples" / "service_client.py"
    done = subprocess.run([sys.executable, str(example), *args], capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def test_example_service_client(service):
    for where in (["--socket", service], ["--name", NAME, "--vfid", "0"]):
        rc, out = run_example(*where, "--tasks", "24")
        assert rc == 0, out
        assert "add(40, 2) = 42; scale(1024, 0.5) = 512.0" in out
        assert "24 non-blocking add tasks: [0, 2, 6, 12, 20, 30, 42, 56]" in out
        assert "no function 99:" in out and "code 1" in out
        assert "refused before sending:" in out and "out of range for int32" in out
        assert out.rstrip().endswith("ok")
    rc, out = run_example("--name", f"{NAME}-absent")
    assert rc != 0 and "no service:" in out and "is the service running" in out


def test_remote_service_needs_the_key(tmp_path):
    key, wrong = tmp_path / "key", tmp_path / "wrong"
    key.write_text("s3cret-key\n")
    key.chmod(0o600)
    wrong.write_text("guess\n")
    with socket.socket() as s:  # a free port (released just before the service takes it)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, COYOTE_SERVICE_KEY_FILE=str(key), COYOTE_SERVICE_BIND="127.0.0.1")
    proc, _ = start_service(tmp_path, str(port), env=env)
    try:
        with CoyoteConn.remote("127.0.0.1", port, key) as conn:
            assert conn.task(ADD, np.int32(20), np.int32(22), ret="int32") == 42
            assert conn.task(SCALE, np.uint64(4), np.float64(2.5), ret="float64") == 10.0
        with pytest.raises(pycoyote.PeerGoneError, match="refused"):
            with CoyoteConn.remote("127.0.0.1", port, wrong) as intruder:
                intruder.task(ADD, np.int32(1), np.int32(1), ret="int32")
    finally:
        stop_service(proc)
