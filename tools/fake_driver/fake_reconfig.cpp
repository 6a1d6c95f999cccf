// The fake reconfiguration device's calls (driver/src/reconfig/reconfig_ops.c).
#include "fake_reconfig.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "backend/sim/shell_config.hpp"

namespace coyote_fake {

namespace {

constexpr unsigned long k_alloc = 0x40085001, k_free = 0x40085002, k_app = 0x40085003, k_shell = 0x40085004,
                        k_pr_cnfg = 0x80085005, k_pr_wb_stats = 0x80085006;
constexpr unsigned long k_region_reconfig = 0x100;
constexpr uint64_t k_page = 2ULL << 20;
constexpr uint64_t k_max_pages = 128; // MAX_RECONFIG_BUFF_NUM

}  // namespace

FakeReconfig::FakeReconfig() {
    const auto cfg = coyote::detail::sim::load_shell_config();
    en_pr_ = cfg.en_pr;
    n_regions_ = cfg.n_fpga_reg;
}

long FakeReconfig::ioctl(unsigned long request, uint64_t* a) {
    if (request != k_alloc && request != k_free && request != k_app && request != k_shell && request != k_pr_cnfg &&
        request != k_pr_wb_stats)
        return 1; // "reconfig device received unknown IOCTL call"
    if (a == nullptr) return 8;
    std::lock_guard lk(mtx_);
    switch (request) {
    case k_alloc:
        if (a[0] == 0 || a[0] > k_max_pages) return -ENOMEM;
        pending_pages_ = a[0];
        pending_pid_ = static_cast<pid_t>(a[1]);
        pending_crid_ = a[2];
        return 0;
    case k_free: buffers_.erase(a[0]); return 0; // free_reconfig_buffer always returns 0
    case k_app: return reconfigure(a, true);
    case k_shell: return reconfigure(a, false);
    case k_pr_cnfg: a[0] = en_pr_ ? 1 : 0; return 0;
    default:
        for (int i = 0; i < 4; ++i) a[i] = 0; // PR/WB channel statistics
        return 0;
    }
}

long FakeReconfig::reconfigure(const uint64_t* a, bool app) {
    // reconfigure_start walks the pages of a buffer it knows; an unknown one fails and the call returns -1.
    auto it = buffers_.find(a[0]);
    if (it == buffers_.end() || a[1] == 0 || a[1] > it->second.len) return -1;
    if (app && a[4] >= n_regions_) return -1;
    ++(app ? app_loads_ : shell_loads_);
    return 0;
}

long FakeReconfig::mappable(unsigned long index, size_t len) const {
    std::lock_guard lk(mtx_);
    // Only the process that allocated may map the pending buffer, at MMAP_RECONFIG, once.
    if (index != k_region_reconfig || pending_pages_ == 0 || pending_pid_ != ::getpid()) return -EINVAL;
    if (len < pending_pages_ * k_page) return -EINVAL;
    return 0;
}

void FakeReconfig::mapped(void* addr, size_t len) {
    std::lock_guard lk(mtx_);
    buffers_[reinterpret_cast<uint64_t>(addr)] = Buffer{len, pending_pid_, pending_crid_};
    pending_pages_ = 0;
}

}  // namespace coyote_fake
