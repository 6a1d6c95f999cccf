// Bootstrap faults: a rank that never joins a step, ranks at different steps, device-selection input that
// differs between the ranks or is malformed on one of them. Every rank must fail within the deadline with an
// error that names the rank and the problem. Runs with 2 and 3 ranks; needs no vFPGA.
#include <coyote/mpi/liveness.hpp>
#include <coyote/mpi/mpi.hpp>

#include <gtest/gtest.h>

#include "support/env_guard.hpp"

#include <cstdlib>
#include <iterator>
#include <vector>
#include <string>
#include <thread>

using namespace coyote::mpi;
using coyote_test::EnvGuard;

namespace {

bool has_code(const coyote::Error& e, coyote::Errc c) { return e.code() == coyote::make_error_code(c); }

BootstrapOptions short_deadline() {
    BootstrapOptions o;
    o.timeout = std::chrono::milliseconds(500);
    o.on_timeout = OnTimeout::throw_error;
    return o;
}

/// The error of `fn`, or "" when it returned.
template <class Fn>
std::string error_of(Fn&& fn, coyote::Errc expected) {
    try {
        fn();
    } catch (const coyote::Error& e) {
        EXPECT_TRUE(has_code(e, expected)) << e.what();
        return e.what();
    }
    return {};
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// A duplicate of MPI_COMM_WORLD for a test in which the last rank stays away from a step (`absent`).
struct ScratchWorld {
    MPI_Comm comm = MPI_COMM_NULL;
    int n = 0;
    bool absent = false;
    ScratchWorld() {
        int me = 0;
        EXPECT_EQ(MPI_Comm_dup(MPI_COMM_WORLD, &comm), MPI_SUCCESS);
        MPI_Comm_rank(MPI_COMM_WORLD, &me);
        MPI_Comm_size(MPI_COMM_WORLD, &n);
        absent = me == n - 1;
    }
    ~ScratchWorld() { MPI_Comm_free(&comm); }
    ScratchWorld(const ScratchWorld&) = delete;
    ScratchWorld& operator=(const ScratchWorld&) = delete;
};

}  // namespace

TEST(BootstrapFaults, ARankThatNeverConstructsItsCommunicatorFailsTheOthersAtTheDeadline) {
    const ScratchWorld world;
    const MPI_Comm scratch = world.comm;
    const int n = world.n;
    const bool absent = world.absent;
    if (!absent) {
        // Before: every rank waited in MPI_Comm_dup for good.
        const auto w = error_of([&] { Communicator c(scratch, short_deadline()); }, coyote::Errc::timeout);
        EXPECT_TRUE(contains(w, "not every rank of the communicator (" + std::to_string(n) + " ranks) reached "
                                "bootstrap step 'communicator duplication'")) << w;
        EXPECT_TRUE(contains(w, "COYOTE_MPI_BOOTSTRAP_TIMEOUT_MS")) << w;
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (absent) {
        // Complete the duplication the others left pending (they progress it in the barrier below).
        MPI_Comm late = MPI_COMM_NULL;
        ASSERT_EQ(MPI_Comm_dup(scratch, &late), MPI_SUCCESS);
        MPI_Comm_free(&late);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

TEST(BootstrapFaults, ABarrierNamesTheRankThatNeverCame) {
    Communicator comm;  // private: tokens left for the absent rank stay in it
    const int last = comm.size() - 1;
    if (comm.rank() != last) {
        const auto w = error_of([&] { barrier(comm, short_deadline()); }, coyote::Errc::timeout);
        EXPECT_TRUE(contains(w, "rank " + std::to_string(last) + " of " + std::to_string(comm.size()) +
                                " did not arrive at bootstrap step 'barrier'")) << w;
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

TEST(BootstrapFaults, ABarrierNamesRankZeroWhenItNeverCame) {
    // Rank 0 gathers the arrivals; the others know it never came because its presence never did.
    Communicator comm;
    if (comm.rank() != 0) {
        const auto w = error_of([&] { barrier(comm, short_deadline()); }, coyote::Errc::timeout);
        EXPECT_TRUE(contains(w, "rank 0 of " + std::to_string(comm.size()) +
                                " did not arrive at bootstrap step 'barrier'")) << w;
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

TEST(BootstrapFaults, ALateRankZeroStillNamesTheRankThatNeverCame) {
    // Rank 0 comes 300 ms after the others (of a 500 ms deadline) and the last rank never does: the others wait for
    // rank 0's verdict past their own deadline (as long as rank 0's lasts), so each names the absent rank.
    Communicator comm;
    const int last = comm.size() - 1;
    if (comm.rank() != last) {
        if (comm.rank() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
        const auto start = std::chrono::steady_clock::now();
        const auto w = error_of([&] { barrier(comm, short_deadline()); }, coyote::Errc::timeout);
        const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                                start).count();
        EXPECT_TRUE(contains(w, "rank " + std::to_string(last) + " of " + std::to_string(comm.size()) +
                                " did not arrive at bootstrap step 'barrier'")) << w;
        EXPECT_LT(took, 5000) << "the wait is bounded by rank 0's deadline and a slack";
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

TEST(BootstrapFaults, RanksAtDifferentBootstrapStepsNameEachOther) {
    Communicator comm;
    // Rank 0 selects its device while the others are already at a barrier (before: the two collectives met:
    // MPI_ERR_TRUNCATE in MPI_Testsome, or bytes of one step read as the other's).
    if (comm.rank() == 0) {
        DeviceSelectOptions o;
        o.bootstrap = short_deadline();
        const auto w = error_of([&] { (void)select_device(comm, o); }, coyote::Errc::protocol);
        EXPECT_TRUE(contains(w, "rank 1 is at bootstrap step 'barrier' while rank 0 is at 'device selection'")) << w;
    } else {
        const auto w = error_of([&] { barrier(comm, short_deadline()); }, coyote::Errc::protocol);
        EXPECT_TRUE(contains(w, "is at bootstrap step '")) << w;
        EXPECT_TRUE(contains(w, "in different orders")) << w;
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

TEST(BootstrapFaults, DifferentDeviceMapsOnTheRanksAreNamed) {
    Communicator comm;
    const int last = comm.size() - 1;
    std::string good, other;
    for (int r = 0; r < comm.size(); ++r) {
        good += std::to_string(r) + ":" + std::to_string(r) + ":0,";
        other += std::to_string(r) + ":" + std::to_string(last - r) + ":0,";
    }
    DeviceSelectOptions o;
    o.bootstrap = short_deadline();
    o.device_map = comm.rank() == last ? other : good;
    // Before: each rank took its own map's entry (here rank 0 and the last both chose device 0: "collision").
    auto w = error_of([&] { (void)select_device(comm, o); }, coyote::Errc::invalid_argument);
    EXPECT_TRUE(contains(w, "ranks 0 and " + std::to_string(last) + " see different device maps: "
                            "DeviceSelectOptions::device_map '" + good + "' and DeviceSelectOptions::device_map '" +
                            other + "'")) << w;
    // A map set on one rank only (before: the others took their defaults; here "rank 0 has no entry" or a
    // collision, naming a map that had the entry).
    EnvGuard m("COYOTE_MPI_DEVICE_MAP", comm.rank() == 0 ? good.c_str() : nullptr);
    DeviceSelectOptions d;
    d.bootstrap = short_deadline();
    w = error_of([&] { (void)select_device(comm, d); }, coyote::Errc::invalid_argument);
    EXPECT_TRUE(contains(w, "ranks 0 and 1 see different device maps: COYOTE_MPI_DEVICE_MAP '" + good +
                            "' and no device map")) << w;
}

TEST(BootstrapFaults, AMalformedSettingOnOneRankIsNamedOnEveryRank) {
    Communicator comm;
    const int last = comm.size() - 1;
    EnvGuard e("COYOTE_MPI_DEVICE", comm.rank() == last ? "two" : nullptr);
    DeviceSelectOptions o;
    o.bootstrap = short_deadline();
    // Before: the last rank threw alone; the others waited for it until the deadline aborted the job.
    const auto w = error_of([&] { (void)select_device(comm, o); }, coyote::Errc::invalid_argument);
    EXPECT_TRUE(contains(w, "COYOTE_MPI_DEVICE='two'")) << w;
    if (comm.rank() != last) {
        EXPECT_TRUE(contains(w, "failed on rank " + std::to_string(last) + ": ")) << w;
    }
}

TEST(BootstrapFaults, AMapEntryForARankBeyondTheCommunicatorIsAnError) {
    Communicator comm;
    std::string map;
    for (int r = 0; r <= comm.size(); ++r) map += std::to_string(r) + ":" + std::to_string(r) + ":0,";
    DeviceSelectOptions o;
    o.bootstrap = short_deadline();
    o.device_map = map;
    // Before: the entry was ignored (a map written for the world, used on a sub-communicator, applied silently).
    const auto w = error_of([&] { (void)select_device(comm, o); }, coyote::Errc::invalid_argument);
    EXPECT_TRUE(contains(w, "has an entry for rank " + std::to_string(comm.size()) + " but the communicator has " +
                            std::to_string(comm.size()) + " ranks")) << w;
}

TEST(BootstrapFaults, ControlCharactersInSettingsAreQuotedPrintably) {
    // Before: the raw bytes went into the message (an escape sequence redrew the terminal, a newline forged a line),
    // and the map parser (strtol) took "\t1", "+1" and "\n1" for 1.
    const char* bad[] = {"0:0:0,1:\x1b[2J1:0", "0:0:0,\t1:1:0", "0:0:0,1:+1:0", "0:0:0,\n1:1:0"};
    for (std::size_t i = 0; i < std::size(bad); ++i) {
        try {
            (void)parse_device_map(bad[i]);
            ADD_FAILURE() << "accepted map " << i;
        } catch (const coyote::Error& e) {
            const std::string w = e.what();
            EXPECT_EQ(w.find_first_of("\x1b\n\t"), std::string::npos) << "map " << i << ": " << w;
        }
    }
    EXPECT_EQ(parse_device_map(" 0:0:0 , 1:1:0 ").size(), 2u);  // spaces around entries stay allowed
    Communicator comm;
    EnvGuard e("COYOTE_MPI_DEVICE", "1\x1b[31m\n");
    DeviceSelectOptions o;
    o.bootstrap = short_deadline();
    const auto w = error_of([&] { (void)select_device(comm, o); }, coyote::Errc::invalid_argument);
    EXPECT_TRUE(contains(w, "COYOTE_MPI_DEVICE='1\\x1b[31m\\n'")) << w;
}

TEST(BootstrapFaults, ALivenessSetUpWithoutOneRankEndsAtItsDeadline) {
    const ScratchWorld world;
    const MPI_Comm scratch = world.comm;
    const int n = world.n;
    const bool absent = world.absent;
    if (!absent) {
        // Before: the set-up waited in MPI_Allgather for good (a rank gone between a Collectives object's queue-pair
        // wiring and its liveness set-up left the others there under mpirun --enable-recovery).
        LivenessOptions o;
        o.setup_timeout = std::chrono::milliseconds(500);
        const auto w = error_of([&] { PeerLiveness live(scratch, o); }, coyote::Errc::timeout);
        EXPECT_TRUE(contains(w, "reached bootstrap step 'liveness set-up'")) << w;
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (absent) {
        // Complete the allgather the others left pending (they progress it in the barrier below).
        LivenessRecord mine{};
        std::vector<LivenessRecord> all(static_cast<std::size_t>(n));
        MPI_Request req = MPI_REQUEST_NULL;
        ASSERT_EQ(MPI_Iallgather(&mine, sizeof(mine), MPI_BYTE, all.data(), sizeof(mine), MPI_BYTE, scratch, &req),
                  MPI_SUCCESS);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

TEST(BootstrapFaults, MoreRanksOnAHostThanVfpgasIsNamedAsSuch) {
    Communicator comm;
    const int vfpgas = count_hw_vfpgas(0);
    const char* backend = std::getenv("COYOTE_BACKEND");
    if (backend == nullptr || std::string(backend) != "hw" || vfpgas < 2 || vfpgas >= comm.local_size())
        GTEST_SKIP() << "needs the hw backend with 2 or more vFPGAs, fewer than the ranks of this host";
    // Before: "... does not exist (is the Coyote driver loaded? ...)", although the driver was loaded.
    const auto w = error_of([&] { (void)select_device(comm); }, coyote::Errc::no_device);
    EXPECT_TRUE(contains(w, "host-local rank " + std::to_string(vfpgas) + " gets vFPGA " + std::to_string(vfpgas) +
                            " by default, but device 0 has " + std::to_string(vfpgas) + " vFPGAs")) << w;
    EXPECT_TRUE(contains(w, "run at most " + std::to_string(vfpgas) + " ranks per host")) << w;
}
