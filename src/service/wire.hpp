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

}  // namespace coyote::detail::service
