// Soak (label soak): 4 ranks on loopback mix RDMA WRITEs and READs to every peer with allreduces and broadcasts
// for COYOTE_SOAK_SECONDS (default 120); every payload is checked against the checksum of what its sender wrote.
// Reports operations, bytes, mismatches and lost completions (a completion that does not arrive within 60 s).
#include <coyote/mpi/mpi.hpp>

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "bootstrap/bootstrap_test_support.hpp"
#include "detail/settings.hpp"

using namespace coyote::mpi;
using coyote::CoyoteOper;

namespace {

namespace settings = ::coyote::detail::settings;
const settings::Integer k_seconds{"COYOTE_SOAK_SECONDS", "test", 120, 1, 86400,
                                  "soak test (tests/mpi/soak_test.cpp): how long the ranks keep the traffic going"};

constexpr std::size_t k_buffer = 1 << 20;       // registered buffer per queue pair
constexpr std::size_t k_src = 0;                // this rank's payload for the peer (written, then read by it)
constexpr std::size_t k_read_in = 256 << 10;    // where READs from the peer land
constexpr std::size_t k_write_in = 512 << 10;   // where the peer's WRITEs land
constexpr std::size_t k_max_len = 256 << 10;
constexpr std::array<uint32_t, 6> k_sizes = {64, 4096, 1000, 65536, 200000, 262144};
static_assert(k_src + k_max_len <= k_read_in && k_read_in + k_max_len <= k_write_in &&
                  k_write_in + k_max_len <= k_buffer,
              "the three regions of a buffer do not overlap");

uint64_t fnv1a(const uint8_t* p, std::size_t n) {
    constexpr uint64_t k_offset = 1469598103934665603, k_prime = 1099511628211;
    uint64_t h = k_offset;
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * k_prime;
    return h;
}

/// Byte i of the payload rank `from` sends rank `to` in round `round`.
void fill(uint8_t* p, std::size_t n, int from, int to, uint64_t round) {
    constexpr uint64_t k_golden = 0x9E3779B97F4A7C15;
    uint64_t x = ((round + 1) * k_golden) ^ (static_cast<uint64_t>(from) << 40) ^ static_cast<uint64_t>(to);
    for (std::size_t i = 0; i < n; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = static_cast<uint8_t>(x);
    }
}

uint64_t expected_sum(int from, int to, uint64_t round, std::size_t n) {
    std::vector<uint8_t> v(n);
    fill(v.data(), n, from, to, round);
    return fnv1a(v.data(), n);
}

/// The payload size rank `rank` uses in `round`.
uint32_t len_of(int rank, uint64_t round) {
    return k_sizes[(round + static_cast<uint64_t>(rank)) % k_sizes.size()];
}

/// Whether `len` bytes at `at` are what rank `from` sent rank `to` in `round`.
bool payload_ok(const void* at, int from, int to, uint64_t round, std::size_t len) {
    return fnv1a(static_cast<const uint8_t*>(at), len) == expected_sum(from, to, round, len);
}

/// Waits for the next completion of `oper` on `t` (`done` counts those seen); false when it never came.
bool next_completion(coyote::cThread& t, CoyoteOper oper, uint32_t& done) {
    const bool ok = coyote_test::wait_count(t, oper, done + 1);
    done = t.checkCompleted(oper);
    return ok;
}

struct Totals {
    uint64_t writes = 0, write_bytes = 0, reads = 0, read_bytes = 0, allreduces = 0, allreduce_bytes = 0,
             broadcasts = 0, broadcast_bytes = 0, mismatches = 0, lost = 0, rounds = 0;
};

}  // namespace

TEST(Soak, RdmaAndCollectivesWithCheckedPayloads) {
    Communicator comm;
    const auto dev = select_device(comm);
    WiringOptions wo;
    wo.buffer_size = k_buffer;
    wo.pattern = PeerPattern::all;
    QpSet qps(comm, dev, wo);
    Collectives coll(comm, dev);
    const int me = comm.rank(), n = comm.size();
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(k_seconds.get());
    const auto started = std::chrono::steady_clock::now();
    Totals t;
    std::vector<uint32_t> writes_done(static_cast<std::size_t>(n), 0), reads_done(static_cast<std::size_t>(n), 0);
    for (int p : qps.peers()) qps.thread(p).clearCompleted();
    for (uint64_t round = 0;; ++round) {
        // Everybody agrees whether to go on (rank 0's clock), through the collectives under test.
        uint64_t go = me == 0 ? (std::chrono::steady_clock::now() < until ? 1 : 0) : 0;
        coll.broadcast(&go, 1, Datatype::uint64, 0);
        if (go == 0) break;
        const uint32_t len = len_of(me, round);
        // 1. Payloads for every peer, then WRITE them into the peer's inbox.
        for (int p : qps.peers()) fill(static_cast<uint8_t*>(qps.buffer(p)) + k_src, len, me, p, round);
        coll.barrier();
        // Posts `oper` of `len_for(p)` bytes to every peer, then waits for each completion.
        auto to_every_peer = [&](CoyoteOper oper, uint64_t local, uint64_t remote, auto len_for,
                                 std::vector<uint32_t>& done, uint64_t& ops, uint64_t& bytes) {
            for (int p : qps.peers()) {
                const uint32_t bytes_p = len_for(p);
                qps.thread(p).invoke(oper, coyote::rdmaSg{.local_offs = local, .remote_offs = remote, .len = bytes_p});
                ++ops, bytes += bytes_p;
            }
            for (int p : qps.peers())
                if (!next_completion(qps.thread(p), oper, done[static_cast<std::size_t>(p)])) ++t.lost;
        };
        to_every_peer(CoyoteOper::REMOTE_RDMA_WRITE, k_src, k_write_in, [&](int) { return len; }, writes_done,
                      t.writes, t.write_bytes);
        // 2. Every rank's WRITEs have completed: check the inboxes, then READ each peer's payload back and check it.
        coll.barrier();
        for (int p : qps.peers()) {
            const uint8_t* in = static_cast<const uint8_t*>(qps.buffer(p)) + k_write_in;
            if (!payload_ok(in, p, me, round, len_of(p, round))) ++t.mismatches;
        }
        to_every_peer(CoyoteOper::REMOTE_RDMA_READ, k_read_in, k_src, [&](int p) { return len_of(p, round); },
                      reads_done, t.reads, t.read_bytes);
        for (int p : qps.peers()) {
            const uint8_t* got = static_cast<const uint8_t*>(qps.buffer(p)) + k_read_in;
            if (!payload_ok(got, p, me, round, len_of(p, round))) ++t.mismatches;
        }
        // 3. Collectives with known results: an allreduce (sum) and a broadcast from a rotating root.
        const std::size_t count = 1 + (round * 7919u) % 65536u;
        std::vector<uint64_t> mine(count), sum(count);
        for (std::size_t i = 0; i < count; ++i) mine[i] = (static_cast<uint64_t>(me) + 1) * (round + i);
        coll.allreduce(mine.data(), sum.data(), count, Datatype::uint64, Op::sum);
        const uint64_t ranks_factor = static_cast<uint64_t>(n) * static_cast<uint64_t>(n + 1) / 2;
        for (std::size_t i = 0; i < count; ++i)
            if (sum[i] != ranks_factor * (round + i)) {
                ++t.mismatches;
                break;
            }
        ++t.allreduces, t.allreduce_bytes += count * sizeof(uint64_t);
        const int root = static_cast<int>(round % static_cast<uint64_t>(n));
        std::vector<uint8_t> b(count);
        if (me == root) fill(b.data(), count, root, -1, round);
        coll.broadcast(b.data(), count, Datatype::uint8, root);
        if (!payload_ok(b.data(), root, -1, round, count)) ++t.mismatches;
        ++t.broadcasts, t.broadcast_bytes += count;
        t.rounds = round + 1;
        coll.barrier(); // nobody rewrites its payload while a peer still READs it
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::array<uint64_t, 11> mine{t.writes, t.write_bytes, t.reads, t.read_bytes, t.allreduces, t.allreduce_bytes,
                                  t.broadcasts, t.broadcast_bytes, t.mismatches, t.lost, t.rounds};
    std::array<uint64_t, 11> all{};
    coll.allreduce(mine.data(), all.data(), mine.size(), Datatype::uint64, Op::sum);
    if (me == 0)
        std::printf("soak: %d ranks, %.1f s, %llu rounds per rank; RDMA WRITE %llu ops %llu bytes, RDMA READ %llu ops "
                    "%llu bytes, allreduce %llu calls %llu bytes, broadcast %llu calls %llu bytes (all ranks); "
                    "mismatches %llu, lost completions %llu\n",
                    n, secs, static_cast<unsigned long long>(t.rounds), static_cast<unsigned long long>(all[0]),
                    static_cast<unsigned long long>(all[1]), static_cast<unsigned long long>(all[2]),
                    static_cast<unsigned long long>(all[3]), static_cast<unsigned long long>(all[4]),
                    static_cast<unsigned long long>(all[5]), static_cast<unsigned long long>(all[6]),
                    static_cast<unsigned long long>(all[7]), static_cast<unsigned long long>(all[8]),
                    static_cast<unsigned long long>(all[9]));
    EXPECT_GT(t.rounds, 0u);
    EXPECT_GT(all[0], 0u);
    EXPECT_EQ(all[8], 0u) << "payloads or collective results that differ from what was sent";
    EXPECT_EQ(all[9], 0u) << "completions that never arrived";
}
