// The hw backend's Device: opening, ctids, the shell configuration, registers, command posting, completions.
// Remote-access windows (cThread::registerWindow / unregisterWindow) are a sim-only extension: this Device keeps
// the contract's register_window / unregister_window, which throw Errc::not_supported naming the backend.
#include "backend/hw/hw_device.hpp"

#include <dlfcn.h>

#include <iomanip>
#include <sstream>

#include "backend/registers.hpp"

namespace coyote::detail::hw {

MmioHook find_mmio_hook() noexcept {
    return reinterpret_cast<MmioHook>(::dlsym(RTLD_DEFAULT, k_mmio_hook_symbol));
}

namespace {

/// Commands in flight before the poster must wait (stock cThread: CMD_FIFO_DEPTH - CMD_FIFO_THR).
constexpr int32_t k_credit_threshold = CMD_FIFO_DEPTH - CMD_FIFO_THR;
constexpr uint32_t k_legacy_words = abi::k_cnfg_size / sizeof(uint64_t);
constexpr uint32_t k_avx_regs = abi::k_cnfg_avx_size / 32;
constexpr uint32_t k_csr_words = abi::k_ctrl_size / sizeof(uint64_t);
constexpr uint32_t k_stat_dma = static_cast<uint32_t>(CnfgLegRegs::STAT_DMA_REG);
constexpr uint32_t k_stat_rdma = static_cast<uint32_t>(CnfgLegRegs::STAT_RDMA_REG);

std::string bad_config(const std::string& path, const std::string& what) {
    return "the shell configuration read from " + path + " makes no sense (" + what +
           "): a driver of another version than Coyote v0.2.x?";
}

}  // namespace

HwDevice::HwDevice(uint32_t device, int32_t vfid)
    : device_(device), vfid_(vfid), file_(device_file(device, vfid)), mmio_(find_mmio_hook()) {
    read_identity();
    map_regions();
}

HwDevice::~HwDevice() {
    irq_.reset(); // joins the interrupt thread before the file closes
}

void HwDevice::read_identity() {
    abi::Args args{};
    args[1] = ~0ULL; // the drivers we read fill slot 0 only; a newer one may return the control word in slot 1
    file_.call(abi::k_read_shell_config, args);
    shell_word_ = args[abi::slot::value];
    if ((shell_word_ & ~abi::k_shell_word_known_bits) != 0)
        throw_error(Errc::protocol, "ioctl IOCTL_READ_SHELL_CONFIG on " + file_.path(),
                    bad_config(file_.path(), "unknown bits in " + std::to_string(shell_word_)));
    fpgaCnfg cfg;
    cfg.parseCnfg(shell_word_);
    if (cfg.n_fpga_reg <= 0 || cfg.n_fpga_reg > 16 || vfid_ >= cfg.n_fpga_reg)
        throw_error(Errc::protocol, "ioctl IOCTL_READ_SHELL_CONFIG on " + file_.path(),
                    bad_config(file_.path(), "n_fpga_reg " + std::to_string(cfg.n_fpga_reg) + " for vFPGA " +
                                                 std::to_string(vfid_)));
    control_word_ = args[1] != ~0ULL ? args[1] : abi::default_control_word(shell_word_);
    avx_ = cfg.en_avx;
    wb_ = cfg.en_wb;
    mem_ = cfg.en_mem;
    args = {};
    file_.call(abi::k_get_ip_address, args);
    ip_ = static_cast<uint32_t>(args[abi::slot::value]);
    args = {};
    file_.call(abi::k_get_mac_address, args);
    mac_ = args[abi::slot::value];
}

void HwDevice::map_regions() {
    if (avx_)
        cnfg_map_ = file_.map(abi::Region::cnfg_avx, abi::k_cnfg_avx_size, "AVX configuration");
    else
        cnfg_map_ = file_.map(abi::Region::cnfg, abi::k_cnfg_size, "configuration");
    ctrl_map_ = file_.map(abi::Region::ctrl, abi::k_ctrl_size, "user control (CSR)");
    cnfg_ = static_cast<volatile uint64_t*>(cnfg_map_.get());
    ctrl_ = static_cast<volatile uint64_t*>(ctrl_map_.get());
    if (wb_) {
        wback_map_ = file_.map(abi::Region::wback, abi::k_wback_size, "writeback");
        wback_ = static_cast<volatile uint32_t*>(wback_map_.get());
    }
}

void HwDevice::set_ip_address(uint32_t ip) {
    abi::Args args{};
    args[abi::slot::value] = ip;
    file_.call(abi::k_set_ip_address, args);
    ip_ = ip;
}

void HwDevice::set_mac_address(uint64_t mac) {
    abi::Args args{};
    args[abi::slot::value] = mac;
    file_.call(abi::k_set_mac_address, args);
    mac_ = mac;
}

// ---- ctids ----------------------------------------------------------------------------------------------

int32_t HwDevice::register_ctid(pid_t hpid) {
    abi::Args args{};
    args[abi::slot::hpid] = static_cast<uint64_t>(hpid);
    const int err = file_.try_call(abi::k_register_ctid, args);
    if (err == ENOMEM)
        throw_error(Errc::resource_exhausted, std::string("ioctl IOCTL_REGISTER_CTID on ") + file_.path(),
                    "errno ENOMEM: all " + std::to_string(N_CTID_MAX) + " Coyote threads of vFPGA " +
                        std::to_string(vfid_) + " are registered");
    if (err != 0) file_.fail(abi::k_register_ctid, err, {});
    const auto ctid = static_cast<int32_t>(args[abi::slot::ctid_out]);
    if (ctid < 0 || ctid >= N_CTID_MAX)
        throw_error(Errc::protocol, "ioctl IOCTL_REGISTER_CTID on " + file_.path(),
                    "the driver returned ctid " + std::to_string(ctid) + " (a driver of another version?)");
    cmd_cnt_[static_cast<size_t>(ctid)].store(0, std::memory_order_relaxed);
    active_[static_cast<size_t>(ctid)].store(true, std::memory_order_release);
    return ctid;
}

void HwDevice::unregister_ctid(int32_t ctid) noexcept {
    if (ctid < 0 || ctid >= N_CTID_MAX) return;
    if (InterruptThread* irq = interrupt_thread(false)) irq->remove(ctid);
    {
        std::lock_guard lk(mem_mtx_);
        for (auto it = user_maps_.begin(); it != user_maps_.end();)
            it = it->first == ctid ? user_maps_.erase(it) : std::next(it);
    }
    active_[static_cast<size_t>(ctid)].store(false, std::memory_order_release);
    abi::Args args{};
    args[abi::slot::ctid] = static_cast<uint64_t>(ctid);
    (void)file_.try_call(abi::k_unregister_ctid, args);
}

void HwDevice::check_ctid(int32_t ctid, const char* call) const {
    if (ctid < 0 || ctid >= N_CTID_MAX || !active_[static_cast<size_t>(ctid)].load(std::memory_order_acquire))
        throw_error(Errc::invalid_argument, call,
                    "ctid " + std::to_string(ctid) + " is not registered on " + file_.path());
}

// ---- registers ------------------------------------------------------------------------------------------

void HwDevice::set_csr(uint64_t val, uint32_t offs) {
    if (offs >= k_csr_words)
        throw_error(Errc::invalid_argument, "setCSR",
                    "CSR " + std::to_string(offs) + " is outside the user control region (" +
                        std::to_string(k_csr_words) + " words)");
    mmio_.store(ctrl_ + offs, val);
}

uint64_t HwDevice::get_csr(uint32_t offs) const {
    if (offs >= k_csr_words)
        throw_error(Errc::invalid_argument, "getCSR",
                    "CSR " + std::to_string(offs) + " is outside the user control region (" +
                        std::to_string(k_csr_words) + " words)");
    return Mmio::load(ctrl_ + offs);
}

void HwDevice::write_cnfg(uint32_t reg, std::span<const uint64_t> words) {
    const uint32_t limit = avx_ ? k_avx_regs : k_legacy_words;
    if (reg >= limit)
        throw_error(Errc::invalid_argument, "writeCnfg",
                    "configuration register " + std::to_string(reg) + " is outside the " +
                        (avx_ ? "AVX" : "legacy") + " region");
    if (avx_ ? (words.empty() || words.size() > 4) : words.size() != 1)
        throw_error(Errc::invalid_argument, "writeCnfg",
                    std::to_string(words.size()) + " words written to configuration register " + std::to_string(reg) +
                        ", the layout takes " + (avx_ ? "1..4 (one 256-bit store)" : "exactly 1"));
    if (avx_) {
        uint64_t w[4] = {0, 0, 0, 0};
        for (size_t i = 0; i < words.size(); ++i) w[i] = words[i];
        mmio_.store256(cnfg_ + 4 * static_cast<size_t>(reg), w);
    } else {
        mmio_.store(cnfg_ + reg, words[0]);
    }
}

uint64_t HwDevice::read_cnfg(uint32_t reg) const {
    const uint32_t limit = avx_ ? k_avx_regs : k_legacy_words;
    if (reg >= limit)
        throw_error(Errc::invalid_argument, "readCnfg", "configuration register " + std::to_string(reg) + " is outside the region");
    if (!avx_) return Mmio::load(cnfg_ + reg);
    uint64_t w[4];
    Mmio::load256(cnfg_ + 4 * static_cast<size_t>(reg), w);
    return w[0];
}

// ---- commands -------------------------------------------------------------------------------------------

void HwDevice::store_command(const abi::CmdWords& w) {
    if (avx_) {
        const uint64_t words[4] = {w.src_ctrl, w.src_addr, w.dst_ctrl, w.dst_addr};
        mmio_.store256(cnfg_, words);
        return;
    }
    std::lock_guard lk(legacy_post_mtx_);
    for (const uint32_t reg : abi::k_legacy_store_order) mmio_.store(cnfg_ + reg, abi::legacy_word(w, reg));
}

namespace {

/// What the command words cannot carry or the shell cannot serve, refused before posting (the words would mask the
/// field: stream 5 ran as host, dest 16 as dest 0; the rest the driver or the FPGA drops without a completion).
[[gnu::cold, gnu::noinline]] void check_local_side(CoyoteOper oper, const SgSide& s, bool mem, const char* which) {
    const std::string call = std::string("invoke ") + oper_name(oper);
    if (s.len > MAX_TRANSFER_SIZE)
        throw_error(Errc::invalid_argument, call,
                    std::string(which) + " length " + std::to_string(s.len) + " exceeds MAX_TRANSFER_SIZE (" +
                        std::to_string(MAX_TRANSFER_SIZE) + ")");
    if (s.stream != STRM_HOST && s.stream != STRM_CARD)
        throw_error(Errc::invalid_argument, call,
                    std::string(which) + " stream " + std::to_string(s.stream) +
                        " is not a local stream (STRM_HOST or STRM_CARD)");
    if (s.stream == STRM_CARD && !mem)
        throw_error(Errc::not_supported, call, std::string(which) + ": STRM_CARD, but the shell has no card memory");
    if (s.dest > CTRL_DEST_MASK)
        throw_error(Errc::invalid_argument, call,
                    std::string(which) + " dest " + std::to_string(s.dest) + " is out of range (0.." +
                        std::to_string(CTRL_DEST_MASK) + ")");
    if (s.addr == 0 && s.len > 0) throw_error(Errc::not_mapped, call, std::string(which) + ": null address");
}

inline bool local_side_ok(const SgSide& s, bool mem) noexcept {
    return s.len <= MAX_TRANSFER_SIZE && (s.stream == STRM_HOST || (s.stream == STRM_CARD && mem)) &&
           s.dest <= CTRL_DEST_MASK && (s.addr != 0 || s.len == 0);
}

} // namespace

PostStatus HwDevice::post(const Command& cmd) {
    if (cmd.ctid < 0 || cmd.ctid >= N_CTID_MAX) [[unlikely]]
        check_ctid(cmd.ctid, "invoke");
    const bool local = cmd.oper == CoyoteOper::LOCAL_READ || cmd.oper == CoyoteOper::LOCAL_WRITE ||
                       cmd.oper == CoyoteOper::LOCAL_TRANSFER;
    if (!local && !isRemoteRdma(cmd.oper)) [[unlikely]]
        throw_error(Errc::invalid_argument, std::string("invoke ") + oper_name(cmd.oper),
                    "the hw backend posts LOCAL_READ/WRITE/TRANSFER and REMOTE_RDMA_* commands");
    if (local) {
        const bool rd = cmd.oper != CoyoteOper::LOCAL_WRITE, wr = cmd.oper != CoyoteOper::LOCAL_READ;
        if (rd && !local_side_ok(cmd.src, mem_)) [[unlikely]]
            check_local_side(cmd.oper, cmd.src, mem_, "source");
        if (wr && !local_side_ok(cmd.dst, mem_)) [[unlikely]]
            check_local_side(cmd.oper, cmd.dst, mem_, "destination");
    }
    auto& cnt = cmd_cnt_[static_cast<size_t>(cmd.ctid)];
    if (cnt.load(std::memory_order_relaxed) > k_credit_threshold) {
        // The credit register: commands the shell still holds in its queue (CTRL_REG read, cnfg_slave*.sv).
        const uint32_t queued = avx_ ? Mmio::load256_lane(cnfg_, 0) : static_cast<uint32_t>(Mmio::load(cnfg_));
        const auto used = static_cast<int32_t>(queued);
        cnt.store(used, std::memory_order_relaxed);
        if (used > k_credit_threshold) return PostStatus::busy;
    }
    store_command(abi::encode_command(cmd));
    cnt.fetch_add(1, std::memory_order_relaxed);
    return PostStatus::ok;
}

// ---- completions ----------------------------------------------------------------------------------------

uint32_t HwDevice::status_count(int32_t ctid, CmplClass cls) const noexcept {
    const auto c = static_cast<size_t>(ctid);
    if (avx_) // STAT_DMA_REG + ctid: 32-bit lanes rd, wr, rdma rd, rdma wr
        return Mmio::load256_lane(cnfg_ + 4 * (k_stat_dma + c), static_cast<uint32_t>(cls));
    const bool rdma = cls == CmplClass::rdma_read || cls == CmplClass::rdma_write;
    const uint64_t w = Mmio::load(cnfg_ + (rdma ? k_stat_rdma : k_stat_dma) + c);
    const bool high = cls == CmplClass::local_write || cls == CmplClass::rdma_write;
    return static_cast<uint32_t>(high ? w >> 32 : w);
}

uint32_t HwDevice::completed(int32_t ctid, CmplClass cls) const {
    if (ctid < 0 || ctid >= N_CTID_MAX) [[unlikely]]
        check_ctid(ctid, "checkCompleted");
    if (wback_ != nullptr) return Mmio::load32(wback_ + static_cast<uint32_t>(cls) * N_CTID_MAX + static_cast<uint32_t>(ctid));
    return status_count(ctid, cls);
}

void HwDevice::clear_completed(int32_t ctid) {
    check_ctid(ctid, "clearCompleted");
    if (wback_ != nullptr)
        for (uint32_t i = 0; i < N_WBACKS; ++i) wback_[i * N_CTID_MAX + static_cast<uint32_t>(ctid)] = 0;
    const abi::CmdWords w = abi::encode_clear(ctid);
    if (avx_) {
        const uint64_t words[4] = {w.src_ctrl, w.src_addr, w.dst_ctrl, w.dst_addr};
        mmio_.store256(cnfg_, words);
    } else {
        std::lock_guard lk(legacy_post_mtx_);
        mmio_.store(cnfg_ + static_cast<uint32_t>(CnfgLegRegs::CTRL_REG_2), w.dst_ctrl);
        mmio_.store(cnfg_ + static_cast<uint32_t>(CnfgLegRegs::CTRL_REG), w.src_ctrl);
    }
}

// ---- interrupts -----------------------------------------------------------------------------------------

void HwDevice::set_interrupt_handler(int32_t ctid, InterruptHandler handler) {
    check_ctid(ctid, "setInterruptHandler");
    if (!handler) {
        if (InterruptThread* irq = interrupt_thread(false)) irq->remove(ctid);
        return;
    }
    interrupt_thread(true)->install(ctid, std::move(handler));
}

InterruptThread* HwDevice::interrupt_thread(bool create) {
    std::lock_guard lk(mem_mtx_);
    if (!irq_ && create) irq_ = std::make_unique<InterruptThread>(file_); // lives until the device closes
    return irq_.get();
}

// ---- debug ----------------------------------------------------------------------------------------------

std::string HwDevice::debug_string(int32_t ctid) const {
    std::ostringstream os;
    auto line = [&os](const char* label, uint64_t v) { os << std::setw(35) << label << " \t" << v << "\n"; };
    line("Completed local reads:", completed(ctid, CmplClass::local_read));
    line("Completed local writes:", completed(ctid, CmplClass::local_write));
    line("Completed RDMA reads:", completed(ctid, CmplClass::rdma_read));
    line("Completed RDMA writes:", completed(ctid, CmplClass::rdma_write));
    line("Commands in the shell queue:", static_cast<uint32_t>(Mmio::load(cnfg_)));
    os << stats_lines();
    return os.str();
}

std::string HwDevice::stats_lines() const {
    std::ostringstream os;
    fpgaCnfg cfg;
    cfg.parseCnfg(shell_word_);
    abi::Args args{};
    if (file_.try_call(abi::k_shell_hdma_stats, args) == 0) {
        for (int ch = 0; ch < cfg.n_xdma_chan && ch < 3; ++ch)
            for (int i = 0; i < abi::k_hdma_stat_words_per_chan; ++i)
                os << std::setw(30) << "Host DMA channel " << ch << " word " << i << ": \t"
                   << args[static_cast<size_t>(ch * abi::k_hdma_stat_words_per_chan + i)] << "\n";
    }
    args = {};
    if (cfg.en_net && file_.try_call(abi::k_shell_net_stats, args) == 0)
        for (int i = 0; i < abi::k_net_stat_words; ++i)
            os << std::setw(30) << "Network statistic " << i << ": \t" << args[static_cast<size_t>(i)] << "\n";
    return os.str();
}

std::shared_ptr<Device> open(uint32_t device, int32_t vfid) { return std::make_shared<HwDevice>(device, vfid); }

}  // namespace coyote::detail::hw
