// Collectives over sim FPGA RDMA, checked element by element against the same MPI collective: types,
// reductions, data movement, barrier and the queue pair budget. Inputs are small integers (sums), +-1/2
// (products) or raw bits (bitwise ops), so every reduction order gives the same result and floating-point
// results are compared exactly; one test uses random reals with a relative tolerance. COYOTE_COLL_TEST_QUICK=1
// runs a reduced matrix (used by the 16-rank run). The other suites of mpi_coll_test are the coll_*_test.cpp
// beside this file.
#include "coll_test_support.hpp"

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace coyote;
using namespace coyote::mpi;

namespace {

using namespace coyote_test;

[[maybe_unused]] auto* const g_env = ::testing::AddGlobalTestEnvironment(new CollEnvironment);

// ---- types -----------------------------------------------------------------------------------------

TEST(CollTypes, Float16RoundsToNearestEven) {
    EXPECT_EQ(float_to_half_bits(1.0f), 0x3c00);
    EXPECT_EQ(float_to_half_bits(-2.0f), 0xc000);
    EXPECT_EQ(float_to_half_bits(65504.0f), 0x7bff);
    EXPECT_EQ(float_to_half_bits(65520.0f), 0x7c00);           // halfway to the next binade: rounds up to inf
    EXPECT_EQ(float_to_half_bits(1.0f + 1.0f / 2048), 0x3c00);  // tie, even stays
    EXPECT_EQ(float_to_half_bits(1.0f + 3.0f / 2048), 0x3c02);  // tie, odd rounds up
    EXPECT_EQ(float_to_half_bits(5.9604644775390625e-8f), 0x0001); // smallest subnormal
    EXPECT_EQ(float_to_half_bits(2.98023223876953125e-8f), 0x0000); // half of it: tie to even (0)
    EXPECT_EQ(float_to_half_bits(std::ldexp(1.0f, -14)), 0x0400);
    EXPECT_TRUE((float_to_half_bits(std::nanf("")) & 0x7fff) > 0x7c00);
    for (uint32_t h = 0; h < 0x7c00; ++h) // every finite half survives the round trip
        ASSERT_EQ(float_to_half_bits(half_bits_to_float(static_cast<uint16_t>(h))), h);
}

TEST(CollTypes, Bfloat16RoundsToNearestEven) {
    EXPECT_EQ(float_to_bf16_bits(1.0f), 0x3f80);
    EXPECT_EQ(float_to_bf16_bits(std::bit_cast<float>(0x3f808000u)), 0x3f80); // tie, even
    EXPECT_EQ(float_to_bf16_bits(std::bit_cast<float>(0x3f818000u)), 0x3f82); // tie, odd up
    EXPECT_EQ(float_to_bf16_bits(std::bit_cast<float>(0x3f808001u)), 0x3f81);
    EXPECT_EQ(bf16_bits_to_float(0xc040), -3.0f);
}

TEST(CollTypes, BitwiseOnFloatsIsRejected) {
    std::vector<float> v(4, 1.0f);
    try {
        coll().allreduce(MPI_IN_PLACE, v.data(), v.size(), Datatype::float32, Op::bxor);
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("bxor is not defined for float32"), std::string::npos) << e.what();
    }
    EXPECT_THROW(coll().broadcast(v.data(), 4, Datatype::float32, nranks()), Error);
    EXPECT_THROW(coll().allreduce(nullptr, v.data(), 4, Datatype::float32, Op::sum), Error);
    // The object still works after argument errors.
    coll().allreduce(MPI_IN_PLACE, v.data(), v.size(), Datatype::float32, Op::sum);
    EXPECT_EQ(v[0], static_cast<float>(nranks()));
}

// ---- reductions ------------------------------------------------------------------------------------

TEST(Coll, AllreduceMatchesMpi) {
    for (Datatype t : all_types())
        for (Op op : ops_for(t))
            for (uint64_t n : counts_for(t))
                ASSERT_NO_FATAL_FAILURE(
                    allreduce_case(t, op, n, [&](const void* in, void* out) { coll().allreduce(in, out, n, t, op); }));
}

TEST(Coll, AllreduceInPlace) {
    for (Datatype t : all_types())
        for (uint64_t n : counts_for(t)) {
            const Op op = is_floating(t) ? Op::sum : Op::bxor;
            Bytes buf = bytes(n, t), ref = bytes(n, t);
            gen(t, op, rank(), 2, buf.data(), n);
            ASSERT_EQ(MPI_Allreduce(buf.data(), ref.data(), ic(n), mpi_datatype(t), mpi_op(op, t), MPI_COMM_WORLD),
                      MPI_SUCCESS);
            coll().allreduce(MPI_IN_PLACE, buf.data(), n, t, op);
            expect_equal(buf.data(), ref.data(), n, size_of(t), ctx("allreduce in place", t, op, n));
        }
}

TEST(Coll, AllreduceRandomRealsWithinTolerance) {
    // The reduction order differs from Open MPI's: random reals agree to a relative 1e-5 (float32) only.
    const uint64_t n = quick() ? 1000 : 100003;
    std::vector<float> in = random_reals<float>(n, static_cast<unsigned>(rank() + 17)), out(n), ref(n);
    coll().allreduce(in.data(), out.data(), n, Datatype::float32, Op::sum);
    ASSERT_EQ(MPI_Allreduce(in.data(), ref.data(), ic(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), MPI_SUCCESS);
    EXPECT_EQ(count_not_close(out, ref, n, 1e-5f), 0u);
    // Every rank holds the same bits.
    std::vector<float> r0(out);
    ASSERT_EQ(MPI_Bcast(r0.data(), ic(n), MPI_FLOAT, 0, MPI_COMM_WORLD), MPI_SUCCESS);
    EXPECT_EQ(std::memcmp(r0.data(), out.data(), n * sizeof(float)), 0);
}

TEST(Coll, ReduceMatchesMpiAnyRoot) {
    for (Datatype t : all_types())
        for (Op op : ops_for(t))
            for (uint64_t n : counts_for(t))
                for (int root : {0, nranks() - 1}) {
                    Bytes in = bytes(n, t), out = bytes(n, t, 0x5a), ref = bytes(n, t, 0x5a);
                    gen(t, op, rank(), 3, in.data(), n);
                    const bool in_place = rank() == root && (n % 2 == 1);
                    if (in_place) {
                        std::memcpy(out.data(), in.data(), n * size_of(t));
                        coll().reduce(MPI_IN_PLACE, out.data(), n, t, op, root);
                    } else {
                        coll().reduce(in.data(), out.data(), n, t, op, root);
                    }
                    ASSERT_EQ(MPI_Reduce(in.data(), ref.data(), ic(n), mpi_datatype(t), mpi_op(op, t), root, MPI_COMM_WORLD),
                              MPI_SUCCESS);
                    if (rank() == root) expect_equal(out.data(), ref.data(), n, size_of(t), ctx("reduce", t, op, n, root));
                }
}

TEST(Coll, ReduceScatterMatchesMpi) {
    const int p = nranks();
    for (Datatype t : all_types())
        for (Op op : ops_for(t))
            for (uint64_t n : counts_for(t)) {
                const uint64_t total = n * static_cast<uint64_t>(p);
                Bytes in = bytes(total, t), out = bytes(n, t, 0x5a), ref = bytes(n, t, 0x5a);
                gen(t, op, rank(), 4, in.data(), total);
                ASSERT_EQ(MPI_Reduce_scatter_block(in.data(), ref.data(), ic(n), mpi_datatype(t), mpi_op(op, t), MPI_COMM_WORLD),
                          MPI_SUCCESS);
                if (n % 2 == 1) {
                    coll().reduce_scatter(MPI_IN_PLACE, in.data(), n, t, op);
                    expect_equal(in.data(), ref.data(), n, size_of(t), ctx("reduce_scatter in place", t, op, n));
                } else {
                    coll().reduce_scatter(in.data(), out.data(), n, t, op);
                    expect_equal(out.data(), ref.data(), n, size_of(t), ctx("reduce_scatter", t, op, n));
                }
            }
}

// ---- data movement ---------------------------------------------------------------------------------

TEST(Coll, BroadcastMatchesMpi) {
    for (Datatype t : all_types())
        for (uint64_t n : counts_for(t))
            for (int root : {0, nranks() - 1, nranks() / 2}) {
                Bytes buf = bytes(n, t), ref = bytes(n, t);
                gen(t, Op::band, rank(), 5, buf.data(), n);
                std::memcpy(ref.data(), buf.data(), buf.size());
                coll().broadcast(buf.data(), n, t, root);
                ASSERT_EQ(MPI_Bcast(ref.data(), ic(n), mpi_datatype(t), root, MPI_COMM_WORLD), MPI_SUCCESS);
                expect_equal(buf.data(), ref.data(), n, size_of(t), ctx("broadcast", t, Op::sum, n, root));
            }
}

TEST(Coll, GatherScatterMatchMpi) {
    const auto p = static_cast<uint64_t>(nranks());
    for (Datatype t : all_types())
        for (uint64_t n : counts_for(t))
            for (int root : {0, nranks() - 1}) {
                const std::size_t es = size_of(t);
                Bytes in = bytes(n, t), all = bytes(n * p, t, 0x5a), ref = bytes(n * p, t, 0x5a);
                gen(t, Op::band, rank(), 6, in.data(), n);
                const bool in_place = rank() == root && n % 2 == 1;
                if (in_place) {
                    std::memcpy(all.data() + static_cast<uint64_t>(root) * n * es, in.data(), n * es);
                    coll().gather(MPI_IN_PLACE, all.data(), n, t, root);
                } else {
                    coll().gather(in.data(), all.data(), n, t, root);
                }
                ASSERT_EQ(MPI_Gather(in.data(), ic(n), mpi_datatype(t), ref.data(), ic(n), mpi_datatype(t), root, MPI_COMM_WORLD),
                          MPI_SUCCESS);
                if (rank() == root) expect_equal(all.data(), ref.data(), n * p, es, ctx("gather", t, Op::sum, n, root));

                Bytes src = bytes(n * p, t), part = bytes(n, t, 0x5a), ref2 = bytes(n, t, 0x5a);
                gen(t, Op::band, rank(), 7, src.data(), n * p);
                if (in_place) {
                    coll().scatter(src.data(), MPI_IN_PLACE, n, t, root);
                } else {
                    coll().scatter(src.data(), part.data(), n, t, root);
                }
                ASSERT_EQ(MPI_Scatter(src.data(), ic(n), mpi_datatype(t), ref2.data(), ic(n), mpi_datatype(t), root, MPI_COMM_WORLD),
                          MPI_SUCCESS);
                if (!in_place) expect_equal(part.data(), ref2.data(), n, es, ctx("scatter", t, Op::sum, n, root));
            }
}

TEST(Coll, AllgatherMatchesMpi) {
    const auto p = static_cast<uint64_t>(nranks());
    for (Datatype t : all_types())
        for (uint64_t n : counts_for(t)) {
            const std::size_t es = size_of(t);
            Bytes in = bytes(n, t), all = bytes(n * p, t, 0x5a), ref = bytes(n * p, t, 0x5a);
            gen(t, Op::band, rank(), 8, in.data(), n);
            if (n % 2 == 1) {
                std::memcpy(all.data() + static_cast<uint64_t>(rank()) * n * es, in.data(), n * es);
                coll().allgather(MPI_IN_PLACE, all.data(), n, t);
            } else {
                coll().allgather(in.data(), all.data(), n, t);
            }
            ASSERT_EQ(MPI_Allgather(in.data(), ic(n), mpi_datatype(t), ref.data(), ic(n), mpi_datatype(t), MPI_COMM_WORLD),
                      MPI_SUCCESS);
            expect_equal(all.data(), ref.data(), n * p, es, ctx("allgather", t, Op::sum, n) + " " + coll().last_algorithm());
        }
}

TEST(Coll, AlltoallMatchesMpi) {
    const auto p = static_cast<uint64_t>(nranks());
    for (Datatype t : all_types())
        for (uint64_t n : counts_for(t)) {
            const std::size_t es = size_of(t);
            Bytes in = bytes(n * p, t), out = bytes(n * p, t, 0x5a), ref = bytes(n * p, t, 0x5a);
            gen(t, Op::band, rank(), 9, in.data(), n * p);
            ASSERT_EQ(MPI_Alltoall(in.data(), ic(n), mpi_datatype(t), ref.data(), ic(n), mpi_datatype(t), MPI_COMM_WORLD),
                      MPI_SUCCESS);
            if (n % 2 == 1) {
                coll().alltoall(MPI_IN_PLACE, in.data(), n, t);
                expect_equal(in.data(), ref.data(), n * p, es, ctx("alltoall in place", t, Op::sum, n));
            } else {
                coll().alltoall(in.data(), out.data(), n, t);
                expect_equal(out.data(), ref.data(), n * p, es, ctx("alltoall", t, Op::sum, n) + " " + coll().last_algorithm());
            }
        }
}

// ---- barrier and peers -----------------------------------------------------------------------------

TEST(Coll, BarrierWaitsForTheLastRank) {
    for (int round = 0; round < 3; ++round) {
        const int late = round % nranks();
        if (rank() == late) std::this_thread::sleep_for(std::chrono::milliseconds(30));
        // steady_clock is CLOCK_MONOTONIC: comparable between processes of one machine (MPI_Wtime is not).
        auto now = [] { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); };
        const double enter = now();
        coll().barrier();
        const double leave = now();
        double last_enter = 0;
        ASSERT_EQ(MPI_Allreduce(&enter, &last_enter, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD), MPI_SUCCESS);
        EXPECT_GE(leave, last_enter) << "rank " << rank() << " left barrier " << round << " before rank " << late << " entered";
    }
}

TEST(Coll, QueuePairBudgetIsLogarithmic) {
    // Wired peers are rank +- 2^k (mod N): at most 2 ceil(log2 N), so that more than 64 ranks fit the 64 ctids.
    const int n = nranks();
    std::vector<int> expect;
    for (int d = 1; d < n; d <<= 1)
        for (int p : {(rank() + d) % n, (rank() - d % n + n) % n})
            if (p != rank()) expect.push_back(p);
    std::sort(expect.begin(), expect.end());
    expect.erase(std::unique(expect.begin(), expect.end()), expect.end());
    int log2n = 0;
    while ((1 << log2n) < n) ++log2n;
    EXPECT_EQ(coll().peers(), expect);
    EXPECT_LE(coll().peers().size(), static_cast<std::size_t>(2 * log2n));
}

}  // namespace
