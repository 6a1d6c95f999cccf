// rdma suite: sim RDMA between two MPI ranks against baselines measured in the same run, 8 B .. 8 MiB.
//   mpiexec -n 2 rdma_bench          (Open MPI as root: --allow-run-as-root --oversubscribe)
//
// Queue pairs are wired with MPI_Sendrecv of exportQp() blobs: sim device 0 on the shm wire, device 1 on the
// forced TCP wire. Each registered buffer (32 MiB) is split into a source half (filled with the owner's
// pattern) and a destination half. Per size, the baselines run right before the coyote benchmarks:
//
//   latency (one operation per iteration; p50/p95/p99 per operation, and loop_us: the same operation run
//   state.iterations() times back to back and timed once, the figure perftest and OSU report)
//     mpi_pingpong_lat    MPI_Send/MPI_Recv ping-pong, half round trip
//     rdma_write_lat      RDMA WRITE ping-pong (rank 1 writes back once rank 0's write landed), half round trip
//     mpi_get_lat         MPI_Get + MPI_Win_flush of a passive window
//     rdma_read_lat       one RDMA READ, posted and polled to completion
//   throughput (a window of 32 messages, at most 16 MiB and at least 2 messages, per iteration, then completion)
//     memcpy_bw           rank 0 copies the window's messages locally
//     mpi_bw              MPI_Isend / MPI_Irecv window, then an ack from the receiver
//     mpi_put_bw          MPI_Put window + MPI_Win_flush
//     mpi_get_bw          MPI_Get window + MPI_Win_flush
//     rdma_write_bw       RDMA WRITE window to rank 1 (shm wire), polled to completion
//     rdma_read_bw        RDMA READ window from rank 1 (shm wire)
//     tcp_socket_bw       the window over a loopback TCP socket (the TCP wire's congestion control), then an ack
//     rdma_write_tcpwire_bw  RDMA WRITE window on the TCP wire
// Every benchmark verifies the data that arrived (and the target's completion count for RDMA WRITE).
#include "support/bench_support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <coyote/cThread.hpp>

#include "backend/sim/net/tcp/congestion.hpp"
#include "backend/sim/net/wire_config.hpp"
#include "detail/settings.hpp"

namespace {

using coyote::CoyoteOper;
namespace cb = coyote::bench;
namespace settings = ::coyote::detail::settings;

const settings::Flag k_mpi_only{"COYOTE_BENCH_MPI_ONLY", "bench", false,
                                "rdma_bench: only the MPI ping-pong, in a process that never initialises the coyote "
                                "runtime (no cThread, no sim device)"};

constexpr uint32_t k_buf = 32u << 20;
constexpr uint32_t k_half = k_buf / 2;
constexpr int64_t k_min_size = 8;
constexpr int64_t k_max_size = 8 << 20;
constexpr int k_window = 32;              ///< messages per stream iteration ...
constexpr uint64_t k_window_bytes = 16u << 20; ///< ... at most this many bytes (at least 2 messages)

struct Qp {
    std::unique_ptr<coyote::cThread> thread;
    uint8_t* buf = nullptr; ///< [0, k_half): source area, [k_half, k_buf): destination area
};

int g_peer = 1;
Qp g_shm;
Qp g_tcp;
std::vector<uint8_t> g_src; ///< MPI / memcpy / socket source (this rank's pattern)
std::vector<uint8_t> g_dst;
uint8_t* g_put_mem = nullptr; ///< MPI_Put target window
uint8_t* g_get_mem = nullptr; ///< MPI_Get source window (this rank's pattern, never written)
MPI_Win g_put_win = MPI_WIN_NULL;
MPI_Win g_get_win = MPI_WIN_NULL;
int g_sock = -1;

uint8_t pattern(int owner, uint64_t i) { return static_cast<uint8_t>((i * 13u + static_cast<uint64_t>(owner) * 101u + 1u) & 0xFFu); }

void fill_pattern(uint8_t* p, std::size_t n, int owner) {
    for (std::size_t i = 0; i < n; ++i) p[i] = pattern(owner, i);
}

/// True when p[0, n) holds `owner`'s pattern starting at pattern offset `from`.
bool has_pattern(const uint8_t* p, std::size_t n, int owner, uint64_t from) {
    for (std::size_t i = 0; i < n; ++i)
        if (p[i] != pattern(owner, from + i)) return false;
    return true;
}

/// Messages per stream iteration for `size`-byte messages: k_window, fewer for large messages so that an
/// iteration stays short and the median has enough samples.
int window(uint32_t size) {
    return static_cast<int>(std::clamp<uint64_t>(k_window_bytes / size, 2, k_window));
}

/// Offset of message i of a window of `size`-byte messages inside a half buffer (aligned slots, reused).
uint64_t slot(int i, uint32_t size) {
    const uint64_t slots = std::max<uint64_t>(1, k_half / size);
    return (static_cast<uint64_t>(i) % slots) * size;
}

Qp wire_qp(uint32_t device, const char* wire) {
    ::setenv("COYOTE_SIM_WIRE", wire, 1);
    Qp q;
    q.thread = std::make_unique<coyote::cThread>(0, ::getpid(), device);
    q.buf = static_cast<uint8_t*>(q.thread->getMem({coyote::CoyoteAllocType::HPF, k_buf, true}));
    fill_pattern(q.buf, k_half, cb::rank());
    std::memset(q.buf + k_half, 0, k_half);
    const auto mine = q.thread->exportQp();
    std::vector<std::byte> theirs(mine.size());
    MPI_Sendrecv(mine.data(), static_cast<int>(mine.size()), MPI_BYTE, g_peer, 1, theirs.data(),
                 static_cast<int>(theirs.size()), MPI_BYTE, g_peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    q.thread->connectQp(theirs);
    MPI_Barrier(MPI_COMM_WORLD);
    return q;
}

/// The loopback address with `port` (0: any port).
sockaddr_in loopback(uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    return a;
}

void socket_setup() {
    auto check = [](bool ok, const char* call) {
        if (!ok) coyote::throw_errno(call, "loopback TCP socket baseline");
    };
    int port = 0;
    if (cb::rank() == 0) {
        const int ls = ::socket(AF_INET, SOCK_STREAM, 0);
        check(ls >= 0, "socket");
        sockaddr_in a = loopback(0);
        socklen_t len = sizeof(a);
        check(::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0, "bind");
        check(::listen(ls, 1) == 0, "listen");
        check(::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len) == 0, "getsockname");
        port = ntohs(a.sin_port);
        MPI_Send(&port, 1, MPI_INT, g_peer, 2, MPI_COMM_WORLD);
        g_sock = ::accept(ls, nullptr, nullptr);
        ::close(ls);
        check(g_sock >= 0, "accept");
    } else {
        MPI_Recv(&port, 1, MPI_INT, g_peer, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        g_sock = ::socket(AF_INET, SOCK_STREAM, 0);
        check(g_sock >= 0, "socket");
        sockaddr_in a = loopback(static_cast<uint16_t>(port));
        check(::connect(g_sock, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0, "connect");
    }
    const int one = 1;
    ::setsockopt(g_sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    // The congestion control the TCP wire's connections use (both ends set it, as the wire does): a pacing host
    // default would slow the baseline where the wire is spared it.
    namespace net = coyote::detail::sim::net;
    (void)net::apply_congestion(g_sock, net::wire_config_from_env().congestion);
}

/// Moves all `n` bytes at `p` with `io(p, n)` (send or recv on g_sock, returning bytes moved); false on error.
template <typename Ptr, typename Io>
bool io_all(Ptr p, std::size_t n, Io&& io) {
    while (n > 0) {
        const ssize_t k = io(p, n);
        if (k <= 0) return false;
        p += k;
        n -= static_cast<std::size_t>(k);
    }
    return true;
}

bool send_all(const uint8_t* p, std::size_t n) {
    return io_all(p, n, [](const uint8_t* q, std::size_t m) { return ::send(g_sock, q, m, MSG_NOSIGNAL); });
}

bool recv_all(uint8_t* p, std::size_t n) {
    return io_all(p, n, [](uint8_t* q, std::size_t m) { return ::recv(g_sock, q, m, 0); });
}

/// Clears both destination areas and every completion counter, then synchronises the ranks; returns q's thread.
coyote::cThread& reset(Qp& q) {
    std::memset(q.buf + k_half, 0, k_half);
    q.thread->clearCompleted();
    MPI_Barrier(MPI_COMM_WORLD);
    return *q.thread;
}

/// Checks every window slot of a destination area against `owner`'s source pattern.
bool window_arrived(const uint8_t* area, uint32_t size, int owner) {
    for (int i = 0; i < window(size); ++i) {
        const uint64_t off = slot(i, size);
        if (!has_pattern(area + off, size, owner, off)) return false;
    }
    return true;
}

std::string key(const char* name, int64_t size) { return std::string(name) + "/" + std::to_string(size); }

/// Clears the first `bytes` of the MPI destination buffer, then synchronises the ranks.
void clear_dst(std::size_t bytes) {
    std::fill_n(g_dst.begin(), bytes, uint8_t{0});
    MPI_Barrier(MPI_COMM_WORLD);
}

/// The per-iteration samples of `body` under cb::timed_loop (no extra synchronisation), or none if it failed.
template <typename Body>
std::optional<std::vector<double>> timed(benchmark::State& state, Body&& body) {
    std::vector<double> samples;
    if (!cb::timed_loop(state, cb::Sync::none, samples, std::forward<Body>(body))) return std::nullopt;
    return samples;
}

/// timed(), then the loop figure perftest and OSU report (cb::loop_counter: `loop_us`, a loop of as many
/// iterations timed as a whole, divided by `divisor`); nullopt when either failed.
template <class Body>
std::optional<std::vector<double>> timed_with_loop(benchmark::State& state, double divisor, Body&& body) {
    auto samples = timed(state, body);
    if (!samples || !cb::loop_counter(state, state.iterations(), divisor, body)) return std::nullopt;
    return samples;
}

/// Verifies the run of a coyote benchmark (`ok` on this rank, else `what` fails it), then its counters for
/// `messages` messages of `size` bytes per iteration: latency (samples / `lat_divisor`), throughput, and each
/// `ratios` counter against its baseline's median of the same size.
void coyote_counters(benchmark::State& state, bool ok, const std::string& what, const std::vector<double>& samples,
                     int64_t size, int messages, double lat_divisor,
                     const std::vector<std::pair<const char*, const char*>>& ratios) {
    if (!cb::verify(state, ok, what)) return;
    cb::latency_counters(state, samples, lat_divisor);
    cb::throughput_counters(state, size * messages, messages);
    for (const auto& [counter, baseline] : ratios)
        cb::ratio_counter(state, counter, key(baseline, size), cb::median(samples));
}

/// Verifies the run (`ok` on this rank, else `what` fails it), then records a baseline (median of the same unit of
/// work) and its counters.
void finish_baseline(benchmark::State& state, bool ok, const std::string& what, const char* name, int64_t size,
                     const std::vector<double>& samples, double ops_per_iter, double lat_divisor) {
    if (!cb::verify(state, ok, what)) return;
    cb::record_baseline(key(name, size), cb::median(samples));
    cb::latency_counters(state, samples, lat_divisor);
    cb::throughput_counters(state, size * static_cast<int64_t>(ops_per_iter), static_cast<int64_t>(ops_per_iter));
}

// ---- latency ------------------------------------------------------------------------------------

void bm_mpi_pingpong(benchmark::State& state, int64_t size) {
    const auto n = static_cast<int>(size);
    clear_dst(static_cast<std::size_t>(size));
    const auto samples = timed_with_loop(state, 2.0, [&] {
        if (cb::rank() == 0) {
            MPI_Send(g_src.data(), n, MPI_BYTE, g_peer, 5, MPI_COMM_WORLD);
            MPI_Recv(g_dst.data(), n, MPI_BYTE, g_peer, 5, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(g_dst.data(), n, MPI_BYTE, g_peer, 5, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(g_src.data(), n, MPI_BYTE, g_peer, 5, MPI_COMM_WORLD);
        }
        return true;
    });
    if (!samples) return;
    finish_baseline(state, has_pattern(g_dst.data(), static_cast<std::size_t>(size), g_peer, 0),
                    "MPI ping-pong payload differs from the peer's pattern", "mpi_pingpong", size, *samples, 1, 2.0);
}

void bm_rdma_write_lat(benchmark::State& state, int64_t size) {
    coyote::cThread& t = reset(g_shm);
    const auto n = static_cast<uint32_t>(size);
    uint32_t round = 0;
    const auto samples = timed_with_loop(state, 2.0, [&] {
        ++round;
        const coyote::rdmaSg sg = {.local_offs = 0, .remote_offs = k_half, .len = n};
        if (cb::rank() == 0) {
            t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, sg);
            return cb::wait_completed(t, CoyoteOper::LOCAL_WRITE, round);
        }
        if (!cb::wait_completed(t, CoyoteOper::LOCAL_WRITE, round)) return false;
        t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, sg);
        return true;
    });
    if (!samples) return;
    // Rank 1's last write back may still be in flight on rank 0's side: wait for its count first.
    const bool landed = cb::wait_completed(t, CoyoteOper::LOCAL_WRITE, round);
    if (cb::inject_corruption()) g_shm.buf[k_half] ^= 0xFF;
    coyote_counters(state, landed && has_pattern(g_shm.buf + k_half, n, g_peer, 0),
                    "RDMA WRITE ping-pong: destination does not hold the peer's pattern", *samples, size, 1, 2.0,
                    {{"ratio_vs_mpi", "mpi_pingpong"}});
}

void bm_mpi_get_lat(benchmark::State& state, int64_t size) {
    const auto n = static_cast<int>(size);
    clear_dst(static_cast<std::size_t>(size));
    const auto samples = timed_with_loop(state, 1.0, [&] {
        if (cb::rank() == 0) {
            MPI_Get(g_dst.data(), n, MPI_BYTE, g_peer, 0, n, MPI_BYTE, g_get_win);
            MPI_Win_flush(g_peer, g_get_win);
        }
        return true;
    });
    if (!samples) return;
    const bool ok = cb::rank() != 0 || has_pattern(g_dst.data(), static_cast<std::size_t>(size), g_peer, 0);
    finish_baseline(state, ok, "MPI_Get data differs from the peer's pattern", "mpi_get", size, *samples, 1, 1.0);
}

void bm_rdma_read_lat(benchmark::State& state, int64_t size) {
    coyote::cThread& t = reset(g_shm);
    const auto n = static_cast<uint32_t>(size);
    uint32_t done = 0;
    const auto samples = timed_with_loop(state, 1.0, [&] {
        if (cb::rank() != 0) return true; // the target is passive
        t.invoke(CoyoteOper::REMOTE_RDMA_READ, coyote::rdmaSg{.local_offs = k_half, .remote_offs = 0, .len = n});
        return cb::wait_completed(t, CoyoteOper::REMOTE_RDMA_READ, ++done);
    });
    if (!samples) return;
    const bool ok = cb::rank() != 0 || has_pattern(g_shm.buf + k_half, n, g_peer, 0);
    coyote_counters(state, ok, "RDMA READ: destination does not hold the peer's pattern", *samples, size, 1, 1.0,
                    {{"ratio_vs_mpi_get", "mpi_get"}});
}

// ---- throughput ---------------------------------------------------------------------------------

void bm_memcpy_bw(benchmark::State& state, int64_t size) {
    const auto n = static_cast<uint32_t>(size);
    const auto samples = timed(state, [&] {
        if (cb::rank() != 0) return true;
        for (int i = 0; i < window(n); ++i) std::memcpy(g_dst.data() + slot(i, n), g_src.data() + slot(i, n), n);
        benchmark::ClobberMemory();
        return true;
    });
    if (!samples) return;
    const bool ok = cb::rank() != 0 || window_arrived(g_dst.data(), n, cb::rank());
    finish_baseline(state, ok, "memcpy destination differs", "memcpy", size, *samples, window(n), window(n));
}

void bm_mpi_bw(benchmark::State& state, int64_t size) {
    const auto n = static_cast<uint32_t>(size);
    clear_dst(k_half);
    std::vector<MPI_Request> reqs(k_window);
    const auto samples = timed(state, [&] {
        int ack = 0;
        if (cb::rank() == 0) {
            for (int i = 0; i < window(n); ++i)
                MPI_Isend(g_src.data() + slot(i, n), static_cast<int>(n), MPI_BYTE, g_peer, 6, MPI_COMM_WORLD,
                          &reqs[static_cast<std::size_t>(i)]);
            MPI_Waitall(window(n), reqs.data(), MPI_STATUSES_IGNORE);
            MPI_Recv(&ack, 1, MPI_INT, g_peer, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
            for (int i = 0; i < window(n); ++i)
                MPI_Irecv(g_dst.data() + slot(i, n), static_cast<int>(n), MPI_BYTE, g_peer, 6, MPI_COMM_WORLD,
                          &reqs[static_cast<std::size_t>(i)]);
            MPI_Waitall(window(n), reqs.data(), MPI_STATUSES_IGNORE);
            MPI_Send(&ack, 1, MPI_INT, g_peer, 7, MPI_COMM_WORLD);
        }
        return true;
    });
    if (!samples) return;
    const bool ok = cb::rank() != 1 || window_arrived(g_dst.data(), n, g_peer);
    finish_baseline(state, ok, "MPI_Irecv data differs from the sender's pattern", "mpi_bw", size, *samples,
                    window(n), window(n));
}

/// A window of MPI_Put (rank 0 -> rank 1's put window) or MPI_Get (rank 0 <- rank 1's get window), then
/// MPI_Win_flush. The data lands in `landing` on rank 1 (put) or rank 0 (get).
void mpi_rma_window(benchmark::State& state, int64_t size, bool put) {
    const auto n = static_cast<uint32_t>(size);
    const MPI_Win win = put ? g_put_win : g_get_win;
    uint8_t* landing = put ? g_put_mem : g_dst.data();
    std::memset(landing, 0, k_half);
    MPI_Barrier(MPI_COMM_WORLD);
    const auto samples = timed(state, [&] {
        if (cb::rank() != 0) return true;
        for (int i = 0; i < window(n); ++i) {
            const auto off = slot(i, n);
            if (put)
                MPI_Put(g_src.data() + off, static_cast<int>(n), MPI_BYTE, g_peer, static_cast<MPI_Aint>(off),
                        static_cast<int>(n), MPI_BYTE, win);
            else
                MPI_Get(g_dst.data() + off, static_cast<int>(n), MPI_BYTE, g_peer, static_cast<MPI_Aint>(off),
                        static_cast<int>(n), MPI_BYTE, win);
        }
        MPI_Win_flush(g_peer, win);
        return true;
    });
    if (!samples) return;
    if (put) { // make the origin's puts visible to the target's loads
        MPI_Win_sync(win);
        MPI_Barrier(MPI_COMM_WORLD);
        MPI_Win_sync(win);
    }
    const bool ok = cb::rank() != (put ? 1 : 0) || window_arrived(landing, n, g_peer);
    finish_baseline(state, ok,
                    put ? "MPI_Put target differs from the origin's pattern"
                        : "MPI_Get data differs from the peer's pattern",
                    put ? "mpi_put" : "mpi_get_bw", size, *samples, window(n), window(n));
}

void bm_mpi_put_bw(benchmark::State& state, int64_t size) { mpi_rma_window(state, size, true); }
void bm_mpi_get_bw(benchmark::State& state, int64_t size) { mpi_rma_window(state, size, false); }

void bm_tcp_socket_bw(benchmark::State& state, int64_t size) {
    const auto n = static_cast<uint32_t>(size);
    clear_dst(k_half);
    const auto samples = timed(state, [&] {
        uint8_t ack = 1;
        if (cb::rank() == 0) {
            for (int i = 0; i < window(n); ++i)
                if (!send_all(g_src.data() + slot(i, n), n)) return false;
            return recv_all(&ack, 1);
        }
        for (int i = 0; i < window(n); ++i)
            if (!recv_all(g_dst.data() + slot(i, n), n)) return false;
        return send_all(&ack, 1);
    });
    if (!samples) return;
    const bool ok = cb::rank() != 1 || window_arrived(g_dst.data(), n, g_peer);
    finish_baseline(state, ok, "TCP socket data differs from the sender's pattern", "tcp_socket", size, *samples,
                    window(n), window(n));
}

/// A window of RDMA WRITEs (rank 0 -> rank 1) or READs (rank 0 <- rank 1) on `q`.
void rdma_window(benchmark::State& state, Qp& q, CoyoteOper op, int64_t size,
                 const std::vector<std::pair<const char*, const char*>>& ratios) {
    coyote::cThread& t = reset(q);
    const auto n = static_cast<uint32_t>(size);
    const bool write = op == CoyoteOper::REMOTE_RDMA_WRITE;
    uint32_t done = 0;
    const auto samples = timed(state, [&] {
        if (cb::rank() != 0) return true; // the target is passive
        if (done >= (1u << 30)) {
            t.clearCompleted();
            done = 0;
        }
        for (int i = 0; i < window(n); ++i) {
            const uint64_t off = slot(i, n);
            t.invoke(op, write ? coyote::rdmaSg{.local_offs = off, .remote_offs = k_half + off, .len = n}
                               : coyote::rdmaSg{.local_offs = k_half + off, .remote_offs = off, .len = n});
        }
        done += static_cast<uint32_t>(window(n));
        return cb::wait_completed(t, op, done);
    });
    if (!samples) return;
    // The data lands on rank 1 for WRITE (each message bumps its LOCAL_WRITE count), on rank 0 for READ.
    MPI_Barrier(MPI_COMM_WORLD);
    if (cb::inject_corruption()) q.buf[k_half] ^= 0xFF;
    bool ok = true;
    std::string what = write ? "RDMA WRITE window: target data or arrival count wrong"
                             : "RDMA READ window: destination does not hold the peer's pattern";
    if (write && cb::rank() == 1) {
        const uint64_t expected = static_cast<uint64_t>(state.iterations()) * static_cast<uint64_t>(window(n));
        const uint32_t got = t.checkCompleted(CoyoteOper::LOCAL_WRITE);
        ok = (expected >= (1u << 30) || got == expected) && window_arrived(q.buf + k_half, n, g_peer);
        what = "RDMA WRITE target: " + std::to_string(got) + " arrivals (expected " + std::to_string(expected) +
               ") or data differs from the origin's pattern";
    } else if (!write && cb::rank() == 0) {
        ok = window_arrived(q.buf + k_half, n, g_peer);
    }
    coyote_counters(state, ok, what, *samples, size, window(n), window(n), ratios);
}

void bm_rdma_write_bw(benchmark::State& state, int64_t size) {
    rdma_window(state, g_shm, CoyoteOper::REMOTE_RDMA_WRITE, size,
                {{"ratio_vs_mpi", "mpi_bw"}, {"ratio_vs_mpi_put", "mpi_put"}, {"ratio_vs_memcpy", "memcpy"}});
}
void bm_rdma_read_bw(benchmark::State& state, int64_t size) {
    rdma_window(state, g_shm, CoyoteOper::REMOTE_RDMA_READ, size,
                {{"ratio_vs_mpi_get", "mpi_get_bw"}, {"ratio_vs_memcpy", "memcpy"}});
}
void bm_rdma_write_tcpwire_bw(benchmark::State& state, int64_t size) {
    rdma_window(state, g_tcp, CoyoteOper::REMOTE_RDMA_WRITE, size, {{"ratio_vs_tcp_socket", "tcp_socket"}});
}

void setup() {
    g_peer = 1 - cb::rank();
    g_src.resize(k_half);
    fill_pattern(g_src.data(), k_half, cb::rank());
    g_dst.assign(k_half, 0);
    if (k_mpi_only.get()) { // the MPI library alone, without the runtime's threads and shared memory around it
        cb::set_context("runtime", "not initialised (COYOTE_BENCH_MPI_ONLY=1)");
        for (int64_t size = k_min_size; size <= k_max_size; size *= 4)
            benchmark::RegisterBenchmark(("mpi_pingpong_lat/" + std::to_string(size)).c_str(), bm_mpi_pingpong, size)
                ->UseManualTime();
        return;
    }
    g_shm = wire_qp(0, "shm");
    g_tcp = wire_qp(1, "tcp");
    MPI_Win_allocate(k_half, 1, MPI_INFO_NULL, MPI_COMM_WORLD, &g_put_mem, &g_put_win);
    MPI_Win_allocate(k_half, 1, MPI_INFO_NULL, MPI_COMM_WORLD, &g_get_mem, &g_get_win);
    fill_pattern(g_get_mem, k_half, cb::rank());
    std::memset(g_put_mem, 0, k_half);
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Win_lock_all(0, g_put_win);
    MPI_Win_lock_all(0, g_get_win);
    socket_setup();

    using Fn = void (*)(benchmark::State&, int64_t);
    const std::pair<const char*, Fn> order[] = {
        {"mpi_pingpong_lat", bm_mpi_pingpong}, {"rdma_write_lat", bm_rdma_write_lat},
        {"mpi_get_lat", bm_mpi_get_lat},       {"rdma_read_lat", bm_rdma_read_lat},
        {"memcpy_bw", bm_memcpy_bw},           {"mpi_bw", bm_mpi_bw},
        {"mpi_put_bw", bm_mpi_put_bw},         {"mpi_get_bw", bm_mpi_get_bw},
        {"rdma_write_bw", bm_rdma_write_bw},   {"rdma_read_bw", bm_rdma_read_bw},
        {"tcp_socket_bw", bm_tcp_socket_bw},   {"rdma_write_tcpwire_bw", bm_rdma_write_tcpwire_bw}};
    for (int64_t size = k_min_size; size <= k_max_size; size *= 4)
        for (const auto& [name, fn] : order)
            benchmark::RegisterBenchmark((std::string(name) + "/" + std::to_string(size)).c_str(), fn, size)
                ->UseManualTime();
    cb::set_context("window", std::to_string(k_window) + " messages, at most " + std::to_string(k_window_bytes >> 20) +
                                  " MiB (at least 2 messages) per stream iteration");
}

void teardown() {
    if (g_put_win != MPI_WIN_NULL) {
        MPI_Win_unlock_all(g_put_win);
        MPI_Win_unlock_all(g_get_win);
        MPI_Win_free(&g_put_win);
        MPI_Win_free(&g_get_win);
    }
    if (g_sock >= 0) ::close(g_sock);
    g_sock = -1;
    MPI_Barrier(MPI_COMM_WORLD);
    g_shm = {};
    g_tcp = {};
}

[[maybe_unused]] const bool k_registered =
    cb::define_suite({.name = "rdma", .ranks = {2, 2}, .wire = "shm (device 0), tcp (device 1)"}, setup, teardown);

}  // namespace
