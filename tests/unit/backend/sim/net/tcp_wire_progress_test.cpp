// The TCP wire answers a peer's requests without its sender threads: READs and WRITEs complete while every
// sender thread of the target is held (inside a signal handler), so no answer waits for one to be scheduled. And a
// thread polling for completions serves the wire itself: with every reader thread of both sides held, the polls of
// the two sides still carry READs, WRITEs and their answers. ACKs are cumulative: a burst of WRITEs that waited in
// the target's socket is answered by one ACK per run of WRITEs.
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "backend/sim/net/wire_format.hpp"
#include "backend/sim/segments.hpp"
#include "detail/handles.hpp"
#include "unit/rdma_test_support.hpp"

using coyote::CoyoteOper;
using coyote::rdmaSg;
using coyote_test::check;

namespace {

constexpr uint32_t k_size = 1u << 16;
constexpr uint32_t k_chunk = 2048; ///< an answer the socket takes at once
constexpr uint32_t k_ops = 16;

int g_entered[2] = {-1, -1}; ///< a held thread writes a byte here when it entered the handler
int g_release[2] = {-1, -1}; ///< and waits for one byte per thread here

void hold_here(int) {
    const char b = 1;
    (void)!::write(g_entered[1], &b, 1);
    char r = 0;
    (void)!::read(g_release[0], &r, 1);
}

/// Holds every thread named `name` inside hold_here until release(); returns how many.
size_t hold_threads(const std::string& name) {
    check(::pipe(g_entered) == 0 && ::pipe(g_release) == 0, "pipes");
    struct sigaction sa {};
    sa.sa_handler = hold_here;
    ::sigemptyset(&sa.sa_mask);
    check(::sigaction(SIGUSR2, &sa, nullptr) == 0, "sigaction");
    const auto tids = coyote_test::threads_named(name);
    for (pid_t tid : tids) check(::syscall(SYS_tgkill, ::getpid(), tid, SIGUSR2) == 0, "tgkill");
    for (size_t i = 0; i < tids.size(); ++i) {
        char b = 0;
        check(::read(g_entered[0], &b, 1) == 1, "a held thread entered the handler");
    }
    return tids.size();
}

void release(size_t n) {
    for (size_t i = 0; i < n; ++i) {
        const char b = 1;
        check(::write(g_release[1], &b, 1) == 1, "release a held thread");
    }
}

/// The client's first READ: opens the connection (and the target's reader and sender threads for it). Called
/// after a first connSync: the target writes its QP context after the exchange, maybe after the client's
/// initRDMA returned (a READ before that is refused: "no QP context"), as on the hardware.
void open_connection(coyote_test::Peer& p) {
    p.sync();
    coyote_test::fill(p.buf + k_size / 2, k_size / 2, 9);
    p.t.invoke(CoyoteOper::REMOTE_RDMA_READ, rdmaSg{.local_offs = 0, .remote_offs = 0, .len = k_chunk});
    coyote_test::wait_count(p.t, CoyoteOper::REMOTE_RDMA_READ, 1, "first READ");
    p.t.clearCompleted();
}

/// k_ops READs of k_chunk bytes into the first half of the buffer.
void read_chunks(coyote_test::Peer& p) {
    for (uint32_t i = 0; i < k_ops; ++i)
        p.t.invoke(CoyoteOper::REMOTE_RDMA_READ,
                   rdmaSg{.local_offs = i * k_chunk, .remote_offs = i * k_chunk, .len = k_chunk});
}

/// k_ops WRITEs of k_chunk bytes from and into the second half of the buffer.
void write_chunks(coyote_test::Peer& p) {
    for (uint32_t i = 0; i < k_ops; ++i)
        p.t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = k_size / 2 + i * k_chunk,
                                                         .remote_offs = k_size / 2 + i * k_chunk, .len = k_chunk});
}

}  // namespace

TEST(TcpWireProgress, RequestsAreAnsweredWhileTheTargetsSenderThreadsAreHeld) {
    coyote_test::run_pair(
        [] { coyote_test::child_env("tcp"); }, k_size,
        [](coyote_test::Peer& p) {
            coyote_test::fill(p.buf, k_size, 5);
            p.sync(); // both QP contexts are written
            p.sync(); // the client's first READ opened its connection (and this side's sender thread)
            p.sync();
            const size_t held = hold_threads("coyote-wire-tx");
            check(held >= 1, "no sender thread (coyote-wire-tx) to hold");
            p.sync(); // held: the client READs and WRITEs now
            p.sync();
            release(held);
            coyote_test::wait_count(p.t, CoyoteOper::LOCAL_WRITE, k_ops, "WRITEs received");
            check(coyote_test::mismatch(p.buf + k_size / 2, 0, k_ops * k_chunk, 9) == -1, "WRITE data");
            p.sync();
        },
        [](coyote_test::Peer& p) {
            open_connection(p);
            p.sync();
            p.sync();
            p.sync(); // the target's sender threads are held
            // Before the reader answered itself, these waited for a held sender thread: the 30 s wait failed.
            read_chunks(p);
            coyote_test::wait_count(p.t, CoyoteOper::REMOTE_RDMA_READ, k_ops, "READs answered");
            check(coyote_test::mismatch(p.buf, 0, k_ops * k_chunk, 5) == -1, "READ data");
            write_chunks(p);
            coyote_test::wait_count(p.t, CoyoteOper::REMOTE_RDMA_WRITE, k_ops, "WRITEs acknowledged");
            p.sync(); // the target releases its sender threads
            p.sync();
        },
        90);
}

TEST(TcpWireProgress, PollingThreadsServeTheWireWhileEveryReaderThreadIsHeld) {
    coyote_test::run_pair(
        [] { coyote_test::child_env("tcp"); }, k_size,
        [](coyote_test::Peer& p) {
            coyote_test::fill(p.buf, k_size, 5);
            p.sync(); // both QP contexts are written
            p.sync(); // the client's first READ opened its connection (and this side's reader thread)
            p.sync();
            const size_t held = hold_threads("coyote-wire-rx");
            check(held >= 1, "no reader thread (coyote-wire-rx) to hold");
            p.sync(); // held on both sides: the client READs and WRITEs now
            // Only this poll reads the client's requests: it answers the READs and takes the WRITEs.
            coyote_test::wait_count(p.t, CoyoteOper::LOCAL_WRITE, k_ops, "WRITEs received by polling");
            check(coyote_test::mismatch(p.buf + k_size / 2, 0, k_ops * k_chunk, 9) == -1, "WRITE data");
            p.sync();
            release(held);
            p.sync();
        },
        [](coyote_test::Peer& p) {
            open_connection(p);
            p.sync();
            const size_t held = hold_threads("coyote-wire-rx");
            check(held >= 1, "no reader thread (coyote-wire-rx) to hold");
            p.sync();
            p.sync(); // the target's reader threads are held too
            read_chunks(p);
            coyote_test::wait_count(p.t, CoyoteOper::REMOTE_RDMA_READ, k_ops, "READ responses taken by polling");
            check(coyote_test::mismatch(p.buf, 0, k_ops * k_chunk, 5) == -1, "READ data");
            write_chunks(p);
            coyote_test::wait_count(p.t, CoyoteOper::REMOTE_RDMA_WRITE, k_ops, "ACKs taken by polling");
            p.sync(); // the target checked the data
            release(held);
            p.sync();
        },
        90);
}

TEST(TcpWireAcks, WritesThatWaitedInTheSocketAreAnsweredByCumulativeAcks) {
    // 10 WRITEs, a READ and 10 WRITEs reach the target while its reader thread is held and nothing polls it:
    // released, it answers them with two ACKs (each for a run of 10 WRITEs; the READ response between them), and
    // every request completes once, with its data.
    constexpr uint32_t k_run = 10;     // 21 requests: within the 22 a ctid may have unacknowledged
    constexpr uint32_t k_len = 1024;   // 20 WRITEs fit the buffer's second half
    coyote_test::run_pair(
        [] { coyote_test::child_env("tcp"); }, k_size,
        [](coyote_test::Peer& p) {
            coyote_test::fill(p.buf, k_size, 5);
            p.sync(); // both QP contexts are written
            p.sync(); // the client's first READ opened its connection
            const size_t held = hold_threads("coyote-wire-rx");
            check(held >= 1, "no reader thread (coyote-wire-rx) to hold");
            const coyote::detail::ShmSegment seg =
                coyote::detail::ShmSegment::open(coyote::detail::sim::vfpga_segment_prefix(0, 0) + ".nic");
            const auto& n = static_cast<const coyote::detail::sim::NicShared*>(seg.get())->counters;
            const uint64_t acks = n.acks_sent.load(), coalesced = n.acks_coalesced.load();
            p.sync(); // held: the client posts
            p.sync(); // every request is in the socket
            release(held);
            coyote_test::wait_count(p.t, CoyoteOper::LOCAL_WRITE, 2 * k_run, "WRITEs received");
            check(coyote_test::mismatch(p.buf + k_size / 2, 0, 2 * k_run * k_len, 9) == -1, "WRITE data");
            p.sync(); // the client saw every completion
            check(n.acks_sent.load() - acks == 2,
                  "2 ACKs for 20 WRITEs, sent " + std::to_string(n.acks_sent.load() - acks));
            check(n.acks_coalesced.load() - coalesced == 2 * k_run - 2,
                  "each ACK answers 10 WRITEs: coalesced " + std::to_string(n.acks_coalesced.load() - coalesced));
            p.sync();
        },
        [](coyote_test::Peer& p) {
            open_connection(p);
            p.sync();
            p.sync(); // the target's reader is held
            coyote_test::fill(p.buf + k_size / 2, k_size / 2, 9);
            auto write_at = [&](uint32_t i) {
                p.t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = k_size / 2 + i * k_len,
                                                                 .remote_offs = k_size / 2 + i * k_len, .len = k_len});
            };
            for (uint32_t i = 0; i < k_run; ++i) write_at(i);
            p.t.invoke(CoyoteOper::REMOTE_RDMA_READ, rdmaSg{.local_offs = 0, .remote_offs = 0, .len = k_len});
            for (uint32_t i = k_run; i < 2 * k_run; ++i) write_at(i);
            p.sync(); // posted: the target releases its reader
            coyote_test::wait_count(p.t, CoyoteOper::REMOTE_RDMA_WRITE, 2 * k_run, "WRITEs acknowledged");
            coyote_test::wait_count(p.t, CoyoteOper::REMOTE_RDMA_READ, 1, "READ answered");
            check(coyote_test::mismatch(p.buf, 0, k_len, 5) == -1, "READ data");
            p.sync();
            p.sync();
        },
        90);
}
