// coyote-mpi sim backend: TCP socket helpers of the RDMA wire (deadline I/O, addresses to listen on).
#include "backend/sim/net/tcp/socket_io.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace coyote::detail::sim::net {

std::string socket_error_text(int err) {
    std::string s = std::strerror(err);
    if (err == ETIMEDOUT)
        s += " (the peer's host acknowledged nothing for COYOTE_SIM_WIRE_TIMEOUT_MS: link down, host gone or "
             "unreachable)";
    return s;
}

int remaining_ms(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return 0;
    return left > 1000000 ? 1000000 : static_cast<int>(left);
}

std::string write_full(int fd, const void* data, size_t len, Clock::time_point deadline) {
    size_t done = 0;
    return write_parts(fd, {}, data, len, done, deadline, true);
}

std::string write_parts(int fd, std::span<const std::byte> head, const void* payload, size_t len, size_t& done,
                        Clock::time_point deadline, bool wait) {
    const size_t total = head.size() + len;
    while (done < total) {
        iovec iov[2];
        int n_iov = 0;
        if (done < head.size())
            iov[n_iov++] = {const_cast<std::byte*>(head.data()) + done, head.size() - done};
        const size_t into = done > head.size() ? done - head.size() : 0;
        if (len > into) iov[n_iov++] = {static_cast<char*>(const_cast<void*>(payload)) + into, len - into};
        msghdr m{};
        m.msg_iov = iov;
        m.msg_iovlen = static_cast<size_t>(n_iov);
        const ssize_t n = ::sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            done += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return "send failed: " + socket_error_text(errno);
        if (!wait) {
            if (n < 0 && errno == EINTR) continue;
            return {};
        }
        pollfd pf{fd, POLLOUT, 0};
        const int r = ::poll(&pf, 1, remaining_ms(deadline));
        if (r == 0) return "send timed out after " + std::to_string(done) + " of " + std::to_string(total) + " bytes";
        if (r < 0 && errno != EINTR) return std::string("poll failed: ") + std::strerror(errno);
    }
    return {};
}

std::string read_full(int fd, void* data, size_t len, Clock::time_point deadline, size_t* fault_at) {
    auto* p = static_cast<char*>(data);
    size_t done = 0;
    while (done < len) {
        const ssize_t n = ::recv(fd, p + done, len - done, MSG_DONTWAIT);
        if (n > 0) {
            done += static_cast<size_t>(n);
            continue;
        }
        if (n == 0)
            return "connection closed by the peer after " + std::to_string(done) + " of " + std::to_string(len) +
                   " bytes";
        if (errno == EFAULT && fault_at != nullptr) {
            *fault_at = done;
            return {};
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return "recv failed: " + socket_error_text(errno);
        pollfd pf{fd, POLLIN, 0};
        const int r = ::poll(&pf, 1, remaining_ms(deadline));
        if (r == 0) return "receive timed out after " + std::to_string(done) + " of " + std::to_string(len) + " bytes";
        if (r < 0 && errno != EINTR) return std::string("poll failed: ") + std::strerror(errno);
    }
    return {};
}

void set_wire_socket_options(int fd, std::chrono::milliseconds no_answer, const std::string& congestion) noexcept {
    const int one = 1;
    const auto ms = std::clamp<int64_t>(no_answer.count(), 1, INT32_MAX);
    const int user_timeout = static_cast<int>(ms);
    const int idle = static_cast<int>(std::clamp<int64_t>(ms / 3000, 1, 10)), interval = 1, probes = 127;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
    (void)::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof(probes));
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, congestion.data(), static_cast<socklen_t>(congestion.size()));
}

size_t readable_now(int fd) noexcept {
    int n = 0;
    return ::ioctl(fd, FIONREAD, &n) == 0 && n > 0 ? static_cast<size_t>(n) : 0;
}

ssize_t peek_now(int fd, void* data, size_t len, std::atomic<int>* failure) noexcept {
    ssize_t n = 0;
    do {
        n = ::recv(fd, data, len, MSG_PEEK | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && failure != nullptr) failure->store(errno);
    return n;
}

std::string drain(int fd, uint64_t len, Clock::time_point deadline) {
    char scratch[16384];
    while (len > 0) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(len, sizeof(scratch)));
        if (auto err = read_full(fd, scratch, n, deadline); !err.empty()) return err;
        len -= n;
    }
    return {};
}

uint32_t first_non_loopback() {
    ifaddrs* ifa = nullptr;
    if (::getifaddrs(&ifa) != 0) return INADDR_LOOPBACK;
    uint32_t pick = INADDR_LOOPBACK;
    for (const ifaddrs* i = ifa; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
        const uint32_t ip = ntohl(reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr);
        if ((ip >> 24) != 127) {
            pick = ip;
            break;
        }
    }
    ::freeifaddrs(ifa);
    return pick;
}

}  // namespace coyote::detail::sim::net
