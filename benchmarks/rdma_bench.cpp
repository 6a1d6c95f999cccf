// rdma_bench: sim RDMA between two MPI ranks against baselines measured in the same run.
//   mpirun -np 2 rdma_bench            (Open MPI as root: --allow-run-as-root --oversubscribe)
// Queue pairs are wired with MPI_Sendrecv of exportQp() blobs: sim device 0 on the shm wire, sim device 1 on
// the forced TCP wire. Every iteration is timed on both ranks and reduced with MPI MAX (manual time); only
// rank 0 reports. Each coyote benchmark runs its named baseline right after itself with the same
// parameters and reports `ratio_vs_<baseline>` = baseline time / coyote time (above 1: coyote is faster).
#define OMPI_SKIP_MPICXX 1 // C bindings only
#define MPICH_SKIP_MPICXX 1
#include <benchmark/benchmark.h>
#include <mpi.h>

#include <coyote/cThread.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

using namespace coyote;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint32_t k_buf = 32u << 20;
constexpr int k_window = 32;

int g_rank = 0;
int g_peer = 1;

struct Qp {
    std::unique_ptr<cThread> t;
    uint8_t* buf = nullptr;
};
Qp g_shm, g_tcp;
std::vector<uint8_t> g_src, g_dst; // memcpy baseline
uint8_t* g_win_mem = nullptr;
MPI_Win g_win = MPI_WIN_NULL;
int g_sock = -1; // plain TCP baseline

Qp wire_qp(uint32_t device, const char* wire) {
    ::setenv("COYOTE_SIM_WIRE", wire, 1);
    Qp q;
    q.t = std::make_unique<cThread>(0, ::getpid(), device);
    q.buf = static_cast<uint8_t*>(q.t->getMem({CoyoteAllocType::HPF, k_buf, true}));
    std::memset(q.buf, g_rank + 1, k_buf);
    const auto mine = q.t->exportQp();
    std::vector<std::byte> theirs(mine.size());
    MPI_Sendrecv(mine.data(), static_cast<int>(mine.size()), MPI_BYTE, g_peer, 1, theirs.data(),
                 static_cast<int>(theirs.size()), MPI_BYTE, g_peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    q.t->connectQp(theirs);
    MPI_Barrier(MPI_COMM_WORLD);
    return q;
}

void tcp_baseline_setup() {
    int port = 0;
    if (g_rank == 0) {
        const int ls = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(a);
        ::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof(a));
        ::listen(ls, 1);
        ::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len);
        port = ntohs(a.sin_port);
        MPI_Send(&port, 1, MPI_INT, g_peer, 2, MPI_COMM_WORLD);
        g_sock = ::accept(ls, nullptr, nullptr);
        ::close(ls);
    } else {
        MPI_Recv(&port, 1, MPI_INT, g_peer, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        g_sock = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(static_cast<uint16_t>(port));
        if (::connect(g_sock, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) MPI_Abort(MPI_COMM_WORLD, 3);
    }
    const int one = 1;
    ::setsockopt(g_sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void wait_count(cThread& t, CoyoteOper op, uint32_t n) {
    while (t.checkCompleted(op) < n) std::this_thread::yield();
}

/// Runs `body` once on both ranks; returns the slower rank's seconds.
template <typename Fn>
double timed(Fn&& body) {
    MPI_Barrier(MPI_COMM_WORLD);
    const auto t0 = Clock::now();
    body();
    double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    double mx = 0;
    MPI_Allreduce(&dt, &mx, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return mx;
}

// ---- the operations ---------------------------------------------------------------------------

/// One RDMA WRITE ping-pong of `size` bytes: rank 0 writes, rank 1 writes back once it has landed.
void rdma_pingpong(Qp& q, uint32_t size, uint32_t round) {
    cThread& t = *q.t;
    if (g_rank == 0) {
        t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = 0, .remote_offs = k_buf / 2, .len = size});
        wait_count(t, CoyoteOper::LOCAL_WRITE, round + 1);
    } else {
        wait_count(t, CoyoteOper::LOCAL_WRITE, round + 1);
        t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = k_buf / 2, .remote_offs = k_buf / 2, .len = size});
    }
}

void mpi_pingpong(uint32_t size) {
    if (g_rank == 0) {
        MPI_Send(g_src.data(), static_cast<int>(size), MPI_BYTE, g_peer, 5, MPI_COMM_WORLD);
        MPI_Recv(g_dst.data(), static_cast<int>(size), MPI_BYTE, g_peer, 5, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else {
        MPI_Recv(g_dst.data(), static_cast<int>(size), MPI_BYTE, g_peer, 5, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Send(g_dst.data(), static_cast<int>(size), MPI_BYTE, g_peer, 5, MPI_COMM_WORLD);
    }
}

/// A window of `k_window` RDMA operations from rank 0; completes when all have completed.
void rdma_stream(Qp& q, CoyoteOper op, uint32_t size) {
    if (g_rank != 0) return; // the target is passive
    cThread& t = *q.t;
    t.clearCompleted();
    for (int i = 0; i < k_window; ++i) {
        const uint64_t off = (uint64_t(i) * size) % (k_buf / 2 - size + 1);
        t.invoke(op, op == CoyoteOper::REMOTE_RDMA_READ ? rdmaSg{.local_offs = k_buf / 2 + off, .remote_offs = off, .len = size}
                                                        : rdmaSg{.local_offs = off, .remote_offs = k_buf / 2 + off, .len = size});
    }
    wait_count(t, op, k_window);
}

void mpi_put_stream(uint32_t size) {
    if (g_rank == 0) {
        MPI_Win_lock(MPI_LOCK_SHARED, g_peer, 0, g_win);
        for (int i = 0; i < k_window; ++i) {
            const uint64_t off = (uint64_t(i) * size) % (k_buf / 2 - size + 1);
            MPI_Put(g_src.data() + off, static_cast<int>(size), MPI_BYTE, g_peer, static_cast<MPI_Aint>(off),
                    static_cast<int>(size), MPI_BYTE, g_win);
        }
        MPI_Win_unlock(g_peer, g_win);
    }
}

void memcpy_stream(uint32_t size) {
    if (g_rank != 0) return;
    for (int i = 0; i < k_window; ++i) {
        const uint64_t off = (uint64_t(i) * size) % (k_buf / 2 - size + 1);
        std::memcpy(g_dst.data() + off, g_src.data() + off, size);
    }
    benchmark::ClobberMemory();
}

void tcp_stream(uint32_t size) {
    char ack = 0;
    if (g_rank == 0) {
        for (int i = 0; i < k_window; ++i) {
            const uint64_t off = (uint64_t(i) * size) % (k_buf / 2 - size + 1);
            size_t done = 0;
            while (done < size) {
                const ssize_t n = ::send(g_sock, g_src.data() + off + done, size - done, MSG_NOSIGNAL);
                if (n <= 0) MPI_Abort(MPI_COMM_WORLD, 4);
                done += static_cast<size_t>(n);
            }
        }
        if (::recv(g_sock, &ack, 1, MSG_WAITALL) != 1) MPI_Abort(MPI_COMM_WORLD, 4);
    } else {
        uint64_t left = uint64_t(size) * k_window;
        while (left > 0) {
            const ssize_t n = ::recv(g_sock, g_dst.data(), std::min<uint64_t>(left, k_buf / 2), 0);
            if (n <= 0) MPI_Abort(MPI_COMM_WORLD, 4);
            left -= static_cast<uint64_t>(n);
        }
        if (::send(g_sock, &ack, 1, MSG_NOSIGNAL) != 1) MPI_Abort(MPI_COMM_WORLD, 4);
    }
}

/// Reports nothing (ranks other than 0).
class NullReporter final : public benchmark::BenchmarkReporter {
public:
    bool ReportContext(const Context&) override { return true; }
    void ReportRuns(const std::vector<Run>&) override {}
};

// ---- reporting helpers ------------------------------------------------------------------------

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const auto idx = static_cast<size_t>(std::max(0.0, std::ceil(p / 100.0 * double(v.size())) - 1));
    return v[std::min(idx, v.size() - 1)];
}

void latency_counters(benchmark::State& state, const std::vector<double>& s_half) {
    state.counters["p50_us"] = percentile(s_half, 50) * 1e6;
    state.counters["p95_us"] = percentile(s_half, 95) * 1e6;
    state.counters["p99_us"] = percentile(s_half, 99) * 1e6;
}

double mean(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0 : s / double(v.size());
}

template <typename Fn>
std::vector<double> repeat(int64_t n, Fn&& fn) {
    std::vector<double> out;
    for (int64_t i = 0; i < n; ++i) out.push_back(timed([&] { fn(static_cast<uint32_t>(i)); }));
    return out;
}

// ---- benchmarks -------------------------------------------------------------------------------

void BM_rdma_write_pingpong_shm(benchmark::State& state) {
    const auto size = static_cast<uint32_t>(state.range(0));
    g_shm.t->clearCompleted();
    MPI_Barrier(MPI_COMM_WORLD);
    std::vector<double> half;
    uint32_t round = 0;
    for (auto _ : state) {
        const double s = timed([&] { rdma_pingpong(g_shm, size, round++); }) / 2;
        state.SetIterationTime(s);
        half.push_back(s);
    }
    const auto base = repeat(state.iterations(), [&](uint32_t) { mpi_pingpong(size); });
    latency_counters(state, half);
    state.counters["ratio_vs_mpi"] = mean(base) / 2 / mean(half);
    state.SetBytesProcessed(state.iterations() * int64_t(size));
    state.SetItemsProcessed(state.iterations());
}

void BM_mpi_sendrecv_pingpong(benchmark::State& state) {
    const auto size = static_cast<uint32_t>(state.range(0));
    std::vector<double> half;
    for (auto _ : state) {
        const double s = timed([&] { mpi_pingpong(size); }) / 2;
        state.SetIterationTime(s);
        half.push_back(s);
    }
    latency_counters(state, half);
    state.SetBytesProcessed(state.iterations() * int64_t(size));
    state.SetItemsProcessed(state.iterations());
}

template <typename Fn>
void stream_bench(benchmark::State& state, Fn&& coyote, void (*baseline)(uint32_t), const char* ratio_name) {
    const auto size = static_cast<uint32_t>(state.range(0));
    std::vector<double> per_msg;
    for (auto _ : state) {
        const double s = timed([&] { coyote(size); });
        state.SetIterationTime(s);
        per_msg.push_back(s / k_window);
    }
    const auto base = repeat(state.iterations(), [&](uint32_t) { baseline(size); });
    latency_counters(state, per_msg);
    state.counters[ratio_name] = mean(base) / k_window / mean(per_msg);
    state.SetBytesProcessed(state.iterations() * int64_t(size) * k_window);
    state.SetItemsProcessed(state.iterations() * k_window);
}

void BM_rdma_write_stream_shm(benchmark::State& state) {
    stream_bench(state, [](uint32_t s) { rdma_stream(g_shm, CoyoteOper::REMOTE_RDMA_WRITE, s); }, mpi_put_stream,
                 "ratio_vs_mpi_put");
}
void BM_rdma_read_stream_shm(benchmark::State& state) {
    stream_bench(state, [](uint32_t s) { rdma_stream(g_shm, CoyoteOper::REMOTE_RDMA_READ, s); }, memcpy_stream,
                 "ratio_vs_memcpy");
}
void BM_rdma_write_stream_shm_vs_memcpy(benchmark::State& state) {
    stream_bench(state, [](uint32_t s) { rdma_stream(g_shm, CoyoteOper::REMOTE_RDMA_WRITE, s); }, memcpy_stream,
                 "ratio_vs_memcpy");
}
void BM_rdma_write_stream_tcp(benchmark::State& state) {
    stream_bench(state, [](uint32_t s) { rdma_stream(g_tcp, CoyoteOper::REMOTE_RDMA_WRITE, s); }, tcp_stream,
                 "ratio_vs_tcp_socket");
}
void BM_rdma_read_stream_tcp(benchmark::State& state) {
    stream_bench(state, [](uint32_t s) { rdma_stream(g_tcp, CoyoteOper::REMOTE_RDMA_READ, s); }, tcp_stream,
                 "ratio_vs_tcp_socket");
}
void baseline_bench(benchmark::State& state, void (*fn)(uint32_t)) {
    const auto size = static_cast<uint32_t>(state.range(0));
    for (auto _ : state) state.SetIterationTime(timed([&] { fn(size); }));
    state.SetBytesProcessed(state.iterations() * int64_t(size) * k_window);
    state.SetItemsProcessed(state.iterations() * k_window);
}
void BM_mpi_put_stream(benchmark::State& state) { baseline_bench(state, mpi_put_stream); }
void BM_memcpy_stream(benchmark::State& state) { baseline_bench(state, memcpy_stream); }
void BM_tcp_socket_stream(benchmark::State& state) { baseline_bench(state, tcp_stream); }

// Fixed iteration counts: both ranks must run the same loops.
#define PINGPONG(fn) BENCHMARK(fn)->RangeMultiplier(8)->Range(8, 1 << 20)->Iterations(200)->UseManualTime()
#define STREAM(fn) BENCHMARK(fn)->RangeMultiplier(4)->Range(64 << 10, 8 << 20)->Iterations(10)->UseManualTime()
PINGPONG(BM_rdma_write_pingpong_shm);
PINGPONG(BM_mpi_sendrecv_pingpong);
STREAM(BM_rdma_write_stream_shm);
STREAM(BM_rdma_write_stream_shm_vs_memcpy);
STREAM(BM_rdma_read_stream_shm);
STREAM(BM_mpi_put_stream);
STREAM(BM_memcpy_stream);
STREAM(BM_rdma_write_stream_tcp);
STREAM(BM_rdma_read_stream_tcp);
STREAM(BM_tcp_socket_stream);

}  // namespace

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    int size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != 2) {
        if (g_rank == 0) std::fprintf(stderr, "rdma_bench needs exactly 2 MPI ranks (got %d)\n", size);
        MPI_Finalize();
        return 2;
    }
    g_peer = 1 - g_rank;
    ::setenv("COYOTE_BACKEND", "sim", 0);
    int rc = 0;
    try {
        g_shm = wire_qp(0, "shm");
        g_tcp = wire_qp(1, "tcp");
        g_src.assign(k_buf, static_cast<uint8_t>(g_rank + 7));
        g_dst.assign(k_buf, 0);
        MPI_Win_allocate(k_buf / 2, 1, MPI_INFO_NULL, MPI_COMM_WORLD, &g_win_mem, &g_win);
        tcp_baseline_setup();
        benchmark::Initialize(&argc, argv);
        if (g_rank == 0) {
            benchmark::RunSpecifiedBenchmarks();
        } else {
            NullReporter null;
            benchmark::RunSpecifiedBenchmarks(&null);
        }
        benchmark::Shutdown();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: %s\n", g_rank, e.what());
        rc = 1;
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (g_sock >= 0) ::close(g_sock);
    MPI_Win_free(&g_win);
    g_shm = {};
    g_tcp = {};
    MPI_Finalize();
    return rc;
}
