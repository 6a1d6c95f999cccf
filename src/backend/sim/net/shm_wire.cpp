// coyote-mpi sim backend: the shm wire: requests to a same-host peer are validated against its published NIC
// state and applied by this process, with one copy (memcpy into its registered buffer, or process_vm_* into a
// window of its private memory). A packet sniffer capturing this NIC or the peer's sees each request's packets and
// answer (nic_tap.cpp).
#include <bit>
#include <cerrno>
#include <cstring>

#include <coyote/error.hpp>

#include "backend/sim/identity.hpp"
#include "backend/sim/net/nic_impl.hpp"
#include "backend/sim/net/process_memory.hpp"
#include "backend/sim/net/tcp/tcp_wire.hpp"
#include "detail/format.hpp"

namespace coyote::detail::sim::net {

std::string peer_label(const Endpoint& ep) {
    return "peer process " + std::to_string(ep.pid) + " (FPGA " + ip_to_string(ep.ip) + ", device " +
           std::to_string(ep.device) + " vFPGA " + std::to_string(ep.vfid) + ")";
}

std::string NicImpl::gone_peer(int32_t ctid) const noexcept {
    if (ctid < 0 || ctid >= N_CTID_MAX) return {};
    try {
        std::optional<Endpoint> ep;
        {
            const CtidState& cs = ctids_[static_cast<size_t>(ctid)];
            std::lock_guard lk(cs.mtx);
            if (!cs.has_conn) return {};
            ep = cs.peer;
        }
        if (!ep) return {};
        if (process_gone(*ep)) return peer_label(*ep) + " is gone: it exited";
        // A peer on another host cannot be looked at; a lost connection to it says the same (its process or host
        // went, or it stopped answering for COYOTE_SIM_WIRE_TIMEOUT_MS), as nothing more can arrive through it.
        if (ep->boot_id == me_.boot_id || !wire_live_.load(std::memory_order_acquire)) return {};
        if (auto why = tcp_->lost_reason(ep->key)) return peer_label(*ep) + " is unreachable: " + *why;
        return {};
    } catch (...) {
        return {};
    }
}

bool NicImpl::process_gone(const Endpoint& ep) const noexcept {
    // A pid means something only on this boot (another host, or a peer of unknown origin: cannot tell).
    try {
        return ep.boot_id == me_.boot_id && ep.pid > 0 && !process_alive(ep.pid, ep.start_time);
    } catch (...) {
        return false;
    }
}

void NicImpl::check_alive_now(ShmPeer& p, int64_t now) {
    if (!p.gone.load(std::memory_order_acquire)) {
        int64_t last = p.last_check_ns.load(std::memory_order_relaxed);
        // One poster per period runs the (slow) check: the one that moves the timestamp.
        if (now - last >= std::chrono::nanoseconds(k_liveness_period).count() &&
            p.last_check_ns.compare_exchange_strong(last, now, std::memory_order_relaxed) &&
            (p.pidfd ? process_exited(p.pidfd) : !process_alive(p.ep.pid, p.ep.start_time)))
            p.gone.store(true, std::memory_order_release);
    }
    if (p.gone.load(std::memory_order_acquire)) throw_error(Errc::peer_gone, "RDMA", peer_label(p.ep) + " is gone");
}

std::unique_ptr<ShmPeer> NicImpl::open_shm_peer(const Endpoint& ep) {
    const std::string who = peer_label(ep);
    auto p = std::make_unique<ShmPeer>(ep, &NicImpl::wake_host, &host_);
    if (!process_alive(ep.pid, ep.start_time)) throw_error(Errc::peer_gone, "RDMA", who + " is gone");
    p->pidfd = open_process_fd(ep.pid, ep.start_time);
    try {
        p->nic_seg = ShmSegment::open(ep.nic_name);
        p->state_seg = ShmSegment::open(ep.state_name);
    } catch (const Error& e) {
        throw_error(Errc::peer_gone, "RDMA", who + ": cannot map its shared segments (" + e.what() + ")");
    }
    if (p->nic_seg.size() < sizeof(NicShared))
        throw_error(Errc::protocol, "RDMA", who + ": NIC segment " + ep.nic_name + " is too small");
    p->nic = static_cast<NicShared*>(p->nic_seg.get());
    if (p->nic->magic != k_nic_magic || p->nic->version != k_nic_version || p->nic->owner_pid != ep.pid)
        throw_error(Errc::protocol, "RDMA", who + ": NIC segment " + ep.nic_name + " has a bad header");
    if (p->state_seg.size() < sizeof(SharedState))
        throw_error(Errc::protocol, "RDMA", who + ": state segment " + ep.state_name + " is too small");
    p->state = static_cast<SharedState*>(p->state_seg.get());
    if (p->state->magic != k_state_magic)
        throw_error(Errc::protocol, "RDMA", who + ": state segment " + ep.state_name + " has a bad magic");
    if (p->state->version != k_state_version)
        throw_error(Errc::protocol, "RDMA",
                    who + ": state segment " + ep.state_name + " has layout version " +
                        std::to_string(p->state->version) + ", this library " + std::to_string(k_state_version) +
                        " (both sides must run the same coyote-mpi)");
    p->pulls = pull_lines_in(*p->state, p->state_seg.size());
    p->last_check_ns.store(coarse_now_ns());
    return p;
}

void NicImpl::housekeeping(int64_t now) noexcept {
    watch_.refresh_if_due(now);
    // The peers' watches too, unlocked: a re-read may sleep, and peers stay until the NIC goes.
    std::vector<ShmPeer*> peers;
    try {
        std::lock_guard lk(peers_mtx_);
        peers.reserve(peers_.size());
        for (auto& [key, p] : peers_) peers.push_back(p.get());
    } catch (const std::bad_alloc&) {
        return; // the packets re-read them themselves
    }
    for (ShmPeer* p : peers) p->watch.refresh_if_due(now);
}

ShmPeer& NicImpl::shm_peer(const Endpoint& ep) {
    std::unique_lock lk(peers_mtx_);
    auto it = peers_.find(ep.key);
    if (it == peers_.end()) it = peers_.emplace(ep.key, open_shm_peer(ep)).first;
    ShmPeer& p = *it->second;
    lk.unlock();
    check_alive(p);
    return p;
}

bool NicImpl::window_copy(int32_t ctid, uint64_t generation, const RdmaRequest& req, ShmPeer& peer, const Verdict& v,
                          uint64_t local_addr) {
    const Endpoint& ep = peer.ep;
    const uint64_t remote = v.win.vaddr + v.offset;
    const bool to_remote = req.op != RdmaOpcode::read;
    const int e = cfg_.deny_cma ? EPERM : vm_copy(ep.pid, to_remote, local_addr, remote, req.len);
    if (e == 0) return true;
    const char* fn = to_remote ? "process_vm_writev" : "process_vm_readv";
    switch (e) {
    case ESRCH: {
        peer.gone.store(true, std::memory_order_release);
        throw_error(Errc::peer_gone, "RDMA", peer_label(ep) + " is gone");
    }
    case EFAULT: {
        Verdict f = v;
        f.check = Check::unmapped;
        f.detail = "window memory at " + hex(remote, 1) + " (len " + std::to_string(req.len) + ", window " +
                   hex(v.win.vaddr, 1) + " + len " + std::to_string(v.win.size) +
                   ") is no longer mapped in the target (process " + std::to_string(ep.pid) + ")" +
                   (to_remote ? "" : ", or the local READ target is not writable");
        count_rejection(*peer.nic, Check::unmapped, v.ctid);
        record_error(ctid, generation,
                     Error(make_error_code(Errc::remote_rejected), opcode_label(req.op),
                           rejection_message(req, ep.ip, f)));
        return false;
    }
    case EPERM:
    case ENOSYS:
        throw_error(Errc::not_supported, opcode_label(req.op),
                    std::string(fn) + " on " + peer_label(ep) + " failed (" + std::strerror(e) +
                        "): cross-process memory access is not permitted here (ptrace access check: Yama "
                        "ptrace_scope, seccomp or credentials), and the shm wire reaches remote-access windows that "
                        "way; use COYOTE_SIM_WIRE=tcp");
    default:
        throw Error(std::error_code(e, std::generic_category()), fn,
                    std::string(opcode_label(req.op)) + " on window memory at " + hex(remote, 1) + " of " +
                        peer_label(ep));
    }
}

void NicImpl::map_target(CtidState& cs, const RdmaRequest& req, ShmPeer& peer, const Verdict& v) {
    const Endpoint& ep = peer.ep;
    std::lock_guard plk(peer.mtx);
    auto& slot = peer.bufs[v.ctid];
    if (!slot.second || slot.first != v.buf.generation) {
        // The name is read only here (validation copies no strings); a re-registration since the validation
        // shows as a new generation.
        const BufView named = read_buf(peer.nic->buf[v.ctid]);
        if (!named.valid || named.generation != v.buf.generation)
            throw_error(Errc::peer_gone, opcode_label(req.op),
                        "the registered buffer of " + ip_to_string(ep.ip) + " ctid " + std::to_string(v.ctid) +
                            " was withdrawn or replaced while the request was applied");
        std::shared_ptr<ShmSegment> m;
        try {
            m = std::make_shared<ShmSegment>(ShmSegment::open(named.name));
        } catch (const Error& e) {
            throw_error(Errc::peer_gone, opcode_label(req.op),
                        "cannot map the registered buffer " + named.name + " of " + ip_to_string(ep.ip) + ": " +
                            e.what());
        }
        if (m->size() < v.buf.size)
            throw_error(Errc::protocol, opcode_label(req.op),
                        "registered buffer " + named.name + " of " + ip_to_string(ep.ip) + " maps " +
                            std::to_string(m->size()) + " bytes, less than its published size " +
                            std::to_string(v.buf.size));
        slot = {v.buf.generation, std::move(m)};
    }
    cs.mapped = {&peer, v.ctid, v.buf.generation, slot.second};
}

PostStatus NicImpl::post_shm(CtidState& cs, int32_t ctid, const RdmaRequest& req, uint64_t generation, ShmPeer& peer,
                             uint64_t local_addr, bool last, int64_t now) {
    const Verdict v = validate_and_claim(*peer.nic, req, &cs.slots);
    const sniffer::Target my_tap = tap_target(now), their_tap = peer.tap_target(now);
    const bool tap = my_tap || their_tap;
    if (v.check != Check::ok) {
        settle_offers(cs);
        if (tap) [[unlikely]]
            tap_shm(req, peer, local_addr, sniffer::k_nak_remote_access, my_tap, their_tap);
        record_error(ctid, generation, Error(make_error_code(Errc::remote_rejected), opcode_label(req.op),
                                             rejection_message(req, peer.ep.ip, v)));
        return PostStatus::ok;
    }
    // A WRITE into the registered buffer of a target polling lately: its poller copies it (shm_pull.cpp).
    const bool offerable =
        req.op == RdmaOpcode::write && !v.in_window && !tap && cfg_.pulls(req.len) && peer.pulls != nullptr;
    if (offerable && offer_write(cs, ctid, req, peer, v, local_addr, last)) return PostStatus::ok;
    settle_offers(cs); // what this ctid offered lands first
    if (v.in_window) {
        // Private memory of the target: one copy by the kernel, in posting order (synchronous).
        if (!window_copy(ctid, generation, req, peer, v, local_addr)) return PostStatus::ok;
    } else {
        const CtidState::MappedTarget& mt = cs.mapped;
        if (mt.peer != &peer || mt.ctid != v.ctid || mt.generation != v.buf.generation || !mt.seg)
            map_target(cs, req, peer, v);
        std::byte* remote = mt.seg->bytes() + v.offset;
        auto* local = reinterpret_cast<std::byte*>(local_addr);
        if (req.op == RdmaOpcode::read)
            std::memcpy(local, remote, req.len);
        else
            std::memcpy(remote, local, req.len);
    }
    if (tap) [[unlikely]]
        tap_shm(req, peer, local_addr, 0, my_tap, their_tap);
    if (last) {
        SharedState& mine = host_.shared_state();
        if (req.op == RdmaOpcode::read)
            complete_read(mine, ctid);
        else
            complete_shm_write(cs, ctid, peer, v.ctid);
    }
    return PostStatus::ok;
}

void NicImpl::complete_shm_write(CtidState& cs, int32_t ctid, ShmPeer& peer, int32_t target_ctid) noexcept {
    const uint64_t bit = uint64_t{1} << ctid;
    SharedState& target = *peer.state;
    const bool same_target = cs.deferred_peer.load(std::memory_order_relaxed) == &peer &&
                             cs.deferred_ctid.load(std::memory_order_relaxed) == target_ctid;
    if (same_target && (deferred_mask_.load(std::memory_order_seq_cst) & bit) != 0) {
        defer_local_write(target, target_ctid);
        // A flush that took the bit before the deferral may have missed it: set the bit again for the next one.
        if ((deferred_mask_.load(std::memory_order_seq_cst) & bit) == 0)
            deferred_mask_.fetch_or(bit, std::memory_order_seq_cst);
    } else {
        // A new burst: counted at once. The bit, set after the route (a release), opens the burst for the next
        // WRITE and shows flushers this route.
        if (!same_target) flush_deferred(cs); // what the previous burst left at its target
        bump_wback(target, CmplClass::local_write, target_ctid);
        cs.deferred_peer.store(&peer, std::memory_order_relaxed);
        cs.deferred_ctid.store(target_ctid, std::memory_order_relaxed);
        deferred_mask_.fetch_or(bit, std::memory_order_seq_cst);
    }
    bump_wback(host_.shared_state(), CmplClass::rdma_write, ctid);
}

void NicImpl::flush_deferred(const CtidState& cs) noexcept {
    if (ShmPeer* p = cs.deferred_peer.load(std::memory_order_acquire); p != nullptr)
        (void)claim_deferred(*p->state, cs.deferred_ctid.load(std::memory_order_relaxed));
}

void NicImpl::flush_deferred() noexcept {
    for (uint64_t m = deferred_mask_.exchange(0, std::memory_order_seq_cst); m != 0; m &= m - 1)
        flush_deferred(ctids_[static_cast<size_t>(std::countr_zero(m))]);
}

}  // namespace coyote::detail::sim::net
