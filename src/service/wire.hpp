// coyote-mpi: the cConn <-> cService wire (stock Coyote's): socket I/O with deadlines and the message layout.
//
// Client -> service: pid_t once after connecting; then requests of three int32 {opcode, fid, tid}, a submit
// followed by the raw bytes of each argument (sizes as the function declares them). Service -> client: two
// int32 {code, tid}, followed by the return value's bytes when code is 0. A refusal is {code, -1}.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace coyote::detail::service {

using Clock = std::chrono::steady_clock;

/// Request header.
struct Request {
    int32_t opcode = 0;
    int32_t fid = 0;
    int32_t tid = 0;
};
static_assert(sizeof(Request) == 12);

/// Reply header.
struct Reply {
    int32_t code = 0;
    int32_t tid = 0;
};
static_assert(sizeof(Reply) == 8);

/// Outcome of a read or write with a deadline.
enum class Io { ok, eof, timeout, error };

/// Reads exactly `len` bytes before `deadline` (EINTR-safe).
Io read_full(int fd, void* buf, size_t len, Clock::time_point deadline);
/// Writes exactly `len` bytes before `deadline`, without SIGPIPE.
Io write_full(int fd, const void* buf, size_t len, Clock::time_point deadline);
/// Waits up to `max` for `fd` to become readable (or hang up); false on timeout.
bool wait_readable(int fd, std::chrono::milliseconds max);
/// Discards the bytes already queued on `fd` (after a request whose size is unknown).
void drain_available(int fd);
/// "end of stream", "timed out", "I/O error: ...".
std::string io_text(Io io);

/// Buffered reads of one socket: one recv takes whatever has arrived (a header with its arguments or value, or
/// several messages), so a message costs one system call instead of one per field. One reader at a time.
class Inbox {
public:
    /// Reads exactly `len` bytes of `fd` (the buffered ones first) before `deadline`.
    Io read(int fd, void* buf, size_t len, Clock::time_point deadline);
    /// Bytes received but not read yet.
    size_t buffered() const noexcept { return tail_ - head_; }
    /// Discards the buffered bytes and those queued on `fd` (drain_available).
    void drain(int fd);

private:
    std::vector<char> buf_ = std::vector<char>(4096);
    size_t head_ = 0, tail_ = 0;
};

}  // namespace coyote::detail::service
