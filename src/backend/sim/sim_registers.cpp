// The configuration registers of a sim vFPGA, in both layouts (reference section 6).
#include <chrono>
#include <thread>

#include "backend/registers.hpp"
#include "backend/sim/sim_device.hpp"

namespace coyote::detail::sim {

namespace {

enum class RegKind {
    unknown,
    ctrl,       ///< command / clear-status register
    staged,     ///< legacy VADDR_RD, CTRL_2, VADDR_WR: staged for the next CTRL write
    plain,      ///< stored as written (ISR, writeback addresses, offload/sync control)
    read_only,  ///< status registers
    net,        ///< NET_ARP, RDMA_CTX, RDMA_CONN: the NIC's
    tcp,        ///< TCP control
    tcp_status  ///< TCP status (read-only)
};

constexpr uint32_t k_stat_dma = 64;
constexpr uint32_t k_stat_rdma = 128;

RegKind avx_kind(uint32_t reg) {
    using R = CnfgAvxRegs;
    if (reg >= k_stat_dma && reg < k_stat_dma + N_CTID_MAX) return RegKind::read_only;
    switch (static_cast<R>(reg)) {
    case R::CTRL_REG: return RegKind::ctrl;
    case R::ISR_REG:
    case R::WBACK_REG:
    case R::OFFLOAD_CTRL_REG:
    case R::SYNC_CTRL_REG: return RegKind::plain;
    case R::STAT_REG_0:
    case R::STAT_REG_1:
    case R::OFFLOAD_STAT_REG:
    case R::SYNC_STAT_REG: return RegKind::read_only;
    case R::NET_ARP_REG:
    case R::RDMA_CTX_REG:
    case R::RDMA_CONN_REG: return RegKind::net;
    case R::TCP_OPEN_PORT_REG:
    case R::TCP_OPEN_CONN_REG: return RegKind::tcp;
    case R::TCP_OPEN_PORT_STAT_REG:
    case R::TCP_OPEN_CONN_STAT_REG: return RegKind::tcp_status;
    default: return RegKind::unknown;
    }
}

RegKind legacy_kind(uint32_t reg) {
    using R = CnfgLegRegs;
    if (reg >= k_stat_dma && reg < k_stat_rdma + N_CTID_MAX) return RegKind::read_only;
    if (reg >= static_cast<uint32_t>(R::STAT_REG_0) && reg <= static_cast<uint32_t>(R::STAT_REG_7))
        return RegKind::read_only;
    switch (static_cast<R>(reg)) {
    case R::CTRL_REG: return RegKind::ctrl;
    case R::VADDR_RD_REG:
    case R::CTRL_REG_2:
    case R::VADDR_WR_REG: return RegKind::staged;
    case R::ISR_REG:
    case R::ISR_PID_MISS_REG:
    case R::ISR_VADDR_MISS_REG:
    case R::ISR_LEN_MISS_REG:
    case R::WBACK_REG_0:
    case R::WBACK_REG_1:
    case R::WBACK_REG_2:
    case R::WBACK_REG_3:
    case R::OFFLOAD_CTRL_REG:
    case R::OFFLOAD_HOST_OFFS_REG:
    case R::OFFLOAD_CARD_OFFS_REG:
    case R::SYNC_CTRL_REG:
    case R::SYNC_HOST_OFFS_REG:
    case R::SYNC_CARD_OFFS_REG: return RegKind::plain;
    case R::OFFLOAD_STAT_REG:
    case R::SYNC_STAT_REG: return RegKind::read_only;
    case R::NET_ARP_REG:
    case R::RDMA_CTX_REG_0:
    case R::RDMA_CTX_REG_1:
    case R::RDMA_CTX_REG_2:
    case R::RDMA_CONN_REG_0:
    case R::RDMA_CONN_REG_1:
    case R::RDMA_CONN_REG_2: return RegKind::net;
    case R::TCP_OPEN_PORT_REG:
    case R::TCP_OPEN_CONN_REG: return RegKind::tcp;
    case R::TCP_OPEN_PORT_STAT_REG:
    case R::TCP_OPEN_CONN_STAT_REG: return RegKind::tcp_status;
    default: return RegKind::unknown;
    }
}

/// "configuration register <reg> (<layout> layout)", for messages.
std::string register_name(uint32_t reg, bool avx) {
    return "configuration register " + std::to_string(reg) + " (" + (avx ? "AVX" : "legacy") + " layout)";
}

}  // namespace

void SimDevice::write_cnfg(uint32_t reg, std::span<const uint64_t> words) {
    const bool avx = cfg_.en_avx;
    const RegKind kind = avx ? avx_kind(reg) : legacy_kind(reg);
    const std::string name = register_name(reg, avx);
    if (kind == RegKind::unknown)
        throw_error(Errc::invalid_argument, "writeCnfg", name + " does not exist");
    if (avx ? (words.empty() || words.size() > 4) : words.size() != 1)
        throw_error(Errc::invalid_argument, "writeCnfg",
                    name + ": " + std::to_string(words.size()) + " words written, the layout takes " +
                        (avx ? "1..4 (one 256-bit store)" : "exactly 1"));
    if (kind == RegKind::read_only || kind == RegKind::tcp_status)
        throw_error(Errc::invalid_argument, "writeCnfg", name + " is read-only");
    if (kind == RegKind::net && !cfg_.en_rdma)
        throw_error(Errc::not_supported, "writeCnfg", name + " belongs to the RDMA stack, disabled in the shell (rdma=0)");
    if (kind == RegKind::tcp && !cfg_.en_tcp)
        throw_error(Errc::not_supported, "writeCnfg", name + " belongs to the TCP stack, disabled in the shell (tcp=0)");

    std::array<uint64_t, 4> w{};
    std::copy(words.begin(), words.end(), w.begin());
    std::array<uint64_t, 4> cmd{};
    bool fire = false;
    {
        std::lock_guard lk(cnfg_mtx_);
        cnfg_[reg] = w;
        if (kind == RegKind::staged) {
            legacy_cmd_[reg == static_cast<uint32_t>(CnfgLegRegs::VADDR_RD_REG)   ? 0
                        : reg == static_cast<uint32_t>(CnfgLegRegs::CTRL_REG_2) ? 1
                                                                               : 2] = w[0];
        } else if (kind == RegKind::ctrl) {
            fire = true;
            if (avx) {
                cmd = w; // memory order: src ctrl, src addr, dst ctrl, dst addr
            } else {
                cmd = {w[0], legacy_cmd_[0], legacy_cmd_[1], legacy_cmd_[2]};
                legacy_cmd_ = {};
            }
        }
    }
    if (kind == RegKind::net) nic_->on_cnfg_write(reg, words);
    if (fire) post_from_registers(cmd[1], cmd[0], cmd[3], cmd[2]);
}

void SimDevice::post_from_registers(uint64_t src_addr, uint64_t src_ctrl, uint64_t dst_addr, uint64_t dst_ctrl) {
    const CtrlWord s = CtrlWord::decode(src_ctrl);
    const CtrlWord d = CtrlWord::decode(dst_ctrl);
    if (s.clr_stat) clear_completed(static_cast<int32_t>(s.ctid));
    if (d.clr_stat && (!s.clr_stat || d.ctid != s.ctid)) clear_completed(static_cast<int32_t>(d.ctid));
    if (!s.start && !d.start) return;

    Command c;
    c.ctid = static_cast<int32_t>(s.start ? s.ctid : d.ctid);
    c.last = s.start ? s.last : d.last;
    c.src = SgSide{src_addr, s.len, s.stream, s.dest};
    c.dst = SgSide{dst_addr, d.len, d.stream, d.dest};
    if (s.start && s.stream == STRM_RDMA) {
        switch (static_cast<RdmaOpcode>(s.opcode)) {
        case RdmaOpcode::read: c.oper = CoyoteOper::REMOTE_RDMA_READ; break;
        case RdmaOpcode::write: c.oper = CoyoteOper::REMOTE_RDMA_WRITE; break;
        case RdmaOpcode::send: c.oper = CoyoteOper::REMOTE_RDMA_SEND; break;
        default:
            throw_error(Errc::invalid_argument, "writeCnfg",
                        "RDMA opcode " + std::to_string(s.opcode) + " in the command word is unknown");
        }
        c.src.stream = STRM_HOST;
        c.dst.len = s.len;
    } else {
        c.oper = s.start && d.start ? CoyoteOper::LOCAL_TRANSFER
                 : s.start          ? CoyoteOper::LOCAL_READ
                                    : CoyoteOper::LOCAL_WRITE;
    }
    // The command FIFO: wait (bounded) while it is full, as the host would.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (post(c) == PostStatus::busy) {
        if (std::chrono::steady_clock::now() > deadline)
            throw_error(Errc::timeout, "writeCnfg",
                        "the command FIFO of ctid " + std::to_string(c.ctid) + " stayed full for 10 s");
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
}

uint64_t SimDevice::read_cnfg(uint32_t reg) const {
    const bool avx = cfg_.en_avx;
    const RegKind kind = avx ? avx_kind(reg) : legacy_kind(reg);
    if (kind == RegKind::unknown)
        throw_error(Errc::invalid_argument, "readCnfg", register_name(reg, avx) + " does not exist");
    auto total = [&](auto member) {
        uint64_t n = 0;
        for (const auto& st : ctids_) n += (st.*member).load(std::memory_order_relaxed);
        return n;
    };
    if (kind == RegKind::ctrl) { // commands in the FIFO
        uint64_t n = 0;
        for (const auto& st : ctids_) n += static_cast<uint64_t>(std::max(0, st.inflight.load(std::memory_order_relaxed)));
        return n;
    }
    if (reg >= k_stat_dma && reg < k_stat_dma + N_CTID_MAX) {
        const auto c = static_cast<int32_t>(reg - k_stat_dma);
        return (uint64_t(completed(c, CmplClass::local_write)) << 32) | completed(c, CmplClass::local_read);
    }
    if (!avx && reg >= k_stat_rdma && reg < k_stat_rdma + N_CTID_MAX) {
        const auto c = static_cast<int32_t>(reg - k_stat_rdma);
        return (uint64_t(completed(c, CmplClass::rdma_write)) << 32) | completed(c, CmplClass::rdma_read);
    }
    if (avx) {
        if (reg == static_cast<uint32_t>(CnfgAvxRegs::STAT_REG_0)) return sent_local_reads_.load();
        if (reg == static_cast<uint32_t>(CnfgAvxRegs::STAT_REG_1)) return 0; // invalidations
    } else {
        switch (static_cast<CnfgLegRegs>(reg)) {
        case CnfgLegRegs::STAT_REG_0: return sent_local_reads_.load();
        case CnfgLegRegs::STAT_REG_1: return sent_local_writes_.load();
        case CnfgLegRegs::STAT_REG_2: return sent_rdma_reads_.load();
        case CnfgLegRegs::STAT_REG_3: return sent_rdma_writes_.load();
        case CnfgLegRegs::STAT_REG_4: return 0; // invalidations
        case CnfgLegRegs::STAT_REG_5: return total(&CtidState::page_faults);
        case CnfgLegRegs::STAT_REG_6: return total(&CtidState::interrupts);
        case CnfgLegRegs::STAT_REG_7: return 0;
        default: break;
        }
    }
    if (kind == RegKind::net && nic_) return nic_->read_cnfg(reg);
    std::lock_guard lk(cnfg_mtx_);
    auto it = cnfg_.find(reg);
    return it == cnfg_.end() ? 0 : it->second[0];
}

}  // namespace coyote::detail::sim
