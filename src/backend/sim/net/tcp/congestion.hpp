// coyote-mpi sim backend: the TCP congestion control of the TCP wire's connections (COYOTE_SIM_WIRE_CONGESTION).
#pragma once

#include <optional>
#include <string>

namespace coyote::detail::sim::net {

/// The congestion control `setting` asks for, set on the TCP socket `fd`; returns the name of the algorithm the
/// socket uses then. `setting` is "auto" (cubic, else reno: window-based algorithms, which send what the window
/// allows at once; when the kernel allows neither, the system's default), "system" (the system's default,
/// net.ipv4.tcp_congestion_control, left as it is) or an algorithm's name. Throws a coyote::Error naming
/// COYOTE_SIM_WIRE_CONGESTION when the named algorithm is unknown to the kernel or not allowed to this process.
std::string apply_congestion(int fd, const std::string& setting);

/// The congestion control the TCP wire's connections of this process use under the current settings (tried on a
/// scratch socket); throws as apply_congestion().
std::string wire_congestion();

/// For the setting's check: what is wrong with `value` on this host, nullopt when a socket can use it.
std::optional<std::string> congestion_problem(const std::string& value);

}  // namespace coyote::detail::sim::net
