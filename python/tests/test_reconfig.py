"""CoyoteReconfig on the sim backend: sim bitstreams (coyote-sim-bitstream) swap the user logic of an open vFPGA
and change the shell for vFPGAs opened later; bad files raise InvalidArgumentError with cRcnfg's message."""
import os
import subprocess
import time

import numpy as np
import pytest

import pycoyote

N = 256


@pytest.fixture(scope="module")
def tool():
    path = os.environ.get("PYCOYOTE_TEST_SIM_BITSTREAM")
    assert path and os.access(path, os.X_OK), "PYCOYOTE_TEST_SIM_BITSTREAM must name coyote-sim-bitstream"
    return path


def bitstream(tool, directory, name, *args):
    path = str(directory / name)
    subprocess.run([tool, *args, "-o", path], check=True, capture_output=True)
    return path


def adds_vectors(t):
    """Two-input float addition through the vFPGA (dest 0 + dest 1 -> dest 0): whether c == a + b."""
    a, b, c = (t.allocate_buffer(N, dtype="float32") for _ in range(3))
    x = np.arange(N, dtype=np.float32)
    np.asarray(a)[:] = x
    np.asarray(b)[:] = 2 * x
    np.asarray(c)[:] = -1
    t.local_read(a, N, dest=0)
    t.local_read(b, N, dest=1)
    t.local_write(c, N, dest=0)
    end = time.monotonic() + 10
    while t.get_completed("local_write") < 1:
        assert time.monotonic() < end, "local_write did not complete"
    t.clear_completed()
    sums = bool(np.array_equal(np.asarray(c), 3 * x))
    for buf in (a, b, c):
        t.free_buffer(buf)
    return sums


def test_reconfigure_app_swaps_the_model_of_an_open_vfpga(tool, tmp_path, monkeypatch):
    monkeypatch.setenv("COYOTE_SIM_MODEL", "passthrough")
    t = pycoyote.CoyoteThread(0, os.getpid())
    assert not adds_vectors(t)
    r = pycoyote.CoyoteReconfig()
    assert r.get_device() == 0
    r.reconfigure_app(bitstream(tool, tmp_path, "app_vadd.bin", "--model", "vadd"), 0)
    assert adds_vectors(t)
    r.reconfigure_app(path=bitstream(tool, tmp_path, "app_pass.bin", "--model", "passthrough"), vfid=0)
    assert not adds_vectors(t)
    assert r.get_reconfiguration_count() == 2
    import pathlib
    r.reconfigure_app(pathlib.Path(bitstream(tool, tmp_path, "app_vadd2.bin", "--model", "vadd")), 0)  # os.PathLike
    assert adds_vectors(t)
    t.close()


def test_bad_files_raise_with_the_message(tool, tmp_path):
    r = pycoyote.CoyoteReconfig(device=0)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    text = tmp_path / "text.bin"
    text.write_bytes(b"a" * 100)
    good = tmp_path / "good.bin"
    bitstream(tool, tmp_path, "good.bin", "--model", "vadd")
    cut = tmp_path / "cut.bin"
    cut.write_bytes(good.read_bytes()[:-1])
    shell = bitstream(tool, tmp_path, "shell.bin", "--shell", "--model", "vadd")
    cases = [(tmp_path / "missing.bin", "no such file"), (empty, "empty"), (text, "wrong magic"),
             (cut, "truncated"), (tmp_path, "not a regular file"), (shell, "shell bitstream")]
    for path, what in cases:
        with pytest.raises(pycoyote.InvalidArgumentError, match=what) as e:
            r.reconfigure_app(str(path), 0)
        assert str(path) in str(e.value)
        assert isinstance(e.value, pycoyote.CoyoteError) and isinstance(e.value, ValueError)
    with pytest.raises(pycoyote.InvalidArgumentError, match="app bitstream|application"):
        r.reconfigure_shell(str(good))
    with pytest.raises(TypeError):
        r.reconfigure_app(str(good), "zero")
    assert r.get_reconfiguration_count() == 0


def test_reconfigure_shell_applies_to_vfpgas_opened_later(tool, tmp_path, monkeypatch):
    monkeypatch.setenv("COYOTE_SIM_MODEL", "passthrough")
    r = pycoyote.CoyoteReconfig(0)
    r.reconfigure_shell(bitstream(tool, tmp_path, "shell_vadd.bin", "--shell", "--model", "vadd",
                                  "--shell-config", "n_fpga_reg=2"))
    t = pycoyote.CoyoteThread(1, os.getpid())  # vFPGA 1 exists only with the new shell
    assert adds_vectors(t)
    t.close()
    # Written unchecked: the tool itself refuses the key; the load must refuse it too.
    bad = bitstream(tool, tmp_path, "shell_bad.bin", "--unchecked", "--shell", "--shell-config", "no_such_key=1")
    with pytest.raises(pycoyote.InvalidArgumentError, match="no_such_key"):
        r.reconfigure_shell(bad)
