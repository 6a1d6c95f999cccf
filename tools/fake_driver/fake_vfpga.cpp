// The fake vFPGA's hardware side: region memory, register stores decoded with the fake's own field tables and
// turned into sim Device calls, completions and the command credit written back into the mapped regions.
#include "fake_vfpga.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>

#include <coyote/cDefs.hpp>
#include <coyote/sim/user_logic.hpp>

namespace coyote_fake {

using coyote::detail::CmplClass;
using coyote::detail::Command;
using coyote::detail::PostStatus;
using coyote::detail::SgSide;

namespace {

RegionMemory make_region(unsigned long size, const char* name) {
    RegionMemory r;
    r.size = size;
    r.memfd = ::memfd_create(name, MFD_CLOEXEC);
    if (r.memfd < 0 || ::ftruncate(r.memfd, static_cast<off_t>(size)) != 0)
        coyote::throw_errno("memfd_create", std::string("fake driver region ") + name);
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, r.memfd, 0);
    if (p == MAP_FAILED) coyote::throw_errno("mmap", std::string("fake driver region ") + name);
    r.words = static_cast<volatile uint64_t*>(p);
    return r;
}

/// Which completion counter a finished command of this kind bumps is the sim's business; the fake only mirrors.
constexpr CmplClass k_classes[4] = {CmplClass::local_read, CmplClass::local_write, CmplClass::rdma_read,
                                    CmplClass::rdma_write};

bool is_net_reg(bool avx, uint32_t reg) {
    if (avx) return reg == avx::net_arp || reg == avx::rdma_ctx || reg == avx::rdma_conn;
    return reg == leg::net_arp || (reg >= leg::rdma_ctx_0 && reg <= leg::rdma_ctx_2) ||
           (reg >= leg::rdma_conn_0 && reg <= leg::rdma_conn_2);
}

bool is_local(uint64_t strm) { return strm == k_strm_card || strm == k_strm_host; }

SgSide side_of(uint64_t ctrl_word, uint64_t addr) {
    return SgSide{addr, static_cast<uint32_t>(ctrl::len.get(ctrl_word)), static_cast<uint32_t>(ctrl::strm.get(ctrl_word)),
                  static_cast<uint32_t>(ctrl::dest.get(ctrl_word))};
}

}  // namespace

FakeVfpga::FakeVfpga(uint32_t device, int32_t vfid) : device_(device), vfid_(vfid) {
    sim_ = coyote::detail::sim::open(device, vfid);
    shell_word_ = sim_->shell_word();
    coyote::fpgaCnfg cfg;
    cfg.parseCnfg(shell_word_);
    avx_ = cfg.en_avx;
    wb_ = cfg.en_wb;
    mem_ = cfg.en_mem;
    net_ = cfg.en_net;
    rdma_ = cfg.en_rdma;
    sim_ip_ = sim_->ip_address();
    ip_ = rdma_ ? fake_process_ip(sim_ip_, device) : sim_ip_;
    mac_ = sim_->mac_address();
    regions_[0] = make_region(k_size_wb, "coyote-fake-wb");
    regions_[1] = make_region(k_size_cnfg, "coyote-fake-cnfg");
    regions_[2] = make_region(k_size_cnfg_avx, "coyote-fake-cnfg-avx");
    regions_[3] = make_region(k_size_ctrl, "coyote-fake-ctrl");
    // The driver links ctid chunks 0 -> 1 -> ... and takes from the head: 0 first.
    for (int i = 0; i < k_ctids; ++i) free_stack_[static_cast<size_t>(i)] = k_ctids - 1 - i;
    n_free_ = k_ctids;
    for (auto& s : sim_ctid_) s.store(-1);
    poller_ = std::jthread([this](std::stop_token stop) { poll_loop(stop); });
}

FakeVfpga::~FakeVfpga() {
    poller_.request_stop(); // wakes its wait on poll_cv_
    if (poller_.joinable()) poller_.join();
    release_all();
    sim_.reset();
    for (auto& r : regions_) {
        if (r.words != nullptr) ::munmap(const_cast<uint64_t*>(r.words), r.size);
        if (r.memfd >= 0) ::close(r.memfd);
    }
}

long FakeVfpga::region_fd(unsigned long index, unsigned long len, const RegionMemory** out) const {
    if (index > k_region_ctrl) return -EINVAL; // "requested unknown memory mapping for vFPGA device"
    const RegionMemory& r = regions_[index];
    if (len == 0 || len > r.size) return -EINVAL;
    *out = &r;
    return 0;
}

int32_t FakeVfpga::sim_ctid(int64_t ctid) const noexcept {
    if (ctid < 0 || ctid >= k_ctids) return -1;
    return sim_ctid_[static_cast<size_t>(ctid)].load(std::memory_order_acquire);
}

// ---- stores ---------------------------------------------------------------------------------------------

void FakeVfpga::on_store(unsigned long index, unsigned long offset, const void* data, size_t bytes) noexcept {
    uint64_t w[4] = {0, 0, 0, 0};
    std::memcpy(w, data, bytes < sizeof(w) ? bytes : sizeof(w));
    if (index == k_region_ctrl) {
        try {
            sim_->set_csr(w[0], static_cast<uint32_t>(offset / 8));
        } catch (const std::exception& e) {
            std::fprintf(stderr, "coyote fake driver: CSR store: %s\n", e.what());
        }
        refresh_csrs();
        return;
    }
    if (index == k_region_cnfg_avx && avx_ && bytes == 32) on_cnfg_store(static_cast<uint32_t>(offset / 32), w, 4);
    if (index == k_region_cnfg && !avx_ && bytes == 8) on_cnfg_store(static_cast<uint32_t>(offset / 8), w, 1);
}

void FakeVfpga::on_cnfg_store(uint32_t reg, const uint64_t* w, size_t n) noexcept {
    if (is_net_reg(avx_, reg)) { // the NIC's registers: completed with the peer's sim details (fake_rdma.cpp)
        on_net_store(reg, w, n);
        return;
    }
    if (avx_) {
        if (reg == avx::ctrl) on_command({w[0], w[1], w[2], w[3]});
        return;
    }
    if (reg > leg::vaddr_wr) return;
    uint64_t cmd[4];
    {
        std::lock_guard lk(hw_mtx_);
        legacy_[reg] = w[0];
        if (reg != leg::ctrl) return; // VADDR_RD, CTRL_2, VADDR_WR wait for the CTRL store
        std::memcpy(cmd, legacy_, sizeof(cmd));
    }
    on_command(cmd);
}

void FakeVfpga::on_command(const uint64_t (&w)[4]) noexcept {
    const uint64_t rd = w[0], rd_addr = w[1], wr = w[2], wr_addr = w[3];
    if (ctrl::clr_stat.get(rd) != 0) clear(static_cast<int32_t>(ctrl::pid.get(rd)));
    if (ctrl::clr_stat.get(wr) != 0 && (ctrl::clr_stat.get(rd) == 0 || ctrl::pid.get(wr) != ctrl::pid.get(rd)))
        clear(static_cast<int32_t>(ctrl::pid.get(wr)));
    const bool rd_act = ctrl::actv.get(rd) != 0, wr_act = ctrl::actv.get(wr) != 0;
    if (!rd_act && !wr_act) return;
    const uint64_t active = rd_act ? rd : wr;
    Command c;
    c.ctid = sim_ctid(static_cast<int64_t>(ctrl::pid.get(active)));
    c.last = ctrl::last.get(active) != 0;
    const uint64_t strm = ctrl::strm.get(active);
    if (rd_act && wr_act) {
        c.oper = coyote::CoyoteOper::LOCAL_TRANSFER;
        c.src = side_of(rd, rd_addr);
        c.dst = side_of(wr, wr_addr);
    } else if (is_local(strm)) {
        c.oper = rd_act ? coyote::CoyoteOper::LOCAL_READ : coyote::CoyoteOper::LOCAL_WRITE;
        (rd_act ? c.src : c.dst) = rd_act ? side_of(rd, rd_addr) : side_of(wr, wr_addr);
    } else if (strm == k_strm_rdma) {
        const uint64_t op = ctrl::opcode.get(active);
        c.oper = op == k_rdma_read ? coyote::CoyoteOper::REMOTE_RDMA_READ
                 : op == k_rdma_send ? coyote::CoyoteOper::REMOTE_RDMA_SEND
                                     : coyote::CoyoteOper::REMOTE_RDMA_WRITE;
        // The sim's Command: src = the local side, dst = the remote side (a READ's source is the remote side).
        c.src = rd_act ? side_of(wr, wr_addr) : side_of(rd, rd_addr);
        c.dst = rd_act ? side_of(rd, rd_addr) : side_of(wr, wr_addr);
    } else {
        std::fprintf(stderr, "coyote fake driver: TCP commands are not emulated; dropped\n");
        return;
    }
    if (c.ctid < 0) {
        std::fprintf(stderr, "coyote fake driver: command of an unregistered ctid dropped\n");
        return;
    }
    post_to_sim(c);
}

void FakeVfpga::post_to_sim(const Command& c) noexcept {
    try {
        {
            // In order: behind queued commands, or queued itself when the sim vFPGA holds all it takes in flight
            // (the store returns at once, as into the hardware's queue; the credit the host reads counts it).
            std::lock_guard bl(backlog_mtx_);
            if (!backlog_.empty() || sim_->post(c) == PostStatus::busy) {
                if (backlog_.size() >= coyote::CMD_FIFO_DEPTH) { // the host ignored the credit: the hardware would lose it
                    std::fprintf(stderr, "coyote fake driver: the command queue overflowed (%u queued); command "
                                         "dropped\n", static_cast<unsigned>(backlog_.size()));
                    return;
                }
                backlog_.push_back(c);
                backlog_n_.fetch_add(1, std::memory_order_relaxed);
            }
        }
        posted_.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard lk(hw_mtx_);
        publish();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "coyote fake driver: the vFPGA dropped a command: %s\n", e.what());
    }
    poll_cv_.notify_one();
}

void FakeVfpga::drop_backlog(int32_t s) noexcept {
    std::lock_guard bl(backlog_mtx_);
    const auto gone = std::erase_if(backlog_, [s](const Command& c) { return c.ctid == s; });
    backlog_n_.fetch_sub(static_cast<uint32_t>(gone), std::memory_order_relaxed);
}

void FakeVfpga::drain_backlog() noexcept {
    std::lock_guard bl(backlog_mtx_);
    while (!backlog_.empty()) {
        const Command& c = backlog_.front();
        try {
            (void)sim_->poll_completed(c.ctid, CmplClass::local_write); // progress for the sim's models
            if (sim_->post(c) == PostStatus::busy) return;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "coyote fake driver: the vFPGA dropped a queued command: %s\n", e.what());
        }
        backlog_.pop_front();
        backlog_n_.fetch_sub(1, std::memory_order_relaxed);
    }
}

void FakeVfpga::clear(int32_t ctid) noexcept {
    const int32_t s = sim_ctid(ctid);
    if (s < 0) return;
    std::lock_guard lk(hw_mtx_);
    try {
        sim_->clear_completed(s);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "coyote fake driver: clear: %s\n", e.what());
    }
    publish();
}

// ---- what the hardware writes back ---------------------------------------------------------------------------

void FakeVfpga::publish() noexcept {
    // Read every count first; a command they include has finished in the user logic, so the CSRs are refreshed
    // before the counts become visible: the host never sees a completion with the registers of before it.
    std::array<std::array<uint32_t, 4>, k_ctids> counts{};
    std::array<bool, k_ctids> live{};
    bool changed = false;
    for (int c = 0; c < k_ctids; ++c) {
        const int32_t s = sim_ctid_[static_cast<size_t>(c)].load(std::memory_order_acquire);
        if (s < 0) continue;
        live[static_cast<size_t>(c)] = true;
        auto& v = counts[static_cast<size_t>(c)];
        // The hardware's writeback reads the counters; it never waits for them (poll_completed would sleep while a
        // counter stands still, holding hw_mtx_ against the next post).
        try {
            sim_->raise_pending_error(s);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "coyote fake driver: %s\n", e.what());
        }
        for (size_t k = 0; k < 4; ++k) {
            try {
                v[k] = sim_->completed(s, k_classes[k]);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "coyote fake driver: %s\n", e.what());
            }
        }
        changed = changed || v != shown_[static_cast<size_t>(c)];
    }
    if (changed) refresh_csrs();
    shown_ = counts;
    volatile uint64_t* cnfg = regions_[avx_ ? 2 : 1].words;
    auto* wb = reinterpret_cast<volatile uint32_t*>(regions_[0].words);
    for (uint32_t uc = 0; uc < static_cast<uint32_t>(k_ctids); ++uc) {
        if (!live[uc]) continue;
        const auto& v = counts[uc];
        if (wb_)
            for (uint32_t k = 0; k < 4; ++k) wb[k * k_ctids + uc] = v[k];
        if (avx_) {
            cnfg[4 * (avx::stat_dma + uc)] = (uint64_t(v[1]) << 32) | v[0];
            cnfg[4 * (avx::stat_dma + uc) + 1] = (uint64_t(v[3]) << 32) | v[2];
        } else {
            cnfg[leg::stat_dma + uc] = (uint64_t(v[1]) << 32) | v[0];
            cnfg[leg::stat_rdma + uc] = (uint64_t(v[3]) << 32) | v[2];
        }
    }
    // Commands in the queue, the sim's in flight and those the shell still queues: the credit the host reads.
    cnfg[0] = sim_->read_cnfg(0) + backlog_n_.load(std::memory_order_relaxed);
}

void FakeVfpga::refresh_csrs() noexcept {
    const std::lock_guard lk(csr_mtx_);
    volatile uint64_t* csr = regions_[3].words;
    const uint32_t n = static_cast<uint32_t>(k_size_ctrl / 8) < coyote::sim::k_csr_words
                           ? static_cast<uint32_t>(k_size_ctrl / 8)
                           : coyote::sim::k_csr_words;
    for (uint32_t i = 0; i < n; ++i) csr[i] = sim_->get_csr(i);
}

void FakeVfpga::poll_loop(std::stop_token stop) noexcept {
    std::unique_lock lk(hw_mtx_);
    uint64_t seen = 0;
    while (!stop.stop_requested()) {
        if (backlog_n_.load(std::memory_order_relaxed) > 0) {
            lk.unlock();
            drain_backlog();
            lk.lock();
        }
        const bool busy = sim_->read_cnfg(0) > 0 || backlog_n_.load(std::memory_order_relaxed) > 0;
        publish();
        const uint64_t now = posted_.load(std::memory_order_relaxed);
        if (!busy && now != seen) { // the queue drained: models may have changed CSRs on the way
            seen = now;
            lk.unlock();
            refresh_csrs();
            lk.lock();
            continue;
        }
        // Until the next post, a stop request or the poll interval.
        (void)poll_cv_.wait_for(lk, stop, busy ? std::chrono::microseconds(50) : std::chrono::microseconds(2000),
                                [&] { return posted_.load(std::memory_order_relaxed) != now; });
    }
}

}  // namespace coyote_fake
