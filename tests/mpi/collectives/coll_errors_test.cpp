// Collective errors: thresholds from the environment and their agreement, direct_min auto, mismatched calls
// detected on every rank.
#include "coll_test_support.hpp"
#include "support/env_guard.hpp"

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

using namespace coyote;
using namespace coyote::mpi;

namespace {

using namespace coyote_test;

TEST(CollErrors, ThresholdsFromTheEnvironmentAndAgreement) {
    {
        EnvGuard large("COYOTE_COLL_ALLREDUCE_LARGE", "48K"), small("COYOTE_COLL_REDUCE_SCATTER_SMALL", "3000");
        const CollectiveOptions o = CollectiveOptions::from_env();
        EXPECT_EQ(o.allreduce_large, 48u << 10);
        EXPECT_EQ(o.reduce_scatter_small, 3000u);
        ::setenv("COYOTE_COLL_REDUCE_SCATTER_SMALL", "-1", 1);
        try {
            (void)CollectiveOptions::from_env();
            ADD_FAILURE() << "negative threshold accepted";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("COYOTE_COLL_REDUCE_SCATTER_SMALL='-1'"), std::string::npos) << e.what();
        }
    }
    // Every rank must use the same thresholds: one rank with another reduce_scatter_small fails every rank.
    for (int field = 0; field < 2; ++field) {
        CollectiveOptions mine = coll().options();
        if (rank() == nranks() - 1) {
            if (field == 0) mine.reduce_scatter_small += 1;
            else mine.allreduce_large += 1;
        }
        try {
            Collectives c(*g_world->comm, g_world->dev, mine);
            ADD_FAILURE() << "differing thresholds accepted (field " << field << ")";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("uses other options"), std::string::npos) << e.what();
        }
    }
}

TEST(CollErrors, DirectMinAutoFollowsOversubscription) {
    {
        EnvGuard direct_min("COYOTE_COLL_DIRECT_MIN", "auto");
        EXPECT_EQ(CollectiveOptions::from_env().direct_min, CollectiveOptions::direct_auto);
        ::setenv("COYOTE_COLL_DIRECT_MIN", "32K", 1);
        EXPECT_EQ(CollectiveOptions::from_env().direct_min, 32u << 10);
    }
    // auto resolves alike on every rank: above 64 KiB when any node has more ranks than cores, else 16 KiB.
    CollectiveOptions o = coll().options();
    o.direct_min = CollectiveOptions::direct_auto;
    Collectives c(*g_world->comm, g_world->dev, o);
    const unsigned cores = std::thread::hardware_concurrency();
    int over = cores != 0 && static_cast<unsigned>(g_world->comm->local_size()) > cores ? 1 : 0;
    int any = 0;
    ASSERT_EQ(MPI_Allreduce(&over, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), MPI_SUCCESS);
    EXPECT_EQ(c.options().direct_min, any ? (64u << 10) + 1 : 16u << 10);
    uint64_t mine = c.options().direct_min, lo = 0, hi = 0;
    ASSERT_EQ(MPI_Allreduce(&mine, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD), MPI_SUCCESS);
    ASSERT_EQ(MPI_Allreduce(&mine, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD), MPI_SUCCESS);
    EXPECT_EQ(lo, hi);
}

/// Runs a call whose count differs on rank 0: every rank must fail; rank 0 must name the mismatch, the others
/// the mismatch, the deadline, or the queue pairs of a rank that already gave up.
template <class Call>
void expect_mismatch(const char* what, Call&& call) {
    std::string msg;
    try {
        call();
    } catch (const Error& e) {
        msg = e.what();
    }
    EXPECT_FALSE(msg.empty()) << "rank " << rank() << " finished a mismatched " << what;
    if (rank() == 0) {
        EXPECT_NE(msg.find("mismatched collective call"), std::string::npos) << msg;
    }
    const bool named = msg.find("mismatched") != std::string::npos || msg.find("no progress") != std::string::npos ||
                       msg.find("is gone") != std::string::npos;
    EXPECT_TRUE(named) << msg;
}

TEST(CollErrors, MismatchedCountsAreDetected) {
    if (quick()) GTEST_SKIP() << "reduced matrix";
    // A separate object with a short deadline: a mismatch leaves it unusable.
    CollectiveOptions o = coll().options();
    o.timeout = std::chrono::milliseconds(3000);
    Collectives c2(*g_world->comm, g_world->dev, o);
    std::vector<int32_t> v(16, 1);
    const uint64_t n = rank() == 0 ? 8 : 9;
    // Rank 0 receives a message of the mismatched call first in every schedule; a rank whose partner failed
    // first may only see the deadline.
    expect_mismatch("allreduce", [&] { c2.allreduce(MPI_IN_PLACE, v.data(), n, Datatype::int32, Op::sum); });
}

// Counts on both sides of direct_min: rank 0 places its blocks directly and waits for ready-to-receives that
// its peers, which send through the ring, never post. Their messages of the call reach rank 0 first and name
// the mismatch before the deadline.
TEST(CollErrors, MismatchAcrossTheDirectThresholdIsDetected) {
    if (quick()) GTEST_SKIP() << "reduced matrix";
    CollectiveOptions o = coll().options();
    o.buffer_size = 1u << 20;
    o.chunk_bytes = 64u << 10;
    o.direct_min = 16u << 10;
    o.timeout = std::chrono::milliseconds(3000);
    Collectives c2(*g_world->comm, g_world->dev, o);
    const uint64_t n = rank() == 0 ? (32u << 10) / 4 : (4u << 10) / 4; // int32: 32 KiB (direct) or 4 KiB
    std::vector<int32_t> in((32u << 10) / 4, 1), out(in.size() * static_cast<std::size_t>(nranks()));
    expect_mismatch("allgather", [&] { c2.allgather(in.data(), out.data(), n, Datatype::int32); });
}

// Rank 0 calls allreduce, the others broadcast. Whoever detects it names the call; a rank told by another names a
// real rank as the reporter (it read "rank -2" once); the object's next call repeats what broke it.
TEST(CollErrors, AMismatchedKindNamesRealRanksAndTheNextCallSaysWhy) {
    if (quick()) GTEST_SKIP() << "reduced matrix";
    CollectiveOptions o = coll().options();
    o.timeout = std::chrono::milliseconds(3000);
    Collectives c2(*g_world->comm, g_world->dev, o);
    std::vector<int32_t> v(8, 1);
    std::string msg;
    try {
        if (rank() == 0)
            c2.allreduce(MPI_IN_PLACE, v.data(), v.size(), Datatype::int32, Op::sum);
        else
            c2.broadcast(v.data(), v.size(), Datatype::int32, 0);
    } catch (const Error& e) {
        msg = e.what();
    }
    ASSERT_FALSE(msg.empty()) << "rank " << rank() << " finished a mismatched call";
    EXPECT_EQ(msg.find("rank -"), std::string::npos) << msg;
    if (const auto at = msg.find("reported a mismatched"); at != std::string::npos) {
        const auto r = msg.rfind("rank ", at);
        ASSERT_NE(r, std::string::npos) << msg;
        const int reporter = std::stoi(msg.substr(r + 5));
        EXPECT_TRUE(reporter >= 0 && reporter < nranks() && reporter != rank()) << msg;
    }
    std::string again;
    try {
        c2.barrier();
    } catch (const Error& e) {
        again = e.what();
    }
    EXPECT_NE(again.find("failed earlier: "), std::string::npos) << again;
    EXPECT_NE(again.find(msg.substr(0, msg.find(':'))), std::string::npos) << again << " | first: " << msg;
}

// Rank 0 names root 0 of a reduce, the others root 1: the waits form a cycle (on 2 ranks each waits for the other)
// and no message of the call need reach a rank that would see the mismatch. Stall probes carry the call a rank
// waits in: ranks 0 and 1 name the mismatch (found, or reported by another rank) long before the deadline. (Other
// ranks may finish: they only send.) Destroying the object is collective for the broken ranks too: a rank that
// finished must not wait out its deadline there (it did, 30 s, with broken ranks skipping the teardown barrier).
TEST(CollErrors, RanksWaitingOnEachOtherInCallsThatDifferNameTheMismatch) {
    if (quick()) GTEST_SKIP() << "reduced matrix";
    CollectiveOptions o = coll().options();
    o.timeout = std::chrono::milliseconds(30000);
    auto c2 = std::make_unique<Collectives>(*g_world->comm, g_world->dev, o);
    std::vector<int32_t> in(8, 1), out(8, 0);
    const int root = rank() == 0 ? 0 : 1;
    std::string msg;
    const auto start = std::chrono::steady_clock::now();
    try {
        c2->reduce(in.data(), out.data(), in.size(), Datatype::int32, Op::sum, root);
    } catch (const Error& e) {
        msg = e.what();
    }
    const auto took = std::chrono::steady_clock::now() - start;
    if (rank() <= 1) {
        EXPECT_NE(msg.find("mismatched"), std::string::npos) << "rank " << rank() << ": " << msg;
        EXPECT_LT(took, std::chrono::seconds(10)) << msg;
    }
    const auto destroy = std::chrono::steady_clock::now();
    c2.reset();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - destroy).count(), longest = 0;
    ASSERT_EQ(MPI_Allreduce(&secs, &longest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD), MPI_SUCCESS);
    EXPECT_LT(longest, 10.0) << "destroying the object after a mismatch took " << longest << " s on some rank";
}

// Rank 0 destroys its object while the others start another call on theirs: they fail within a few probe intervals
// naming rank 0, and every destruction ends soon after (before: they waited out their deadline, 30 s here, and rank 0
// as long in its teardown barrier).
TEST(CollErrors, ARankThatClosesItsObjectFailsTheCallsItWillNeverJoin) {
    CollectiveOptions o = coll().options();
    o.timeout = std::chrono::milliseconds(30000);
    auto c2 = std::make_unique<Collectives>(*g_world->comm, g_world->dev, o);
    std::vector<int32_t> v(8, 1);
    c2->allreduce(MPI_IN_PLACE, v.data(), v.size(), Datatype::int32, Op::sum); // a call every rank joined
    EXPECT_EQ(v[0], nranks());
    const auto start = std::chrono::steady_clock::now();
    if (rank() != 0) {
        std::string msg;
        std::error_code code;
        try {
            c2->barrier();
        } catch (const Error& e) {
            msg = e.what();
            code = e.code();
        }
        EXPECT_EQ(code, make_error_code(Errc::peer_gone)) << msg;
        EXPECT_NE(msg.find("rank 0 is gone"), std::string::npos) << msg;
        EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10)) << msg;
    }
    c2.reset();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), longest = 0;
    ASSERT_EQ(MPI_Allreduce(&secs, &longest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD), MPI_SUCCESS);
    EXPECT_LT(longest, 10.0) << "the call and the destruction took " << longest << " s on some rank";
}

TEST(CollErrors, TypedAlltoallRefusesACountThatDoesNotSplitIntoBlocks) {
    std::vector<int32_t> in(static_cast<std::size_t>(nranks()) * 3 + 1, 1), out(in.size(), -1);
    try {
        coll().alltoall(std::span<const int32_t>(in), std::span<int32_t>(out));
        ADD_FAILURE() << "alltoall of " << in.size() << " elements on " << nranks() << " ranks did not throw";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), make_error_code(Errc::invalid_argument)) << e.what();
        EXPECT_NE(std::string(e.what()).find("equal blocks"), std::string::npos) << e.what();
    }
    EXPECT_EQ(out.back(), -1); // nothing written
    coll().barrier(); // the shared object stays usable
}

/// The invalid_argument message of `fn` (a call refused before anything is sent), or "" if it did not throw one.
template <class Fn>
std::string refusal(Fn&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), make_error_code(Errc::invalid_argument)) << e.what();
        return e.what();
    }
    return {};
}

// Found by a new-user pass; each was silent before (no error on any rank), and the shared object stays usable.
TEST(CollErrors, BuffersBeyondTheAddressSpaceOrOverlappingAreRefused) {
    std::vector<uint8_t> buf(4096, 0);
    // A count whose chunk count overflowed: broadcast did nothing.
    for (std::size_t count : {SIZE_MAX, SIZE_MAX - 63, (std::size_t{1} << 48) + 1}) {
        const std::string m = refusal([&] { coll().broadcast(buf.data(), count, Datatype::uint8, 0); });
        EXPECT_NE(m.find("more than any buffer can span"), std::string::npos) << count << ": " << m;
    }
    // send == recv is no in-place gather / allgather (their own block sits at rank * count): wrong blocks before.
    std::vector<int32_t> all(static_cast<std::size_t>(nranks()) * 4, rank());
    std::string m = refusal([&] { coll().allgather(all.data(), all.data(), 4, Datatype::int32); });
    EXPECT_NE(m.find("overlap"), std::string::npos) << m;
    // A receive buffer that starts one element into the send buffer: most of a large allreduce came out wrong.
    std::vector<int32_t> v(100001, 1);
    m = refusal([&] { coll().allreduce(v.data(), v.data() + 1, 100000, Datatype::int32, Op::sum); });
    EXPECT_NE(m.find("overlap"), std::string::npos) << m;
    // send == recv where the layouts agree stays the in-place call.
    std::vector<int32_t> a2a(static_cast<std::size_t>(nranks()) * 2);
    for (std::size_t i = 0; i < a2a.size(); ++i) a2a[i] = rank() * 1000 + static_cast<int32_t>(i);
    coll().alltoall(a2a.data(), a2a.data(), 2, Datatype::int32);
    for (int r = 0; r < nranks(); ++r)
        for (int j = 0; j < 2; ++j)
            EXPECT_EQ(a2a[static_cast<std::size_t>(r * 2 + j)], r * 1000 + rank() * 2 + j) << r << " " << j;
    std::vector<int32_t> s(8, rank() + 1);
    coll().allreduce(s.data(), s.data(), 8, Datatype::int32, Op::sum);
    EXPECT_EQ(s[7], nranks() * (nranks() + 1) / 2);
}

// Refusals at the root only, on a communicator of this rank alone (on a larger one the other ranks would be left
// inside the call).
TEST(CollErrors, RootOnlyRefusals) {
    Communicator self(MPI_COMM_SELF);
    Collectives one(self, g_world->dev, coll().options());
    // send == recv is no in-place gather (the root's block sits at root * count): wrong blocks before.
    std::vector<int32_t> blk(4, 1);
    const std::string g = refusal([&] { one.gather(blk.data(), blk.data(), 4, Datatype::int32, 0); });
    EXPECT_NE(g.find("MPI_IN_PLACE"), std::string::npos) << g;
    // The typed reduce wrote 56 elements past the root's receive span before.
    std::vector<int32_t> in(64, 1), out(8 + 4, -7); // 8 elements of room, then a canary
    const std::string m = refusal([&] {
        one.reduce(std::span<const int32_t>(in), std::span<int32_t>(out.data(), 8), Op::sum, 0);
    });
    EXPECT_NE(m.find("span sizes differ (64 vs 8"), std::string::npos) << m;
    EXPECT_EQ(out[8], -7) << "written past the receive span";
    // Away from the root the receive span may be empty.
    std::vector<int32_t> sum(64, 0);
    coll().reduce(std::span<const int32_t>(in), rank() == 1 ? std::span<int32_t>(sum) : std::span<int32_t>(), Op::sum, 1);
    if (rank() == 1) {
        EXPECT_EQ(sum[63], nranks());
    }
}

TEST(CollErrors, ATimeoutBeyondAYearIsRefused) {
    CollectiveOptions o = coll().options();
    o.timeout = std::chrono::milliseconds::max(); // the deadline arithmetic overflowed: calls timed out at once
    try {
        Collectives c(*g_world->comm, g_world->dev, o);
        ADD_FAILURE() << "timeout milliseconds::max() accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("at most a year"), std::string::npos) << e.what();
    }
}

}  // namespace
