// coyote-mpi: the service's Unix socket: safe creation (owner-only, stale ones replaced) and peer checks.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "detail/handles.hpp"

namespace coyote::detail::service {

/// Listens on `path` with mode 0600. A stale socket of this user at `path` (nobody listening) is replaced;
/// a live one, another user's file, a symlink or any other kind of file is refused (coyote::Error).
Fd listen_unix(const std::string& path, int backlog);

/// Listens on TCP `address`:`port` (address "" or "0.0.0.0": every interface).
Fd listen_tcp(const std::string& address, uint16_t port, int backlog);

/// The shared key of remote clients from `path`: a regular file of this user, not readable by group or others,
/// 1..4096 bytes (a trailing newline is dropped). Throws coyote::Error naming the problem.
std::string read_key_file(const std::string& path);

/// Compares keys in time independent of where they differ.
bool same_key(const std::string& a, const std::string& b) noexcept;

/// Credentials of the peer of a connected Unix socket.
struct Peer {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
};
/// SO_PEERCRED of `fd`; false if unavailable.
bool peer_of(int fd, Peer& out);

}  // namespace coyote::detail::service
