// Collectives whose thresholds force one algorithm each (recursive doubling, Rabenseifner, rings, recursive
// halving) for every count, checked against MPI; and the default thresholds' choice by bytes.
#include "coll_test_support.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

using namespace coyote;
using namespace coyote::mpi;

namespace {

using namespace coyote_test;

/// A reduction as the forced tests run it: allreduce (`in_factor` 1) or reduce_scatter (`in_factor` = size(),
/// size() * count elements in, count out), our call and MPI's reference.
struct Reduction {
    uint64_t in_factor;
    uint64_t seed; ///< salt of the input pattern
    int (*mpi)(const void* in, void* out, int count, MPI_Datatype t, MPI_Op op);
    void (*ours)(Collectives& c, const void* in, void* out, uint64_t count, Datatype t, Op op);
};

const Reduction k_allreduce{1, 21,
                            [](const void* in, void* out, int n, MPI_Datatype t, MPI_Op op) {
                                return MPI_Allreduce(in, out, n, t, op, MPI_COMM_WORLD);
                            },
                            [](Collectives& c, const void* in, void* out, uint64_t n, Datatype t, Op op) {
                                c.allreduce(in, out, n, t, op);
                            }};

/// Every type, op and count (the reduced types / ops with COYOTE_COLL_TEST_QUICK, but every count), out of place
/// and in place, against MPI; `expect(count)` is the algorithm the object must report.
template <typename Expect>
void all_cases(Collectives& c, const char* what, const Reduction& r, Expect expect) {
    const uint64_t p = r.in_factor;
    for (Datatype t : all_types())
        for (Op op : ops_for(t)) {
            const uint64_t es = size_of(t);
            for (uint64_t n : {uint64_t{0}, uint64_t{1}, uint64_t{7}, 4096 / es + 3, c.options().buffer_size / es + 5}) {
                Bytes in = bytes(n * p, t), out = bytes(n, t, 0x5a), ref = bytes(n, t, 0x5a);
                gen(t, op, rank(), r.seed, in.data(), n * p);
                ASSERT_EQ(r.mpi(in.data(), ref.data(), ic(n), mpi_datatype(t), mpi_op(op, t)), MPI_SUCCESS);
                const std::string where = ctx(what, t, op, n);
                const Bytes before = in;
                r.ours(c, in.data(), out.data(), n, t, op);
                EXPECT_EQ(c.last_algorithm(), expect(n)) << where;
                expect_equal(out.data(), ref.data(), n, es, where);
                EXPECT_EQ(out[n * es], std::byte{0x5a}) << "wrote past the end: " << where;
                EXPECT_TRUE(in == before) << "changed the send buffer: " << where;
                r.ours(c, MPI_IN_PLACE, in.data(), n, t, op);
                EXPECT_EQ(c.last_algorithm(), expect(n)) << where << " in place";
                expect_equal(in.data(), ref.data(), n, es, where + " in place");
                EXPECT_EQ(in[n * p * es], std::byte{0xA5}) << "wrote past the end: " << where << " in place";
            }
        }
}

template <typename Expect>
void allreduce_all_cases(Collectives& c, const char* what, Expect expect) {
    all_cases(c, what, k_allreduce, expect);
}

/// Same for reduce_scatter (MPI_Reduce_scatter_block): size() * count elements in, count out.
template <typename Expect>
void reduce_scatter_all_cases(Collectives& c, const char* what, Expect expect) {
    const Reduction r{static_cast<uint64_t>(nranks()), 22,
                      [](const void* in, void* out, int n, MPI_Datatype t, MPI_Op op) {
                          return MPI_Reduce_scatter_block(in, out, n, t, op, MPI_COMM_WORLD);
                      },
                      [](Collectives& c2, const void* in, void* out, uint64_t n, Datatype t, Op op) {
                          c2.reduce_scatter(in, out, n, t, op);
                      }};
    all_cases(c, what, r, expect);
}

TEST(CollForced, AllreduceRecursiveDoublingEveryCount) {
    allreduce_all_cases(forced(Forced::recursive_doubling), "allreduce (recursive doubling)",
                        [](uint64_t n) { return n == 0 ? "none" : "recursive_doubling"; });
}

TEST(CollForced, AllreduceRabenseifner) {
    // Fewer elements than ranks always take recursive doubling (the halving would leave ranks without data);
    // two ranks take the ring (the same two exchanges).
    allreduce_all_cases(forced(Forced::rabenseifner), "allreduce (Rabenseifner)", [](uint64_t n) {
        return n == 0                                ? "none"
               : n < static_cast<uint64_t>(nranks()) ? "recursive_doubling"
               : nranks() == 2                       ? "ring"
                                                     : "rabenseifner";
    });
}

TEST(CollForced, AllreduceRing) {
    allreduce_all_cases(forced(Forced::rings), "allreduce (ring)", [](uint64_t n) {
        return n == 0 ? "none" : n < static_cast<uint64_t>(nranks()) ? "recursive_doubling" : "ring";
    });
}

TEST(CollForced, ReduceScatterRecursiveHalving) {
    // Two ranks take the ring (recursive halving would make the same single exchange).
    reduce_scatter_all_cases(forced(Forced::recursive_halving), "reduce_scatter (recursive halving)", [](uint64_t n) {
        return n == 0 ? "none" : nranks() == 2 ? "ring" : "recursive_halving";
    });
}

TEST(CollForced, ReduceScatterRing) {
    reduce_scatter_all_cases(forced(Forced::rings), "reduce_scatter (ring)",
                             [](uint64_t n) { return n == 0 ? "none" : "ring"; });
}

TEST(CollForced, RabenseifnerRandomRealsSameBitsEverywhere) {
    // Every segment is reduced by one rank and copied to the others: all ranks hold the same bits, and the
    // result agrees with MPI's to rounding. Odd count: segments of unequal size.
    if (nranks() == 2) GTEST_SKIP() << "two ranks run the ring";
    Collectives& c = forced(Forced::rabenseifner);
    const uint64_t n = quick() ? 1001 : 100003;
    std::vector<float> in = random_reals<float>(n, static_cast<unsigned>(rank() + 29)), out(n), ref(n);
    c.allreduce(in.data(), out.data(), n, Datatype::float32, Op::sum);
    EXPECT_EQ(c.last_algorithm(), "rabenseifner");
    ASSERT_EQ(MPI_Allreduce(in.data(), ref.data(), ic(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), MPI_SUCCESS);
    EXPECT_EQ(count_not_close(out, ref, n, 1e-5f), 0u);
    std::vector<float> r0(out);
    ASSERT_EQ(MPI_Bcast(r0.data(), ic(n), MPI_FLOAT, 0, MPI_COMM_WORLD), MPI_SUCCESS);
    EXPECT_EQ(std::memcmp(r0.data(), out.data(), n * sizeof(float)), 0) << "rank " << rank() << " differs from rank 0";
    // In place gives the same bits as out of place.
    c.allreduce(MPI_IN_PLACE, in.data(), n, Datatype::float32, Op::sum);
    EXPECT_EQ(std::memcmp(in.data(), out.data(), n * sizeof(float)), 0);
}

TEST(CollForced, MinMaxOfNaNsAndSignedZerosSameBitsEverywhere) {
    // Each rank combines the same inputs in another order: min / max must not depend on the operand order, where
    // `a < b ? b : a` does for a NaN or a +0 / -0 pair.
    const auto bits = [](double v) { return std::bit_cast<uint64_t>(v); };
    const auto nan_with = [](uint64_t payload) { return std::bit_cast<double>(0x7ff8000000000000ULL | payload); };
    const int r = rank();
    std::vector<double> in = {r == 0 ? nan_with(1) : 1.0,     // one rank's NaN
                              r % 2 == 0 ? -0.0 : 0.0,        // signed zeros
                              r == 0 ? 0.0 : -0.0,
                              nan_with(static_cast<uint64_t>(r) + 7), // a different NaN on every rank
                              static_cast<double>(r) - 1.5};
    const std::size_t n = in.size();
    for (const Forced f : {Forced::recursive_doubling, Forced::rings}) {
        for (const Op op : {Op::min, Op::max}) {
            std::vector<double> out(n), r0(n);
            forced(f).allreduce(in.data(), out.data(), n, Datatype::float64, op);
            r0 = out;
            ASSERT_EQ(MPI_Bcast(r0.data(), ic(n), MPI_DOUBLE, 0, MPI_COMM_WORLD), MPI_SUCCESS);
            const std::string what = std::string(op == Op::min ? "min" : "max") + " by " + forced(f).last_algorithm();
            EXPECT_EQ(std::memcmp(r0.data(), out.data(), n * sizeof(double)), 0)
                << what << ": rank " << r << " differs from rank 0";
            EXPECT_TRUE(std::isnan(out[0])) << what;
            EXPECT_EQ(bits(out[1]), bits(op == Op::min ? -0.0 : 0.0)) << what;
            EXPECT_EQ(bits(out[2]), bits(op == Op::min ? -0.0 : 0.0)) << what;
            EXPECT_EQ(bits(out[3]), bits(nan_with(static_cast<uint64_t>(nranks() - 1) + 7))) << what; // the largest
            EXPECT_EQ(out[4], op == Op::min ? -1.5 : nranks() - 2.5) << what;
        }
    }
}

TEST(CollForced, RecursiveHalvingRandomRealsWithinTolerance) {
    if (nranks() == 2) GTEST_SKIP() << "two ranks run the ring";
    Collectives& c = forced(Forced::recursive_halving);
    const auto p = static_cast<uint64_t>(nranks());
    const uint64_t n = quick() ? 333 : 20011;
    std::vector<double> in = random_reals<double>(n * p, static_cast<unsigned>(rank() + 31)), out(n), ref(n);
    c.reduce_scatter(in.data(), out.data(), n, Datatype::float64, Op::sum);
    EXPECT_EQ(c.last_algorithm(), "recursive_halving");
    ASSERT_EQ(MPI_Reduce_scatter_block(in.data(), ref.data(), ic(n), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), MPI_SUCCESS);
    EXPECT_EQ(count_not_close(out, ref, n, 1e-12), 0u);
}

TEST(CollForced, DefaultThresholdsPickByBytes) {
    // Defaults: recursive doubling up to allreduce_small, Rabenseifner up to allreduce_large, ring above;
    // reduce_scatter halving up to reduce_scatter_small bytes of the whole vector.
    const CollectiveOptions def;
    EXPECT_LT(def.allreduce_small, def.allreduce_large);
    CollectiveOptions o = coll().options();
    o.allreduce_small = 256;
    o.allreduce_large = 4096;
    o.reduce_scatter_small = 1024;
    Collectives c(*g_world->comm, g_world->dev, o);
    const uint64_t p = static_cast<uint64_t>(nranks());
    std::vector<int32_t> v(4096 / 4 * p + 64, 1), w(4096 / 4 + 64);
    auto ar = [&](uint64_t bytes) {
        c.allreduce(MPI_IN_PLACE, v.data(), bytes / 4, Datatype::int32, Op::sum);
        return c.last_algorithm();
    };
    const char* mid = p == 2 ? "ring" : "rabenseifner";
    EXPECT_EQ(ar(256), "recursive_doubling");
    EXPECT_EQ(ar(260), mid); // 65 elements: at least one per rank up to 65 ranks
    EXPECT_EQ(ar(4096), mid);
    EXPECT_EQ(ar(4100), "ring");
    auto rs = [&](uint64_t block) {
        c.reduce_scatter(v.data(), w.data(), block, Datatype::int32, Op::sum);
        return c.last_algorithm();
    };
    const uint64_t fits = 1024 / 4 / p; // largest block whose whole vector is at most 1024 bytes
    EXPECT_EQ(rs(fits), p == 2 ? "ring" : "recursive_halving");
    EXPECT_EQ(rs(fits + 1), "ring");
}

}  // namespace
