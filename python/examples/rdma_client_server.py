#!/usr/bin/env python3
"""pycoyote example: RDMA between two processes (Coyote's perf_rdma pattern).

    python3 rdma_client_server.py                      # server, waits for a client on --port
    python3 rdma_client_server.py --server 127.0.0.1   # client: writes, then reads back

init_rdma sets up the queue pair over Coyote's stock TCP out-of-band exchange and returns the RDMA buffer;
rdma_write / rdma_read count elements of the dtype given to init_rdma."""
import argparse
import os
import sys

import numpy as np

from pycoyote import CoyoteThread


def wait(t, oper, n=1):
    while t.get_completed(oper) < n:
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default=None, help="server address (client mode); none: act as server")
    ap.add_argument("--port", type=int, default=18488)
    ap.add_argument("--count", type=int, default=4096, help="float32 elements to move")
    args = ap.parse_args()
    client = args.server is not None

    t = CoyoteThread(0, os.getpid())
    buf = t.init_rdma(args.count, "float32", args.port, args.server)
    a = np.asarray(buf)
    a[:] = np.arange(args.count, dtype=np.float32) * (1 if client else -1)
    t.conn_sync(client)
    if client:
        t.rdma_write(args.count)  # our buffer -> the server's
        wait(t, "rdma_write")
    t.conn_sync(client)
    if not client:
        ok = np.array_equal(a, np.arange(args.count, dtype=np.float32))
        print("server: received the client's data:", ok)
        a *= 2
    t.conn_sync(client)
    if client:
        t.clear_completed()
        t.rdma_read(args.count)  # the server's buffer -> ours
        wait(t, "rdma_read")
        ok = np.array_equal(a, 2 * np.arange(args.count, dtype=np.float32))
        print("client: read back the doubled data:", ok)
    t.conn_sync(client)
    print("queue pair:", t.get_qpair()["local"])
    t.close_conn()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
