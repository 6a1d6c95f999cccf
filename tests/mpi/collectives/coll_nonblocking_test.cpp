// Non-blocking collectives: iallreduce and ibroadcast complete, many in flight in any wait order.
#include "coll_test_support.hpp"

#include <chrono>
#include <thread>
#include <vector>

using namespace coyote;
using namespace coyote::mpi;

namespace {

using namespace coyote_test;

TEST(CollNonBlocking, IallreduceAndIbroadcastComplete) {
    for (Datatype t : {Datatype::int32, Datatype::bfloat16})
        for (uint64_t n : counts_for(t)) {
            Bytes in = bytes(n, t), out = bytes(n, t), ref = bytes(n, t);
            gen(t, Op::sum, rank(), 10, in.data(), n);
            Request r = coll().iallreduce(in.data(), out.data(), n, t, Op::sum);
            Bytes bc = bytes(n, t), bref = bytes(n, t);
            gen(t, Op::band, rank(), 11, bc.data(), n);
            std::memcpy(bref.data(), bc.data(), bc.size());
            Request b = coll().ibroadcast(bc.data(), n, t, nranks() - 1);
            // A blocking collective while both are in flight.
            int32_t one = 1, sum = 0;
            coll().allreduce(&one, &sum, 1, Datatype::int32, Op::sum);
            EXPECT_EQ(sum, nranks());
            while (!r.test()) std::this_thread::yield();
            EXPECT_TRUE(b.wait(std::chrono::milliseconds(60000)));
            ASSERT_EQ(MPI_Allreduce(in.data(), ref.data(), ic(n), mpi_datatype(t), mpi_op(Op::sum, t), MPI_COMM_WORLD),
                      MPI_SUCCESS);
            ASSERT_EQ(MPI_Bcast(bref.data(), ic(n), mpi_datatype(t), nranks() - 1, MPI_COMM_WORLD), MPI_SUCCESS);
            expect_equal(out.data(), ref.data(), n, size_of(t), ctx("iallreduce", t, Op::sum, n));
            expect_equal(bc.data(), bref.data(), n, size_of(t), ctx("ibroadcast", t, Op::sum, n));
        }
}

TEST(CollNonBlocking, ManyInFlightCompleteInAnyWaitOrder) {
    // 24 operations queued before any wait (allreduce of several sizes and ops, broadcasts from every root),
    // a blocking allreduce and a point-to-point ring exchange while they run, then waited in reverse order.
    const int n = nranks();
    constexpr int k_ops = 24;
    std::vector<std::vector<int32_t>> in(k_ops), out(k_ops);
    std::vector<Request> reqs;
    for (int i = 0; i < k_ops; ++i) {
        const std::size_t count = static_cast<std::size_t>(1) << (i % 12); // 1 .. 2048 elements
        in[static_cast<std::size_t>(i)].resize(count);
        out[static_cast<std::size_t>(i)].assign(count, -1);
        for (std::size_t j = 0; j < count; ++j)
            in[static_cast<std::size_t>(i)][j] = static_cast<int32_t>(j % 97) + rank() * (i + 1);
        if (i % 3 == 2) {
            out[static_cast<std::size_t>(i)] = in[static_cast<std::size_t>(i)];
            reqs.push_back(coll().ibroadcast(out[static_cast<std::size_t>(i)].data(), count, Datatype::int32, i % n));
        } else {
            reqs.push_back(coll().iallreduce(in[static_cast<std::size_t>(i)].data(), out[static_cast<std::size_t>(i)].data(),
                                             count, Datatype::int32, i % 2 ? Op::max : Op::sum));
        }
    }
    int32_t one = 1, sum = 0;
    coll().allreduce(&one, &sum, 1, Datatype::int32, Op::sum);
    EXPECT_EQ(sum, n);
    const int to = (rank() + 1) % n;
    const int from = (rank() + n - 1) % n;
    int32_t token = rank(), got = -1;
    Request rs = coll().isend(&token, 1, Datatype::int32, to, 77);
    EXPECT_EQ(coll().recv(&got, 1, Datatype::int32, from, 77), 1u);
    rs.wait();
    EXPECT_EQ(got, from);
    for (int i = k_ops; i-- > 0;) reqs[static_cast<std::size_t>(i)].wait();
    for (int i = 0; i < k_ops; ++i) {
        const auto& o = out[static_cast<std::size_t>(i)];
        uint64_t bad = 0;
        for (std::size_t j = 0; j < o.size(); ++j) {
            const int32_t base = static_cast<int32_t>(j % 97);
            int32_t expect = 0;
            if (i % 3 == 2) {
                expect = base + (i % n) * (i + 1);
            } else if (i % 2) {
                expect = base + (n - 1) * (i + 1);
            } else {
                for (int r = 0; r < n; ++r) expect += base + r * (i + 1);
            }
            bad += o[j] != expect;
        }
        EXPECT_EQ(bad, 0u) << "operation " << i << " (" << (i % 3 == 2 ? "ibroadcast" : "iallreduce") << ", "
                           << o.size() << " elements)";
    }
}

}  // namespace
