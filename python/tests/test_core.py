"""pycoyote core: CoyoteBuffer, CoyoteThread and their errors on the sim backend (single process)."""
import gc
import os
import sys
import threading
import time

import numpy as np
import pytest

import pycoyote
from pycoyote import CoyoteBuffer, CoyoteThread, CoyoteError, InvalidArgumentError, NotMappedError

DTYPES = {
    "bool": np.bool_, "char": np.dtype("S1"), "int8": np.int8, "uint8": np.uint8, "int16": np.int16,
    "uint16": np.uint16, "int": np.int32, "int32": np.int32, "uint": np.uint32, "uint32": np.uint32,
    "int64": np.int64, "uint64": np.uint64, "long": np.int_, "float16": np.float16, "float32": np.float32,
    "float64": np.float64,
}


@pytest.fixture
def thread():
    t = CoyoteThread(0, os.getpid())
    yield t
    del t
    gc.collect()


def wait_completed(t, oper, n, timeout=10.0):
    end = time.monotonic() + timeout
    while t.get_completed(oper) < n:
        assert time.monotonic() < end, f"{oper}: {t.get_completed(oper)} of {n} completions"
    return t.get_completed(oper)


# ---- CoyoteBuffer ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(DTYPES))
def test_buffer_dtype_format_and_zero_copy(thread, name):
    buf = thread.allocate_buffer(8, dtype=name)
    arr = np.asarray(buf)
    assert arr.dtype == np.dtype(DTYPES[name])
    assert arr.shape == (8,) and len(buf) == 8 and buf.size() == 8
    assert buf.dtype() == {"int": "int32", "uint": "uint32"}.get(name, name)
    assert arr.ctypes.data == buf.addr()
    view = np.array(buf, copy=False)
    assert view.ctypes.data == buf.addr()
    mv = memoryview(buf)
    assert mv.itemsize == arr.itemsize and mv.nbytes == 8 * arr.itemsize and not mv.readonly


def test_buffer_shares_memory_both_ways(thread):
    buf = thread.allocate_buffer(16, dtype="float32")
    arr = np.asarray(buf)
    arr[:] = np.arange(16, dtype=np.float32) / 2
    assert buf[3] == 1.5
    buf[4] = 7.25
    assert arr[4] == 7.25
    assert list(buf)[:5] == [0.0, 0.5, 1.0, 1.5, 7.25]
    assert np.array_equal(buf[2:4], np.array([1.0, 1.5], dtype=np.float32))
    assert "CoyoteBuffer(" in repr(buf) and "float32" in repr(buf)


def test_buffer_wraps_existing_memory():
    backing = np.arange(10, dtype=np.int64)
    buf = CoyoteBuffer(backing.ctypes.data, 10, "int64")
    assert buf.addr() == backing.ctypes.data
    assert np.asarray(buf).ctypes.data == backing.ctypes.data
    buf[2] = 99
    assert backing[2] == 99
    assert CoyoteBuffer(backing.ctypes.data, 4).dtype() == "float32"  # pyCoyote's default


def test_buffer_errors():
    with pytest.raises(InvalidArgumentError, match="unknown dtype"):
        CoyoteBuffer(4096, 4, "complex128")
    with pytest.raises(ValueError, match="negative"):  # InvalidArgumentError is a ValueError too
        CoyoteBuffer(4096, -1, "int32")
    with pytest.raises(CoyoteError, match="null address"):
        CoyoteBuffer(0, 4, "int32")
    with pytest.raises(IndexError):
        CoyoteBuffer(np.zeros(2).ctypes.data, 2, "float64")[5]


# ---- allocation and data movement --------------------------------------------------------------

@pytest.mark.parametrize("alloc", ["reg", "thp", "hpf"])
def test_local_transfer_counts_elements(thread, alloc):
    src = thread.allocate_buffer(32, alloc, "int32")
    dst = thread.allocate_buffer(32, alloc, "int32")
    np.asarray(src)[:] = np.arange(32, dtype=np.int32) + 100
    np.asarray(dst)[:] = -1
    thread.clear_completed()
    thread.local_transfer(src, dst, 16, 16)  # 16 int32 = 64 bytes
    wait_completed(thread, "local_transfer", 1)
    d = np.asarray(dst)
    assert np.array_equal(d[:16], np.arange(16, dtype=np.int32) + 100)
    assert np.all(d[16:] == -1), "only 64 bytes moved"


def test_local_read_then_write(thread):
    src = thread.allocate_buffer(100, dtype="float64")
    dst = thread.allocate_buffer(100, dtype="float64")
    np.asarray(src)[:] = np.linspace(0, 1, 100)
    thread.clear_completed()
    thread.local_read(src, 100)
    thread.local_write(dst, 100)
    wait_completed(thread, "local_read", 1)
    wait_completed(thread, "local_write", 1)
    assert np.array_equal(np.asarray(dst), np.asarray(src))
    thread.clear_completed()
    assert thread.get_completed("local_read") == 0 and thread.get_completed("local_write") == 0


def test_local_transfer_keeps_each_sides_stream(thread):
    """pyCoyote took the destination stream from src_stream; here dst_stream is the destination's own."""
    src = thread.allocate_buffer(8, dtype="int32")
    dst = thread.allocate_buffer(8, dtype="int32")
    with pytest.raises(InvalidArgumentError, match="stream 'bogus'"):
        thread.local_transfer(src, dst, 8, 8, src_stream="host", dst_stream="bogus")


def test_data_path_errors(thread):
    buf = thread.allocate_buffer(16, dtype="int32")
    with pytest.raises(InvalidArgumentError, match="negative"):
        thread.local_read(buf, -1)
    with pytest.raises(InvalidArgumentError, match="holds 16"):
        thread.local_read(buf, 17)
    with pytest.raises(InvalidArgumentError, match="exceed"):
        thread.local_write(buf, 2**40)
    with pytest.raises(InvalidArgumentError, match="stream"):
        thread.local_read(buf, 4, stream="fpga")
    with pytest.raises(InvalidArgumentError, match="dest"):
        thread.local_read(buf, 4, dest=16)
    with pytest.raises(InvalidArgumentError, match="unknown operation"):
        thread.get_completed("local_copy")
    with pytest.raises(InvalidArgumentError, match="alloc_type"):
        thread.allocate_buffer(4, "huge")
    with pytest.raises(InvalidArgumentError, match="positive"):
        thread.allocate_buffer(0)
    with pytest.raises(InvalidArgumentError, match="negative"):
        thread.allocate_buffer(-3)
    with pytest.raises(TypeError):
        thread.local_read(np.zeros(4), 4)  # a CoyoteBuffer is required
    # None is no flag: as False it left the completion unsignalled (a wait for it never ended) or made a client
    # sync as the server.
    with pytest.raises(TypeError, match="last"):
        thread.local_read(buf, 4, last=None)
    with pytest.raises(TypeError, match="last"):
        thread.local_transfer(buf, buf, 4, 4, last=None)
    with pytest.raises(TypeError, match="client"):
        thread.conn_sync(None)


def test_gpu_allocation_is_a_clear_error(thread):
    with pytest.raises(CoyoteError, match="(?i)gpu"):
        thread.allocate_buffer(16, "gpu")


def test_sync_and_offload(thread):
    buf = thread.allocate_buffer(1024, dtype="uint8")
    np.asarray(buf)[:] = 7
    try:
        thread.offload(buf, 1024)
        np.asarray(buf)[:] = 0
        thread.sync(buf, 1024)
        assert np.all(np.asarray(buf) == 7)
    except pycoyote.NotSupportedError as e:  # a shell without card memory
        assert "memory" in str(e).lower() or "support" in str(e).lower()
    with pytest.raises(InvalidArgumentError):
        thread.sync(buf, 2048)


def test_buffer_of_another_thread(thread):
    other = CoyoteThread(0, os.getpid())
    theirs = other.allocate_buffer(8, dtype="int32")
    mine = thread.allocate_buffer(8, dtype="int32")
    with pytest.raises(InvalidArgumentError, match="another CoyoteThread"):
        thread.local_transfer(theirs, mine, 8, 8)
    with pytest.raises(InvalidArgumentError):
        thread.free_buffer(theirs)


def test_map_wrapped_memory(thread):
    backing = np.arange(1024, dtype=np.int32)
    out = np.zeros(1024, dtype=np.int32)
    a = CoyoteBuffer(backing.ctypes.data, 1024, "int32")
    b = CoyoteBuffer(out.ctypes.data, 1024, "int32")
    thread.map_buffer(a)
    thread.map_buffer(b)
    thread.clear_completed()
    thread.local_transfer(a, b, 1024, 1024)
    wait_completed(thread, "local_transfer", 1)
    assert np.array_equal(out, backing)
    thread.unmap_buffer(a)
    thread.unmap_buffer(b)


# ---- registers, getters, lock, debug --------------------------------------------------------------

def test_csrs_and_getters(thread):
    thread.set_csr(0x1234, 0)
    assert isinstance(thread.get_csr(0), int)
    assert thread.get_vfid() == 0
    assert 0 <= thread.get_ctid() < 64
    assert thread.get_hpid() == os.getpid()
    for hpid in (1 << 40, (1 << 32) + 5, -1):  # would be cut to a pid_t
        with pytest.raises(pycoyote.InvalidArgumentError, match="hpid"):
            pycoyote.CoyoteThread(0, hpid)
    assert thread.backend_name() == "sim"
    with pytest.raises(InvalidArgumentError, match="set_csr: value -1"):
        thread.set_csr(-1, 0)  # a 64-bit unsigned value
    # Out-of-range unsigned arguments name themselves (not pybind11's "incompatible function arguments").
    for call, says in ((lambda: thread.get_csr(-1), "get_csr: offset -1"), (lambda: thread.set_csr(1, -1), "offset -1"),
                       (lambda: thread.init_rdma(16, "int32", 70000), "port 70000"),
                       (lambda: thread.write_qp_context(-1), "port -1"),
                       (lambda: pycoyote.CoyoteReconfig(-1), "device -1"),
                       (lambda: CoyoteThread(0, os.getpid(), device=-2), "device -2")):
        with pytest.raises(InvalidArgumentError, match=says):
            call()


def test_ctids_differ(thread):
    other = CoyoteThread(0, os.getpid())
    assert other.get_ctid() != thread.get_ctid()


def test_lock_unlock(thread):
    thread.lock()
    thread.unlock()


def test_close_refuses_while_another_python_thread_is_in_a_call():
    # lock() waits without the GIL; closing the thread under it would free the cThread it still uses.
    holder, waiter = CoyoteThread(0, os.getpid(), 3), CoyoteThread(0, os.getpid(), 3)
    holder.lock()
    done = []
    worker = threading.Thread(target=lambda: (waiter.lock(), done.append(True)))
    worker.start()
    time.sleep(0.2)  # the worker waits in lock()
    with pytest.raises(InvalidArgumentError, match="still run in other Python threads"):
        waiter.close()
    holder.unlock()
    worker.join(timeout=30)
    assert done == [True]
    waiter.unlock()
    waiter.close()  # nothing runs now
    holder.close()


def test_print_debug(thread, capfd):
    thread.print_debug()
    out, err = capfd.readouterr()
    assert len(out) + len(err) > 0


def test_bad_device():
    with pytest.raises(CoyoteError):
        CoyoteThread(-5, os.getpid())


# ---- lifetime ------------------------------------------------------------------------------------

def test_buffer_keeps_thread_alive():
    t = CoyoteThread(0, os.getpid())
    src = t.allocate_buffer(64, dtype="uint16")
    dst = t.allocate_buffer(64, dtype="uint16")
    refs = sys.getrefcount(src)
    del t
    gc.collect()
    np.asarray(src)[:] = 5
    assert np.all(np.asarray(src) == 5)
    assert sys.getrefcount(src) == refs


def test_close_invalidates_buffers():
    t = CoyoteThread(0, os.getpid())
    buf = t.allocate_buffer(16, dtype="int32")
    view = np.asarray(buf)
    with pytest.raises(InvalidArgumentError, match="still view"):
        t.close()
    del view
    t.close()
    assert not buf.is_valid()
    with pytest.raises(InvalidArgumentError, match="freed"):
        buf.addr()
    with pytest.raises(InvalidArgumentError, match="freed"):
        buf[0]
    with pytest.raises(BufferError):
        memoryview(buf)
    with pytest.raises((BufferError, CoyoteError)):  # NumPy falls back to iteration, which raises
        np.asarray(buf)
    with pytest.raises(InvalidArgumentError, match="closed"):
        t.get_ctid()
    with pytest.raises(InvalidArgumentError, match="closed"):
        t.allocate_buffer(4)
    assert "freed" in repr(buf)
    t.close()  # twice is fine


def test_free_buffer():
    with CoyoteThread(0, os.getpid()) as t:
        buf = t.allocate_buffer(16, dtype="int32")
        other = t.allocate_buffer(16, dtype="int32")
        t.free_buffer(buf)
        with pytest.raises(InvalidArgumentError, match="freed"):
            t.local_read(buf, 16)
        with pytest.raises(InvalidArgumentError):
            t.free_buffer(buf)
        t.local_read(other, 16)
    with pytest.raises(InvalidArgumentError):
        t.get_vfid()


def test_many_threads_and_buffers_release_cleanly():
    for _ in range(20):
        t = CoyoteThread(0, os.getpid())
        bufs = [t.allocate_buffer(1024, dtype="float32") for _ in range(4)]
        del t, bufs
    gc.collect()


# ---- interrupts ----------------------------------------------------------------------------------

@pytest.mark.skipif("PYCOYOTE_TEST_SIM_PLUGIN" not in os.environ, reason="needs the sim model plug-in")
def test_interrupt_runs_python_callback(monkeypatch):
    monkeypatch.setenv("COYOTE_SIM_MODEL", os.environ["PYCOYOTE_TEST_SIM_PLUGIN"])
    got = []
    done = threading.Event()

    def on_interrupt(value):
        got.append((value, threading.get_ident()))
        done.set()

    t = CoyoteThread(0, os.getpid(), 41, on_interrupt)
    t.set_csr(t.get_ctid(), 2)  # the plug-in raises the interrupt for the ctid in CSR 2 ...
    t.set_csr(77, 1)            # ... with the value written to CSR 1
    assert done.wait(10.0)
    assert got[0][0] == 77
    assert got[0][1] != threading.get_ident(), "delivered on the runtime's interrupt thread"
    t.close()


def test_interrupt_callback_must_be_callable():
    with pytest.raises(InvalidArgumentError, match="callable"):
        CoyoteThread(0, os.getpid(), 0, 42)


def test_blocking_calls_release_the_gil():
    """b.lock() blocks in another Python thread while the main thread keeps running Python and unlocks."""
    a = CoyoteThread(0, os.getpid())
    b = CoyoteThread(0, os.getpid())
    a.lock()
    got = threading.Event()

    def worker():
        b.lock()
        got.set()
        b.unlock()

    th = threading.Thread(target=worker)
    th.start()
    time.sleep(0.2)
    assert not got.is_set(), "b waits for a's lock"
    a.unlock()  # reachable only if b.lock() released the GIL
    th.join(10)
    assert got.is_set()


def test_interrupt_callback_exception_is_reported_not_raised(monkeypatch):
    if "PYCOYOTE_TEST_SIM_PLUGIN" not in os.environ:
        pytest.skip("needs the sim model plug-in")
    monkeypatch.setenv("COYOTE_SIM_MODEL", os.environ["PYCOYOTE_TEST_SIM_PLUGIN"])
    calls = []
    seen = threading.Event()

    def bad_callback(value):
        calls.append(value)
        seen.set()
        raise RuntimeError("from the callback")

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(u))
    t = CoyoteThread(0, os.getpid(), 42, bad_callback)
    t.set_csr(t.get_ctid(), 2)
    t.set_csr(5, 1)
    assert seen.wait(10.0)
    t.set_csr(6, 1)  # the interrupt thread survived the exception
    end = time.monotonic() + 10
    while len(calls) < 2 and time.monotonic() < end:
        time.sleep(0.01)
    assert calls == [5, 6]
    t.close()
    assert any("from the callback" in str(u.exc_value) for u in unraisable)


@pytest.mark.skipif("PYCOYOTE_TEST_SIM_PLUGIN" not in os.environ, reason="needs the sim model plug-in")
def test_a_callback_that_does_not_return_delays_close_and_exit_only_until_the_deadline():
    """close() and interpreter exit waited forever for a callback stuck in time.sleep (Ctrl-C did not help); now
    they wait COYOTE_HANDLER_WAIT_MS, warn, and go on."""
    import subprocess
    code = (
        "import os, sys, threading, time, pycoyote\n"
        "entered = threading.Event()\n"
        "def cb(v):\n"
        "    entered.set()\n"
        "    time.sleep(1000)\n"
        "t = pycoyote.CoyoteThread(0, os.getpid(), 44, cb)\n"
        "t.set_csr(t.get_ctid(), 2)\n"
        "t.set_csr(5, 1)\n"
        "assert entered.wait(10)\n"
        "start = time.monotonic()\n"
        "t.close()\n"
        "print('closed after %.1f s' % (time.monotonic() - start), flush=True)\n"
        "t2 = pycoyote.CoyoteThread(0, os.getpid(), 45, cb)\n"
        "t2.set_csr(t2.get_ctid(), 2)\n"
        "t2.set_csr(6, 1)\n"
    )
    env = dict(os.environ, COYOTE_SIM_MODEL=os.environ["PYCOYOTE_TEST_SIM_PLUGIN"], COYOTE_HANDLER_WAIT_MS="500")
    p = subprocess.run([sys.executable, "-c", code], env=env, timeout=60, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "closed after" in p.stdout and "did not return within COYOTE_HANDLER_WAIT_MS" in p.stderr, p.stderr


@pytest.mark.skipif("PYCOYOTE_TEST_SIM_PLUGIN" not in os.environ, reason="needs the sim model plug-in")
def test_exit_with_live_interrupt_thread_and_buffers():
    import subprocess
    code = (
        "import os, pycoyote\n"
        "t = pycoyote.CoyoteThread(0, os.getpid(), 43, lambda v: None)\n"
        "buf = t.allocate_buffer(64)\n"
        "t.set_csr(t.get_ctid(), 2)\n"
        "for v in range(50):\n"
        "    t.set_csr(v, 1)\n"
    )
    env = dict(os.environ, COYOTE_SIM_MODEL=os.environ["PYCOYOTE_TEST_SIM_PLUGIN"])
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=60).returncode == 0


def test_wrapping_an_array_keeps_it_alive_and_bad_memory_is_refused():
    """CoyoteBuffer(array) keeps the array alive (a wrapped address lost its memory to the garbage collector while a
    write into it was pending); a bare address that is not readable memory is refused at once (repr crashed), and a
    wrapped address whose memory went away is refused at its next use (SIGSEGV)."""
    a = np.arange(1 << 12, dtype=np.int32)
    b = CoyoteBuffer(a)
    addr = a.ctypes.data
    assert b.addr() == addr and b.size() == a.size and b.dtype() == "int32"
    del a
    gc.collect()
    assert np.asarray(b)[5] == 5 and b.addr() == addr
    for bad, says in ((np.frombuffer(bytes(16), dtype=np.int32), "read-only"),
                      (np.arange(16, dtype=np.int32)[::2], "C-contiguous"),
                      (np.arange(4, dtype=">i4"), "byte order")):
        with pytest.raises(InvalidArgumentError, match=says):
            CoyoteBuffer(bad)
    with pytest.raises(NotMappedError, match="not readable memory"):
        CoyoteBuffer(0x1000, 16, "int32")
    t = CoyoteThread(0, os.getpid())
    big = t.allocate_buffer(1 << 20, dtype="int32")
    w = CoyoteBuffer(big.addr(), 16, "int32")
    t.close()
    assert "not readable" in repr(w)
    with pytest.raises(BufferError, match="no longer readable"):
        np.asarray(w)


def test_integers_out_of_range_are_invalid_argument_errors_naming_them():
    """They were pybind11's TypeError ("incompatible function arguments") with a signature dump."""
    t = CoyoteThread(0, os.getpid())
    b = t.allocate_buffer(16, dtype="int32")
    cases = ((lambda: t.set_csr(-1, 0), "value -1"), (lambda: t.set_csr(2**64, 0), "value 18446744073709551616"),
             (lambda: t.set_csr(np.int64(-3), 0), "value -3"), (lambda: t.local_read(b, 2**70), "does not fit"),
             (lambda: CoyoteThread(2**40, os.getpid()), "vfid"), (lambda: CoyoteBuffer(-8, 4), "addr -8"),
             (lambda: t.get_csr(2**64), "does not fit"))
    for call, says in cases:
        with pytest.raises(InvalidArgumentError, match=says):
            call()
    t.set_csr(2**64 - 1, 0)  # the whole unsigned range is a value
    with pytest.raises(TypeError):
        t.set_csr(1.5, 0)  # a float is no integer
    t.close()


def test_a_with_block_that_raises_keeps_its_own_exception_when_arrays_view_the_buffers():
    """A with block ending in an exception while NumPy arrays still viewed a buffer raised the close refusal
    instead ("During handling of the above exception...")."""
    with pytest.raises(KeyError, match="mine"):
        with CoyoteThread(0, os.getpid()) as t:
            view = np.asarray(t.allocate_buffer(16, dtype="int32"))
            raise KeyError("mine")
    view[0] = 1  # the thread stayed open: the memory is still there
    del view
    t.close()
    with pytest.raises(InvalidArgumentError, match="still view"):  # without an exception the refusal is raised
        with CoyoteThread(0, os.getpid()) as t2:
            view2 = np.asarray(t2.allocate_buffer(16, dtype="int32"))
    del view2
    t2.close()
