// Memory of the hw backend: getMem's allocation types (REG, THP, HPF), the driver's map/unmap of user memory into
// the vFPGA TLB (IOCTL_MAP_USER_MEM / IOCTL_UNMAP_USER_MEM) and offload / sync to card memory (GPU memory:
// hw_gpu_memory.cpp).
#include <linux/mman.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "backend/hw/hw_device.hpp"
#include "detail/format.hpp"

namespace coyote::detail::hw {

namespace {

uint64_t round_up(uint64_t n, uint64_t unit) { return (n + unit - 1) / unit * unit; }

/// Huge pages the kernel has reserved (/proc/sys/vm/nr_hugepages), or -1 when unreadable.
long reserved_huge_pages() {
    std::ifstream in("/proc/sys/vm/nr_hugepages");
    long n = -1;
    if (!(in >> n)) return -1;
    return n;
}

[[noreturn]] void huge_page_failure(int err, uint64_t size) {
    const long reserved = reserved_huge_pages();
    std::string why;
    if (reserved == 0)
        why = "no huge pages are reserved: reserve them with `sysctl vm.nr_hugepages=<n>` (see docs/hardware.md)";
    else
        why = "the reserved huge pages (" + std::to_string(reserved) +
              " of 2 MiB, /proc/sys/vm/nr_hugepages) do not hold another " + std::to_string(size) + " bytes";
    throw Error(std::error_code(err, std::generic_category()), "getMem HPF", why);
}

}  // namespace

void* HwDevice::alloc_pages(const CoyoteAlloc& req, uint64_t& size) {
    switch (req.alloc) {
    case CoyoteAllocType::REG: {
        size = round_up(req.size, PAGE_SIZE);
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw_errno("getMem REG", "mmap of " + std::to_string(size) + " bytes");
        return p;
    }
    case CoyoteAllocType::THP: {
        size = round_up(req.size, HUGE_PAGE_SIZE);
        void* p = nullptr;
        const int err = ::posix_memalign(&p, HUGE_PAGE_SIZE, size);
        if (err != 0) throw Error(std::error_code(err, std::generic_category()), "getMem THP", "posix_memalign");
        (void)::madvise(p, size, MADV_HUGEPAGE);
        return p;
    }
    case CoyoteAllocType::HPF: {
        size = round_up(req.size, HUGE_PAGE_SIZE);
        const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT);
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, -1, 0);
        if (p == MAP_FAILED) huge_page_failure(errno, size);
        return p;
    }
    case CoyoteAllocType::PRM:
        throw_error(Errc::not_supported, "getMem PRM",
                    "reconfiguration memory is allocated on the reconfiguration device (" +
                        abi::reconfig_device_file(device_) + ") by cRcnfg, not by a cThread");
    case CoyoteAllocType::GPU: break; // alloc_gpu (hw_gpu_memory.cpp)
    }
    throw_error(Errc::invalid_argument, "getMem", "unknown allocation type " + std::to_string(static_cast<int>(req.alloc)));
}

void HwDevice::release_pages(const Allocation& a) noexcept {
    if (a.type == CoyoteAllocType::THP)
        std::free(a.addr);
    else
        (void)::munmap(a.addr, a.size);
}

Allocation HwDevice::alloc_mem(int32_t ctid, const CoyoteAlloc& req) {
    check_ctid(ctid, "getMem");
    if (req.alloc == CoyoteAllocType::GPU) return alloc_gpu(ctid, req);
    Allocation a;
    a.type = req.alloc;
    a.remote = req.remote;
    a.addr = alloc_pages(req, a.size);
    abi::Args args{};
    args[abi::slot::map_vaddr] = reinterpret_cast<uint64_t>(a.addr);
    args[abi::slot::map_len] = a.size;
    args[abi::slot::map_ctid] = static_cast<uint64_t>(ctid);
    args[abi::slot::map_mem_block] = static_cast<uint64_t>(-1); // any card memory block (Versal only)
    const int err = file_.try_call(abi::k_map_user_mem, args);
    if (err != 0) {
        release_pages(a);
        file_.fail(abi::k_map_user_mem, err, "mapping " + std::to_string(a.size) + " bytes at " + hex(a.addr));
    }
    return a;
}

void HwDevice::free_mem(int32_t ctid, const Allocation& a) noexcept {
    if (a.type == CoyoteAllocType::GPU) {
        free_gpu(ctid, a);
        return;
    }
    abi::Args args{};
    args[abi::slot::unmap_vaddr] = reinterpret_cast<uint64_t>(a.addr);
    args[abi::slot::unmap_ctid] = static_cast<uint64_t>(ctid);
    (void)file_.try_call(abi::k_unmap_user_mem, args);
    release_pages(a);
}

void HwDevice::map_user(int32_t ctid, void* vaddr, uint64_t len) {
    check_ctid(ctid, "userMap");
    abi::Args args{};
    args[abi::slot::map_vaddr] = reinterpret_cast<uint64_t>(vaddr);
    args[abi::slot::map_len] = len;
    args[abi::slot::map_ctid] = static_cast<uint64_t>(ctid);
    args[abi::slot::map_mem_block] = static_cast<uint64_t>(-1);
    const int err = file_.try_call(abi::k_map_user_mem, args);
    if (err != 0)
        file_.fail(abi::k_map_user_mem, err,
                   "mapping " + std::to_string(len) + " bytes at " + hex(vaddr) + " for ctid " + std::to_string(ctid));
    std::lock_guard lk(mem_mtx_);
    user_maps_.emplace(ctid, reinterpret_cast<uint64_t>(vaddr));
}

void HwDevice::unmap_user(int32_t ctid, void* vaddr) {
    check_ctid(ctid, "userUnmap");
    {
        std::lock_guard lk(mem_mtx_);
        // The driver ignores an unknown address silently; the contract wants an error.
        if (user_maps_.erase({ctid, reinterpret_cast<uint64_t>(vaddr)}) == 0)
            throw_error(Errc::not_mapped, "userUnmap",
                        hex(vaddr) + " was not mapped by userMap of ctid " + std::to_string(ctid));
    }
    abi::Args args{};
    args[abi::slot::unmap_vaddr] = reinterpret_cast<uint64_t>(vaddr);
    args[abi::slot::unmap_ctid] = static_cast<uint64_t>(ctid);
    file_.call(abi::k_unmap_user_mem, args);
}

void HwDevice::migrate(int32_t ctid, void* addr, uint64_t len, bool to_card) {
    check_ctid(ctid, to_card ? "invoke LOCAL_OFFLOAD" : "invoke LOCAL_SYNC");
    abi::Args args{};
    args[abi::slot::mig_vaddr] = reinterpret_cast<uint64_t>(addr);
    args[abi::slot::mig_len] = len;
    args[abi::slot::mig_ctid] = static_cast<uint64_t>(ctid);
    file_.call(to_card ? abi::k_offload_req : abi::k_sync_req, args);
}

}  // namespace coyote::detail::hw
