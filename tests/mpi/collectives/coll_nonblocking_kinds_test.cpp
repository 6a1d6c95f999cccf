// Non-blocking forms of every collective (ibarrier, ireduce, igather, iallgather, iscatter, ireduce_scatter,
// ialltoall): all in flight at once beside a blocking call, checked against MPI; in-place forms; argument errors.
#include "coll_test_support.hpp"

#include <chrono>
#include <functional>
#include <thread>
#include <vector>

using namespace coyote;
using namespace coyote::mpi;

namespace {

using namespace coyote_test;

/// One non-blocking collective of the test: its input, its output and MPI's output for the same call.
struct Kind {
    const char* what;
    uint64_t in_count;   ///< elements of the input (per rank)
    uint64_t out_count;  ///< elements of the output
    bool root_output;    ///< the output exists on the root only
    std::function<Request(Collectives&, const void*, void*)> start;
    std::function<int(const void*, void*)> reference; ///< the MPI call
};

std::vector<Kind> kinds(Datatype t, uint64_t n, int root) {
    const auto p = static_cast<uint64_t>(nranks());
    const MPI_Datatype mt = mpi_datatype(t);
    const MPI_Op sum = mpi_op(Op::sum, t);
    const int c = ic(n);
    return {
        {"ireduce", n, n, true, [=](Collectives& k, const void* s, void* r) { return k.ireduce(s, r, n, t, Op::sum, root); },
         [=](const void* s, void* r) { return MPI_Reduce(s, r, c, mt, sum, root, MPI_COMM_WORLD); }},
        {"igather", n, n * p, true, [=](Collectives& k, const void* s, void* r) { return k.igather(s, r, n, t, root); },
         [=](const void* s, void* r) { return MPI_Gather(s, c, mt, r, c, mt, root, MPI_COMM_WORLD); }},
        {"iallgather", n, n * p, false, [=](Collectives& k, const void* s, void* r) { return k.iallgather(s, r, n, t); },
         [=](const void* s, void* r) { return MPI_Allgather(s, c, mt, r, c, mt, MPI_COMM_WORLD); }},
        {"iscatter", n * p, n, false, [=](Collectives& k, const void* s, void* r) { return k.iscatter(s, r, n, t, root); },
         [=](const void* s, void* r) { return MPI_Scatter(s, c, mt, r, c, mt, root, MPI_COMM_WORLD); }},
        {"ireduce_scatter", n * p, n, false,
         [=](Collectives& k, const void* s, void* r) { return k.ireduce_scatter(s, r, n, t, Op::sum); },
         [=](const void* s, void* r) { return MPI_Reduce_scatter_block(s, r, c, mt, sum, MPI_COMM_WORLD); }},
        {"ialltoall", n * p, n * p, false, [=](Collectives& k, const void* s, void* r) { return k.ialltoall(s, r, n, t); },
         [=](const void* s, void* r) { return MPI_Alltoall(s, c, mt, r, c, mt, MPI_COMM_WORLD); }},
    };
}

TEST(CollNonBlockingKinds, AllInFlightMatchMpi) {
    for (Datatype t : {Datatype::int32, Datatype::uint8, Datatype::float16, Datatype::float64})
        for (uint64_t n : counts_for(t))
            for (int root : {0, nranks() - 1}) {
                const std::vector<Kind> ks = kinds(t, n, root);
                std::vector<Bytes> in, out;
                std::vector<Request> reqs;
                Request first = coll().ibarrier();
                for (std::size_t i = 0; i < ks.size(); ++i) {
                    in.push_back(bytes(ks[i].in_count, t));
                    out.push_back(bytes(ks[i].out_count, t, 0x5a));
                    gen(t, Op::sum, rank(), 20 + i, in.back().data(), ks[i].in_count);
                    reqs.push_back(ks[i].start(coll(), in.back().data(), out.back().data()));
                }
                Request last = coll().ibarrier();
                // A blocking collective while they run; then the waits in reverse order, the last by test().
                int32_t one = 1, total = 0;
                coll().allreduce(&one, &total, 1, Datatype::int32, Op::sum);
                EXPECT_EQ(total, nranks());
                EXPECT_TRUE(last.wait(std::chrono::milliseconds(60000)));
                for (std::size_t i = reqs.size(); i-- > 1;) reqs[i].wait();
                while (!reqs[0].test()) std::this_thread::yield();
                first.wait();
                for (std::size_t i = 0; i < ks.size(); ++i) {
                    Bytes ref = bytes(ks[i].out_count, t, 0x5a);
                    ASSERT_EQ(ks[i].reference(in[i].data(), ref.data()), MPI_SUCCESS) << ks[i].what;
                    if (ks[i].root_output && rank() != root) continue;
                    expect_equal(out[i].data(), ref.data(), ks[i].out_count, size_of(t),
                                 ctx(ks[i].what, t, Op::sum, n, root));
                }
            }
}

TEST(CollNonBlockingKinds, InPlaceFormsMatchMpi) {
    const Datatype t = Datatype::int32;
    const auto p = static_cast<uint64_t>(nranks());
    const int root = nranks() - 1;
    const bool at_root = rank() == root;
    for (uint64_t n : {uint64_t{7}, uint64_t{4099}}) {
        const int c = ic(n);
        // ireduce: the root's input is its output.
        Bytes r_in = bytes(n, t), r_ref = bytes(n, t, 0x5a);
        gen(t, Op::sum, rank(), 30, r_in.data(), n);
        ASSERT_EQ(MPI_Reduce(r_in.data(), r_ref.data(), c, MPI_INT32_T, MPI_SUM, root, MPI_COMM_WORLD), MPI_SUCCESS);
        Request r = coll().ireduce(at_root ? MPI_IN_PLACE : r_in.data(), r_in.data(), n, t, Op::sum, root);
        // igather: the root's block already sits in its output.
        Bytes g_in = bytes(n, t), g_out = bytes(n * p, t, 0x5a), g_ref = bytes(n * p, t, 0x5a);
        gen(t, Op::sum, rank(), 31, g_in.data(), n);
        ASSERT_EQ(MPI_Gather(g_in.data(), c, MPI_INT32_T, g_ref.data(), c, MPI_INT32_T, root, MPI_COMM_WORLD), MPI_SUCCESS);
        std::memcpy(g_out.data() + static_cast<uint64_t>(root) * n * 4, g_in.data(), n * 4);
        Request g = coll().igather(at_root ? MPI_IN_PLACE : g_in.data(), g_out.data(), n, t, root);
        // iscatter: the root keeps its block where it is.
        Bytes s_in = bytes(n * p, t), s_out = bytes(n, t, 0x5a), s_ref = bytes(n, t, 0x5a);
        gen(t, Op::sum, rank(), 32, s_in.data(), n * p);
        ASSERT_EQ(MPI_Scatter(s_in.data(), c, MPI_INT32_T, s_ref.data(), c, MPI_INT32_T, root, MPI_COMM_WORLD), MPI_SUCCESS);
        Request s = coll().iscatter(s_in.data(), at_root ? MPI_IN_PLACE : s_out.data(), n, t, root);
        // ireduce_scatter: the result lands at the start of the input.
        Bytes rs_in = bytes(n * p, t), rs_ref = bytes(n, t, 0x5a);
        gen(t, Op::sum, rank(), 33, rs_in.data(), n * p);
        ASSERT_EQ(MPI_Reduce_scatter_block(rs_in.data(), rs_ref.data(), c, MPI_INT32_T, MPI_SUM, MPI_COMM_WORLD), MPI_SUCCESS);
        Request rs = coll().ireduce_scatter(MPI_IN_PLACE, rs_in.data(), n, t, Op::sum);
        rs.wait();
        s.wait();
        g.wait();
        r.wait();
        if (at_root) {
            expect_equal(r_in.data(), r_ref.data(), n, 4, ctx("ireduce in place", t, Op::sum, n, root));
            expect_equal(g_out.data(), g_ref.data(), n * p, 4, ctx("igather in place", t, Op::sum, n, root));
        } else {
            expect_equal(s_out.data(), s_ref.data(), n, 4, ctx("iscatter", t, Op::sum, n, root));
        }
        expect_equal(rs_in.data(), rs_ref.data(), n, 4, ctx("ireduce_scatter in place", t, Op::sum, n));
    }
}

/// The code of the coyote::Error `fn` throws (none: a failure), checking that its message names `call`.
std::error_code refusal(const char* call, const std::function<void()>& fn) {
    try {
        fn();
    } catch (const coyote::Error& e) {
        EXPECT_NE(std::string(e.what()).find(call), std::string::npos) << e.what();
        return e.code();
    }
    ADD_FAILURE() << call << " accepted bad arguments";
    return {};
}

TEST(CollNonBlockingKinds, BadArgumentsThrowAtTheCallAndLeaveTheObjectUsable) {
    const auto p = static_cast<std::size_t>(nranks());
    std::vector<int32_t> a(p, 3), b(p, 0);
    std::vector<float> f(p, 1.0f);
    const std::error_code bad = make_error_code(Errc::invalid_argument);
    EXPECT_EQ(refusal("iscatter", [&] { (void)coll().iscatter(a.data(), b.data(), 1, Datatype::int32, nranks()); }), bad);
    EXPECT_EQ(refusal("ireduce", [&] { (void)coll().ireduce(f.data(), f.data(), 1, Datatype::float32, Op::band, 0); }),
              bad);
    EXPECT_EQ(refusal("ialltoall", [&] { (void)coll().ialltoall(nullptr, b.data(), 1, Datatype::int32); }), bad);
    EXPECT_EQ(refusal("igather", [&] { (void)coll().igather(a.data(), b.data(), 1, Datatype::int32, -1); }), bad);
    // Nothing was started by the refused calls: the ranks stay in step.
    Request r = coll().ireduce_scatter(a.data(), b.data(), 1, Datatype::int32, Op::bor);
    r.wait();
    EXPECT_EQ(b[0], 3);
    std::vector<int32_t> all(p, -1);
    const int32_t mine = rank();
    coll().iallgather(&mine, all.data(), 1, Datatype::int32).wait();
    for (std::size_t i = 0; i < p; ++i) EXPECT_EQ(all[i], static_cast<int32_t>(i)) << "iallgather block " << i;
}

}  // namespace
