// coyote-mpi: bFunc, the untyped base of a service function (Coyote v0.2.x compatible).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <coyote/cThread.hpp>

namespace coyote {

/// A function a cService runs for its clients; cFunc<ret, args...> is the typed implementation.
class bFunc {
public:
    virtual ~bFunc() = default;

    /// Runs the function on `coyote_thread` with one byte buffer per argument; returns the return value's bytes.
    /// Throws std::invalid_argument when the buffers do not match the declared argument sizes.
    virtual std::vector<char> run(cThread* coyote_thread, const std::vector<std::vector<char>>& args) = 0;
    /// Function id, unique within a scheduler.
    virtual int32_t getFid() const = 0;
    /// Absolute path of the application bitstream the function needs.
    virtual std::string getBitstreamPath() const = 0;
    /// The bitstream in memory (address, length) once the scheduler has read it.
    virtual std::pair<void*, uint32_t> getBitstreamPointer() const = 0;
    virtual void setBitstreamPointer(std::pair<void*, uint32_t> bitstream_pointer) = 0;
    /// sizeof of each argument, in order.
    virtual std::vector<size_t> getArgumentSizes() const = 0;
    /// sizeof of the return value.
    virtual size_t getReturnSize() const = 0;
};

}  // namespace coyote
