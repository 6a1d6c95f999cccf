// Eager collectives: calls whose messages fit one slot run without a schedule, mid-size copies placed
// directly; all checked against MPI.
#include "coll_test_support.hpp"

#include <array>
#include <cstdlib>
#include <string>
#include <vector>

using namespace coyote;
using namespace coyote::mpi;

namespace {

using namespace coyote_test;

// Calls whose messages fit one slot run eagerly (no schedule); larger ones do not. Eager messages of 16 KiB and
// more are written unstaged. All match MPI, also with a point-to-point message of the peer ahead of the
// collective's in the ring.
TEST(CollEager, SmallCallsRunEagerlyAndMatchMpi) {
    const auto p = static_cast<uint64_t>(nranks());
    const bool direct_every_size = coll().options().direct_min == 1;
    const char* ed = std::getenv("COYOTE_COLL_TEST_EXPECT_DIRECT");
    const bool expect_direct = ed != nullptr && std::string(ed) == "1";
    const uint64_t mid = (16u << 10) / 4 + 3;             // int32 elements: 16 KiB + 12 bytes
    const uint64_t big = coll().chunk_payload() / 4 + 5; // more than one chunk
    for (const uint64_t n : {uint64_t{3}, mid, big}) {
        const bool small = n == 3 && !direct_every_size;
        Bytes in = bytes(n * p, Datatype::int32), out = bytes(n * p, Datatype::int32, 0x5a),
              ref = bytes(n * p, Datatype::int32, 0x5a);
        gen(Datatype::int32, Op::sum, rank(), 21, in.data(), n * p);
        const std::string size = " of " + std::to_string(n) + " int32";
        uint64_t unstaged = 0;
        // 3 elements: eager where the algorithm has an eager form (reductions only below direct_min; copies,
        // marked `copy`, at any size that fits a slot, placed directly from direct_min on); 16 KiB + 12: eager or
        // not by the thresholds, and unstaged when eager and not direct; more than a chunk: never eager.
        // `sends`: this rank writes at least one message (a broadcast's leaves only receive).
        uint64_t direct = 0;
        auto check = [&](const char* what, uint64_t before, const std::byte* got, uint64_t count, bool eager = true,
                         bool sends = true, bool copy = false) {
            const uint64_t ran = coll().eager_calls() - before;
            if (n == mid) {
                if (ran == 1 && sends && !(copy && direct_every_size)) {
                    EXPECT_GE(coll().unstaged_bytes() - unstaged, mid * 4) << what << size;
                }
            } else {
                const bool want = n == 3 && eager && (small || copy);
                EXPECT_EQ(ran, want ? 1u : 0u) << what << size << " (" << coll().last_algorithm() << ")";
                if (want && copy && direct_every_size && sends && expect_direct) {
                    EXPECT_GE(coll().direct_bytes() - direct, n * 4) << what << size << ": placed directly";
                }
            }
            expect_equal(got, ref.data(), count, 4, std::string(what) + size);
        };
        auto start = [&] {
            unstaged = coll().unstaged_bytes();
            direct = coll().direct_bytes();
            return coll().eager_calls();
        };
        uint64_t before = start();
        coll().allreduce(in.data(), out.data(), n, Datatype::int32, Op::sum);
        ASSERT_EQ(MPI_Allreduce(in.data(), ref.data(), ic(n), MPI_INT32_T, MPI_SUM, MPI_COMM_WORLD), MPI_SUCCESS);
        check("allreduce", before, out.data(), n);

        std::memcpy(out.data(), in.data(), n * 4);
        std::memcpy(ref.data(), in.data(), n * 4);
        before = start();
        coll().broadcast(out.data(), n, Datatype::int32, nranks() - 1);
        ASSERT_EQ(MPI_Bcast(ref.data(), ic(n), MPI_INT32_T, nranks() - 1, MPI_COMM_WORLD), MPI_SUCCESS);
        check("broadcast", before, out.data(), n, true, rank() == nranks() - 1, true);

        before = start();
        coll().allgather(in.data(), out.data(), n, Datatype::int32);
        ASSERT_EQ(MPI_Allgather(in.data(), ic(n), MPI_INT32_T, ref.data(), ic(n), MPI_INT32_T, MPI_COMM_WORLD),
                  MPI_SUCCESS);
        check("allgather", before, out.data(), n * p, true, true, true);

        before = start();
        coll().alltoall(in.data(), out.data(), n, Datatype::int32);
        ASSERT_EQ(MPI_Alltoall(in.data(), ic(n), MPI_INT32_T, ref.data(), ic(n), MPI_INT32_T, MPI_COMM_WORLD),
                  MPI_SUCCESS);
        // Small alltoalls are pairwise (eager) up to 8 ranks with every peer wired, else Bruck (a schedule).
        const bool pairwise = nranks() <= 8 && coll().peers().size() + 1 == p;
        check("alltoall", before, out.data(), n * p, pairwise, true, true);

        if (nranks() == 2) { // reduce_scatter runs eagerly on two ranks (recursive halving otherwise)
            before = start();
            coll().reduce_scatter(in.data(), out.data(), n, Datatype::int32, Op::sum);
            ASSERT_EQ(MPI_Reduce_scatter_block(in.data(), ref.data(), ic(n), MPI_INT32_T, MPI_SUM, MPI_COMM_WORLD),
                      MPI_SUCCESS);
            check("reduce_scatter", before, out.data(), n);
        }
    }
    // A tagged message from the left neighbour sits ahead of the allreduce's message in the ring: the eager call
    // dispatches it on the way and the receive finds it afterwards.
    const int right = (rank() + 1) % nranks(), left = (rank() + nranks() - 1) % nranks();
    const int32_t token = 1000 + rank();
    int32_t got = -1;
    Request rq = coll().isend(&token, 1, Datatype::int32, right, 77);
    std::array<int32_t, 3> v{rank(), 1, 2}, sum{};
    coll().allreduce(v.data(), sum.data(), 3, Datatype::int32, Op::sum);
    coll().recv(&got, 1, Datatype::int32, left, 77);
    rq.wait();
    const int32_t nr = nranks();
    EXPECT_EQ(sum[0], nr * (nr - 1) / 2);
    EXPECT_EQ(sum[1], nr);
    EXPECT_EQ(sum[2], 2 * nr);
    EXPECT_EQ(got, 1000 + left);
}

// Copies from direct_min bytes up to one slot run eagerly too, one message each placed directly: a ready-to-
// receive offering the destination, the write into it, a header. Checked with 32 KiB blocks (16 KiB direct_min,
// 64 KiB slots), against MPI; with cross-process access denied (COYOTE_COLL_TEST_EXPECT_DIRECT=0) the same
// calls go through the ring.
TEST(CollEager, MidSizeCopiesArePlacedDirectlyWithoutASchedule) {
    const char* ed = std::getenv("COYOTE_COLL_TEST_EXPECT_DIRECT");
    const bool denied = ed != nullptr && std::string(ed) == "0";
    CollectiveOptions o = coll().options();
    o.buffer_size = 1u << 20;
    o.chunk_bytes = 64u << 10;
    o.direct_min = 16u << 10;
    o.tree_small = 64u << 10;
    Collectives c(*g_world->comm, g_world->dev, o);
    const auto p = static_cast<uint64_t>(nranks());
    const uint64_t n = (32u << 10) / 4; // int32 elements per block
    Bytes in = bytes(n * p, Datatype::int32), out = bytes(n * p, Datatype::int32, 0x5a),
          ref = bytes(n * p, Datatype::int32, 0x5a);
    for (int round = 0; round < 3; ++round) { // the second and third reuse the cached windows
        gen(Datatype::int32, Op::sum, rank(), 40 + static_cast<uint64_t>(round), in.data(), n * p);
        const std::string what = " (round " + std::to_string(round) + ")";
        auto expect_eager = [&](const char* call, uint64_t eager_before, uint64_t direct_before, uint64_t want) {
            EXPECT_EQ(c.eager_calls() - eager_before, 1u) << call << what << " (" << c.last_algorithm() << ")";
            const uint64_t moved = c.direct_bytes() - direct_before;
            if (denied)
                EXPECT_EQ(moved, 0u) << call << what;
            else
                EXPECT_GE(moved, want) << call << what << ": bytes placed directly";
        };
        uint64_t e0 = c.eager_calls(), d0 = c.direct_bytes();
        c.allgather(in.data(), out.data(), n, Datatype::int32);
        ASSERT_EQ(MPI_Allgather(in.data(), ic(n), MPI_INT32_T, ref.data(), ic(n), MPI_INT32_T, MPI_COMM_WORLD),
                  MPI_SUCCESS);
        if (p <= 9) expect_eager("allgather", e0, d0, std::min<uint64_t>(p - 1, 4) * n * 4); // the eager ring
        expect_equal(out.data(), ref.data(), n * p, 4, "allgather of 32 KiB blocks" + what);

        const bool pairwise = p <= 8 && c.peers().size() + 1 == p;
        e0 = c.eager_calls();
        d0 = c.direct_bytes();
        c.alltoall(in.data(), out.data(), n, Datatype::int32);
        ASSERT_EQ(MPI_Alltoall(in.data(), ic(n), MPI_INT32_T, ref.data(), ic(n), MPI_INT32_T, MPI_COMM_WORLD),
                  MPI_SUCCESS);
        if (pairwise) expect_eager("alltoall", e0, d0, (p - 1) * n * 4);
        expect_equal(out.data(), ref.data(), n * p, 4, "alltoall of 32 KiB blocks" + what);

        const int root = round % nranks();
        std::memcpy(out.data(), in.data(), n * 4);
        std::memcpy(ref.data(), in.data(), n * 4);
        e0 = c.eager_calls();
        d0 = c.direct_bytes();
        c.broadcast(out.data(), n, Datatype::int32, root);
        ASSERT_EQ(MPI_Bcast(ref.data(), ic(n), MPI_INT32_T, root, MPI_COMM_WORLD), MPI_SUCCESS);
        expect_eager("broadcast", e0, d0, rank() == root ? n * 4 : 0);
        expect_equal(out.data(), ref.data(), n, 4, "broadcast of 32 KiB" + what);
    }
}

}  // namespace
