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

#include "example_support.hpp"

using namespace coyote;
using namespace coyote::mpi;
using namespace coyote::mpi::examples;

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

Args parse(int argc, char** argv) {
    const Options opts(argc, argv, "allreduce", {"--min", "--max", "--type", "--op", "--iters", "--warmup"});
    Args a;
    a.min_bytes = opts.size("--min", a.min_bytes);
    a.max_bytes = opts.size("--max", a.max_bytes);
    a.iters = opts.count("--iters", a.iters);
    a.warmup = opts.count("--warmup", a.warmup, 0);
    const std::string type = opts.text("--type", name(a.type));
    bool ok = false;
    for (uint32_t t = 0; t <= static_cast<uint32_t>(Datatype::float64); ++t)
        if (name(static_cast<Datatype>(t)) == type) a.type = static_cast<Datatype>(t), ok = true;
    if (!ok) throw_error(Errc::invalid_argument, "allreduce example", "unknown type " + type);
    const std::string op = opts.text("--op", name(a.op));
    ok = false;
    for (uint32_t o = 0; o <= static_cast<uint32_t>(Op::bxor); ++o)
        if (name(static_cast<Op>(o)) == op) a.op = static_cast<Op>(o), ok = true;
    if (!ok) throw_error(Errc::invalid_argument, "allreduce example", "unknown op " + op);
    // A sweep without a single size would print an empty table and "verified".
    if (std::max<uint64_t>(a.min_bytes, size_of(a.type)) > a.max_bytes)
        throw_error(Errc::invalid_argument, "allreduce example",
                    "--max " + std::to_string(a.max_bytes) + " is below --min " + std::to_string(a.min_bytes) +
                        " or one " + type + " element (" + std::to_string(size_of(a.type)) + " bytes)");
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

/// Rank 0's table: nccl-tests columns, MPI's time next to ours, the verdict.
void print_table(const std::vector<Row>& rows, const Args& args, const DeviceAssignment& dev, const Collectives& coll,
                 int n, uint64_t total_wrong) {
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

int run(int argc, char** argv) {
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
        auto timed = [&](auto&& fn) { return time_max_us(comm, args.warmup, iters, fn); };
        Row row{bytes, count, 0, 0, 0, {}};
        row.us = timed([&] { coll.allreduce(send.data(), recv.data(), count, args.type, args.op); });
        row.algo = coll.last_algorithm();
        uint64_t wrong = 0;
        for (uint64_t i = 0; i < count; ++i)
            wrong += std::memcmp(recv.data() + i * es, expect.data() + i * es, es) != 0;
        row.wrong = sum_over_ranks(comm, wrong, "allreduce check");
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
    if (me == 0) print_table(rows, args, dev, coll, n, total_wrong);
    return total_wrong == 0 ? 0 : 1;
}

}  // namespace

constexpr const char* k_usage =
    "usage: mpirun -np <ranks> coyote_mpi_allreduce [--min 8] [--max 64M] [--type float32] [--op sum] [--iters 20]\n"
    "                                               [--warmup 3]\n"
    "  --min / --max: bytes, 1 .. 1G, K/M/G suffixes (powers of 1024); sizes double from --min to --max\n"
    "  --type: int8 uint8 int32 uint32 int64 uint64 float16 bfloat16 float32 float64\n"
    "  --op: sum prod min max band bor bxor (bitwise ops on integer types only)\n"
    "  --iters: timed calls per size (a quarter from 16 MiB on), >= 1; --warmup: untimed calls first, >= 0\n";

int main(int argc, char** argv) { return run_example(argc, argv, "allreduce", k_usage, run); }
