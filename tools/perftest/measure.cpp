// coyote-mpi perftest-style tools: the measurement loops (latency ping-pong / READ round trips, bandwidth
// streams) and the data check. Timing: one loop of -n iterations (the figure perftest and OSU report);
// per-iteration samples only for the distribution (min, max, typical, percentiles).
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include <coyote/error.hpp>
#include <coyote/oob.hpp>

#include "perftest/perftest.hpp"

namespace coyote::tools::perftest {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto k_wait_timeout = std::chrono::seconds(60);
/// Per-iteration samples kept (32 MiB): the distribution of longer runs comes from their first 4 Mi iterations.
constexpr uint32_t k_max_samples = 1u << 22;

/// Room for the samples of `iters` iterations (allocated before the timed loop).
std::vector<double> sample_buffer(uint32_t iters) { return std::vector<double>(std::min(iters, k_max_samples)); }

double us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

CoyoteOper oper_of(Verb v) {
    switch (v) {
    case Verb::read: return CoyoteOper::REMOTE_RDMA_READ;
    case Verb::send: return CoyoteOper::REMOTE_RDMA_SEND;
    default: return CoyoteOper::REMOTE_RDMA_WRITE;
    }
}

/// Grace a wait keeps polling after the peer closed the out-of-band connection: what it sent before exiting
/// may still be on its way.
constexpr auto k_closed_grace = std::chrono::seconds(1);
/// How often a wait looks whether the peer closed the out-of-band connection.
constexpr auto k_closed_check = std::chrono::milliseconds(50);

/// Waits until checkCompleted(oper) reaches n (spinning, yielding now and then); throws peer_gone about a second
/// after the peer closed the out-of-band connection (it exited or was killed), timeout after 60 s.
void wait_count(cThread& t, CoyoteOper oper, uint32_t n, const char* what) {
    Clock::time_point deadline{}, next_check{};
    bool closed = false;
    for (uint32_t polls = 1; t.checkCompleted(oper) < n; ++polls) {
        if ((polls & 0x3F) != 0) continue;
        const auto now = Clock::now();
        if (deadline == Clock::time_point{}) deadline = now + k_wait_timeout;
        if (!closed && now >= next_check) {
            next_check = now + k_closed_check;
            const OobChannel* oob = t.getOob();
            closed = oob != nullptr && oob->peer_closed();
            if (closed) deadline = std::min(deadline, now + k_closed_grace);
        }
        if (now > deadline) {
            const std::string count = "completion count stayed at " + std::to_string(t.checkCompleted(oper)) +
                                      " of " + std::to_string(n);
            if (closed)
                throw_error(Errc::peer_gone, what,
                            count + ": the peer closed the out-of-band connection (it exited or was killed)");
            throw_error(Errc::timeout, what, count + " for 60 s (is the peer still running?)");
        }
        ::sched_yield();
    }
}

uint8_t pattern(uint32_t seed, uint64_t i) {
    return static_cast<uint8_t>(((i * 2654435761ULL) >> 11) ^ (i >> 7) ^ (seed * 0x5bU));
}

void fill(std::byte* p, uint64_t len, uint32_t seed) {
    for (uint64_t i = 0; i < len; ++i) p[i] = static_cast<std::byte>(pattern(seed, i));
}

bool matches(const std::byte* p, uint64_t len, uint32_t seed) {
    for (uint64_t i = 0; i < len; ++i)
        if (p[i] != static_cast<std::byte>(pattern(seed, i))) return false;
    return true;
}

/// Write / send ping-pong: the client posts first, each side answers the other's message.
void latency_pingpong(cThread& t, const Options& o, const rdmaSg& sg, bool client, Result& r) {
    const CoyoteOper op = oper_of(o.verb);
    std::vector<double> samples = sample_buffer(o.iters);
    const auto t0 = Clock::now();
    auto prev = t0;
    for (uint32_t i = 1; i <= o.iters; ++i) {
        if (client) {
            t.invoke(op, sg);
            wait_count(t, CoyoteOper::LOCAL_WRITE, i, "latency: pong");
        } else {
            wait_count(t, CoyoteOper::LOCAL_WRITE, i, "latency: ping");
            t.invoke(op, sg);
        }
        const auto now = Clock::now();
        if (i <= k_max_samples) samples[i - 1] = us(now - prev);
        prev = now;
    }
    const double loop = us(prev - t0);
    wait_count(t, op, o.iters, "latency: own requests");
    if (client) latency_stats(r, samples, loop, true);
}

/// READ round trips by the client; the server stays passive.
void latency_read(cThread& t, const Options& o, const rdmaSg& sg, Result& r) {
    std::vector<double> samples = sample_buffer(o.iters);
    const auto t0 = Clock::now();
    auto prev = t0;
    for (uint32_t i = 1; i <= o.iters; ++i) {
        t.invoke(CoyoteOper::REMOTE_RDMA_READ, sg);
        wait_count(t, CoyoteOper::REMOTE_RDMA_READ, i, "read latency: response");
        const auto now = Clock::now();
        if (i <= k_max_samples) samples[i - 1] = us(now - prev);
        prev = now;
    }
    latency_stats(r, samples, us(prev - t0), false);
}

/// A stream of -n requests from the client; for write / send the server waits for all of them to land.
void bandwidth(cThread& t, const Options& o, const rdmaSg& sg, bool client, Result& r) {
    const CoyoteOper op = oper_of(o.verb);
    if (!client) {
        if (o.verb != Verb::read) wait_count(t, CoyoteOper::LOCAL_WRITE, o.iters, "bandwidth: arrivals");
        return;
    }
    std::vector<double> posts = sample_buffer(o.iters);
    const auto t0 = Clock::now();
    for (uint32_t i = 0; i < o.iters; ++i) {
        t.invoke(op, sg);
        if (i < k_max_samples) posts[i] = us(Clock::now() - t0);
    }
    wait_count(t, op, o.iters, "bandwidth: completions");
    bandwidth_stats(r, posts, us(Clock::now() - t0), o.gbits, k_tx_depth);
}

/// Both sides tell each other whether the bytes they received matched; true if both did.
bool exchange_verdicts(cThread& t, bool mine) {
    OobChannel* oob = t.getOob();
    uint32_t theirs = 0;
    if (oob->is_client()) {
        oob->send_ack(mine ? 1u : 0u);
        theirs = oob->read_ack();
    } else {
        theirs = oob->read_ack();
        oob->send_ack(mine ? 1u : 0u);
    }
    return mine && theirs == 1;
}

}  // namespace

Result run_size(Session& s, const Options& o, uint64_t size, uint64_t max_size) {
    Result r;
    r.bytes = size;
    r.iters = o.iters;
    cThread& t = s.thread();
    const bool client = s.client();
    std::byte* buf = s.buffer();
    const uint32_t seed_mine = client ? 1 : 2, seed_peer = client ? 2 : 1;
    fill(buf, size, seed_mine);
    std::memset(buf + max_size, 0, size);
    t.clearCompleted();
    t.getOob()->sync(); // nothing of this size is posted before both sides cleared their counters
    const auto len = static_cast<uint32_t>(size);
    const rdmaSg sg = o.verb == Verb::read ? rdmaSg{.local_offs = max_size, .remote_offs = 0, .len = len}
                                           : rdmaSg{.local_offs = 0, .remote_offs = max_size, .len = len};
    if (o.kind == Kind::lat && o.verb == Verb::read) {
        if (client) latency_read(t, o, sg, r);
    } else if (o.kind == Kind::lat) {
        latency_pingpong(t, o, sg, client, r);
    } else {
        bandwidth(t, o, sg, client, r);
    }
    // Who received data: both sides of a ping-pong; the server of a write / send stream; the client of a READ.
    const bool receiver = (o.kind == Kind::lat && o.verb != Verb::read) || (o.verb == Verb::read) == client;
    const bool ok = !receiver || matches(buf + max_size, size, seed_peer);
    r.checked_bytes = receiver ? size : 0;
    r.verified = exchange_verdicts(t, ok);
    return r;
}

}  // namespace coyote::tools::perftest
