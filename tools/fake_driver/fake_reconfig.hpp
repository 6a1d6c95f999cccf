// The fake reconfiguration device (/dev/coyote_fpga_<device>_reconfig): the driver's buffer bookkeeping of
// reconfig_ops.c (allocate, map by the same process, free; reconfigure only from a known buffer) in front of an FPGA
// that accepts every bitstream and counts the loads.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>

namespace coyote_fake {

class FakeReconfig {
public:
    FakeReconfig();

    /// Handles an ioctl as reconfig_dev_ioctl does: 0, a negative errno, or the driver's positive code.
    long ioctl(unsigned long request, uint64_t* args);
    /// Size of the buffer the next mmap (offset MMAP_RECONFIG) maps, or -errno.
    long mappable(unsigned long index, size_t len) const;
    /// Records the mapping of the pending buffer at `addr`.
    void mapped(void* addr, size_t len);

    /// App and shell loads so far (for tests).
    uint64_t app_loads() const noexcept { return app_loads_; }

private:
    struct Buffer {
        size_t len = 0;
        pid_t pid = 0;
        uint64_t crid = 0;
    };
    long reconfigure(const uint64_t* a, bool app);

    bool en_pr_ = false;
    uint32_t n_regions_ = 1;
    mutable std::mutex mtx_;
    uint64_t pending_pages_ = 0; ///< allocated, not yet mapped (curr_buff)
    pid_t pending_pid_ = 0;
    uint64_t pending_crid_ = 0;
    std::map<uint64_t, Buffer> buffers_; ///< by mapped address
    uint64_t app_loads_ = 0, shell_loads_ = 0;
};

}  // namespace coyote_fake
