// Direct placement: copy streams written straight into the receiver's buffer (remote-access windows), in place
// and in bounds, and the windows cached per destination.
#include "coll_test_support.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

using namespace coyote;
using namespace coyote::mpi;

namespace {

using namespace coyote_test;

// Large copy streams go straight into the receiver's buffer (COYOTE_COLL_DIRECT_MIN; the direct CTest runs set
// it to 1 and COYOTE_COLL_TEST_EXPECT_DIRECT=1). Results match MPI, and the bytes around the destination stay
// untouched.
TEST(CollDirect, CopyStreamsLandInPlaceAndInBounds) {
    const char* e = std::getenv("COYOTE_COLL_TEST_EXPECT_DIRECT");
    const bool expect_direct = e != nullptr && std::string(e) == "1";
    const bool expect_none = e != nullptr && std::string(e) == "0"; // e.g. cross-process access denied
    const uint64_t direct_min = coll().options().direct_min;
    const auto p = static_cast<uint64_t>(nranks());
    const uint64_t guard = 4096;
    const uint64_t bb = std::max<uint64_t>(direct_min, 1) + coll().options().buffer_size + 77; // uint8 block
    auto check_guards = [&](const Bytes& b, uint64_t payload, const std::string& what) {
        for (uint64_t i = 0; i < guard; ++i) {
            ASSERT_EQ(static_cast<unsigned>(b[i]), 0xa5u) << what << ": guard byte " << i << " before the buffer";
            ASSERT_EQ(static_cast<unsigned>(b[guard + payload + i]), 0xa5u) << what << ": guard byte " << i << " after";
        }
    };
    // COYOTE_COLL_TEST_EXPECT_UNSTAGED=1 (with direct placement off): full chunks of at least 16 KiB go from the
    // caller's buffer into the peer's ring without a staging copy.
    const char* u = std::getenv("COYOTE_COLL_TEST_EXPECT_UNSTAGED");
    const bool expect_unstaged = u != nullptr && std::string(u) == "1";
    const uint64_t chunk = coll().chunk_payload();
    uint64_t unstaged_before = 0;
    auto expect_moved = [&](uint64_t before, uint64_t want_at_least, const std::string& what) {
        if (expect_unstaged) {
            // every full chunk of the streams (the last, partial chunk of each block may be staged)
            const uint64_t blocks = (want_at_least + bb - 1) / bb;
            const uint64_t slack = blocks * std::min(bb, chunk);
            const uint64_t want = want_at_least > slack ? want_at_least - slack : std::min<uint64_t>(want_at_least, 1);
            EXPECT_GE(coll().unstaged_bytes() - unstaged_before, want) << what << ": bytes written unstaged";
        }
        const uint64_t moved = coll().direct_bytes() - before;
        if (expect_direct) {
            EXPECT_GE(moved, want_at_least) << what << ": bytes placed directly";
        } else if (direct_min == 0 || expect_none) {
            EXPECT_EQ(moved, 0u) << what << ": no direct placement expected";
        }
    };
    {   // allgather (ring): every rank writes n - 1 blocks into its successor
        Bytes in = bytes(bb, Datatype::uint8), all(guard * 2 + bb * p, std::byte{0xa5}), ref = bytes(bb * p, Datatype::uint8);
        gen(Datatype::uint8, Op::band, rank(), 21, in.data(), bb);
        const uint64_t before = coll().direct_bytes();
        unstaged_before = coll().unstaged_bytes();
        coll().allgather(in.data(), all.data() + guard, bb, Datatype::uint8);
        expect_moved(before, (p - 1) * bb, "allgather");
        ASSERT_EQ(MPI_Allgather(in.data(), ic(bb), MPI_UINT8_T, ref.data(), ic(bb), MPI_UINT8_T, MPI_COMM_WORLD), MPI_SUCCESS);
        expect_equal(all.data() + guard, ref.data(), bb * p, 1, "direct allgather " + coll().last_algorithm());
        check_guards(all, bb * p, "allgather");
    }
    {   // alltoall (pairwise when every peer is connected)
        Bytes in = bytes(bb * p, Datatype::uint8), out(guard * 2 + bb * p, std::byte{0xa5}), ref = bytes(bb * p, Datatype::uint8);
        gen(Datatype::uint8, Op::band, rank(), 22, in.data(), bb * p);
        const uint64_t before = coll().direct_bytes();
        unstaged_before = coll().unstaged_bytes();
        coll().alltoall(in.data(), out.data() + guard, bb, Datatype::uint8);
        if (coll().last_algorithm() == "pairwise") expect_moved(before, (p - 1) * bb, "alltoall");
        ASSERT_EQ(MPI_Alltoall(in.data(), ic(bb), MPI_UINT8_T, ref.data(), ic(bb), MPI_UINT8_T, MPI_COMM_WORLD), MPI_SUCCESS);
        expect_equal(out.data() + guard, ref.data(), bb * p, 1, "direct alltoall " + coll().last_algorithm());
        check_guards(out, bb * p, "alltoall");
    }
    for (int root = 0; root < nranks(); ++root) { // broadcast (chain above tree_small)
        Bytes buf(guard * 2 + bb, std::byte{0xa5}), ref = bytes(bb, Datatype::uint8);
        gen(Datatype::uint8, Op::band, root, 23, ref.data(), bb);
        if (rank() == root) std::memcpy(buf.data() + guard, ref.data(), bb);
        const uint64_t before = coll().direct_bytes();
        unstaged_before = coll().unstaged_bytes();
        coll().broadcast(buf.data() + guard, bb, Datatype::uint8, root);
        if (coll().last_algorithm() == "chain" && rank() != (root + nranks() - 1) % nranks())
            expect_moved(before, bb, "broadcast");
        expect_equal(buf.data() + guard, ref.data(), bb, 1, "direct broadcast root " + std::to_string(root));
        check_guards(buf, bb, "broadcast");
    }
    {   // allreduce (ring): the allgather half places the reduced segments directly
        const uint64_t n = bb / 4 * p;
        Bytes in = bytes(n, Datatype::int32), out(guard * 2 + n * 4, std::byte{0xa5}), ref = bytes(n, Datatype::int32);
        gen(Datatype::int32, Op::sum, rank(), 24, in.data(), n);
        const uint64_t before = coll().direct_bytes();
        unstaged_before = coll().unstaged_bytes();
        coll().allreduce(in.data(), out.data() + guard, n, Datatype::int32, Op::sum);
        if (coll().last_algorithm() == "ring") expect_moved(before, 1, "allreduce");
        ASSERT_EQ(MPI_Allreduce(in.data(), ref.data(), ic(n), MPI_INT32_T, MPI_SUM, MPI_COMM_WORLD), MPI_SUCCESS);
        expect_equal(out.data() + guard, ref.data(), n, 4, "direct allreduce " + coll().last_algorithm());
        check_guards(out, n * 4, "allreduce");
    }
}

// Windows stay registered after a call and are offered again for the same destination; a destination that
// overlaps a cached window (shifted, shorter, longer) replaces it. Every variant lands in place, in bounds, and
// (in the direct CTest runs) directly.
TEST(CollDirect, CachedWindowsFollowTheDestination) {
    const char* e = std::getenv("COYOTE_COLL_TEST_EXPECT_DIRECT");
    const bool expect_direct = e != nullptr && std::string(e) == "1";
    const auto p = static_cast<uint64_t>(nranks());
    const uint64_t guard = 4096;
    const uint64_t bb = std::max<uint64_t>(coll().options().direct_min, 1) + coll().options().buffer_size + 77;
    Bytes in = bytes(bb, Datatype::uint8), all(guard * 2 + (bb + 512) * p, std::byte{0xa5});
    Bytes ref = bytes((bb + 512) * p, Datatype::uint8);
    struct Variant {
        uint64_t off;
        uint64_t block;
    };
    // same range twice, shifted by 64 bytes, shorter, longer, back to the first
    const Variant variants[] = {{0, bb}, {0, bb}, {64, bb}, {64, bb - 100}, {0, bb + 512}, {0, bb}};
    int round = 0;
    for (const Variant& v : variants) {
        const std::string what = "round " + std::to_string(round) + " (offset " + std::to_string(v.off) + ", block " +
                                 std::to_string(v.block) + ")";
        std::fill(all.begin(), all.end(), std::byte{0xa5});
        if (v.block >= in.size()) in.resize(v.block + 1);
        gen(Datatype::uint8, Op::band, rank(), 30 + static_cast<uint64_t>(round++), in.data(), v.block);
        const uint64_t before = coll().direct_bytes();
        coll().allgather(in.data(), all.data() + guard + v.off, v.block, Datatype::uint8);
        if (expect_direct) {
            EXPECT_GE(coll().direct_bytes() - before, (p - 1) * v.block) << what << ": bytes placed directly";
        }
        ASSERT_EQ(MPI_Allgather(in.data(), ic(v.block), MPI_UINT8_T, ref.data(), ic(v.block), MPI_UINT8_T, MPI_COMM_WORLD),
                  MPI_SUCCESS);
        expect_equal(all.data() + guard + v.off, ref.data(), v.block * p, 1, "cached-window allgather " + what);
        const uint64_t end = guard + v.off + v.block * p;
        for (uint64_t i = 0; i < guard + v.off; ++i)
            ASSERT_EQ(static_cast<unsigned>(all[i]), 0xa5u) << what << ": byte " << i << " before the destination";
        for (uint64_t i = end; i < all.size(); ++i)
            ASSERT_EQ(static_cast<unsigned>(all[i]), 0xa5u) << what << ": byte " << i - end << " after the destination";
    }
}

}  // namespace
