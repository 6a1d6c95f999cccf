// coyote-mpi example: allreduce sweep over FPGA RDMA with verification and an nccl-tests-like table, next to
// MPI_Allreduce on the same buffers.
//
//   mpirun -np 4 [--oversubscribe --allow-run-as-root] ./coyote_mpi_allreduce [--min 8] [--max 64M]
//          [--type float32] [--op sum] [--iters 20] [--warmup 3]
//
// Columns (nccl-tests definitions): time = slowest rank's mean time per call; algbw = size / time;
// busbw = algbw * 2 (n - 1) / n; #wrong = elements differing from the expected result (checked after the
// timed calls on every rank, summed). Exits non-zero if any element is wrong.
#include <coyote/mpi/collectives.hpp>
#include <coyote/mpi/mpi.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace coyote;
using namespace coyote::mpi;

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
    uint64_t min_bytes = 8;
    uint64_t max_bytes = 64ull << 20;
    Datatype type = Datatype::float32;
    Op op = Op::sum;
    int iters = 20;
    int warmup = 3;
};

uint64_t parse_size(const char* s) {
    char* end = nullptr;
    uint64_t v = std::strtoull(s, &end, 10);
    if (*end == 'K' || *end == 'k') v <<= 10;
    if (*end == 'M' || *end == 'm') v <<= 20;
    if (*end == 'G' || *end == 'g') v <<= 30;
    return v;
}

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i];
        const char* v = argv[i + 1];
        if (k == "--min") a.min_bytes = parse_size(v);
        else if (k == "--max") a.max_bytes = parse_size(v);
        else if (k == "--iters") a.iters = std::atoi(v);
        else if (k == "--warmup") a.warmup = std::atoi(v);
        else if (k == "--type") {
            bool ok = false;
            for (uint32_t t = 0; t <= static_cast<uint32_t>(Datatype::float64); ++t)
                if (name(static_cast<Datatype>(t)) == std::string(v)) a.type = static_cast<Datatype>(t), ok = true;
            if (!ok) throw_error(Errc::invalid_argument, "allreduce example", std::string("unknown type ") + v);
        } else if (k == "--op") {
            bool ok = false;
            for (uint32_t o = 0; o <= static_cast<uint32_t>(Op::bxor); ++o)
                if (name(static_cast<Op>(o)) == std::string(v)) a.op = static_cast<Op>(o), ok = true;
            if (!ok) throw_error(Errc::invalid_argument, "allreduce example", std::string("unknown op ") + v);
        }
    }
    if (a.iters < 1) a.iters = 1;
    return a;
}

/// Input element i of rank r as a double: small integers, so every reduction order gives the exact result in
/// every type (sums stay below 2^8, products are powers of two).
double input_value(Op op, int r, uint64_t i) {
    if (op == Op::prod) return ((i + static_cast<uint64_t>(r)) % 5 == 0) ? 2.0 : (((i * 7 + static_cast<uint64_t>(r)) % 3 == 0) ? -1.0 : 1.0);
    return static_cast<double>((i * 13 + static_cast<uint64_t>(r) * 7) % 15);
}

template <typename T>
T from_double(double v) {
    if constexpr (std::is_same_v<T, float16>) return to_float16(static_cast<float>(v));
    else if constexpr (std::is_same_v<T, bfloat16>) return to_bfloat16(static_cast<float>(v));
    else return static_cast<T>(v);
}

template <typename T>
void fill(void* buf, uint64_t count, Op op, int r) {
    auto* p = static_cast<T*>(buf);
    for (uint64_t i = 0; i < count; ++i) p[i] = from_double<T>(input_value(op, r, i));
}

void fill_any(Datatype t, void* buf, uint64_t count, Op op, int r) {
    switch (t) {
    case Datatype::int8: fill<int8_t>(buf, count, op, r); break;
    case Datatype::uint8: fill<uint8_t>(buf, count, op, r); break;
    case Datatype::int32: fill<int32_t>(buf, count, op, r); break;
    case Datatype::uint32: fill<uint32_t>(buf, count, op, r); break;
    case Datatype::int64: fill<int64_t>(buf, count, op, r); break;
    case Datatype::uint64: fill<uint64_t>(buf, count, op, r); break;
    case Datatype::float16: fill<float16>(buf, count, op, r); break;
    case Datatype::bfloat16: fill<bfloat16>(buf, count, op, r); break;
    case Datatype::float32: fill<float>(buf, count, op, r); break;
    case Datatype::float64: fill<double>(buf, count, op, r); break;
    }
}

struct Row {
    uint64_t bytes, count;
    double us, mpi_us;
    uint64_t wrong;
    std::string algo;
};

}  // namespace

int main(int argc, char** argv) {
    Environment env(&argc, &argv);
    try {
        const Args args = parse(argc, argv);
        Communicator comm;
        const DeviceAssignment dev = select_device(comm);
        Collectives coll(comm, dev);
        const int n = comm.size();
        const int me = comm.rank();
        const std::size_t es = size_of(args.type);
        check_op(args.op, args.type, "allreduce example");

        std::vector<std::byte> send(args.max_bytes), recv(args.max_bytes), expect(args.max_bytes), tmp(args.max_bytes);
        std::vector<Row> rows;
        for (uint64_t bytes = std::max<uint64_t>(args.min_bytes, es); bytes <= args.max_bytes; bytes *= 2) {
            const uint64_t count = bytes / es;
            const int iters = bytes >= (16u << 20) ? std::max(2, args.iters / 4) : args.iters;
            fill_any(args.type, send.data(), count, args.op, me);
            // Expected result, reduced locally from every rank's input (exact by construction of the data).
            fill_any(args.type, expect.data(), count, args.op, 0);
            for (int r = 1; r < n; ++r) {
                fill_any(args.type, tmp.data(), count, args.op, r);
                reduce_local(expect.data(), tmp.data(), count, args.type, args.op);
            }
            auto timed = [&](auto&& fn) {
                for (int i = 0; i < args.warmup; ++i) fn();
                check_mpi(MPI_Barrier(comm.get()), "MPI_Barrier");
                const auto t0 = Clock::now();
                for (int i = 0; i < iters; ++i) fn();
                double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / iters;
                double mx = 0;
                check_mpi(MPI_Allreduce(&us, &mx, 1, MPI_DOUBLE, MPI_MAX, comm.get()), "MPI_Allreduce");
                return mx;
            };
            Row row{bytes, count, 0, 0, 0, {}};
            row.us = timed([&] { coll.allreduce(send.data(), recv.data(), count, args.type, args.op); });
            row.algo = coll.last_algorithm();
            uint64_t wrong = 0;
            for (uint64_t i = 0; i < count; ++i)
                wrong += std::memcmp(recv.data() + i * es, expect.data() + i * es, es) != 0;
            check_mpi(MPI_Allreduce(&wrong, &row.wrong, 1, MPI_UINT64_T, MPI_SUM, comm.get()), "MPI_Allreduce");
            const MPI_Op mop = mpi_op(args.op, args.type);
            row.mpi_us = timed([&] {
                check_mpi(MPI_Allreduce(send.data(), tmp.data(), static_cast<int>(count), mpi_datatype(args.type), mop,
                                        comm.get()),
                          "MPI_Allreduce");
            });
            rows.push_back(row);
        }
        uint64_t total_wrong = 0;
        for (const auto& r : rows) total_wrong += r.wrong;
        if (me == 0) {
            std::printf("# coyote-mpi allreduce over FPGA RDMA: %d ranks, backend %s, type %s, op %s, chunk %u B x %u slots\n",
                        n, dev.backend.c_str(), name(args.type), name(args.op), coll.chunk_payload(), coll.slots());
            std::printf("#\n# %12s %12s %9s %6s %-18s %11s %9s %9s %7s %11s %8s\n", "size(B)", "count", "type", "redop",
                        "algorithm", "time(us)", "algbw", "busbw", "#wrong", "MPI(us)", "MPI/ours");
            std::printf("# %12s %12s %9s %6s %-18s %11s %9s %9s %7s %11s %8s\n", "", "", "", "", "", "", "(GB/s)",
                        "(GB/s)", "", "", "");
            for (const auto& r : rows) {
                const double algbw = static_cast<double>(r.bytes) / (r.us * 1e3);
                const double busbw = algbw * 2.0 * (n - 1) / n;
                std::printf("  %12llu %12llu %9s %6s %-18s %11.2f %9.3f %9.3f %7llu %11.2f %8.2f\n",
                            static_cast<unsigned long long>(r.bytes), static_cast<unsigned long long>(r.count),
                            name(args.type), name(args.op), r.algo.c_str(), r.us, algbw, busbw,
                            static_cast<unsigned long long>(r.wrong), r.mpi_us, r.mpi_us / r.us);
            }
            std::printf("# Out of bounds values : %llu %s\n", static_cast<unsigned long long>(total_wrong),
                        total_wrong == 0 ? "OK" : "FAILED");
            std::printf("Result: %s\n", total_wrong == 0 ? "all allreduce results verified" : "VERIFICATION FAILED");
            std::fflush(stdout);
        }
        return total_wrong == 0 ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "coyote-mpi allreduce: %s\n", e.what());
        std::fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return 2;
}
