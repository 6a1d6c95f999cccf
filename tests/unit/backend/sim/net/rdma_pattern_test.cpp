// The traffic pattern of Coyote's example 09_perf_rdma between two sim processes, on the shm wire and the forced
// TCP wire: clearCompleted + connSync before every run, N WRITEs that the server polls for with a tight
// checkCompleted loop and writes back, N READs with a passive server; every run's data is checked (then one more
// connSync, so that the server prepares the next run only after the client's check). Bounds are
// generous (the runs must finish): speed is measured by benchmarks/perf_rdma_bench.
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>

#include "unit/rdma_test_support.hpp"

using coyote::CoyoteOper;
using coyote::rdmaSg;
using coyote_test::check;
using coyote_test::Child;

namespace {

constexpr uint32_t k_max = 1u << 20;
constexpr uint32_t k_buf = 2 * k_max; ///< [0, max): what a side sends, [max, 2 max): what it receives
constexpr uint32_t k_sizes[] = {64, 4096, 65536, k_max};
constexpr uint32_t k_transfers[] = {32, 1};
constexpr int k_runs = 4;

/// The example's wait: a tight checkCompleted loop (with a deadline so that a failure cannot hang the test).
void spin_until(coyote::cThread& t, uint32_t n, const std::string& what) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (unsigned spins = 1; t.checkCompleted(CoyoteOper::LOCAL_WRITE) != n; ++spins)
        if ((spins & 0x3FFu) == 0 && std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error(what + ": " + std::to_string(t.checkCompleted(CoyoteOper::LOCAL_WRITE)) +
                                     " of " + std::to_string(n) + " LOCAL_WRITE completions after 30 s");
}

/// The seed of the data the client sends in one run (different for every run, so a stale buffer shows).
unsigned seed_of(uint32_t size, uint32_t n, int run, bool write) {
    return (size / 64 + n * 7 + static_cast<unsigned>(run) * 13 + (write ? 1u : 0u)) & 0xFFu;
}

/// One run of the sweep: WRITE or READ, message size, messages, repetition.
struct Run {
    bool write;
    uint32_t size;
    uint32_t n;
    int run;
    std::string what() const {
        return std::string(write ? "WRITE" : "READ") + " size " + std::to_string(size) + " x" + std::to_string(n) +
               " run " + std::to_string(run);
    }
};

/// Calls `fn(run)` for every run, in the order both sides go through them.
template <typename Fn>
void for_each_run(Fn&& fn) {
    for (bool write : {true, false})
        for (uint32_t size : k_sizes)
            for (uint32_t n : k_transfers)
                for (int run = 0; run < k_runs; ++run) fn(Run{write, size, n, run});
}

/// The client (rank 0 of the example): writes or reads, then waits for n LOCAL_WRITE completions.
int client(const char* wire, uint16_t port) {
    coyote_test::child_env(wire);
    coyote::cThread t(0, ::getpid());
    auto* buf = static_cast<uint8_t*>(t.initRDMA(k_buf, port, "127.0.0.1"));
    for_each_run([&](const Run& r) {
        const std::string what = r.what();
        if (r.write) coyote_test::fill(buf, r.size, seed_of(r.size, r.n, r.run, true));
        std::memset(buf + k_max, 0, r.size);
        t.clearCompleted();
        t.connSync(true); // the server prepared its side of this run
        const rdmaSg sg{.local_offs = r.write ? 0 : k_max, .remote_offs = r.write ? k_max : 0, .len = r.size};
        for (uint32_t i = 0; i < r.n; ++i)
            t.invoke(r.write ? CoyoteOper::REMOTE_RDMA_WRITE : CoyoteOper::REMOTE_RDMA_READ, sg);
        spin_until(t, r.n, "client " + what);
        const int64_t bad = coyote_test::mismatch(buf + k_max, 0, r.size, seed_of(r.size, r.n, r.run, r.write));
        check(bad < 0, "client " + what + ": the data that came back differs at byte " + std::to_string(bad) + " (" +
                           std::to_string(bad < 0 ? 0 : buf[k_max + static_cast<uint64_t>(bad)]) + ")");
        t.connSync(true); // done with the server's buffer: it may prepare the next run
    });
    t.connSync(true);
    return 0;
}

/// The server: for WRITE runs polls for the client's n writes, checks them and writes them back; passive for READs.
int server(const char* wire, uint16_t port) {
    coyote_test::child_env(wire);
    coyote::cThread t(0, ::getpid());
    auto* buf = static_cast<uint8_t*>(t.initRDMA(k_buf, port));
    for_each_run([&](const Run& r) {
        if (!r.write) coyote_test::fill(buf, r.size, seed_of(r.size, r.n, r.run, false));
        std::memset(buf + k_max, 0, r.size);
        t.clearCompleted();
        t.connSync(false);
        if (r.write) {
            spin_until(t, r.n, "server " + r.what());
            check(coyote_test::mismatch(buf + k_max, 0, r.size, seed_of(r.size, r.n, r.run, true)) < 0,
                  "server " + r.what() + ": the client's data");
            const rdmaSg back{.local_offs = k_max, .remote_offs = k_max, .len = r.size};
            for (uint32_t i = 0; i < r.n; ++i) t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, back);
        }
        t.connSync(false); // the client checked this run
    });
    t.connSync(false);
    return 0;
}

class PerfRdmaPattern : public testing::TestWithParam<const char*> {};

}  // namespace

TEST_P(PerfRdmaPattern, WritesComeBackAndReadsArriveOnEveryRun) {
    const char* wire = GetParam();
    const uint16_t port = coyote_test::free_port();
    ASSERT_NE(port, 0);
    Child srv([&] { return server(wire, port); }, 240);
    Child cli([&] { return client(wire, port); }, 240);
    EXPECT_EQ(cli.wait(std::chrono::seconds(250)), 0);
    EXPECT_EQ(srv.wait(std::chrono::seconds(250)), 0);
}

INSTANTIATE_TEST_SUITE_P(Wires, PerfRdmaPattern, testing::Values("shm", "tcp"),
                         [](const testing::TestParamInfo<const char*>& i) { return std::string(i.param); });
