// The reconfiguration device of the hw backend (/dev/coyote_fpga_<device>_reconfig): host memory for partial
// bitstreams (2 MiB pages the driver allocates and the process maps), app and shell reconfiguration. For cRcnfg.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "backend/hw/driver_file.hpp"
#include "detail/handles.hpp"

namespace coyote::detail::hw {

class ReconfigDevice;

/// A reconfiguration buffer: mapped driver pages, released (munmap, FREE_HOST_RECONFIG_MEM) on destruction; it must
/// not outlive the ReconfigDevice that allocated it.
class ReconfigBuffer {
public:
    ReconfigBuffer() = default;
    ReconfigBuffer(ReconfigBuffer&& o) noexcept = default;
    ReconfigBuffer& operator=(ReconfigBuffer&& o) noexcept;
    ReconfigBuffer(const ReconfigBuffer&) = delete;
    ReconfigBuffer& operator=(const ReconfigBuffer&) = delete;
    ~ReconfigBuffer() { release(); }

    void* data() const noexcept { return map_.get(); }
    uint64_t size() const noexcept { return map_.size(); }
    uint32_t crid() const noexcept { return crid_; }

private:
    friend class ReconfigDevice;
    void release() noexcept;

    const DriverFile* file_ = nullptr;
    Mapping map_;
    pid_t pid_ = 0;
    uint32_t crid_ = 0;
};

class ReconfigDevice {
public:
    /// Opens /dev/coyote_fpga_<device>_reconfig.
    explicit ReconfigDevice(uint32_t device);

    /// Whether the shell supports partial reconfiguration (IOCTL_PR_CNFG).
    bool pr_enabled() const;
    /// Host memory of at least `bytes` (whole 2 MiB pages) for a bitstream of configuration `crid`.
    ReconfigBuffer alloc(uint64_t bytes, pid_t pid, uint32_t crid) const;
    /// Loads the first `len` bytes of `buf` as the application of vFPGA `vfid` (blocks until done).
    void reconfigure_app(const ReconfigBuffer& buf, uint64_t len, int32_t vfid) const;
    /// Loads the first `len` bytes of `buf` as the shell (blocks until done).
    void reconfigure_shell(const ReconfigBuffer& buf, uint64_t len) const;

    const std::string& path() const noexcept { return file_.path(); }

private:
    void check(const ReconfigBuffer& buf, uint64_t len, const char* call) const;
    /// The argument words of a load (RECONFIGURE_APP / _SHELL) of the first `len` bytes of `buf`.
    abi::Args load_args(const ReconfigBuffer& buf, uint64_t len, const char* call) const;

    DriverFile file_;
};

}  // namespace coyote::detail::hw
