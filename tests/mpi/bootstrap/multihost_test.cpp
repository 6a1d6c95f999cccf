// The MPI layer across hosts: run by multihost_test.sh, which places the ranks on fake hosts (network, UTS and
// mount namespaces, one Open MPI daemon each; see docs/mpi.md). Checks node_count / node_index / host against
// the hosts the launcher made, the default device per host and the collision check per host, a QpSet whose queue
// pairs cross hosts (RDMA WRITE and READ verified, the TCP wire between hosts and shm within one), and allreduce
// across hosts against the sum computed on the CPU. Skipped when not started by the script.
#include <coyote/mpi/collectives.hpp>
#include <coyote/mpi/mpi.hpp>

#include <gtest/gtest.h>

#include "bootstrap_test_support.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace coyote::mpi;
using coyote::CoyoteOper;
using coyote_test::wait_count;

namespace {

/// What multihost_test.sh told this rank: the number of hosts, this rank's host and its index.
struct FakeHosts {
    int count = 0;
    int index = -1;
    std::string name;
};

FakeHosts fake_hosts() {
    FakeHosts h;
    const char* n = std::getenv("COYOTE_TEST_HOSTS");
    const char* i = std::getenv("COYOTE_TEST_HOST_INDEX");
    const char* name = std::getenv("COYOTE_TEST_HOST");
    if (!n || !i || !name) return h;
    h.count = std::atoi(n);
    h.index = std::atoi(i);
    h.name = name;
    return h;
}

#define REQUIRE_FAKE_HOSTS(h)                                                                          \
    const FakeHosts h = fake_hosts();                                                                  \
    if (h.count < 2) GTEST_SKIP() << "not started by tests/mpi/multihost_test.sh (no fake hosts)"

/// Every rank's value of `v`.
std::vector<int> allgather_int(const Communicator& comm, int v) {
    std::vector<int> all(static_cast<std::size_t>(comm.size()));
    check_mpi(MPI_Allgather(&v, 1, MPI_INT, all.data(), 1, MPI_INT, comm.get()), "MPI_Allgather", "test");
    return all;
}

uint8_t pattern_byte(int from, int to, std::size_t i) {
    return static_cast<uint8_t>((from * 37 + to * 11 + static_cast<int>(i % 251)) & 0xFF);
}

std::string debug_of(const coyote::cThread& t) {
    testing::internal::CaptureStdout();
    t.printDebug();
    return testing::internal::GetCapturedStdout();
}

}  // namespace

TEST(MultiHost, NodesAreTheFakeHosts) {
    REQUIRE_FAKE_HOSTS(h);
    Communicator comm;
    const int per_host = comm.size() / h.count;
    ASSERT_EQ(comm.size() % h.count, 0);
    EXPECT_EQ(comm.node_count(), h.count);
    EXPECT_EQ(comm.node_index(), h.index);
    EXPECT_EQ(comm.node_index(), comm.rank() / per_host) << "ranks are placed by slot";
    EXPECT_EQ(comm.host(), h.name) << "MPI_Get_processor_name names the fake host";
    EXPECT_EQ(comm.local_size(), per_host);
    EXPECT_EQ(comm.local_rank(), comm.rank() % per_host);
    // Ranks agree: same node index <=> same host name.
    const auto index = allgather_int(comm, comm.node_index());
    std::vector<char> names(static_cast<std::size_t>(comm.size()) * 64);
    char mine[64] = {0};
    std::strncpy(mine, comm.host().c_str(), sizeof(mine) - 1);
    check_mpi(MPI_Allgather(mine, 64, MPI_CHAR, names.data(), 64, MPI_CHAR, comm.get()), "MPI_Allgather", "names");
    for (int r = 0; r < comm.size(); ++r)
        EXPECT_EQ(index[static_cast<std::size_t>(r)] == comm.node_index(),
                  std::string(names.data() + r * 64) == comm.host())
            << "rank " << r << " (node " << index[static_cast<std::size_t>(r)] << ", host " << names.data() + r * 64
            << ")";
}

TEST(MultiHost, DeviceSelectionIsPerHost) {
    REQUIRE_FAKE_HOSTS(h);
    Communicator comm;
    // Default: device = the rank's index on its host, so every host numbers its devices from 0.
    const auto dev = select_device(comm);
    EXPECT_EQ(dev.backend, "sim");
    EXPECT_EQ(dev.source, "default");
    EXPECT_EQ(dev.host_rank, comm.local_rank());
    EXPECT_EQ(dev.device, static_cast<uint32_t>(comm.local_rank()));
    EXPECT_EQ(dev.vfid, 0);

    // The first rank of every host on device 7: one device per host, no collision.
    const int per_host = comm.size() / h.count;
    std::string spread;
    for (int r = 0; r < comm.size(); ++r)
        spread += std::to_string(r) + ":" + (r % per_host == 0 ? "7" : std::to_string(r % per_host)) + ":0,";
    DeviceSelectOptions o;
    o.device_map = spread;
    const auto mapped = select_device(comm, o);
    EXPECT_EQ(mapped.device, comm.local_rank() == 0 ? 7u : static_cast<uint32_t>(comm.local_rank())) << spread;

    // The first two ranks of the last host on device 7: a collision on that host, named on every rank.
    if (per_host < 2) return;
    const int a = comm.size() - per_host, b = a + 1;
    std::string clash;
    for (int r = 0; r < comm.size(); ++r)
        clash += std::to_string(r) + ":" + (r == a || r == b ? "7" : std::to_string(r % per_host)) + ":0,";
    o.device_map = clash;
    try {
        (void)select_device(comm, o);
        ADD_FAILURE() << "no collision reported for " << clash;
    } catch (const coyote::Error& e) {
        const std::string w = e.what();
        EXPECT_NE(w.find("ranks " + std::to_string(a) + " and " + std::to_string(b)), std::string::npos) << w;
        EXPECT_NE(w.find("n" + std::to_string(h.count)), std::string::npos) << "names the last host: " << w;
    }
}

TEST(MultiHost, QpSetWritesAndReadsAcrossHosts) {
    REQUIRE_FAKE_HOSTS(h);
    Communicator comm;
    const auto dev = select_device(comm);
    WiringOptions wo;
    wo.buffer_size = 1u << 20;
    wo.pattern = PeerPattern::all;
    QpSet qps(comm, dev, wo);
    const int me = comm.rank();
    const auto node = allgather_int(comm, comm.node_index());
    ASSERT_EQ(qps.peers().size(), static_cast<std::size_t>(comm.size() - 1));

    // Each peer's queue pair names the peer's vFPGA, over TCP to another host and shared memory on this one.
    const auto ip = allgather_int(comm, static_cast<int>(qps.thread(qps.peers().front()).getQpair()->local.ip_addr));
    for (int p : qps.peers()) {
        const auto& qp = *qps.thread(p).getQpair();
        EXPECT_EQ(qp.remote.ip_addr, static_cast<uint32_t>(ip[static_cast<std::size_t>(p)])) << "peer " << p;
        const bool remote = node[static_cast<std::size_t>(p)] != comm.node_index();
        const std::string dbg = debug_of(qps.thread(p));
        EXPECT_NE(dbg.find(remote ? "(tcp wire)" : "(shm wire)"), std::string::npos) << "peer " << p << ":\n" << dbg;
    }

    // WRITE: 256 KiB from offset 0 of our buffer for p into offset 512 KiB of p's buffer for us.
    constexpr uint32_t len = 256u << 10, dst = 512u << 10, rd = 768u << 10;
    for (int p : qps.peers()) {
        auto* b = static_cast<uint8_t*>(qps.buffer(p));
        for (std::size_t i = 0; i < len; ++i) b[i] = pattern_byte(me, p, i);
        std::memset(b + dst, 0, len);
        std::memset(b + rd, 0, len);
        qps.thread(p).clearCompleted();
    }
    barrier(comm);
    for (int p : qps.peers())
        qps.thread(p).invoke(CoyoteOper::REMOTE_RDMA_WRITE,
                             coyote::rdmaSg{.local_offs = 0, .remote_offs = dst, .len = len});
    for (int p : qps.peers()) {
        auto& t = qps.thread(p);
        ASSERT_TRUE(wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, 1)) << "WRITE to rank " << p << " not completed";
        ASSERT_TRUE(wait_count(t, CoyoteOper::LOCAL_WRITE, 1)) << "no WRITE from rank " << p;
        const auto* b = static_cast<const uint8_t*>(qps.buffer(p));
        std::size_t bad = 0;
        for (std::size_t i = 0; i < len; ++i) bad += b[dst + i] != pattern_byte(p, me, i);
        EXPECT_EQ(bad, 0u) << "bytes WRITTEN by rank " << p << " differ";
    }
    barrier(comm);

    // READ: each peer's source region (what p holds for us) into offset 768 KiB of our buffer.
    for (int p : qps.peers())
        qps.thread(p).invoke(CoyoteOper::REMOTE_RDMA_READ,
                             coyote::rdmaSg{.local_offs = rd, .remote_offs = 0, .len = len});
    for (int p : qps.peers()) {
        auto& t = qps.thread(p);
        ASSERT_TRUE(wait_count(t, CoyoteOper::REMOTE_RDMA_READ, 1)) << "READ from rank " << p << " not completed";
        const auto* b = static_cast<const uint8_t*>(qps.buffer(p));
        std::size_t bad = 0;
        for (std::size_t i = 0; i < len; ++i) bad += b[rd + i] != pattern_byte(p, me, i);
        EXPECT_EQ(bad, 0u) << "bytes READ from rank " << p << " differ";
    }
    barrier(comm);
}

TEST(MultiHost, AllreduceAcrossHostsMatchesTheCpu) {
    REQUIRE_FAKE_HOSTS(h);
    Communicator comm;
    Collectives coll(comm, select_device(comm));
    const int n = comm.size();
    // One element and 4000 bytes (recursive doubling), 24000 bytes (Rabenseifner), 1 MiB (ring), default thresholds.
    for (std::size_t count : {std::size_t{1}, std::size_t{1000}, std::size_t{6000}, std::size_t{1} << 18}) {
        std::vector<int32_t> v(count);
        std::vector<float> f(count);
        for (std::size_t i = 0; i < count; ++i) {
            v[i] = static_cast<int32_t>(i * 7 + static_cast<std::size_t>(comm.rank()) * 1000003u) % 100000;
            f[i] = static_cast<float>((i + static_cast<std::size_t>(comm.rank()) * 3) % 1024);
        }
        coll.allreduce(std::span<int32_t>(v), Op::sum);
        const std::string alg = coll.last_algorithm();
        coll.allreduce(std::span<float>(f), Op::sum);
        std::size_t bad = 0, bad_f = 0;
        for (std::size_t i = 0; i < count; ++i) {
            int64_t want = 0;
            float want_f = 0;
            for (int r = 0; r < n; ++r) {
                want += static_cast<int32_t>(i * 7 + static_cast<std::size_t>(r) * 1000003u) % 100000;
                want_f += static_cast<float>((i + static_cast<std::size_t>(r) * 3) % 1024); // exact: small integers
            }
            bad += v[i] != want;
            bad_f += f[i] != want_f;
        }
        EXPECT_EQ(bad, 0u) << count << " int32 (" << alg << ")";
        EXPECT_EQ(bad_f, 0u) << count << " float32 (" << coll.last_algorithm() << ")";
        if (comm.rank() == 0) std::printf("allreduce of %zu int32 across hosts: %s\n", count, alg.c_str());
    }
}

// Collectives objects made and destroyed in a row, each followed by MPI calls on the job's communicator. The
// teardown barrier used to give up as soon as a peer on another host closed its liveness connection, which it
// does once it has left that barrier, and then freed the barrier's communicator with the barrier still active
// here: Open MPI progressed it on the freed communicator in the next MPI call (SIGSEGV in mca_pml_ob1_isend).
TEST(MultiHost, CollectivesTeardownAcrossHosts) {
    REQUIRE_FAKE_HOSTS(h);
    Communicator comm;
    const auto dev = select_device(comm);
    for (int round = 0; round < 20; ++round) {
        {
            Collectives coll(comm, dev);
            int32_t v = comm.rank() + round;
            coll.allreduce(std::span<int32_t>(&v, 1), Op::sum);
            EXPECT_EQ(v, comm.size() * (comm.size() - 1) / 2 + comm.size() * round) << "round " << round;
        }
        int one = 1, sum = 0;
        for (int i = 0; i < 4; ++i)
            check_mpi(MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce",
                      "after teardown");
        EXPECT_EQ(sum, comm.size());
    }
}
