// The fake vFPGA's dma-buf calls (vfpga_ops.c IOCTL_MAP_DMABUF / IOCTL_UNMAP_DMABUF, vfpga_gup.c p2p_attach_dma_buf /
// p2p_detach_dma_buf): the driver takes a reference on the dma-buf and maps its pages at the given vaddr in the
// vFPGA's TLB. The fake maps the dma-buf's memory over that vaddr in this process, where the sim vFPGA reaches it,
// and accepts the dma-bufs of the test library standing in for libcuda (tests/hw/fake_cuda): memfds of that name.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "backend/sim/process_maps.hpp"
#include "fake_vfpga.hpp"

namespace coyote_fake {

namespace {

constexpr uint64_t k_page = 4096;
/// The memfd name of the fake GPU's memory (tests/hw/fake_cuda/fake_cuda.cpp).
constexpr const char* k_fake_dmabuf_name = "memfd:coyote-fake-dmabuf";

std::atomic<int> g_live_dmabufs{0}; ///< dma-bufs mapped by every fake vFPGA of the process

/// True when `fd` is a dma-buf the fake can import (dma_buf_get fails otherwise: the driver returns -EINVAL).
bool is_fake_dmabuf(int fd) {
    char link[128] = {0};
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    return fd >= 0 && ::readlink(path.c_str(), link, sizeof(link) - 1) > 0 &&
           std::strstr(link, k_fake_dmabuf_name) != nullptr;
}

/// True when [start, end) is reserved address space without access (a GPU's virtual addresses): the fake maps the
/// dma-buf there. The real driver only writes TLB entries and would accept any address.
bool is_reserved(uint64_t start, uint64_t end) {
    uint64_t at = start;
    for (const auto& r : coyote::detail::sim::read_proc_maps()) {
        if (r.end <= at || r.start > at) continue;
        if (r.readable || r.writable) return false;
        at = r.end;
        if (at >= end) return true;
    }
    return false;
}

}  // namespace

long FakeVfpga::map_dmabuf(uint64_t* a) {
    const auto ctid = static_cast<int64_t>(a[2]);
    const int32_t s = sim_ctid(ctid);
    if (s < 0) return -EINVAL; // the driver indexes pid_array unchecked
    const int fd = static_cast<int>(a[0]);
    const uint64_t vaddr = a[1];
    struct stat st {};
    if (!is_fake_dmabuf(fd) || ::fstat(fd, &st) != 0) return -EINVAL; // dma_buf_get failed: -EINVAL
    const auto size = static_cast<uint64_t>(st.st_size);
    // The driver maps whole pages of the scatter list from vaddr's page on; the fake refuses what would map
    // memory other than the buffer's: an unaligned vaddr, a partial page, or an address that is not reserved.
    if (size == 0 || size % k_page != 0 || vaddr % k_page != 0 || vaddr + size < vaddr) return -EINVAL;
    if (!is_reserved(vaddr, vaddr + size)) return -EINVAL;
    const int ref = ::fcntl(fd, F_DUPFD_CLOEXEC, 0); // the driver's reference on the dma-buf
    if (ref < 0) return -ENOMEM;
    void* p = ::mmap(reinterpret_cast<void*>(vaddr), size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, ref, 0);
    if (p == MAP_FAILED) {
        ::close(ref);
        return -EINVAL;
    }
    try {
        sim_->map_user(s, p, size);
    } catch (const coyote::Error&) {
        (void)::mmap(p, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
        ::close(ref);
        return -EINVAL;
    }
    std::lock_guard lk(dmabuf_mtx_);
    dmabufs_[{static_cast<int32_t>(ctid), vaddr}] = DmabufMap{ref, size};
    g_live_dmabufs.fetch_add(1);
    return 0;
}

void FakeVfpga::detach_dmabuf(int32_t ctid, uint64_t vaddr, const DmabufMap& m) noexcept {
    const int32_t s = sim_ctid(ctid);
    if (s >= 0) {
        try {
            sim_->unmap_user(s, reinterpret_cast<void*>(vaddr));
        } catch (const coyote::Error&) {
        }
    }
    // The TLB entries go: the CPU side of the fake GPU address is reserved again, as before the map.
    (void)::mmap(reinterpret_cast<void*>(vaddr), m.size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
                 -1, 0);
    ::close(m.fd);
    g_live_dmabufs.fetch_sub(1);
}

long FakeVfpga::unmap_dmabuf(uint64_t* a) {
    const auto ctid = static_cast<int64_t>(a[1]);
    if (sim_ctid(ctid) < 0) return -EINVAL;
    const uint64_t vaddr = a[0];
    std::lock_guard lk(dmabuf_mtx_);
    // p2p_detach_dma_buf: the entry whose pages hold vaddr; none found is no error.
    for (auto it = dmabufs_.begin(); it != dmabufs_.end(); ++it) {
        const auto [c, start] = it->first;
        if (c != ctid || vaddr < start || vaddr >= start + it->second.size) continue;
        detach_dmabuf(c, start, it->second);
        dmabufs_.erase(it);
        break;
    }
    return 0;
}

void FakeVfpga::drop_dmabufs(int32_t ctid) noexcept {
    std::lock_guard lk(dmabuf_mtx_);
    for (auto it = dmabufs_.begin(); it != dmabufs_.end();) {
        if (it->first.first != ctid) {
            ++it;
            continue;
        }
        detach_dmabuf(ctid, it->first.second, it->second);
        it = dmabufs_.erase(it);
    }
}

}  // namespace coyote_fake

extern "C" {

/// For tests: the dma-bufs the fake vFPGAs of this process have mapped (IOCTL_MAP_DMABUF not yet undone).
__attribute__((visibility("default"))) int coyote_fake_dmabuf_mappings() noexcept {
    return coyote_fake::g_live_dmabufs.load();
}

}  // extern "C"
