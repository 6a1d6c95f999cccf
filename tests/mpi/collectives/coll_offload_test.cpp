// Collectives with the local reduction step offloaded to the sim `reduce` user-logic model
// (COYOTE_SIM_MODEL=reduce COYOTE_COLL_OFFLOAD=1), checked element by element against MPI. The model's element
// counter (CSR 3), summed over the ranks, must equal the number of element reductions the algorithm performs:
// every reduction went through the vFPGA. float16 / bfloat16 (not implemented by the model) fall back to the CPU.
#include <coyote/cThread.hpp>
#include <coyote/mpi/collectives.hpp>
#include "collectives/engine/engine.hpp"
#include <coyote/mpi/mpi.hpp>
#include <coyote/sim/reduce_model.hpp>

#include <gtest/gtest.h>

#include "coll_test_support.hpp"
#include "support/env_guard.hpp"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace coyote;
using namespace coyote::mpi;

namespace {

using coyote_test::allreduce_case;
using coyote_test::Bytes;
using coyote_test::bytes;
using coyote_test::coll;
using coyote_test::ctx;
using coyote_test::EnvGuard;
using coyote_test::expect_equal;
using coyote_test::g_world;
using coyote_test::gen;
using coyote_test::ic;
using coyote_test::nranks;
using coyote_test::ops_for;
using coyote_test::rank;

/// Reads the model's registers (same vFPGA, same model instance).
std::unique_ptr<cThread> g_probe;

/// The collectives' world and the probe (destroyed first).
class OffloadEnvironment : public coyote_test::CollEnvironment {
public:
    void SetUp() override {
        CollEnvironment::SetUp();
        g_probe = std::make_unique<cThread>(g_world->dev.vfid, getpid(), g_world->dev.device);
    }
    void TearDown() override {
        g_probe.reset();
        CollEnvironment::TearDown();
    }
};
[[maybe_unused]] auto* const g_env = ::testing::AddGlobalTestEnvironment(new OffloadEnvironment);

/// Elements the model reduced on this rank so far.
uint64_t model_elements() { return g_probe->getCSR(coyote::sim::reduce::k_csr_elements); }

/// Sum over the ranks of `local`.
uint64_t total(uint64_t local) {
    uint64_t sum = 0;
    EXPECT_EQ(MPI_Allreduce(&local, &sum, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD), MPI_SUCCESS);
    return sum;
}

bool offloaded(Datatype t) { return t != Datatype::float16 && t != Datatype::bfloat16; }

std::vector<Datatype> types() {
    return {Datatype::int8, Datatype::uint32, Datatype::int64, Datatype::float16, Datatype::float32, Datatype::float64};
}

/// 1, 7 (recursive doubling / tree), 4 KiB + 3 elements (recursive doubling or Rabenseifner by type size) and
/// more than the registered buffer (ring / chain).
std::vector<uint64_t> counts_for(Datatype t) {
    const uint64_t es = size_of(t);
    return {1, 7, 4096 / es + 3, coll().options().buffer_size / es + 5};
}

/// Element reductions (over all ranks) of an allreduce of `count` with the algorithm it used.
uint64_t allreduce_work(uint64_t count, const std::string& algorithm) {
    const auto n = static_cast<uint64_t>(nranks());
    // The ring and Rabenseifner reduce every element once per other rank (fold + halving: (n - p2) + (p2 - 1)).
    if (algorithm == "ring" || algorithm == "rabenseifner") return count * (n - 1);
    uint64_t p2 = 1, log2 = 0;
    while (p2 * 2 <= n) p2 *= 2, ++log2;
    return count * ((n - p2) + p2 * log2); // non-power-of-two fold + log2 rounds on p2 ranks
}

TEST(CollOffload, EnabledFromTheEnvironment) {
    EXPECT_TRUE(coll().options().offload_reductions);
    EXPECT_EQ(g_probe->getCSR(coyote::sim::reduce::k_csr_id), coyote::sim::reduce::k_model_id);
}

TEST(CollOffload, AllreduceMatchesMpiAndRunsOnTheModel) {
    for (Datatype t : types())
        for (Op op : ops_for(t))
            for (uint64_t n : counts_for(t)) {
                uint64_t work = 0;
                ASSERT_NO_FATAL_FAILURE(allreduce_case(t, op, n, [&](const void* in, void* out) {
                    const uint64_t before = model_elements();
                    coll().allreduce(in, out, n, t, op);
                    work = total(model_elements() - before);
                }));
                EXPECT_EQ(work, offloaded(t) ? allreduce_work(n, coll().last_algorithm()) : 0u)
                    << ctx("allreduce", t, op, n) << " (" << coll().last_algorithm() << ")";
            }
}

TEST(CollOffload, AllreduceInPlaceAndNonBlocking) {
    for (Datatype t : {Datatype::int64, Datatype::float32})
        for (uint64_t n : counts_for(t)) {
            const Op op = is_floating(t) ? Op::sum : Op::bxor;
            Bytes buf = bytes(n, t), ref = bytes(n, t), nb = bytes(n, t), in = bytes(n, t);
            gen(t, op, rank(), 2, buf.data(), n);
            std::memcpy(in.data(), buf.data(), in.size());
            ASSERT_EQ(MPI_Allreduce(buf.data(), ref.data(), ic(n), mpi_datatype(t), mpi_op(op, t), MPI_COMM_WORLD),
                      MPI_SUCCESS);
            const uint64_t before = model_elements();
            coll().allreduce(MPI_IN_PLACE, buf.data(), n, t, op);
            expect_equal(buf.data(), ref.data(), n, size_of(t), ctx("allreduce in place", t, op, n));
            // The non-blocking form runs on a worker thread, through the same offload.
            Request r = coll().iallreduce(in.data(), nb.data(), n, t, op);
            r.wait();
            expect_equal(nb.data(), ref.data(), n, size_of(t), ctx("iallreduce", t, op, n));
            EXPECT_GT(total(model_elements() - before), 0u) << ctx("allreduce in place", t, op, n);
        }
}

TEST(CollOffload, ReduceMatchesMpiAndRunsOnTheModel) {
    const auto nr = static_cast<uint64_t>(nranks());
    for (Datatype t : types())
        for (Op op : {Op::sum, Op::max})
            for (uint64_t n : counts_for(t))
                for (int root : {0, nranks() - 1}) {
                    Bytes in = bytes(n, t), out = bytes(n, t, 0x5a), ref = bytes(n, t, 0x5a);
                    gen(t, op, rank(), 3, in.data(), n);
                    const uint64_t before = model_elements();
                    coll().reduce(in.data(), out.data(), n, t, op, root);
                    const uint64_t work = total(model_elements() - before);
                    ASSERT_EQ(MPI_Reduce(in.data(), ref.data(), ic(n), mpi_datatype(t), mpi_op(op, t), root, MPI_COMM_WORLD),
                              MPI_SUCCESS);
                    if (rank() == root) expect_equal(out.data(), ref.data(), n, size_of(t), ctx("reduce", t, op, n));
                    // Tree and chain both reduce every contribution but the root's once.
                    EXPECT_EQ(work, offloaded(t) ? n * (nr - 1) : 0u) << ctx("reduce", t, op, n);
                }
}

TEST(CollOffload, ReduceScatterMatchesMpiAndRunsOnTheModel) {
    const auto nr = static_cast<uint64_t>(nranks());
    for (Datatype t : types())
        for (Op op : {Op::sum, Op::min})
            for (uint64_t n : {uint64_t{1}, uint64_t{7}, uint64_t{4096 / size_of(t) + 3}}) {
                for (bool in_place : {false, true}) {
                    Bytes in = bytes(n * nr, t), out = bytes(n, t, 0x5a), ref = bytes(n, t, 0x5a);
                    gen(t, op, rank(), 4, in.data(), n * nr);
                    std::vector<int> counts(static_cast<std::size_t>(nranks()), ic(n));
                    ASSERT_EQ(MPI_Reduce_scatter(in.data(), ref.data(), counts.data(), mpi_datatype(t), mpi_op(op, t),
                                                 MPI_COMM_WORLD),
                              MPI_SUCCESS);
                    const uint64_t before = model_elements();
                    if (in_place) {
                        coll().reduce_scatter(MPI_IN_PLACE, in.data(), n, t, op);
                        expect_equal(in.data(), ref.data(), n, size_of(t), ctx("reduce_scatter in place", t, op, n));
                    } else {
                        coll().reduce_scatter(in.data(), out.data(), n, t, op);
                        expect_equal(out.data(), ref.data(), n, size_of(t), ctx("reduce_scatter", t, op, n));
                        EXPECT_EQ(out[n * size_of(t)], std::byte{0x5a}) << ctx("reduce_scatter", t, op, n);
                    }
                    // Every rank's block is reduced n - 1 times.
                    EXPECT_EQ(total(model_elements() - before), offloaded(t) ? n * nr * (nr - 1) : 0u)
                        << ctx("reduce_scatter", t, op, n);
                }
            }
}

/// A Collectives object on fresh sim devices whose model is `model` on rank `bad_rank` (-1: every rank) and
/// `reduce` elsewhere; returns the error code and message this rank gets.
std::pair<int, std::string> construct_with_model(const char* model, int bad_rank, uint32_t device_base) {
    EnvGuard m("COYOTE_SIM_MODEL", bad_rank < 0 || bad_rank == rank() ? model : "reduce");
    DeviceAssignment dev = g_world->dev;
    dev.device = device_base + static_cast<uint32_t>(rank());
    std::pair<int, std::string> result{0, "no error"};
    try {
        CollectiveOptions o = CollectiveOptions::from_env();
        Collectives c(*g_world->comm, dev, o);
    } catch (const Error& e) {
        result = {e.code().value(), e.what()};
    }
    return result;
}

TEST(CollOffload, OtherModelFailsNamingTheReduceModel) {
    auto [code, what] = construct_with_model("vadd", -1, 300);
    EXPECT_EQ(code, static_cast<int>(Errc::not_supported)) << what;
    EXPECT_NE(what.find("COYOTE_SIM_MODEL=reduce"), std::string::npos) << what;
    EXPECT_NE(what.find("COYOTE_SIM_MODEL=vadd"), std::string::npos) << what;
}

TEST(CollOffload, OneRankWithoutTheModelFailsEveryRank) {
    auto [code, what] = construct_with_model("passthrough", 0, 400);
    if (rank() == 0) {
        EXPECT_EQ(code, static_cast<int>(Errc::not_supported)) << what;
        EXPECT_NE(what.find("COYOTE_SIM_MODEL=reduce"), std::string::npos) << what;
    } else {
        EXPECT_EQ(code, static_cast<int>(Errc::invalid_argument)) << what;
        EXPECT_NE(what.find("rank 0 has invalid options (or cannot offload reductions)"), std::string::npos) << what;
    }
    // The world's object is unaffected.
    std::vector<int32_t> v(5, 1);
    coll().allreduce(std::span<int32_t>(v), Op::sum);
    EXPECT_EQ(v[4], nranks());
}

TEST(CollOffload, StalledUserLogicTimesOutAndDropsThePendingWrite) {
    using coyote::detail::coll::ReduceOffload;
    ReduceOffload off(g_world->dev, std::chrono::milliseconds(200));
    std::vector<uint32_t> a{1, 2, 3, 4}, b{10, 20, 30, 40}, out(4, 0), stolen(4, 0);
    // Another Coyote thread's write on output dest 0, posted first, takes the model's output.
    const uint32_t before = g_probe->checkCompleted(CoyoteOper::LOCAL_WRITE);
    g_probe->invoke(CoyoteOper::LOCAL_WRITE, localSg{.addr = stolen.data(), .len = 16, .dest = 0});
    try {
        off.reduce(out.data(), a.data(), b.data(), 4, Datatype::uint32, Op::sum);
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code().value(), static_cast<int>(Errc::timeout)) << e.what();
        EXPECT_NE(std::string(e.what()).find("did not complete within 200 ms"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("uint32 sum"), std::string::npos) << e.what();
    }
    EXPECT_EQ(stolen, (std::vector<uint32_t>{11, 22, 33, 44}));
    EXPECT_EQ(g_probe->checkCompleted(CoyoteOper::LOCAL_WRITE), before + 1);
    EXPECT_EQ(out, (std::vector<uint32_t>(4, 0)));
    // The object is unusable afterwards; its pending write was dropped with its Coyote thread.
    EXPECT_THROW(off.reduce(out.data(), a.data(), b.data(), 4, Datatype::uint32, Op::sum), Error);
    // The shared model is clean: the collectives' offload still works.
    std::vector<uint32_t> v(9, 2);
    coll().allreduce(std::span<uint32_t>(v), Op::sum);
    EXPECT_EQ(v, (std::vector<uint32_t>(9, 2u * static_cast<uint32_t>(nranks()))));
}

TEST(CollOffload, EnvironmentValueIsChecked) {
    EnvGuard offload("COYOTE_COLL_OFFLOAD", "yes");
    try {
        (void)CollectiveOptions::from_env();
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("COYOTE_COLL_OFFLOAD='yes' (expected 0 or 1)"), std::string::npos) << e.what();
    }
    ::setenv("COYOTE_COLL_OFFLOAD", "0", 1);
    EXPECT_FALSE(CollectiveOptions::from_env().offload_reductions);
}

}  // namespace
