// Test support: this test binary re-run on one of its DISABLED_ helper tests, as a process of its own (fork and
// exec: unlike a forked copy of a threaded test process, it may start threads under ThreadSanitizer).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "support/child.hpp" // wait_exit

namespace coyote_test {

/// Starts this binary on test `test` ("Suite.DISABLED_Name"), stdin from `in_fd` and stdout and stderr to `out_fd`
/// (-1: /dev/null for both); returns the child's pid (-1 when fork failed).
inline pid_t spawn_helper(const std::string& test, int in_fd = -1, int out_fd = -1) {
    const std::string filter = "--gtest_filter=" + test;
    const char* argv[] = {"helper", filter.c_str(), "--gtest_also_run_disabled_tests", nullptr};
    const pid_t child = ::fork();
    if (child == 0) { // async-signal-safe calls only until exec
        const int in = in_fd >= 0 ? in_fd : ::open("/dev/null", O_RDONLY);
        const int out = out_fd >= 0 ? out_fd : ::open("/dev/null", O_WRONLY);
        ::dup2(in, STDIN_FILENO);
        ::dup2(out, STDOUT_FILENO);
        ::dup2(out, STDERR_FILENO);
        ::execv("/proc/self/exe", const_cast<char* const*>(argv));
        ::_exit(127);
    }
    return child;
}

/// What `fd` yields until the text holds `until` (empty: until the end of the stream), the stream ends, or `max`
/// passes.
inline std::string read_output(int fd, const std::string& until, std::chrono::milliseconds max) {
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + max;
    while ((until.empty() || got.find(until) == std::string::npos) && std::chrono::steady_clock::now() < deadline) {
        pollfd pf{fd, POLLIN, 0};
        if (::poll(&pf, 1, 100) <= 0) continue;
        char buf[4096];
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
    }
    return got;
}

}  // namespace coyote_test
