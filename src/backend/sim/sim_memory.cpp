// coyote-mpi sim backend: the memory of a vFPGA's processes: getMem / freeMem buffers (anonymous, huge-page
// aligned or, for remote buffers, shm segments the peers' NICs map), userMap / userUnmap, remote-access windows.
#include <fcntl.h>
#include <sys/mman.h>

#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "backend/hw/gpu/gpu_memory.hpp"
#include "backend/sim/segments.hpp"
#include "backend/sim/sim_device.hpp"
#include "detail/format.hpp"

namespace coyote::detail::sim {

namespace {

std::once_flag g_hugetlb_notice_once;

const char* alloc_name(CoyoteAllocType t) {
    switch (t) {
    case CoyoteAllocType::REG: return "REG";
    case CoyoteAllocType::THP: return "THP";
    case CoyoteAllocType::HPF: return "HPF";
    case CoyoteAllocType::PRM: return "PRM";
    case CoyoteAllocType::GPU: return "GPU";
    }
    return "unknown";
}

/// Gives back the parts of the reservation [base, base + span) outside [aligned, aligned + size).
void trim_reservation(uint64_t base, uint64_t span, uint64_t aligned, uint64_t size) {
    if (aligned > base) ::munmap(reinterpret_cast<void*>(base), aligned - base);
    const uint64_t tail = base + span - (aligned + size);
    if (tail > 0) ::munmap(reinterpret_cast<void*>(aligned + size), tail);
}

/// Anonymous memory of `size` bytes aligned to `align`.
Mapping map_aligned(uint64_t size, uint64_t align, const std::string& what) {
    const uint64_t span = size + align;
    void* p = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw_errno("mmap", what + ": " + std::to_string(size) + " bytes");
    const auto base = reinterpret_cast<uint64_t>(p);
    const uint64_t aligned = round_up(base, align);
    trim_reservation(base, span, aligned, size);
    return Mapping(reinterpret_cast<void*>(aligned), size);
}

/// Maps shm segment `name` (`size` bytes) at an `align`-aligned address.
Mapping map_shm_aligned(const std::string& name, uint64_t size, uint64_t align) {
    Fd fd(::shm_open(name.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC, 0));
    if (!fd) throw_errno("shm_open", "reopen buffer segment " + name);
    require_own_file(fd.get(), "shm_open", "buffer segment /dev/shm" + name);
    const uint64_t span = size + align;
    void* p = ::mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw_errno("mmap", "reserve address space for " + name);
    const auto base = reinterpret_cast<uint64_t>(p);
    const uint64_t aligned = round_up(base, align);
    void* q = ::mmap(reinterpret_cast<void*>(aligned), size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd.get(), 0);
    if (q == MAP_FAILED) {
        const int err = errno;
        ::munmap(p, span);
        errno = err;
        throw_errno("mmap", "map buffer segment " + name);
    }
    trim_reservation(base, span, aligned, size); // keep [aligned, aligned+size)
    return Mapping(q, size);
}

/// Anonymous memory for a local buffer of `size` bytes (rounded to the page size of its type).
Mapping map_local(CoyoteAllocType type, uint64_t size) {
    if (type == CoyoteAllocType::REG) {
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw_errno("mmap", "getMem REG of " + std::to_string(size) + " bytes");
        return Mapping(p, size);
    }
    if (type == CoyoteAllocType::HPF) {
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
        if (p != MAP_FAILED) return Mapping(p, size);
        std::call_once(g_hugetlb_notice_once, [] {
            std::fprintf(stderr,
                         "coyote sim: no hugetlb pages available (see /proc/sys/vm/nr_hugepages); HPF "
                         "buffers use 2 MiB-aligned transparent huge pages instead\n");
        });
    }
    Mapping map = map_aligned(size, k_huge_page, std::string("getMem ") + alloc_name(type));
    if (type != CoyoteAllocType::PRM) ::madvise(map.get(), size, MADV_HUGEPAGE);
    return map;
}

/// Throws unless the shell `cfg` can serve allocation request `req`.
void check_alloc_request(const ShellConfig& cfg, const CoyoteAlloc& req) {
    if (req.alloc == CoyoteAllocType::GPU) {
        const char* gpu = hw::gpu::build_support();
        throw_error(Errc::not_supported, "getMem",
                    gpu == nullptr ? std::string("GPU memory is not supported by the sim backend (it needs the hw "
                                                 "backend and a build with the CMake option COYOTE_ENABLE_GPU=ON, CUDA)")
                                   : std::string("GPU memory is not supported by the sim backend: this build has "
                                                 "COYOTE_ENABLE_GPU=ON (") + gpu +
                                         "), and GPU memory needs the hw backend (the Coyote driver, or the fake "
                                         "driver for tests: docs/hardware.md)");
    }
    if (req.size == 0) throw_error(Errc::invalid_argument, "getMem", "allocation size must be > 0");
    if (req.alloc == CoyoteAllocType::PRM && !cfg.en_pr)
        throw_error(Errc::not_supported, "getMem",
                    "PRM (reconfiguration) memory needs partial reconfiguration, which is disabled in the shell (pr=0)");
    if (req.remote && !cfg.en_rdma)
        throw_error(Errc::not_supported, "getMem",
                    "remote buffers need RDMA, which is disabled in the shell (rdma=0)");
    if (static_cast<uint32_t>(req.alloc) > static_cast<uint32_t>(CoyoteAllocType::GPU))
        throw_error(Errc::invalid_argument, "getMem",
                    "unknown allocation type " + std::to_string(static_cast<int>(req.alloc)));
}

/// Throws unless the vFPGA has a NIC (remote-access windows need RDMA).
void check_windows(bool has_nic, const char* call) {
    if (!has_nic)
        throw_error(Errc::not_supported, call, "remote-access windows need RDMA, which is disabled in the shell (rdma=0)");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// getMem / freeMem
// ---------------------------------------------------------------------------------------------

Allocation SimDevice::alloc_mem(int32_t ctid, const CoyoteAlloc& req) {
    check_ctid(ctid, "getMem");
    check_alloc_request(cfg_, req);
    const bool huge = req.alloc != CoyoteAllocType::REG;
    const uint64_t size = round_up(req.size, huge ? k_huge_page : k_host_page);
    AllocRecord rec;
    rec.ctid = ctid;
    if (req.remote) {
        rec.shm_name = vfpga_segment_prefix(device_, vfid_) + ".buf" +
                       std::to_string(remote_buffers_.fetch_add(1, std::memory_order_relaxed));
        try {
            rec.seg = ShmSegment::create(rec.shm_name, size, true); // ENOSPC now, not SIGBUS at a touch
        } catch (const Error& e) {
            throw Error(e.code(), "getMem", "remote buffer of " + std::to_string(req.size) + " bytes: " + e.call() +
                                                ": " + e.context());
        }
        track_segment(rec.shm_name);
        if (huge) {
            rec.map = map_shm_aligned(rec.shm_name, size, k_huge_page);
            ::madvise(rec.map.get(), size, MADV_HUGEPAGE);
        }
    } else {
        rec.map = map_local(req.alloc, size);
    }
    void* addr = rec.map ? rec.map.get() : rec.seg.get();
    rec.info = Allocation{addr, size, req.alloc, req.remote};
    const auto a = reinterpret_cast<uint64_t>(addr);
    tlb_.insert(a, a, a + size, MapKind::alloc, ctid, true);
    if (req.remote) {
        try {
            nic_->register_buffer(ctid, addr, req.size, rec.shm_name); // bounds are the size asked for
        } catch (...) {
            tlb_.remove_group(a, MapKind::alloc);
            release_record(rec);
            throw;
        }
    }
    const Allocation out = rec.info;
    std::lock_guard lk(alloc_mtx_);
    allocs_.emplace(a, std::move(rec));
    return out;
}

void SimDevice::free_mem(int32_t ctid, const Allocation& a) noexcept {
    const auto key = reinterpret_cast<uint64_t>(a.addr);
    AllocRecord rec;
    {
        std::lock_guard lk(alloc_mtx_);
        auto it = allocs_.find(key);
        if (it == allocs_.end()) return;
        rec = std::move(it->second);
        allocs_.erase(it);
    }
    const uint64_t size = rec.info.size;
    try {
        std::lock_guard hw(hw_mtx_);
        abort_writes_in(key, key + size, "its buffer was freed");
        card_.release(key, size);
        tlb_.remove_group(key, MapKind::alloc);
    } catch (...) {
    }
    if (rec.info.remote && nic_) nic_->unregister_buffer(ctid, a.addr);
    release_record(rec);
}

void SimDevice::release_record(AllocRecord& rec) noexcept {
    const std::string shm_name = rec.shm_name;
    rec = AllocRecord{}; // unmapped, shm segment unlinked
    if (!shm_name.empty()) untrack_segment(shm_name);
}

// ---------------------------------------------------------------------------------------------
// userMap / userUnmap
// ---------------------------------------------------------------------------------------------

void SimDevice::map_user(int32_t ctid, void* vaddr, uint64_t len) {
    check_ctid(ctid, "userMap");
    const auto a = reinterpret_cast<uint64_t>(vaddr);
    if (len == 0) throw_error(Errc::invalid_argument, "userMap", "length must be > 0 (address " + hex(a) + ")");
    if (a + len < a) throw_error(Errc::not_mapped, "userMap", "range " + hex(a) + " + " + std::to_string(len) + " wraps");
    if (ctids_[static_cast<size_t>(ctid)].foreign) // another process's memory: checked now, reached per command
        return check_foreign_range(ctid, a, len, false, "buffer", "userMap");
    const uint64_t s = a / k_host_page * k_host_page;
    const uint64_t e = round_up(a + len, k_host_page);
    const ProcCheck c = check_proc_range(read_proc_maps(), s, e, false);
    if (!c.ok())
        throw_error(Errc::not_mapped, "userMap",
                    "cannot map " + hex(a) + " (len " + std::to_string(len) + "): address " + hex(c.bad) + " is " +
                        describe(c.access));
    tlb_.insert(a, s, e, MapKind::user, ctid, c.all_writable);
}

void SimDevice::unmap_user(int32_t ctid, void* vaddr) {
    check_ctid(ctid, "userUnmap");
    if (ctids_[static_cast<size_t>(ctid)].foreign) return; // userMap of another process's memory maps nothing here
    const auto a = reinterpret_cast<uint64_t>(vaddr);
    std::vector<std::pair<uint64_t, uint64_t>> gone;
    std::lock_guard hw(hw_mtx_);
    if (!tlb_.remove_group(a, MapKind::user, &gone))
        throw_error(Errc::not_mapped, "userUnmap", "address " + hex(a) + " was not mapped with userMap");
    // Only the pages this mapping held: those a getMem buffer or another userMap covers keep their pending writes
    // and card memory.
    for (const auto& [s, e] : gone) {
        abort_writes_in(s, e, "its buffer was unmapped with userUnmap");
        card_.release(s, e - s);
    }
}

// ---------------------------------------------------------------------------------------------
// Remote-access windows
// ---------------------------------------------------------------------------------------------

void SimDevice::register_window(int32_t ctid, void* vaddr, uint64_t len) {
    check_ctid(ctid, "registerWindow");
    check_windows(nic_ != nullptr, "registerWindow");
    if (ctids_[static_cast<size_t>(ctid)].foreign)
        throw_error(Errc::not_supported, "registerWindow",
                    "remote-access windows of a cThread created for another process (pid " +
                        std::to_string(ctids_[static_cast<size_t>(ctid)].hpid) + ") are not emulated by the sim backend");
    nic_->register_window(ctid, reinterpret_cast<uint64_t>(vaddr), len);
}

void SimDevice::unregister_window(int32_t ctid, void* vaddr) {
    check_ctid(ctid, "unregisterWindow");
    check_windows(nic_ != nullptr, "unregisterWindow");
    nic_->unregister_window(ctid, reinterpret_cast<uint64_t>(vaddr));
}

}  // namespace coyote::detail::sim
