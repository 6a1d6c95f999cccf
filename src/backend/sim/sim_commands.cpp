#include "backend/sim/sim_device.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <new>
#include <set>
#include <sstream>

#include "backend/registers.hpp"
#include "backend/sim/segments.hpp"

namespace coyote::detail::sim {

namespace {

constexpr uint64_t k_page = PAGE_SIZE;
constexpr uint64_t k_fault_region = 2ull << 20; // the page-fault path maps this much (aligned) at once
constexpr uint64_t k_huge = HUGE_PAGE_SIZE;

std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }


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

/// Anonymous memory of `size` bytes aligned to `align`.
Mapping map_aligned(uint64_t size, uint64_t align, const std::string& what) {
    const uint64_t span = size + align;
    void* p = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw_errno("mmap", what + ": " + std::to_string(size) + " bytes");
    const auto base = reinterpret_cast<uint64_t>(p);
    const uint64_t aligned = round_up(base, align);
    if (aligned > base) ::munmap(p, aligned - base);
    const uint64_t tail = base + span - (aligned + size);
    if (tail > 0) ::munmap(reinterpret_cast<void*>(aligned + size), tail);
    return Mapping(reinterpret_cast<void*>(aligned), size);
}

/// Maps shm segment `name` (`size` bytes) at an `align`-aligned address.
Mapping map_shm_aligned(const std::string& name, uint64_t size, uint64_t align) {
    Fd fd(::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0));
    if (!fd) throw_errno("shm_open", "reopen buffer segment " + name);
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
    // Keep [aligned, aligned+size), give back the rest of the reservation.
    if (aligned > base) ::munmap(p, aligned - base);
    const uint64_t tail = base + span - (aligned + size);
    if (tail > 0) ::munmap(reinterpret_cast<void*>(aligned + size), tail);
    return Mapping(q, size);
}

std::once_flag g_reclaim_once;

/// The (device, vfid) pairs with a SimDevice alive in this process. A device being destroyed still
/// owns its shm names until its destructor ends; open() waits for that instead of colliding.
struct LiveDevices {
    std::mutex mtx;
    std::condition_variable cv;
    std::set<std::pair<uint32_t, int32_t>> live;
};
LiveDevices& live_devices() {
    static auto* r = new LiveDevices(); // never destroyed: devices may outlive static destruction
    return *r;
}
std::once_flag g_hugetlb_notice_once;

}  // namespace

// ---------------------------------------------------------------------------------------------
// The shell as the model sees it
// ---------------------------------------------------------------------------------------------

class SimDevice::ShellPort final : public coyote::sim::Shell {
public:
    explicit ShellPort(SimDevice& d) : d_(d) {}
    ~ShellPort() override = default;

    void push(uint32_t dest, std::span<const std::byte> data) override { d_.output_push(dest, data); }
    std::span<std::byte> reserve(uint32_t dest, std::size_t max_bytes) override {
        return d_.output_reserve(dest, max_bytes);
    }
    void commit(uint32_t dest, std::size_t n) override { d_.output_commit(dest, n); }
    uint64_t output_demand(uint32_t dest) const override {
        if (dest >= coyote::sim::k_n_dests) return 0;
        uint64_t n = 0;
        for (const auto& w : d_.pending_[dest]) n += w.len - w.filled;
        return n;
    }
    uint64_t csr_read(uint32_t offs) const override {
        return offs < coyote::sim::k_csr_words ? d_.csr_[offs].load(std::memory_order_acquire) : 0;
    }
    void csr_write(uint32_t offs, uint64_t value) override {
        if (offs < coyote::sim::k_csr_words) d_.csr_[offs].store(value, std::memory_order_release);
    }
    void raise_interrupt(int32_t ctid, int32_t value) override { d_.raise_interrupt(ctid, value); }
    int32_t vfid() const noexcept override { return d_.vfid_; }
    uint32_t device() const noexcept override { return d_.device_; }

private:
    SimDevice& d_;
};

// ---------------------------------------------------------------------------------------------
// Construction
// ---------------------------------------------------------------------------------------------

SimDevice::SimDevice(uint32_t device, int32_t vfid, const ShellConfig& cfg)
    : device_(device), vfid_(vfid), cfg_(cfg), ident_(load_net_identity(device)), card_(cfg.card_capacity) {
    model_ = load_model_from_env();
    port_ = std::make_unique<ShellPort>(*this);

    const uint64_t header = round_up(sizeof(SharedState), k_page);
    state_seg_ = ShmSegment::create(state_segment_name(device, vfid), header + k_state_net_area_size);
    track_segment(state_seg_.name());
    state_ = new (state_seg_.get()) SharedState();
    state_->version = k_state_version;
    state_->owner_pid = ::getpid();
    state_->owner_start_time = process_start_time(::getpid());
    state_->device = device;
    state_->vfid = vfid;
    state_->ip_addr = ident_.ip;
    state_->mac_addr = ident_.mac;
    state_->net_offset = header;
    state_->net_size = k_state_net_area_size;
    std::atomic_ref<uint64_t>(state_->magic).store(k_state_magic, std::memory_order_release);

    if (cfg_.en_rdma) {
        nic_ = make_nic(*this);
        for (int32_t c = 0; c < N_CTID_MAX; ++c) nic_pending_[static_cast<size_t>(c)] = &nic_->pending_flag(c);
    }
    worker_ = std::thread([this] { worker_loop(); });
}

SimDevice::~SimDevice() {
    {
        std::lock_guard lk(q_mtx_);
        stop_ = true;
    }
    q_cv_.notify_all();
    if (worker_.joinable()) worker_.join();
    for (int32_t c = 0; c < N_CTID_MAX; ++c) {
        std::shared_ptr<IrqThread> t;
        {
            std::lock_guard lk(irq_mtx_);
            t = std::exchange(irq_[static_cast<size_t>(c)], nullptr);
        }
        if (t) stop_irq_thread(std::move(t));
    }
    nic_pending_.fill(nullptr);
    nic_.reset();
    {
        std::lock_guard lk(alloc_mtx_);
        for (auto& [addr, rec] : allocs_) {
            const std::string name = rec.shm_name;
            rec = AllocRecord{};
            if (!name.empty()) untrack_segment(name);
        }
        allocs_.clear();
    }
    model_.reset();
    state_ = nullptr;
    const std::string state_name = state_seg_.name();
    state_seg_ = ShmSegment{}; // unlinks the name before the pair is released
    untrack_segment(state_name);
    auto& reg = live_devices();
    {
        std::lock_guard lk(reg.mtx);
        reg.live.erase({device_, vfid_});
    }
    reg.cv.notify_all();
}

std::string SimDevice::model_name() const {
    std::lock_guard lk(hw_mtx_);
    return model_.origin();
}

// ---------------------------------------------------------------------------------------------
// ctids
// ---------------------------------------------------------------------------------------------

void SimDevice::check_ctid(int32_t ctid, const char* call) const {
    if (ctid < 0 || ctid >= N_CTID_MAX)
        throw_error(Errc::invalid_argument, call,
                    "ctid " + std::to_string(ctid) + " is out of range (0.." + std::to_string(N_CTID_MAX - 1) + ")");
    if (!ctids_[static_cast<size_t>(ctid)].active.load(std::memory_order_acquire))
        throw_error(Errc::invalid_argument, call,
                    "ctid " + std::to_string(ctid) + " is not registered on vFPGA " + std::to_string(vfid_) +
                        " of sim device " + std::to_string(device_));
}

int32_t SimDevice::register_ctid(pid_t hpid) {
    std::lock_guard lk(ctid_mtx_);
    for (int32_t c = 0; c < N_CTID_MAX; ++c) {
        auto& st = ctids_[static_cast<size_t>(c)];
        if (st.active.load(std::memory_order_acquire)) continue;
        st.inflight = 0;
        st.posted = 0;
        st.bytes_read = 0;
        st.bytes_written = 0;
        st.page_faults = 0;
        st.interrupts = 0;
        st.interrupts_dropped = 0;
        st.hpid = hpid;
        for (uint32_t cls = 0; cls < N_WBACKS; ++cls)
            state_->wback[cls * N_CTID_MAX + static_cast<uint32_t>(c)].store(0, std::memory_order_release);
        {
            std::lock_guard elk(err_mtx_);
            errors_[static_cast<size_t>(c)].reset();
            st.has_error = false;
        }
        st.active.store(true, std::memory_order_release);
        return c;
    }
    throw_error(Errc::resource_exhausted, "cThread",
                "all " + std::to_string(N_CTID_MAX) + " ctids of vFPGA " + std::to_string(vfid_) + " on device " +
                    std::to_string(device_) + " are in use");
}

void SimDevice::unregister_ctid(int32_t ctid) noexcept {
    if (ctid < 0 || ctid >= N_CTID_MAX) return;
    auto& st = ctids_[static_cast<size_t>(ctid)];
    if (!st.active.load(std::memory_order_acquire)) return;
    std::shared_ptr<IrqThread> t;
    {
        std::lock_guard lk(irq_mtx_);
        t = std::exchange(irq_[static_cast<size_t>(ctid)], nullptr);
    }
    if (t) stop_irq_thread(std::move(t));

    // Buffers the Coyote thread left behind, as the driver does when a process lets go.
    std::vector<Allocation> leftovers;
    {
        std::lock_guard lk(alloc_mtx_);
        for (const auto& [addr, rec] : allocs_)
            if (rec.ctid == ctid) leftovers.push_back(rec.info);
    }
    for (const auto& a : leftovers) free_mem(ctid, a);

    {
        std::lock_guard hw(hw_mtx_);
        {
            std::lock_guard q(q_mtx_);
            std::erase_if(queue_, [&](const Command& c) { return c.ctid == ctid; });
            queue_nonempty_.store(!queue_.empty(), std::memory_order_release);
        }
        for (auto& dq : pending_) std::erase_if(dq, [&](const PendingWrite& w) { return w.ctid == ctid; });
        st.active.store(false, std::memory_order_release);
        st.inflight = 0;
    }
    if (nic_) nic_->on_ctid_unregistered(ctid);
}

// ---------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------

Allocation SimDevice::alloc_mem(int32_t ctid, const CoyoteAlloc& req) {
    check_ctid(ctid, "getMem");
    if (req.alloc == CoyoteAllocType::GPU)
        throw_error(Errc::not_supported, "getMem", "GPU memory is not supported by the sim backend");
    if (req.size == 0) throw_error(Errc::invalid_argument, "getMem", "allocation size must be > 0");
    if (req.alloc == CoyoteAllocType::PRM && !cfg_.en_pr)
        throw_error(Errc::not_supported, "getMem",
                    "PRM (reconfiguration) memory needs partial reconfiguration, which is disabled in the shell (pr=0)");
    if (req.remote && !cfg_.en_rdma)
        throw_error(Errc::not_supported, "getMem",
                    "remote buffers need RDMA, which is disabled in the shell (rdma=0)");
    if (static_cast<uint32_t>(req.alloc) > static_cast<uint32_t>(CoyoteAllocType::GPU))
        throw_error(Errc::invalid_argument, "getMem",
                    "unknown allocation type " + std::to_string(static_cast<int>(req.alloc)));

    const bool huge = req.alloc != CoyoteAllocType::REG;
    const uint64_t size = round_up(req.size, huge ? k_huge : k_page);
    AllocRecord rec;
    rec.ctid = ctid;
    if (req.remote) {
        rec.shm_name = vfpga_segment_prefix(device_, vfid_) + ".buf" +
                       std::to_string(remote_buffers_.fetch_add(1, std::memory_order_relaxed));
        rec.seg = ShmSegment::create(rec.shm_name, size);
        track_segment(rec.shm_name);
        if (huge) {
            rec.map = map_shm_aligned(rec.shm_name, size, k_huge);
            ::madvise(rec.map.get(), size, MADV_HUGEPAGE);
        }
    } else if (req.alloc == CoyoteAllocType::REG) {
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw_errno("mmap", "getMem REG of " + std::to_string(size) + " bytes");
        rec.map = Mapping(p, size);
    } else {
        if (req.alloc == CoyoteAllocType::HPF) {
            void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
            if (p != MAP_FAILED) {
                rec.map = Mapping(p, size);
            } else {
                std::call_once(g_hugetlb_notice_once, [] {
                    std::fprintf(stderr,
                                 "coyote sim: no hugetlb pages available (see /proc/sys/vm/nr_hugepages); HPF "
                                 "buffers use 2 MiB-aligned transparent huge pages instead\n");
                });
            }
        }
        if (!rec.map) {
            rec.map = map_aligned(size, k_huge, std::string("getMem ") + alloc_name(req.alloc));
            if (req.alloc != CoyoteAllocType::PRM) ::madvise(rec.map.get(), size, MADV_HUGEPAGE);
        }
    }
    void* addr = rec.map ? rec.map.get() : rec.seg.get();
    rec.info = Allocation{addr, size, req.alloc, req.remote};
    const auto a = reinterpret_cast<uint64_t>(addr);
    tlb_.insert(a, a, a + size, MapKind::alloc, ctid, true);
    if (req.remote) {
        const std::string shm_name = rec.shm_name;
        try {
            nic_->register_buffer(ctid, addr, req.size, rec.shm_name); // bounds are the size asked for
        } catch (...) {
            tlb_.remove_group(a, MapKind::alloc);
            rec = AllocRecord{};
            untrack_segment(shm_name);
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
    const std::string shm_name = rec.shm_name;
    rec = AllocRecord{}; // unmapped, shm segment unlinked
    if (!shm_name.empty()) untrack_segment(shm_name);
}

void SimDevice::map_user(int32_t ctid, void* vaddr, uint64_t len) {
    check_ctid(ctid, "userMap");
    const auto a = reinterpret_cast<uint64_t>(vaddr);
    if (len == 0) throw_error(Errc::invalid_argument, "userMap", "length must be > 0 (address " + hex(a) + ")");
    if (a + len < a) throw_error(Errc::not_mapped, "userMap", "range " + hex(a) + " + " + std::to_string(len) + " wraps");
    const uint64_t s = a / k_page * k_page;
    const uint64_t e = round_up(a + len, k_page);
    uint64_t bad = 0;
    std::string why;
    bool writable = false;
    if (!check_proc_range(read_proc_maps(), s, e, false, bad, why, writable))
        throw_error(Errc::not_mapped, "userMap",
                    "cannot map " + hex(a) + " (len " + std::to_string(len) + "): address " + hex(bad) + " is " + why);
    tlb_.insert(a, s, e, MapKind::user, ctid, writable);
}

void SimDevice::unmap_user(int32_t ctid, void* vaddr) {
    check_ctid(ctid, "userUnmap");
    const auto a = reinterpret_cast<uint64_t>(vaddr);
    uint64_t s = 0, e = 0;
    std::lock_guard hw(hw_mtx_);
    if (!tlb_.find_group(a, MapKind::user, s, e))
        throw_error(Errc::not_mapped, "userUnmap", "address " + hex(a) + " was not mapped with userMap");
    abort_writes_in(s, e, "its buffer was unmapped with userUnmap");
    card_.release(s, e - s);
    tlb_.remove_group(a, MapKind::user);
}

void SimDevice::register_window(int32_t ctid, void* vaddr, uint64_t len) {
    check_ctid(ctid, "registerWindow");
    if (!nic_)
        throw_error(Errc::not_supported, "registerWindow",
                    "remote-access windows need RDMA, which is disabled in the shell (rdma=0)");
    nic_->register_window(ctid, reinterpret_cast<uint64_t>(vaddr), len);
}

void SimDevice::unregister_window(int32_t ctid, void* vaddr) {
    check_ctid(ctid, "unregisterWindow");
    if (!nic_)
        throw_error(Errc::not_supported, "unregisterWindow",
                    "remote-access windows need RDMA, which is disabled in the shell (rdma=0)");
    nic_->unregister_window(ctid, reinterpret_cast<uint64_t>(vaddr));
}

void SimDevice::check_range(int32_t ctid, uint64_t addr, uint64_t len, bool write, const char* what) {
    if (len == 0) return;
    // Messages are built only on failure: this runs for every command.
    auto where = [&] { return std::string(what) + " at " + hex(addr) + " (len " + std::to_string(len) + ")"; };
    if (addr + len < addr) throw_error(Errc::not_mapped, "invoke", where() + ": the range wraps around");
    const TlbLookup r = tlb_.lookup(addr, len, write);
    if (r.covered && !r.write_denied && r.owned_only) return;
    const uint64_t s = addr / k_page * k_page;
    const uint64_t e = round_up(addr + len, k_page);
    if (r.covered && !r.write_denied) {
        // userMap'd or faulted memory still belongs to the process: probe that it is still mapped.
        if (::msync(reinterpret_cast<void*>(s), e - s, MS_ASYNC) == 0) return;
        throw_error(Errc::not_mapped, "invoke",
                    where() + ": the memory was mapped in the vFPGA TLB but is no longer mapped in the process");
    }
    // The page-fault path: map valid process memory on first use. Like a TLB with 2 MiB pages it maps the
    // 2 MiB-aligned region around the range (within the mappings that hold it, with the same access): one
    // /proc/self/maps read per region instead of one per command over a large buffer.
    uint64_t bad = 0;
    std::string why;
    bool writable = false;
    const std::vector<ProcRange> maps = read_proc_maps();
    if (!check_proc_range(maps, s, e, write, bad, why, writable))
        throw_error(Errc::not_mapped, "invoke", where() + ": address " + hex(bad) + " is " + why);
    uint64_t fs = s, fe = e;
    {
        uint64_t lo = s / k_fault_region * k_fault_region, hi = round_up(e, k_fault_region);
        for (const ProcRange& m : maps) { // clip to the mappings holding the first and the last page
            if (m.start <= s && s < m.end) lo = std::max(lo, m.start);
            if (m.start < e && e <= m.end) hi = std::min(hi, m.end);
        }
        uint64_t bad2 = 0;
        std::string why2;
        bool writable2 = false;
        if (lo <= s && hi >= e && check_proc_range(maps, lo, hi, write, bad2, why2, writable2) &&
            writable2 == writable) {
            fs = lo;
            fe = hi;
        }
    }
    const uint64_t added = tlb_.insert(fs, fs, fe, MapKind::fault, ctid, writable);
    if (r.write_denied) tlb_.grant_write(s, e);
    if (ctid >= 0 && ctid < N_CTID_MAX)
        ctids_[static_cast<size_t>(ctid)].page_faults.fetch_add(added / k_page, std::memory_order_relaxed);
}

bool SimDevice::still_mapped(uint64_t addr, uint64_t len, bool write) const {
    if (len == 0) return true;
    const TlbLookup r = tlb_.lookup(addr, len, write);
    return r.covered && !r.write_denied;
}

void SimDevice::check_local_range(int32_t ctid, uint64_t addr, uint64_t len, bool write) {
    check_range(ctid, addr, len, write, write ? "RDMA target" : "RDMA source");
}

// ---------------------------------------------------------------------------------------------
// User control registers
// ---------------------------------------------------------------------------------------------

void SimDevice::set_csr(uint64_t val, uint32_t offs) {
    if (offs >= coyote::sim::k_csr_words)
        throw_error(Errc::invalid_argument, "setCSR",
                    "CSR offset " + std::to_string(offs) + " is out of range (limit " +
                        std::to_string(coyote::sim::k_csr_words) + " 64-bit registers, offsets 0.." +
                        std::to_string(coyote::sim::k_csr_words - 1) + ")");
    csr_[offs].store(val, std::memory_order_release);
    std::lock_guard hw(hw_mtx_);
    try {
        model_->on_csr_write(*port_, offs, val);
        discard_reservations();
    } catch (const std::exception& e) {
        discard_reservations();
        throw_error(Errc::invalid_argument, "setCSR",
                    "user-logic model '" + model_.origin() + "' failed on the write of CSR " + std::to_string(offs) +
                        ": " + e.what());
    }
}

uint64_t SimDevice::get_csr(uint32_t offs) const {
    if (offs >= coyote::sim::k_csr_words)
        throw_error(Errc::invalid_argument, "getCSR",
                    "CSR offset " + std::to_string(offs) + " is out of range (limit " +
                        std::to_string(coyote::sim::k_csr_words) + " 64-bit registers, offsets 0.." +
                        std::to_string(coyote::sim::k_csr_words - 1) + ")");
    return csr_[offs].load(std::memory_order_acquire);
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

void SimDevice::validate_local(const Command& cmd) {
    const bool rd = cmd.oper != CoyoteOper::LOCAL_WRITE;
    const bool wr = cmd.oper != CoyoteOper::LOCAL_READ;
    auto side = [&](const SgSide& sg, bool write) {
        const char* role = cmd.oper != CoyoteOper::LOCAL_TRANSFER ? oper_name(cmd.oper)
                           : write                                ? "LOCAL_TRANSFER destination"
                                                                  : "LOCAL_TRANSFER source";
        if (sg.len > MAX_TRANSFER_SIZE)
            throw_error(Errc::invalid_argument, "invoke",
                        std::string(role) + ": length " + std::to_string(sg.len) + " exceeds MAX_TRANSFER_SIZE (" +
                            std::to_string(MAX_TRANSFER_SIZE) + " bytes)");
        if (sg.dest > CTRL_DEST_MASK)
            throw_error(Errc::invalid_argument, "invoke",
                        std::string(role) + ": dest " + std::to_string(sg.dest) + " is out of range (0..15)");
        if (sg.stream == STRM_HOST) {
            if (!cfg_.en_strm)
                throw_error(Errc::not_supported, "invoke",
                            std::string(role) + ": host streams (STRM_HOST) are disabled in the shell (strm=0)");
        } else if (sg.stream == STRM_CARD) {
            if (!cfg_.en_mem)
                throw_error(Errc::not_supported, "invoke",
                            std::string(role) + ": card memory streams (STRM_CARD) are disabled in the shell (mem=0)");
        } else {
            throw_error(Errc::invalid_argument, "invoke",
                        std::string(role) + ": stream " + std::to_string(sg.stream) +
                            " is not a local stream (use STRM_HOST or STRM_CARD)");
        }
        check_range(cmd.ctid, sg.addr, sg.len, write && sg.stream == STRM_HOST, role);
    };
    if (rd) side(cmd.src, false);
    if (wr) side(cmd.dst, true);
}

PostStatus SimDevice::post(const Command& cmd) {
    check_ctid(cmd.ctid, "invoke");
    auto& st = ctids_[static_cast<size_t>(cmd.ctid)];
    switch (cmd.oper) {
    case CoyoteOper::LOCAL_READ:
    case CoyoteOper::LOCAL_WRITE:
    case CoyoteOper::LOCAL_TRANSFER: validate_local(cmd); break;
    case CoyoteOper::REMOTE_RDMA_READ:
    case CoyoteOper::REMOTE_RDMA_WRITE:
    case CoyoteOper::REMOTE_RDMA_SEND: {
        if (!cfg_.en_rdma)
            throw_error(Errc::not_supported, "invoke",
                        std::string(oper_name(cmd.oper)) + ": RDMA is disabled in the shell (rdma=0)");
        if (cmd.src.len > MAX_TRANSFER_SIZE)
            throw_error(Errc::invalid_argument, "invoke",
                        std::string(oper_name(cmd.oper)) + ": length " + std::to_string(cmd.src.len) +
                            " exceeds MAX_TRANSFER_SIZE (" + std::to_string(MAX_TRANSFER_SIZE) + " bytes)");
        const PostStatus s = nic_->post(cmd);
        if (s == PostStatus::ok) {
            st.posted.fetch_add(1, std::memory_order_relaxed);
            (cmd.oper == CoyoteOper::REMOTE_RDMA_READ ? sent_rdma_reads_ : sent_rdma_writes_)
                .fetch_add(1, std::memory_order_relaxed);
        }
        return s;
    }
    case CoyoteOper::REMOTE_TCP_SEND:
        throw_error(Errc::not_supported, "invoke",
                    cfg_.en_tcp ? "REMOTE_TCP_SEND: the TCP stack is not emulated by the sim backend"
                                : "REMOTE_TCP_SEND: TCP is disabled in the shell (tcp=0)");
    case CoyoteOper::NOOP: return PostStatus::ok;
    default:
        throw_error(Errc::invalid_argument, "invoke",
                    std::string(oper_name(cmd.oper)) + " is not a command for post() (LOCAL_OFFLOAD and LOCAL_SYNC "
                                                       "are blocking migrations)");
    }

    int32_t cur = st.inflight.load(std::memory_order_relaxed);
    do {
        if (cur >= k_max_inflight) return PostStatus::busy;
    } while (!st.inflight.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel));
    st.posted.fetch_add(1, std::memory_order_relaxed);
    if (cmd.oper != CoyoteOper::LOCAL_WRITE) sent_local_reads_.fetch_add(1, std::memory_order_relaxed);
    if (cmd.oper != CoyoteOper::LOCAL_READ) sent_local_writes_.fetch_add(1, std::memory_order_relaxed);

    const uint64_t bytes = std::max(cmd.oper != CoyoteOper::LOCAL_WRITE ? cmd.src.len : 0u,
                                    cmd.oper != CoyoteOper::LOCAL_READ ? cmd.dst.len : 0u);
    std::unique_lock q(q_mtx_);
    if (queue_.empty() && !worker_busy_ && bytes <= k_inline_max_bytes) {
        // Nothing queued: run it here, it is cheaper than waking the worker.
        ++inline_active_;
        q.unlock();
        {
            std::lock_guard hw(hw_mtx_);
            execute(cmd);
        }
        q.lock();
        if (--inline_active_ == 0 && !queue_.empty()) q_cv_.notify_all();
        return PostStatus::ok;
    }
    queue_.push_back(cmd);
    queue_nonempty_.store(true, std::memory_order_release);
    q.unlock();
    q_cv_.notify_all();
    return PostStatus::ok;
}

bool SimDevice::progress_one() noexcept {
    if (!queue_nonempty_.load(std::memory_order_acquire)) return false;
    std::unique_lock q(q_mtx_, std::try_to_lock);
    if (!q.owns_lock() || queue_.empty() || worker_busy_ || inline_active_ != 0 || stop_) return false;
    const Command cmd = queue_.front();
    queue_.pop_front();
    queue_nonempty_.store(!queue_.empty(), std::memory_order_release);
    ++inline_active_; // keeps the worker (and other pollers) out until this command is done: order is preserved
    q.unlock();
    {
        std::lock_guard hw(hw_mtx_);
        execute(cmd);
    }
    q.lock();
    if (--inline_active_ == 0 && !queue_.empty()) q_cv_.notify_all();
    return true;
}

void SimDevice::worker_loop() {
    std::unique_lock q(q_mtx_);
    for (;;) {
        q_cv_.wait(q, [&] { return stop_ || (!queue_.empty() && inline_active_ == 0); });
        if (stop_) return;
        const Command cmd = queue_.front();
        queue_.pop_front();
        queue_nonempty_.store(!queue_.empty(), std::memory_order_release);
        worker_busy_ = true;
        q.unlock();
        {
            std::lock_guard hw(hw_mtx_);
            execute(cmd);
        }
        q.lock();
        worker_busy_ = false;
    }
}

void SimDevice::execute(const Command& cmd) noexcept {
    if (!ctids_[static_cast<size_t>(cmd.ctid)].active.load(std::memory_order_acquire)) return;
    try {
        execute_local(cmd);
    } catch (...) {
        record_exception(cmd.ctid, oper_name(cmd.oper));
    }
}

void SimDevice::execute_local(const Command& cmd) {
    const bool rd = cmd.oper != CoyoteOper::LOCAL_WRITE;
    const bool wr = cmd.oper != CoyoteOper::LOCAL_READ;
    // The buffers may have been freed since post() checked them.
    if ((rd && !still_mapped(cmd.src.addr, cmd.src.len, false)) ||
        (wr && !still_mapped(cmd.dst.addr, cmd.dst.len, cmd.dst.stream == STRM_HOST))) {
        command_done(cmd.ctid);
        const SgSide& s = rd && !still_mapped(cmd.src.addr, cmd.src.len, false) ? cmd.src : cmd.dst;
        throw_error(Errc::not_mapped, "invoke",
                    std::string(oper_name(cmd.oper)) + " at " + hex(s.addr) + " (len " + std::to_string(s.len) +
                        "): the buffer was unmapped before the command ran");
    }
    if (wr) {
        try {
            add_pending_write(cmd.ctid, cmd.dst, cmd.last);
        } catch (...) {
            command_done(cmd.ctid);
            throw;
        }
    }
    if (rd) {
        deliver_input(cmd.ctid, cmd.src, cmd.last);
        if (!wr) command_done(cmd.ctid);
    }
}

void SimDevice::deliver_input(int32_t ctid, const SgSide& src, bool last) {
    auto& st = ctids_[static_cast<size_t>(ctid)];
    if (src.len > 0) {
        coyote::sim::InputChunk in;
        in.dest = src.dest;
        in.kind = src.stream == STRM_CARD ? coyote::sim::StreamKind::card : coyote::sim::StreamKind::host;
        in.ctid = ctid;
        try {
            if (src.stream == STRM_HOST) {
                in.data = std::span<const std::byte>(reinterpret_cast<const std::byte*>(src.addr), src.len);
                in.end_of_command = true;
                in.last = last;
                model_->on_input(*port_, in);
            } else {
                uint64_t off = 0;
                while (off < src.len) {
                    in.data = card_.read_window(src.addr + off, src.len - off);
                    off += in.data.size();
                    in.end_of_command = off == src.len;
                    in.last = in.end_of_command && last;
                    model_->on_input(*port_, in);
                }
            }
            discard_reservations();
        } catch (...) {
            discard_reservations();
            // The shell still read the data; the model's failure is reported to the Coyote thread.
            record_exception(ctid, "user-logic model '" + model_.origin() + "' on input dest " + std::to_string(src.dest));
        }
        st.bytes_read.fetch_add(src.len, std::memory_order_relaxed);
    }
    if (last) bump(ctid, CmplClass::local_read);
}

void SimDevice::add_pending_write(int32_t ctid, const SgSide& dst, bool last) {
    PendingWrite w{ctid, dst.addr, dst.len, 0, dst.stream == STRM_CARD, last};
    if (w.len == 0) {
        finish_write(w);
        return;
    }
    if (w.card) card_.reserve(w.addr, w.len);
    pending_[dst.dest].push_back(w);
    drain_fifo_into_writes(dst.dest);
    try {
        model_->on_output_request(*port_, dst.dest, dst.len);
        discard_reservations();
    } catch (...) {
        discard_reservations();
        record_exception(ctid, "user-logic model '" + model_.origin() + "' on output request dest " +
                                   std::to_string(dst.dest));
    }
}

std::span<std::byte> SimDevice::write_window(PendingWrite& w, uint64_t max) {
    const uint64_t n = std::min(max, w.len - w.filled);
    if (w.card) return card_.write_window(w.addr + w.filled, n);
    return {reinterpret_cast<std::byte*>(w.addr + w.filled), static_cast<size_t>(n)};
}

void SimDevice::finish_write(PendingWrite& w) {
    ctids_[static_cast<size_t>(w.ctid)].bytes_written.fetch_add(w.len, std::memory_order_relaxed);
    if (w.last) bump(w.ctid, CmplClass::local_write);
    command_done(w.ctid);
}

void SimDevice::drain_fifo_into_writes(uint32_t dest) {
    auto& f = fifo_[dest];
    auto& q = pending_[dest];
    while (f.bytes > 0 && !q.empty()) {
        auto& chunk = f.chunks.front();
        auto& w = q.front();
        const auto win = write_window(w, chunk.size() - f.head);
        std::memcpy(win.data(), chunk.data() + f.head, win.size());
        w.filled += win.size();
        f.head += win.size();
        f.bytes -= win.size();
        if (f.head == chunk.size()) {
            f.chunks.pop_front();
            f.head = 0;
        }
        if (w.filled == w.len) {
            finish_write(w);
            q.pop_front();
        }
    }
}

void SimDevice::buffer_output(uint32_t dest, std::span<const std::byte> data) {
    auto& f = fifo_[dest];
    uint64_t keep = data.size();
    if (f.bytes + keep > k_output_buffer_cap) {
        keep = k_output_buffer_cap > f.bytes ? k_output_buffer_cap - f.bytes : 0;
        if (dropped_output_ == 0)
            std::fprintf(stderr,
                         "coyote sim: vFPGA %d output dest %u overflows (%llu MiB buffered and no LOCAL_WRITE "
                         "posted); dropping data\n",
                         vfid_, dest, static_cast<unsigned long long>(k_output_buffer_cap >> 20));
        dropped_output_ += data.size() - keep;
    }
    if (keep == 0) return;
    f.chunks.emplace_back(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(keep));
    f.bytes += keep;
}

void SimDevice::output_push(uint32_t dest, std::span<const std::byte> data) {
    if (dest >= coyote::sim::k_n_dests)
        throw_error(Errc::invalid_argument, "Shell::push", "output dest " + std::to_string(dest) + " is out of range (0..15)");
    auto& r = reservation_[dest];
    if (r.active && !r.into_write) fifo_[dest].chunks.pop_back();
    r.active = false;
    auto& q = pending_[dest];
    while (!data.empty() && !q.empty()) {
        auto& w = q.front();
        const auto win = write_window(w, data.size());
        std::memmove(win.data(), data.data(), win.size()); // source and destination may be the same buffer
        w.filled += win.size();
        data = data.subspan(win.size());
        if (w.filled == w.len) {
            finish_write(w);
            q.pop_front();
        }
    }
    if (!data.empty()) buffer_output(dest, data);
}

std::span<std::byte> SimDevice::output_reserve(uint32_t dest, size_t max) {
    if (dest >= coyote::sim::k_n_dests)
        throw_error(Errc::invalid_argument, "Shell::reserve", "output dest " + std::to_string(dest) + " is out of range (0..15)");
    auto& r = reservation_[dest];
    if (r.active && !r.into_write) fifo_[dest].chunks.pop_back();
    r = Reservation{};
    if (max == 0) return {};
    auto& q = pending_[dest];
    if (!q.empty()) {
        const auto win = write_window(q.front(), max);
        r = Reservation{true, true, win.size()};
        return win;
    }
    auto& chunk = fifo_[dest].chunks.emplace_back(max);
    r = Reservation{true, false, max};
    return {chunk.data(), chunk.size()};
}

void SimDevice::output_commit(uint32_t dest, size_t n) {
    if (dest >= coyote::sim::k_n_dests)
        throw_error(Errc::invalid_argument, "Shell::commit", "output dest " + std::to_string(dest) + " is out of range (0..15)");
    auto& r = reservation_[dest];
    if (!r.active) {
        if (n == 0) return;
        throw_error(Errc::invalid_argument, "Shell::commit", "commit of dest " + std::to_string(dest) + " without reserve");
    }
    if (n > r.size)
        throw_error(Errc::invalid_argument, "Shell::commit",
                    "commit of " + std::to_string(n) + " bytes on dest " + std::to_string(dest) + " exceeds the " +
                        std::to_string(r.size) + "-byte window");
    r.active = false;
    if (r.into_write) {
        auto& q = pending_[dest];
        auto& w = q.front();
        w.filled += n;
        if (w.filled == w.len) {
            finish_write(w);
            q.pop_front();
        }
        return;
    }
    auto& f = fifo_[dest];
    auto chunk = std::move(f.chunks.back());
    f.chunks.pop_back();
    if (n > 0) buffer_output(dest, std::span<const std::byte>(chunk.data(), n));
}

void SimDevice::discard_reservations() noexcept {
    for (uint32_t d = 0; d < coyote::sim::k_n_dests; ++d) {
        auto& r = reservation_[d];
        if (r.active && !r.into_write) fifo_[d].chunks.pop_back();
        r = Reservation{};
    }
}

void SimDevice::abort_writes_in(uint64_t start, uint64_t end, const std::string& why) {
    for (auto& q : pending_) {
        for (auto it = q.begin(); it != q.end();) {
            if (it->addr < end && start < it->addr + it->len) {
                record_error(it->ctid, make_error_code(Errc::not_mapped),
                             "LOCAL_WRITE to " + hex(it->addr) + " (len " + std::to_string(it->len) +
                                 ") was cancelled: " + why);
                command_done(it->ctid);
                it = q.erase(it);
            } else {
                ++it;
            }
        }
    }
}

void SimDevice::bump(int32_t ctid, CmplClass cls) noexcept {
    state_->wback[static_cast<uint32_t>(cls) * N_CTID_MAX + static_cast<uint32_t>(ctid)].fetch_add(
        1, std::memory_order_acq_rel);
}

void SimDevice::command_done(int32_t ctid) noexcept {
    auto& n = ctids_[static_cast<size_t>(ctid)].inflight;
    if (n.fetch_sub(1, std::memory_order_acq_rel) <= 0) n.store(0, std::memory_order_release);
}

void SimDevice::record_error(int32_t ctid, std::error_code code, const std::string& msg) noexcept {
    if (ctid < 0 || ctid >= N_CTID_MAX) return;
    try {
        std::lock_guard lk(err_mtx_);
        auto& slot = errors_[static_cast<size_t>(ctid)];
        if (!slot) slot.emplace(code, msg); // keep the first one
        ctids_[static_cast<size_t>(ctid)].has_error.store(true, std::memory_order_release);
    } catch (...) {
    }
}

void SimDevice::record_exception(int32_t ctid, const std::string& what) noexcept {
    try {
        throw;
    } catch (const Error& e) {
        record_error(ctid, e.code(), e.context().empty() ? std::string(e.what()) : e.context());
    } catch (const std::exception& e) {
        record_error(ctid, make_error_code(Errc::invalid_argument), what + ": " + e.what());
    } catch (...) {
        record_error(ctid, make_error_code(Errc::invalid_argument), what + ": unknown exception");
    }
}

void SimDevice::migrate(int32_t ctid, void* addr, uint64_t len, bool to_card) {
    check_ctid(ctid, "invoke");
    const char* what = to_card ? "LOCAL_OFFLOAD" : "LOCAL_SYNC";
    if (!cfg_.en_mem)
        throw_error(Errc::not_supported, "invoke",
                    std::string(what) + " needs card memory, which is disabled in the shell (mem=0)");
    if (len == 0) return;
    const auto a = reinterpret_cast<uint64_t>(addr);
    check_range(ctid, a, len, !to_card, what);
    std::lock_guard hw(hw_mtx_);
    if (!still_mapped(a, len, !to_card))
        throw_error(Errc::not_mapped, "invoke", std::string(what) + " at " + hex(a) + ": the buffer was unmapped");
    auto* host = reinterpret_cast<std::byte*>(a);
    uint64_t off = 0;
    if (to_card) {
        card_.reserve(a, len);
        while (off < len) {
            auto w = card_.write_window(a + off, len - off);
            std::memcpy(w.data(), host + off, w.size());
            off += w.size();
        }
    } else {
        while (off < len) {
            auto r = card_.read_window(a + off, len - off);
            std::memcpy(host + off, r.data(), r.size());
            off += r.size();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Completions and errors
// ---------------------------------------------------------------------------------------------

uint32_t SimDevice::completed(int32_t ctid, CmplClass cls) const {
    if (ctid < 0 || ctid >= N_CTID_MAX)
        throw_error(Errc::invalid_argument, "checkCompleted", "ctid " + std::to_string(ctid) + " is out of range");
    // A thread polling for completions runs queued work itself rather than waiting for the worker.
    if (queue_nonempty_.load(std::memory_order_relaxed)) (void)const_cast<SimDevice*>(this)->progress_one();
    return state_->wback[static_cast<uint32_t>(cls) * N_CTID_MAX + static_cast<uint32_t>(ctid)].load(
        std::memory_order_acquire);
}

void SimDevice::clear_completed(int32_t ctid) {
    if (ctid < 0 || ctid >= N_CTID_MAX)
        throw_error(Errc::invalid_argument, "clearCompleted", "ctid " + std::to_string(ctid) + " is out of range");
    for (uint32_t cls = 0; cls < N_WBACKS; ++cls)
        state_->wback[cls * N_CTID_MAX + static_cast<uint32_t>(ctid)].store(0, std::memory_order_release);
}

void SimDevice::raise_pending_error(int32_t ctid) {
    if (ctid < 0 || ctid >= N_CTID_MAX)
        throw_error(Errc::invalid_argument, "invoke", "ctid " + std::to_string(ctid) + " is out of range");
    if (ctids_[static_cast<size_t>(ctid)].has_error.load(std::memory_order_acquire)) {
        std::optional<std::pair<std::error_code, std::string>> err;
        {
            std::lock_guard lk(err_mtx_);
            err.swap(errors_[static_cast<size_t>(ctid)]);
            ctids_[static_cast<size_t>(ctid)].has_error.store(false, std::memory_order_release);
        }
        if (err) throw Error(err->first, "invoke", err->second);
    }
    // The NIC's own check is lock-free too, but a virtual call away.
    if (const auto* f = nic_pending_[static_cast<size_t>(ctid)]; f != nullptr && f->load(std::memory_order_acquire))
        nic_->raise_pending_error(ctid);
}

uint32_t SimDevice::poll_completed(int32_t ctid, CmplClass cls) {
    raise_pending_error(ctid); // checks the range
    if (queue_nonempty_.load(std::memory_order_relaxed)) (void)progress_one();
    return state_->wback[static_cast<uint32_t>(cls) * N_CTID_MAX + static_cast<uint32_t>(ctid)].load(
        std::memory_order_acquire);
}

// ---------------------------------------------------------------------------------------------
// Interrupts
// ---------------------------------------------------------------------------------------------

void SimDevice::raise_interrupt(int32_t ctid, int32_t value) {
    if (ctid < 0 || ctid >= N_CTID_MAX || !ctids_[static_cast<size_t>(ctid)].active.load(std::memory_order_acquire))
        throw_error(Errc::invalid_argument, "Shell::raise_interrupt",
                    "ctid " + std::to_string(ctid) + " is not registered on vFPGA " + std::to_string(vfid_));
    auto& st = ctids_[static_cast<size_t>(ctid)];
    st.interrupts.fetch_add(1, std::memory_order_relaxed);
    std::shared_ptr<IrqThread> t;
    {
        std::lock_guard lk(irq_mtx_);
        t = irq_[static_cast<size_t>(ctid)];
    }
    if (!t) {
        st.interrupts_dropped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    {
        std::lock_guard lk(t->mtx);
        t->values.push_back(value);
    }
    t->cv.notify_one();
}

void SimDevice::stop_irq_thread(std::shared_ptr<IrqThread> t) noexcept {
    {
        std::lock_guard lk(t->mtx);
        t->stop = true;
    }
    t->cv.notify_all();
    if (!t->thread.joinable()) return;
    if (t->thread.get_id() == std::this_thread::get_id())
        t->thread.detach(); // removed from inside its own handler: it ends when the handler returns
    else
        t->thread.join();
}

void SimDevice::set_interrupt_handler(int32_t ctid, InterruptHandler handler) {
    check_ctid(ctid, "cThread");
    std::shared_ptr<IrqThread> fresh;
    if (handler) {
        fresh = std::make_shared<IrqThread>();
        fresh->handler = std::move(handler);
        fresh->thread = std::thread([t = fresh] {
            std::unique_lock lk(t->mtx);
            for (;;) {
                t->cv.wait(lk, [&] { return t->stop || !t->values.empty(); });
                if (t->stop) return;
                const int32_t v = t->values.front();
                t->values.pop_front();
                lk.unlock();
                try {
                    t->handler(v);
                } catch (const std::exception& e) {
                    std::fprintf(stderr, "coyote sim: user interrupt handler threw: %s\n", e.what());
                } catch (...) {
                    std::fprintf(stderr, "coyote sim: user interrupt handler threw\n");
                }
                lk.lock();
            }
        });
    }
    std::shared_ptr<IrqThread> old;
    {
        std::lock_guard lk(irq_mtx_);
        old = std::exchange(irq_[static_cast<size_t>(ctid)], fresh);
    }
    if (old) stop_irq_thread(std::move(old));
}

// ---------------------------------------------------------------------------------------------
// Network delegation
// ---------------------------------------------------------------------------------------------

uint32_t SimDevice::rkey(int32_t ctid) const { return nic_ ? nic_->rkey(ctid) : 0; }

std::vector<std::byte> SimDevice::local_endpoint(int32_t ctid) const {
    return nic_ ? nic_->local_endpoint(ctid) : std::vector<std::byte>{};
}

void SimDevice::set_remote_endpoint(int32_t ctid, std::span<const std::byte> endpoint) {
    if (!nic_) throw_error(Errc::not_supported, "initRDMA", "RDMA is disabled in the shell (rdma=0)");
    nic_->set_remote_endpoint(ctid, endpoint);
}

// ---------------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------------

std::string SimDevice::debug_string(int32_t ctid) const {
    if (ctid < 0 || ctid >= N_CTID_MAX)
        throw_error(Errc::invalid_argument, "printDebug", "ctid " + std::to_string(ctid) + " is out of range");
    const auto& st = ctids_[static_cast<size_t>(ctid)];
    std::ostringstream os;
    auto line = [&](const char* label, uint64_t v) { os << std::setw(35) << label << " \t" << v << "\n"; };
    os << "-- STATISTICS - ID: " << vfid_ << " (sim device " << device_ << ", ctid " << ctid << ")\n";
    os << "-----------------------------------------------\n";
    line("Completed local reads:", completed(ctid, CmplClass::local_read));
    line("Completed local writes:", completed(ctid, CmplClass::local_write));
    line("Completed remote reads:", completed(ctid, CmplClass::rdma_read));
    line("Completed remote writes:", completed(ctid, CmplClass::rdma_write));
    line("Commands posted:", st.posted.load(std::memory_order_relaxed));
    line("Commands pending:", static_cast<uint64_t>(std::max(0, st.inflight.load(std::memory_order_relaxed))));
    line("Bytes read (to the vFPGA):", st.bytes_read.load(std::memory_order_relaxed));
    line("Bytes written (from the vFPGA):", st.bytes_written.load(std::memory_order_relaxed));
    line("Page faults received:", st.page_faults.load(std::memory_order_relaxed));
    line("Notifications received:", st.interrupts.load(std::memory_order_relaxed));
    line("Notifications without handler:", st.interrupts_dropped.load(std::memory_order_relaxed));
    {
        std::lock_guard hw(hw_mtx_);
        os << std::setw(35) << "User-logic model:" << " \t" << model_.origin() << "\n";
        line("Card memory in use (bytes):", card_.used());
        if (dropped_output_ > 0) line("Output bytes dropped:", dropped_output_);
    }
    if (nic_) os << nic_->debug_string(ctid);
    return os.str();
}

// ---------------------------------------------------------------------------------------------
// Opening
// ---------------------------------------------------------------------------------------------

std::shared_ptr<Device> open(uint32_t device, int32_t vfid) {
    std::call_once(g_reclaim_once, [] { reclaim_stale_segments(); });
    const ShellConfig cfg = load_shell_config();
    if (vfid < 0 || static_cast<uint32_t>(vfid) >= cfg.n_fpga_reg)
        throw_error(Errc::no_device, "cThread",
                    "vFPGA " + std::to_string(vfid) + " does not exist on sim device " + std::to_string(device) +
                        " (the shell has n_fpga_reg=" + std::to_string(cfg.n_fpga_reg) + ")");
    auto& reg = live_devices();
    {
        std::unique_lock lk(reg.mtx);
        const auto key = std::make_pair(device, vfid);
        if (!reg.cv.wait_for(lk, std::chrono::seconds(10), [&] { return reg.live.count(key) == 0; }))
            throw_error(Errc::resource_exhausted, "cThread",
                        "vFPGA " + std::to_string(vfid) + " of sim device " + std::to_string(device) +
                            " is still open in this process (its previous handle did not close within 10 s)");
        reg.live.insert(key);
    }
    try {
        return std::make_shared<SimDevice>(device, vfid, cfg);
    } catch (...) {
        {
            std::lock_guard lk(reg.mtx);
            reg.live.erase({device, vfid});
        }
        reg.cv.notify_all();
        throw;
    }
}

}  // namespace coyote::detail::sim
