// RDMA scenarios run unchanged on every backend (sim over shm or TCP, hw on the fake driver): the two sides of
// WRITE / READ / SEND with the completion counts as Coyote keeps them, every byte checked.
#pragma once

#include <coyote/cThread.hpp>

#include <cstdint>
#include <string>

#include "unit/rdma_test_support.hpp"

namespace coyote_test::scenario {

constexpr uint32_t k_wrs_chunks = 8;     ///< chunks the client WRITEs and the server writes back
constexpr uint32_t k_wrs_chunk = 4096;   ///< bytes per chunk

/// Server side of write_read_send (buffer of `size` bytes). Reference semantics: the target of a WRITE counts
/// LOCAL_WRITE, the initiator counts REMOTE_RDMA_WRITE; a READ's requester counts LOCAL_WRITE and
/// REMOTE_RDMA_READ; the passive side counts nothing.
inline void write_read_send_server(Peer& p, uint64_t size) {
    using coyote::CoyoteOper;
    constexpr uint32_t n = k_wrs_chunks, chunk = k_wrs_chunk;
    coyote::cThread& t = p.t;
    fill(p.buf, size, 1);
    p.sync(); // (1) buffers ready
    // The client writes n chunks to offsets [0, n*chunk).
    wait_count(t, CoyoteOper::LOCAL_WRITE, n, "server LOCAL_WRITE after client WRITEs");
    check(t.checkCompleted(CoyoteOper::REMOTE_RDMA_WRITE) == 0, "server initiated nothing");
    check(mismatch(p.buf, 0, n * chunk, 2) < 0, "written window holds the client's data");
    check(mismatch(p.buf, n * chunk, size, 1) < 0, "bytes outside the written window untouched");
    // Write back n chunks into the client's [size/2, ...).
    t.clearCompleted();
    for (uint32_t i = 0; i < n; ++i)
        t.invoke(CoyoteOper::REMOTE_RDMA_WRITE,
                 coyote::rdmaSg{.local_offs = i * chunk, .remote_offs = size / 2 + i * chunk, .len = chunk});
    wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, n, "server REMOTE_RDMA_WRITE");
    check(t.checkCompleted(CoyoteOper::LOCAL_WRITE) == 0, "a WRITE's initiator counts no LOCAL_WRITE");
    p.sync(); // (2)
    // The client READs and SENDs; the server stays passive for READs.
    p.sync(); // (3) client done with READs
    check(t.checkCompleted(CoyoteOper::LOCAL_WRITE) == 0,
          "READ target counts nothing, got " + std::to_string(t.checkCompleted(CoyoteOper::LOCAL_WRITE)) + " reads " +
              std::to_string(t.checkCompleted(CoyoteOper::REMOTE_RDMA_READ)));
    p.sync(); // (3b) checked before the client SENDs
    p.sync(); // (4) client SENT 2 messages (with last = false then true)
    wait_count(t, CoyoteOper::LOCAL_WRITE, 1, "server LOCAL_WRITE after SEND with last");
    check(mismatch(p.buf, 3 * size / 4, 3 * size / 4 + 2 * chunk, 3, -static_cast<int64_t>(3 * size / 4)) < 0,
          "SEND delivered at remote_offs, in order");
    p.sync(); // (5)
}

/// Client side of write_read_send: WRITEs, checks the write-back, READs (and a zero-length READ), SENDs twice.
inline void write_read_send_client(Peer& p, uint64_t size) {
    using coyote::CoyoteOper;
    using coyote::rdmaSg;
    constexpr uint32_t n = k_wrs_chunks, chunk = k_wrs_chunk;
    coyote::cThread& t = p.t;
    fill(p.buf, size, 2);
    p.sync(); // (1)
    for (uint32_t i = 0; i < n; ++i)
        t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = i * chunk, .remote_offs = i * chunk, .len = chunk});
    wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, n, "client REMOTE_RDMA_WRITE");
    wait_count(t, CoyoteOper::LOCAL_WRITE, n, "client LOCAL_WRITE after the server's write-back");
    check(mismatch(p.buf, size / 2, size / 2 + n * chunk, 2, -static_cast<int64_t>(size / 2)) < 0, "write-back data");
    p.sync(); // (2)
    t.clearCompleted();
    // READ the server's [n*chunk, n*chunk + 4*chunk) (still pattern 1) into local [0, 4*chunk).
    for (uint32_t i = 0; i < 4; ++i)
        t.invoke(CoyoteOper::REMOTE_RDMA_READ,
                 rdmaSg{.local_offs = i * chunk, .remote_offs = n * chunk + i * chunk, .len = chunk}, i == 3);
    wait_count(t, CoyoteOper::REMOTE_RDMA_READ, 1, "client REMOTE_RDMA_READ (only the last counts)");
    check(t.checkCompleted(CoyoteOper::LOCAL_WRITE) == 1, "READ response counts LOCAL_WRITE at the requester");
    check(mismatch(p.buf, 0, 4 * chunk, 1, static_cast<int64_t>(n * chunk)) < 0, "READ data");
    // len 0 completes immediately.
    t.invoke(CoyoteOper::REMOTE_RDMA_READ, rdmaSg{.len = 0});
    wait_count(t, CoyoteOper::REMOTE_RDMA_READ, 2, "zero-length READ completes");
    p.sync(); // (3)
    p.sync(); // (3b)
    // SEND two messages (pattern 3) into the server at 3/4.
    t.clearCompleted();
    fill(p.buf, 2 * chunk, 3);
    t.invoke(CoyoteOper::REMOTE_RDMA_SEND, rdmaSg{.local_offs = 0, .remote_offs = 3 * size / 4, .len = chunk}, false);
    t.invoke(CoyoteOper::REMOTE_RDMA_SEND, rdmaSg{.local_offs = chunk, .remote_offs = 3 * size / 4 + chunk, .len = chunk},
             true);
    wait_count(t, CoyoteOper::REMOTE_RDMA_SEND, 1, "client SEND completion (counts as a write)");
    p.sync(); // (4)
    p.sync(); // (5)
}

/// Both sides of write_read_send on a buffer of `size` bytes, each child set up by `env`.
inline void write_read_send(const std::function<void()>& env, uint64_t size) {
    run_pair(env, size, [size](Peer& p) { write_read_send_server(p, size); },
             [size](Peer& p) { write_read_send_client(p, size); });
}

}  // namespace coyote_test::scenario
