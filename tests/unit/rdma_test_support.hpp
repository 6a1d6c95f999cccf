// Test support for the RDMA and out-of-band tests: forked children with a deadline (support/child.hpp), free
// ports, the environment of a child, byte patterns, checks that throw, bounded waits for completions and errors,
// the server/client pair most RDMA tests run (run_pair), and the threads of this process by name.
#pragma once

#include <coyote/cThread.hpp>
#include <coyote/error.hpp>

#include <gtest/gtest.h>

#include "support/child.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace coyote_test {

/// A TCP port that was free a moment ago (bound to port 0, then released).
inline uint16_t free_port() {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = 0;
    socklen_t len = sizeof(a);
    if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        if (s >= 0) ::close(s);
        return 0;
    }
    ::close(s);
    return ntohs(a.sin_port);
}

/// The environment of a child process: the sim backend on `wire` ("shm" or "tcp") with long OOB and post
/// timeouts (the machine may be loaded).
inline void child_env(const char* wire) {
    ::setenv("COYOTE_BACKEND", "sim", 1);
    ::setenv("COYOTE_SIM_WIRE", wire, 1);
    ::setenv("COYOTE_OOB_CONNECT_TIMEOUT_MS", "20000", 1);
    ::setenv("COYOTE_OOB_ACCEPT_TIMEOUT_MS", "20000", 1);
    ::setenv("COYOTE_OOB_IO_TIMEOUT_MS", "30000", 1);
    ::setenv("COYOTE_POST_TIMEOUT_MS", "30000", 1);
}

/// Throws (failing the child) unless `ok`.
inline void check(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error("check failed: " + what);
}

/// Byte i of test pattern `seed`.
inline uint8_t pat(uint64_t i, unsigned seed) { return static_cast<uint8_t>((i * 131 + seed * 17 + (i >> 8)) & 0xFF); }

/// Fills `n` bytes with pattern `seed`, starting at pattern index `shift`.
inline void fill(void* p, uint64_t n, unsigned seed, uint64_t shift = 0) {
    auto* b = static_cast<uint8_t*>(p);
    for (uint64_t i = 0; i < n; ++i) b[i] = pat(i + shift, seed);
}

/// First offset in [from, to) where `p` differs from pattern `seed` (at pattern index i + shift), or -1.
inline int64_t mismatch(const void* p, uint64_t from, uint64_t to, unsigned seed, int64_t shift = 0) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (uint64_t i = from; i < to; ++i)
        if (b[i] != pat(static_cast<uint64_t>(static_cast<int64_t>(i) + shift), seed)) return static_cast<int64_t>(i);
    return -1;
}

/// Waits (at most 30 s) until `t` has completed `n` operations of the class of `op`; checks that it is exactly n.
inline void wait_count(coyote::cThread& t, coyote::CoyoteOper op, uint32_t n, const std::string& what) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    uint32_t got = 0;
    while ((got = t.checkCompleted(op)) < n) {
        if (std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error("timed out waiting for " + what + ": " + std::to_string(got) + " of " +
                                     std::to_string(n));
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    check(got == n, what + ": counted " + std::to_string(got) + ", expected exactly " + std::to_string(n));
}

/// Polls checkCompleted until the pending (asynchronous) error surfaces; returns it.
inline coyote::Error wait_error(coyote::cThread& t) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
        try {
            (void)t.checkCompleted(coyote::CoyoteOper::REMOTE_RDMA_WRITE);
        } catch (const coyote::Error& e) {
            return e;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    throw std::runtime_error("no error surfaced within 30 s");
}

/// One process of a two-process RDMA test: its cThread, its initRDMA buffer and which side it is.
struct Peer {
    coyote::cThread& t;
    uint8_t* buf;
    bool client;
    /// connSync as this side (the client sends first).
    void sync() { t.connSync(client); }
};

/// Forks a server and a client. Each calls `env`, opens a cThread on vFPGA 0, connects an initRDMA buffer of
/// `size` bytes over a free port (the client to 127.0.0.1) and runs its body, which throws to fail. Expects both
/// children to exit 0 within `timeout_s`.
inline void run_pair(const std::function<void()>& env, uint64_t size, const std::function<void(Peer&)>& server,
                     const std::function<void(Peer&)>& client, unsigned timeout_s = 60) {
    const uint16_t port = free_port();
    auto side = [&](const std::function<void(Peer&)>& body, bool is_client) {
        return [&, is_client] {
            env();
            coyote::cThread t(0, ::getpid());
            Peer p{t, static_cast<uint8_t*>(t.initRDMA(size, port, is_client ? "127.0.0.1" : nullptr)), is_client};
            body(p);
            return 0;
        };
    };
    Child s(side(server, false), timeout_s);
    Child c(side(client, true), timeout_s);
    const auto limit = std::chrono::seconds(timeout_s + 30);
    EXPECT_EQ(s.wait(limit), 0) << "server";
    EXPECT_EQ(c.wait(limit), 0) << "client";
}

/// A run_pair whose client READs 4 KiB once (opening its wire connection, and the target's reader and sender
/// threads for it); then both sides call `inspect`, which throws to fail.
inline void after_first_read(const std::function<void()>& env, const std::function<void()>& inspect) {
    run_pair(
        env, 1 << 16,
        [&](Peer& p) {
            p.sync(); // both QP contexts are written
            p.sync(); // the client's READ completed
            inspect();
            p.sync();
        },
        [&](Peer& p) {
            p.sync();
            p.t.invoke(coyote::CoyoteOper::REMOTE_RDMA_READ,
                       coyote::rdmaSg{.local_offs = 0, .remote_offs = 0, .len = 4096});
            wait_count(p.t, coyote::CoyoteOper::REMOTE_RDMA_READ, 1, "first READ");
            p.sync();
            inspect();
            p.sync();
        });
}

/// The threads of this process named `name` (their comm).
inline std::vector<pid_t> threads_named(const std::string& name) {
    std::vector<pid_t> out;
    DIR* d = ::opendir("/proc/self/task");
    check(d != nullptr, "open /proc/self/task");
    while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        std::ifstream f(std::string("/proc/self/task/") + e->d_name + "/comm");
        std::string comm;
        if (std::getline(f, comm) && comm == name) out.push_back(static_cast<pid_t>(std::stol(e->d_name)));
    }
    ::closedir(d);
    return out;
}

}  // namespace coyote_test
