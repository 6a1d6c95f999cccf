// coyote-mpi: the one exception type of the runtime.
#pragma once

#include <cerrno>
#include <string>
#include <system_error>

namespace coyote {

/// Error categories beside errno: runtime semantics and MPI.
enum class Errc {
    invalid_argument = 1, ///< bad size, offset, id or key
    not_supported,        ///< feature disabled in the shell or absent on this backend
    resource_exhausted,   ///< e.g. all 64 ctids taken
    not_mapped,           ///< address not mapped / not in the process
    remote_rejected,      ///< the target of an RDMA request rejected it
    peer_gone,            ///< the peer process or connection is gone
    timeout,              ///< a deadline passed
    protocol,             ///< malformed wire message
    no_device,            ///< no such (device, vFPGA)
    mpi                   ///< an MPI call failed
};

/// Category for coyote::Errc.
const std::error_category& coyote_category() noexcept;

inline std::error_code make_error_code(Errc e) noexcept { return {static_cast<int>(e), coyote_category()}; }

/// Runtime error: the failing call, a native code (errno or Errc) and context.
class Error : public std::system_error {
public:
    /// `call` names the failing operation, `context` says what it was doing.
    Error(std::error_code code, std::string call, std::string context);

    const std::string& call() const noexcept { return call_; }
    const std::string& context() const noexcept { return context_; }

private:
    std::string call_;
    std::string context_;
};

/// Throws Error with the current errno.
[[noreturn]] void throw_errno(const std::string& call, const std::string& context);
/// Throws Error with `e`.
[[noreturn]] void throw_error(Errc e, const std::string& call, const std::string& context);

}  // namespace coyote

template <>
struct std::is_error_code_enum<coyote::Errc> : std::true_type {};
