#!/usr/bin/env python3
"""pycoyote example: a client of a running Coyote background service (CoyoteConn over cConn; beyond pyCoyote).

Starts nothing itself: it connects to a service (C++ coyote::cService, docs/service.md) that registered

    fid 1: cFunc<int32_t, int32_t, int32_t>   (x + y)
    fid 2: cFunc<double, uint64_t, double>    (n * x)

as pycoyote's test service does. On the sim backend, from the build tree:

    build/tools/coyote-sim-bitstream --model passthrough -o /tmp/app.bin
    COYOTE_BACKEND=sim build/python/pycoyote_test_service demo 0 /tmp/app.bin   # prints "ready <socket>"
    COYOTE_BACKEND=sim PYTHONPATH=build/python /usr/bin/python3 python/examples/service_client.py --name demo

(the test service runs until its standard input closes: Ctrl-D). Choose the service by socket path (--socket), by name and
vFPGA (--name, --vfid, --device), or a remote one (--remote HOST:PORT --key-file FILE, the key the service
reads from COYOTE_SERVICE_KEY_FILE). Arguments carry their C types: NumPy scalars, or plain numbers with types=.
"""
import argparse
import time

import numpy as np

import pycoyote
from pycoyote import CoyoteConn

ADD, SCALE = 1, 2


def connect(args):
    if args.socket:
        return CoyoteConn(args.socket)
    if args.remote:
        host, _, port = args.remote.rpartition(":")
        if not host or not port.isdigit():
            raise SystemExit(f"--remote wants HOST:PORT, got {args.remote!r}")
        if not args.key_file:
            raise SystemExit("--remote needs --key-file (the service's key)")
        return CoyoteConn.remote(host, int(port), args.key_file)
    return CoyoteConn.for_service(args.name, vfid=args.vfid, device=args.device)


def run(conn, count):
    # Blocking tasks: the return type decides how many bytes the reply carries.
    total = conn.task(ADD, np.int32(40), np.int32(2), ret=np.int32)
    scaled = conn.task(SCALE, 1024, 0.5, types=("uint64", "float64"), ret="float64")
    print(f"add(40, 2) = {total}; scale(1024, 0.5) = {scaled}")
    assert total == 42 and scaled == 512.0

    # Non-blocking tasks: submit them all, then collect the results.
    tids = [conn.itask(ADD, i, i * i, types=("int32", "int32"), ret="int32") for i in range(count)]
    deadline = time.monotonic() + 30
    while not all(conn.is_task_completed(t) for t in tids):
        if time.monotonic() > deadline:
            raise SystemExit("the service did not complete the tasks within 30 s")
        time.sleep(0.001)
    results = [conn.get_task_return_value(t) for t in tids]
    print(f"{count} non-blocking add tasks:", results[:8], "..." if count > 8 else "")
    assert results == [i + i * i for i in range(count)]

    # The service's errors are exceptions carrying cConn's message; the connection stays usable.
    try:
        conn.task(99, np.int32(0), ret="int32")
    except pycoyote.InvalidArgumentError as e:
        print("no function 99:", e)
    else:
        raise SystemExit("the service ran a function it does not have")
    # Values are checked before anything is sent.
    try:
        conn.task(ADD, 2**31, 1, types=("int32", "int32"), ret="int32")
    except pycoyote.InvalidArgumentError as e:
        print("refused before sending:", e)
    else:
        raise SystemExit("an int32 argument out of range was sent")
    print("ok")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--socket", help="the service's Unix socket path (printed by the service)")
    where.add_argument("--name", default="demo", help="the service's name (default demo)")
    where.add_argument("--remote", metavar="HOST:PORT", help="a remote service (TCP)")
    ap.add_argument("--vfid", type=int, default=0, help="with --name: the service's vFPGA (default 0)")
    ap.add_argument("--device", type=int, default=0, help="with --name: the service's device (default 0)")
    ap.add_argument("--key-file", help="with --remote: the file holding the service's key")
    ap.add_argument("--tasks", type=int, default=16, help="non-blocking tasks to submit (default 16)")
    args = ap.parse_args()
    try:
        conn = connect(args)
    except pycoyote.PeerGoneError as e:
        raise SystemExit(f"no service: {e}") from None
    with conn:
        run(conn, args.tasks)


if __name__ == "__main__":
    main()
