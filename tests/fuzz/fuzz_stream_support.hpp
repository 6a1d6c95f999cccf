// coyote-mpi fuzzing: a client socket that sends one input to a live server and reads what comes back.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace coyote::fuzz {

/// Sends `len` bytes (stops early when the server closed the connection).
inline bool send_all(int fd, const void* data, size_t len) {
    const auto* p = static_cast<const char*>(data);
    while (len > 0) {
        const ssize_t n = ::send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        len -= static_cast<size_t>(n);
    }
    return true;
}

/// Reads exactly `len` bytes within `ms` milliseconds.
inline bool read_exact(int fd, void* data, size_t len, int ms) {
    auto* p = static_cast<char*>(data);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (len > 0) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                                 std::chrono::steady_clock::now());
        pollfd pf{fd, POLLIN, 0};
        if (left.count() <= 0) return false;
        const int r = ::poll(&pf, 1, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR) continue; // libFuzzer's timer (SIGALRM) interrupts calls that wait
        if (r <= 0) return false;
        const ssize_t n = ::recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        len -= static_cast<size_t>(n);
    }
    return true;
}

/// Ends the sending side and reads the server's answers until it closes or stays silent for `quiet_ms`, then
/// closes `fd` with `close_fn`.
inline void finish(int fd, int quiet_ms, void (*close_fn)(int) = [](int f) { ::close(f); }) {
    (void)::shutdown(fd, SHUT_WR);
    char buf[4096];
    for (;;) {
        pollfd pf{fd, POLLIN, 0};
        const int r = ::poll(&pf, 1, quiet_ms); // an EINTR restarts the quiet period: it only gets longer
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
    }
    close_fn(fd);
}

}  // namespace coyote::fuzz
