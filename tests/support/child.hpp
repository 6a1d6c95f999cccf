// Test support: a forked child with a deadline (it alarms itself; the parent's wait kills it when late).
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <thread>

namespace coyote_test {

#if defined(__SANITIZE_THREAD__)
inline constexpr bool k_thread_sanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool k_thread_sanitizer = true;
#else
inline constexpr bool k_thread_sanitizer = false;
#endif
#else
inline constexpr bool k_thread_sanitizer = false;
#endif

/// Why a test whose forked child starts threads while its parent's run is skipped under ThreadSanitizer: glibc
/// gives the child's new threads the stacks (and so the ids) of the parent's threads the fork left behind, which
/// ThreadSanitizer still has registered ("dup thread with used id"), and it stops the child.
inline constexpr const char* k_fork_threads_under_tsan =
    "ThreadSanitizer stops a forked child that starts threads while its parent's threads run (their ids are reused)";

/// Waits up to `max` for child process `pid`; its exit code, 128 + signal when a signal ended it, or -1 when it did
/// not end in time (it is then killed and reaped) or cannot be waited for.
inline int wait_exit(pid_t pid, std::chrono::milliseconds max) {
    const auto deadline = std::chrono::steady_clock::now() + max;
    for (;;) {
        int st = 0;
        const pid_t r = ::waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0) return -1;
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &st, 0);
            return -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

/// A forked child running `body`; its exit code is 0 on success. The child kills itself with SIGALRM
/// after `timeout_s`; the destructor kills and reaps a child that is still running.
class Child {
public:
    Child(std::function<int()> body, unsigned timeout_s = 60) {
        std::fflush(nullptr);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::alarm(timeout_s);
            int rc = 99;
            try {
                rc = body();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "child %d: exception: %s\n", static_cast<int>(::getpid()), e.what());
                rc = 98;
            } catch (...) {
                rc = 97;
            }
            std::fflush(nullptr);
            ::_exit(rc);
        }
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child() {
        if (pid_ > 0 && !reaped_) {
            ::kill(pid_, SIGKILL);
            int st = 0;
            ::waitpid(pid_, &st, 0);
        }
    }

    pid_t pid() const { return pid_; }

    /// Waits up to `timeout` for the child; returns its exit code, 128+signal if killed, -1 on timeout
    /// (the child is then killed).
    int wait(std::chrono::milliseconds timeout = std::chrono::seconds(90)) {
        if (reaped_) return status_;
        status_ = wait_exit(pid_, timeout);
        reaped_ = true;
        return status_;
    }

    /// Kills the child with `sig` and reaps it.
    void kill(int sig = SIGKILL) {
        if (reaped_) return;
        ::kill(pid_, sig);
        (void)wait();
    }

private:
    pid_t pid_ = -1;
    bool reaped_ = false;
    int status_ = -1;
};

}  // namespace coyote_test
