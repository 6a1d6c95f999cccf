// coyote-mpi benchmarks: a TCP port nobody listens on, for benchmarks that start a server of their own.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>

#include <coyote/error.hpp>

#include "detail/handles.hpp"

namespace coyote::bench {

/// A port the kernel gave this host's wildcard address just now (bound and released again), so that concurrent
/// runs do not meet on one; throws coyote::Error when no socket can be bound.
inline uint16_t free_tcp_port() {
    coyote::detail::Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    socklen_t len = sizeof(a);
    if (!s || ::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
        coyote::throw_errno("bind", "choosing a free TCP port for the benchmark's server");
    return ntohs(a.sin_port);
}

}  // namespace coyote::bench
