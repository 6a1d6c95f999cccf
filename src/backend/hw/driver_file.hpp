// An open Coyote device file (vFPGA or reconfiguration): the fd, ioctls and mmaps whose failures become
// coyote::Errors naming the file, the call, errno and the likely cause.
#pragma once

#include <string>

#include "backend/hw/driver_abi.hpp"
#include "detail/handles.hpp"

namespace coyote::detail::hw {

class DriverFile {
public:
    DriverFile() = default;
    /// Opens `path` read/write; throws an Error naming the file, errno and the likely cause (driver not loaded,
    /// permission denied).
    explicit DriverFile(std::string path);

    const std::string& path() const noexcept { return path_; }
    int fd() const noexcept { return fd_.get(); }

    /// Issues `request` with `args`; throws on failure. `cause` completes the message (e.g. "all 64 ctids taken").
    void call(unsigned long request, abi::Args& args, const std::string& cause = {}) const;
    /// Issues `request`; returns errno on failure (0 on success, EPROTO for a positive driver return).
    int try_call(unsigned long request, abi::Args& args) const noexcept;
    /// Maps `region` of `size` bytes; throws naming the region.
    Mapping map(abi::Region region, uint64_t size, const char* name) const;

    /// Throws the Error of a failed call: `err` is the errno (EPROTO for a positive driver return).
    [[noreturn]] void fail(unsigned long request, int err, const std::string& cause) const;

private:
    std::string path_;
    Fd fd_;
};

}  // namespace coyote::detail::hw
