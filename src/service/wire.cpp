// coyote-mpi: socket reads and writes with deadlines for the service wire.
#include "service/wire.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace coyote::detail::service {

namespace {

/// Polls `fd` for `events` until `deadline`; false on timeout.
bool wait_for(int fd, short events, Clock::time_point deadline) {
    while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return false;
        pollfd p{fd, events, 0};
        const int rc = ::poll(&p, 1, static_cast<int>(left > 1000 ? 1000 : left));
        if (rc > 0) return true;
        if (rc < 0 && errno != EINTR) return true; // let the following call report the error
    }
}

}  // namespace

Io read_full(int fd, void* buf, size_t len, Clock::time_point deadline) {
    auto* p = static_cast<char*>(buf);
    while (len > 0) {
        const ssize_t n = ::recv(fd, p, len, MSG_DONTWAIT); // bytes already there cost no poll
        if (n == 0) return Io::eof;
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!wait_for(fd, POLLIN, deadline)) return Io::timeout;
                continue;
            }
            return errno == ECONNRESET ? Io::eof : Io::error;
        }
        p += n;
        len -= static_cast<size_t>(n);
    }
    return Io::ok;
}

Io write_full(int fd, const void* buf, size_t len, Clock::time_point deadline) {
    const auto* p = static_cast<const char*>(buf);
    while (len > 0) {
        const ssize_t n = ::send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!wait_for(fd, POLLOUT, deadline)) return Io::timeout;
                continue;
            }
            return errno == EPIPE || errno == ECONNRESET ? Io::eof : Io::error;
        }
        p += n;
        len -= static_cast<size_t>(n);
    }
    return Io::ok;
}

bool wait_readable(int fd, std::chrono::milliseconds max) {
    pollfd p{fd, POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(max.count()));
    return rc != 0;
}

void drain_available(int fd) {
    char sink[4096];
    wait_readable(fd, std::chrono::milliseconds(2));
    while (::recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0) {
    }
}

Io Inbox::read(int fd, void* buf, size_t len, Clock::time_point deadline) {
    auto* out = static_cast<char*>(buf);
    while (len > 0) {
        if (head_ < tail_) {
            const size_t n = std::min(len, tail_ - head_);
            std::memcpy(out, buf_.data() + head_, n);
            head_ += n;
            out += n;
            len -= n;
            if (head_ == tail_) head_ = tail_ = 0;
            continue;
        }
        if (len >= buf_.size()) return read_full(fd, out, len, deadline); // large: straight into place
        const ssize_t n = ::recv(fd, buf_.data(), buf_.size(), MSG_DONTWAIT);
        if (n > 0) {
            tail_ = static_cast<size_t>(n);
            continue;
        }
        if (n == 0) return Io::eof;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return errno == ECONNRESET ? Io::eof : Io::error;
        if (!wait_for(fd, POLLIN, deadline)) return Io::timeout;
    }
    return Io::ok;
}

void Inbox::drain(int fd) {
    head_ = tail_ = 0;
    drain_available(fd);
}

std::string io_text(Io io) {
    switch (io) {
    case Io::ok: return "ok";
    case Io::eof: return "end of stream";
    case Io::timeout: return "timed out";
    case Io::error: return std::string("I/O error: ") + std::strerror(errno);
    }
    return "?";
}

}  // namespace coyote::detail::service
