"""One side of the two-process RDMA test (test_rdma.py): python rdma_peer.py server|client PORT.

Prints one JSON line with this side's queue pair. Exits non-zero when a check fails."""
import json
import os
import sys
import time

import numpy as np

from pycoyote import CoyoteThread

N = 1024


def wait_completed(t, oper, n):
    end = time.monotonic() + 30
    while t.get_completed(oper) < n:
        if time.monotonic() > end:
            sys.exit(f"timeout waiting for {oper}")


def main():
    role, port = sys.argv[1], int(sys.argv[2])
    client = role == "client"
    t = CoyoteThread(0, os.getpid())
    buf = t.init_rdma(N, "int32", port, "127.0.0.1" if client else None)
    a = np.asarray(buf)
    assert buf.size() == N and buf.dtype() == "int32" and a.ctypes.data == buf.addr()
    a[:] = np.arange(N, dtype=np.int32) + (1000 if client else -100000)
    t.conn_sync(client)  # (1) both buffers filled
    if client:
        t.rdma_write(16, local_offs=4, remote_offs=8)  # 16 int32 = 64 bytes
        wait_completed(t, "rdma_write", 1)
    t.conn_sync(client)  # (2)
    if not client:
        expect = np.arange(N, dtype=np.int32) - 100000
        expect[8:24] = np.arange(4, 20, dtype=np.int32) + 1000
        assert np.array_equal(a, expect), "server buffer after the client's write"
        a[:] = 7
    t.conn_sync(client)  # (3)
    if client:
        t.clear_completed()
        t.rdma_read(32, local_offs=100, remote_offs=0)
        wait_completed(t, "rdma_read", 1)
        assert np.all(a[100:132] == 7) and a[99] == 1099 and a[132] == 1132, "client buffer after the read"
    t.conn_sync(client)  # (4)
    qp = t.get_qpair()
    t.arp_lookup("127.0.0.1")
    t.write_qp_context(18488)
    print(json.dumps(qp), flush=True)
    t.close_conn()


if __name__ == "__main__":
    main()
