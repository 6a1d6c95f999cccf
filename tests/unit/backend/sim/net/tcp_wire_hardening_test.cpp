// The TCP wire under strangers and misbehaving peers: idle unauthenticated connections and half a frame stall
// no established peer, keys are fresh per exchange, the listener opens only when a peer needs it, on loopback.
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>
#include <coyote/error.hpp>
#include <coyote/oob.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "backend/sim/net/tcp/tcp_wire.hpp"
#include "backend/sim/net/wire_format.hpp"
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
int serve(uint16_t port) {
    coyote_test::child_env("tcp");
    ::setenv("COYOTE_SIM_WIRE_TIMEOUT_MS", "20000", 1);
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
