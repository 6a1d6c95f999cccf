// The TCP wire's congestion control (COYOTE_SIM_WIRE_CONGESTION): auto picks a window-based algorithm, system
// leaves the host's default, a name the kernel refuses is an error naming the variable, and the connections of a
// wire use what the setting chose (the out-of-band socket beside them keeps the host's default).
#include <gtest/gtest.h>

#include <coyote/cThread.hpp>
#include <coyote/error.hpp>

#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "backend/sim/net/tcp/congestion.hpp"
#include "detail/handles.hpp"
#include "unit/rdma_test_support.hpp"

using coyote::detail::Fd;
using coyote::detail::sim::net::apply_congestion;
using coyote::detail::sim::net::congestion_problem;
using coyote_test::check;

namespace {

Fd tcp_socket() {
    Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    EXPECT_TRUE(s) << std::strerror(errno);
    return s;
}

/// The algorithm socket `fd` uses; empty when it is not a TCP socket.
std::string algorithm_of(int fd) {
    std::array<char, 32> name{};
    socklen_t len = name.size() - 1;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name.data(), &len) != 0) return {};
    return std::string(name.data(), ::strnlen(name.data(), len));
}

std::string system_default() {
    std::ifstream f("/proc/sys/net/ipv4/tcp_congestion_control");
    std::string name;
    std::getline(f, name);
    return name;
}

/// A window-based algorithm other than the host's default that this process may use; empty when there is none.
std::string other_than_default() {
    for (const char* name : {"reno", "cubic"})
        if (name != system_default() && !congestion_problem(name)) return name;
    return {};
}

/// Connected TCP sockets of this process using `algorithm`, and those using another one.
std::pair<int, int> connected_sockets(const std::string& algorithm) {
    int same = 0, other = 0;
    DIR* d = ::opendir("/proc/self/fd");
    check(d != nullptr, "open /proc/self/fd");
    while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        const int fd = std::atoi(e->d_name);
        sockaddr_storage peer{};
        socklen_t len = sizeof(peer);
        const std::string a = algorithm_of(fd);
        if (a.empty() || ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) continue;
        (a == algorithm ? same : other) += 1;
    }
    ::closedir(d);
    return {same, other};
}

}  // namespace

TEST(WireCongestion, AutoPicksAWindowBasedAlgorithm) {
    const Fd s = tcp_socket();
    const std::string picked = apply_congestion(s.get(), "auto");
    EXPECT_TRUE(picked == "cubic" || picked == "reno") << picked;
    EXPECT_EQ(algorithm_of(s.get()), picked);
}

TEST(WireCongestion, SystemLeavesTheHostsDefault) {
    const Fd s = tcp_socket();
    EXPECT_EQ(apply_congestion(s.get(), "system"), system_default());
    EXPECT_EQ(algorithm_of(s.get()), system_default());
}

TEST(WireCongestion, ANamedAlgorithmIsSet) {
    const std::string want = other_than_default();
    if (want.empty()) GTEST_SKIP() << "neither reno nor cubic is usable here besides the default";
    const Fd s = tcp_socket();
    EXPECT_EQ(apply_congestion(s.get(), want), want);
    EXPECT_EQ(algorithm_of(s.get()), want);
}

TEST(WireCongestion, ANameTheKernelRefusesIsAnErrorNamingTheVariable) {
    const Fd s = tcp_socket();
    for (const std::string bad : {"nosuchcc", "", "a_name_far_too_long_for_tcp"}) {
        try {
            (void)apply_congestion(s.get(), bad);
            ADD_FAILURE() << "'" << bad << "' was accepted";
        } catch (const coyote::Error& e) {
            EXPECT_NE(std::string(e.what()).find("COYOTE_SIM_WIRE_CONGESTION"), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("'" + bad + "'"), std::string::npos) << e.what();
        }
        ASSERT_TRUE(congestion_problem(bad).has_value()) << bad;
    }
    EXPECT_FALSE(congestion_problem("auto").has_value());
    EXPECT_FALSE(congestion_problem("system").has_value());
}

TEST(WireCongestion, TheWiresConnectionsUseTheChosenAlgorithm) {
    const std::string want = other_than_default();
    if (want.empty()) GTEST_SKIP() << "neither reno nor cubic is usable here besides the default";
    // Once the client's READ opened the wire's connection: it uses `want`, the out-of-band connection of connSync
    // beside it keeps the host's default.
    auto check_sockets = [want] {
        const auto [same, other] = connected_sockets(want);
        check(same >= 1, "no connected socket uses " + want + " (" + std::to_string(other) + " use another)");
        check(other >= 1, "no connected socket kept the host's default (the out-of-band one should)");
    };
    coyote_test::after_first_read(
        [want] {
            coyote_test::child_env("tcp");
            ::setenv("COYOTE_SIM_WIRE_CONGESTION", want.c_str(), 1);
        },
        check_sockets);
}
