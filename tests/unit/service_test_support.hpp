// Helpers of the service tests: the test functions, a service served by run() on a thread, raw client sockets.
#pragma once

#include <coyote/cConn.hpp>
#include <coyote/cFunc.hpp>
#include <coyote/cService.hpp>
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>
#include <vector>

#include "rcnfg/bitstream_file.hpp"
#include "test_support.hpp"

namespace service_test {

namespace rc = coyote::detail::rcnfg;
using coyote_test::error_of;

enum Fid : int32_t { k_add = 10, k_mul = 11, k_throws = 12, k_slow = 13 };
inline std::atomic<int> g_slow_started{0};
// Raw clients write to sockets the service may have closed: an error, not a fatal signal.
inline const bool g_no_sigpipe = [] { return ::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();

inline std::string dir() { return coyote_test::scratch_dir("coyote-service-test"); }

inline std::string app_bitstream(const std::string& name, const std::string& model) {
    return coyote_test::write_scratch_file("coyote-service-test", name,
                                           rc::encode_sim_bitstream({rc::SimBitstream::Kind::app, model, ""}));
}

/// A service on vFPGA `vfid` with the test functions, served by run() on a thread.
class Running {
public:
    /// `more` registers further functions before the service starts.
    explicit Running(const std::string& name, int32_t vfid = 0,
                     const std::function<void(coyote::cService*)>& more = {})
        : vfid_(vfid) {
        svc = coyote::cService::getInstance(name, false, vfid);
        const std::string a = app_bitstream("app_a.bin", "passthrough"), b = app_bitstream("app_b.bin", "vadd");
        svc->addFunction(std::make_unique<coyote::cFunc<int32_t, int32_t, int32_t>>(
            k_add, a, [](coyote::cThread*, int32_t x, int32_t y) { return x + y; }));
        svc->addFunction(std::make_unique<coyote::cFunc<int64_t, int64_t, int64_t>>(
            k_mul, b, [](coyote::cThread*, int64_t x, int64_t y) { return x * y; }));
        svc->addFunction(std::make_unique<coyote::cFunc<int32_t, int32_t>>(
            k_throws, a, [](coyote::cThread*, int32_t) -> int32_t { throw std::runtime_error("boom"); }));
        svc->addFunction(std::make_unique<coyote::cFunc<int32_t, int32_t>>(k_slow, a, [](coyote::cThread*, int32_t ms) {
            ++g_slow_started;
            std::this_thread::sleep_for(std::chrono::milliseconds(ms));
            return ms;
        }));
        if (more) more(svc);
        thread_ = std::thread([this] { svc->run(); });
        EXPECT_TRUE(coyote_test::eventually([&] { return svc->isRunning(); }));
    }
    ~Running() {
        svc->stop();
        thread_.join();
        coyote::cService::releaseInstance(vfid_);
    }
    coyote::cService* svc;

private:
    int32_t vfid_;
    std::thread thread_;
};

/// A raw client socket connected to `path` (for malformed traffic).
inline int raw_connect(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return -1;
    return fd;
}

/// Reads a reply header (2 s at most); {-100, -100} when none came.
inline std::pair<int32_t, int32_t> raw_reply(int fd) {
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int32_t r[2];
    if (::recv(fd, r, sizeof(r), MSG_WAITALL) != sizeof(r)) return {-100, -100};
    return {r[0], r[1]};
}

inline bool closed_by_peer(int fd) {
    char c;
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return ::recv(fd, &c, 1, 0) == 0;
}

/// What a client running as another user got: the reply header, and the value of a successful k_add(20, 22).
struct OtherUserReply {
    int32_t code = -100;
    int32_t tid = -100;
    int32_t value = 0;
};

/// Forks a client that becomes uid/gid 65534 (nobody) with primary group `gid` and supplementary `groups`,
/// registers at `path` and submits k_add(20, 22) as task 7 (needs root). Raw syscalls only in the child: after
/// fork() in a threaded process glibc's setuid() may wait for threads that are gone.
inline OtherUserReply other_user_task(const std::string& path, gid_t gid, const std::vector<gid_t>& groups) {
    int pipefd[2];
    if (::pipe(pipefd) != 0) return {};
    const pid_t child = ::fork();
    if (child == 0) {
        OtherUserReply out;
        if (::syscall(SYS_setgroups, groups.size(), groups.data()) == 0 && ::syscall(SYS_setgid, gid) == 0 &&
            ::syscall(SYS_setuid, 65534) == 0) {
            int fd = raw_connect(path);
            const pid_t me = ::getpid();
            const int32_t req[5] = {1, k_add, 7, 20, 22};
            if (fd >= 0) { // the service may refuse and close before the pid arrives: no SIGPIPE, read anyway
                [[maybe_unused]] ssize_t sent = ::send(fd, &me, sizeof(me), MSG_NOSIGNAL);
                sent = ::send(fd, req, sizeof(req), MSG_NOSIGNAL);
                timeval tv{2, 0};
                ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                int32_t got[3] = {-100, -100, 0};
                const ssize_t n = ::recv(fd, got, sizeof(got), MSG_WAITALL);
                if (n >= 8) out = {got[0], got[1], n == 12 ? got[2] : 0};
            }
        }
        [[maybe_unused]] ssize_t n = ::write(pipefd[1], &out, sizeof(out));
        ::_exit(0);
    }
    ::close(pipefd[1]); // a child that dies early then ends the read
    OtherUserReply reply;
    pollfd p{pipefd[0], POLLIN, 0};
    if (::poll(&p, 1, 10000) == 1 && ::read(pipefd[0], &reply, sizeof(reply)) != static_cast<ssize_t>(sizeof(reply)))
        reply = {};
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    ::close(pipefd[0]);
    return reply;
}

}  // namespace service_test
