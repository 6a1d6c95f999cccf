// The out-of-band server under strangers: it sends nothing before it has checked the client's message, keeps
// accepting after bad or silent clients until its deadline, listens where COYOTE_OOB_BIND_ADDR says.
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>
#include <coyote/error.hpp>
#include <coyote/oob.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "backend/sim/net/wire_format.hpp"
#include "oob/peer_check.hpp"
#include "unit/proc_net.hpp"
#include "unit/rdma_test_support.hpp"

using namespace std::chrono_literals;
using coyote::Errc;
using coyote_test::check;
using coyote_test::Child;

namespace {

/// A raw TCP client of 127.0.0.1:`port`, retried until the server listens (10 s at most).
int dial(uint16_t port) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
        const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        if (::connect(s, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == 0) return s;
        ::close(s);
        if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("the server never listened");
        std::this_thread::sleep_for(20ms);
    }
}

/// Bytes the server sends on `s` within `wait` (until it closes or the time is up).
size_t bytes_received(int s, std::chrono::milliseconds wait) {
    size_t total = 0;
    const auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd pf{s, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&pf, 1, static_cast<int>(left.count())) <= 0) return total;
        char b[512];
        const ssize_t n = ::recv(s, b, sizeof(b), 0);
        if (n <= 0) return total;
        total += static_cast<size_t>(n);
    }
}

/// Options of a server that pairs only with a client whose 8-byte message starts with 'G'.
coyote::TcpOobOptions checked_options(std::chrono::milliseconds accept, std::chrono::milliseconds io) {
    coyote::TcpOobOptions o;
    o.accept_timeout = accept;
    o.io_timeout = io;
    o.client_message_size = 8;
    o.check_client = [](std::span<const std::byte> m) {
        return m[0] == std::byte{'G'} ? std::string() : std::string("does not start with G");
    };
    return o;
}

/// Addresses (hex, as /proc prints them) of this process's listening sockets on `port`.
std::vector<std::string> listening_addresses(uint16_t port) {
    std::vector<std::string> out;
    for (const auto& r : coyote_test::tcp_sockets(::getpid(), "0A"))
        if (r.port == port) out.push_back(r.addr);
    return out;
}

}  // namespace

TEST(OobServer, SendsNothingToABadOrSilentClientAndPairsWithTheNextGoodOne) {
    const uint16_t port = coyote_test::free_port();
    ASSERT_NE(port, 0);
    constexpr size_t message = sizeof(coyote::ibvQ) + coyote::detail::sim::k_endpoint_size;
    Child server([&] {
        coyote_test::child_env("shm");
        coyote::cThread t(0, ::getpid());
        (void)t.initRDMA(4096, port);
        t.connSync(false);
        return 0;
    }, 60);
    // A stranger that connects and says nothing, held open while the others come.
    const int silent = dial(port);
    // A client that sends a message of the right length that is not a queue pair: answered with nothing.
    const int bad = dial(port);
    const std::vector<char> junk(message, 'x');
    ASSERT_EQ(::send(bad, junk.data(), junk.size(), MSG_NOSIGNAL), static_cast<ssize_t>(junk.size()));
    EXPECT_EQ(bytes_received(bad, 3000ms), 0u) << "the server answered a client whose message it should refuse";
    ::close(bad);
    Child good([&] {
        coyote_test::child_env("shm");
        coyote::cThread t(0, ::getpid());
        (void)t.initRDMA(4096, port, "127.0.0.1");
        t.connSync(true);
        return 0;
    }, 60);
    EXPECT_EQ(good.wait(), 0) << "the good client was not served after a bad and a silent one";
    EXPECT_EQ(server.wait(), 0);
    EXPECT_EQ(bytes_received(silent, 100ms), 0u) << "the silent stranger was sent something";
    ::close(silent);
}

TEST(OobServer, RefusedClientsAreNamedWhenNoGoodOneComes) {
    const uint16_t port = coyote_test::free_port();
    const auto o = checked_options(1500ms, 1000ms);
    std::thread bad([&] {
        const int s = dial(port);
        (void)::send(s, "BBBBBBBB", 8, MSG_NOSIGNAL);
        (void)bytes_received(s, 2000ms);
        ::close(s);
    });
    try {
        (void)coyote::make_tcp_oob(port, nullptr, o);
        ADD_FAILURE() << "a refused client was paired";
    } catch (const coyote::Error& e) {
        EXPECT_EQ(static_cast<Errc>(e.code().value()), Errc::timeout);
        const std::string w = e.what();
        EXPECT_NE(w.find("no client connected to port " + std::to_string(port)), std::string::npos) << w;
        EXPECT_NE(w.find("1 client(s) refused"), std::string::npos) << w;
        EXPECT_NE(w.find("does not start with G"), std::string::npos) << w;
    }
    bad.join();
}

TEST(OobServer, CheckedClientMessageIsWhatExchangeReturns) {
    const uint16_t port = coyote_test::free_port();
    const auto o = checked_options(10s, 10s);
    std::thread client([&] {
        auto c = coyote::make_tcp_oob(port, "127.0.0.1", o);
        const std::string mine = "Good0001";
        const auto theirs = c->exchange(std::as_bytes(std::span(mine.data(), mine.size())));
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(theirs.data()), theirs.size()), "Server01");
        c->close();
    });
    auto s = coyote::make_tcp_oob(port, nullptr, o);
    const std::string mine = "Server01";
    const auto theirs = s->exchange(std::as_bytes(std::span(mine.data(), mine.size())));
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(theirs.data()), theirs.size()), "Good0001");
    client.join();
}

TEST(OobServer, ListensOnTheConfiguredAddressOnly) {
    const uint16_t port = coyote_test::free_port();
    coyote::TcpOobOptions o;
    o.accept_timeout = 10s;
    o.io_timeout = 10s;
    o.bind_address = "127.0.0.1";
    std::vector<std::string> seen;
    std::thread client([&] {
        // Read the listener before connecting: the server closes it once it paired.
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while ((seen = listening_addresses(port)).empty() && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(10ms);
        const int s = dial(port);
        ::close(s);
    });
    (void)coyote::make_tcp_oob(port, nullptr, o);
    client.join();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0], "0100007F") << "listening on " << seen[0] << ", not 127.0.0.1";

    ::setenv("COYOTE_OOB_BIND_ADDR", "127.0.0.1", 1);
    EXPECT_EQ(coyote::TcpOobOptions::from_env().bind_address, "127.0.0.1");
    ::unsetenv("COYOTE_OOB_BIND_ADDR");
    o.bind_address = "not-an-address";
    try {
        (void)coyote::make_tcp_oob(port, nullptr, o);
        ADD_FAILURE() << "a malformed bind address was accepted";
    } catch (const coyote::Error& e) {
        EXPECT_NE(std::string(e.what()).find("COYOTE_OOB_BIND_ADDR"), std::string::npos) << e.what();
    }
    o.bind_address = "192.0.2.1"; // TEST-NET-1: no interface here has it
    try {
        (void)coyote::make_tcp_oob(port, nullptr, o);
        ADD_FAILURE() << "bound to an address this host lacks";
    } catch (const coyote::Error& e) {
        EXPECT_NE(std::string(e.what()).find("COYOTE_OOB_BIND_ADDR is not an address of this host"),
                  std::string::npos)
            << e.what();
    }
}

TEST(OobServer, IbvqCheckRefusesWhatNoPeerSends) {
    coyote::ibvQ q{};
    q.ip_addr = 0x0a000001;
    q.qpn = 0x10;
    q.psn = 0x20;
    std::memset(q.gid, 'a', 32);
    std::vector<std::byte> m(sizeof(q));
    std::memcpy(m.data(), &q, sizeof(q));
    EXPECT_EQ(coyote::detail::check_ibvq_bytes(m), "");
    EXPECT_NE(coyote::detail::check_ibvq_bytes(std::span(m).first(10)).find("10 bytes"), std::string::npos);
    auto bad = q;
    bad.qpn = 1u << 24;
    std::memcpy(m.data(), &bad, sizeof(bad));
    EXPECT_NE(coyote::detail::check_ibvq_bytes(m).find("qpn"), std::string::npos);
    bad = q;
    bad.gid[5] = 'z';
    std::memcpy(m.data(), &bad, sizeof(bad));
    EXPECT_NE(coyote::detail::check_ibvq_bytes(m).find("gid"), std::string::npos);
    bad = q;
    bad.ip_addr = 0;
    std::memcpy(m.data(), &bad, sizeof(bad));
    EXPECT_NE(coyote::detail::check_ibvq_bytes(m).find("IP"), std::string::npos);
}

TEST(OobServer, ExchangesAfterTheCheckedOneReadAsUsual) {
    const uint16_t port = coyote_test::free_port();
    const auto o = checked_options(10s, 10s);
    std::thread client([&] {
        auto c = coyote::make_tcp_oob(port, "127.0.0.1", o);
        for (const std::string mine : {"Good0001", "second01"}) (void)c->exchange(std::as_bytes(std::span(mine.data(), 8)));
        c->close();
    });
    auto s = coyote::make_tcp_oob(port, nullptr, o);
    std::vector<std::string> got;
    for (const std::string mine : {"Server01", "Server02"}) {
        const auto theirs = s->exchange(std::as_bytes(std::span(mine.data(), 8)));
        got.emplace_back(reinterpret_cast<const char*>(theirs.data()), theirs.size());
    }
    client.join();
    EXPECT_EQ(got, (std::vector<std::string>{"Good0001", "second01"}));
}
