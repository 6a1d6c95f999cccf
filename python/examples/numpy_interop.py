#!/usr/bin/env python3
"""pycoyote example: NumPy interoperability.

CoyoteBuffers implement the buffer protocol: np.asarray(buf) shares the buffer's memory (same address), so
NumPy code fills and reads the memory the vFPGA moves. Sizes are in elements: 16 int32 move 64 bytes."""
import os

import numpy as np

from pycoyote import CoyoteBuffer, CoyoteThread


def main():
    t = CoyoteThread(0, os.getpid())
    src = t.allocate_buffer(32, dtype="int32")
    dst = t.allocate_buffer(32, dtype="int32")
    a, b = np.asarray(src), np.asarray(dst)
    assert a.ctypes.data == src.addr(), "no copy: NumPy views the buffer"
    a[:] = np.arange(32, dtype=np.int32) ** 2
    b[:] = 0
    t.local_transfer(src, dst, 16, 16)  # 16 elements = 64 bytes
    while t.get_completed("local_transfer") < 1:
        pass
    print("dst:", dst)
    assert np.array_equal(b[:16], a[:16]) and not b[16:].any()

    # Memory NumPy owns, wrapped and mapped for the vFPGA.
    host = np.linspace(0, 1, 1000, dtype=np.float64)
    out = np.zeros_like(host)
    hb, ob = CoyoteBuffer(host.ctypes.data, host.size, "float64"), CoyoteBuffer(out.ctypes.data, out.size, "float64")
    t.map_buffer(hb)
    t.map_buffer(ob)
    t.clear_completed()
    t.local_transfer(hb, ob, host.size, out.size)
    while t.get_completed("local_transfer") < 1:
        pass
    assert np.array_equal(out, host)
    t.unmap_buffer(hb)
    t.unmap_buffer(ob)
    print("float64 through the vFPGA:", out[:4], "... ok")


if __name__ == "__main__":
    main()
