// GPU memory for getMem(GPU) on the hw backend: device memory allocated by the GPU runtime and exported as a dma-buf
// fd that the driver imports (IOCTL_MAP_DMABUF). One implementation is linked in: cuda_memory.cpp when the build has
// COYOTE_ENABLE_GPU=ON with CUDA, gpu_disabled.cpp otherwise (cmake/CoyoteGpu.cmake).
#pragma once

#include <cstdint>
#include <utility>

#include "detail/handles.hpp"

namespace coyote::detail::hw::gpu {

/// One exported GPU allocation. Move-only: it owns the dma-buf fd and the device memory.
class GpuBuffer {
public:
    GpuBuffer() = default;
    GpuBuffer(GpuBuffer&& o) noexcept
        : addr_(std::exchange(o.addr_, 0)), base_(std::exchange(o.base_, 0)), size_(std::exchange(o.size_, 0)),
          device_(o.device_), dmabuf_(std::move(o.dmabuf_)) {}
    GpuBuffer& operator=(GpuBuffer&& o) noexcept {
        if (this != &o) {
            release();
            addr_ = std::exchange(o.addr_, 0);
            base_ = std::exchange(o.base_, 0);
            size_ = std::exchange(o.size_, 0);
            device_ = o.device_;
            dmabuf_ = std::move(o.dmabuf_);
        }
        return *this;
    }
    GpuBuffer(const GpuBuffer&) = delete;
    GpuBuffer& operator=(const GpuBuffer&) = delete;
    /// Closes the dma-buf fd, then frees the device memory (failures go to stderr: it cannot throw).
    ~GpuBuffer() { release(); }

    void* addr() const noexcept { return reinterpret_cast<void*>(addr_); }
    uint64_t size() const noexcept { return size_; }
    int dmabuf_fd() const noexcept { return dmabuf_.get(); }

    /// Allocates `size` bytes (rounded up to the host page) on GPU `gpu_dev_id` and exports them as a dma-buf;
    /// throws a coyote::Error naming the GPU call and its error, or, in a build without GPU support, the option.
    static GpuBuffer allocate(uint32_t gpu_dev_id, uint64_t size);

private:
    void release() noexcept; ///< the fd first, then the memory and the context reference

    uint64_t addr_ = 0;   ///< page-aligned device address handed to the driver and the user
    uint64_t base_ = 0;   ///< what the allocator returned (freed with it); 0 when empty
    uint64_t size_ = 0;
    uint32_t device_ = 0; ///< the GPU (its primary context stays retained while the buffer lives)
    Fd dmabuf_;
};

/// "CUDA" when this build has GPU memory, null otherwise (for messages of the backends).
const char* build_support() noexcept;

}  // namespace coyote::detail::hw::gpu
