// coyote-mpi sim backend: the NIC's configuration registers (RDMA_CTX / RDMA_CONN / NET_ARP, both layouts),
// decoded into queue pair state and published for peers.
#include <coyote/error.hpp>

#include "backend/sim/net/nic_impl.hpp"

namespace coyote::detail::sim::net {

namespace {
/// Stores word `i` of a context the legacy layout writes as three registers; the last one (i = 2) completes it:
/// then the context is copied to `commit` and the result is true.
bool stage(std::array<uint64_t, 3>& staged, uint32_t i, uint64_t word, std::array<uint64_t, 3>& commit) {
    staged[i] = word;
    if (i != 2) return false;
    commit = staged;
    return true;
}
}  // namespace

bool NicImpl::on_cnfg_write(uint32_t reg, std::span<const uint64_t> words) {
    if (words.empty()) return false;
    if (!host_.avx_layout()) return on_legacy_write(reg, words[0]);
    if (!on_avx_write(reg, words)) return false;
    std::lock_guard lk(mtx_);
    last_word_[reg] = words[0];
    return true;
}

bool NicImpl::on_avx_write(uint32_t reg, std::span<const uint64_t> words) {
    std::array<uint64_t, 3> w{};
    for (size_t i = 0; i < 3 && i < words.size(); ++i) w[i] = words[i];
    switch (static_cast<CnfgAvxRegs>(reg)) {
    case CnfgAvxRegs::RDMA_CTX_REG: commit_ctx(w); return true;
    case CnfgAvxRegs::RDMA_CONN_REG: commit_conn(w); return true;
    case CnfgAvxRegs::NET_ARP_REG: arp_lookup(static_cast<uint32_t>(words[0])); return true;
    default: return false;
    }
}

bool NicImpl::on_legacy_write(uint32_t reg, uint64_t word) {
    const auto r = static_cast<CnfgLegRegs>(reg);
    std::array<uint64_t, 3> commit{};
    bool do_ctx = false, do_conn = false;
    {
        std::lock_guard lk(mtx_);
        switch (r) {
        case CnfgLegRegs::RDMA_CTX_REG_0:
        case CnfgLegRegs::RDMA_CTX_REG_1:
        case CnfgLegRegs::RDMA_CTX_REG_2:
            do_ctx = stage(leg_ctx_, reg - static_cast<uint32_t>(CnfgLegRegs::RDMA_CTX_REG_0), word, commit);
            break;
        case CnfgLegRegs::RDMA_CONN_REG_0:
        case CnfgLegRegs::RDMA_CONN_REG_1:
        case CnfgLegRegs::RDMA_CONN_REG_2:
            do_conn = stage(leg_conn_, reg - static_cast<uint32_t>(CnfgLegRegs::RDMA_CONN_REG_0), word, commit);
            break;
        case CnfgLegRegs::NET_ARP_REG: break;
        default: return false;
        }
        last_word_[reg] = word;
    }
    if (do_ctx) commit_ctx(commit);
    if (do_conn) commit_conn(commit);
    if (r == CnfgLegRegs::NET_ARP_REG) arp_lookup(static_cast<uint32_t>(word));
    return true;
}

uint64_t NicImpl::read_cnfg(uint32_t reg) const {
    std::lock_guard lk(mtx_);
    const auto it = last_word_.find(reg);
    return it == last_word_.end() ? 0 : it->second;
}

int32_t NicImpl::ctid_of_local_qpn(uint32_t local_qpn) const noexcept {
    const uint32_t vf_bits = (local_qpn >> PID_BITS) & 0xFu;
    if (vf_bits != (static_cast<uint32_t>(host_.vfid()) & 0xFu) || (local_qpn >> (PID_BITS + 4)) != 0) {
        shared_->counters.ctx_rejected.fetch_add(1, std::memory_order_relaxed);
        return -1;
    }
    return static_cast<int32_t>(local_qpn & PID_MASK);
}

void NicImpl::mark_exists(int32_t ctid) const {
    QpSlot& s = shared_->qp[ctid];
    QpView v = read_qp(s);
    if ((v.flags & QpSlot::k_exists) != 0) return;
    v.flags |= QpSlot::k_exists;
    write_qp(s, v);
}

void NicImpl::publish_qp(int32_t ctid, CtidState& cs) {
    QpView v;
    v.flags = QpSlot::k_exists | (cs.has_ctx ? QpSlot::k_ctx : 0u) | (cs.has_conn ? QpSlot::k_conn : 0u);
    v.local_qpn = cs.ctx.local_qpn;
    v.remote_rkey = cs.ctx.remote_rkey;
    v.local_psn = cs.ctx.local_psn;
    v.remote_psn = cs.ctx.remote_psn;
    v.remote_vaddr = cs.ctx.remote_vaddr;
    v.remote_qpn = cs.conn.remote_qpn;
    v.remote_ip = cs.has_conn ? cs.conn.remote_ip() : 0;
    v.port = cs.conn.port;
    write_qp(shared_->qp[ctid], v);
}

template <typename Update>
void NicImpl::update_qp(uint32_t local_qpn, Update&& update) {
    const int32_t ctid = ctid_of_local_qpn(local_qpn);
    if (ctid < 0) return;
    CtidState& cs = ctids_[static_cast<size_t>(ctid)];
    std::lock_guard lk(cs.mtx);
    update(ctid, cs);
    cs.shm_route = nullptr;
    publish_qp(ctid, cs);
}

void NicImpl::commit_ctx(const std::array<uint64_t, 3>& w) {
    const DecodedQpContext d = decode_qp_ctx(w);
    update_qp(d.local_qpn, [&](int32_t ctid, CtidState& cs) {
        cs.ctx_words = w;
        cs.ctx = d;
        cs.has_ctx = true;
        cs.next_psn = d.local_psn;
        shared_->qp[ctid].expected_psn.store(d.remote_psn, std::memory_order_release);
    });
}

void NicImpl::commit_conn(const std::array<uint64_t, 3>& w) {
    const DecodedConnContext d = decode_conn(w);
    update_qp(d.local_qpn, [&](int32_t, CtidState& cs) {
        cs.conn_words = w;
        cs.conn = d;
        cs.has_conn = true;
    });
}

void NicImpl::arp_lookup(uint32_t ip) {
    std::lock_guard lk(mtx_);
    const auto it = known_by_ip_.find(ip);
    if (it == known_by_ip_.end()) {
        shared_->counters.arp_misses.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    arp_[ip] = it->second;
    for (auto& c : ctids_) {
        std::lock_guard clk(c.mtx);
        c.shm_route = nullptr;
    }
}

}  // namespace coyote::detail::sim::net
