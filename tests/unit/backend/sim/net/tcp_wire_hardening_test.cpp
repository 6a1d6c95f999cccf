// The TCP wire under strangers and misbehaving peers: idle unauthenticated connections and half a frame stall
// no established peer, keys are fresh per exchange, the listener opens only when a peer needs it, on loopback.
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>
#include <coyote/error.hpp>
#include <coyote/oob.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backend/sim/net/tcp/tcp_wire.hpp"
#include "backend/sim/net/wire_format.hpp"
#include "backend/sim/segments.hpp"
#include "detail/handles.hpp"
#include "unit/proc_net.hpp"
#include "unit/rdma_test_support.hpp"

using namespace std::chrono_literals;
using coyote::CoyoteOper;
using coyote::rdmaSg;
using coyote_test::check;
using coyote_test::Child;
namespace sim = coyote::detail::sim;
namespace net = coyote::detail::sim::net;

namespace {

constexpr uint32_t k_size = 1u << 16;
constexpr uint32_t k_ops = 20;
constexpr uint32_t k_chunk = 2048;

/// An out-of-band channel that keeps what the peer sent (its ibvQ and endpoint bytes).
class Recording final : public coyote::OobChannel {
public:
    Recording(std::unique_ptr<coyote::OobChannel> inner, std::vector<std::byte>& theirs)
        : inner_(std::move(inner)), theirs_(theirs) {}
    bool is_client() const noexcept override { return inner_->is_client(); }
    std::vector<std::byte> exchange(std::span<const std::byte> mine) override {
        theirs_ = inner_->exchange(mine);
        return theirs_;
    }
    void send_ack(uint32_t ack) override { inner_->send_ack(ack); }
    uint32_t read_ack() override { return inner_->read_ack(); }
    void close() noexcept override { inner_->close(); }

private:
    std::unique_ptr<coyote::OobChannel> inner_;
    std::vector<std::byte>& theirs_;
};

/// The sim endpoint in the bytes a peer sent over the out-of-band channel.
sim::Endpoint endpoint_of(const std::vector<std::byte>& theirs) {
    return sim::decode_endpoint(std::span(theirs).subspan(sizeof(coyote::ibvQ)));
}

/// A TCP connection to the wire of `ep` (no byte sent); throws when refused.
int connect_wire(const sim::Endpoint& ep) {
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(ep.wire_addr);
    sa.sin_port = htons(ep.wire_port);
    if (s < 0 || ::connect(s, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) != 0)
        throw std::runtime_error(std::string("cannot connect to the wire: ") + std::strerror(errno));
    return s;
}

/// Writes all of `n` bytes or throws.
void send_all(int s, const void* p, size_t n) {
    if (::send(s, p, n, MSG_NOSIGNAL) != static_cast<ssize_t>(n)) throw std::runtime_error("send failed");
}

/// The wire of process `pid` (its one listening socket once wired) as an endpoint to dial.
sim::Endpoint wire_of(pid_t pid) {
    const auto l = coyote_test::tcp_sockets(pid, "0A");
    if (l.size() != 1) throw std::runtime_error(std::to_string(l.size()) + " listening sockets in the server");
    sim::Endpoint ep;
    // /proc prints the address in network order as one hex word.
    ep.wire_addr = ntohl(static_cast<uint32_t>(std::stoul(l[0].addr, nullptr, 16)));
    ep.wire_port = l[0].port;
    return ep;
}

/// Opens a connection to the wire of `ep`, presents `key` in a HELLO; the socket, and whether it was accepted
/// (a HELLO_ACK within 5 s).
std::pair<int, bool> hello(const sim::Endpoint& ep, uint64_t key) {
    const int s = connect_wire(ep);
    const auto h = net::encode_hello(net::HelloKeys{key, 0x5eed});
    send_all(s, h.data(), h.size());
    std::array<std::byte, sim::k_frame_header_size> ack{};
    pollfd pf{s, POLLIN, 0};
    const bool got = ::poll(&pf, 1, 5000) == 1 && ::recv(s, ack.data(), ack.size(), MSG_WAITALL) == 64;
    return {s, got};
}

/// The server side of every test: one cThread wired as out-of-band server on `port`, verifies the WRITEs.
int serve(uint16_t port, const char* io_timeout_ms = "20000") {
    coyote_test::child_env("tcp");
    ::setenv("COYOTE_SIM_WIRE_TIMEOUT_MS", io_timeout_ms, 1);
    coyote::cThread t(0, ::getpid());
    auto* buf = static_cast<uint8_t*>(t.initRDMA(k_size, port));
    t.connSync(false); // wired
    coyote_test::wait_count(t, CoyoteOper::LOCAL_WRITE, k_ops, "WRITEs received");
    check(coyote_test::mismatch(buf, 0, k_ops * k_chunk, 7) == -1, "WRITE data");
    t.connSync(false); // done
    return 0;
}

/// The client: wires to the server, runs `disturb(server endpoint)` and then k_ops WRITEs, each awaited; exits
/// 0 when they took less than `bound` altogether, 10 when they took longer.
/// With `needs_key`, the disturbance gets the server's endpoint as exchanged (with its key), else the address
/// of its wire as /proc shows it (the plain initRDMA path).
int write_batch(uint16_t port, pid_t server, bool needs_key, std::chrono::milliseconds bound,
                const std::function<void(const sim::Endpoint&)>& disturb) {
    coyote_test::child_env("tcp");
    coyote::cThread t(0, ::getpid());
    std::vector<std::byte> theirs;
    auto* buf = static_cast<uint8_t*>(
        needs_key ? t.initRDMA(k_size, std::make_unique<Recording>(coyote::make_tcp_oob(port, "127.0.0.1"), theirs))
                  : t.initRDMA(k_size, port, "127.0.0.1"));
    coyote_test::fill(buf, k_size, 7);
    t.connSync(true);
    disturb(needs_key ? endpoint_of(theirs) : wire_of(server));
    std::this_thread::sleep_for(100ms); // the server has seen the disturbance
    const auto t0 = std::chrono::steady_clock::now();
    for (uint32_t i = 0; i < k_ops; ++i) {
        t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = i * k_chunk, .remote_offs = i * k_chunk, .len = k_chunk});
        coyote_test::wait_count(t, CoyoteOper::REMOTE_RDMA_WRITE, i + 1, "WRITE completions");
    }
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    std::fprintf(stderr, "%u WRITEs took %lld ms\n", k_ops, static_cast<long long>(took.count()));
    t.connSync(true);
    return took < bound ? 0 : 10;
}

/// Runs serve() and write_batch() with `disturb`; the WRITEs must not wait for the disturbance.
void expect_unstalled(bool needs_key, const std::function<void(const sim::Endpoint&)>& disturb) {
    const uint16_t port = coyote_test::free_port();
    ASSERT_NE(port, 0);
    // A stall is the handshake deadline (2 s) per stranger or the I/O timeout (20 s) for half a frame; the batch
    // takes milliseconds otherwise. 1.5 s leaves room for a loaded machine.
    Child server([&] { return serve(port); }, 90);
    const pid_t spid = server.pid();
    Child client([&] { return write_batch(port, spid, needs_key, 1500ms, disturb); }, 90);
    EXPECT_EQ(client.wait(), 0) << "the established peer's WRITEs stalled (exit 10) or failed";
    EXPECT_EQ(server.wait(), 0);
}

class TcpWireStrangers : public testing::TestWithParam<int> {};

}  // namespace

TEST_P(TcpWireStrangers, IdleConnectionsDoNotStallEstablishedPeers) {
    const int strangers = GetParam();
    std::vector<int> held;
    expect_unstalled(false, [&](const sim::Endpoint& ep) {
        for (int i = 0; i < strangers; ++i) held.push_back(connect_wire(ep)); // connect, say nothing, hold
    });
}

INSTANTIATE_TEST_SUITE_P(Count, TcpWireStrangers, testing::Values(1, 5, 20));

TEST(TcpWireHardening, HalfAFrameStallsOnlyItsOwnConnection) {
    std::vector<int> held;
    expect_unstalled(true, [&](const sim::Endpoint& ep) {
        // An authenticated peer (the server's key) that sends 30 of a WRITE header's 64 bytes and stops.
        const auto [s, accepted] = hello(ep, ep.key);
        check(accepted, "HELLO_ACK");
        sim::RdmaRequest r{};
        r.op = coyote::detail::RdmaOpcode::write;
        r.len = 4096;
        const auto h = sim::encode_frame(sim::request_frame(r, 1, true));
        send_all(s, h.data(), 30);
        held.push_back(s);
    });
}

namespace {

/// Sends READ requests the target refuses (each answered by a NAK) without reading any answer, until the socket
/// takes no more for a second or `limit` bytes went out; returns the bytes the target took.
size_t flood_without_reading(int s, size_t limit) {
    const int small = 4096;
    (void)::setsockopt(s, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)); // its answers pile up at the target
    sim::RdmaRequest r{};
    r.op = coyote::detail::RdmaOpcode::read;
    r.len = 4096;
    r.dst_qpn = 0xBAD;
    size_t sent = 0;
    auto blocked_since = std::chrono::steady_clock::now();
    for (uint32_t psn = 1; sent < limit; ++psn) {
        const auto f = sim::encode_frame(sim::request_frame(r, psn, true));
        const ssize_t n = ::send(s, f.data(), f.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent += static_cast<size_t>(n);
            // The rest of a frame cut short, blocking: the target may drop the peer meanwhile (EPIPE / ECONNRESET).
            ssize_t rest = 0;
            if (static_cast<size_t>(n) < f.size())
                rest = ::send(s, f.data() + n, f.size() - static_cast<size_t>(n), MSG_NOSIGNAL);
            if (rest >= 0) {
                sent += static_cast<size_t>(rest);
                blocked_since = std::chrono::steady_clock::now();
                continue;
            }
        }
        if (errno == EPIPE || errno == ECONNRESET) { // dropped by the target
            std::fprintf(stderr, "the target dropped the flood after %zu bytes\n", sent);
            break;
        }
        check(errno == EAGAIN || errno == EWOULDBLOCK, std::string("flood send: ") + std::strerror(errno));
        if (std::chrono::steady_clock::now() - blocked_since > 1s) break;
        --psn;
        std::this_thread::sleep_for(1ms);
    }
    return sent;
}

/// Bytes the target has received on the other end of `s` and not read yet (its receive queue in /proc/net/tcp);
/// 0 when the connection is gone.
size_t unread_at_target(int s) {
    sockaddr_in me{};
    socklen_t len = sizeof(me);
    if (::getsockname(s, reinterpret_cast<sockaddr*>(&me), &len) != 0) return 0;
    std::ifstream in("/proc/net/tcp");
    std::string line;
    std::getline(in, line); // header
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string sl, local, remote, st, q;
        f >> sl >> local >> remote >> st >> q;
        const auto colon = remote.find(':'), qcolon = q.find(':');
        if (st != "01" || colon == std::string::npos || qcolon == std::string::npos) continue;
        if (std::stoul(remote.substr(colon + 1), nullptr, 16) == ntohs(me.sin_port))
            return std::stoul(q.substr(qcolon + 1), nullptr, 16);
    }
    return 0;
}

/// True when the target closes `s` within `limit` (whatever answers it sent before are read and dropped).
bool closed_within(int s, std::chrono::seconds limit) {
    std::array<std::byte, 65536> sink{};
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        pollfd pf{s, POLLIN, 0};
        if (::poll(&pf, 1, 100) != 1) continue;
        if (::recv(s, sink.data(), sink.size(), 0) <= 0) return true;
    }
    return false;
}

}  // namespace

TEST(TcpWireHardening, APeerThatReadsNoAnswersIsHeldBackThenDroppedAndStallsNoOne) {
    const uint16_t port = coyote_test::free_port();
    ASSERT_NE(port, 0);
    Child server([&] { return serve(port, "5000"); }, 90);
    const pid_t spid = server.pid();
    Child client([&] {
        int s = -1;
        size_t took = 0, unread = 0, read_by_target = 0;
        // Without back-pressure the target reads every request and queues every answer (up to 64 MiB of
        // requests, a million answers, until the I/O timeout drops the peer); with it, the target stops reading
        // once 1024 answers wait, and what the peer sends more stays in the target's socket buffer.
        constexpr size_t limit = 64u << 20;
        const int rc = write_batch(port, spid, true, 1500ms, [&](const sim::Endpoint& ep) {
            const auto [fd, accepted] = hello(ep, ep.key);
            check(accepted, "HELLO_ACK");
            s = fd;
            took = flood_without_reading(s, limit);
            unread = unread_at_target(s);
            read_by_target = took - std::min(took, unread);
        });
        std::fprintf(stderr, "the peer that reads nothing sent %zu bytes of requests: %zu unread, %zu read\n", took,
                     unread, read_by_target);
        if (rc != 0) return rc;
        // What the target read: the queued answers' requests and those whose NAKs fill the socket buffers on the
        // way back (up to net.ipv4.tcp_wmem's 4 MiB, at least 64 bytes each).
        check(read_by_target < (16u << 20), "the target kept reading requests of a peer that reads no answers");
        check(closed_within(s, 20s), "the target did not drop the peer that reads no answers");
        return 0;
    }, 120);
    EXPECT_EQ(client.wait(), 0) << "exit 10: the established peer's WRITEs stalled; other codes: a check failed";
    EXPECT_EQ(server.wait(), 0);
}

TEST(TcpWireHardening, ConnectionsBeyondTheCapAreRefusedUntilOneCloses) {
    const uint16_t port = coyote_test::free_port();
    ASSERT_NE(port, 0);
    Child server([&] {
        ::setenv("COYOTE_SIM_WIRE_MAX_CONNS", "2", 1);
        return serve(port);
    }, 90);
    const pid_t spid = server.pid();
    Child client([&] {
        // The established peer opens its own connection at its first WRITE, after this.
        return write_batch(port, spid, true, 1500ms, [&](const sim::Endpoint& ep) {
            const auto [first, ok1] = hello(ep, ep.key);
            const auto [second, ok2] = hello(ep, ep.key);
            check(ok1 && ok2, "a connection within the cap of 2 was refused");
            const auto [third, ok3] = hello(ep, ep.key);
            check(!ok3, "a third connection was accepted under a cap of 2");
            ::close(third);
            // The target notices a close on its reader thread, which then shuts its end: waiting for that EOF
            // makes sure no closed connection still counts when the established peer opens its own.
            auto close_seen = [](int fd) {
                ::shutdown(fd, SHUT_WR);
                check(closed_within(fd, 20s), "the target did not see a connection close");
                ::close(fd);
            };
            ::close(first);
            // Room for one again once the target has seen that close (the second is still open).
            bool again = false;
            for (int i = 0; i < 50 && !again; ++i) {
                const auto [fd, ok] = hello(ep, ep.key);
                again = ok;
                if (ok) close_seen(fd);
                else ::close(fd);
                if (!ok) std::this_thread::sleep_for(100ms);
            }
            check(again, "no connection accepted after one of two closed");
            close_seen(second);
        });
    }, 90);
    EXPECT_EQ(client.wait(), 0);
    EXPECT_EQ(server.wait(), 0);
}

/// Thread stacks mapped in <pid>: a thread that ended but was never joined keeps its stack (and guard) mapped. A
/// stack is an anonymous read-write mapping of the default thread stack size right above its inaccessible guard.
/// Only those are counted: the process's other mappings grow with how its threads used memory (ThreadSanitizer
/// maps shadow for every new stack and heap address: 1 - 85 more lines over the 150 connections below, in 22 runs).
size_t thread_stacks_of(pid_t pid) {
    pthread_attr_t attr;
    size_t stack_size = 0;
    if (::pthread_getattr_default_np(&attr) == 0) {
        (void)::pthread_attr_getstacksize(&attr, &stack_size);
        (void)::pthread_attr_destroy(&attr);
    }
    check(stack_size > 0, "no default thread stack size");
    std::ifstream f("/proc/" + std::to_string(pid) + "/maps");
    size_t n = 0;
    bool guard_below = false; // the previous line was an anonymous inaccessible mapping ending at `guard_end`
    uint64_t guard_end = 0;
    for (std::string line; std::getline(f, line);) {
        std::istringstream in(line);
        std::string range, perms, offset, dev, inode, path;
        in >> range >> perms >> offset >> dev >> inode >> path;
        const auto dash = range.find('-');
        const uint64_t lo = std::stoull(range.substr(0, dash), nullptr, 16);
        const uint64_t hi = std::stoull(range.substr(dash + 1), nullptr, 16);
        const bool anon = path.empty();
        if (anon && perms == "rw-p" && guard_below && guard_end == lo && hi - lo == stack_size) ++n;
        guard_below = anon && perms == "---p";
        guard_end = hi;
    }
    return n;
}

TEST(TcpWireHardening, ThreadsOfClosedConnectionsAreReleased) {
    const uint16_t port = coyote_test::free_port();
    ASSERT_NE(port, 0);
    Child server([&] { return serve(port); }, 90);
    const pid_t spid = server.pid();
    Child client([&] {
        return write_batch(port, spid, true, 60s, [&](const sim::Endpoint& ep) {
            // 150 peers come and go, each with a reader and a sender thread at the target: before the fix their
            // stacks stayed mapped until the wire closed (300 more stacks here).
            auto churn = [&](int n) {
                for (int i = 0; i < n; ++i) {
                    const auto [fd, ok] = hello(ep, ep.key);
                    check(ok, "a connection was refused while churning");
                    ::shutdown(fd, SHUT_WR);
                    check(closed_within(fd, 20s), "the target did not see a connection close");
                    ::close(fd);
                }
            };
            churn(10); // the wire's own first-use threads and the stacks glibc caches for reuse
            const size_t before = thread_stacks_of(spid);
            churn(150);
            const size_t after = thread_stacks_of(spid);
            std::fprintf(stderr, "target thread stacks: %zu before, %zu after 150 connections\n", before, after);
            check(before >= 3, "found no thread stacks of the target (its acceptor and this client's connection)");
            check(after < before + 20, "the target keeps the threads of closed connections");
            // The target's counters: every connection it authenticated, and both threads of each one that closed.
            // The wire's own connection to this client (for the batch) is authenticated and still open.
            const auto seg = coyote::detail::ShmSegment::open(sim::segment_prefix(spid) + ".d0v0.nic");
            const sim::NicCounters& n = static_cast<const sim::NicShared*>(seg.get())->counters;
            const auto until = std::chrono::steady_clock::now() + 20s;
            while (n.conn_threads_ended.load() < 2 * 160 && std::chrono::steady_clock::now() < until)
                std::this_thread::sleep_for(1ms);
            const uint64_t adopted = n.conns_adopted.load(), ended = n.conn_threads_ended.load();
            std::fprintf(stderr, "target counters: %llu connections adopted, %llu threads ended\n",
                         static_cast<unsigned long long>(adopted), static_cast<unsigned long long>(ended));
            check(adopted >= 160 && adopted <= 161, "the target counted " + std::to_string(adopted) + " connections");
            check(ended == 2 * 160, "the target counted " + std::to_string(ended) + " ended threads");
        });
    }, 90);
    EXPECT_EQ(client.wait(), 0);
    EXPECT_EQ(server.wait(), 0);
}

TEST(TcpWireHardening, AKeyOpensNoConnectionAfterTheNextExchange) {
    const uint16_t port = coyote_test::free_port();
    ASSERT_NE(port, 0);
    Child server([&] {
        coyote_test::child_env("tcp");
        coyote::cThread t(0, ::getpid());
        (void)t.initRDMA(k_size, port);
        t.connSync(false);
        (void)t.initRDMA(k_size, port); // a second exchange on the same queue pair: a new key
        t.connSync(false);
        t.connSync(false);
        return 0;
    }, 60);
    Child client([&] {
        coyote_test::child_env("tcp");
        coyote::cThread t(0, ::getpid());
        std::vector<std::byte> first, second;
        (void)t.initRDMA(k_size, std::make_unique<Recording>(coyote::make_tcp_oob(port, "127.0.0.1"), first));
        t.connSync(true);
        (void)t.initRDMA(k_size, std::make_unique<Recording>(coyote::make_tcp_oob(port, "127.0.0.1"), second));
        t.connSync(true);
        const sim::Endpoint a = endpoint_of(first), b = endpoint_of(second);
        check(a.key != b.key, "the second exchange carried a new key");
        // The first key is refused: the connection closes without HELLO_ACK; the second is accepted.
        for (const auto& [key, accepted] : {std::pair{a.key, false}, std::pair{b.key, true}}) {
            const auto [s, got] = hello(b, key);
            check(got == accepted, accepted ? "the current key was refused" : "the withdrawn key was accepted");
            ::close(s);
        }
        t.connSync(true);
        return 0;
    }, 60);
    EXPECT_EQ(client.wait(), 0);
    EXPECT_EQ(server.wait(), 0);
}

TEST(TcpWireHardening, HelloParserRefusesWhatIsNotAHello) {
    const auto good = net::encode_hello(net::HelloKeys{1, 2});
    net::HelloKeys k;
    std::string err;
    ASSERT_TRUE(net::decode_hello(good, k, err)) << err;
    EXPECT_EQ(k.target, 1u);
    EXPECT_EQ(k.sender, 2u);
    EXPECT_FALSE(net::decode_hello(std::span(good).first(40), k, err));
    EXPECT_NE(err.find("40 bytes"), std::string::npos) << err;
    auto bad = good;
    bad[0] = std::byte{0};
    err.clear();
    EXPECT_FALSE(net::decode_hello(bad, k, err));
    EXPECT_FALSE(err.empty());
}

TEST(TcpWireListener, OpensOnlyForAPeerThatNeedsItAndOnLoopback) {
    const uint16_t port = coyote_test::free_port();
    ASSERT_NE(port, 0);
    auto run = [&](const char* wire, bool expect_listener) {
        Child server([&] {
            coyote_test::child_env(wire);
            ::unsetenv("COYOTE_SIM_WIRE_ADDR");
            coyote::cThread t(0, ::getpid());
            (void)t.initRDMA(k_size, port);
            t.connSync(false);
            const auto l = coyote_test::tcp_sockets(::getpid(), "0A");
            check(l.size() == (expect_listener ? 1u : 0u),
                  std::string(wire) + ": " + std::to_string(l.size()) + " listening sockets after wiring");
            // 0100007F: 127.0.0.1 as /proc/net/tcp prints it.
            for (const auto& a : l) check(a.addr == "0100007F", "the wire listens on " + a.addr);
            t.connSync(false);
            return 0;
        }, 60);
        Child client([&] {
            coyote_test::child_env(wire);
            ::unsetenv("COYOTE_SIM_WIRE_ADDR");
            coyote::cThread t(0, ::getpid());
            (void)t.initRDMA(k_size, port, "127.0.0.1");
            t.connSync(true);
            t.connSync(true);
            return 0;
        }, 60);
        EXPECT_EQ(client.wait(), 0) << wire;
        EXPECT_EQ(server.wait(), 0) << wire;
    };
    run("auto", false); // both on this host: the shm wire, no listener
    run("tcp", true);   // every peer uses TCP: one listener, on loopback
}

namespace {

/// Shuts down (both ways) every established TCP connection of this process whose local port is `port`.
size_t cut_connections(uint16_t port) {
    std::set<std::string> victims;
    for (const auto& r : coyote_test::tcp_sockets(::getpid(), "01"))
        if (r.port == port) victims.insert(r.inode);
    size_t cut = 0;
    for (const auto& [inode, fd] : coyote_test::socket_fds(::getpid()))
        if (victims.count(inode) != 0 && ::shutdown(fd, SHUT_RDWR) == 0) ++cut;
    return cut;
}

}  // namespace

TEST(TcpWireFaults, ConnectionCutMidStreamFailsTheInitiatorAndLeavesMemoryOutsideTheTargetAlone) {
    const uint16_t port = coyote_test::free_port();
    ASSERT_NE(port, 0);
    constexpr uint32_t mib = 1u << 20, size = 4 * mib, n = 512;
    Child server([&] {
        coyote_test::child_env("tcp");
        coyote::cThread t(0, ::getpid());
        auto* buf = static_cast<uint8_t*>(t.initRDMA(size, port));
        coyote_test::fill(buf, size, 3);
        t.connSync(false);
        // Once the stream runs, cut its connection (the wire's port is the one listening socket).
        const auto deadline = std::chrono::steady_clock::now() + 30s;
        while (t.checkCompleted(CoyoteOper::LOCAL_WRITE) < 2 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(100us);
        const auto l = coyote_test::tcp_sockets(::getpid(), "0A");
        check(l.size() == 1, "one listening wire");
        check(cut_connections(l[0].port) >= 1, "a wire connection was cut");
        const uint32_t arrived = t.checkCompleted(CoyoteOper::LOCAL_WRITE);
        check(arrived < n, "the cut came before the end of the stream");
        // The WRITEs target [1 MiB, 2 MiB): the rest of the buffer keeps its pattern whatever arrived.
        check(coyote_test::mismatch(buf, 0, mib, 3) == -1, "memory before the target range changed");
        check(coyote_test::mismatch(buf, 2 * mib, size, 3) == -1, "memory after the target range changed");
        std::fprintf(stderr, "cut after %u of %u WRITEs\n", arrived, n);
        t.connSync(false);
        return 0;
    }, 90);
    Child client([&] {
        coyote_test::child_env("tcp");
        coyote::cThread t(0, ::getpid());
        auto* buf = static_cast<uint8_t*>(t.initRDMA(size, port, "127.0.0.1"));
        coyote_test::fill(buf, size, 9);
        t.connSync(true);
        std::optional<coyote::Error> err;
        try {
            for (uint32_t i = 0; i < n; ++i)
                t.invoke(CoyoteOper::REMOTE_RDMA_WRITE, rdmaSg{.local_offs = 0, .remote_offs = mib, .len = mib});
            err = coyote_test::wait_error(t);
        } catch (const coyote::Error& e) {
            err = e;
        }
        check(err.has_value(), "an error at the initiator");
        std::fprintf(stderr, "initiator: %s\n", err->what());
        check(err->code() == coyote::make_error_code(coyote::Errc::peer_gone), "the error is peer_gone");
        check(std::string(err->what()).find("lost") != std::string::npos, "the error says the connection was lost");
        t.connSync(true);
        return 0;
    }, 90);
    EXPECT_EQ(client.wait(), 0);
    EXPECT_EQ(server.wait(), 0);
}
