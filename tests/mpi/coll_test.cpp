// Collectives over sim FPGA RDMA, checked element by element against the same MPI collective.
// Inputs are small integers (sums), +-1/2 (products) or raw bits (bitwise ops), so every reduction order gives
// the same result and floating-point results are compared exactly; one test uses random reals with a
// relative tolerance. COYOTE_COLL_TEST_QUICK=1 runs a reduced matrix (used by the 16-rank run).
#include <coyote/mpi/collectives.hpp>
#include "collectives/engine/engine.hpp"
#include <coyote/mpi/mpi.hpp>

#include <gtest/gtest.h>

#include "coll_test_support.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace coyote;
using namespace coyote::mpi;

namespace {

/// Objects whose thresholds force one algorithm each (created on first use, collectively).
enum class Forced { recursive_doubling, rabenseifner, rings, recursive_halving, count_ };

struct World {
    std::unique_ptr<Communicator> comm;
    DeviceAssignment dev;
    std::unique_ptr<Collectives> coll;
    std::unique_ptr<Collectives> forced[static_cast<int>(Forced::count_)];
};
World* g_world = nullptr;

class CollEnvironment : public ::testing::Environment {
public:
    void SetUp() override {
        g_world = new World;
        g_world->comm = std::make_unique<Communicator>(MPI_COMM_WORLD);
        g_world->dev = select_device(*g_world->comm);
        g_world->coll = std::make_unique<Collectives>(*g_world->comm, g_world->dev);
    }
    void TearDown() override {
        delete g_world;
        g_world = nullptr;
    }
};
[[maybe_unused]] auto* const g_env = ::testing::AddGlobalTestEnvironment(new CollEnvironment);

Collectives& coll() { return *g_world->coll; }
int rank() { return g_world->comm->rank(); }
int nranks() { return g_world->comm->size(); }
bool quick() {
    const char* q = std::getenv("COYOTE_COLL_TEST_QUICK");
    return q != nullptr && std::string(q) == "1";
}

std::vector<Datatype> all_types() {
    if (quick()) return {Datatype::int32, Datatype::float16, Datatype::float64};
    return {Datatype::int8,    Datatype::uint8,    Datatype::int32,   Datatype::uint32, Datatype::int64,
            Datatype::uint64,  Datatype::float16,  Datatype::bfloat16, Datatype::float32, Datatype::float64};
}

std::vector<Op> ops_for(Datatype t) {
    if (quick()) return {Op::sum, Op::max};
    if (is_floating(t)) return {Op::sum, Op::prod, Op::min, Op::max};
    return {Op::sum, Op::prod, Op::min, Op::max, Op::band, Op::bor, Op::bxor};
}

/// Counts: 0, 1, 7, 4 KiB + 3 elements, and more than one registered buffer.
std::vector<uint64_t> counts_for(Datatype t) {
    const uint64_t es = size_of(t);
    const uint64_t big = coll().options().buffer_size / es + 5;
    if (quick()) return {0, 7, 4096 / es + 3};
    return {0, 1, 7, 4096 / es + 3, big};
}

/// The thresholds that select `f`: recursive doubling for every allreduce; Rabenseifner for every allreduce
/// of at least N elements and recursive halving for every reduce_scatter; the rings for both.
Collectives& forced(Forced f) {
    auto& slot = g_world->forced[static_cast<int>(f)];
    if (!slot) {
        CollectiveOptions o = coll().options();
        const uint64_t all = ~0ull;
        switch (f) {
        case Forced::recursive_doubling: o.allreduce_small = all; break;
        case Forced::rabenseifner: o.allreduce_small = 0; o.allreduce_large = all; break;
        case Forced::rings: o.allreduce_small = 0; o.allreduce_large = 0; o.reduce_scatter_small = 0; break;
        case Forced::recursive_halving: o.reduce_scatter_small = all; break;
        case Forced::count_: break;
        }
        slot = std::make_unique<Collectives>(*g_world->comm, g_world->dev, o);
    }
    return *slot;
}

std::string ctx(const char* what, Datatype t, Op op, uint64_t count, int root = -1) {
    std::string s = std::string(what) + " " + name(t) + " " + name(op) + " count " + std::to_string(count);
    if (root >= 0) s += " root " + std::to_string(root);
    return s + " on rank " + std::to_string(rank()) + " of " + std::to_string(nranks());
}
using coyote_test::Bytes;
using coyote_test::bytes;
using coyote_test::expect_equal;
using coyote_test::gen;
using coyote_test::ic;

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
            for (uint64_t n : counts_for(t)) {
                Bytes in = bytes(n, t), out = bytes(n, t, 0x5a), ref = bytes(n, t, 0x5a);
                gen(t, op, rank(), 1, in.data(), n);
                coll().allreduce(in.data(), out.data(), n, t, op);
                ASSERT_EQ(MPI_Allreduce(in.data(), ref.data(), ic(n), mpi_datatype(t), mpi_op(op, t), MPI_COMM_WORLD),
                          MPI_SUCCESS);
                expect_equal(out.data(), ref.data(), n, size_of(t), ctx("allreduce", t, op, n));
                EXPECT_EQ(out[n * size_of(t)], std::byte{0x5a}) << "wrote past the end: " << ctx("allreduce", t, op, n);
            }
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
    std::mt19937 gen_(static_cast<unsigned>(rank() + 17));
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    std::vector<float> in(n), out(n), ref(n);
    for (auto& x : in) x = d(gen_);
    coll().allreduce(in.data(), out.data(), n, Datatype::float32, Op::sum);
    ASSERT_EQ(MPI_Allreduce(in.data(), ref.data(), ic(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), MPI_SUCCESS);
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; ++i) bad += std::fabs(out[i] - ref[i]) > 1e-5f * (1.0f + std::fabs(ref[i]));
    EXPECT_EQ(bad, 0u);
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

// ---- forced algorithms (thresholds select each one for every count) --------------------------------

/// Every type, op and count (the reduced types / ops with COYOTE_COLL_TEST_QUICK, but every count), out of place
/// and in place, against MPI_Allreduce; `expect(count)` is the algorithm the object must report.
template <typename Expect>
void allreduce_all_cases(Collectives& c, const char* what, Expect expect) {
    for (Datatype t : all_types())
        for (Op op : ops_for(t)) {
            const uint64_t es = size_of(t);
            for (uint64_t n : {uint64_t{0}, uint64_t{1}, uint64_t{7}, 4096 / es + 3, c.options().buffer_size / es + 5}) {
                Bytes in = bytes(n, t), out = bytes(n, t, 0x5a), ref = bytes(n, t, 0x5a);
                gen(t, op, rank(), 21, in.data(), n);
                ASSERT_EQ(MPI_Allreduce(in.data(), ref.data(), ic(n), mpi_datatype(t), mpi_op(op, t), MPI_COMM_WORLD),
                          MPI_SUCCESS);
                const std::string where = ctx(what, t, op, n);
                const Bytes before = in;
                c.allreduce(in.data(), out.data(), n, t, op);
                EXPECT_EQ(c.last_algorithm(), expect(n)) << where;
                expect_equal(out.data(), ref.data(), n, es, where);
                EXPECT_EQ(out[n * es], std::byte{0x5a}) << "wrote past the end: " << where;
                EXPECT_TRUE(in == before) << "changed the send buffer: " << where;
                c.allreduce(MPI_IN_PLACE, in.data(), n, t, op);
                EXPECT_EQ(c.last_algorithm(), expect(n)) << where << " in place";
                expect_equal(in.data(), ref.data(), n, es, where + " in place");
                EXPECT_EQ(in[n * es], std::byte{0xA5}) << "wrote past the end: " << where << " in place";
            }
        }
}

/// Same for reduce_scatter (MPI_Reduce_scatter_block): size() * count elements in, count out.
template <typename Expect>
void reduce_scatter_all_cases(Collectives& c, const char* what, Expect expect) {
    const auto p = static_cast<uint64_t>(nranks());
    for (Datatype t : all_types())
        for (Op op : ops_for(t)) {
            const uint64_t es = size_of(t);
            for (uint64_t n : {uint64_t{0}, uint64_t{1}, uint64_t{7}, 4096 / es + 3, c.options().buffer_size / es + 5}) {
                Bytes in = bytes(n * p, t), out = bytes(n, t, 0x5a), ref = bytes(n, t, 0x5a);
                gen(t, op, rank(), 22, in.data(), n * p);
                ASSERT_EQ(MPI_Reduce_scatter_block(in.data(), ref.data(), ic(n), mpi_datatype(t), mpi_op(op, t),
                                                   MPI_COMM_WORLD),
                          MPI_SUCCESS);
                const std::string where = ctx(what, t, op, n);
                const Bytes before = in;
                c.reduce_scatter(in.data(), out.data(), n, t, op);
                EXPECT_EQ(c.last_algorithm(), expect(n)) << where;
                expect_equal(out.data(), ref.data(), n, es, where);
                EXPECT_EQ(out[n * es], std::byte{0x5a}) << "wrote past the end: " << where;
                EXPECT_TRUE(in == before) << "changed the send buffer: " << where;
                c.reduce_scatter(MPI_IN_PLACE, in.data(), n, t, op);
                EXPECT_EQ(c.last_algorithm(), expect(n)) << where << " in place";
                expect_equal(in.data(), ref.data(), n, es, where + " in place");
                EXPECT_EQ(in[n * p * es], std::byte{0xA5}) << "wrote past the end: " << where << " in place";
            }
        }
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
    std::mt19937 gen_(static_cast<unsigned>(rank() + 29));
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    std::vector<float> in(n), out(n), ref(n);
    for (auto& x : in) x = d(gen_);
    c.allreduce(in.data(), out.data(), n, Datatype::float32, Op::sum);
    EXPECT_EQ(c.last_algorithm(), "rabenseifner");
    ASSERT_EQ(MPI_Allreduce(in.data(), ref.data(), ic(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), MPI_SUCCESS);
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; ++i) bad += std::fabs(out[i] - ref[i]) > 1e-5f * (1.0f + std::fabs(ref[i]));
    EXPECT_EQ(bad, 0u);
    std::vector<float> r0(out);
    ASSERT_EQ(MPI_Bcast(r0.data(), ic(n), MPI_FLOAT, 0, MPI_COMM_WORLD), MPI_SUCCESS);
    EXPECT_EQ(std::memcmp(r0.data(), out.data(), n * sizeof(float)), 0) << "rank " << rank() << " differs from rank 0";
    // In place gives the same bits as out of place.
    c.allreduce(MPI_IN_PLACE, in.data(), n, Datatype::float32, Op::sum);
    EXPECT_EQ(std::memcmp(in.data(), out.data(), n * sizeof(float)), 0);
}

TEST(CollForced, RecursiveHalvingRandomRealsWithinTolerance) {
    if (nranks() == 2) GTEST_SKIP() << "two ranks run the ring";
    Collectives& c = forced(Forced::recursive_halving);
    const auto p = static_cast<uint64_t>(nranks());
    const uint64_t n = quick() ? 333 : 20011;
    std::mt19937 gen_(static_cast<unsigned>(rank() + 31));
    std::uniform_real_distribution<double> d(-1.0, 1.0);
    std::vector<double> in(n * p), out(n), ref(n);
    for (auto& x : in) x = d(gen_);
    c.reduce_scatter(in.data(), out.data(), n, Datatype::float64, Op::sum);
    EXPECT_EQ(c.last_algorithm(), "recursive_halving");
    ASSERT_EQ(MPI_Reduce_scatter_block(in.data(), ref.data(), ic(n), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), MPI_SUCCESS);
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; ++i) bad += std::fabs(out[i] - ref[i]) > 1e-12 * (1.0 + std::fabs(ref[i]));
    EXPECT_EQ(bad, 0u);
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

// Large copy streams go straight into the receiver's buffer (COYOTE_COLL_DIRECT_MIN; the direct CTest runs set
// it to 1 and COYOTE_COLL_TEST_EXPECT_DIRECT=1). Results match MPI, and the bytes around the destination stay
// untouched.
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

// ---- point-to-point ---------------------------------------------------------------------------------

TEST(CollP2p, TagsMatchInOrderPerPeer) {
    const int to = (rank() + 1) % nranks();
    const int from = (rank() + nranks() - 1) % nranks();
    const uint64_t big = coll().options().buffer_size / 4 * 3 + 11; // int32 elements: 3x the buffer
    std::vector<int32_t> a(big), b(5), c(3);
    for (uint64_t i = 0; i < big; ++i) a[i] = static_cast<int32_t>(i * 3 + static_cast<uint64_t>(rank()));
    const int32_t small1[5] = {1, 2, 3, 4, rank()};
    const int32_t small2[3] = {7, 8, rank()};
    // Three messages: tag 1 (big), tag 2, tag 1 again; received as tag 2, tag 1, any.
    Request s1 = coll().isend(a.data(), big, Datatype::int32, to, 1);
    Request s2 = coll().isend(small1, 5, Datatype::int32, to, 2);
    Request s3 = coll().isend(small2, 3, Datatype::int32, to, 1);
    std::vector<int32_t> ra(big);
    EXPECT_EQ(coll().recv(b.data(), 5, Datatype::int32, from, 2), 5u);
    EXPECT_EQ(coll().recv(ra.data(), big, Datatype::int32, from, 1), big);
    std::vector<int32_t> rc(10);
    EXPECT_EQ(coll().recv(rc.data(), 10, Datatype::int32, from, any_tag), 3u);
    s1.wait();
    s2.wait();
    s3.wait();
    EXPECT_EQ(b[4], from);
    EXPECT_EQ(rc[0], 7);
    EXPECT_EQ(rc[2], from);
    uint64_t bad = 0;
    for (uint64_t i = 0; i < big; ++i) bad += ra[i] != static_cast<int32_t>(i * 3 + static_cast<uint64_t>(from));
    EXPECT_EQ(bad, 0u);
    coll().barrier();
}

TEST(CollP2p, NonBlockingExchangeAndTimeout) {
    const int to = (rank() + 1) % nranks();
    const int from = (rank() + nranks() - 1) % nranks();
    const uint64_t n = coll().options().buffer_size; // uint8: one buffer, more than the ring holds
    std::vector<uint8_t> out(n), in(n, 0);
    for (uint64_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(i * 7 + static_cast<uint64_t>(rank()));
    // Both directions at once: posting both before waiting must not deadlock although neither fits the ring.
    Request r = coll().irecv(in.data(), n, Datatype::uint8, from, 9);
    Request s = coll().isend(out.data(), n, Datatype::uint8, to, 9);
    while (!r.test()) std::this_thread::yield();
    s.wait();
    EXPECT_EQ(r.received_bytes(), n);
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; ++i) bad += in[i] != static_cast<uint8_t>(i * 7 + static_cast<uint64_t>(from));
    EXPECT_EQ(bad, 0u);
    // wait(timeout) returns false while the sender holds back, true once it sent.
    int32_t v = -1;
    Request late = coll().irecv(&v, 1, Datatype::int32, from, 33);
    EXPECT_FALSE(late.wait(std::chrono::milliseconds(30)));
    coll().barrier();
    const int32_t mine = 1000 + rank();
    coll().send(&mine, 1, Datatype::int32, to, 33);
    EXPECT_TRUE(late.wait(std::chrono::milliseconds(60000)));
    EXPECT_EQ(v, 1000 + from);
    // A message longer than the receive buffer fails that receive with a clear error.
    const int32_t three[3] = {1, 2, 3};
    Request ts = coll().isend(three, 3, Datatype::int32, to, 44);
    int32_t two[2] = {0, 0};
    try {
        coll().recv(two, 2, Datatype::int32, from, 44);
        ADD_FAILURE() << "truncation not detected";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("exceeds the receive buffer"), std::string::npos) << e.what();
    }
    ts.wait();
    coll().barrier();
}

/// Ranks 0 and 3 have no queue pair at construction when N >= 6 (peers are rank +- 2^k).
bool zero_and_three_unwired() { return nranks() >= 6; }

TEST(CollP2p, EveryPairExchangesMessages) {
    const int n = nranks();
    const int me = rank();
    if (n > 48) GTEST_SKIP() << "every pair needs " << n - 1 << " queue pairs per rank; a vFPGA has 64 ctids";
    // Two tagged int32 to every other rank, and a message longer than the registered buffer to rank + 3.
    std::vector<std::array<int32_t, 2>> out(static_cast<std::size_t>(n));
    std::vector<Request> sends;
    for (int p = 0; p < n; ++p) {
        if (p == me) continue;
        out[static_cast<std::size_t>(p)] = {me * 1000 + p, -p};
        sends.push_back(coll().isend(out[static_cast<std::size_t>(p)].data(), 2, Datatype::int32, p, 7));
    }
    const int far = (me + 3) % n;
    const int far_from = ((me - 3) % n + n) % n;
    const uint64_t big = coll().options().buffer_size / 4 + 17;
    std::vector<int32_t> bigv(big), bigin(big, 0);
    for (uint64_t i = 0; i < big; ++i) bigv[i] = static_cast<int32_t>(i ^ static_cast<uint64_t>(me) << 20);
    if (far != me) sends.push_back(coll().isend(bigv.data(), big, Datatype::int32, far, 8));
    // The big one (sent after the small one on its channel) first, by tag; then the small ones in reverse rank order.
    if (far_from != me) {
        ASSERT_EQ(coll().recv(bigin.data(), big, Datatype::int32, far_from, 8), big);
        uint64_t bad = 0;
        for (uint64_t i = 0; i < big; ++i) bad += bigin[i] != static_cast<int32_t>(i ^ static_cast<uint64_t>(far_from) << 20);
        EXPECT_EQ(bad, 0u) << "from rank " << far_from;
    }
    for (int p = n - 1; p >= 0; --p) {
        if (p == me) continue;
        int32_t in[2] = {0, 0};
        ASSERT_EQ(coll().recv(in, 2, Datatype::int32, p, 7), 2u) << "from rank " << p;
        EXPECT_EQ(in[0], p * 1000 + me) << "from rank " << p;
        EXPECT_EQ(in[1], -me) << "from rank " << p;
    }
    for (auto& r : sends) r.wait();
    // Every rank outside the wired peers was reached through a link.
    std::vector<int> expect;
    for (int p = 0; p < n; ++p)
        if (p != me && std::find(coll().peers().begin(), coll().peers().end(), p) == coll().peers().end())
            expect.push_back(p);
    EXPECT_EQ(coll().linked_peers(), expect);
    if (n >= 6) {
        EXPECT_FALSE(expect.empty());
    }
    coll().barrier();
}

TEST(CollP2p, LinkIsAnsweredInsideACollective) {
    if (!zero_and_three_unwired()) GTEST_SKIP() << "ranks 0 and 3 are wired below 6 ranks";
    Collectives fresh(*g_world->comm, g_world->dev);
    // Rank 0's send cannot complete while rank 3 makes no call on the object (it is in MPI_Barrier); then rank 0
    // waits for it while rank 3 is inside a barrier (waiting for rank 0) and answers from there.
    const int32_t v0 = 4242;
    Request s;
    if (rank() == 0) {
        s = fresh.isend(&v0, 1, Datatype::int32, 3, 1);
        EXPECT_FALSE(s.wait(std::chrono::milliseconds(30)));
    }
    ASSERT_EQ(MPI_Barrier(MPI_COMM_WORLD), MPI_SUCCESS);
    if (rank() == 0) s.wait();
    fresh.barrier();
    if (rank() == 3) {
        int32_t v = 0;
        EXPECT_EQ(fresh.recv(&v, 1, Datatype::int32, 0, 1), 1u);
        EXPECT_EQ(v, 4242);
        EXPECT_EQ(fresh.linked_peers(), std::vector<int>{0});
    }
    fresh.barrier();
}

TEST(CollP2p, CrossingLinkRequests) {
    if (!zero_and_three_unwired()) GTEST_SKIP() << "ranks 0 and 3 are wired below 6 ranks";
    Collectives fresh(*g_world->comm, g_world->dev);
    // Both post (and so send their request) before either handles the other's.
    int32_t a = 100 + rank(), b = -1;
    if (rank() == 0 || rank() == 3) {
        const int other = rank() == 0 ? 3 : 0;
        Request s = fresh.isend(&a, 1, Datatype::int32, other, 2);
        ASSERT_EQ(MPI_Barrier(MPI_COMM_WORLD), MPI_SUCCESS);
        EXPECT_EQ(fresh.recv(&b, 1, Datatype::int32, other, 2), 1u);
        s.wait();
        EXPECT_EQ(b, 100 + other);
    } else {
        ASSERT_EQ(MPI_Barrier(MPI_COMM_WORLD), MPI_SUCCESS);
    }
    fresh.barrier();
}

TEST(CollP2p, RefusedLinkNamesTheReason) {
    if (!zero_and_three_unwired()) GTEST_SKIP() << "ranks 0 and 3 are wired below 6 ranks";
    Collectives fresh(*g_world->comm, g_world->dev);
    std::vector<std::unique_ptr<cThread>> hog;
    if (rank() == 3) {
        // Take every free ctid of this rank's vFPGA.
        try {
            for (;;) hog.push_back(std::make_unique<cThread>(g_world->dev.vfid, ::getpid(), g_world->dev.device));
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), make_error_code(Errc::resource_exhausted)) << e.what();
        }
        int32_t v = 0;
        try {
            (void)fresh.irecv(&v, 1, Datatype::int32, 0, 1);
            ADD_FAILURE() << "irecv opened a queue pair without a free ctid";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), make_error_code(Errc::resource_exhausted)) << e.what();
            EXPECT_NE(std::string(e.what()).find("cannot open a queue pair to rank 0"), std::string::npos) << e.what();
        }
    }
    if (rank() == 0) {
        const int32_t v = 1;
        try {
            fresh.send(&v, 1, Datatype::int32, 3, 1);
            ADD_FAILURE() << "send to a rank without a free ctid succeeded";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), make_error_code(Errc::resource_exhausted)) << e.what();
            EXPECT_NE(std::string(e.what()).find("rank 3 cannot open a queue pair for rank 0"), std::string::npos)
                << e.what();
        }
        // The refusal sticks to the pair; the object stays usable otherwise.
        EXPECT_THROW(fresh.send(&v, 1, Datatype::int32, 3, 1), Error);
    }
    fresh.barrier(); // rank 3 refuses rank 0's request from in here
    hog.clear();
    int32_t one = 1, sum = 0;
    fresh.allreduce(&one, &sum, 1, Datatype::int32, Op::sum);
    EXPECT_EQ(sum, nranks());
}

TEST(CollP2p, MalformedLinkMessagesAreRejected) {
    namespace cd = coyote::detail::coll;
    cd::EngineConfig cfg;
    cfg.buffer_size = 65536;
    cfg.chunk_bytes = 4096;
    cd::Engine e(*g_world->comm, g_world->dev, cfg);
    int32_t v = 0;
    std::shared_ptr<cd::OpState> r;
    if (rank() == 1) r = e.post_recv(&v, sizeof(v), 0, 5);
    ASSERT_EQ(MPI_Barrier(MPI_COMM_WORLD), MPI_SUCCESS);
    if (rank() == 0) {
        // A message shorter than a link header, and a header with a wrong magic.
        std::array<std::byte, 10> shorter{};
        ASSERT_EQ(MPI_Send(shorter.data(), 10, MPI_BYTE, 1, cd::k_link_tag, e.link_comm()), MPI_SUCCESS);
        std::vector<std::byte> bad(256, std::byte{0x5a});
        ASSERT_EQ(MPI_Send(bad.data(), 256, MPI_BYTE, 1, cd::k_link_tag, e.link_comm()), MPI_SUCCESS);
    }
    if (rank() == 1) {
        // Each progress call that meets one fails with a protocol error naming the sender.
        std::vector<std::string> errors;
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (errors.size() < 2 && std::chrono::steady_clock::now() < until) {
            try {
                EXPECT_FALSE(e.test(*r));
            } catch (const Error& err) {
                EXPECT_EQ(err.code(), make_error_code(Errc::protocol)) << err.what();
                errors.emplace_back(err.what());
            }
            std::this_thread::yield();
        }
        ASSERT_EQ(errors.size(), 2u);
        EXPECT_NE(errors[0].find("malformed queue-pair link message from rank 0: 10 bytes"), std::string::npos) << errors[0];
        EXPECT_NE(errors[1].find("malformed queue-pair link message from rank 0: bad magic"), std::string::npos) << errors[1];
    }
    ASSERT_EQ(MPI_Barrier(MPI_COMM_WORLD), MPI_SUCCESS);
    // One met inside a collective (rank 1 waits in a barrier while rank 0 sleeps) does not fail the collective;
    // the next point-to-point call reports it.
    if (rank() == 0) {
        std::vector<std::byte> bad(256, std::byte{0x5a});
        ASSERT_EQ(MPI_Send(bad.data(), 256, MPI_BYTE, 1, cd::k_link_tag, e.link_comm()), MPI_SUCCESS);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    cd::CallArgs none;
    EXPECT_STREQ(cd::run_collective(e, cd::CollKind::barrier, none, cd::Thresholds{}, e.next_epoch()),
                 nranks() == 1 ? "none" : "dissemination");
    if (rank() == 1) {
        try {
            (void)e.test(*r);
            ADD_FAILURE() << "the link message met inside the barrier was not reported";
        } catch (const Error& err) {
            EXPECT_NE(std::string(err.what()).find("from rank 0: bad magic"), std::string::npos) << err.what();
        }
    }
    // The engine goes on: a real message arrives.
    if (rank() == 0) {
        const int32_t x = 77;
        auto s = e.post_send(&x, sizeof(x), 1, 5);
        EXPECT_TRUE(e.wait(*s, std::chrono::milliseconds(20000)));
    }
    if (rank() == 1) {
        EXPECT_TRUE(e.wait(*r, std::chrono::milliseconds(20000)));
        EXPECT_EQ(v, 77);
    }
}

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

// ---- errors ----------------------------------------------------------------------------------------

TEST(CollErrors, ThresholdsFromTheEnvironmentAndAgreement) {
    struct Saved {
        const char* name;
        std::string value;
        bool set;
    };
    std::vector<Saved> saved;
    for (const char* v : {"COYOTE_COLL_ALLREDUCE_LARGE", "COYOTE_COLL_REDUCE_SCATTER_SMALL"}) {
        const char* old = std::getenv(v);
        saved.push_back({v, old ? old : "", old != nullptr});
    }
    ::setenv("COYOTE_COLL_ALLREDUCE_LARGE", "48K", 1);
    ::setenv("COYOTE_COLL_REDUCE_SCATTER_SMALL", "3000", 1);
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
    for (const auto& s : saved) {
        if (s.set)
            ::setenv(s.name, s.value.c_str(), 1);
        else
            ::unsetenv(s.name);
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
    const char* old = std::getenv("COYOTE_COLL_DIRECT_MIN");
    const std::string saved = old ? old : "";
    ::setenv("COYOTE_COLL_DIRECT_MIN", "auto", 1);
    EXPECT_EQ(CollectiveOptions::from_env().direct_min, CollectiveOptions::direct_auto);
    ::setenv("COYOTE_COLL_DIRECT_MIN", "32K", 1);
    EXPECT_EQ(CollectiveOptions::from_env().direct_min, 32u << 10);
    if (old != nullptr)
        ::setenv("COYOTE_COLL_DIRECT_MIN", saved.c_str(), 1);
    else
        ::unsetenv("COYOTE_COLL_DIRECT_MIN");
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

}  // namespace
