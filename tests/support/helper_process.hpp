// Test support: this test binary re-run on one of its DISABLED_ helper tests, as a process of its own (fork and
// exec: unlike a forked copy of a threaded test process, it may start threads under ThreadSanitizer).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

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

/// Waits up to `max` for `child`; its exit status (128 + signal when killed by one), or -1 (then it is killed)
/// when it did not end in time.
inline int wait_exit(pid_t child, std::chrono::milliseconds max) {
    const auto deadline = std::chrono::steady_clock::now() + max;
    int status = 0;
    while (::waitpid(child, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(child, SIGKILL);
            ::waitpid(child, &status, 0);
            return -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace coyote_test
