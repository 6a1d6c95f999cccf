// coyote-mpi sim backend: the TCP congestion control of the TCP wire's connections. The emulated link is a RoCE
// fabric's: a window-based algorithm sends what the window allows at once, where a pacing one (BBR, some
// distributions' default) spaces a large READ response or a burst of WRITEs over its bandwidth estimate, which
// request / response traffic keeps low (over loopback here: 1 MiB READs at half the speed, millisecond stalls).
#include "backend/sim/net/tcp/congestion.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>

#include <coyote/error.hpp>

#include "backend/sim/net/wire_config.hpp"
#include "detail/handles.hpp"
#include "detail/settings.hpp"

namespace coyote::detail::sim::net {

namespace {

constexpr const char* k_var = "COYOTE_SIM_WIRE_CONGESTION";
/// The choices of "auto", in order.
constexpr std::array<const char*, 2> k_window_based = {"cubic", "reno"};

/// Sets `name` on `fd`; the errno of the failure, 0 on success.
int try_set(int fd, const std::string& name) noexcept {
    if (::setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name.data(), static_cast<socklen_t>(name.size())) == 0)
        return 0;
    return errno;
}

/// The algorithm `fd` uses.
std::string in_use(int fd) {
    std::array<char, 32> name{}; // TCP_CA_NAME_MAX is 16
    socklen_t len = name.size() - 1;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name.data(), &len) != 0)
        throw_errno("getsockopt(TCP_CONGESTION)", "sim RDMA wire");
    return std::string(name.data(), ::strnlen(name.data(), len));
}

/// Why the kernel refused `name` (errno `err`).
std::string refusal(const std::string& name, int err) {
    if (err == ENOENT)
        return "the kernel has no congestion control '" + name +
               "' (net.ipv4.tcp_available_congestion_control lists the ones it has)";
    if (err == EPERM)
        return "congestion control '" + name +
               "' is not allowed to this process (net.ipv4.tcp_allowed_congestion_control, or CAP_NET_ADMIN)";
    return "congestion control '" + name + "' cannot be set";
}

}  // namespace

std::string apply_congestion(int fd, const std::string& setting) {
    if (setting == "system") return in_use(fd);
    if (setting == "auto") {
        for (const char* name : k_window_based)
            if (try_set(fd, name) == 0) return name;
        return in_use(fd);
    }
    if (setting.empty() || setting.size() > 15)
        throw_error(Errc::invalid_argument, k_var,
                    "'" + setting + "' is not a congestion control's name (auto, system, or up to 15 characters)");
    if (const int err = try_set(fd, setting); err != 0) {
        errno = err;
        throw_errno("setsockopt(TCP_CONGESTION)", std::string(k_var) + ": " + refusal(setting, err));
    }
    return in_use(fd);
}

std::string wire_congestion() {
    const Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) throw_errno("socket", "sim RDMA wire: trying its congestion control");
    return apply_congestion(s.get(), wire_config_from_env().congestion);
}

std::optional<std::string> congestion_problem(const std::string& value) {
    return settings::problem_of([&] {
        const Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!s) throw_errno("socket", "sim RDMA wire: trying its congestion control");
        (void)apply_congestion(s.get(), value);
    });
}

}  // namespace coyote::detail::sim::net
