// The stock-compatible TCP out-of-band channel: exchange, acks, close, timeouts, early close, reuse.
#include <gtest/gtest.h>

#include <coyote/error.hpp>
#include <coyote/oob.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

#include "unit/rdma_test_support.hpp"

using namespace std::chrono_literals;
using coyote::Errc;
using coyote_test::Child;

namespace {

coyote::TcpOobOptions fast_options() {
    coyote::TcpOobOptions o;
    o.connect_timeout = 10s;
    o.accept_timeout = 10s;
    o.io_timeout = 10s;
    return o;
}

std::vector<std::byte> pattern(size_t n, int seed) {
    std::vector<std::byte> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 7 + static_cast<size_t>(seed)) & 0xFF);
    return v;
}

Errc errc_of(const coyote::Error& e) { return static_cast<Errc>(e.code().value()); }

}  // namespace

TEST(OobTcp, ExchangeAcksAndCloseLikeStockCoyote) {
    const uint16_t port = coyote_test::free_port();
    ASSERT_NE(port, 0);
    Child client([port] {
        auto ch = coyote::make_tcp_oob(port, "127.0.0.1", fast_options());
        if (!ch->is_client()) return 2;
        const auto got = ch->exchange(pattern(100, 1));
        if (got != pattern(100, 2)) return 3;
        ch->send_ack(7);
        if (ch->read_ack() != 8) return 4;
        ch->sync();
        ch->close(); // sends int32 0
        return 0;
    });
    auto srv = coyote::make_tcp_oob(port, nullptr, fast_options());
    EXPECT_FALSE(srv->is_client());
    EXPECT_EQ(srv->exchange(pattern(100, 2)), pattern(100, 1));
    EXPECT_EQ(srv->read_ack(), 7u);
    srv->send_ack(8);
    srv->sync();
    EXPECT_EQ(srv->read_ack(), 0u) << "the stock client announces close() with an int32 0";
    srv->close();
    EXPECT_EQ(client.wait(), 0);
}

TEST(OobTcp, PeerClosedTurnsTrueWhenThePeerEndsEvenBehindUnreadBytes) {
    const uint16_t port = coyote_test::free_port();
    ASSERT_NE(port, 0);
    Child client([port] {
        auto ch = coyote::make_tcp_oob(port, "127.0.0.1", fast_options());
        (void)ch->exchange(pattern(16, 1));
        if (ch->peer_closed()) return 2; // the server is still there
        ch->sync();
        ch->close(); // an int32 0 the server leaves unread, then the end
        return 0;
    });
    auto srv = coyote::make_tcp_oob(port, nullptr, fast_options());
    EXPECT_EQ(srv->exchange(pattern(16, 2)), pattern(16, 1));
    EXPECT_FALSE(srv->peer_closed());
    srv->sync();
    EXPECT_EQ(client.wait(), 0);
    bool closed = false;
    for (int i = 0; i < 200 && !closed; ++i) {
        closed = srv->peer_closed();
        if (!closed) std::this_thread::sleep_for(10ms);
    }
    EXPECT_TRUE(closed) << "the client exited, its close() 4 bytes still unread";
    EXPECT_EQ(srv->read_ack(), 0u) << "what the peer sent before it ended is still readable";
    srv->close();
    EXPECT_FALSE(srv->peer_closed()) << "a closed channel has no peer to ask about";
}

TEST(OobTcp, ServerWithoutClientTimesOut) {
    const uint16_t port = coyote_test::free_port();
    auto o = fast_options();
    o.accept_timeout = 200ms;
    try {
        (void)coyote::make_tcp_oob(port, nullptr, o);
        FAIL() << "expected a timeout";
    } catch (const coyote::Error& e) {
        EXPECT_EQ(errc_of(e), Errc::timeout);
        EXPECT_NE(std::string(e.what()).find("no client connected to port " + std::to_string(port)),
                  std::string::npos)
            << e.what();
    }
}

TEST(OobTcp, ClientWithoutServerTimesOutAfterConnectTimeout) {
    const uint16_t port = coyote_test::free_port();
    auto o = fast_options();
    o.connect_timeout = 300ms;
    try {
        (void)coyote::make_tcp_oob(port, "127.0.0.1", o);
        FAIL() << "expected a timeout";
    } catch (const coyote::Error& e) {
        EXPECT_EQ(errc_of(e), Errc::timeout);
        EXPECT_NE(std::string(e.what()).find("could not connect"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("refused"), std::string::npos) << e.what();
    }
}

TEST(OobTcp, UnresolvableServerIsAnError) {
    try {
        (void)coyote::make_tcp_oob(1, "no-such-host.invalid", fast_options());
        FAIL() << "expected an error";
    } catch (const coyote::Error& e) {
        EXPECT_EQ(errc_of(e), Errc::invalid_argument);
        EXPECT_NE(std::string(e.what()).find("no-such-host.invalid"), std::string::npos) << e.what();
    }
}

TEST(OobTcp, EarlyCloseIsReportedWithByteCount) {
    const uint16_t port = coyote_test::free_port();
    Child client([port] {
        // A raw client that sends 10 of the 64 expected bytes and hangs up.
        const int s = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        for (int i = 0; i < 200; ++i) {
            if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
                const char buf[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
                if (::write(s, buf, sizeof(buf)) != 10) return 2;
                ::close(s);
                return 0;
            }
            std::this_thread::sleep_for(20ms);
        }
        return 3;
    });
    auto srv = coyote::make_tcp_oob(port, nullptr, fast_options());
    try {
        (void)srv->exchange(pattern(64, 0));
        FAIL() << "expected an error";
    } catch (const coyote::Error& e) {
        EXPECT_EQ(errc_of(e), Errc::peer_gone);
        EXPECT_NE(std::string(e.what()).find("closed the out-of-band connection after 10 of 64 bytes"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_EQ(client.wait(), 0);
}

TEST(OobTcp, ReadTimesOutWhenPeerIsSilent) {
    const uint16_t port = coyote_test::free_port();
    Child client([port] {
        auto o = fast_options();
        auto ch = coyote::make_tcp_oob(port, "127.0.0.1", o);
        std::this_thread::sleep_for(2s); // never sends
        return 0;
    });
    auto o = fast_options();
    o.io_timeout = 200ms;
    auto srv = coyote::make_tcp_oob(port, nullptr, o);
    try {
        (void)srv->read_ack();
        FAIL() << "expected a timeout";
    } catch (const coyote::Error& e) {
        EXPECT_EQ(errc_of(e), Errc::timeout);
        EXPECT_NE(std::string(e.what()).find("timed out after 0 of 4 bytes"), std::string::npos) << e.what();
    }
    client.kill();
}

TEST(OobTcp, ClientStartedBeforeServerConnects) {
    const uint16_t port = coyote_test::free_port();
    Child client([port] {
        auto ch = coyote::make_tcp_oob(port, "localhost", fast_options());
        return ch->exchange(pattern(64, 3)) == pattern(64, 4) ? 0 : 2;
    });
    std::this_thread::sleep_for(300ms); // the client is already retrying
    auto srv = coyote::make_tcp_oob(port, nullptr, fast_options());
    EXPECT_EQ(srv->exchange(pattern(64, 4)), pattern(64, 3));
    EXPECT_EQ(client.wait(), 0);
}

TEST(OobTcp, PortIsReusableRightAfterARun) {
    const uint16_t port = coyote_test::free_port();
    for (int round = 0; round < 3; ++round) {
        Child client([port, round] {
            auto ch = coyote::make_tcp_oob(port, "127.0.0.1", fast_options());
            const bool ok = ch->exchange(pattern(32, round)) == pattern(32, round + 10);
            ch->close();
            return ok ? 0 : 2;
        });
        // The server closes first this time, leaving TIME_WAIT on the server's port.
        auto srv = coyote::make_tcp_oob(port, nullptr, fast_options());
        EXPECT_EQ(srv->exchange(pattern(32, round + 10)), pattern(32, round)) << "round " << round;
        srv->close();
        EXPECT_EQ(client.wait(), 0) << "round " << round;
    }
}

TEST(OobTcp, OptionsFromEnvironment) {
    ::setenv("COYOTE_OOB_CONNECT_TIMEOUT_MS", "1234", 1);
    ::setenv("COYOTE_OOB_IO_TIMEOUT_MS", "55", 1);
    auto o = coyote::TcpOobOptions::from_env();
    EXPECT_EQ(o.connect_timeout, 1234ms);
    EXPECT_EQ(o.io_timeout, 55ms);
    EXPECT_EQ(o.accept_timeout, coyote::TcpOobOptions{}.accept_timeout);
    ::setenv("COYOTE_OOB_IO_TIMEOUT_MS", "abc", 1);
    EXPECT_THROW((void)coyote::TcpOobOptions::from_env(), coyote::Error);
    ::unsetenv("COYOTE_OOB_CONNECT_TIMEOUT_MS");
    ::unsetenv("COYOTE_OOB_IO_TIMEOUT_MS");
}
