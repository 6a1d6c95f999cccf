// coyote-mpi examples: RDMA and MPI measurement routines shared by demo.cpp and perf_rdma.cpp.
// Two ranks per measurement: the "client" drives, the "server" answers (Coyote's RDMA benchmark protocol:
// every message landing in a node's memory bumps that node's LOCAL_WRITE count).
#pragma once

#include <mpi.h>
#include <sched.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>

#include <coyote/cThread.hpp>
#include <coyote/mpi/mpi.hpp>

namespace coyote::mpi::examples {

using Clock = std::chrono::steady_clock;

/// Waits (yielding) until `thread`'s count of `oper` reaches `n`; throws Errc::timeout after 60 s.
inline void wait_count(cThread& thread, CoyoteOper oper, uint32_t n, const char* what) {
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    for (unsigned polls = 0; thread.checkCompleted(oper) < n; ++polls) {
        if ((polls & 0xFF) == 0 && Clock::now() > deadline)
            throw_error(Errc::timeout, what,
                        "completion count stayed at " + std::to_string(thread.checkCompleted(oper)) + " of " +
                            std::to_string(n) + " for 60 s");
        ::sched_yield();
    }
}

/// A byte of the test pattern for (seed, index).
inline uint8_t pattern(uint32_t seed, uint64_t i) { return static_cast<uint8_t>((i * 131u + seed * 7u + (i >> 8)) & 0xFF); }

inline void fill(void* p, uint64_t len, uint32_t seed) {
    auto* b = static_cast<uint8_t*>(p);
    for (uint64_t i = 0; i < len; ++i) b[i] = pattern(seed, i);
}

/// Number of bytes of [p, p+len) that differ from the pattern.
inline uint64_t mismatches(const void* p, uint64_t len, uint32_t seed) {
    const auto* b = static_cast<const uint8_t*>(p);
    uint64_t bad = 0;
    for (uint64_t i = 0; i < len; ++i) bad += b[i] != pattern(seed, i);
    return bad;
}

/// Resets both sides' counters in step (clear, then a pairwise sync so no message races the clear).
inline void reset_pair(cThread& t, const Communicator& comm, int peer) {
    t.clearCompleted();
    conn_sync(comm, peer);
}

/// Round-trip RDMA WRITE ping-pong of `len` bytes, `iters` times; returns the mean one-way latency in us
/// (client side; 0 on the server). Source region at offset 0, destination at `dst_offs`.
inline double rdma_latency_us(cThread& t, const Communicator& comm, int peer, bool client, uint32_t len,
                              uint64_t dst_offs, uint32_t iters) {
    reset_pair(t, comm, peer);
    const rdmaSg sg{.local_offs = 0, .remote_offs = dst_offs, .len = len};
    const auto t0 = Clock::now();
    for (uint32_t i = 1; i <= iters; ++i) {
        if (client) {
            t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, sg);
            wait_count(t, CoyoteOper::LOCAL_WRITE, i, "latency: pong");
        } else {
            wait_count(t, CoyoteOper::LOCAL_WRITE, i, "latency: ping");
            t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, sg);
        }
    }
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, iters, "latency: own writes");
    return client ? us / (2.0 * iters) : 0.0;
}

/// `iters` RDMA WRITEs of `len` bytes from the client, acknowledged by one 64-byte WRITE back once all landed;
/// returns MiB/s on the client (0 on the server).
inline double rdma_write_mibps(cThread& t, const Communicator& comm, int peer, bool client, uint32_t len,
                               uint64_t dst_offs, uint32_t iters) {
    reset_pair(t, comm, peer);
    const auto t0 = Clock::now();
    if (client) {
        for (uint32_t i = 0; i < iters; ++i)
            t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = 0, .remote_offs = dst_offs, .len = len});
        wait_count(t, CoyoteOper::LOCAL_WRITE, 1, "write bandwidth: acknowledgement");
    } else {
        wait_count(t, CoyoteOper::LOCAL_WRITE, iters, "write bandwidth: arrivals");
        t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = 0, .remote_offs = dst_offs, .len = 64});
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, client ? iters : 1, "write bandwidth: own writes");
    return client ? (static_cast<double>(len) * iters) / (1024.0 * 1024.0) / s : 0.0;
}

/// `iters` RDMA READs of `len` bytes by the client from the server's offset 0 into local `dst_offs`
/// (the server is passive); returns MiB/s on the client.
inline double rdma_read_mibps(cThread& t, const Communicator& comm, int peer, bool client, uint32_t len,
                              uint64_t dst_offs, uint32_t iters) {
    reset_pair(t, comm, peer);
    double mibps = 0.0;
    if (client) {
        const auto t0 = Clock::now();
        for (uint32_t i = 0; i < iters; ++i)
            t.invoke(CoyoteOper::REMOTE_RDMA_READ, rdmaSg{.local_offs = dst_offs, .remote_offs = 0, .len = len});
        wait_count(t, CoyoteOper::LOCAL_WRITE, iters, "read bandwidth: responses");
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        mibps = (static_cast<double>(len) * iters) / (1024.0 * 1024.0) / s;
    }
    conn_sync(comm, peer);
    return mibps;
}

/// MPI_Send/MPI_Recv ping-pong; mean one-way latency in us on the client.
inline double mpi_latency_us(const Communicator& comm, int peer, bool client, void* buf, int len, uint32_t iters) {
    conn_sync(comm, peer);
    const auto t0 = Clock::now();
    for (uint32_t i = 0; i < iters; ++i) {
        if (client) {
            check_mpi(MPI_Send(buf, len, MPI_BYTE, peer, 1, comm.get()), "MPI_Send", "ping");
            check_mpi(MPI_Recv(buf, len, MPI_BYTE, peer, 1, comm.get(), MPI_STATUS_IGNORE), "MPI_Recv", "pong");
        } else {
            check_mpi(MPI_Recv(buf, len, MPI_BYTE, peer, 1, comm.get(), MPI_STATUS_IGNORE), "MPI_Recv", "ping");
            check_mpi(MPI_Send(buf, len, MPI_BYTE, peer, 1, comm.get()), "MPI_Send", "pong");
        }
    }
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    return client ? us / (2.0 * iters) : 0.0;
}

/// `iters` MPI_Send of `len` bytes, acknowledged by one 1-byte message; MiB/s on the client.
inline double mpi_send_mibps(const Communicator& comm, int peer, bool client, void* buf, int len, uint32_t iters) {
    conn_sync(comm, peer);
    char ack = 0;
    const auto t0 = Clock::now();
    for (uint32_t i = 0; i < iters; ++i) {
        if (client)
            check_mpi(MPI_Send(buf, len, MPI_BYTE, peer, 2, comm.get()), "MPI_Send", "stream");
        else
            check_mpi(MPI_Recv(buf, len, MPI_BYTE, peer, 2, comm.get(), MPI_STATUS_IGNORE), "MPI_Recv", "stream");
    }
    if (client)
        check_mpi(MPI_Recv(&ack, 1, MPI_BYTE, peer, 3, comm.get(), MPI_STATUS_IGNORE), "MPI_Recv", "ack");
    else
        check_mpi(MPI_Send(&ack, 1, MPI_BYTE, peer, 3, comm.get()), "MPI_Send", "ack");
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    return client ? (static_cast<double>(len) * iters) / (1024.0 * 1024.0) / s : 0.0;
}

/// Iterations for a message size: more for small messages, bounded total bytes for large ones.
inline uint32_t iterations_for(uint64_t len, uint32_t base) {
    const uint64_t by_volume = (64ull << 20) / (len == 0 ? 1 : len);
    const uint64_t n = by_volume < base ? by_volume : base;
    return static_cast<uint32_t>(n < 8 ? 8 : n);
}

}  // namespace coyote::mpi::examples
