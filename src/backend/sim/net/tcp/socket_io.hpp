// coyote-mpi sim backend: TCP socket helpers of the RDMA wire (deadline I/O, addresses to listen on).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include <sys/types.h>

namespace coyote::detail::sim::net {

using Clock = std::chrono::steady_clock;

/// Milliseconds left until `deadline` for poll(): 0 when past, capped at 1000 s.
int remaining_ms(Clock::time_point deadline);

/// Full-length write with a deadline; returns an error text, empty on success.
std::string write_full(int fd, const void* data, size_t len, Clock::time_point deadline);

/// Writes `head` followed by `len` bytes at `payload` (one sendmsg, no copy), resuming at byte `done` of the two
/// and advancing it. With `wait`, until all is written or `deadline` passes; without, only what the socket takes
/// now (never blocks). Returns an error text, empty on success (then `done` tells how far it got).
std::string write_parts(int fd, std::span<const std::byte> head, const void* payload, size_t len, size_t& done,
                        Clock::time_point deadline, bool wait);

/// Full-length read with a deadline; returns an error text, empty on success. With `fault_at`, a destination
/// that is not writable process memory (EFAULT) stops the read: *fault_at = bytes received, the rest stays in the
/// socket, and the result is empty.
std::string read_full(int fd, void* data, size_t len, Clock::time_point deadline, size_t* fault_at = nullptr);

/// Bytes the socket holds for reading now (FIONREAD); 0 on error.
size_t readable_now(int fd) noexcept;

/// Copies up to `len` bytes the socket holds into `data` without taking them (MSG_PEEK); the count (0 at end of
/// stream) or -1 with errno set (EAGAIN: nothing yet). The socket reports an error once: it is kept in `*failure`.
ssize_t peek_now(int fd, void* data, size_t len, std::atomic<int>* failure = nullptr) noexcept;

/// strerror(err), with what a timed-out connection means on the wire.
std::string socket_error_text(int err);

/// Reads and discards `len` bytes.
std::string drain(int fd, uint64_t len, Clock::time_point deadline);

/// Options of every TCP wire connection: no Nagle delay, and a peer host that stops answering (link down, host
/// gone) fails the connection after `no_answer`: TCP_USER_TIMEOUT bounds data the peer does not acknowledge, and
/// keepalive probes (after at most 10 s idle, 1 s apart) find it while nothing is sent. A peer process that is only
/// stopped keeps answering (its kernel acknowledges). The congestion control `congestion` (one the listener took:
/// tcp/congestion.hpp) is set too.
void set_wire_socket_options(int fd, std::chrono::milliseconds no_answer, const std::string& congestion) noexcept;

/// An address peers can reach when the listener is bound to 0.0.0.0.
uint32_t first_non_loopback();

}  // namespace coyote::detail::sim::net
