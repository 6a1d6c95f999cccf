// rdma_perf: RDMA WRITE/READ throughput and WRITE ping-pong latency between two cThreads, in the style of
// Coyote's RDMA benchmark. Runs on the sim backend in two terminals:
//   terminal 1:  rdma_perf --server [--port 18488]
//   terminal 2:  rdma_perf --client 127.0.0.1 [--port 18488] [--runs 200] [--min 64] [--max 1048576]
// Both sides must use the same --runs/--min/--max. Every transfer's data is verified.
#include <coyote/cThread.hpp>
#include <coyote/error.hpp>
#include <coyote/oob.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

using namespace coyote;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
    bool server = true;
    std::string address;
    uint16_t port = static_cast<uint16_t>(DEF_PORT);
    uint32_t runs = 200;
    uint32_t min_size = 64;
    uint32_t max_size = 1u << 20;
};

void usage(std::FILE* out, const char* argv0) {
    std::fprintf(out,
                 "usage: %s --server [--port P] [--runs N] [--min B] [--max B]\n"
                 "       %s --client ADDRESS [--port P] [--runs N] [--min B] [--max B]\n"
                 "  --port 1..65535 (default %u), --runs 1..100000 (default 200),\n"
                 "  --min / --max: message sizes in bytes, 1 .. 64 MiB (defaults 64 and 1048576; doubled from --min)\n"
                 "  Both sides must use the same --runs, --min and --max.\n",
                 argv0, argv0, static_cast<unsigned>(DEF_PORT));
}

/// Prints `problem` and the usage; exit status 2.
[[noreturn]] void bad_usage(const char* argv0, const std::string& problem) {
    std::fprintf(stderr, "rdma_perf: %s\n", problem.c_str());
    usage(stderr, argv0);
    std::exit(2);
}

/// The decimal number `text` of option `flag`, in [lo, hi]; anything else ends the program naming the option.
uint32_t number(const char* argv0, const std::string& flag, const std::string& text, uint32_t lo, uint32_t hi) {
    uint64_t v = 0;
    bool ok = !text.empty() && text.size() <= 10;
    for (const char c : text) {
        ok = ok && c >= '0' && c <= '9';
        if (ok) v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    if (!ok || v < lo || v > hi)
        bad_usage(argv0, flag + " needs a whole number in " + std::to_string(lo) + ".." + std::to_string(hi) +
                             ", got '" + text + "'");
    return static_cast<uint32_t>(v);
}

Options parse(int argc, char** argv) {
    Options o;
    bool role = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) bad_usage(argv[0], a + " needs a value");
            return argv[++i];
        };
        if (a == "--help" || a == "-h") {
            usage(stdout, argv[0]);
            std::exit(0);
        } else if (a == "--server" || a == "--client") {
            if (role) bad_usage(argv[0], "give one of --server and --client, once");
            o.server = a == "--server";
            if (!o.server) o.address = value();
            if (!o.server && (o.address.empty() || o.address[0] == '-'))
                bad_usage(argv[0], "--client needs the server's address, got '" + o.address + "'");
            role = true;
        } else if (a == "--port") {
            o.port = static_cast<uint16_t>(number(argv[0], a, value(), 1, 65535));
        } else if (a == "--runs") {
            o.runs = number(argv[0], a, value(), 1, 100000);
        } else if (a == "--min") {
            o.min_size = number(argv[0], a, value(), 1, 64u << 20);
        } else if (a == "--max") {
            o.max_size = number(argv[0], a, value(), 1, 64u << 20);
        } else {
            bad_usage(argv[0], "unknown option '" + a + "'");
        }
    }
    if (!role) bad_usage(argv[0], "give --server or --client ADDRESS");
    if (o.min_size > o.max_size)
        bad_usage(argv[0], "--min (" + std::to_string(o.min_size) + ") is larger than --max (" +
                               std::to_string(o.max_size) + ")");
    return o;
}

/// Waits until checkCompleted(oper) reaches n (errors surface as exceptions; 60 s deadline).
void wait_for(cThread& t, CoyoteOper oper, uint32_t n) {
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (t.checkCompleted(oper) < n) {
        if (Clock::now() > deadline) {
            t.printDebug();
            throw std::runtime_error("timed out waiting for " + std::to_string(n) + " completions");
        }
        std::this_thread::yield(); // lets the peer run when the cores are oversubscribed
    }
}

uint8_t pattern(uint64_t i, uint32_t size, uint32_t round) {
    return static_cast<uint8_t>((i * 7 + size / 64 + round * 13) & 0xFF);
}

void fill(uint8_t* p, uint64_t n, uint32_t size, uint32_t round) {
    for (uint64_t i = 0; i < n; ++i) p[i] = pattern(i, size, round);
}

bool verify(const uint8_t* p, uint64_t n, uint32_t size, uint32_t round, const char* what) {
    for (uint64_t i = 0; i < n; ++i)
        if (p[i] != pattern(i, size, round)) {
            std::fprintf(stderr, "data mismatch (%s, size %u) at byte %llu: got 0x%02x, expected 0x%02x\n", what,
                         size, static_cast<unsigned long long>(i), p[i], pattern(i, size, round));
            return false;
        }
    return true;
}

/// One measured phase of one size: the figure (MB/s or us) and whether the data verified.
struct Phase {
    double value = 0;
    bool ok = true;
};

/// What every phase needs: the connection, the buffer split in two halves, the size and its round number.
struct Round {
    cThread& t;
    uint8_t* buf;
    uint64_t half;
    uint32_t size;
    uint32_t round;
    const Options& o;
    uint32_t per_buf() const { return std::max<uint32_t>(1, static_cast<uint32_t>(half / size)); }
};

/// Starts a phase: clears the counters; the side holding the data (the client if `client_sends`) fills `bytes` of
/// its source half with pattern `seed`; both sides sync.
void begin(const Round& r, bool client_sends, uint64_t bytes, uint32_t seed) {
    r.t.clearCompleted();
    if (r.o.server != client_sends) fill(r.buf, bytes, r.size, seed);
    r.t.connSync(!r.o.server);
}

/// Whether the destination half holds the slots of a stream with pattern `seed` (names `what` otherwise).
bool stream_landed(const Round& r, uint32_t seed, const char* what) {
    return verify(r.buf + r.half, uint64_t(std::min(r.per_buf(), r.o.runs)) * r.size, r.size, seed, what);
}

/// The client's timed stream of `runs` WRITEs (source half -> the peer's destination half) or READs (the peer's
/// source half -> destination half), cycling over the slots of a half; MB/s.
double stream(const Round& r, CoyoteOper op) {
    const bool write = op == CoyoteOper::REMOTE_RDMA_WRITE;
    const auto t0 = Clock::now();
    for (uint32_t i = 0; i < r.o.runs; ++i) {
        const uint64_t off = uint64_t(i % r.per_buf()) * r.size;
        r.t.invoke(op, write ? rdmaSg{.local_offs = off, .remote_offs = r.half + off, .len = r.size}
                             : rdmaSg{.local_offs = r.half + off, .remote_offs = off, .len = r.size});
    }
    wait_for(r.t, op, r.o.runs);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    return double(r.o.runs) * r.size / s / 1e6;
}

/// WRITE throughput: the client writes `runs` messages; the server checks the data.
Phase write_phase(const Round& r) {
    Phase p;
    begin(r, true, r.half, r.round);
    if (!r.o.server) {
        p.value = stream(r, CoyoteOper::REMOTE_RDMA_WRITE);
    } else {
        wait_for(r.t, CoyoteOper::LOCAL_WRITE, r.o.runs);
        p.ok = stream_landed(r, r.round, "WRITE at the target");
    }
    r.t.connSync(!r.o.server);
    return p;
}

/// READ throughput: the client reads the server's source half; the server is passive.
Phase read_phase(const Round& r) {
    Phase p;
    begin(r, false, r.half, r.round + 1);
    if (!r.o.server) {
        std::memset(r.buf + r.half, 0, r.half);
        p.value = stream(r, CoyoteOper::REMOTE_RDMA_READ);
        p.ok = stream_landed(r, r.round + 1, "READ at the requester");
    }
    r.t.connSync(!r.o.server);
    return p;
}

/// WRITE ping-pong: the client writes one message, the server answers once it has landed.
Phase pingpong_phase(const Round& r) {
    Phase p;
    begin(r, true, r.size, r.round + 2);
    const uint32_t pings = std::max<uint32_t>(1, r.o.runs / 4);
    if (!r.o.server) {
        const auto t0 = Clock::now();
        for (uint32_t i = 0; i < pings; ++i) {
            r.t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = 0, .remote_offs = r.half, .len = r.size});
            wait_for(r.t, CoyoteOper::LOCAL_WRITE, i + 1);
        }
        p.value = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / pings / 2;
        p.ok = verify(r.buf + r.half, r.size, r.size, r.round + 2, "ping-pong echo");
    } else {
        for (uint32_t i = 0; i < pings; ++i) {
            wait_for(r.t, CoyoteOper::LOCAL_WRITE, i + 1);
            // Echo what arrived back into the client's receive half.
            r.t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = r.half, .remote_offs = r.half, .len = r.size});
        }
        wait_for(r.t, CoyoteOper::REMOTE_RDMA_WRITE, pings);
    }
    r.t.connSync(!r.o.server);
    return p;
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    try {
        cThread t(0, ::getpid());
        // Two halves: [0, max) is the source side, [max, 2*max) receives.
        const uint64_t half = o.max_size;
        auto* buf = static_cast<uint8_t*>(
            t.initRDMA(2 * half, o.port, o.server ? nullptr : o.address.c_str()));
        std::printf("%s connected: local QPN 0x%06x, remote QPN 0x%06x (backend %s)\n", o.server ? "server" : "client",
                    t.getQpair()->local.qpn, t.getQpair()->remote.qpn, t.backendName().c_str());
        // Both sides must run the same rounds: compare --runs/--min/--max (a mismatch ran into the deadlines).
        const uint32_t mine[] = {o.runs, o.min_size, o.max_size};
        uint32_t theirs[3] = {};
        coyote::OobChannel* oob = t.getOob();
        for (int i = 0; i < 3; ++i) {
            if (o.server) {
                theirs[i] = oob->read_ack();
                oob->send_ack(mine[i]);
            } else {
                oob->send_ack(mine[i]);
                theirs[i] = oob->read_ack();
            }
        }
        if (!std::equal(std::begin(mine), std::end(mine), std::begin(theirs))) {
            std::fprintf(stderr, "rdma_perf: the peer runs --runs %u --min %u --max %u, this side --runs %u --min %u "
                                 "--max %u: start both sides alike\n", theirs[0], theirs[1], theirs[2], mine[0],
                         mine[1], mine[2]);
            return 2;
        }
        if (!o.server) {
            HEADER("RDMA WRITE / READ throughput and WRITE latency");
            std::printf("%10s %14s %14s %14s %12s\n", "size [B]", "WRITE [MB/s]", "READ [MB/s]", "1/2 RTT [us]",
                        "verified");
        }
        bool all_ok = true;
        uint32_t round = 0;
        for (uint32_t size = o.min_size; size <= o.max_size; size *= 2, ++round) {
            const Round r{t, buf, half, size, round, o};
            const Phase w = write_phase(r);
            const Phase rd = read_phase(r);
            const Phase pp = pingpong_phase(r);
            all_ok &= w.ok && rd.ok && pp.ok;
            const bool ok = rd.ok && pp.ok;  // the client's own checks
            if (!o.server)
                std::printf("%10u %14.1f %14.1f %14.2f %12s\n", size, w.value, rd.value, pp.value, ok ? "yes" : "NO");
        }
        t.connSync(!o.server);
        t.closeConn();
        if (!all_ok) {
            std::fprintf(stderr, "data verification FAILED\n");
            return 1;
        }
        std::printf("%s done, all data verified\n", o.server ? "server" : "client");
        if (std::fflush(stdout) != 0 || std::ferror(stdout) != 0) { // a full disk: not exit 0
            std::fprintf(stderr, "rdma_perf: cannot write the results to standard output\n");
            return 1;
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "rdma_perf: %s\n", e.what());
        return 1;
    }
}
