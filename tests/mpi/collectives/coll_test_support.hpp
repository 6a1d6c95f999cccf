// Shared by the collective tests: the world's objects (one communicator, device and Collectives per process,
// set up by CollEnvironment), the test matrix, input generation and comparison.
#pragma once

#include <coyote/mpi/collectives.hpp>
#include <coyote/mpi/mpi.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace coyote_test {

using coyote::mpi::Collectives;
using coyote::mpi::CollectiveOptions;
using coyote::mpi::Communicator;
using coyote::mpi::Datatype;
using coyote::mpi::DeviceAssignment;
using coyote::mpi::Op;
using coyote::mpi::size_of;
using coyote::mpi::to_bfloat16;
using coyote::mpi::to_float16;

// ---- the world -------------------------------------------------------------------------------------

/// Objects whose thresholds force one algorithm each (created on first use, collectively).
enum class Forced { recursive_doubling, rabenseifner, rings, recursive_halving, count_ };

struct World {
    std::unique_ptr<Communicator> comm;
    DeviceAssignment dev;
    std::unique_ptr<Collectives> coll;
    std::unique_ptr<Collectives> forced[static_cast<int>(Forced::count_)];
};
inline World* g_world = nullptr;

/// Creates the world before the first test and destroys it (before MPI_Finalize) after the last. A test
/// executable registers it once (or an environment derived from it).
class CollEnvironment : public ::testing::Environment {
public:
    void SetUp() override {
        g_world = new World;
        g_world->comm = std::make_unique<Communicator>(MPI_COMM_WORLD);
        g_world->dev = coyote::mpi::select_device(*g_world->comm);
        g_world->coll = std::make_unique<Collectives>(*g_world->comm, g_world->dev);
    }
    void TearDown() override {
        delete g_world;
        g_world = nullptr;
    }
};

inline Collectives& coll() { return *g_world->coll; }
inline int rank() { return g_world->comm->rank(); }
inline int nranks() { return g_world->comm->size(); }

/// The thresholds that select `f`: recursive doubling for every allreduce; Rabenseifner for every allreduce
/// of at least N elements and recursive halving for every reduce_scatter; the rings for both.
inline Collectives& forced(Forced f) {
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

/// "<what> <type> <op> count <n>[ root <r>] on rank <r> of <n>", the context of a failure message.
inline std::string ctx(const char* what, Datatype t, Op op, uint64_t count, int root = -1) {
    std::string s = std::string(what) + " " + name(t) + " " + name(op) + " count " + std::to_string(count);
    if (root >= 0) s += " root " + std::to_string(root);
    return s + " on rank " + std::to_string(rank()) + " of " + std::to_string(nranks());
}

// ---- the test matrix -------------------------------------------------------------------------------

/// COYOTE_COLL_TEST_QUICK=1: the reduced matrix.
inline bool quick() {
    const char* q = std::getenv("COYOTE_COLL_TEST_QUICK");
    return q != nullptr && std::string(q) == "1";
}

inline std::vector<Datatype> all_types() {
    if (quick()) return {Datatype::int32, Datatype::float16, Datatype::float64};
    return {Datatype::int8,    Datatype::uint8,    Datatype::int32,   Datatype::uint32, Datatype::int64,
            Datatype::uint64,  Datatype::float16,  Datatype::bfloat16, Datatype::float32, Datatype::float64};
}

inline std::vector<Op> ops_for(Datatype t) {
    if (quick()) return {Op::sum, Op::max};
    if (is_floating(t)) return {Op::sum, Op::prod, Op::min, Op::max};
    return {Op::sum, Op::prod, Op::min, Op::max, Op::band, Op::bor, Op::bxor};
}

/// Counts: 0, 1, 7, 4 KiB + 3 elements, and more than one registered buffer.
inline std::vector<uint64_t> counts_for(Datatype t) {
    const uint64_t es = size_of(t);
    const uint64_t big = coll().options().buffer_size / es + 5;
    if (quick()) return {0, 7, 4096 / es + 3};
    return {0, 1, 7, 4096 / es + 3, big};
}

// ---- inputs and comparison -------------------------------------------------------------------------

/// Deterministic input of `rank` for (t, op), element i.
inline void gen(Datatype t, Op op, int r, uint64_t salt, void* buf, uint64_t count) {
    const std::size_t es = size_of(t);
    auto* b = static_cast<std::byte*>(buf);
    for (uint64_t i = 0; i < count; ++i) {
        const uint64_t h = (i + 1) * 0x9E3779B97F4A7C15ull ^ (static_cast<uint64_t>(r) + 1) * 0xC2B2AE3D27D4EB4Full ^ salt;
        const uint64_t m = (h ^ (h >> 29)) * 0xBF58476D1CE4E5B9ull;
        double v = 0;
        bool raw = false;
        switch (op) {
        case Op::sum: v = static_cast<double>(m % 8); break;
        case Op::prod: v = (m % 7 == 0) ? 2.0 : ((m % 3 == 0) ? -1.0 : 1.0); break;
        case Op::min:
        case Op::max: v = static_cast<double>(static_cast<int64_t>(m % 200) - 100); break;
        default: raw = true; break;
        }
        std::byte* e = b + i * es;
        if (raw) {
            std::memcpy(e, &m, es);
            continue;
        }
        switch (t) {
        case Datatype::int8: { const auto x = static_cast<int8_t>(v); std::memcpy(e, &x, 1); break; }
        case Datatype::uint8: { const auto x = static_cast<uint8_t>(static_cast<int>(v) & 0xff); std::memcpy(e, &x, 1); break; }
        case Datatype::int32: { const auto x = static_cast<int32_t>(v); std::memcpy(e, &x, 4); break; }
        case Datatype::uint32: { const auto x = static_cast<uint32_t>(static_cast<int64_t>(v)); std::memcpy(e, &x, 4); break; }
        case Datatype::int64: { const auto x = static_cast<int64_t>(v); std::memcpy(e, &x, 8); break; }
        case Datatype::uint64: { const auto x = static_cast<uint64_t>(static_cast<int64_t>(v)); std::memcpy(e, &x, 8); break; }
        case Datatype::float16: { const auto x = to_float16(static_cast<float>(v)); std::memcpy(e, &x, 2); break; }
        case Datatype::bfloat16: { const auto x = to_bfloat16(static_cast<float>(v)); std::memcpy(e, &x, 2); break; }
        case Datatype::float32: { const auto x = static_cast<float>(v); std::memcpy(e, &x, 4); break; }
        case Datatype::float64: std::memcpy(e, &v, 8); break;
        }
    }
}

/// Element-wise comparison; one failure message with the first differing element.
inline void expect_equal(const void* got, const void* want, uint64_t count, std::size_t es, const std::string& what) {
    const auto* g = static_cast<const std::byte*>(got);
    const auto* w = static_cast<const std::byte*>(want);
    uint64_t bad = 0, first = 0;
    for (uint64_t i = 0; i < count; ++i)
        if (std::memcmp(g + i * es, w + i * es, es) != 0) {
            if (bad++ == 0) first = i;
        }
    if (bad != 0) ADD_FAILURE() << what << ": " << bad << " of " << count << " elements differ, first at " << first;
}

/// `n` reals uniform in [-1, 1) from a generator seeded with `seed`.
template <typename Real>
std::vector<Real> random_reals(uint64_t n, unsigned seed) {
    std::mt19937 gen_(seed);
    std::uniform_real_distribution<Real> d(Real{-1}, Real{1});
    std::vector<Real> v(n);
    for (auto& x : v) x = d(gen_);
    return v;
}

/// How many of the `n` elements of `got` differ from `want` by more than `rel` * (1 + |want|).
template <typename Real>
uint64_t count_not_close(const std::vector<Real>& got, const std::vector<Real>& want, uint64_t n, Real rel) {
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; ++i) bad += std::fabs(got[i] - want[i]) > rel * (Real{1} + std::fabs(want[i]));
    return bad;
}

inline int ic(uint64_t c) { return static_cast<int>(c); }
using Bytes = std::vector<std::byte>;
inline Bytes bytes(uint64_t count, Datatype t, uint8_t fill = 0xA5) { return Bytes(count * size_of(t) + 1, std::byte{fill}); }

/// One allreduce case: `call(in, out)` reduces `n` elements of type `t` under `op` (input pattern 1); the output
/// must equal MPI_Allreduce's element by element, with nothing written past its end.
template <typename Call>
void allreduce_case(Datatype t, Op op, uint64_t n, Call&& call) {
    Bytes in = bytes(n, t), out = bytes(n, t, 0x5a), ref = bytes(n, t, 0x5a);
    gen(t, op, rank(), 1, in.data(), n);
    call(in.data(), out.data());
    ASSERT_EQ(MPI_Allreduce(in.data(), ref.data(), ic(n), mpi_datatype(t), mpi_op(op, t), MPI_COMM_WORLD), MPI_SUCCESS);
    expect_equal(out.data(), ref.data(), n, size_of(t), ctx("allreduce", t, op, n));
    EXPECT_EQ(out[n * size_of(t)], std::byte{0x5a}) << "wrote past the end: " << ctx("allreduce", t, op, n);
}

}  // namespace coyote_test
