// coyote-mpi: the service's Unix socket: safe creation (owner-only, stale ones replaced) and peer checks.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "detail/handles.hpp"

namespace coyote::detail::service {

/// No group: the socket is the owner's alone.
inline constexpr gid_t k_no_group = static_cast<gid_t>(-1);

/// Listens on `path` with mode 0600, or 0660 and group `group` when one is given. The socket is bound in a
/// private (0700) directory, given its mode there and renamed into place: it never exists with wider permissions.
/// A stale socket of this user at `path` (nobody listening) is replaced; a live one, another user's file, a
/// symlink or any other kind of file is refused (coyote::Error).
Fd listen_unix(const std::string& path, int backlog, gid_t group = k_no_group);

/// The group named `spec` (a group name or a number); throws coyote::Error when there is none.
gid_t group_id(const std::string& spec);

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
/// Whether the peer of `fd` had `group` as its primary group (`peer`) or a supplementary group (SO_PEERGROUPS)
/// when it connected.
bool peer_in_group(int fd, const Peer& peer, gid_t group);

/// Why this process should not talk to the service listening at `path`, whose process is `peer` (its SO_PEERCRED):
/// a service of this user or of root is trusted; one of another user only as listen_unix makes a group service (the
/// socket his, 0660 at most, of a group of this process), so that another user's socket open to every user (a
/// stand-in at the stock name while the real service is down) gets no task. Empty when it is trusted.
std::string untrusted_service_reason(const std::string& path, const Peer& peer);

}  // namespace coyote::detail::service
