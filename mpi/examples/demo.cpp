// coyote-mpi main demo: two ranks, MPI bootstrap on the sim backend, RDMA WRITE and READ between the ranks with
// data verification, an allreduce hook, and a short benchmark table (RDMA vs MPI_Send/Recv, same run).
//
//   mpirun -np 2 [--oversubscribe --allow-run-as-root] ./coyote_mpi_demo
//
// Prints the report on rank 0; exits non-zero on any verification failure.
#include <coyote/mpi/collectives.hpp>
#include <coyote/mpi/mpi.hpp>

#include <unistd.h>

#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "example_support.hpp"
#include "rdma_bench_common.hpp"

using namespace coyote;
using namespace coyote::mpi;
using namespace coyote::mpi::examples;

namespace {

constexpr uint64_t k_buffer = 4ull << 20;   // registered buffer per rank
constexpr uint64_t k_src = 0;               // source region
constexpr uint64_t k_dst = 2ull << 20;      // destination region
constexpr uint32_t k_verify_len = 1u << 20; // bytes moved by the verification transfers

struct Check {
    std::string name;
    bool ok = false;
    std::string detail;
};

/// One verified 1 MiB transfer driven by rank 0 (the client): a WRITE to rank 1, checked there, or a READ of rank
/// 1's buffer, checked on rank 0.
Check transfer_check(cThread& t, void* buf, const Communicator& comm, int peer, bool client, bool write) {
    auto* b = static_cast<uint8_t*>(buf);
    const uint32_t seed = write ? 11 : 23;
    const bool source = write == client; // this rank holds the data, the other one receives it
    if (source) fill(b + k_src, k_verify_len, seed);
    std::memset(b + k_dst, 0, k_verify_len);
    reset_pair(t, comm, peer);
    if (client && write) {
        t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = k_src, .remote_offs = k_dst, .len = k_verify_len});
        wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, 1, "RDMA WRITE");
    } else if (client) {
        t.invoke(CoyoteOper::REMOTE_RDMA_READ, rdmaSg{.local_offs = k_dst, .remote_offs = k_src, .len = k_verify_len});
        wait_count(t, CoyoteOper::LOCAL_WRITE, 1, "RDMA READ response");
    } else if (write) {
        wait_count(t, CoyoteOper::LOCAL_WRITE, 1, "RDMA WRITE arrival");
    }
    const uint64_t total = sum_over_ranks(comm, source ? 0 : mismatches(b + k_dst, k_verify_len, seed),
                                          write ? "write check" : "read check");
    return {write ? "RDMA WRITE 1 MiB, rank 0 -> rank 1" : "RDMA READ 1 MiB, rank 0 <- rank 1", total == 0,
            std::to_string(total) + " bytes differ"};
}

/// HOOK: an allreduce over RDMA queue pairs (coyote::mpi::Collectives, its own QpSet), verified on both ranks.
std::optional<Check> allreduce_hook(QpSet& /*qps*/, const Communicator& comm) {
    Collectives coll(comm, select_device(comm));
    std::vector<float> v(1u << 20);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i + static_cast<std::size_t>(comm.rank())) % 5);
    coll.allreduce(MPI_IN_PLACE, v.data(), v.size(), Datatype::float32, Op::sum);
    uint64_t bad = 0;
    for (std::size_t i = 0; i < v.size(); ++i) bad += v[i] != static_cast<float>(i % 5 + (i + 1) % 5);
    const uint64_t total = sum_over_ranks(comm, bad, "allreduce check");
    return Check{"allreduce 4 MiB float32 (" + coll.last_algorithm() + ")", total == 0, std::to_string(total) + " elements differ"};
}

struct Row {
    uint32_t size;
    double rdma_lat, mpi_lat, rdma_bw, rdma_rd_bw, mpi_bw;
};

std::string human(uint64_t n) {
    if (n >= (1u << 20)) return std::to_string(n >> 20) + " MiB";
    if (n >= 1024) return std::to_string(n >> 10) + " KiB";
    return std::to_string(n) + " B";
}

/// The latency / bandwidth table, RDMA and MPI alternated per size on the same peers.
std::vector<Row> benchmark(cThread& t, void* buf, const Communicator& comm, int peer, bool client) {
    std::vector<Row> rows;
    std::vector<uint8_t> mpi_buf(1u << 20);
    fill(static_cast<uint8_t*>(buf) + k_src, 1u << 20, 5);
    // Warm-up (untimed): first-touch of the regions and of the MPI paths.
    (void)rdma_latency_us(t, comm, peer, client, 64, k_dst, 20);
    (void)rdma_write_mibps(t, comm, peer, client, 64, k_dst, 50);
    (void)mpi_latency_us(comm, peer, client, mpi_buf.data(), 64, 20);
    for (uint32_t size : {64u, 4096u, 65536u, 1u << 20}) {
        Row r{size, 0, 0, 0, 0, 0};
        const uint32_t lat_iters = iterations_for(size, 200);
        const uint32_t bw_iters = iterations_for(size, 500);
        r.rdma_lat = rdma_latency_us(t, comm, peer, client, size, k_dst, lat_iters);
        r.mpi_lat = mpi_latency_us(comm, peer, client, mpi_buf.data(), static_cast<int>(size), lat_iters);
        r.rdma_bw = rdma_write_mibps(t, comm, peer, client, size, k_dst, bw_iters);
        r.rdma_rd_bw = rdma_read_mibps(t, comm, peer, client, size, k_dst, bw_iters);
        r.mpi_bw = mpi_send_mibps(comm, peer, client, mpi_buf.data(), static_cast<int>(size), bw_iters);
        rows.push_back(r);
    }
    return rows;
}

/// What rank 0 prints: placement of both ranks, verification and the table.
struct Report {
    DeviceAssignment dev;
    int devs[4] = {0, 0, 0, 0};  ///< device, vFPGA of rank 0 and rank 1
    std::vector<char> lines;     ///< binding line of each rank, k_line bytes each
    double wire_ms = 0;
    std::vector<Check> checks;
    std::optional<Check> allreduce;
    std::vector<Row> rows;
    static constexpr std::size_t k_line = 512;
};

/// Gathers both ranks' device and binding lines to rank 0.
void gather_placement(Report& rep, const BindingDecision& bind, const Communicator& comm) {
    char line[Report::k_line];
    std::snprintf(line, sizeof(line), "%s", describe(bind).c_str());
    rep.lines.resize(sizeof(line) * 2);
    check_mpi(MPI_Gather(line, sizeof(line), MPI_CHAR, rep.lines.data(), sizeof(line), MPI_CHAR, 0, comm.get()),
              "MPI_Gather", "binding report");
    int dev_info[2] = {static_cast<int>(rep.dev.device), rep.dev.vfid};
    check_mpi(MPI_Gather(dev_info, 2, MPI_INT, rep.devs, 2, MPI_INT, 0, comm.get()), "MPI_Gather", "device report");
}

void print_report(const Report& rep, cThread& t, bool all_ok) {
    std::printf("\n== coyote-mpi demo: 2 ranks, backend %s ==\n", rep.dev.backend.c_str());
    for (int r = 0; r < 2; ++r)
        std::printf("  rank %d: device %d, vFPGA %d (%s); binding %s\n", r, rep.devs[2 * r], rep.devs[2 * r + 1],
                    rep.dev.source.c_str(), rep.lines.data() + static_cast<std::size_t>(r) * Report::k_line);
    std::printf("  MPI bootstrap (device selection, binding, QP wiring): %.2f ms\n", rep.wire_ms);
    const auto& qp = *t.getQpair();
    std::printf("  queue pair: local QPN 0x%06x IP 0x%08x  <->  remote QPN 0x%06x IP 0x%08x\n\n", qp.local.qpn,
                qp.local.ip_addr, qp.remote.qpn, qp.remote.ip_addr);
    std::printf("Verification\n");
    for (const auto& c : rep.checks)
        std::printf("  [%s] %-42s %s\n", c.ok ? "PASS" : "FAIL", c.name.c_str(), c.ok ? "" : c.detail.c_str());
    if (rep.allreduce)
        std::printf("  [%s] %-42s %s\n", rep.allreduce->ok ? "PASS" : "FAIL", rep.allreduce->name.c_str(),
                    rep.allreduce->detail.c_str());
    else
        std::printf("  [----] %-42s not implemented yet (allreduce_hook in demo.cpp)\n", "allreduce over RDMA");
    std::printf("\nBenchmark (rank 0 <-> rank 1, measured in this run)\n");
    std::printf("  %8s | %12s %12s | %14s %14s %14s\n", "size", "RDMA lat us", "MPI lat us", "RDMA WR MiB/s",
                "RDMA RD MiB/s", "MPI MiB/s");
    std::printf("  ---------+---------------------------+----------------------------------------------\n");
    for (const auto& r : rep.rows)
        std::printf("  %8s | %12.2f %12.2f | %14.1f %14.1f %14.1f\n", human(r.size).c_str(), r.rdma_lat, r.mpi_lat,
                    r.rdma_bw, r.rdma_rd_bw, r.mpi_bw);
    std::printf("  (latency: half the round trip of a WRITE ping-pong / MPI_Send+MPI_Recv ping-pong)\n");
    std::printf("\nResult: %s\n", all_ok ? "all checks passed" : "VERIFICATION FAILED");
    std::fflush(stdout);
}

int run() {
    Communicator comm;
    if (comm.size() != 2)
        throw_error(Errc::invalid_argument, "demo", "run with exactly 2 ranks (mpirun -np 2), got " + std::to_string(comm.size()));
    const int me = comm.rank();
    const int peer = 1 - me;
    const bool client = me == 0;

    Report rep;
    const auto t_start = Clock::now();
    rep.dev = select_device(comm);
    const BindingDecision bind = bind_to_fpga(rep.dev.device, me);
    WiringOptions wo;
    wo.buffer_size = k_buffer;
    wo.pattern = PeerPattern::all;
    QpSet qps(comm, rep.dev, wo);
    rep.wire_ms = std::chrono::duration<double, std::milli>(Clock::now() - t_start).count();
    cThread& t = qps.thread(peer);
    void* buf = qps.buffer(peer);

    rep.checks.push_back(transfer_check(t, buf, comm, peer, client, true));
    rep.checks.push_back(transfer_check(t, buf, comm, peer, client, false));
    rep.allreduce = allreduce_hook(qps, comm);
    rep.rows = benchmark(t, buf, comm, peer, client);
    // The last bandwidth run wrote the pattern into the server's destination region: verify it too.
    const uint64_t bad_total =
        sum_over_ranks(comm, client ? 0 : mismatches(static_cast<uint8_t*>(buf) + k_dst, 1u << 20, 5), "bench check");
    rep.checks.push_back({"benchmark payload (1 MiB WRITEs) on rank 1", bad_total == 0, std::to_string(bad_total) + " bytes differ"});
    gather_placement(rep, bind, comm);

    bool all_ok = true;
    for (const auto& c : rep.checks) all_ok = all_ok && c.ok;
    if (me == 0) print_report(rep, t, all_ok);
    barrier(comm);
    return all_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    constexpr const char* usage = "usage: mpirun -np 2 coyote_mpi_demo\n  (no options)\n";
    return run_example(argc, argv, "demo", usage, [](int argc_, char** argv_) {
        if (argc_ > 1) throw_error(Errc::invalid_argument, "demo", std::string("takes no options, got '") + argv_[1] + "'");
        return run();
    });
}
