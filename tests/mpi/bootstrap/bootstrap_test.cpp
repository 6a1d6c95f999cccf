// Communicator, errors, launch check, device selection, peer patterns, bootstrap collectives, MpiOob.
// Runs with 2, 3 and 4 ranks; needs no vFPGA.
#include <coyote/mpi/mpi.hpp>

#include <gtest/gtest.h>

#include <sched.h>
#include <unistd.h>

#include "support/env_guard.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

using namespace coyote::mpi;
using coyote_test::EnvGuard;

namespace {

bool has_code(const coyote::Error& e, coyote::Errc c) { return e.code() == coyote::make_error_code(c); }

}  // namespace

TEST(Communicator, DuplicatesAndKnowsTheNode) {
    Communicator comm;
    int world_rank = 0, world_size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    EXPECT_EQ(comm.rank(), world_rank);
    EXPECT_EQ(comm.size(), world_size);
    EXPECT_NE(comm.get(), MPI_COMM_WORLD);
    int cmp = MPI_UNEQUAL;
    MPI_Comm_compare(comm.get(), MPI_COMM_WORLD, &cmp);
    EXPECT_EQ(cmp, MPI_CONGRUENT);
    // Node view: consistent whatever the placement (one host, or several MPI nodes).
    ASSERT_GE(comm.node_count(), 1);
    EXPECT_GE(comm.node_index(), 0);
    EXPECT_LT(comm.node_index(), comm.node_count());
    EXPECT_GE(comm.local_rank(), 0);
    EXPECT_LT(comm.local_rank(), comm.local_size());
    int node_members = 0;  // ranks reporting this rank's node index must number local_size
    std::vector<int> idx(static_cast<std::size_t>(comm.size()));
    const int mine = comm.node_index();
    MPI_Allgather(&mine, 1, MPI_INT, idx.data(), 1, MPI_INT, comm.get());
    for (int v : idx) node_members += v == mine;
    EXPECT_EQ(node_members, comm.local_size());
    int leaders = comm.local_rank() == 0 ? 1 : 0, total_leaders = 0;
    MPI_Allreduce(&leaders, &total_leaders, 1, MPI_INT, MPI_SUM, comm.get());
    EXPECT_EQ(total_leaders, comm.node_count());
    if (comm.node_count() == 1) {
        EXPECT_EQ(comm.local_size(), comm.size());
        EXPECT_EQ(comm.local_rank(), comm.rank());
    }
    EXPECT_FALSE(comm.host().empty());
}

TEST(Communicator, LocalCoresAreTheCpusTheNodesRanksMayUse) {
    // The union of the affinity masks of the ranks on this node, gathered here rank by rank; then every rank of the
    // node confined to one of those CPUs (as taskset or a launcher's binding would): 1, whatever the machine has.
    Communicator comm;
    cpu_set_t mine;
    CPU_ZERO(&mine);
    ASSERT_EQ(::sched_getaffinity(0, sizeof(mine), &mine), 0);
    std::vector<cpu_set_t> all(static_cast<std::size_t>(comm.local_size()));
    MPI_Allgather(&mine, sizeof(cpu_set_t), MPI_BYTE, all.data(), sizeof(cpu_set_t), MPI_BYTE, comm.node_comm());
    cpu_set_t any;
    CPU_ZERO(&any);
    for (auto& set : all) CPU_OR(&any, &any, &set);
    EXPECT_EQ(comm.local_cores(), CPU_COUNT(&any));
    EXPECT_GE(comm.local_cores(), 1);

    std::size_t first = 0;
    while (!CPU_ISSET(first, &any)) ++first;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    const int pinned = ::sched_setaffinity(0, sizeof(one), &one) == 0 ? 1 : 0;
    int everywhere = 0;
    MPI_Allreduce(&pinned, &everywhere, 1, MPI_INT, MPI_MIN, comm.get());
    if (everywhere == 1) {
        const Communicator confined(comm.get());
        EXPECT_EQ(confined.local_cores(), 1) << "every rank of this node runs on CPU " << first;
    }
    ASSERT_EQ(::sched_setaffinity(0, sizeof(mine), &mine), 0);
    if (everywhere != 1) GTEST_SKIP() << "a rank could not confine itself to CPU " << first << " (its cpuset)";
}

TEST(Communicator, MoveKeepsTheHandleAndUserCommSurvives) {
    MPI_Comm user = MPI_COMM_NULL;
    MPI_Comm_dup(MPI_COMM_WORLD, &user);
    {
        Communicator a(user);
        Communicator b(std::move(a));
        EXPECT_NE(b.get(), user);
        barrier(b);
    }
    int size = 0;
    EXPECT_EQ(MPI_Comm_size(user, &size), MPI_SUCCESS);  // never freed by the Communicator
    MPI_Comm_free(&user);
}

// A moved-from handle reads size 0 and refuses use, naming it (before: rank and size stayed, and the next call
// dereferenced a null handle).
TEST(Communicator, AMovedFromHandleRefusesUse) {
    Communicator a;
    const int size = a.size();
    Communicator b(std::move(a));
    EXPECT_EQ(b.size(), size);
    EXPECT_TRUE(b.valid());
    EXPECT_FALSE(a.valid()); // NOLINT(bugprone-use-after-move): what this test checks
    EXPECT_EQ(a.size(), 0);  // NOLINT(bugprone-use-after-move)
    auto refused = [&](auto&& fn, const char* call) {
        try {
            fn();
            ADD_FAILURE() << call << " accepted a moved-from Communicator";
        } catch (const coyote::Error& e) {
            EXPECT_EQ(e.code(), coyote::make_error_code(coyote::Errc::invalid_argument)) << e.what();
            EXPECT_NE(std::string(e.what()).find("moved from"), std::string::npos) << e.what();
        }
    };
    refused([&] { (void)a.get(); }, "get");
    refused([&] { barrier(a); }, "barrier");
    refused([&] { (void)select_device(a); }, "select_device");
    refused([&] { conn_sync(a, 1); }, "conn_sync");
    refused([&] { (void)make_mpi_oob(a, 1); }, "make_mpi_oob");
    Communicator c;
    c = std::move(b);
    EXPECT_EQ(c.size(), size);
    barrier(c);
}

TEST(Communicator, SubCommunicatorsHaveTheirOwnRanks) {
    Communicator world;
    MPI_Comm half = MPI_COMM_NULL;
    MPI_Comm_split(world.get(), world.rank() % 2, world.rank(), &half);
    {
        Communicator sub(half);
        EXPECT_EQ(sub.rank(), world.rank() / 2);
        // The local rank counts the members of `sub` on this node (not of the world): from the world's node
        // grouping (its leader's world rank names the node), gathered over `half`.
        MPI_Comm node = MPI_COMM_NULL;
        MPI_Comm_split_type(world.get(), MPI_COMM_TYPE_SHARED, world.rank(), MPI_INFO_NULL, &node);
        int leader = world.rank();
        MPI_Allreduce(MPI_IN_PLACE, &leader, 1, MPI_INT, MPI_MIN, node);
        MPI_Comm_free(&node);
        std::vector<int> leaders(static_cast<size_t>(sub.size()));
        MPI_Allgather(&leader, 1, MPI_INT, leaders.data(), 1, MPI_INT, half);
        const auto expected = std::count(leaders.begin(), leaders.begin() + sub.rank(), leader);
        EXPECT_EQ(sub.local_rank(), expected);
    }
    MPI_Comm_free(&half);
}

TEST(Errors, MpiFailuresBecomeCoyoteErrors) {
    Communicator comm;
    int v = 0;
    try {
        check_mpi(MPI_Send(&v, 1, MPI_INT, comm.size() + 5, 0, comm.get()), "MPI_Send", "to a rank that does not exist");
        FAIL() << "MPI_Send to an invalid rank returned success";
    } catch (const coyote::Error& e) {
        EXPECT_TRUE(has_code(e, coyote::Errc::mpi));
        EXPECT_EQ(e.call(), "MPI_Send");
        EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("MPI error"), std::string::npos) << e.what();
    }
    EXPECT_THROW(Communicator(MPI_COMM_NULL), coyote::Error);
}

TEST(Environment, AdoptsAnInitialisedMpi) {
    Environment env;  // MPI is initialised by the test main
    EXPECT_FALSE(env.owns());
    EXPECT_GE(env.thread_level(), MPI_THREAD_FUNNELED);
    EXPECT_STREQ(thread_level_name(MPI_THREAD_MULTIPLE), "MPI_THREAD_MULTIPLE");
}

// A value that is no MPI thread level is refused before MPI sees it (before: Open MPI aborted the job, saying
// MPI_Init_thread ran before MPI_Init).
TEST(Environment, AThreadLevelThatIsNoneIsRefusedByName) {
    EnvironmentOptions o;
    o.thread_level = 99;
    try {
        Environment env(o);
        FAIL() << "thread level 99 accepted";
    } catch (const coyote::Error& e) {
        EXPECT_EQ(e.code(), coyote::make_error_code(coyote::Errc::invalid_argument)) << e.what();
        EXPECT_NE(std::string(e.what()).find("thread_level 99"), std::string::npos) << e.what();
    }
}

TEST(Environment, TooLowThreadLevelIsAClearError) {
    int provided = 0;
    MPI_Query_thread(&provided);
    if (provided >= MPI_THREAD_MULTIPLE) GTEST_SKIP() << "MPI already provides MPI_THREAD_MULTIPLE";
    EnvironmentOptions o;
    o.thread_level = MPI_THREAD_MULTIPLE;
    try {
        Environment env(o);
        FAIL() << "no error for a too-low thread level";
    } catch (const coyote::Error& e) {
        EXPECT_NE(std::string(e.what()).find("MPI_THREAD_MULTIPLE"), std::string::npos) << e.what();
    }
}

TEST(Launch, SingletonUnderAMultiRankLauncherIsDetected) {
    EXPECT_NO_THROW(check_launch(4, {{"SLURM_NTASKS", "4"}}));
    EXPECT_NO_THROW(check_launch(1, {{"SLURM_NTASKS", "1"}}));
    EXPECT_NO_THROW(check_launch(1, {}));
    try {
        check_launch(1, {{"OMPI_COMM_WORLD_SIZE", "4"}});
        FAIL();
    } catch (const coyote::Error& e) {
        EXPECT_NE(std::string(e.what()).find("OMPI_COMM_WORLD_SIZE=4"), std::string::npos) << e.what();
    }
    EXPECT_THROW(check_launch(1, {{"PMI_SIZE", "2"}}), coyote::Error);
    EXPECT_NO_THROW(check_launch(1, {{"PMI_SIZE", "2"}, {"COYOTE_MPI_ALLOW_SINGLETON", "1"}}));
    EXPECT_NO_THROW(check_launch());  // this job was launched properly
}

TEST(Bootstrap, TimeoutFromEnvironment) {
    {
        EnvGuard e("COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS", "1234");
        EXPECT_EQ(BootstrapOptions::from_env().timeout.count(), 1234);
    }
    EnvGuard e("COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS", "soon");
    EXPECT_THROW((void)BootstrapOptions::from_env(), coyote::Error);
}

TEST(Bootstrap, CollectivesCarryEveryRanksBytes) {
    Communicator comm;
    const auto opt = BootstrapOptions::from_env();
    const int me = comm.rank();
    const int n = comm.size();
    arrive(comm, "test arrival", opt);
    const int64_t mine = 1000 + me;
    const auto all = allgather_bytes(comm, &mine, sizeof(mine), "test allgather", opt);
    ASSERT_EQ(all.size(), sizeof(int64_t) * static_cast<std::size_t>(n));
    for (int r = 0; r < n; ++r) {
        int64_t v = 0;
        std::memcpy(&v, all.data() + sizeof(v) * static_cast<std::size_t>(r), sizeof(v));
        EXPECT_EQ(v, 1000 + r);
    }
    const std::size_t slot = 8;
    std::vector<std::byte> send(slot * static_cast<std::size_t>(n));
    for (int r = 0; r < n; ++r) {
        const int32_t pair[2] = {me, r};
        std::memcpy(send.data() + slot * static_cast<std::size_t>(r), pair, slot);
    }
    const auto got = alltoall_bytes(comm, send, slot, "test alltoall", opt);
    for (int r = 0; r < n; ++r) {
        int32_t pair[2];
        std::memcpy(pair, got.data() + slot * static_cast<std::size_t>(r), slot);
        EXPECT_EQ(pair[0], r);
        EXPECT_EQ(pair[1], me);
    }
    EXPECT_THROW((void)alltoall_bytes(comm, send, slot + 1, "bad", opt), coyote::Error);
}

TEST(Patterns, Neighbours) {
    EXPECT_EQ(peers_for(PeerPattern::all, 1, 4), (std::vector<int>{0, 2, 3}));
    EXPECT_EQ(peers_for(PeerPattern::ring, 0, 4), (std::vector<int>{1, 3}));
    EXPECT_EQ(peers_for(PeerPattern::ring, 0, 2), (std::vector<int>{1}));
    EXPECT_TRUE(peers_for(PeerPattern::ring, 0, 1).empty());
    EXPECT_EQ(peers_for(PeerPattern::recursive_doubling, 5, 8), (std::vector<int>{1, 4, 7}));
    EXPECT_EQ(peers_for(PeerPattern::binomial, 0, 8), (std::vector<int>{1, 2, 4}));
    EXPECT_EQ(peers_for(PeerPattern::recursive_doubling, 2, 3), (std::vector<int>{0}));  // 2^1 = 3 is out of range
    EXPECT_EQ(peers_for(PeerPattern::explicit_list, 0, 4, {3, 1, 3}), (std::vector<int>{1, 3}));
    EXPECT_THROW((void)peers_for(PeerPattern::explicit_list, 0, 4, {0}), coyote::Error);
    EXPECT_THROW((void)peers_for(PeerPattern::explicit_list, 0, 4, {4}), coyote::Error);
    EXPECT_THROW((void)peers_for(PeerPattern::all, 4, 4), coyote::Error);
    try { // a value outside the enum (before: no peers, silently)
        (void)peers_for(static_cast<PeerPattern>(42), 0, 4);
        ADD_FAILURE() << "PeerPattern 42 accepted";
    } catch (const coyote::Error& e) {
        EXPECT_NE(std::string(e.what()).find("peer pattern 42"), std::string::npos) << e.what();
    }
    // Symmetry of every named pattern.
    for (auto p : {PeerPattern::all, PeerPattern::ring, PeerPattern::recursive_doubling, PeerPattern::binomial})
        for (int n = 1; n <= 9; ++n)
            for (int r = 0; r < n; ++r)
                for (int q : peers_for(p, r, n)) {
                    const auto back = peers_for(p, q, n);
                    EXPECT_NE(std::find(back.begin(), back.end(), r), back.end())
                        << pattern_name(p) << " n=" << n << " " << r << "->" << q;
                }
}

TEST(DeviceSelection, MapParsing) {
    const auto m = parse_device_map("0:0:1, 1:2:3,");
    ASSERT_EQ(m.size(), 2u);
    EXPECT_EQ(m[1].rank, 1);
    EXPECT_EQ(m[1].device, 2u);
    EXPECT_EQ(m[1].vfid, 3);
    EXPECT_THROW((void)parse_device_map("0:0"), coyote::Error);
    EXPECT_THROW((void)parse_device_map("0:0:1:2"), coyote::Error);
    EXPECT_THROW((void)parse_device_map("0:x:1"), coyote::Error);
    EXPECT_THROW((void)parse_device_map("0:0:16"), coyote::Error);
    EXPECT_THROW((void)parse_device_map("0:0:0,0:1:0"), coyote::Error);
    // Errors name where the map came from.
    try {
        (void)parse_device_map("0:0", "DeviceSelectOptions::device_map");
        ADD_FAILURE() << "accepted";
    } catch (const coyote::Error& e) {
        EXPECT_EQ(e.call(), "DeviceSelectOptions::device_map") << e.what();
    }
}

// DeviceSelectOptions take the device map's ranges (before: device 4e9 and vfid -1 passed, failing later in cThread).
TEST(DeviceSelection, OptionsOutOfRangeAreRefused) {
    Communicator comm;
    for (const auto& [dev, vf, named] : {std::tuple<uint32_t, int32_t, const char*>{4000000000u, 0, "device 4000000000"},
                                         {0u, -1, "vfid -1"},
                                         {0u, 16, "vfid 16"}}) {
        DeviceSelectOptions o;
        o.device = dev;
        o.vfid = vf;
        try {
            (void)select_device(comm, o);
            ADD_FAILURE() << named << " accepted";
        } catch (const coyote::Error& e) {
            EXPECT_NE(std::string(e.what()).find(named), std::string::npos) << e.what();
        }
    }
}

/// The backend the test environment selects (COYOTE_BACKEND; the MPI tests run with sim unless told otherwise).
std::string env_backend() {
    const char* b = std::getenv("COYOTE_BACKEND");
    return b != nullptr && *b != '\0' ? b : "sim";
}

/// vFPGA files of device 0 present on this host, as Coyote's driver names them (/dev/coyote_fpga_<d>_v<v>).
int hw_vfpga_files() {
    int n = 0;
    while (n < 16 && ::access(("/dev/coyote_fpga_0_v" + std::to_string(n)).c_str(), F_OK) == 0) ++n;
    return n;
}

/// The default placement of host-local rank `host_rank`: on sim one device per rank, vFPGA 0; on hw the ranks of a
/// host share device 0 and take a vFPGA each when its files show more than one (else all take vFPGA 0).
uint32_t default_device(int host_rank) { return env_backend() == "sim" ? static_cast<uint32_t>(host_rank) : 0u; }
int default_vfid(int host_rank) { return env_backend() == "sim" || hw_vfpga_files() <= 1 ? 0 : host_rank; }

TEST(DeviceSelection, Defaults) {
    EXPECT_EQ(default_assignment("sim", 3, 0).device, 3u);
    EXPECT_EQ(default_assignment("sim", 3, 0).vfid, 0);
    EXPECT_EQ(default_assignment("hw", 3, 4).device, 0u);
    EXPECT_EQ(default_assignment("hw", 3, 4).vfid, 3);
    EXPECT_EQ(default_assignment("hw", 3, 1).vfid, 0);
    Communicator comm;
    EnvGuard m("COYOTE_MPI_DEVICE_MAP", nullptr), d("COYOTE_MPI_DEVICE", nullptr), v("COYOTE_MPI_VFID", nullptr);
    const auto a = select_device(comm);
    EXPECT_EQ(a.backend, env_backend());
    EXPECT_EQ(a.device, default_device(a.host_rank));
    if (comm.node_count() == 1) {
        EXPECT_EQ(a.host_rank, comm.local_rank());
    }
    EXPECT_EQ(a.vfid, default_vfid(a.host_rank));
    EXPECT_EQ(a.source, "default");
    // Host-local ranks are 0..k-1 on each host: their sum over all ranks is at most that of 0..size-1.
    int hr = a.host_rank, sum = 0;
    MPI_Allreduce(&hr, &sum, 1, MPI_INT, MPI_SUM, comm.get());
    EXPECT_LE(sum, comm.size() * (comm.size() - 1) / 2);
}

TEST(DeviceSelection, EnvironmentAndOptionsOverride) {
    Communicator comm;
    EnvGuard m("COYOTE_MPI_DEVICE_MAP", nullptr), d("COYOTE_MPI_DEVICE", nullptr), v("COYOTE_MPI_VFID", nullptr);
    {
        std::string map;
        for (int r = 0; r < comm.size(); ++r) map += std::to_string(r) + ":" + std::to_string(10 + r) + ":1,";
        EnvGuard e("COYOTE_MPI_DEVICE_MAP", map.c_str());
        const auto a = select_device(comm);
        EXPECT_EQ(a.device, static_cast<uint32_t>(10 + comm.rank()));
        EXPECT_EQ(a.vfid, 1);
        EXPECT_EQ(a.source, "COYOTE_MPI_DEVICE_MAP");
    }
    {
        // On hw the ranks of a host share device 0: each takes another of its vFPGAs (one value would collide).
        const int vf = env_backend() == "sim" ? 2 : (comm.local_rank() + 1) % std::max(1, hw_vfpga_files());
        EnvGuard e("COYOTE_MPI_VFID", std::to_string(vf).c_str());
        const auto a = select_device(comm);  // the device stays the default one
        EXPECT_EQ(a.vfid, vf);
        EXPECT_EQ(a.device, default_device(a.host_rank));
    }
    DeviceSelectOptions o;
    o.device = static_cast<uint32_t>(20 + comm.rank());
    const auto a = select_device(comm, o);
    EXPECT_EQ(a.device, static_cast<uint32_t>(20 + comm.rank()));
    EXPECT_EQ(a.source, "options");
}

TEST(DeviceSelection, CollisionNamesBothRanksOnEveryRank) {
    Communicator comm;
    // Ranks 0 and last share device 7, vFPGA 0; the others get distinct devices.
    std::string map;
    const int last = comm.size() - 1;
    for (int r = 0; r < comm.size(); ++r) map += std::to_string(r) + ":" + (r == 0 || r == last ? "7" : std::to_string(r)) + ":0,";
    DeviceSelectOptions o;
    o.device_map = map;
    try {
        (void)select_device(comm, o);
        FAIL() << "no collision reported for " << map;
    } catch (const coyote::Error& e) {
        const std::string w = e.what();
        EXPECT_NE(w.find("ranks 0 and " + std::to_string(last)), std::string::npos) << w;
        EXPECT_NE(w.find("device 7"), std::string::npos) << w;
    }
}

TEST(DeviceSelection, MissingMapEntryIsAnError) {
    Communicator comm;
    DeviceSelectOptions o;
    o.device_map = "0:0:0";
    o.check_collisions = false;
    o.check_exists = false;
    // Every rank reports the missing entry (the first one: rank 1), not only the rank without one.
    try {
        (void)select_device(comm, o);
        FAIL() << "no error for a map without entries for ranks 1..";
    } catch (const coyote::Error& e) {
        EXPECT_NE(std::string(e.what()).find("has no entry for rank 1"), std::string::npos) << e.what();
    }
}

TEST(DeviceSelection, NonexistentHardwareDeviceIsNamed) {
    Communicator comm;
    EnvGuard e("COYOTE_BACKEND", "hw");
    DeviceSelectOptions o;
    o.device = 42;
    o.vfid = comm.rank() % 16;
    try {
        (void)select_device(comm, o);
        FAIL() << "no error for a missing device file";
    } catch (const coyote::Error& err) {
        EXPECT_TRUE(has_code(err, coyote::Errc::no_device));
        EXPECT_NE(std::string(err.what()).find("/dev/coyote_fpga_42_v0"), std::string::npos) << err.what();
    }
}

TEST(MpiOob, ExchangeAcksAndConnSyncWithAPartner) {
    Communicator comm;
    const int me = comm.rank();
    const int partner = me ^ 1;
    if (partner < comm.size()) {
        MpiOob oob(comm, partner);
        EXPECT_EQ(oob.is_client(), me < partner);
        std::vector<std::byte> mine(96, std::byte{static_cast<unsigned char>(me)});
        const auto theirs = oob.exchange(mine);
        ASSERT_EQ(theirs.size(), mine.size());
        EXPECT_EQ(theirs[0], std::byte{static_cast<unsigned char>(partner)});
        oob.sync();
        if (oob.is_client()) {
            oob.send_ack(77);
            EXPECT_EQ(oob.read_ack(), 78u);
        } else {
            EXPECT_EQ(oob.read_ack(), 77u);
            oob.send_ack(78);
        }
        conn_sync(comm, partner);
        // Unequal lengths are a protocol error on the side that receives the longer message.
        std::vector<std::byte> other(me < partner ? 10 : 12);
        if (me < partner)
            EXPECT_THROW((void)oob.exchange(other), coyote::Error);
        else
            EXPECT_THROW((void)oob.exchange(other), coyote::Error);
    }
    EXPECT_THROW(MpiOob(comm, me), coyote::Error);
    EXPECT_THROW(MpiOob(comm, comm.size()), coyote::Error);
    EXPECT_THROW(conn_sync(comm, -1), coyote::Error);
    barrier(comm);
}

TEST(Bootstrap, ArrivalDeadlineNamesTheAbsentRanks) {
    Communicator comm;  // private: tokens sent to absent ranks must not leak into other tests
    BootstrapOptions opt;
    opt.timeout = std::chrono::milliseconds(300);
    opt.on_timeout = OnTimeout::throw_error;
    if (comm.rank() == 0) {
        std::string expected = comm.size() == 2 ? "rank 1 of 2" : "ranks 1";
        for (int r = 2; r < comm.size(); ++r) expected += ", " + std::to_string(r);
        if (comm.size() > 2) expected += " of " + std::to_string(comm.size());
        try {
            arrive(comm, "lonely", opt);
            FAIL() << "arrival completed although no other rank took part";
        } catch (const coyote::Error& e) {
            EXPECT_TRUE(has_code(e, coyote::Errc::timeout));
            EXPECT_NE(std::string(e.what()).find(expected + " did not arrive at bootstrap step 'lonely'"),
                      std::string::npos)
                << e.what();
        }
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

TEST(MpiOob, AckDeadlineNamesThePeer) {
    Communicator comm;
    BootstrapOptions opt;
    opt.timeout = std::chrono::milliseconds(300);
    opt.on_timeout = OnTimeout::throw_error;
    if (comm.rank() == 0) {
        MpiOob oob(comm, 1, opt);
        try {
            (void)oob.read_ack();
            FAIL() << "read_ack returned without a sender";
        } catch (const coyote::Error& e) {
            EXPECT_TRUE(has_code(e, coyote::Errc::timeout));
            EXPECT_NE(std::string(e.what()).find("rank 1 sent no ack"), std::string::npos) << e.what();
        }
    }
    MPI_Barrier(MPI_COMM_WORLD);
}
