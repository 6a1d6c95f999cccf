// GPU memory of the hw backend: the exported dma-buf of a GPU allocation handed to the driver (IOCTL_MAP_DMABUF:
// fd, vaddr, ctid, memory block) and taken back (IOCTL_UNMAP_DMABUF: vaddr, ctid) before the GPU memory is freed.
#include <cstdio>

#include "backend/hw/hw_device.hpp"
#include "detail/format.hpp"

namespace coyote::detail::hw {

namespace {

/// The likely cause of a refused IOCTL_MAP_DMABUF (vfpga_ops.c / vfpga_gup.c: -EINVAL for a failed import, a
/// literal -1 when the driver was built without dma-buf support).
std::string dmabuf_cause(int err, int fd) {
    if (err == EPERM)
        return "the driver was built for a Linux kernel older than 6.2, which has no dma-buf import for Coyote (GPU "
               "memory needs Linux >= 6.2)";
    if (err == EINVAL)
        return "the driver could not import dma-buf fd " + std::to_string(fd) +
               ": it is not a dma-buf, or the GPU memory cannot be attached to the FPGA for peer-to-peer DMA";
    return {};
}

}  // namespace

Allocation HwDevice::alloc_gpu(int32_t ctid, const CoyoteAlloc& req) {
    check_ctid(ctid, "getMem");
    gpu::GpuBuffer buf = gpu::GpuBuffer::allocate(req.gpu_dev_id, req.size);
    abi::Args args{};
    args[abi::slot::dmabuf_fd] = static_cast<uint64_t>(buf.dmabuf_fd());
    args[abi::slot::dmabuf_vaddr] = reinterpret_cast<uint64_t>(buf.addr());
    args[abi::slot::dmabuf_ctid] = static_cast<uint64_t>(ctid);
    args[abi::slot::dmabuf_mem_block] = static_cast<uint64_t>(-1); // any card memory block (Versal only)
    const int err = file_.try_call(abi::k_map_dmabuf, args);
    if (err != 0) file_.fail(abi::k_map_dmabuf, err, dmabuf_cause(err, buf.dmabuf_fd())); // `buf` frees the memory
    Allocation a;
    a.addr = buf.addr();
    a.size = buf.size();
    a.type = CoyoteAllocType::GPU;
    a.remote = req.remote;
    std::lock_guard lk(mem_mtx_);
    gpu_bufs_.emplace(reinterpret_cast<uint64_t>(a.addr), std::move(buf));
    return a;
}

void HwDevice::free_gpu(int32_t ctid, const Allocation& a) noexcept {
    abi::Args args{};
    args[abi::slot::unmap_vaddr] = reinterpret_cast<uint64_t>(a.addr);
    args[abi::slot::unmap_ctid] = static_cast<uint64_t>(ctid);
    const int err = file_.try_call(abi::k_unmap_dmabuf, args); // the FPGA lets go before the GPU memory goes
    if (err != 0)
        std::fprintf(stderr, "coyote: freeMem GPU: IOCTL_UNMAP_DMABUF of %s on %s failed (errno %d)\n",
                     hex(a.addr).c_str(), file_.path().c_str(), err);
    gpu::GpuBuffer buf;
    {
        std::lock_guard lk(mem_mtx_);
        auto it = gpu_bufs_.find(reinterpret_cast<uint64_t>(a.addr));
        if (it == gpu_bufs_.end()) return;
        buf = std::move(it->second);
        gpu_bufs_.erase(it);
    }
    // `buf` closes the dma-buf fd, then frees the GPU memory (outside the lock: the GPU runtime may be slow)
}

}  // namespace coyote::detail::hw
