"""pycoyote.mpi under mpiexec (2 and 3 ranks): every collective checked against mpi4py's own on the same data.

Every rank runs the same tests in the same order (pytest's collection order is deterministic)."""
import os

import numpy as np
import pytest
from mpi4py import MPI

import pycoyote
import pycoyote.mpi as pm

COMM = MPI.COMM_WORLD
RANK, SIZE = COMM.Get_rank(), COMM.Get_size()
TYPES = [np.int8, np.uint8, np.int32, np.uint32, np.int64, np.uint64, np.float32, np.float64]
COUNTS = [1, 7, 1000, 70000]  # small (eager / recursive doubling) up to the ring


@pytest.fixture(scope="module")
def coll():
    c = pm.Collectives(COMM)
    yield c
    c.close()


def data(dtype, count, salt=0):
    rng = np.random.default_rng(1000 * RANK + salt + count)
    return rng.integers(0, 4, size=count).astype(dtype)  # small integers: sums are exact in every type


def test_sizes(coll):
    assert coll.rank == RANK and coll.size == SIZE
    assert all(0 <= p < SIZE and p != RANK for p in coll.peers())


@pytest.mark.parametrize("dtype", TYPES)
@pytest.mark.parametrize("count", COUNTS)
def test_allreduce_sum(coll, dtype, count):
    x = data(dtype, count)
    expect = np.empty_like(x)
    COMM.Allreduce(x, expect, op=MPI.SUM)
    assert np.array_equal(coll.allreduce(x), expect)


@pytest.mark.parametrize("op,mpi_op", [("prod", MPI.PROD), ("min", MPI.MIN), ("max", MPI.MAX),
                                       ("band", MPI.BAND), ("bor", MPI.BOR), ("bxor", MPI.BXOR)])
def test_allreduce_ops(coll, op, mpi_op):
    x = data(np.int32, 513, salt=7) + 1
    expect = np.empty_like(x)
    COMM.Allreduce(x, expect, op=mpi_op)
    out = np.zeros_like(x)
    assert coll.allreduce(x, out, op=op) is out
    assert np.array_equal(out, expect)
    assert np.array_equal(coll.allreduce(x, op=mpi_op), expect)  # mpi4py operation objects too


def test_allreduce_float16_against_gathered_inputs(coll):
    x = data(np.float16, 300)
    everyone = np.empty((SIZE, 300), dtype=np.float16)
    COMM.Allgather(x.view(np.uint16), everyone.view(np.uint16))  # mpi4py has no float16: move the bits
    assert np.array_equal(coll.allreduce(x), everyone.astype(np.float32).sum(axis=0).astype(np.float16))


def test_results_keep_the_shape_of_a_2d_input(coll):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    r = coll.allreduce(x)
    assert r.shape == (3, 4)
    assert np.array_equal(r, x * coll.size)
    assert coll.alltoall(np.zeros((coll.size, 2), np.int32)).shape == (coll.size, 2)
    s = coll.allreduce(np.float32(3))  # a 0-d input gives a 0-d result
    assert s.shape == () and s == 3 * coll.size


def test_allreduce_in_place(coll):
    x = data(np.float64, 4096)
    expect = np.empty_like(x)
    COMM.Allreduce(x, expect)
    assert coll.allreduce(x, x) is x
    assert np.array_equal(x, expect)


@pytest.mark.parametrize("count", COUNTS)
def test_broadcast(coll, count):
    for root in range(SIZE):
        x = data(np.float32, count, salt=root)
        expect = x.copy()
        COMM.Bcast(expect, root=root)
        assert coll.broadcast(x, root) is x
        assert np.array_equal(x, expect)


@pytest.mark.parametrize("count", COUNTS)
def test_reduce(coll, count):
    for root in range(SIZE):
        x = data(np.int64, count, salt=root)
        expect = np.empty_like(x) if RANK == root else None
        COMM.Reduce(x, expect, op=MPI.SUM, root=root)
        got = coll.reduce(x, root=root)
        if RANK == root:
            assert np.array_equal(got, expect)
        else:
            assert got is None


@pytest.mark.parametrize("count", COUNTS[:3])
def test_allgather(coll, count):
    x = data(np.uint32, count)
    expect = np.empty(SIZE * count, dtype=np.uint32)
    COMM.Allgather(x, expect)
    assert np.array_equal(coll.allgather(x), expect)


@pytest.mark.parametrize("count", COUNTS[:3])
def test_gather_and_scatter(coll, count):
    for root in range(SIZE):
        x = data(np.float64, count, salt=root)
        expect = np.empty(SIZE * count) if RANK == root else None
        COMM.Gather(x, expect, root=root)
        got = coll.gather(x, root=root)
        if RANK == root:
            assert np.array_equal(got, expect)
        whole = data(np.float64, SIZE * count, salt=root + 50) if RANK == root else None
        expect_part = np.empty(count)
        COMM.Scatter(whole, expect_part, root=root)
        part = np.zeros(count)
        assert coll.scatter(whole, part, root) is part
        assert np.array_equal(part, expect_part)


@pytest.mark.parametrize("count", COUNTS[:3])
def test_reduce_scatter(coll, count):
    x = data(np.int32, SIZE * count)
    expect = np.empty(count, dtype=np.int32)
    COMM.Reduce_scatter_block(x, expect, op=MPI.SUM)
    assert np.array_equal(coll.reduce_scatter(x), expect)


@pytest.mark.parametrize("count", COUNTS[:3])
def test_alltoall(coll, count):
    x = data(np.int8, SIZE * count)
    expect = np.empty_like(x)
    COMM.Alltoall(x, expect)
    assert np.array_equal(coll.alltoall(x), expect)


def test_nonblocking(coll):
    x = data(np.float32, 20000)
    expect = np.empty_like(x)
    COMM.Allreduce(x, expect)
    req = coll.iallreduce(x)
    b = data(np.int64, 100, salt=3)
    expect_b = b.copy()
    COMM.Bcast(expect_b, root=SIZE - 1)
    req_b = coll.ibroadcast(b, SIZE - 1)
    assert np.array_equal(req.wait(), expect)
    assert req_b.wait() is b and np.array_equal(b, expect_b)
    assert req.test()


@pytest.mark.parametrize("count", [1, 1000, 70000])
def test_every_nonblocking_form_in_flight_at_once(coll, count):
    root = SIZE - 1
    x = data(np.int32, count, salt=11)
    blocks = data(np.int32, SIZE * count, salt=12)
    whole = data(np.int32, SIZE * count, salt=13) if RANK == root else None
    b = data(np.float64, count, salt=14)
    expect = {"bcast": b.copy(), "allreduce": np.empty_like(x), "reduce": np.empty_like(x),
              "allgather": np.empty(SIZE * count, np.int32), "gather": np.empty(SIZE * count, np.int32),
              "scatter": np.empty(count, np.int32), "reduce_scatter": np.empty(count, np.int32),
              "alltoall": np.empty_like(blocks)}
    COMM.Bcast(expect["bcast"], root=root)
    COMM.Allreduce(x, expect["allreduce"], op=MPI.MAX)
    COMM.Reduce(x, expect["reduce"], op=MPI.SUM, root=root)
    COMM.Allgather(x, expect["allgather"])
    COMM.Gather(x, expect["gather"], root=root)
    COMM.Scatter(whole, expect["scatter"], root=root)
    COMM.Reduce_scatter_block(blocks, expect["reduce_scatter"], op=MPI.SUM)
    COMM.Alltoall(blocks, expect["alltoall"])
    part = np.zeros(count, np.int32)
    reqs = {
        "barrier": coll.ibarrier(),
        "bcast": coll.ibroadcast(b, root),
        "allreduce": coll.iallreduce(x, op="max"),
        "reduce": coll.ireduce(x, root=root),
        "allgather": coll.iallgather(x),
        "gather": coll.igather(x, root=root),
        "scatter": coll.iscatter(whole, part, root),
        "reduce_scatter": coll.ireduce_scatter(blocks),
        "alltoall": coll.ialltoall(blocks),
    }
    assert np.array_equal(coll.allreduce(np.ones(3, np.int64)), np.full(3, SIZE))  # blocking, while they run
    got = {name: reqs[name].wait() for name in reversed(list(reqs))}
    assert got["barrier"] is None
    assert got["bcast"] is b and got["scatter"] is part
    for name in expect:
        if name in ("reduce", "gather") and RANK != root:
            assert got[name] is None
            continue
        assert np.array_equal(got[name], expect[name]), name
    assert all(r.test() for r in reqs.values())


def test_nonblocking_errors_are_raised_at_the_call(coll):
    x = np.zeros(8, dtype=np.int32)
    with pytest.raises(pycoyote.InvalidArgumentError, match="ireduce_scatter.*equal blocks"):
        coll.ireduce_scatter(np.zeros(SIZE * 2 + 1, dtype=np.int32))
    with pytest.raises(pycoyote.InvalidArgumentError, match="igather"):
        coll.igather(x, np.zeros(3, dtype=np.int32), root=RANK)
    with pytest.raises(pycoyote.InvalidArgumentError, match="iscatter"):
        coll.iscatter(x, x, root=SIZE)
    with pytest.raises(pycoyote.InvalidArgumentError, match="ireduce"):
        coll.ireduce(np.zeros(4, np.float32), op="band")
    req = coll.iallgather(np.full(2, RANK, np.int32))
    with pytest.raises(pycoyote.InvalidArgumentError, match="pending"):
        coll.close()
    assert np.array_equal(req.wait(), np.repeat(np.arange(SIZE, dtype=np.int32), 2))


def test_coyote_buffers(coll):
    t = pycoyote.CoyoteThread(0, os.getpid(), RANK)
    send = t.allocate_buffer(256, dtype="float32")
    recv = t.allocate_buffer(256, dtype="float32")
    np.asarray(send)[:] = data(np.float32, 256)
    expect = np.empty(256, dtype=np.float32)
    COMM.Allreduce(np.asarray(send), expect)
    assert coll.allreduce(send, recv) is recv
    assert np.array_equal(np.asarray(recv), expect)
    del send, recv, t


def test_errors_are_local_and_leave_the_object_usable(coll):
    x = np.zeros(8, dtype=np.int32)
    with pytest.raises(pycoyote.InvalidArgumentError, match="recv holds 4"):
        coll.allreduce(x, np.zeros(4, dtype=np.int32))
    with pytest.raises(pycoyote.InvalidArgumentError, match="recv holds float32"):
        coll.allreduce(x, np.zeros(8, dtype=np.float32))
    with pytest.raises(pycoyote.InvalidArgumentError, match="unknown op"):
        coll.allreduce(x, op="avg")
    with pytest.raises(pycoyote.InvalidArgumentError, match="not supported"):
        coll.allreduce(np.zeros(8, dtype=np.complex64))
    with pytest.raises(pycoyote.InvalidArgumentError, match="contiguous"):
        coll.allreduce(np.zeros((8, 8), dtype=np.int32)[:, 1])
    with pytest.raises(pycoyote.InvalidArgumentError, match="equal blocks"):
        coll.alltoall(np.zeros(SIZE * 3 + 1, dtype=np.int32))
    with pytest.raises(pycoyote.InvalidArgumentError, match="buffer protocol"):
        coll.broadcast([1, 2, 3])
    read_only = np.zeros(8, dtype=np.int32)
    read_only.flags.writeable = False
    with pytest.raises(pycoyote.InvalidArgumentError, match="allreduce.*recv is read-only"):
        coll.allreduce(x, read_only)
    with pytest.raises(pycoyote.InvalidArgumentError, match="broadcast.*buf is read-only"):
        coll.broadcast(read_only)
    for root in (SIZE, -1, 1 << 40, 1 << 70):  # every rank gives the same root, so all refuse it locally
        with pytest.raises(pycoyote.InvalidArgumentError, match="root"):
            coll.reduce(x, root=root)
        with pytest.raises(pycoyote.InvalidArgumentError, match="root"):
            coll.ibroadcast(x, root=root)
        with pytest.raises(pycoyote.InvalidArgumentError, match="root"):
            coll.gather(x, root=root)
        with pytest.raises(pycoyote.InvalidArgumentError, match="root"):
            coll.scatter(np.zeros(8 * SIZE, dtype=np.int32), x, root=root)
    r = coll.reduce(np.ones(2, np.int32), root=np.int64(SIZE - 1))  # a NumPy integer root binds
    if RANK == SIZE - 1:
        assert np.array_equal(r, np.full(2, SIZE))
    coll.barrier()
    assert np.array_equal(coll.allreduce(np.ones(4, dtype=np.int32)), np.full(4, SIZE, dtype=np.int32))


def test_qpset_wiring_and_rdma_write():
    qps = pm.QpSet(COMM, buffer_size=1 << 16)
    peers = qps.peers()
    assert peers == [p for p in range(SIZE) if p != RANK]
    mine = {p: qps.qpair(p) for p in peers}
    everyone = COMM.allgather({p: q["local"]["qpn"] for p, q in mine.items()})
    for p in peers:
        assert mine[p]["remote"]["qpn"] == everyone[p][RANK], "each side sees the other's QPN"
    right = (RANK + 1) % SIZE
    buf = qps.buffer(right)
    buf[:64] = RANK + 1
    qps.barrier()
    qps.rdma_write(right, 64, 0, 128)
    while qps.get_completed(right, "rdma_write") < 1:
        pass
    qps.barrier()
    left = (RANK - 1) % SIZE
    assert np.all(qps.buffer(left)[128:192] == left + 1)
    with pytest.raises(pycoyote.InvalidArgumentError):
        qps.rdma_write(right, 1 << 20)
    # Out-of-range integers are InvalidArgumentError naming the argument (they were pybind11's TypeError).
    for kw, says in ((dict(size=-1), "size -1"), (dict(size=8, local_offs=2**63), "local_offs"),
                     (dict(size=8, remote_offs=(1 << 16) - 4), "remote_offs")):
        with pytest.raises(pycoyote.InvalidArgumentError, match=says):
            qps.rdma_write(right, **kw)
    # close() is refused while arrays view the buffers, then every call says the set is closed.
    with pytest.raises(pycoyote.InvalidArgumentError, match="arrays from buffer"):
        qps.close()
    del buf
    qps.barrier()
    qps.close()
    assert qps.closed
    with pytest.raises(pycoyote.InvalidArgumentError, match="closed"):
        qps.peers()
    with pm.QpSet(COMM, buffer_size=4096) as q2:
        assert q2.size() == SIZE
    assert q2.closed
