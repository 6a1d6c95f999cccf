// GPU memory in a build without COYOTE_ENABLE_GPU: every GPU allocation fails with an error naming the option.
#include "backend/hw/gpu/gpu_memory.hpp"

#include <coyote/error.hpp>

namespace coyote::detail::hw::gpu {

void GpuBuffer::release() noexcept {} // never holds anything

GpuBuffer GpuBuffer::allocate(uint32_t, uint64_t) {
    throw_error(Errc::not_supported, "getMem GPU",
                "GPU memory needs a build with the CMake option COYOTE_ENABLE_GPU=ON (CUDA, dma-buf export to the "
                "driver); this build has none");
}

const char* build_support() noexcept { return nullptr; }

}  // namespace coyote::detail::hw::gpu
